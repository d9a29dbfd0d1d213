//! Walking the symbol path for one module, as Windows debuggers do.
//!
//! With a known identity (`search_verified`), each path entry is searched in
//! order: plain folders in the store layout then flat, `cache*` folders and `srv*`
//! caches in the store layout, folder stores in the store layout, and HTTP stores
//! by download (saved into the cache in the store layout). A PDB is accepted only
//! when its GUID and DBI age match; a wrong one is recorded and the search goes on.
//!
//! Without an identity (`search_by_name`), the PDB is looked up by name only and,
//! when found, loaded as [`SymbolStatus::LoadedUnverified`].
//!
//! `identity_without_codeview` recovers a module's identity from the dump's memory
//! or from an image file when the dump's CodeView record is empty.

use super::path::{StoreLocation, SymbolPathEntry};
use super::pdb::{read_signature, OpenPdb, PdbSignature, SharedBytes};
use super::pe::{self, ImageInfo};
use super::store::{self, FetchError};
use super::{
    MemoryReader, ModuleIdentity, ModuleSymbols, PdbIdentity, SearchAttempt, SymbolOptions,
    SymbolStatus,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `<module stem>.pdb`, the name tried when the module's identity is unknown.
pub(super) fn fallback_pdb_name(module: &ModuleIdentity) -> String {
    let name = if module.file_name.is_empty() {
        pe::file_name_of(&module.code_path)
    } else {
        pe::file_name_of(&module.file_name)
    };
    let stem = match name.rfind('.') {
        Some(dot) if dot > 0 => &name[..dot],
        _ => name,
    };
    format!("{stem}.pdb")
}

/// Learns a module's PDB identity from dump memory, then from `--images`.
pub(super) fn identity_without_codeview(
    options: &SymbolOptions,
    module: &ModuleIdentity,
    memory: Option<MemoryReader<'_>>,
    attempts: &mut Vec<SearchAttempt>,
) -> Option<PdbIdentity> {
    if let Some(read) = memory {
        let place = format!("dump memory at {:#x}", module.base);
        match pe::identity_from_memory(module.base, read) {
            Ok(info) => {
                attempts.push(SearchAttempt::new(place, identity_outcome(&info.pdb)));
                return Some(info.pdb);
            }
            Err(e) => attempts.push(SearchAttempt::new(place, format!("no identity: {e}"))),
        }
    }
    let wanted = pe::file_name_of(if module.file_name.is_empty() {
        &module.code_path
    } else {
        &module.file_name
    });
    if wanted.is_empty() {
        return None;
    }
    for entry in &options.images {
        let candidate = if entry.is_dir() {
            match store::find_file_in(entry, wanted) {
                Some(p) => p,
                None => {
                    attempts.push(SearchAttempt::new(
                        entry.join(wanted).display().to_string(),
                        "not found",
                    ));
                    continue;
                }
            }
        } else {
            let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
            if !name.is_some_and(|n| n.eq_ignore_ascii_case(wanted)) {
                continue;
            }
            entry.clone()
        };
        let place = candidate.display().to_string();
        let bytes = match std::fs::read(&candidate) {
            Ok(b) => b,
            Err(e) => {
                attempts.push(SearchAttempt::new(place, format!("cannot read: {e}")));
                continue;
            }
        };
        match pe::identity_from_file(&bytes) {
            Ok(info) if !size_matches(&info, module) => attempts.push(SearchAttempt::new(
                place,
                format!(
                    "image size {:#x} differs from the module's {:#x}; not used",
                    info.size_of_image, module.size
                ),
            )),
            Ok(info) => {
                attempts.push(SearchAttempt::new(place, identity_outcome(&info.pdb)));
                return Some(info.pdb);
            }
            Err(e) => attempts.push(SearchAttempt::new(place, format!("no identity: {e}"))),
        }
    }
    None
}

fn size_matches(info: &ImageInfo, module: &ModuleIdentity) -> bool {
    module.size == 0 || u64::from(info.size_of_image) == module.size
}

fn identity_outcome(id: &PdbIdentity) -> String {
    format!("CodeView identity {} {}", id.pdb_name, id.signature_text())
}

/// State of one search along the path.
struct Search<'a> {
    options: &'a SymbolOptions,
    /// `None` for a by-name search.
    want: Option<&'a PdbIdentity>,
    name: &'a str,
    searched: Vec<SearchAttempt>,
    mismatch: Option<String>,
    error: Option<String>,
}

struct Found {
    pdb: Arc<OpenPdb>,
    path: Option<PathBuf>,
}

pub(super) fn search_verified(options: &SymbolOptions, id: &PdbIdentity) -> ModuleSymbols {
    run(Search::new(options, Some(id), &id.pdb_name))
}

pub(super) fn search_by_name(options: &SymbolOptions, pdb_name: &str) -> ModuleSymbols {
    run(Search::new(options, None, pdb_name))
}

fn run(mut s: Search<'_>) -> ModuleSymbols {
    if s.options.search_path.is_empty() {
        return ModuleSymbols::failed(
            SymbolStatus::NotFound,
            Vec::new(),
            format!("{} not searched: the symbol path is empty", s.name),
        );
    }
    let found = s.walk();
    let identity = s.want.cloned();
    match found {
        Some(found) => {
            let (status, message) = match s.want {
                Some(_) => (SymbolStatus::Loaded, None),
                None => (
                    SymbolStatus::LoadedUnverified,
                    Some(format!(
                        "module identity unknown (no CodeView record in the dump, its memory \
                         or an image); {} used by name without a GUID/age check",
                        s.name
                    )),
                ),
            };
            ModuleSymbols {
                status,
                pdb_path: found.path,
                searched: s.searched,
                message,
                identity,
                pdb: Some(found.pdb),
            }
        }
        None => {
            let (status, message) = if let Some(m) = s.mismatch.take() {
                (SymbolStatus::Mismatched, m)
            } else if let Some(e) = s.error.take() {
                (SymbolStatus::Error, e)
            } else {
                let n = s.searched.len();
                let what = match s.want {
                    Some(id) => format!("{} ({})", s.name, id.signature_text()),
                    None => s.name.to_string(),
                };
                (
                    SymbolStatus::NotFound,
                    format!("{what} not found ({n} places searched)"),
                )
            };
            let mut m = ModuleSymbols::failed(status, s.searched, message);
            m.identity = identity;
            m
        }
    }
}

impl<'a> Search<'a> {
    fn new(options: &'a SymbolOptions, want: Option<&'a PdbIdentity>, name: &'a str) -> Self {
        Self {
            options,
            want,
            name,
            searched: Vec::new(),
            mismatch: None,
            error: None,
        }
    }

    fn note(&mut self, place: impl Into<String>, outcome: impl Into<String>) {
        self.searched.push(SearchAttempt::new(place, outcome));
    }

    fn walk(&mut self) -> Option<Found> {
        let mut current_cache: Option<PathBuf> = None;
        for entry in &self.options.search_path {
            let found = match entry {
                SymbolPathEntry::Folder(dir) => {
                    self.try_store_layout(dir).or_else(|| self.try_flat(dir))
                }
                SymbolPathEntry::Cache(dir) => {
                    current_cache = Some(dir.clone());
                    self.try_store_layout(dir)
                }
                SymbolPathEntry::Store { caches, store } => {
                    let mut found = None;
                    for dir in caches {
                        found = self.try_store_layout(dir);
                        if found.is_some() {
                            break;
                        }
                    }
                    if found.is_none() {
                        found = match store {
                            StoreLocation::Folder(dir) => self.try_store_layout(dir),
                            StoreLocation::Http(url) => {
                                let save_to = caches.first().or(current_cache.as_ref());
                                self.try_http(url, save_to.map(PathBuf::as_path))
                            }
                        };
                    }
                    found
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// `<dir>/<name>/<GUID><age>/<name>`; by name, the single version present.
    fn try_store_layout(&mut self, dir: &Path) -> Option<Found> {
        match self.want {
            Some(id) => match store::find_in_store(dir, id) {
                Some(path) => self.try_file(&path),
                None => {
                    self.note(
                        store::store_path(dir, id).display().to_string(),
                        "not found",
                    );
                    None
                }
            },
            None => {
                let versions = single_version(dir, self.name);
                match versions.as_slice() {
                    [one] => self.try_file(one),
                    [] => None,
                    many => {
                        let place = dir.join(self.name).display().to_string();
                        self.note(
                            place,
                            format!(
                                "{} versions in the store and no GUID/age to choose; none used",
                                many.len()
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    /// `<dir>/<name>`.
    fn try_flat(&mut self, dir: &Path) -> Option<Found> {
        match store::find_file_in(dir, self.name) {
            Some(path) => self.try_file(&path),
            None => {
                self.note(dir.join(self.name).display().to_string(), "not found");
                None
            }
        }
    }

    fn try_file(&mut self, path: &Path) -> Option<Found> {
        let place = path.display().to_string();
        let bytes = match SharedBytes::open(path) {
            Ok(b) => b,
            Err(e) => {
                let text = e.to_string();
                self.note(place, text.clone());
                self.error.get_or_insert(format!("{}: {text}", self.name));
                return None;
            }
        };
        let pdb = self.validate_and_open(&place, bytes)?;
        self.note(place, "found");
        Some(Found {
            pdb,
            path: Some(path.to_path_buf()),
        })
    }

    /// Checks the signature and opens the PDB; records failures under `place`.
    fn validate_and_open(&mut self, place: &str, bytes: SharedBytes) -> Option<Arc<OpenPdb>> {
        let signature = match read_signature(&bytes) {
            Ok(s) => s,
            Err(e) => return self.corrupt(place, e.to_string()),
        };
        if let Some(id) = self.want {
            if !signature.matches(&id.guid, id.age) {
                let theirs = signature_text(&signature);
                self.note(
                    place,
                    format!(
                        "found, GUID/age mismatch: {theirs} (module wants {})",
                        id.signature_text()
                    ),
                );
                self.mismatch.get_or_insert(format!(
                    "{} found at {place} but GUID/age {theirs} does not match the module's {}",
                    self.name,
                    id.signature_text()
                ));
                return None;
            }
        }
        match OpenPdb::open(bytes) {
            Ok(pdb) => Some(Arc::new(pdb)),
            Err(e) => self.corrupt(place, e.to_string()),
        }
    }

    fn corrupt(&mut self, place: &str, text: String) -> Option<Arc<OpenPdb>> {
        self.note(place, text.clone());
        self.error
            .get_or_insert(format!("{} at {place}: {text}", self.name));
        None
    }

    fn try_http(&mut self, server: &str, save_to: Option<&Path>) -> Option<Found> {
        let Some(id) = self.want else {
            self.note(server, "skipped: no GUID/age to request by");
            return None;
        };
        let url = store::fetch_url_for(server, id);
        let bytes = match store::fetch(server, id, self.options.http_timeout) {
            Ok(b) => b,
            Err(e) => {
                let outcome = match e {
                    FetchError::NotFound => "HTTP 404".to_string(),
                    other => other.to_string(),
                };
                self.note(url, outcome);
                return None;
            }
        };
        let shared = SharedBytes::from_vec(bytes);
        let pdb = self.validate_and_open(&url, shared.clone())?;
        let (path, outcome) = match save_to {
            Some(dir) => {
                let target = store::store_path(dir, id);
                match store::save_atomically(&target, shared.as_ref()) {
                    Ok(()) => (
                        Some(target.clone()),
                        format!("downloaded, saved to {}", target.display()),
                    ),
                    Err(e) => (
                        None,
                        format!("downloaded; could not save to {}: {e}", target.display()),
                    ),
                }
            }
            None => (
                None,
                "downloaded (no cache folder to save it in)".to_string(),
            ),
        };
        self.note(url, outcome);
        Some(Found { pdb, path })
    }
}

fn signature_text(s: &PdbSignature) -> String {
    format!("{}/{}", store::guid_hex(&s.guid), s.age)
}

/// The PDB files at `<dir>/<name>/*/<name>`.
fn single_version(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| store::find_file_in(&e.path(), name))
        .collect();
    out.sort();
    out
}
