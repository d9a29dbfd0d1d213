//! Walking the symbol path for one module, as Windows debuggers do.
//!
//! With a known identity (`search_verified`), each path entry is searched in
//! order: plain folders in the store layout then flat, `cache*` folders and `srv*`
//! caches in the store layout, folder stores in the store layout, and HTTP stores
//! by download (saved into the cache in the store layout). A PDB is accepted only
//! when its GUID and DBI age match; a wrong one is recorded and the search goes on.
//!
//! In the store layout, a `<GUID><age>` folder may hold the plain PDB, the
//! compressed `<name>.pd_` or a `file.ptr` (tried in that order, over HTTP too).
//! A `.pd_` is expanded to disk, never into memory: into the download cache in
//! effect (as the plain `<name>.pdb`, so the cache keeps the uncompressed layout),
//! else into a temporary file. The expanded PDB is validated before it is renamed
//! into place, so a wrong or corrupt one is never cached.
//!
//! Without an identity (`search_by_name`), the PDB is looked up by name only and,
//! when found, loaded as [`SymbolStatus::LoadedUnverified`].
//!
//! `identity_without_codeview` recovers a module's identity from the dump's memory
//! or from an image file when the dump's CodeView record is empty.

use super::cab;
use super::path::{StoreLocation, SymbolPathEntry};
use super::pdb::{read_signature, OpenPdb, PdbSignature, SharedBytes};
use super::pe::{self, ImageInfo};
use super::store::{self, FetchError, FilePtr, StoreFile};
use super::{
    MemoryReader, ModuleIdentity, ModuleSymbols, PdbIdentity, SearchAttempt, SymbolOptions,
    SymbolStatus,
};
use std::io::{Read, Seek, Write};
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
            // A dump without the module's memory (most minidumps) is not an error
            // of the image: say so plainly.
            Err(pe::PeError::Truncated { offset: 0, .. }) => attempts.push(SearchAttempt::new(
                place,
                "the dump does not hold the module's image",
            )),
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
    /// The first `MSG:` of a `file.ptr`: the store's reason for not having the PDB.
    store_message: Option<String>,
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
                let mut message = format!("{what} not found ({n} places searched)");
                if let Some(m) = &s.store_message {
                    message.push_str(&format!("; the symbol store says: {m}"));
                }
                (SymbolStatus::NotFound, message)
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
            store_message: None,
        }
    }

    fn note(&mut self, place: impl Into<String>, outcome: impl Into<String>) {
        self.searched.push(SearchAttempt::new(place, outcome));
    }

    fn walk(&mut self) -> Option<Found> {
        // The download cache in effect: `.pd_` files are expanded into it, and HTTP
        // downloads saved into it.
        let mut current_cache: Option<PathBuf> = None;
        for entry in &self.options.search_path {
            let found = match entry {
                SymbolPathEntry::Folder(dir) => self
                    .try_store_layout(dir, current_cache.as_deref())
                    .or_else(|| self.try_flat(dir)),
                SymbolPathEntry::Cache(dir) => {
                    current_cache = Some(dir.clone());
                    self.try_store_layout(dir, Some(dir))
                }
                SymbolPathEntry::Store { caches, store } => {
                    let save_to = caches.first().or(current_cache.as_ref());
                    let save_to = save_to.map(PathBuf::as_path);
                    let mut found = None;
                    for dir in caches {
                        found = self.try_store_layout(dir, save_to);
                        if found.is_some() {
                            break;
                        }
                    }
                    if found.is_none() {
                        found = match store {
                            StoreLocation::Folder(dir) => self.try_store_layout(dir, save_to),
                            StoreLocation::Http(url) => self.try_http(url, save_to),
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

    /// `<dir>/<name>/<GUID><age>/` (`<name>`, `<name>.pd_`, `file.ptr`); by name,
    /// the single version present. `save_to` is the cache a `.pd_` expands into.
    fn try_store_layout(&mut self, dir: &Path, save_to: Option<&Path>) -> Option<Found> {
        match self.want {
            Some(id) => match store::find_in_store(dir, id) {
                Some(file) => self.try_store_file(file, save_to),
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
                    // No GUID/age, so no place in the cache: expand to a temporary file.
                    [one] => self.try_store_file(one.clone(), None),
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

    fn try_store_file(&mut self, file: StoreFile, save_to: Option<&Path>) -> Option<Found> {
        match file {
            StoreFile::Pdb(path) => self.try_file(&path),
            StoreFile::Compressed(path) => self.try_compressed(&path, save_to),
            StoreFile::Pointer(path) => self.try_pointer(&path, save_to),
        }
    }

    /// A local `.pd_`: expanded, validated, and saved into `save_to` when given.
    fn try_compressed(&mut self, path: &Path, save_to: Option<&Path>) -> Option<Found> {
        let place = path.display().to_string();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                let text = format!("cannot read: {e}");
                self.note(&place, text.clone());
                self.error
                    .get_or_insert(format!("{} at {place}: {text}", self.name));
                return None;
            }
        };
        let found = self.expand_and_open(&place, file, save_to, "found")?;
        Some(Found {
            pdb: found.pdb,
            path: found.path.or_else(|| Some(path.to_path_buf())),
        })
    }

    /// A local `file.ptr`: `PATH:` is followed when it names an existing local
    /// file; `MSG:` is recorded as the store's reason.
    fn try_pointer(&mut self, path: &Path, save_to: Option<&Path>) -> Option<Found> {
        let place = path.display().to_string();
        let mut bytes = Vec::new();
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(store::MAX_FILE_PTR).read_to_end(&mut bytes));
        if let Err(e) = read {
            self.note(place, format!("cannot read: {e}"));
            return None;
        }
        self.follow_pointer(&place, &bytes, save_to)
    }

    fn follow_pointer(
        &mut self,
        place: &str,
        bytes: &[u8],
        save_to: Option<&Path>,
    ) -> Option<Found> {
        match store::parse_file_ptr(bytes) {
            FilePtr::Path(target) => match store::pointer_target(&target) {
                Some(local) if local.is_file() => {
                    self.note(place, format!("PATH:{target}, followed"));
                    if file_starts_with(&local, cab::CAB_SIGNATURE) {
                        self.try_compressed(&local, save_to)
                    } else {
                        self.try_file(&local)
                    }
                }
                Some(local) => {
                    self.note(
                        place,
                        format!(
                            "PATH:{target}, not followed: {} does not exist here",
                            local.display()
                        ),
                    );
                    None
                }
                None => {
                    self.note(
                        place,
                        format!("PATH:{target}, not followed: not an absolute path"),
                    );
                    None
                }
            },
            FilePtr::Msg(text) => {
                self.note(place, format!("MSG:{text}"));
                self.store_message.get_or_insert(text);
                None
            }
            FilePtr::Invalid => {
                self.note(place, "unreadable file.ptr (neither PATH: nor MSG:)");
                None
            }
        }
    }

    /// Expands the `.pd_` in `cab_file` to disk, validates the PDB inside and,
    /// with a `save_to` cache and a known identity, renames it into the cache as
    /// the plain `<name>.pdb`. Records one attempt under `place` whatever happens;
    /// `what` starts its outcome (`found` or `downloaded`).
    fn expand_and_open<R: Read + Seek>(
        &mut self,
        place: &str,
        cab_file: R,
        save_to: Option<&Path>,
        what: &str,
    ) -> Option<Found> {
        let target = save_to
            .zip(self.want)
            .map(|(dir, id)| store::store_path(dir, id));
        let mut save_note = None;
        let mut tmp = match &target {
            Some(t) => match store::temp_file_beside(t) {
                Ok(f) => Some(f),
                Err(e) => {
                    save_note = Some(format!("could not save to {}: {e}", t.display()));
                    None
                }
            },
            None => None,
        };
        let target = target.filter(|_| tmp.is_some());
        if tmp.is_none() {
            match tempfile::NamedTempFile::new() {
                Ok(f) => tmp = Some(f),
                Err(e) => {
                    let text = format!("cannot create a temporary file to expand into: {e}");
                    self.note(place, text.clone());
                    self.error
                        .get_or_insert(format!("{} at {place}: {text}", self.name));
                    return None;
                }
            }
        }
        let mut tmp = tmp?;
        let expanded = {
            let mut out = std::io::BufWriter::new(tmp.as_file_mut());
            let r = cab::expand_single_file(cab_file, &mut out, cab::MAX_EXPANDED_SIZE);
            r.and_then(|e| out.flush().map(|()| e).map_err(cab::CabError::Write))
        };
        let expanded = match expanded {
            Ok(e) => e,
            Err(e) => {
                self.corrupt(place, format!("cannot expand: {e}"));
                return None;
            }
        };
        let bytes = match SharedBytes::open(tmp.path()) {
            Ok(b) => b,
            Err(e) => {
                self.corrupt(place, e.to_string());
                return None;
            }
        };
        // The bytes stay mapped after the file is renamed or removed.
        let pdb = self.validate_and_open(place, bytes)?;
        let mut outcome = format!("{what} (compressed)");
        if !expanded.name.eq_ignore_ascii_case(self.name) {
            outcome.push_str(&format!(", the CAB names it {}", expanded.name));
        }
        let path = match target {
            Some(t) => match store::persist(tmp, &t) {
                Ok(()) => {
                    outcome.push_str(&format!(", expanded to {}", t.display()));
                    Some(t)
                }
                Err(e) => {
                    outcome.push_str(&format!(
                        ", expanded; could not save to {}: {e}",
                        t.display()
                    ));
                    None
                }
            },
            None => {
                outcome.push_str(", expanded into a temporary file");
                if let Some(n) = save_note {
                    outcome.push_str(&format!("; {n}"));
                }
                None
            }
        };
        self.note(place, outcome);
        Some(Found { pdb, path })
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

    /// `<server>/<name>/<GUID><age>/` over HTTP: `<name>`, then `<name>.pd_`, then
    /// `file.ptr`; the next is asked for only after a 404.
    fn try_http(&mut self, server: &str, save_to: Option<&Path>) -> Option<Found> {
        let Some(id) = self.want else {
            self.note(server, "skipped: no GUID/age to request by");
            return None;
        };
        let timeout = self.options.http_timeout;

        let url = store::fetch_url_for(server, id);
        match store::fetch(server, id, timeout) {
            Ok(bytes) => return self.open_downloaded(&url, bytes, save_to),
            Err(e) => {
                let last = !matches!(e, FetchError::NotFound);
                self.note(url, e.to_string());
                if last {
                    return None;
                }
            }
        }

        let url = store::store_file_url(server, id, &store::compressed_name(&id.pdb_name));
        // The compressed file is streamed to an anonymous temporary file, then
        // expanded from there.
        let mut download = match tempfile::tempfile() {
            Ok(f) => f,
            Err(e) => {
                self.note(url, format!("cannot create a temporary file: {e}"));
                return None;
            }
        };
        match store::fetch_to(&url, timeout, &mut download, store::MAX_DOWNLOAD) {
            Ok(_) => {
                if let Err(e) = download.rewind() {
                    self.note(url, format!("cannot read the download back: {e}"));
                    return None;
                }
                return self.expand_and_open(&url, download, save_to, "downloaded");
            }
            Err(e) => {
                let last = !matches!(e, FetchError::NotFound);
                self.note(url, e.to_string());
                if last {
                    return None;
                }
            }
        }
        drop(download);

        let url = store::store_file_url(server, id, store::FILE_PTR);
        match store::fetch_bytes(&url, timeout, store::MAX_FILE_PTR) {
            Ok(bytes) => self.follow_pointer(&url, &bytes, save_to),
            Err(e) => {
                self.note(url, e.to_string());
                None
            }
        }
    }

    /// A downloaded plain PDB: validated, then saved into `save_to`.
    fn open_downloaded(
        &mut self,
        url: &str,
        bytes: Vec<u8>,
        save_to: Option<&Path>,
    ) -> Option<Found> {
        let id = self.want?;
        let shared = SharedBytes::from_vec(bytes);
        let pdb = self.validate_and_open(url, shared.clone())?;
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

/// True when the file at `path` starts with `magic`.
fn file_starts_with(path: &Path, magic: &[u8]) -> bool {
    let mut head = vec![0u8; magic.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == magic
}

fn signature_text(s: &PdbSignature) -> String {
    format!("{}/{}", store::guid_hex(&s.guid), s.age)
}

/// The store files (`<name>`, `<name>.pd_` or `file.ptr`) at `<dir>/<name>/*/`.
fn single_version(dir: &Path, name: &str) -> Vec<StoreFile> {
    let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
        return Vec::new();
    };
    let mut out: Vec<StoreFile> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| store::find_in_signature_dir(&e.path(), name))
        .collect();
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}
