//! Which files a run reads: files named on the command line as they are, folders
//! searched recursively for dumps and UMDH logs.

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

/// Expands the command line's inputs: files are taken as they are, folders are
/// searched recursively for `*.dmp` (any case) and for `*.txt` and `*.log` files
/// whose first lines are a UMDH log's ([`crate::umdh::detect`]), sorted by path. A path that cannot be
/// read is returned as an error entry so it is listed in the index.
pub fn discover_inputs(inputs: &[PathBuf]) -> Vec<Result<PathBuf, InputError>> {
    let mut out = Vec::new();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                walk(input, &mut found, &mut out);
                found.sort();
                out.extend(found.into_iter().map(Ok));
            }
            Ok(_) => out.push(Ok(input.clone())),
            Err(source) => out.push(Err(InputError::Io {
                path: input.clone(),
                source,
            })),
        }
    }
    out
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, errors: &mut Vec<Result<PathBuf, InputError>>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            errors.push(Err(InputError::Io {
                path: dir.to_owned(),
                source,
            }));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // file_type() does not follow symlinks, so a link cycle cannot make this loop.
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, found, errors),
            Ok(_) => {
                let ext = |x: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(x));
                let wanted = ext("dmp")
                    || ((ext("txt") || ext("log"))
                        && matches!(crate::umdh::detect(&path), Ok(Some(_))));
                if wanted && path.is_file() {
                    found.push(path);
                }
            }
            Err(_) => {}
        }
    }
}
