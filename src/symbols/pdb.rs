//! Opening and validating a PDB, and resolving addresses in it.
//!
//! # Threading design
//!
//! `pdb_addr2line::Context` borrows from a `ContextPdbData` and keeps its caches in
//! a `RefCell`, so a context is `Send` but not `Sync`: one context cannot serve two
//! threads at once. The PDB's bytes are therefore read (memory-mapped) **once per
//! run** and shared through an `Arc` ([`SharedBytes`]), and each [`OpenPdb`] owns a
//! small **pool of contexts** behind a `Mutex`. A lookup takes a context out of the
//! pool (or builds a new one from the shared bytes when the pool is empty), resolves
//! without holding the lock, and puts the context back. The pool thus grows to the
//! number of threads that ever looked up in this PDB at the same moment — one
//! context per PDB per worker thread — and each context keeps its own caches warm.
//! The mutex is held only for a `Vec::pop`/`push`, so threads never wait on each
//! other's lookups. (A `thread_local!` map would do the same but would keep contexts
//! alive after the `Symbolizer` is gone, and rayon threads outlive it.)
//!
//! Each context is a self-referential pair (`ContextPdbData` + `Context`) held with
//! the `self_cell` crate, so no `unsafe` code lives here.
//!
//! # Robustness
//!
//! The PDB parser works on untrusted files. Every fallible step is mapped to
//! [`PdbError`]; as a second line of defence, parser calls run under
//! `catch_unwind`, so a parser panic on a malformed file becomes an error (or a
//! failed lookup) instead of taking down the program. A context that panicked is
//! dropped, not returned to the pool.

use super::publics::PublicSymbols;
use super::SymbolFrame;
use pdb_addr2line::pdb::PDB;
use pdb_addr2line::{Context, ContextPdbData, TypeFormatterFlags};
use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Why a PDB could not be used.
#[derive(Debug, Clone, Error)]
pub enum PdbError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The file is not a valid PDB or is damaged.
    #[error("corrupt PDB: {0}")]
    Corrupt(String),
}

/// The bytes of a PDB, shared by all contexts built from it.
#[derive(Clone)]
pub struct SharedBytes(Arc<Backing>);

enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl SharedBytes {
    /// Memory-maps `path` (falling back to reading it when mapping fails).
    pub fn open(path: &Path) -> Result<Self, PdbError> {
        let io_err = |e: std::io::Error| PdbError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        // SAFETY: the map is read-only. A symbol file being truncated by another
        // process while we run is outside what we defend against (the same holds
        // for every debugger that maps PDBs).
        match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => Ok(Self(Arc::new(Backing::Mapped(map)))),
            Err(_) => std::fs::read(path).map(Self::from_vec).map_err(io_err),
        }
    }

    /// Wraps bytes already in memory (e.g. a download).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self(Arc::new(Backing::Owned(bytes)))
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        match &*self.0 {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.as_ref().len())
    }
}

/// GUID (Windows in-memory layout) and age recorded in a PDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdbSignature {
    /// From the PDB info stream.
    pub guid: [u8; 16],
    /// The DBI stream's age (the one the linker writes into the image), or the
    /// info stream's age when the DBI has none.
    pub age: u32,
    /// The info stream's age (may be higher than the image's after edits).
    pub info_age: u32,
}

impl PdbSignature {
    /// Whether this PDB belongs to an image with `guid`/`age`.
    pub fn matches(&self, guid: &[u8; 16], age: u32) -> bool {
        self.guid == *guid && self.age == age
    }
}

type Source = Cursor<SharedBytes>;
type PdbData = ContextPdbData<'static, 'static, Source>;
type Ctx<'a> = Context<'a, 'static>;

self_cell::self_cell!(
    struct Resolver {
        owner: PdbData,
        #[not_covariant]
        dependent: Ctx,
    }
);

thread_local! {
    /// Set while a parser call runs under [`catch_unwind`]: its panic is reported as
    /// one error line naming the PDB, so the panic hook must print nothing.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `std::panic::catch_unwind` with the panic hook silenced for this call on this
/// thread: a parser panic on a malformed PDB becomes the caller's one-line error,
/// never a "panicked at" line and a backtrace on stderr. Other threads' panics, and
/// this thread's outside the call, still reach the hook that was installed before.
pub(crate) fn catch_unwind<R>(
    f: impl FnOnce() -> R + std::panic::UnwindSafe,
) -> std::thread::Result<R> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    let was = QUIET_PANICS.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(f);
    QUIET_PANICS.with(|q| q.set(was));
    result
}

/// The first line of a caught panic's message: the error is one line.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let text = if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        return "the parser stopped on an internal error".to_string();
    };
    format!(
        "the parser stopped on an internal error: {}",
        text.lines().next().unwrap_or("")
    )
}

const MSF7_MAGIC: &[u8; 32] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";

/// Checks that an MSF 7.0 file is as long as its superblock says (a cut-off copy
/// or download otherwise parses "fine" until a lookup touches the missing part).
fn check_msf_length(data: &[u8]) -> Result<(), PdbError> {
    if data.len() < 52 || &data[..32] != MSF7_MAGIC {
        return Ok(()); // not MSF 7.0: left to the parser
    }
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let (block_size, blocks) = (u64::from(word(32)), u64::from(word(40)));
    let wanted = block_size.saturating_mul(blocks);
    if (data.len() as u64) < wanted {
        return Err(PdbError::Corrupt(format!(
            "truncated: the file has {} bytes but its header says {wanted}",
            data.len()
        )));
    }
    Ok(())
}

/// Reads the GUID and ages of a PDB without building a resolver.
pub fn read_signature(bytes: &SharedBytes) -> Result<PdbSignature, PdbError> {
    check_msf_length(bytes.as_ref())?;
    let bytes = bytes.clone();
    let result = catch_unwind(AssertUnwindSafe(move || {
        let mut pdb = PDB::open(Cursor::new(bytes))?;
        let info = pdb.pdb_information()?;
        let dbi = pdb.debug_information()?;
        Ok::<_, pdb_addr2line::pdb::Error>(PdbSignature {
            guid: info.guid.to_bytes_le(),
            age: dbi.age().unwrap_or(info.age),
            info_age: info.age,
        })
    }));
    match result {
        Ok(Ok(sig)) => Ok(sig),
        Ok(Err(e)) => Err(PdbError::Corrupt(e.to_string())),
        Err(p) => Err(PdbError::Corrupt(panic_message(p))),
    }
}

fn build_resolver(bytes: &SharedBytes) -> Result<Resolver, PdbError> {
    let bytes = bytes.clone();
    let result = catch_unwind(AssertUnwindSafe(move || {
        let pdb = PDB::open(Cursor::new(bytes)).map_err(|e| e.to_string())?;
        let data = ContextPdbData::try_from_pdb(pdb).map_err(|e| e.to_string())?;
        Resolver::try_new(data, |data| {
            // Names without argument lists, as llvm-symbolizer prints them.
            let flags = TypeFormatterFlags::default() | TypeFormatterFlags::NO_ARGUMENTS;
            data.make_context_with_formatter_flags(flags)
        })
        .map_err(|e| e.to_string())
    }));
    match result {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(PdbError::Corrupt(e)),
        Err(p) => Err(PdbError::Corrupt(panic_message(p))),
    }
}

/// A validated, opened PDB that resolves addresses from any number of threads.
pub struct OpenPdb {
    bytes: SharedBytes,
    signature: PdbSignature,
    publics: PublicSymbols,
    /// Data symbols, read on first use (only the reachability scan names globals).
    globals: std::sync::OnceLock<super::globals::GlobalData>,
    pool: Mutex<Vec<Resolver>>,
}

impl std::fmt::Debug for OpenPdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPdb")
            .field("bytes", &self.bytes)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl OpenPdb {
    /// Opens a PDB: reads its signature and builds a first resolver, so that a
    /// damaged file is reported now rather than at the first lookup.
    pub fn open(bytes: SharedBytes) -> Result<Self, PdbError> {
        let signature = read_signature(&bytes)?;
        let first = build_resolver(&bytes)?;
        let publics = catch_unwind(|| PublicSymbols::read(&bytes)).unwrap_or_default();
        Ok(Self {
            bytes,
            signature,
            publics,
            globals: std::sync::OnceLock::new(),
            pool: Mutex::new(vec![first]),
        })
    }

    /// The PDB's global and static variables.
    pub fn globals(&self) -> &super::globals::GlobalData {
        self.globals.get_or_init(|| {
            catch_unwind(|| super::globals::GlobalData::read(&self.bytes)).unwrap_or_default()
        })
    }

    /// The PDB's GUID and age.
    pub fn signature(&self) -> PdbSignature {
        self.signature
    }

    fn take(&self) -> Option<Resolver> {
        let pooled = match self.pool.lock() {
            Ok(mut pool) => pool.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        pooled.or_else(|| build_resolver(&self.bytes).ok())
    }

    fn give_back(&self, resolver: Resolver) {
        match self.pool.lock() {
            Ok(mut pool) => pool.push(resolver),
            Err(poisoned) => poisoned.into_inner().push(resolver),
        }
    }

    /// Frames at `rva`, innermost first (see [`super::ModuleSymbols::lookup`]).
    /// Addresses that no procedure names fall back to the nearest public symbol.
    pub fn lookup(&self, rva: u32) -> Option<Vec<SymbolFrame>> {
        let mut frames = self.lookup_procedures(rva);
        let public = self.publics.find(rva);
        if let Some(outer) = frames.as_mut().and_then(|f| f.last_mut()) {
            if outer.function != UNKNOWN {
                // A frame without line info came from a public symbol; where several
                // publics alias one address, name it as the fallback below would.
                if let (None, None, Some(offset), Some((start, name))) =
                    (&outer.file, outer.line, outer.function_offset, public)
                {
                    if rva.checked_sub(offset) == Some(start) {
                        outer.function = display_name(name);
                    }
                }
                return frames;
            }
        }
        match public {
            Some((start, name)) => Some(vec![SymbolFrame {
                function: display_name(name),
                function_offset: Some(rva - start),
                file: None,
                line: None,
                inlined: false,
            }]),
            None => frames,
        }
    }

    fn lookup_procedures(&self, rva: u32) -> Option<Vec<SymbolFrame>> {
        let resolver = self.take()?;
        let result = catch_unwind(AssertUnwindSafe(|| {
            resolver.with_dependent(|_, ctx| resolve(ctx, rva))
        }));
        match result {
            Ok(frames) => {
                self.give_back(resolver);
                frames
            }
            // A resolver whose parser panicked may hold broken caches: drop it.
            Err(_) => None,
        }
    }

    /// Every function the PDB knows: `(start rva, end rva, name)`, sorted by start.
    pub fn functions(&self) -> Vec<(u32, Option<u32>, String)> {
        let Some(resolver) = self.take() else {
            return Vec::new();
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            resolver.with_dependent(|_, ctx| {
                ctx.functions()
                    .map(|f| {
                        let name = f.name.as_deref().map(display_name).unwrap_or_default();
                        (f.start_rva, f.end_rva, name)
                    })
                    .collect::<Vec<_>>()
            })
        }));
        match result {
            Ok(list) => {
                self.give_back(resolver);
                list
            }
            Err(_) => Vec::new(),
        }
    }
}

/// The name given to a frame whose function has no name.
pub const UNKNOWN: &str = "<unknown>";

fn resolve(ctx: &Ctx<'_>, rva: u32) -> Option<Vec<SymbolFrame>> {
    let found = ctx.find_frames(rva).ok()??;
    let count = found.frames.len();
    let outer_offset = rva.checked_sub(found.start_rva);
    let frames: Vec<SymbolFrame> = found
        .frames
        .into_iter()
        .enumerate()
        .map(|(i, frame)| {
            let outer = i + 1 == count;
            SymbolFrame {
                function: frame
                    .function
                    .as_deref()
                    .map(display_name)
                    .unwrap_or_else(|| UNKNOWN.to_string()),
                function_offset: if outer { outer_offset } else { None },
                file: frame.file.map(|f| f.into_owned()),
                line: frame.line,
                inlined: !outer,
            }
        })
        .collect();
    let mut frames = frames;
    if let Some(outer) = frames.last_mut() {
        if outer.line.is_none() {
            // Inlined code scheduled before the outer function's first line-table row
            // has no row of its own in the outer function; name the function's first
            // row, as llvm-symbolizer and debuggers do.
            if let Some((file, line)) = first_row(ctx, found.start_rva, found.end_rva) {
                outer.file.get_or_insert(file);
                outer.line = Some(line);
            }
        }
    }
    (!frames.is_empty()).then_some(frames)
}

/// Bytes scanned from a function's start for its first line-table row.
const FIRST_ROW_SCAN: u32 = 256;

/// The file and line of the first line-table row of the function starting at
/// `start` (the outer frame's location at the first address that has one).
fn first_row(ctx: &Ctx<'_>, start: u32, end: Option<u32>) -> Option<(String, u32)> {
    let end = end.unwrap_or(start.saturating_add(FIRST_ROW_SCAN));
    let limit = end.min(start.saturating_add(FIRST_ROW_SCAN));
    (start..limit).find_map(|probe| {
        let found = ctx.find_frames(probe).ok()??;
        if found.start_rva != start {
            return None;
        }
        let outer = found.frames.into_iter().last()?;
        Some((outer.file?.into_owned(), outer.line?))
    })
}

/// Undecorates MSVC-mangled public-symbol names (`?foo@@YAXXZ` → `void foo(void)`-
/// style, name only); other names are returned as they are.
pub fn display_name(name: &str) -> String {
    if name.starts_with('?') {
        let flags = msvc_demangler::DemangleFlags::NAME_ONLY;
        if let Ok(d) = msvc_demangler::demangle(name, flags) {
            return d;
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A parser panic is silenced for the call that catches it, on its thread only;
    /// the hook installed before still sees every other panic.
    #[test]
    fn a_caught_parser_panic_prints_nothing() {
        static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let marker = format!("pdb-hook-test-{:?}", std::thread::current().id());
        let m = marker.clone();
        // Installed first, then wrapped by `catch_unwind`'s own hook.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            CALLS.fetch_add(1, Ordering::Relaxed);
            SEEN.lock()
                .unwrap()
                .push(info.payload_as_str().unwrap_or("").to_owned());
            previous(info);
        }));
        let quiet = catch_unwind(|| -> u32 { panic!("{m}-quiet") });
        let message = panic_message(quiet.unwrap_err());
        assert_eq!(
            message,
            format!("the parser stopped on an internal error: {marker}-quiet")
        );
        let loud = std::panic::catch_unwind(|| -> u32 { panic!("{marker}-loud") });
        assert!(loud.is_err());
        let seen = SEEN.lock().unwrap().clone();
        assert!(
            !seen.iter().any(|s| s == &format!("{marker}-quiet")),
            "{seen:?}"
        );
        assert!(
            seen.iter().any(|s| s == &format!("{marker}-loud")),
            "{seen:?}"
        );
    }
}
