//! Reading a PE image's CodeView (RSDS) identity: PDB file name, GUID and age.
//!
//! Works on two views of an image ([`crate::pe`] reads both through `object`):
//!
//! * a **mapped** image, as it sits in a process and in a full minidump: every
//!   offset in the debug directory is an RVA from the module base
//!   ([`identity_from_memory`]);
//! * an image **file** on disk, where RVAs are translated to file offsets through
//!   the section table (or the debug entry's `PointerToRawData` is used)
//!   ([`identity_from_file`]).
//!
//! A truncated or malformed image yields a [`PeError`], never a panic.

use super::PdbIdentity;
use crate::pe::{CodeView, ImageBytes};

pub use crate::model::file_name_of;
pub use crate::pe::PeError;

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

/// Reads the identity of an image mapped in memory at `base`; `read(address, len)`
/// returns the bytes there, or `None` when unavailable.
pub fn identity_from_memory(
    base: u64,
    read: &dyn Fn(u64, usize) -> Option<Vec<u8>>,
) -> Result<ImageInfo, PeError> {
    let at_rva = |rva: u64, len: usize| read(base.checked_add(rva)?, len);
    identity(&ImageBytes::mapped(&at_rva))
}

/// Reads the identity of an image file's bytes.
pub fn identity_from_file(data: &[u8]) -> Result<ImageInfo, PeError> {
    identity(&ImageBytes::file(data))
}

fn identity(bytes: &ImageBytes<'_>) -> Result<ImageInfo, PeError> {
    let image = bytes.parse()?;
    Ok(ImageInfo {
        pdb: pdb_identity(image.codeview()?),
        size_of_image: image.size_of_image(),
        timestamp: image.timestamp(),
    })
}

fn pdb_identity(cv: CodeView) -> PdbIdentity {
    PdbIdentity::from_debug_id(file_name_of(&cv.pdb_path), cv.debug_id)
}

/// Parses an RSDS record: `"RSDS"`, GUID (16 bytes), age (u32), NUL-terminated path.
pub fn parse_rsds(record: &[u8]) -> Result<PdbIdentity, PeError> {
    crate::pe::parse_rsds(record).map(pdb_identity)
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
