//! Expanding compressed store files (`<name>.pd_`), as `symstore /compress` and
//! many company symbol servers store PDBs: a Windows cabinet (CAB) holding the one
//! file `<name>.pdb`.
//!
//! The cabinet is read with the [`cab`] crate, which decodes uncompressed, MSZIP
//! (what `symstore` and `gcab -z` write) and LZX folders; Quantum is refused.
//!
//! A store file comes from a folder or a server we do not control, so expansion is
//! defensive: the cabinet must hold exactly one file; the size its header claims
//! must not exceed the caller's limit; the data are streamed to the caller's
//! writer (a file on disk), never collected in memory, and at most `limit` bytes
//! are written whatever the data say; a file that expands to fewer bytes than its
//! header claims (a cut-off cabinet) is an error. Decoder panics on malformed
//! input become errors too.

use std::io::{self, Read, Seek, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use thiserror::Error;

/// The largest expanded PDB accepted from a store file: a cabinet's per-file size
/// field is 32 bits, so this is also the most a valid cabinet can claim.
pub const MAX_EXPANDED_SIZE: u64 = u32::MAX as u64;

/// The first four bytes of every cabinet.
pub const CAB_SIGNATURE: &[u8; 4] = b"MSCF";

/// What [`expand_single_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The file's name inside the cabinet (normally `<name>.pdb`).
    pub name: String,
    /// Bytes written.
    pub size: u64,
}

/// Why a store file could not be expanded.
#[derive(Debug, Error)]
pub enum CabError {
    /// Unreadable cabinet headers or data blocks (including a cut-off file).
    #[error("corrupt CAB: {0}")]
    Corrupt(String),
    /// The cabinet does not hold exactly one file.
    #[error("the CAB holds {count} files ({names}); a compressed store file holds exactly one")]
    FileCount {
        /// Number of files in the cabinet.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },
    /// The file inside claims (or turned out) to be larger than the limit.
    #[error("the CAB's file {name} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The file's name inside the cabinet.
        name: String,
        /// Its claimed size (or, when the data run past the claim, the limit + 1).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The data ended before the size the header claims.
    #[error("corrupt CAB: {name} expanded to {actual} bytes but the CAB says {claimed}")]
    Short {
        /// The file's name inside the cabinet.
        name: String,
        /// Bytes actually produced.
        actual: u64,
        /// Bytes the header claims.
        claimed: u64,
    },
    /// The compression method cannot be decoded.
    #[error("unsupported CAB compression: {0}")]
    Unsupported(String),
    /// Writing the expanded data failed.
    #[error("cannot write the expanded file: {0}")]
    Write(io::Error),
}

/// True when `bytes` starts with the cabinet signature.
pub fn is_cab(bytes: &[u8]) -> bool {
    bytes.starts_with(CAB_SIGNATURE)
}

/// Expands the single file of the cabinet read from `source` into `out`.
///
/// Fails with [`CabError::FileCount`] unless the cabinet holds exactly one file,
/// with [`CabError::TooLarge`] when the file claims more than `limit` bytes (checked
/// before anything is written) and with [`CabError::Short`] when its data end early.
/// Never writes more than `limit` bytes.
pub fn expand_single_file<R, W>(source: R, out: &mut W, limit: u64) -> Result<Expanded, CabError>
where
    R: Read + Seek,
    W: Write,
{
    match catch_unwind(AssertUnwindSafe(|| expand_inner(source, out, limit))) {
        Ok(result) => result,
        Err(_) => Err(CabError::Corrupt("the CAB decoder failed".to_string())),
    }
}

fn expand_inner<R, W>(source: R, out: &mut W, limit: u64) -> Result<Expanded, CabError>
where
    R: Read + Seek,
    W: Write,
{
    let corrupt = |e: io::Error| CabError::Corrupt(e.to_string());
    let mut cabinet = cab::Cabinet::new(source).map_err(corrupt)?;
    let mut files = Vec::new();
    for folder in cabinet.folder_entries() {
        for file in folder.file_entries() {
            files.push((
                file.name().to_string(),
                u64::from(file.uncompressed_size()),
                folder.compression_type(),
            ));
        }
    }
    let (name, claimed, compression) = match files.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(CabError::FileCount {
                count: files.len(),
                names: files
                    .iter()
                    .map(|f| f.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    if let cab::CompressionType::Quantum(..) = compression {
        return Err(CabError::Unsupported("Quantum".to_string()));
    }
    if claimed > limit {
        return Err(CabError::TooLarge {
            name,
            size: claimed,
            limit,
        });
    }
    let reader = cabinet.read_file(&name).map_err(corrupt)?;
    // The crate's reader stops at the claimed size; `take` makes the bound ours.
    let mut reader = reader.take(limit.saturating_add(1));
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(e)),
        };
        written += n as u64;
        if written > limit {
            return Err(CabError::TooLarge {
                name,
                size: written,
                limit,
            });
        }
        out.write_all(&buf[..n]).map_err(CabError::Write)?;
    }
    out.flush().map_err(CabError::Write)?;
    if written != claimed {
        return Err(CabError::Short {
            name,
            actual: written,
            claimed,
        });
    }
    Ok(Expanded {
        name,
        size: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A one-file, uncompressed cabinet written with the crate's builder.
    fn stored_cab(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = cab::CabinetBuilder::new();
        if !files.is_empty() {
            let folder = builder.add_folder(cab::CompressionType::None);
            for (name, _) in files {
                folder.add_file(*name);
            }
        }
        let mut writer = builder.build(Cursor::new(Vec::new())).unwrap();
        let mut i = 0;
        while let Some(mut w) = writer.next_file().unwrap() {
            w.write_all(files[i].1).unwrap();
            i += 1;
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn expands_one_file_and_checks_counts_and_limits() {
        let cab = stored_cab(&[("a.pdb", b"hello world")]);
        assert!(is_cab(&cab));
        let mut out = Vec::new();
        let e = expand_single_file(Cursor::new(&cab), &mut out, 100).unwrap();
        assert_eq!(e.name, "a.pdb");
        assert_eq!(out, b"hello world");

        let err = expand_single_file(Cursor::new(&cab), &mut Vec::new(), 5).unwrap_err();
        assert!(matches!(err, CabError::TooLarge { size: 11, .. }), "{err}");

        let two = stored_cab(&[("a.pdb", b"1"), ("b.pdb", b"2")]);
        let err = expand_single_file(Cursor::new(&two), &mut Vec::new(), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the CAB holds 2 files (a.pdb, b.pdb); a compressed store file holds exactly one"
        );
        let none = stored_cab(&[]);
        let err = expand_single_file(Cursor::new(&none), &mut Vec::new(), 100).unwrap_err();
        assert!(matches!(err, CabError::FileCount { count: 0, .. }), "{err}");
    }

    #[test]
    fn damaged_cabinets_are_errors() {
        let cab = stored_cab(&[("a.pdb", &[7u8; 5000])]);
        for cut in [0, 3, 20, 40, cab.len() / 2, cab.len() - 1] {
            let r = expand_single_file(Cursor::new(&cab[..cut]), &mut Vec::new(), 1 << 20);
            assert!(r.is_err(), "cut at {cut}: {r:?}");
        }
        // A header claiming a huge file is refused before anything is written.
        let mut huge = cab.clone();
        let file_entry = u32::from_le_bytes(huge[16..20].try_into().unwrap()) as usize;
        huge[file_entry..file_entry + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut out = Vec::new();
        let err = expand_single_file(Cursor::new(&huge), &mut out, 1 << 20).unwrap_err();
        assert!(matches!(err, CabError::TooLarge { .. }), "{err}");
        assert!(out.is_empty());
        // The same claim under a limit that allows it: the data end early.
        let err =
            expand_single_file(Cursor::new(&huge), &mut Vec::new(), MAX_EXPANDED_SIZE).unwrap_err();
        assert!(matches!(err, CabError::Short { actual: 5000, .. }), "{err}");
    }
}
