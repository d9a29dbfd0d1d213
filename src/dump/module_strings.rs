//! The module-strings section of the allocation stream (format 1.2, optional): for each
//! module loaded when the tracker took its snapshot, the version-resource strings a
//! report needs (company, product, description, file and product version), read by
//! the tracker inside the process. A minidump holds no version resources unless it
//! holds the images' memory, so without this section a report names a module's vendor
//! only when the image is found in an `--images` folder.
//!
//! The section is found through two header fields after byte 96
//! (`docs/allocation-stream.md` § 13). It is hostile input like the rest of the dump:
//! [`module_strings`] checks its location, its record count against its size (before
//! allocating anything), every record's bounds, every string's length
//! ([`MAX_MODULE_STRING`]) and encoding, and names the field of the first broken rule.
//! A broken section does not refuse the stream: it is left out whole, with a warning.

use super::stream::{u16_at, u32_at, u64_at, AllocationStream};
use crate::addr::VirtAddr;
use crate::model::VersionStrings;
use thiserror::Error;

/// Header offset of `module_strings_offset` (8 bytes).
pub const MODULE_STRINGS_OFFSET_FIELD: usize = 96;
/// Header offset of `module_strings_size` (8 bytes).
pub const MODULE_STRINGS_SIZE_FIELD: usize = 104;
/// The smallest header that carries the two fields.
pub const MODULE_STRINGS_HEADER_SIZE: usize = 112;
/// The section's own header: `module_count` (4 bytes), reserved (4 bytes).
pub const SECTION_HEADER_SIZE: usize = 8;
/// The fixed part of a module record, before its strings.
pub const MODULE_RECORD_SIZE: usize = 24;
/// The longest string a record may hold, in bytes of UTF-8.
pub const MAX_MODULE_STRING: usize = 256;
/// The minor version that introduced the section.
pub const MODULE_STRINGS_MINOR: u16 = 2;

/// The five strings of a record, in their order in the record, by field name.
pub const STRING_FIELDS: [&str; 5] = [
    "company_name",
    "product_name",
    "file_description",
    "file_version",
    "product_version",
];

/// What the tracker found when it read a module's version resource (record byte 22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleStringsStatus {
    /// 0: the version resource was read; the strings are those it holds.
    Read,
    /// 1: the module's file has no version resource.
    NoResource,
    /// 2: the tracker could not read it (file not readable, path too long, …).
    NotRead,
    /// Any other value: read as [`ModuleStringsStatus::NotRead`] by meaning.
    Other(u8),
}

impl ModuleStringsStatus {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::Read,
            1 => Self::NoResource,
            2 => Self::NotRead,
            b => Self::Other(b),
        }
    }
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Read => 0,
            Self::NoResource => 1,
            Self::NotRead => 2,
            Self::Other(b) => b,
        }
    }
}

/// One module's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleStringsRecord<'a> {
    /// The module's base address, as in the dump's module list.
    pub base: VirtAddr,
    /// The module's image size as the tracker saw it; 0 when unknown.
    pub image_size: u32,
    pub status: ModuleStringsStatus,
    /// In [`STRING_FIELDS`] order; an empty string is absent.
    pub strings: [&'a str; 5],
}

impl ModuleStringsRecord<'_> {
    /// The strings as the model's [`VersionStrings`] (trimmed; empty ones `None`).
    pub fn version_strings(&self) -> VersionStrings {
        let s = |i: usize| {
            let t = self.strings[i].trim();
            (!t.is_empty()).then(|| t.to_owned())
        };
        VersionStrings {
            company_name: s(0),
            product_name: s(1),
            file_description: s(2),
            file_version: s(3),
            product_version: s(4),
        }
    }
}

/// The section, borrowed from the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleStrings<'a> {
    pub records: Vec<ModuleStringsRecord<'a>>,
}

impl<'a> ModuleStrings<'a> {
    /// The first record for the module at `base`.
    pub fn find(&self, base: VirtAddr) -> Option<&ModuleStringsRecord<'a>> {
        self.records.iter().find(|r| r.base == base)
    }
}

/// Why a module-strings section was left out. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModuleStringsError {
    #[error("module_strings_offset = {offset} is not 8-byte aligned")]
    Misaligned { offset: u64 },
    #[error("module-strings section outside the stream: module_strings_offset = {offset} + module_strings_size = {size} ends at {end}, but the stream is {len} bytes")]
    OutOfBounds {
        offset: u64,
        size: u64,
        end: u128,
        len: u64,
    },
    #[error("module_strings_size = {size} is smaller than the section's {SECTION_HEADER_SIZE}-byte header")]
    TooSmall { size: u64 },
    #[error("module_count = {count} records of at least {MODULE_RECORD_SIZE} bytes do not fit in module_strings_size = {size}")]
    CountTooLarge { count: u32, size: u64 },
    #[error("module record {index} at section offset {at} reaches past module_strings_size = {size} (its end: {end})")]
    RecordOutOfBounds {
        index: u32,
        at: u64,
        end: u64,
        size: u64,
    },
    #[error("module record {index}: {field} length = {length} bytes exceeds the limit of {MAX_MODULE_STRING}")]
    StringTooLong {
        index: u32,
        field: &'static str,
        length: u16,
    },
    #[error("module record {index}: {field} is not UTF-8 (invalid byte at {at})")]
    NotUtf8 {
        index: u32,
        field: &'static str,
        at: usize,
    },
}

/// The stream's module-strings section: `Ok(None)` when it has none (a header under
/// [`MODULE_STRINGS_HEADER_SIZE`] bytes, or `module_strings_offset` 0), `Err` naming
/// the first broken rule of § 13.
pub fn module_strings<'a>(
    stream: &AllocationStream<'a>,
) -> Result<Option<ModuleStrings<'a>>, ModuleStringsError> {
    parse_section(stream.bytes(), stream.header().header_size)
}

/// [`module_strings`] on the stream's bytes and its (already checked) header size.
pub fn parse_section(
    bytes: &[u8],
    header_size: u32,
) -> Result<Option<ModuleStrings<'_>>, ModuleStringsError> {
    if (header_size as usize) < MODULE_STRINGS_HEADER_SIZE
        || bytes.len() < MODULE_STRINGS_HEADER_SIZE
    {
        return Ok(None);
    }
    let offset = u64_at(bytes, MODULE_STRINGS_OFFSET_FIELD);
    let size = u64_at(bytes, MODULE_STRINGS_SIZE_FIELD);
    if offset == 0 {
        return Ok(None);
    }
    if !offset.is_multiple_of(8) {
        return Err(ModuleStringsError::Misaligned { offset });
    }
    let len = bytes.len() as u64;
    let Some(end) = offset.checked_add(size).filter(|&e| e <= len) else {
        return Err(ModuleStringsError::OutOfBounds {
            offset,
            size,
            end: u128::from(offset) + u128::from(size),
            len,
        });
    };
    if size < SECTION_HEADER_SIZE as u64 {
        return Err(ModuleStringsError::TooSmall { size });
    }
    // Both within the stream, whose length is a usize.
    let section = &bytes[offset as usize..end as usize];
    let count = u32_at(section, 0);
    let room = (section.len() - SECTION_HEADER_SIZE) as u64;
    if u64::from(count) * MODULE_RECORD_SIZE as u64 > room {
        return Err(ModuleStringsError::CountTooLarge { count, size });
    }
    // count × 24 fits in the section: the allocation is bounded by the stream.
    let mut records = Vec::with_capacity(count as usize);
    let mut at = SECTION_HEADER_SIZE;
    for index in 0..count {
        let head_end = at + MODULE_RECORD_SIZE;
        if head_end > section.len() {
            return Err(ModuleStringsError::RecordOutOfBounds {
                index,
                at: at as u64,
                end: head_end as u64,
                size,
            });
        }
        let head = &section[at..head_end];
        let mut lengths = [0u16; 5];
        for (i, field) in STRING_FIELDS.iter().enumerate() {
            let length = u16_at(head, 12 + 2 * i);
            if usize::from(length) > MAX_MODULE_STRING {
                return Err(ModuleStringsError::StringTooLong {
                    index,
                    field,
                    length,
                });
            }
            lengths[i] = length;
        }
        let total: usize = lengths.iter().map(|&l| usize::from(l)).sum();
        let strings_end = head_end + total;
        if strings_end > section.len() {
            return Err(ModuleStringsError::RecordOutOfBounds {
                index,
                at: at as u64,
                end: strings_end as u64,
                size,
            });
        }
        let mut strings = [""; 5];
        let mut s = head_end;
        for (i, field) in STRING_FIELDS.iter().enumerate() {
            let b = &section[s..s + usize::from(lengths[i])];
            strings[i] = std::str::from_utf8(b).map_err(|e| ModuleStringsError::NotUtf8 {
                index,
                field,
                at: e.valid_up_to(),
            })?;
            s += usize::from(lengths[i]);
        }
        records.push(ModuleStringsRecord {
            base: VirtAddr(u64_at(head, 0)),
            image_size: u32_at(head, 8),
            status: ModuleStringsStatus::from_byte(head[22]),
            strings,
        });
        at = strings_end.div_ceil(8) * 8;
    }
    Ok(Some(ModuleStrings { records }))
}
