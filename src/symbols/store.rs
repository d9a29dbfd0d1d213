//! Symbol-store layout and lookup: local folders and HTTP symbol servers.
//!
//! The store layout (as written by `symstore` and served by Microsoft-style symbol
//! servers) is `<pdb name>/<GUID><age>/<pdb name>`, with the GUID as 32 upper-case
//! hex digits in its textual order (`Data1` as a little-endian `u32`, `Data2` and
//! `Data3` as `u16`, then the 8 trailing bytes) and the age in upper-case hex
//! without leading zeros. The flat layout is `<pdb name>` directly in a folder.
//!
//! Inside a `<GUID><age>` folder, as symsrv does, the plain `<name>.pdb` is looked
//! for first, then the compressed `<name>.pd_` (a CAB, see [`super::cab`]), then a
//! `file.ptr` redirect whose text is `PATH:<path>` or `MSG:<text>` ([`FilePtr`]).
//!
//! HTTP downloads use a blocking `ureq` agent (proxies from `HTTPS_PROXY` /
//! `HTTP_PROXY` / `ALL_PROXY`, honouring `NO_PROXY`). The time-out bounds DNS,
//! connecting, sending, waiting for the response headers and each read while the
//! body arrives (a stalled transfer), not the total download time. Failures are
//! returned as [`FetchError`] values for the caller to record.

use super::PdbIdentity;
use std::io::{Read, Write};
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

/// What a store's `<GUID><age>` folder holds for a PDB, in symsrv's order of
/// preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFile {
    /// The plain `<name>.pdb`.
    Pdb(PathBuf),
    /// The compressed `<name>.pd_` (a CAB holding `<name>.pdb`).
    Compressed(PathBuf),
    /// A `file.ptr` redirect.
    Pointer(PathBuf),
}

impl StoreFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        match self {
            Self::Pdb(p) | Self::Compressed(p) | Self::Pointer(p) => p,
        }
    }
}

/// The name of a redirect file in a store's `<GUID><age>` folder.
pub const FILE_PTR: &str = "file.ptr";

/// The compressed name of a store file: the last character replaced by `_`
/// (`odbcvend.pdb` → `odbcvend.pd_`), as `symstore /compress` names it.
pub fn compressed_name(name: &str) -> String {
    let mut out: String = name.to_string();
    out.pop();
    out.push('_');
    out
}

/// Looks up the store layout under `root` (`<name>.pdb`, then `<name>.pd_`, then
/// `file.ptr` in `<root>/<name>/<GUID><age>/`), matching each component
/// case-insensitively when the exact path is absent.
pub fn find_in_store(root: &Path, id: &PdbIdentity) -> Option<StoreFile> {
    let exact = store_path(root, id);
    if exact.is_file() {
        return Some(StoreFile::Pdb(exact));
    }
    let level1 = find_dir_in(root, &id.pdb_name)?;
    let level2 = find_dir_in(&level1, &signature_dir(&id.guid, id.age))?;
    find_in_signature_dir(&level2, &id.pdb_name)
}

/// `<name>.pdb`, `<name>.pd_` or `file.ptr` in one `<GUID><age>` folder.
pub fn find_in_signature_dir(dir: &Path, pdb_name: &str) -> Option<StoreFile> {
    if let Some(p) = find_file_in(dir, pdb_name) {
        return Some(StoreFile::Pdb(p));
    }
    if let Some(p) = find_file_in(dir, &compressed_name(pdb_name)) {
        return Some(StoreFile::Compressed(p));
    }
    find_file_in(dir, FILE_PTR).map(StoreFile::Pointer)
}

/// The parsed text of a `file.ptr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePtr {
    /// `PATH:<path>`: the file lives elsewhere (often a UNC share).
    Path(String),
    /// `MSG:<text>`: the store's reason for not having the file.
    Msg(String),
    /// Anything else.
    Invalid,
}

/// Most bytes of a `file.ptr` that are read; real ones hold one short line.
pub const MAX_FILE_PTR: u64 = 64 * 1024;

/// Parses a `file.ptr` (prefixes are case-insensitive; surrounding white space,
/// a UTF-8 byte-order mark and anything after the first line are ignored).
pub fn parse_file_ptr(bytes: &[u8]) -> FilePtr {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let line = text.lines().next().unwrap_or("").trim();
    let (prefix, rest) = match line.split_once(':') {
        Some(parts) => parts,
        None => return FilePtr::Invalid,
    };
    let rest = rest.trim();
    if prefix.eq_ignore_ascii_case("PATH") && !rest.is_empty() {
        FilePtr::Path(rest.to_string())
    } else if prefix.eq_ignore_ascii_case("MSG") {
        FilePtr::Msg(rest.to_string())
    } else {
        FilePtr::Invalid
    }
}

/// The local path a `file.ptr`'s `PATH:` names, or `None` for a relative path.
///
/// Windows separators become `/` on other systems, so a UNC path
/// `\\server\share\x.pdb` is looked for at `//server/share/x.pdb` (where a share
/// mounted at `/server/share` is found) and `D:\sym\x.pdb` at `D:/sym/x.pdb`.
pub fn pointer_target(path: &str) -> Option<PathBuf> {
    let unc = path.starts_with("\\\\") || path.starts_with("//");
    let drive = path.len() >= 3
        && path.as_bytes()[0].is_ascii_alphabetic()
        && path.as_bytes()[1] == b':'
        && matches!(path.as_bytes()[2], b'\\' | b'/');
    let local = if cfg!(windows) {
        path.to_string()
    } else {
        path.replace('\\', "/")
    };
    let p = PathBuf::from(local);
    (unc || drive || p.is_absolute()).then_some(p)
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
    /// The body is larger than the limit.
    #[error("the download is over the limit of {0} bytes")]
    TooLarge(u64),
    /// The body could not be stored locally.
    #[error("cannot store the download: {0}")]
    Write(String),
    /// Any other transport error.
    #[error("HTTP error: {0}")]
    Transport(String),
}

/// Largest PDB we are willing to download (4 GiB, the MSF format's practical limit).
pub const MAX_DOWNLOAD: u64 = 4 << 30;

/// Downloads `<server>/<store_relative(id)>`.
pub fn fetch(server: &str, id: &PdbIdentity, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    fetch_bytes(&fetch_url_for(server, id), timeout, MAX_DOWNLOAD)
}

/// The URL that [`fetch`] requests.
pub fn fetch_url_for(server: &str, id: &PdbIdentity) -> String {
    store_file_url(server, id, &id.pdb_name)
}

/// `<server>/<pdb name>/<GUID><age>/<file>`: the URL of `file` (the PDB, its
/// `.pd_` or `file.ptr`) in an HTTP store.
pub fn store_file_url(server: &str, id: &PdbIdentity, file: &str) -> String {
    format!(
        "{}/{}/{}/{}",
        server.trim_end_matches('/'),
        id.pdb_name,
        signature_dir(&id.guid, id.age),
        file
    )
}

/// Downloads `url` into memory, failing past `limit` bytes.
pub fn fetch_bytes(url: &str, timeout: Duration, limit: u64) -> Result<Vec<u8>, FetchError> {
    let mut response = get(url, timeout)?;
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| map_ureq_error(e, timeout))
}

/// Streams `url` into `out` (a file, so that a large download never sits in
/// memory), failing past `limit` bytes; returns the number of bytes written.
pub fn fetch_to<W: Write>(
    url: &str,
    timeout: Duration,
    out: &mut W,
    limit: u64,
) -> Result<u64, FetchError> {
    let mut response = get(url, timeout)?;
    let mut body = response.body_mut().with_config().limit(limit).reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(map_ureq_error(ureq::Error::from(e), timeout)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| FetchError::Write(e.to_string()))?;
        written += n as u64;
    }
    out.flush().map_err(|e| FetchError::Write(e.to_string()))?;
    Ok(written)
}

fn map_ureq_error(e: ureq::Error, timeout: Duration) -> FetchError {
    match e {
        ureq::Error::Timeout(_) => FetchError::TimedOut(timeout),
        ureq::Error::StatusCode(404) => FetchError::NotFound,
        ureq::Error::StatusCode(code) => FetchError::Status(code),
        ureq::Error::BodyExceedsLimit(limit) => FetchError::TooLarge(limit),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            FetchError::TimedOut(timeout)
        }
        other => FetchError::Transport(other.to_string()),
    }
}

/// Sends the GET; a non-success status is an error.
fn get(url: &str, timeout: Duration) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
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
    let response = agent
        .get(url)
        .call()
        .map_err(|e| map_ureq_error(e, timeout))?;
    let status = response.status().as_u16();
    if status == 404 {
        return Err(FetchError::NotFound);
    }
    if !(200..300).contains(&status) {
        return Err(FetchError::Status(status));
    }
    Ok(response)
}

/// A new temporary file in `path`'s folder (created if needed), for writing a
/// file that [`persist`] then renames to `path`. Its name is random and it is
/// created exclusively, so it is never a symbolic link planted in advance.
pub fn temp_file_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new()
        .prefix(".leakdiag-")
        .suffix(".tmp")
        .tempfile_in(dir)
}

/// Syncs `tmp` and renames it to `path`. The rename replaces whatever `path` was
/// (a symbolic link included) rather than writing through it, and a concurrent
/// reader sees either no file or the whole one.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Saves downloaded bytes at `path` (creating folders), via a temporary file and a
/// rename so that a concurrent reader never sees a half-written PDB.
pub fn save_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = temp_file_beside(path)?;
    tmp.write_all(bytes)?;
    persist(tmp, path)
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

    #[test]
    fn compressed_names_and_file_ptr() {
        assert_eq!(compressed_name("odbcvend.pdb"), "odbcvend.pd_");
        assert_eq!(compressed_name("A.PDB"), "A.PD_");
        assert_eq!(
            parse_file_ptr(b"PATH:\\\\srv\\sym\\a.pdb\r\n"),
            FilePtr::Path("\\\\srv\\sym\\a.pdb".into())
        );
        assert_eq!(
            parse_file_ptr("\u{feff}path: /x/a.pdb".as_bytes()),
            FilePtr::Path("/x/a.pdb".into())
        );
        assert_eq!(
            parse_file_ptr(b"MSG: withheld: see http://x/y"),
            FilePtr::Msg("withheld: see http://x/y".into())
        );
        assert_eq!(parse_file_ptr(b"PATH:"), FilePtr::Invalid);
        assert_eq!(parse_file_ptr(b"\x00\x01garbage"), FilePtr::Invalid);
        assert_eq!(parse_file_ptr(b""), FilePtr::Invalid);
        if !cfg!(windows) {
            assert_eq!(
                pointer_target("\\\\srv\\share\\a.pdb"),
                Some(PathBuf::from("//srv/share/a.pdb"))
            );
            assert_eq!(pointer_target("/abs/a.pdb"), Some("/abs/a.pdb".into()));
            assert_eq!(pointer_target("D:\\s\\a.pdb"), Some("D:/s/a.pdb".into()));
        }
        assert_eq!(pointer_target("rel\\a.pdb"), None);
    }
}
