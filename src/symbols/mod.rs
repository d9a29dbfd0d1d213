//! PDB symbol resolution for leakdiag: finds, validates and opens the PDB of each
//! module named in a minidump, and resolves module-relative addresses to function,
//! file and line, with inline frames.
//!
//! * [`path`] parses symbol paths (`-s`, `_NT_SYMBOL_PATH`);
//! * [`store`] knows the symbol-store layout and downloads from HTTP servers;
//! * [`cab`] expands compressed store files (`.pd_`);
//! * [`pe`] reads a PE image's CodeView identity (from dump memory or a file);
//! * [`pdb`] opens and validates PDBs and resolves addresses;
//! * `search` walks the symbol path for one module, recording every place tried.
//!
//! One [`Symbolizer`] serves a whole run. It is `Send + Sync`; [`Symbolizer::load`]
//! caches one [`ModuleSymbols`] per PDB identity, so each distinct PDB is found and
//! opened once per run even when many dumps (on many threads) use it. See [`pdb`]
//! for how lookups run concurrently.

pub mod cab;
pub mod globals;
pub mod path;
pub mod pdb;
pub mod pe;
pub mod publics;
mod search;
pub mod store;

pub use crate::model::{PdbIdentity, SearchAttempt, SymbolStatus};
pub use path::{parse_symbol_path, StoreLocation, SymbolPathEntry, SymbolPathError};

use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What the dump says about one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleIdentity {
    /// File name from the dump's module list, e.g. `odbcvend.dll`.
    pub file_name: String,
    /// Full path as in the dump, e.g. `C:\app\odbcvend.dll`.
    pub code_path: String,
    /// Load address.
    pub base: u64,
    /// Size of the mapped image.
    pub size: u64,
    /// From the module's CodeView record, when the dump had one.
    pub pdb: Option<PdbIdentity>,
}

impl ModuleIdentity {
    /// What the symbolizer needs to find `module`'s PDB.
    pub fn of(module: &crate::model::Module) -> Self {
        ModuleIdentity {
            file_name: module.name.clone(),
            code_path: module.path.clone(),
            base: module.base.0,
            size: module.size,
            pdb: module.pdb.clone(),
        }
    }
}

/// Where to look for symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolOptions {
    /// The symbol path, in search order.
    pub search_path: Vec<SymbolPathEntry>,
    /// Image files or folders of images (`--images`), used to learn a module's PDB
    /// identity when the dump has none.
    pub images: Vec<PathBuf>,
    /// Time-out for each HTTP request.
    pub http_timeout: Duration,
}

/// The HTTP time-out [`SymbolOptions::from_args_and_env`] uses.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for SymbolOptions {
    fn default() -> Self {
        Self {
            search_path: Vec::new(),
            images: Vec::new(),
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }
}

impl SymbolOptions {
    /// Builds the options from the `-s PATH` arguments (each a full symbol path, in
    /// order) followed by `_NT_SYMBOL_PATH`, and the `--images` paths.
    pub fn from_args_and_env(
        symbols_args: &[String],
        nt_symbol_path: Option<&str>,
        images: &[PathBuf],
    ) -> Result<Self, SymbolPathError> {
        let mut search_path = Vec::new();
        for arg in symbols_args {
            search_path.extend(parse_symbol_path(arg)?);
        }
        if let Some(env) = nt_symbol_path {
            search_path.extend(parse_symbol_path(env)?);
        }
        Ok(Self {
            search_path,
            images: images.to_vec(),
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        })
    }
}

/// One frame of a resolved address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolFrame {
    /// Function name (MSVC-decorated public names are undecorated).
    pub function: String,
    /// `rva - function start`, for the outermost frame only.
    pub function_offset: Option<u32>,
    /// Source file as recorded in the PDB.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// Whether this frame was inlined into the next one.
    pub inlined: bool,
}

/// The outcome of loading one module's symbols.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleSymbols {
    /// Overall result.
    pub status: SymbolStatus,
    /// The PDB used (absent when none, or when it was downloaded without a cache).
    pub pdb_path: Option<PathBuf>,
    /// Every place looked at, in order.
    pub searched: Vec<SearchAttempt>,
    /// A one-line explanation for anything but a plain `Loaded`.
    pub message: Option<String>,
    /// The identity searched for (from the dump, its memory, or an image file).
    pub identity: Option<PdbIdentity>,
    #[serde(skip)]
    pdb: Option<Arc<pdb::OpenPdb>>,
}

impl ModuleSymbols {
    fn failed(status: SymbolStatus, searched: Vec<SearchAttempt>, message: String) -> Self {
        Self {
            status,
            pdb_path: None,
            searched,
            message: Some(message),
            identity: None,
            pdb: None,
        }
    }

    /// Frames at `rva` (relative to the module base), innermost (most deeply
    /// inlined) first; the last one is the outer function. Each has `inlined =
    /// true` except the last. `None` when there are no symbols or no function there.
    pub fn lookup(&self, rva: u32) -> Option<Vec<SymbolFrame>> {
        self.pdb.as_ref()?.lookup(rva)
    }

    /// The global or static variable at or before `rva` in its section:
    /// `(variable rva, name)`; `None` without symbols or data symbols there.
    pub fn global_at(&self, rva: u32) -> Option<(u32, String)> {
        self.pdb
            .as_ref()?
            .globals()
            .find(rva)
            .map(|(start, name)| (start, name.to_owned()))
    }

    /// Every function the PDB knows, as `(start rva, end rva, name)`.
    pub fn functions(&self) -> Vec<(u32, Option<u32>, String)> {
        self.pdb.as_ref().map(|p| p.functions()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Verified(String, [u8; 16], u32),
    ByName(String),
}

type Slot = Arc<OnceLock<Arc<ModuleSymbols>>>;

/// Finds and opens PDBs for a whole run; share it by reference across threads.
pub struct Symbolizer {
    options: SymbolOptions,
    cache: Mutex<HashMap<CacheKey, Slot>>,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The dump-memory reader handed to [`Symbolizer::load`].
pub type MemoryReader<'a> = &'a dyn Fn(u64, usize) -> Option<Vec<u8>>;

impl Symbolizer {
    /// A symbolizer with an empty cache.
    pub fn new(options: SymbolOptions) -> Self {
        Self {
            options,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &SymbolOptions {
        &self.options
    }

    /// Finds, validates and opens the PDB of a module. Each distinct PDB is opened
    /// once per run (cache keyed by identity) and shared by every dump that uses it.
    /// `memory` lets the caller offer the dump's memory: given (address, len) it
    /// returns those bytes if the dump holds them.
    pub fn load(
        &self,
        module: &ModuleIdentity,
        memory: Option<MemoryReader<'_>>,
    ) -> Arc<ModuleSymbols> {
        let mut attempts = Vec::new();
        let identity = match &module.pdb {
            Some(id) => {
                // Only the file name matters; an empty one means "as the module".
                let mut id = id.clone();
                id.pdb_name = pe::file_name_of(&id.pdb_name).to_string();
                if id.pdb_name.is_empty() {
                    id.pdb_name = search::fallback_pdb_name(module);
                }
                Some(id)
            }
            None => search::identity_without_codeview(&self.options, module, memory, &mut attempts),
        };
        let key = match &identity {
            Some(id) => CacheKey::Verified(id.pdb_name.to_ascii_lowercase(), id.guid, id.age),
            None => CacheKey::ByName(search::fallback_pdb_name(module).to_ascii_lowercase()),
        };
        let slot = {
            let mut cache = match self.cache.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            cache.entry(key).or_default().clone()
        };
        let found = slot
            .get_or_init(|| {
                Arc::new(match &identity {
                    Some(id) => search::search_verified(&self.options, id),
                    None => {
                        search::search_by_name(&self.options, &search::fallback_pdb_name(module))
                    }
                })
            })
            .clone();
        if attempts.is_empty() {
            return found;
        }
        let mut own = (*found).clone();
        attempts.extend(own.searched);
        own.searched = attempts;
        Arc::new(own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizer_is_send_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<Symbolizer>();
        assert::<ModuleSymbols>();
    }
}
