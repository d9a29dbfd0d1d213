//! Reads the version resource (`VS_VERSIONINFO`) of a PE image: company name, product
//! name, file description and the version strings of its first string table.
//!
//! The image is read either as mapped in a process ([`read_mapped`], given a reader
//! of `len` bytes at an RVA, e.g. over a full dump's memory) or as a file on disk
//! ([`read_file`], which maps RVAs to file offsets through the section headers).
//!
//! The path: DOS header → NT headers → data directory 2 (resources) → resource
//! directory tree, type `RT_VERSION` (16), first name, first language → the data
//! entry → `VS_VERSIONINFO` → `StringFileInfo` → first string table. Every read is
//! bounds-checked and every loop is bounded; anything malformed yields `None` (or a
//! field left `None`), never a panic.

pub use crate::model::VersionStrings;
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

/// `e_lfanew` beyond this is treated as garbage.
const MAX_NT_HEADERS_OFFSET: u32 = 16 * 1024 * 1024;
/// Entries read from one resource directory.
const MAX_DIRECTORY_ENTRIES: u32 = 4096;
/// Section headers read from a file.
const MAX_SECTIONS: u16 = 96;
/// The largest version resource read.
const MAX_VERSION_RESOURCE: u32 = 64 * 1024;
/// Child blocks visited in one block of the version resource.
const MAX_CHILDREN: usize = 1024;
/// Files larger than this are not read by [`read_path`].
pub const MAX_IMAGE_FILE: u64 = 512 * 1024 * 1024;
/// Resource type of version resources.
const RT_VERSION: u32 = 16;
/// Data directory index of the resource table.
const RESOURCE_DIRECTORY: u32 = 2;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads `len` bytes at image offset `rva`.
type Reader<'a> = dyn Fn(u32, usize) -> Option<Vec<u8>> + 'a;

fn read_u32(read: &Reader<'_>, rva: u32) -> Option<u32> {
    u32_at(&read(rva, 4)?, 0)
}

/// The PE headers needed to find the resources.
struct Headers {
    /// RVA and size of the resource directory.
    resources: (u32, u32),
    /// Offset of the first section header.
    section_table: u32,
    sections: u16,
}

fn headers(read: &Reader<'_>) -> Option<Headers> {
    let dos = read(0, 64)?;
    if dos.get(0..2)? != b"MZ" {
        return None;
    }
    let nt = u32_at(&dos, 0x3c)?;
    if nt > MAX_NT_HEADERS_OFFSET {
        return None;
    }
    // Signature (4) + file header (20) + the optional header's magic (2).
    let file = read(nt, 26)?;
    if file.get(0..4)? != b"PE\0\0" {
        return None;
    }
    let sections = u16_at(&file, 6)?;
    let optional_size = u32::from(u16_at(&file, 20)?);
    let optional = nt.checked_add(24)?;
    let (count_at, dirs_at) = match u16_at(&file, 24)? {
        0x10b => (92u32, 96u32), // PE32
        0x20b => (108, 112),     // PE32+
        _ => return None,
    };
    let count = read_u32(read, optional.checked_add(count_at)?)?;
    if count <= RESOURCE_DIRECTORY {
        return None;
    }
    let entry = dirs_at.checked_add(RESOURCE_DIRECTORY.checked_mul(8)?)?;
    if entry.checked_add(8)? > optional_size {
        return None;
    }
    let dir = read(optional.checked_add(entry)?, 8)?;
    Some(Headers {
        resources: (u32_at(&dir, 0)?, u32_at(&dir, 4)?),
        section_table: optional.checked_add(optional_size)?,
        sections,
    })
}

/// One entry of a resource directory: its name or ID and where it points.
struct DirEntry {
    name: u32,
    target: u32,
}

impl DirEntry {
    fn is_id(&self) -> bool {
        self.name & 0x8000_0000 == 0
    }
    fn subdirectory(&self) -> Option<u32> {
        (self.target & 0x8000_0000 != 0).then_some(self.target & 0x7fff_ffff)
    }
    fn data(&self) -> Option<u32> {
        (self.target & 0x8000_0000 == 0).then_some(self.target)
    }
}

/// The entries of the resource directory at `offset` (relative to the resource root).
fn directory(read: &Reader<'_>, root: u32, offset: u32) -> Option<Vec<DirEntry>> {
    let at = root.checked_add(offset)?;
    let head = read(at, 16)?;
    let n = u32::from(u16_at(&head, 12)?).checked_add(u32::from(u16_at(&head, 14)?))?;
    let n = n.min(MAX_DIRECTORY_ENTRIES);
    let bytes = read(
        at.checked_add(16)?,
        usize::try_from(n).ok()?.checked_mul(8)?,
    )?;
    Some(
        bytes
            .chunks_exact(8)
            .filter_map(|e| {
                Some(DirEntry {
                    name: u32_at(e, 0)?,
                    target: u32_at(e, 4)?,
                })
            })
            .collect(),
    )
}

/// RVA and size of the first `RT_VERSION` resource.
fn version_resource(read: &Reader<'_>, root: u32) -> Option<(u32, u32)> {
    let types = directory(read, root, 0)?;
    let names = types
        .iter()
        .find(|e| e.is_id() && e.name == RT_VERSION)?
        .subdirectory()?;
    // Three fixed levels (type, name, language): no recursion.
    for name in directory(read, root, names)? {
        let Some(languages) = name.subdirectory() else {
            continue;
        };
        for lang in directory(read, root, languages)? {
            let Some(data) = lang.data() else { continue };
            let entry = read(root.checked_add(data)?, 8)?;
            return Some((u32_at(&entry, 0)?, u32_at(&entry, 4)?));
        }
    }
    None
}

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

fn version_from(read: &Reader<'_>, headers: &Headers) -> Option<VersionStrings> {
    let (root, size) = headers.resources;
    if root == 0 || size == 0 {
        return None;
    }
    let (rva, len) = version_resource(read, root)?;
    let len = len.min(MAX_VERSION_RESOURCE);
    parse_version_info(&read(rva, usize::try_from(len).ok()?)?)
}

/// The version strings of an image as mapped in a process: `read(rva, len)` returns
/// `len` bytes at `base + rva`, or `None` when they are not available.
pub fn read_mapped<F>(read: F) -> Option<VersionStrings>
where
    F: Fn(u32, usize) -> Option<Vec<u8>>,
{
    let headers = headers(&read)?;
    version_from(&read, &headers)
}

/// A section header's mapping: (virtual address, virtual size, raw offset, raw size).
type SectionMap = (u32, u32, u32, u32);

fn file_offset(sections: &[SectionMap], rva: u32, len: usize) -> Option<usize> {
    let len = u32::try_from(len).ok()?;
    for &(va, vsize, raw, raw_size) in sections {
        let size = vsize.max(raw_size);
        if rva >= va && rva < va.checked_add(size)? {
            let delta = rva - va;
            if delta.checked_add(len)? > raw_size {
                return None;
            }
            return usize::try_from(raw.checked_add(delta)?).ok();
        }
    }
    None
}

/// The version strings of an image file's bytes (section headers map RVAs to file
/// offsets; the headers themselves lie at offset 0 in both).
pub fn read_file(bytes: &[u8]) -> Option<VersionStrings> {
    let raw = |off: usize, len: usize| -> Option<Vec<u8>> {
        bytes.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
    };
    let direct = |rva: u32, len: usize| raw(usize::try_from(rva).ok()?, len);
    let headers = headers(&direct)?;
    let mut sections = Vec::new();
    for i in 0..headers.sections.min(MAX_SECTIONS) {
        let at = u32::from(i)
            .checked_mul(40)
            .and_then(|o| o.checked_add(headers.section_table))?;
        let h = direct(at, 40)?;
        sections.push((
            u32_at(&h, 12)?,
            u32_at(&h, 8)?,
            u32_at(&h, 20)?,
            u32_at(&h, 16)?,
        ));
    }
    let first_section = sections.iter().map(|s| s.0).min().unwrap_or(u32::MAX);
    let mapped = |rva: u32, len: usize| -> Option<Vec<u8>> {
        if u64::from(rva).checked_add(u64::try_from(len).ok()?)? <= u64::from(first_section) {
            return direct(rva, len);
        }
        raw(file_offset(&sections, rva, len)?, len)
    };
    version_from(&mapped, &headers)
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
