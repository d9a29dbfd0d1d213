//! Reads the version resource (`VS_VERSIONINFO`) of a PE image: company name, product
//! name, file description and the version strings of its first string table.
//!
//! The image is read either as mapped in a process ([`read_mapped`], given a reader
//! of `len` bytes at an RVA, e.g. over a full dump's memory) or as a file on disk
//! ([`read_file`]). [`crate::pe`] finds the resource (`object` walks the headers
//! and the resource directory tree to type `RT_VERSION`, first name, first
//! language); this module walks its blocks: `VS_VERSIONINFO` → `StringFileInfo` →
//! first string table. Every read is bounds-checked and every loop is bounded;
//! anything malformed yields `None` (or a field left `None`), never a panic.

pub use crate::model::VersionStrings;
use crate::pe::{u16_le as u16_at, ImageBytes};
use std::path::Path;

impl VersionStrings {
    fn set(&mut self, key: &str, value: String) {
        let slot = match key {
            "CompanyName" => &mut self.company_name,
            "ProductName" => &mut self.product_name,
            "FileDescription" => &mut self.file_description,
            "FileVersion" => &mut self.file_version,
            "ProductVersion" => &mut self.product_version,
            _ => return,
        };
        let value = value.trim().to_owned();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
}

/// Child blocks visited in one block of the version resource.
const MAX_CHILDREN: usize = 1024;
/// Files larger than this are not read by [`read_path`].
pub const MAX_IMAGE_FILE: u64 = 512 * 1024 * 1024;

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// A block of the version resource: `wLength, wValueLength, wType, szKey`, value,
/// children.
struct Block {
    key: String,
    /// Where the value starts.
    value: usize,
    /// Where the children start (after the value), or the end when there are none.
    children: usize,
    end: usize,
}

/// The UTF-16 string at `off`, up to a NUL or `end`, and the offset after it.
fn utf16z(b: &[u8], off: usize, end: usize) -> Option<(String, usize)> {
    let mut units = Vec::new();
    let mut at = off;
    while at.checked_add(2)? <= end {
        let u = u16_at(b, at)?;
        at += 2;
        if u == 0 {
            return Some((String::from_utf16_lossy(&units), at));
        }
        units.push(u);
    }
    Some((String::from_utf16_lossy(&units), at))
}

fn block(b: &[u8], start: usize, limit: usize) -> Option<Block> {
    let length = usize::from(u16_at(b, start)?);
    let value_length = usize::from(u16_at(b, start.checked_add(2)?)?);
    let text = u16_at(b, start.checked_add(4)?)? == 1;
    if length < 6 {
        return None;
    }
    let end = start.checked_add(length)?.min(limit).min(b.len());
    let (key, after_key) = utf16z(b, start.checked_add(6)?, end)?;
    let value = align4(after_key)?.min(end);
    let value_bytes = if text {
        value_length.checked_mul(2)?
    } else {
        value_length
    };
    let children = align4(value.checked_add(value_bytes)?)?.min(end);
    Some(Block {
        key,
        value,
        children,
        end,
    })
}

/// The child blocks of `parent`.
fn children(b: &[u8], parent: &Block) -> Vec<Block> {
    let mut out = Vec::new();
    let mut at = parent.children;
    while out.len() < MAX_CHILDREN && at < parent.end {
        let Some(child) = block(b, at, parent.end) else {
            break;
        };
        let Some(next) = align4(child.end) else { break };
        if next <= at {
            break;
        }
        at = next;
        out.push(child);
    }
    out
}

/// Parses a `VS_VERSIONINFO` resource.
pub fn parse_version_info(b: &[u8]) -> Option<VersionStrings> {
    let root = block(b, 0, b.len())?;
    if root.key != "VS_VERSION_INFO" {
        return None;
    }
    let mut strings = VersionStrings::default();
    let Some(file_info) = children(b, &root)
        .into_iter()
        .find(|c| c.key == "StringFileInfo")
    else {
        return Some(strings);
    };
    // The first string table (one per language/code page; the first is the one shown
    // by Explorer for most images).
    let tables = children(b, &file_info);
    // A String block's value is read up to its NUL or the block's end: writers
    // disagree on whether wValueLength counts bytes or characters.
    if let Some(table) = tables.first() {
        for s in children(b, table) {
            if let Some((value, _)) = utf16z(b, s.value, s.end) {
                strings.set(&s.key, value);
            }
        }
    }
    Some(strings)
}

fn version_of(image: &ImageBytes<'_>) -> Option<VersionStrings> {
    parse_version_info(image.parse().ok()?.version_resource().ok()?)
}

/// The version strings of an image as mapped in a process: `read(rva, len)` returns
/// `len` bytes at `base + rva`, or `None` when they are not available.
pub fn read_mapped<F>(read: F) -> Option<VersionStrings>
where
    F: Fn(u32, usize) -> Option<Vec<u8>>,
{
    let read = |rva: u64, len: usize| read(u32::try_from(rva).ok()?, len);
    version_of(&ImageBytes::mapped(&read))
}

/// The version strings of an image file's bytes (section headers map RVAs to file
/// offsets).
pub fn read_file(bytes: &[u8]) -> Option<VersionStrings> {
    version_of(&ImageBytes::file(bytes))
}

/// [`read_file`] on the file at `path`; `None` when it cannot be read or is larger
/// than [`MAX_IMAGE_FILE`].
pub fn read_path(path: &Path) -> Option<VersionStrings> {
    if std::fs::metadata(path).ok()?.len() > MAX_IMAGE_FILE {
        return None;
    }
    read_file(&std::fs::read(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    /// A version block with `children`, `text` value (UTF-16) or binary value.
    fn blk(key: &str, value: &[u8], text: bool, children: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8; 6];
        b.extend(utf16(key));
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        b.extend(value);
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        for c in children {
            b.extend(c);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
        }
        let len = b.len() as u16;
        let vlen = if text { value.len() / 2 } else { value.len() } as u16;
        b[0..2].copy_from_slice(&len.to_le_bytes());
        b[2..4].copy_from_slice(&vlen.to_le_bytes());
        b[4..6].copy_from_slice(&u16::from(text).to_le_bytes());
        b
    }

    fn sample() -> Vec<u8> {
        let s = |k: &str, v: &str| blk(k, &utf16(v), true, &[]);
        let table = blk(
            "040904b0",
            &[],
            true,
            &[
                s("CompanyName", "Contoso"),
                s("ProductName", "Connect"),
                s("FileVersion", "1.2"),
            ],
        );
        let sfi = blk("StringFileInfo", &[], true, &[table]);
        blk("VS_VERSION_INFO", &[0u8; 52], false, &[sfi])
    }

    #[test]
    fn a_version_block_is_parsed() {
        let v = parse_version_info(&sample()).unwrap();
        assert_eq!(v.company_name.as_deref(), Some("Contoso"));
        assert_eq!(v.product_name.as_deref(), Some("Connect"));
        assert_eq!(v.file_version.as_deref(), Some("1.2"));
        assert_eq!(v.file_description, None);
    }

    #[test]
    fn every_truncation_of_a_version_block_is_safe() {
        let b = sample();
        for n in 0..b.len() {
            let _ = parse_version_info(&b[..n]);
        }
        let mut zero_length = b.clone();
        zero_length[0] = 0;
        zero_length[1] = 0;
        assert_eq!(parse_version_info(&zero_length), None);
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert_eq!(read_file(b""), None);
        assert_eq!(read_file(b"MZ"), None);
        let mut b = vec![0u8; 256];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert_eq!(read_file(&b), None);
        assert_eq!(read_mapped(|_, _| None), None);
        assert_eq!(read_mapped(|_, len| Some(vec![0xff; len])), None);
    }
}
