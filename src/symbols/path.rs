//! Parsing of Windows debugger symbol paths (`-s PATH` and `_NT_SYMBOL_PATH`).
//!
//! A symbol path is a `;`-separated list of entries, searched in order:
//!
//! * `DIR` — a plain folder, searched in the symbol-store layout and then flat;
//! * `cache*DIR` — a local cache: searched (store layout) at its position, and
//!   used from then on as the download folder for HTTP stores that name no cache;
//! * `srv*STORE`, `srv*DIR*STORE`, `srv*DIR1*DIR2*STORE` — a symbol store (a folder
//!   or an `http://` / `https://` server) with optional downstream cache folders,
//!   which are searched before the store; downloads are written into the first;
//! * `symsrv*symsrv.dll*DIR*STORE` — the long form of `srv*` (the DLL name is ignored).
//!
//! Prefixes are matched case-insensitively; empty entries are skipped. Anything
//! else containing a `*` is rejected with a [`SymbolPathError`].

use serde::Serialize;
use std::path::PathBuf;
use thiserror::Error;

/// One entry of a symbol path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolPathEntry {
    /// A plain folder (store layout first, then `<pdb name>` directly inside).
    Folder(PathBuf),
    /// `cache*DIR`: a local cache folder (store layout), and the download folder
    /// for later HTTP stores that name no cache of their own.
    Cache(PathBuf),
    /// `srv*[CACHE*...]STORE` / `symsrv*DLL*[CACHE*...]STORE`.
    Store {
        /// Downstream cache folders, searched in order before `store`; HTTP
        /// downloads are saved into the first one.
        caches: Vec<PathBuf>,
        /// The store itself.
        store: StoreLocation,
    },
}

/// Where a symbol store lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreLocation {
    /// A folder in the symbol-store layout.
    Folder(PathBuf),
    /// An HTTP(S) symbol server; the URL without a trailing `/`.
    Http(String),
}

/// Why a symbol path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SymbolPathError {
    /// `srv*` / `symsrv*` with no store after the last `*`.
    #[error("symbol path entry `{entry}` names no symbol store")]
    MissingStore {
        /// The offending entry.
        entry: String,
    },
    /// `cache*` with no folder.
    #[error("symbol path entry `{entry}` names no cache folder")]
    MissingCacheDir {
        /// The offending entry.
        entry: String,
    },
    /// `symsrv*` without the DLL name and store.
    #[error("symbol path entry `{entry}` is not of the form symsrv*DLL*[CACHE*]STORE")]
    BadSymsrv {
        /// The offending entry.
        entry: String,
    },
    /// An entry with a `*` but none of the known prefixes.
    #[error("symbol path entry `{entry}` has an unknown prefix `{prefix}`")]
    UnknownPrefix {
        /// The offending entry.
        entry: String,
        /// The text before the first `*`.
        prefix: String,
    },
}

/// Parses one symbol path string (entries separated by `;`).
pub fn parse_symbol_path(text: &str) -> Result<Vec<SymbolPathEntry>, SymbolPathError> {
    let mut out = Vec::new();
    for raw in text.split(';') {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        out.push(parse_entry(entry)?);
    }
    Ok(out)
}

fn parse_entry(entry: &str) -> Result<SymbolPathEntry, SymbolPathError> {
    let Some((prefix, rest)) = entry.split_once('*') else {
        return Ok(SymbolPathEntry::Folder(PathBuf::from(entry)));
    };
    match prefix.trim().to_ascii_lowercase().as_str() {
        "cache" => {
            let dir = rest.trim();
            if dir.is_empty() || dir.contains('*') {
                return Err(SymbolPathError::MissingCacheDir {
                    entry: entry.to_string(),
                });
            }
            Ok(SymbolPathEntry::Cache(PathBuf::from(dir)))
        }
        "srv" => parse_store(entry, rest),
        "symsrv" => {
            let Some((_dll, rest)) = rest.split_once('*') else {
                return Err(SymbolPathError::BadSymsrv {
                    entry: entry.to_string(),
                });
            };
            parse_store(entry, rest)
        }
        other => Err(SymbolPathError::UnknownPrefix {
            entry: entry.to_string(),
            prefix: other.to_string(),
        }),
    }
}

/// Parses `[CACHE*...]STORE`.
fn parse_store(entry: &str, rest: &str) -> Result<SymbolPathEntry, SymbolPathError> {
    let mut parts: Vec<&str> = rest.split('*').map(str::trim).collect();
    let store = parts.pop().unwrap_or("");
    if store.is_empty() {
        return Err(SymbolPathError::MissingStore {
            entry: entry.to_string(),
        });
    }
    // Empty cache parts (`srv**STORE`) mean "the default cache" to dbghelp; we have
    // no default, so they are dropped.
    let caches = parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    Ok(SymbolPathEntry::Store {
        caches,
        store: store_location(store),
    })
}

fn store_location(store: &str) -> StoreLocation {
    let lower = store.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        StoreLocation::Http(store.trim_end_matches('/').to_string())
    } else {
        StoreLocation::Folder(PathBuf::from(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let p = parse_symbol_path(
            " C:\\syms ;;cache*/tmp/c;SRV*/tmp/d*https://x.test/sym/;srv*http://h;\
             symsrv*symsrv.dll*/tmp/e*/srv/store",
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                SymbolPathEntry::Folder("C:\\syms".into()),
                SymbolPathEntry::Cache("/tmp/c".into()),
                SymbolPathEntry::Store {
                    caches: vec!["/tmp/d".into()],
                    store: StoreLocation::Http("https://x.test/sym".into())
                },
                SymbolPathEntry::Store {
                    caches: vec![],
                    store: StoreLocation::Http("http://h".into())
                },
                SymbolPathEntry::Store {
                    caches: vec!["/tmp/e".into()],
                    store: StoreLocation::Folder("/srv/store".into())
                },
            ]
        );
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(matches!(
            parse_symbol_path("srv*"),
            Err(SymbolPathError::MissingStore { .. })
        ));
        assert!(matches!(
            parse_symbol_path("cache*"),
            Err(SymbolPathError::MissingCacheDir { .. })
        ));
        assert!(matches!(
            parse_symbol_path("symsrv*x"),
            Err(SymbolPathError::BadSymsrv { .. })
        ));
        assert!(matches!(
            parse_symbol_path("foo*bar"),
            Err(SymbolPathError::UnknownPrefix { .. })
        ));
    }
}
