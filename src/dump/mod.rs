//! Reading minidumps: the file is memory-mapped once and parsed with the `minidump`
//! crate; the allocation stream is read in place by [`stream::AllocationStream`].
//!
//! [`DumpFile`] turns the dump's standard streams into the model's types
//! ([`crate::model::ProcessInfo`], [`crate::model::ModuleMap`]); every error it returns
//! names the file and what in it was wrong.

pub mod inspect;
pub mod memory;
pub mod module_strings;
pub mod pe_version;
pub mod stream;
pub mod tracker_regions;
pub mod writer;

use crate::addr::VirtAddr;
use crate::model::{unix_to_rfc3339, DumpSource, Module, ModuleMap, PdbIdentity, ProcessInfo};
use memmap2::Mmap;
use minidump::{
    Minidump, MinidumpMiscInfo, MinidumpModuleList, MinidumpSystemInfo, MinidumpUnloadedModuleList,
    Module as _, UnifiedMemoryList,
};
use std::fs::File;
use std::path::{Path, PathBuf};
use stream::{AllocationStream, StreamError, ALLOCATION_STREAM_TYPE};
use thiserror::Error;

/// Why a dump could not be read. Every variant names the file.
#[derive(Debug, Error)]
pub enum DumpError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a minidump: {reason}")]
    NotMinidump { path: PathBuf, reason: String },
    #[error(
        "{path}: the stream directory entry for the allocation stream (0x{ALLOCATION_STREAM_TYPE:08x}) points outside the file (the dump is truncated?)"
    )]
    StreamOutsideFile { path: PathBuf },
    #[error("{path}: not a regular file ({kind}): only dump files are read")]
    NotRegularFile { path: PathBuf, kind: &'static str },
    #[error(
        "{path}: the stream directory holds {count} entries of the allocation stream's type 0x{ALLOCATION_STREAM_TYPE:08x} (directory entries {entries}); a dump holds at most one"
    )]
    DuplicateStream {
        path: PathBuf,
        count: usize,
        entries: String,
    },
    #[error("{path}: {source}")]
    Stream {
        path: PathBuf,
        source: Box<StreamError>,
    },
}

/// The PDB 7.0 identity of a module's CodeView record, from `minidump`'s debug
/// identifier and debug file (a nil GUID is no identity).
fn pdb_identity(m: &minidump::MinidumpModule) -> Option<PdbIdentity> {
    if !matches!(m.codeview_info, Some(minidump::CodeView::Pdb70(_))) {
        return None;
    }
    let id = m.debug_identifier()?;
    let pdb_name = Module::file_name_of(&m.debug_file()?).to_owned();
    (!pdb_name.is_empty()).then(|| PdbIdentity::from_debug_id(pdb_name, id))
}

/// The most one memory read may ask for: PE headers and resources are small, and
/// a count read from a dump must not make us allocate without bound.
pub const MAX_MEMORY_READ: usize = 1 << 20;

/// Reads `len` bytes at `addr` from the dump's memory, across adjacent regions.
pub fn read_memory(memory: &UnifiedMemoryList<'_>, addr: u64, len: usize) -> Option<Vec<u8>> {
    if len > MAX_MEMORY_READ {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    let mut at = addr;
    while out.len() < len {
        let region = memory.memory_at_address(at)?;
        let start = region.memory_range()?.start;
        let offset = usize::try_from(at.checked_sub(start)?).ok()?;
        let available = region.bytes().get(offset..)?;
        if available.is_empty() {
            return None;
        }
        let take = available.len().min(len - out.len());
        out.extend_from_slice(&available[..take]);
        at = at.checked_add(take as u64)?;
    }
    Some(out)
}

/// A read-only file mapping shared by the `minidump` parser and the readers that
/// need the file's bytes themselves (the memory lists, the allocation stream).
#[derive(Clone)]
pub struct MappedFile(std::sync::Arc<Mmap>);

impl std::ops::Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl MappedFile {
    /// Asks the kernel to map the pages of `bytes` (a part of this mapping) now, in
    /// one call, for a part that is about to be read whole: reading a 40 MB allocation
    /// table otherwise takes a page fault every 64 KiB. A hint: refused or unsupported
    /// (Linux before 5.14, other systems), the pages are faulted in as they are read.
    pub fn populate(&self, bytes: &[u8]) {
        #[cfg(target_os = "linux")]
        {
            let start = (bytes.as_ptr() as usize).wrapping_sub(self.0.as_ptr() as usize);
            if start
                .checked_add(bytes.len())
                .is_some_and(|end| end <= self.0.len())
            {
                let _ = self
                    .0
                    .advise_range(memmap2::Advice::PopulateRead, start, bytes.len());
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = bytes;
    }
}

/// The `minidump` crate's view of a mapped dump.
pub type MappedDump = Minidump<'static, MappedFile>;

/// One thread of the dump: what a pointer scan needs to tell its live stack from
/// dead frames, and its registers.
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    pub id: u32,
    /// Address of the thread environment block (0 when the dump has none).
    pub teb: u64,
    /// The captured stack: `[start, start + size)`.
    pub stack_start: u64,
    pub stack_size: u64,
    /// The stack pointer from the thread's context, when the context can be read.
    pub stack_pointer: Option<u64>,
    /// The general registers from the context, by name.
    pub registers: Vec<(&'static str, u64)>,
}

/// A memory-mapped minidump.
pub struct DumpFile {
    path: PathBuf,
    size: u64,
    directory: Vec<DirectoryEntry>,
    file: MappedFile,
    dump: MappedDump,
}

/// One entry of the minidump's stream directory, as the file has it (duplicates
/// included, which the `minidump` crate folds into one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub stream_type: u32,
    pub size: u32,
    pub rva: u32,
}

/// The stream directory's entries that lie inside the file, in file order.
fn raw_directory(bytes: &[u8]) -> Vec<DirectoryEntry> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(count), Some(rva)) = (u32_at(8), u32_at(12)) else {
        return Vec::new();
    };
    // Bounded by the file: an entry past its end ends the listing.
    (0..count as usize)
        .map_while(|i| {
            let at = (rva as usize).checked_add(i.checked_mul(12)?)?;
            Some(DirectoryEntry {
                stream_type: u32_at(at)?,
                size: u32_at(at + 4)?,
                rva: u32_at(at + 8)?,
            })
        })
        .collect()
}

fn describe_open_error(e: &minidump::Error) -> String {
    use minidump::Error as E;
    match e {
        E::MissingHeader => "the file is shorter than the 32-byte minidump header".into(),
        E::HeaderMismatch => "the header signature is not \"MDMP\"".into(),
        E::VersionMismatch => "the header's version field is not the minidump version 0xa793".into(),
        E::MissingDirectory => {
            "the stream directory (header fields stream_directory_rva and number_of_streams) reaches past the end of the file (the dump is truncated?)".into()
        }
        other => other.to_string(),
    }
}

/// What kind of file system entry `t` is, for an error message.
pub fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a folder"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

impl DumpFile {
    /// Maps and opens `path`. Only a regular file is opened: a named pipe, a device or
    /// a socket is refused before it is opened, so that reading cannot block.
    pub fn open(path: &Path) -> Result<Self, DumpError> {
        let io = |source| DumpError::Io {
            path: path.to_owned(),
            source,
        };
        let not_regular = |t: std::fs::FileType| DumpError::NotRegularFile {
            path: path.to_owned(),
            kind: file_kind(t),
        };
        let before = std::fs::metadata(path).map_err(io)?;
        if !before.is_file() {
            return Err(not_regular(before.file_type()));
        }
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        // Replaced between the check and the open: check what was opened.
        if !meta.is_file() {
            return Err(not_regular(meta.file_type()));
        }
        let size = meta.len();
        // SAFETY: the mapping is read-only. As with any mapped input, a file truncated by
        // another process while we read it would fault; dumps are not written in place.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let directory = raw_directory(&map);
        let file = MappedFile(std::sync::Arc::new(map));
        let dump = Minidump::read(file.clone()).map_err(|e| DumpError::NotMinidump {
            path: path.to_owned(),
            reason: describe_open_error(&e),
        })?;
        Ok(DumpFile {
            path: path.to_owned(),
            size,
            directory,
            file,
            dump,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn source(&self) -> DumpSource {
        DumpSource::new(&self.path, self.size)
    }

    /// The stream directory as the file holds it, duplicates included.
    pub fn directory(&self) -> &[DirectoryEntry] {
        &self.directory
    }

    pub fn minidump(&self) -> &MappedDump {
        &self.dump
    }

    /// The whole file, as mapped.
    pub fn bytes(&self) -> &[u8] {
        &self.file
    }

    /// The memory the dump captured (MemoryListStream and Memory64ListStream), read
    /// in place; `None` when the dump has neither stream.
    pub fn memory(&self) -> Option<memory::DumpMemory<'_>> {
        let entries: Vec<(u32, u32, u32)> = self
            .directory
            .iter()
            .filter(|d| {
                matches!(
                    d.stream_type,
                    memory::MEMORY_LIST_STREAM | memory::MEMORY64_LIST_STREAM
                )
            })
            .map(|d| (d.stream_type, d.size, d.rva))
            .collect();
        (!entries.is_empty()).then(|| memory::DumpMemory::read(&self.file, &entries))
    }

    /// The dump's threads, with their stacks and registers (empty without a thread
    /// list).
    pub fn threads(&self) -> Vec<ThreadInfo> {
        let Ok(list) = self.dump.get_stream::<minidump::MinidumpThreadList>() else {
            return Vec::new();
        };
        let system = self.dump.get_stream::<MinidumpSystemInfo>().ok();
        let misc = self.dump.get_stream::<MinidumpMiscInfo>().ok();
        list.threads
            .iter()
            .map(|t| {
                let context = system.as_ref().and_then(|s| t.context(s, misc.as_ref()));
                ThreadInfo {
                    id: t.raw.thread_id,
                    teb: t.raw.teb,
                    stack_start: t.raw.stack.start_of_memory_range,
                    stack_size: u64::from(t.raw.stack.memory.data_size),
                    stack_pointer: context.as_ref().map(|c| c.get_stack_pointer()),
                    registers: context
                        .as_ref()
                        .map(|c| c.valid_registers().collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The allocation stream, `Ok(None)` when the dump has none.
    /// A dump with more than one directory entry of the stream's type is refused
    /// (docs/allocation-stream.md § 1): which one is meant cannot be known.
    pub fn allocation_stream(&self) -> Result<Option<AllocationStream<'_>>, DumpError> {
        let entries: Vec<usize> = self
            .directory
            .iter()
            .enumerate()
            .filter(|(_, d)| d.stream_type == ALLOCATION_STREAM_TYPE)
            .map(|(i, _)| i)
            .collect();
        match entries.len() {
            0 => return Ok(None),
            1 => {}
            count => {
                return Err(DumpError::DuplicateStream {
                    path: self.path.clone(),
                    count,
                    entries: entries
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
        let bytes = self
            .dump
            .get_raw_stream(ALLOCATION_STREAM_TYPE)
            .map_err(|_| DumpError::StreamOutsideFile {
                path: self.path.clone(),
            })?;
        // Every byte of the stream is read (the table once, in order): mapped at once.
        self.file.populate(bytes);
        AllocationStream::parse(bytes)
            .map(Some)
            .map_err(|source| DumpError::Stream {
                path: self.path.clone(),
                source: Box::new(source),
            })
    }

    /// The loaded and unloaded modules. A module list that cannot be read yields an
    /// empty list and a warning, since the rest of the dump may still be useful.
    pub fn modules(&self, warnings: &mut Vec<String>) -> ModuleMap {
        let mut modules = Vec::new();
        match self.dump.get_stream::<MinidumpModuleList>() {
            Ok(list) => {
                for m in list.iter() {
                    let debug_id = m
                        .debug_identifier()
                        .filter(|id| !id.is_nil())
                        .map(|id| id.breakpad().to_string());
                    modules.push(Module {
                        timestamp: m.raw.time_date_stamp,
                        debug_id,
                        debug_file: m.debug_file().map(|f| f.into_owned()),
                        version: m.version().map(|v| v.into_owned()),
                        pdb: pdb_identity(m),
                        ..Module::at(&m.name, VirtAddr(m.base_address()), m.size())
                    });
                }
            }
            Err(minidump::Error::StreamNotFound) => {
                warnings.push("the dump has no module list: frames cannot be attributed to modules".into())
            }
            Err(e) => warnings.push(format!("the dump's module list cannot be read ({e}): frames cannot be attributed to modules")),
        }
        match self.dump.get_stream::<MinidumpUnloadedModuleList>() {
            Ok(list) => {
                for m in list.iter() {
                    modules.push(Module {
                        unloaded: true,
                        timestamp: m.raw.time_date_stamp,
                        ..Module::at(&m.name, VirtAddr(m.base_address()), m.size())
                    });
                }
            }
            Err(minidump::Error::StreamNotFound) => {}
            Err(e) => warnings.push(format!(
                "the dump's unloaded-module list cannot be read ({e})"
            )),
        }
        ModuleMap::new(modules)
    }

    /// What the dump says about the process.
    pub fn process_info(&self, modules: &ModuleMap) -> ProcessInfo {
        let mut info = ProcessInfo {
            image: modules
                .modules()
                .iter()
                .find(|m| !m.unloaded)
                .map(|m| m.path.clone()),
            dump_time: unix_to_rfc3339(u64::from(self.dump.header.time_date_stamp)),
            ..Default::default()
        };
        if let Ok(sys) = self.dump.get_stream::<MinidumpSystemInfo>() {
            info.arch = Some(sys.cpu.to_string());
            info.os = Some(sys.os.to_string());
            let r = &sys.raw;
            let mut version = format!("{}.{}.{}", r.major_version, r.minor_version, r.build_number);
            if let Some(csd) = sys.csd_version().filter(|s| !s.is_empty()) {
                version.push(' ');
                version.push_str(&csd);
            }
            info.os_version = Some(version);
        }
        if let Ok(misc) = self.dump.get_stream::<MinidumpMiscInfo>() {
            info.pid = misc.raw.process_id().copied();
            info.process_create_time = misc
                .raw
                .process_create_time()
                .and_then(|&t| unix_to_rfc3339(u64::from(t)));
        }
        info
    }
}
