//! Reading a PE image's CodeView (RSDS) identity: PDB file name, GUID and age.
//!
//! Works on two views of an image:
//!
//! * a **mapped** image, as it sits in a process and in a full minidump: every
//!   offset in the debug directory is an RVA from the module base
//!   ([`identity_from_memory`]);
//! * an image **file** on disk, where RVAs are translated to file offsets through
//!   the section table (or the debug entry's `PointerToRawData` is used)
//!   ([`identity_from_file`]).
//!
//! All arithmetic is checked and every read is bounds-checked; a truncated or
//! malformed image yields a [`PeError`], never a panic.

use super::PdbIdentity;
use thiserror::Error;

/// Why no CodeView identity could be read from an image.
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
    /// An arithmetic overflow while computing an offset.
    #[error("offset overflow in PE headers")]
    Overflow,
}

/// The CodeView identity plus the header fields used to sanity-check an image
/// against the dump's module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The RSDS record's PDB identity (file name only).
    pub pdb: PdbIdentity,
    /// `SizeOfImage` from the optional header.
    pub size_of_image: u32,
    /// `TimeDateStamp` from the file header.
    pub timestamp: u32,
}

const IMAGE_DEBUG_TYPE_CODEVIEW: u32 = 2;
const DEBUG_DIRECTORY_INDEX: u32 = 6;
/// Upper bounds that keep hostile headers from asking for huge reads.
const MAX_DEBUG_ENTRIES: u32 = 64;
const MAX_CODEVIEW_SIZE: u32 = 4096;
const MAX_SECTIONS: u16 = 256;

/// Reads the identity of an image mapped in memory at `base`; `read(address, len)`
/// returns the bytes there, or `None` when unavailable.
pub fn identity_from_memory(
    base: u64,
    read: &dyn Fn(u64, usize) -> Option<Vec<u8>>,
) -> Result<ImageInfo, PeError> {
    let reader = |rva: u64, len: usize| -> Result<Vec<u8>, PeError> {
        let addr = base.checked_add(rva).ok_or(PeError::Overflow)?;
        match read(addr, len) {
            Some(bytes) if bytes.len() >= len => Ok(bytes),
            _ => Err(PeError::Truncated { offset: rva, len }),
        }
    };
    parse(&reader, true)
}

/// Reads the identity of an image file's bytes.
pub fn identity_from_file(data: &[u8]) -> Result<ImageInfo, PeError> {
    let reader = |offset: u64, len: usize| -> Result<Vec<u8>, PeError> {
        let start = usize::try_from(offset).map_err(|_| PeError::Overflow)?;
        let end = start.checked_add(len).ok_or(PeError::Overflow)?;
        data.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or(PeError::Truncated { offset, len })
    };
    parse(&reader, false)
}

type Reader<'a> = dyn Fn(u64, usize) -> Result<Vec<u8>, PeError> + 'a;

fn u16_at(b: &[u8], at: usize) -> Result<u16, PeError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(PeError::Truncated {
            offset: at as u64,
            len: 2,
        })
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, PeError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(PeError::Truncated {
            offset: at as u64,
            len: 4,
        })
}

struct Section {
    virtual_address: u32,
    virtual_size: u32,
    raw_size: u32,
    raw_pointer: u32,
}

fn parse(read: &Reader<'_>, mapped: bool) -> Result<ImageInfo, PeError> {
    let dos = read(0, 64)?;
    if dos[0..2] != *b"MZ" {
        return Err(PeError::NoDosSignature);
    }
    let e_lfanew = u32_at(&dos, 0x3c)?;
    let nt = u64::from(e_lfanew);
    let sig_and_file_header = read(nt, 24)?;
    if sig_and_file_header[0..4] != *b"PE\0\0" {
        return Err(PeError::NoPeSignature(e_lfanew));
    }
    let number_of_sections = u16_at(&sig_and_file_header, 6)?;
    let timestamp = u32_at(&sig_and_file_header, 8)?;
    let size_of_optional = u16_at(&sig_and_file_header, 20)?;
    let opt_at = nt.checked_add(24).ok_or(PeError::Overflow)?;
    let opt = read(opt_at, usize::from(size_of_optional))?;
    let magic = u16_at(&opt, 0)?;
    let (count_at, dirs_at) = match magic {
        0x10b => (92usize, 96usize),
        0x20b => (108, 112),
        other => return Err(PeError::BadMagic(other)),
    };
    let size_of_image = u32_at(&opt, 56)?;
    let number_of_dirs = u32_at(&opt, count_at)?;
    if number_of_dirs <= DEBUG_DIRECTORY_INDEX {
        return Err(PeError::NoDebugDirectory);
    }
    let dir_at = dirs_at + 8 * DEBUG_DIRECTORY_INDEX as usize;
    let debug_rva = u32_at(&opt, dir_at).map_err(|_| PeError::NoDebugDirectory)?;
    let debug_size = u32_at(&opt, dir_at + 4).map_err(|_| PeError::NoDebugDirectory)?;
    if debug_rva == 0 || debug_size == 0 {
        return Err(PeError::NoDebugDirectory);
    }

    let sections = if mapped {
        Vec::new()
    } else {
        let table_at = opt_at
            .checked_add(u64::from(size_of_optional))
            .ok_or(PeError::Overflow)?;
        read_sections(read, table_at, number_of_sections.min(MAX_SECTIONS))?
    };
    let locate = |rva: u32| -> Result<u64, PeError> {
        if mapped {
            Ok(u64::from(rva))
        } else {
            rva_to_offset(&sections, rva)
        }
    };

    let entries = (debug_size / 28).min(MAX_DEBUG_ENTRIES);
    let table = read(locate(debug_rva)?, entries as usize * 28)?;
    for i in 0..entries as usize {
        let e = &table[i * 28..i * 28 + 28];
        if u32_at(e, 12)? != IMAGE_DEBUG_TYPE_CODEVIEW {
            continue;
        }
        let size = u32_at(e, 16)?.min(MAX_CODEVIEW_SIZE);
        let rva = u32_at(e, 20)?;
        let raw_pointer = u32_at(e, 24)?;
        let at = if mapped {
            u64::from(rva)
        } else if rva != 0 {
            rva_to_offset(&sections, rva).unwrap_or(u64::from(raw_pointer))
        } else {
            u64::from(raw_pointer)
        };
        if size < 24 {
            return Err(PeError::Truncated {
                offset: at,
                len: 24,
            });
        }
        let record = read(at, size as usize)?;
        return parse_rsds(&record).map(|pdb| ImageInfo {
            pdb,
            size_of_image,
            timestamp,
        });
    }
    Err(PeError::NoCodeView)
}

fn read_sections(read: &Reader<'_>, at: u64, count: u16) -> Result<Vec<Section>, PeError> {
    let bytes = read(at, usize::from(count) * 40)?;
    let mut out = Vec::with_capacity(usize::from(count));
    for s in bytes.chunks_exact(40) {
        out.push(Section {
            virtual_size: u32_at(s, 8)?,
            virtual_address: u32_at(s, 12)?,
            raw_size: u32_at(s, 16)?,
            raw_pointer: u32_at(s, 20)?,
        });
    }
    Ok(out)
}

fn rva_to_offset(sections: &[Section], rva: u32) -> Result<u64, PeError> {
    for s in sections {
        let span = s.virtual_size.max(s.raw_size);
        let Some(end) = s.virtual_address.checked_add(span) else {
            continue;
        };
        if rva >= s.virtual_address && rva < end {
            let delta = rva - s.virtual_address;
            if delta >= s.raw_size {
                break;
            }
            return u64::from(s.raw_pointer)
                .checked_add(u64::from(delta))
                .ok_or(PeError::Overflow);
        }
    }
    Err(PeError::RvaNotMapped(rva))
}

/// Parses an RSDS record: `"RSDS"`, GUID (16 bytes), age (u32), NUL-terminated path.
pub fn parse_rsds(record: &[u8]) -> Result<PdbIdentity, PeError> {
    let sig: [u8; 4] = record
        .get(0..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(PeError::Truncated { offset: 0, len: 4 })?;
    if &sig != b"RSDS" {
        return Err(PeError::NotRsds(sig));
    }
    let guid: [u8; 16] = record
        .get(4..20)
        .and_then(|s| s.try_into().ok())
        .ok_or(PeError::Truncated { offset: 4, len: 16 })?;
    let age = u32_at(record, 20)?;
    let path_bytes = &record[24..];
    let end = path_bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(path_bytes.len());
    let path = String::from_utf8_lossy(&path_bytes[..end]);
    Ok(PdbIdentity {
        pdb_name: file_name_of(&path).to_string(),
        guid,
        age,
    })
}

/// The last component of a Windows or Unix path.
pub fn file_name_of(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            identity_from_file(b""),
            Err(PeError::Truncated { offset: 0, len: 64 })
        );
        assert_eq!(identity_from_file(&[0u8; 64]), Err(PeError::NoDosSignature));
        let mut mz = vec![0u8; 128];
        mz[0] = b'M';
        mz[1] = b'Z';
        mz[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(identity_from_file(&mz).is_err());
        let read = |_a: u64, _l: usize| -> Option<Vec<u8>> { None };
        assert!(identity_from_memory(u64::MAX - 4, &read).is_err());
    }

    #[test]
    fn rsds_name_is_file_name() {
        let mut r = b"RSDS".to_vec();
        r.extend_from_slice(&[7u8; 16]);
        r.extend_from_slice(&3u32.to_le_bytes());
        r.extend_from_slice(b"C:\\build\\x64/odbcvend.pdb\0junk");
        let id = parse_rsds(&r).unwrap();
        assert_eq!(id.pdb_name, "odbcvend.pdb");
        assert_eq!(id.age, 3);
        assert_eq!(id.guid, [7u8; 16]);
    }
}
