//! Which files a run reads: files named on the command line as they are, folders
//! searched recursively for dumps and UMDH logs.
//!
//! Only regular files are read. Inside a searched folder, a `*.dmp` entry that is not
//! a regular file (a named pipe, a device, a socket, a dangling or looping symbolic
//! link) and a symbolic link to a folder (not followed) are skipped, and each is
//! listed with the reason in the run's index, never passed over in silence. `*.txt`
//! and `*.log` files are taken when their content is a UMDH log. A file named on the
//! command line is always tried, so that what is wrong with it is that input's error.

use crate::dump::file_kind;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// An input that could not be turned into a list of dumps.
#[derive(Debug, Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An entry of a searched folder that was not read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What the inputs expand to.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Dumps to analyse, or inputs that could not be listed, in command-line order.
    pub inputs: Vec<Result<PathBuf, InputError>>,
    /// Folder entries passed over.
    pub skipped: Vec<Skipped>,
}

/// Expands the command line's inputs: files are taken as they are, folders are
/// searched recursively for `*.dmp` (any case) and for `*.txt` and `*.log` files
/// whose first lines are a UMDH log's ([`crate::umdh::detect`]), sorted by path. A path that cannot be
/// read is returned as an error entry so it is listed in the index.
pub fn discover_inputs(inputs: &[PathBuf]) -> Discovered {
    let mut out = Discovered::default();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                walk(input, &mut found, &mut out);
                found.sort();
                out.inputs.extend(found.into_iter().map(Ok));
            }
            Ok(_) => out.inputs.push(Ok(input.clone())),
            Err(source) => out.inputs.push(Err(InputError::Io {
                path: input.clone(),
                source,
            })),
        }
    }
    out.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, out: &mut Discovered) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            out.inputs.push(Err(InputError::Io {
                path: dir.to_owned(),
                source,
            }));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // file_type() does not follow symlinks, so a link cycle cannot make this loop.
        let Ok(t) = entry.file_type() else { continue };
        if t.is_dir() {
            walk(&path, found, out);
            continue;
        }
        let is_dump = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("dmp"));
        // What the entry is, a symbolic link followed.
        let target = std::fs::metadata(&path);
        let skip = |reason: String| Skipped {
            path: path.clone(),
            reason,
        };
        let is_log = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("log"));
        match target {
            Ok(m) if m.is_file() && is_dump => found.push(path),
            // Logs are taken by content: only UMDH logs among the text files.
            Ok(m) if m.is_file() && is_log => {
                if matches!(crate::umdh::detect(&path), Ok(Some(_))) {
                    found.push(path);
                }
            }
            Ok(m) if m.is_file() => {}
            Ok(m) if m.is_dir() => out.skipped.push(skip(
                "a symbolic link to a folder: not followed (name the folder itself to search it)"
                    .into(),
            )),
            Ok(m) if is_dump => out.skipped.push(skip(format!(
                "{}: only regular files are read",
                file_kind(m.file_type())
            ))),
            Err(e) if is_dump => out.skipped.push(skip(if t.is_symlink() {
                format!("a symbolic link that leads nowhere: {e}")
            } else {
                e.to_string()
            })),
            _ => {}
        }
    }
}
