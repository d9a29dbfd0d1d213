//! Symbol-store layout and lookup: local folders and HTTP symbol servers.
//!
//! The store layout (as written by `symstore` and served by Microsoft-style symbol
//! servers) is `<pdb name>/<GUID><age>/<pdb name>`, with the GUID as 32 upper-case
//! hex digits in its textual order (`Data1` as a little-endian `u32`, `Data2` and
//! `Data3` as `u16`, then the 8 trailing bytes) and the age in upper-case hex
//! without leading zeros. The flat layout is `<pdb name>` directly in a folder.
//!
//! HTTP downloads use a blocking `ureq` agent (proxies from `HTTPS_PROXY` /
//! `HTTP_PROXY` / `ALL_PROXY`, honouring `NO_PROXY`). The time-out bounds DNS,
//! connecting, sending, waiting for the response headers and each read while the
//! body arrives (a stalled transfer), not the total download time. Failures are
//! returned as [`FetchError`] values for the caller to record.

use super::PdbIdentity;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The `<GUID><age>` directory name of a PDB in a symbol store.
pub fn signature_dir(guid: &[u8; 16], age: u32) -> String {
    format!("{}{:X}", guid_hex(guid), age)
}

pub use crate::model::guid_hex;

/// The path of a PDB relative to a store root, with `/` separators.
pub fn store_relative(id: &PdbIdentity) -> String {
    format!(
        "{}/{}/{}",
        id.pdb_name,
        signature_dir(&id.guid, id.age),
        id.pdb_name
    )
}

/// The path of a PDB inside a local store folder.
pub fn store_path(root: &Path, id: &PdbIdentity) -> PathBuf {
    root.join(&id.pdb_name)
        .join(signature_dir(&id.guid, id.age))
        .join(&id.pdb_name)
}

/// Finds `name` inside `dir`: the exact name first, then a case-insensitive match
/// (Windows file names are case-insensitive; stores copied to Linux keep whatever
/// case they were written with).
pub fn find_file_in(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.is_file() {
        return Some(exact);
    }
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if file_name.to_string_lossy().eq_ignore_ascii_case(name) && entry.path().is_file() {
            return Some(entry.path());
        }
    }
    None
}

/// Looks up the store layout under `root`, matching each component
/// case-insensitively when the exact path is absent.
pub fn find_in_store(root: &Path, id: &PdbIdentity) -> Option<PathBuf> {
    let exact = store_path(root, id);
    if exact.is_file() {
        return Some(exact);
    }
    let level1 = find_dir_in(root, &id.pdb_name)?;
    let level2 = find_dir_in(&level1, &signature_dir(&id.guid, id.age))?;
    find_file_in(&level2, &id.pdb_name)
}

fn find_dir_in(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.is_dir() {
        return Some(exact);
    }
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let matches = e.file_name().to_string_lossy().eq_ignore_ascii_case(name);
        (matches && e.path().is_dir()).then(|| e.path())
    })
}

/// Why an HTTP download failed.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The server answered 404.
    #[error("HTTP 404")]
    NotFound,
    /// The server answered another non-success status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The request did not finish within the time-out.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// Any other transport error.
    #[error("HTTP error: {0}")]
    Transport(String),
}

/// Largest PDB we are willing to download (4 GiB, the MSF format's practical limit).
const MAX_DOWNLOAD: u64 = 4 << 30;

/// Downloads `<server>/<store_relative(id)>`.
pub fn fetch(server: &str, id: &PdbIdentity, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    fetch_url(&fetch_url_for(server, id), timeout)
}

/// The URL that [`fetch`] requests.
pub fn fetch_url_for(server: &str, id: &PdbIdentity) -> String {
    format!("{}/{}", server.trim_end_matches('/'), store_relative(id))
}

fn fetch_url(url: &str, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    // `timeout` bounds every phase up to the response headers and every single
    // read/write afterwards, but not the whole body: a large PDB may take longer
    // than `timeout` to arrive as long as data keeps flowing.
    let config = ureq::Agent::config_builder()
        .timeout_resolve(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .http_status_as_error(false)
        .user_agent("leakdiag-symbols")
        .build();
    let agent: ureq::Agent = config.into();
    let map_err = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => FetchError::TimedOut(timeout),
        ureq::Error::StatusCode(404) => FetchError::NotFound,
        ureq::Error::StatusCode(code) => FetchError::Status(code),
        other => FetchError::Transport(other.to_string()),
    };
    let mut response = agent.get(url).call().map_err(map_err)?;
    let status = response.status().as_u16();
    if status == 404 {
        return Err(FetchError::NotFound);
    }
    if !(200..300).contains(&status) {
        return Err(FetchError::Status(status));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD)
        .read_to_vec()
        .map_err(map_err)
}

/// Saves downloaded bytes at `path` (creating folders), via a temporary file and a
/// rename so that a concurrent reader never sees a half-written PDB.
pub fn save_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("download-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_dir_format() {
        // {F7883FB8-7314-5B93-4C4C-44205044422E}, in-memory layout.
        let guid = [
            0xB8, 0x3F, 0x88, 0xF7, 0x14, 0x73, 0x93, 0x5B, 0x4C, 0x4C, 0x44, 0x20, 0x50, 0x44,
            0x42, 0x2E,
        ];
        assert_eq!(
            signature_dir(&guid, 0x1a),
            "F7883FB873145B934C4C44205044422E1A"
        );
        assert_eq!(signature_dir(&guid, 1), "F7883FB873145B934C4C44205044422E1");
    }
}
