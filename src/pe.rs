//! PE images (PE32 and PE32+), read through the `object` crate: the headers, the
//! CodeView (RSDS) record of the debug directory, and where the version resource is.
//! [`crate::symbols::pe`] makes PDB identities of the CodeView record and
//! [`crate::dump::pe_version`] reads the version resource's strings.
//!
//! An image comes in one of two layouts:
//!
//! * **mapped**, as it sits in a process and in a full minidump: every RVA is an
//!   offset from the module base ([`ImageBytes::mapped`], given a reader of `len`
//!   bytes at an RVA). Only the parts parsed are read (through `object`'s
//!   [`ReadCache`]), never the whole image;
//! * **file**, an image on disk ([`ImageBytes::file`]): RVAs are translated to file
//!   offsets through the section table.
//!
//! `object` does the header, data-directory, section-table and resource-directory
//! parsing; this module adds the layout, the walk to the CodeView record and to the
//! first `RT_VERSION` resource, and caps on every size read from the image (a hostile
//! header must not make us read or allocate without bound). Anything truncated or
//! malformed is a [`PeError`], never a panic.

use debugid::DebugId;
use object::pe;
use object::read::coff::SectionTable;
use object::read::pe::{DataDirectories, ImageNtHeaders, ImageOptionalHeader, ResourceDirectory};
use object::read::{Bytes, ReadCache, ReadCacheOps, ReadRef};
use object::LittleEndian as LE;
use std::cell::Cell;
use std::ops::Range;
use thiserror::Error;

/// Why an image (or the part of it asked for) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeError {
    /// A read of `len` bytes at `offset` fell outside the data.
    #[error("truncated image: cannot read {len} bytes at {offset:#x}")]
    Truncated {
        /// Offset (RVA for mapped images, file offset otherwise).
        offset: u64,
        /// Bytes wanted.
        len: usize,
    },
    /// No `MZ` signature.
    #[error("not a PE image (no MZ signature)")]
    NoDosSignature,
    /// No `PE\0\0` signature at `e_lfanew`.
    #[error("not a PE image (no PE signature at {0:#x})")]
    NoPeSignature(u32),
    /// Optional header magic is neither PE32 nor PE32+.
    #[error("unknown optional header magic {0:#x}")]
    BadMagic(u16),
    /// Headers or tables that `object` rejected, with its reason.
    #[error("malformed image: {0}")]
    Malformed(String),
    /// The image has no debug directory.
    #[error("image has no debug directory")]
    NoDebugDirectory,
    /// The debug directory has no CodeView entry.
    #[error("image has no CodeView debug entry")]
    NoCodeView,
    /// The CodeView entry is not an RSDS (PDB 7.0) record.
    #[error("CodeView record is not RSDS (signature {0:02x?})")]
    NotRsds([u8; 4]),
    /// An RVA is not inside any section of the image file.
    #[error("RVA {0:#x} is not in any section of the image file")]
    RvaNotMapped(u32),
    /// The image has no resource directory, or no version resource in it.
    #[error("image has no version resource")]
    NoVersionResource,
}

/// Debug directory entries looked at.
const MAX_DEBUG_ENTRIES: u32 = 64;
/// The largest CodeView record read.
const MAX_CODEVIEW_SIZE: u32 = 4096;
/// The most of the resource directory read: the directory tables come first in
/// the section, the resource data after them.
const MAX_RESOURCE_DIRECTORY: u32 = 1 << 20;
/// The prefixes of a mapped image's resource directory read in turn, until the
/// tables on the way to the version resource are all in one.
const RESOURCE_DIRECTORY_PREFIXES: [u32; 3] = [4096, 64 * 1024, MAX_RESOURCE_DIRECTORY];
/// The largest version resource read.
pub const MAX_VERSION_RESOURCE: u32 = 64 * 1024;
/// Entries read from one resource directory table.
const MAX_RESOURCE_ENTRIES: usize = 4096;
/// Offsets of a mapped image are RVAs: 32 bits.
const MAPPED_LEN: u64 = 1 << 32;

/// `len` bytes at image offset `rva` of a mapped image, or `None` when they are not
/// available.
pub type MappedReader<'r> = &'r dyn Fn(u64, usize) -> Option<Vec<u8>>;

/// `object`'s [`ReadCacheOps`] over a mapped image's reader.
struct MappedOps<'r> {
    read: MappedReader<'r>,
    pos: u64,
}

impl ReadCacheOps for MappedOps<'_> {
    fn len(&mut self) -> Result<u64, ()> {
        Ok(MAPPED_LEN)
    }

    fn seek(&mut self, pos: u64) -> Result<u64, ()> {
        self.pos = pos;
        Ok(pos)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        self.read_exact(buf).map(|()| buf.len())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ()> {
        let bytes = (self.read)(self.pos, buf.len()).ok_or(())?;
        buf.copy_from_slice(bytes.get(..buf.len()).ok_or(())?);
        self.pos = self.pos.checked_add(buf.len() as u64).ok_or(())?;
        Ok(())
    }
}

enum Data<'r> {
    File(&'r [u8]),
    Mapped(ReadCache<MappedOps<'r>>),
}

/// The bytes of one image, in either layout; [`ImageBytes::parse`] reads its headers.
pub struct ImageBytes<'r> {
    data: Data<'r>,
    /// The last read that failed, to report a truncation precisely.
    missed: Cell<Option<(u64, u64)>>,
}

impl<'r> ImageBytes<'r> {
    /// An image file's bytes.
    pub fn file(bytes: &'r [u8]) -> Self {
        Self {
            data: Data::File(bytes),
            missed: Cell::new(None),
        }
    }

    /// A mapped image, read on demand: `read(rva, len)`.
    pub fn mapped(read: MappedReader<'r>) -> Self {
        Self {
            data: Data::Mapped(ReadCache::new(MappedOps { read, pos: 0 })),
            missed: Cell::new(None),
        }
    }

    fn source(&self) -> Source<'_, 'r> {
        Source { bytes: self }
    }

    /// Runs one `object` call; a failed read it made becomes [`PeError::Truncated`],
    /// any other failure `other(object's message)`.
    fn attempt<T>(
        &self,
        call: impl FnOnce() -> object::read::Result<T>,
        other: impl FnOnce(String) -> PeError,
    ) -> Result<T, PeError> {
        self.missed.set(None);
        call().map_err(|e| match self.missed.take() {
            Some((offset, len)) => truncated(offset, len),
            None => other(e.to_string()),
        })
    }

    /// Parses the DOS and NT headers, the data directories and (for a file) the
    /// section table.
    pub fn parse(&self) -> Result<Image<'_, 'r>, PeError> {
        let source = self.source();
        let dos = self.attempt(
            || pe::ImageDosHeader::parse(source),
            |_| PeError::NoDosSignature,
        )?;
        let nt = dos.nt_headers_offset();
        let magic = self.attempt(
            || object::read::pe::optional_header_magic(source),
            |_| PeError::NoPeSignature(nt),
        )?;
        match magic {
            pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => self.parse_nt::<pe::ImageNtHeaders32>(nt),
            pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => self.parse_nt::<pe::ImageNtHeaders64>(nt),
            other => Err(PeError::BadMagic(other)),
        }
    }

    fn parse_nt<Pe: ImageNtHeaders>(&self, nt: u32) -> Result<Image<'_, 'r>, PeError> {
        let source = self.source();
        let mut offset = u64::from(nt);
        let (headers, directories) =
            self.attempt(|| Pe::parse(source, &mut offset), PeError::Malformed)?;
        let mapped = matches!(self.data, Data::Mapped(_));
        // A mapped image needs no section table to read (its RVAs are its offsets);
        // it is kept when present, to name the section an address lies in.
        let sections = if mapped {
            self.attempt(|| headers.sections(source, offset), PeError::Malformed)
                .unwrap_or_default()
        } else {
            self.attempt(|| headers.sections(source, offset), PeError::Malformed)?
        };
        let optional = headers.optional_header();
        Ok(Image {
            bytes: self,
            mapped,
            size_of_image: optional.size_of_image(),
            size_of_headers: optional.size_of_headers(),
            timestamp: headers.file_header().time_date_stamp.get(LE),
            directories,
            sections,
        })
    }
}

fn truncated(offset: u64, len: u64) -> PeError {
    PeError::Truncated {
        offset,
        len: usize::try_from(len).unwrap_or(usize::MAX),
    }
}

/// The [`ReadRef`] handed to `object`: the image's bytes, recording failed reads.
#[derive(Clone, Copy)]
struct Source<'b, 'r> {
    bytes: &'b ImageBytes<'r>,
}

impl<'b> ReadRef<'b> for Source<'b, '_> {
    fn len(self) -> Result<u64, ()> {
        match &self.bytes.data {
            Data::File(b) => Ok(b.len() as u64),
            Data::Mapped(_) => Ok(MAPPED_LEN),
        }
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'b [u8], ()> {
        let got = match &self.bytes.data {
            Data::File(b) => b.read_bytes_at(offset, size),
            Data::Mapped(cache) => cache.read_bytes_at(offset, size),
        };
        if got.is_err() {
            self.bytes.missed.set(Some((offset, size)));
        }
        got
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'b [u8], ()> {
        let got = match &self.bytes.data {
            Data::File(b) => b.read_bytes_at_until(range.clone(), delimiter),
            Data::Mapped(cache) => cache.read_bytes_at_until(range.clone(), delimiter),
        };
        if got.is_err() {
            self.bytes
                .missed
                .set(Some((range.start, range.end.saturating_sub(range.start))));
        }
        got
    }
}

/// A PE image whose headers parsed.
pub struct Image<'b, 'r> {
    bytes: &'b ImageBytes<'r>,
    mapped: bool,
    size_of_image: u32,
    size_of_headers: u32,
    timestamp: u32,
    directories: DataDirectories<'b>,
    sections: SectionTable<'b>,
}

/// One entry of an image's section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeSection {
    /// `.data`, `.bss`…, as the table spells it (8 bytes at most).
    pub name: String,
    /// `[rva, end)` in the mapped image.
    pub rva: u32,
    pub end: u32,
    pub writable: bool,
}

/// An image's CodeView (RSDS, PDB 7.0) record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeView {
    /// The PDB path as the linker wrote it.
    pub pdb_path: String,
    /// GUID and age.
    pub debug_id: DebugId,
}

impl<'b> Image<'b, '_> {
    /// `SizeOfImage` from the optional header.
    pub fn size_of_image(&self) -> u32 {
        self.size_of_image
    }

    /// The section table: name, RVA range and whether the section is writable.
    pub fn sections(&self) -> Vec<PeSection> {
        self.sections
            .iter()
            .map(|s| {
                let name =
                    String::from_utf8_lossy(s.name.split(|&b| b == 0).next().unwrap_or_default())
                        .into_owned();
                let rva = s.virtual_address.get(LE);
                let size = s.virtual_size.get(LE).max(s.size_of_raw_data.get(LE));
                PeSection {
                    name,
                    rva,
                    end: rva.saturating_add(size),
                    writable: s.characteristics.get(LE).0 & pe::IMAGE_SCN_MEM_WRITE.0 != 0,
                }
            })
            .collect()
    }

    /// `TimeDateStamp` from the file header.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The offset in the image's data of `len` bytes at `rva`.
    fn offset_of(&self, rva: u32, len: u32) -> Result<u64, PeError> {
        if self.mapped {
            return Ok(u64::from(rva));
        }
        if let Some((offset, remaining)) = self.sections.pe_file_range_at(rva) {
            return if len <= remaining {
                Ok(u64::from(offset))
            } else {
                Err(truncated(u64::from(offset), u64::from(len)))
            };
        }
        match rva.checked_add(len) {
            Some(end) if end <= self.size_of_headers => Ok(u64::from(rva)),
            _ => Err(PeError::RvaNotMapped(rva)),
        }
    }

    /// `len` bytes at `offset` of the image's data.
    fn read_at(&self, offset: u64, len: u32) -> Result<&'b [u8], PeError> {
        self.bytes
            .source()
            .read_bytes_at(offset, u64::from(len))
            .map_err(|()| truncated(offset, u64::from(len)))
    }

    /// `len` bytes at `rva`.
    fn read_rva(&self, rva: u32, len: u32) -> Result<&'b [u8], PeError> {
        self.read_at(self.offset_of(rva, len)?, len)
    }

    /// The RVA and size of data directory `index`, when present and not empty.
    fn directory(&self, index: usize) -> Option<(u32, u32)> {
        let (rva, size) = self.directories.get(index)?.address_range();
        (size != 0).then_some((rva, size))
    }

    /// The first CodeView entry of the debug directory, which must be RSDS.
    pub fn codeview(&self) -> Result<CodeView, PeError> {
        let (rva, size) = self
            .directory(pe::IMAGE_DIRECTORY_ENTRY_DEBUG)
            .ok_or(PeError::NoDebugDirectory)?;
        let entry_size = std::mem::size_of::<pe::ImageDebugDirectory>() as u32;
        // A size past the end of the section is clamped to the section in a file.
        let size = match self.sections.pe_file_range_at(rva) {
            Some((_, remaining)) if !self.mapped => size.min(remaining),
            _ => size,
        };
        let count = (size / entry_size).min(MAX_DEBUG_ENTRIES);
        let table = self.read_rva(rva, count * entry_size)?;
        let (entries, _) =
            object::pod::slice_from_bytes::<pe::ImageDebugDirectory>(table, count as usize)
                .map_err(|()| truncated(u64::from(rva), u64::from(count * entry_size)))?;
        let entry = entries
            .iter()
            .find(|e| e.typ.get(LE) == pe::IMAGE_DEBUG_TYPE_CODEVIEW)
            .ok_or(PeError::NoCodeView)?;
        let mut size = entry.size_of_data.get(LE).min(MAX_CODEVIEW_SIZE);
        let rva = entry.address_of_raw_data.get(LE);
        let raw_pointer = u64::from(entry.pointer_to_raw_data.get(LE));
        let at = if self.mapped {
            u64::from(rva)
        } else {
            // In a file, a size past the end of the section is clamped to it.
            match self.sections.pe_file_range_at(rva) {
                Some((offset, remaining)) if rva != 0 => {
                    size = size.min(remaining);
                    u64::from(offset)
                }
                _ => raw_pointer,
            }
        };
        if size < 24 {
            return Err(truncated(at, 24));
        }
        parse_rsds(self.read_at(at, size)?)
    }

    /// The bytes of the first `RT_VERSION` resource (first name, first language),
    /// at most [`MAX_VERSION_RESOURCE`] of them.
    pub fn version_resource(&self) -> Result<&'b [u8], PeError> {
        let (rva, size) = self
            .directory(pe::IMAGE_DIRECTORY_ENTRY_RESOURCE)
            .ok_or(PeError::NoVersionResource)?;
        let size = size.min(MAX_RESOURCE_DIRECTORY);
        if !self.mapped {
            // All of it, up to the end of the section that holds it.
            let size = match self.sections.pe_file_range_at(rva) {
                Some((_, remaining)) => size.min(remaining),
                None => size,
            };
            return self.find_version(self.read_rva(rva, size)?);
        }
        // From dump memory, growing prefixes: the tables come first, and the version
        // resource's are usually near the start.
        let mut result = Err(PeError::NoVersionResource);
        for prefix in RESOURCE_DIRECTORY_PREFIXES {
            let len = prefix.min(size);
            result = self.read_rva(rva, len).and_then(|d| self.find_version(d));
            if !matches!(result, Err(PeError::Malformed(_))) || len == size {
                break;
            }
        }
        result
    }

    /// Walks the resource directory `data` to the first `RT_VERSION` resource.
    /// A table outside `data` is [`PeError::Malformed`].
    fn find_version(&self, data: &'b [u8]) -> Result<&'b [u8], PeError> {
        let directory = ResourceDirectory::new(data);
        let malformed = |e: object::read::Error| PeError::Malformed(e.to_string());
        let types = directory.root().map_err(malformed)?;
        let names = types
            .entries
            .iter()
            .take(MAX_RESOURCE_ENTRIES)
            .find(|e| !e.has_name() && e.name_or_id().id() == Some(pe::RT_VERSION))
            .ok_or(PeError::NoVersionResource)?
            .data(directory)
            .map_err(malformed)?
            .table()
            .ok_or(PeError::NoVersionResource)?;
        // Three fixed levels (type, name, language): no recursion.
        for name in names.entries.iter().take(MAX_RESOURCE_ENTRIES) {
            let Some(languages) = name.data(directory).map_err(malformed)?.table() else {
                continue;
            };
            for language in languages.entries.iter().take(MAX_RESOURCE_ENTRIES) {
                let Some(data) = language.data(directory).map_err(malformed)?.data() else {
                    continue;
                };
                let len = data.size.get(LE).min(MAX_VERSION_RESOURCE);
                return self.read_rva(data.offset_to_data.get(LE), len);
            }
        }
        Err(PeError::NoVersionResource)
    }
}

/// Parses an RSDS record: `"RSDS"`, GUID (16 bytes), age (u32), NUL-terminated path
/// (a record without the NUL ends at the record's end).
pub fn parse_rsds(record: &[u8]) -> Result<CodeView, PeError> {
    let mut bytes = Bytes(record);
    let signature = bytes.read::<[u8; 4]>().map_err(|()| truncated(0, 4))?;
    if signature != b"RSDS" {
        return Err(PeError::NotRsds(*signature));
    }
    let guid = bytes.read::<[u8; 16]>().map_err(|()| truncated(4, 16))?;
    let age = bytes
        .read::<object::U32<LE>>()
        .map_err(|()| truncated(20, 4))?
        .get(LE);
    let path = bytes.0.split(|&b| b == 0).next().unwrap_or_default();
    Ok(CodeView {
        pdb_path: String::from_utf8_lossy(path).into_owned(),
        debug_id: DebugId::from_guid_age(guid, age).map_err(|_| truncated(4, 16))?,
    })
}

/// The little-endian `u16` at `at`, if `b` holds it.
pub(crate) fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn put32(image: &mut [u8], at: usize, value: u32) {
        put(image, at, &value.to_le_bytes());
    }

    /// A mapped PE32+ image with no sections whose resource directory (at RVA
    /// 0x1000) keeps the version resource's name and language tables `gap` bytes
    /// after the root table.
    fn image_with_far_tables(gap: usize) -> Vec<u8> {
        let resources = 0x1000;
        let version = resources + gap + 0x100;
        let sample = SAMPLE;
        let mut image = vec![0u8; version + sample.len()];
        put(&mut image, 0, b"MZ");
        put32(&mut image, 0x3c, 0x40);
        put(&mut image, 0x40, b"PE\0\0");
        put(&mut image, 0x44, &0x8664u16.to_le_bytes());
        put(&mut image, 0x54, &240u16.to_le_bytes()); // SizeOfOptionalHeader
        let optional = 0x58;
        put(&mut image, optional, &0x20bu16.to_le_bytes());
        let size_of_image = image.len() as u32;
        put32(&mut image, optional + 56, size_of_image);
        put32(&mut image, optional + 60, 0x200); // SizeOfHeaders
        put32(&mut image, optional + 108, 16); // NumberOfRvaAndSizes
        put32(&mut image, optional + 112 + 16, resources as u32);
        put32(
            &mut image,
            optional + 112 + 20,
            (version - resources) as u32,
        );
        // Root: one ID entry, RT_VERSION → the name table at `gap`.
        let table = |image: &mut Vec<u8>, at: usize, id: u32, target: u32| {
            put(image, resources + at + 14, &1u16.to_le_bytes());
            put32(image, resources + at + 16, id);
            put32(image, resources + at + 20, target);
        };
        table(&mut image, 0, 16, 0x8000_0000 | gap as u32);
        table(&mut image, gap, 1, 0x8000_0000 | (gap + 24) as u32);
        table(&mut image, gap + 24, 0x409, (gap + 48) as u32);
        put32(&mut image, resources + gap + 48, version as u32);
        put32(&mut image, resources + gap + 52, sample.len() as u32);
        put(&mut image, version, sample);
        image
    }

    /// The resource's bytes in [`image_with_far_tables`].
    const SAMPLE: &[u8] = b"VS_VERSION_INFO, or any bytes";

    /// Finds the version resource of a mapped `image`, returning it and the bytes
    /// asked of the reader.
    fn read_counting(image: &[u8]) -> (Option<Vec<u8>>, usize) {
        let asked = RefCell::new(0);
        let read = |rva: u64, len: usize| {
            *asked.borrow_mut() += len;
            let start = usize::try_from(rva).ok()?;
            image
                .get(start..start.checked_add(len)?)
                .map(<[u8]>::to_vec)
        };
        let bytes = ImageBytes::mapped(&read);
        let found = bytes
            .parse()
            .and_then(|i| i.version_resource().map(<[u8]>::to_vec));
        (found.ok(), asked.into_inner())
    }

    #[test]
    fn a_mapped_image_is_read_in_parts_and_far_tables_in_longer_prefixes() {
        let (near, asked) = read_counting(&image_with_far_tables(0x100));
        assert_eq!(near.as_deref(), Some(SAMPLE));
        // Headers, the first 4 KiB of the resource directory and the resource.
        assert!(asked < 0x1000 + 0x400, "{asked} bytes read");
        let (far, asked) = read_counting(&image_with_far_tables(0x8000));
        assert_eq!(far.as_deref(), Some(SAMPLE));
        assert!(asked < 0x1000 + 0x400 + 0x10000, "{asked} bytes read");
        let (too_far, _) = read_counting(&image_with_far_tables(0x10_0000));
        assert_eq!(too_far, None, "beyond MAX_RESOURCE_DIRECTORY");
    }

    #[test]
    fn rsds_records_short_or_without_nul() {
        let mut r = b"RSDS".to_vec();
        r.extend_from_slice(&[1u8; 16]);
        assert_eq!(
            parse_rsds(&r),
            Err(PeError::Truncated { offset: 20, len: 4 })
        );
        r.extend_from_slice(&2u32.to_le_bytes());
        r.extend_from_slice(b"a.pdb");
        let cv = parse_rsds(&r).unwrap();
        assert_eq!(cv.pdb_path, "a.pdb");
        assert_eq!(cv.debug_id.appendix(), 2);
        assert_eq!(
            parse_rsds(b"NB10xxxxxxxxxxxxxxxxxxxx"),
            Err(PeError::NotRsds(*b"NB10"))
        );
        assert_eq!(
            parse_rsds(b"RS"),
            Err(PeError::Truncated { offset: 0, len: 4 })
        );
    }
}
