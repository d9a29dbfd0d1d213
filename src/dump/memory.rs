//! The dump's captured memory: the MemoryListStream (type 5) and Memory64ListStream
//! (type 9) read in place, with every descriptor checked.
//!
//! The `minidump` crate refuses a whole Memory64List when one range reaches past the
//! file, and keeps the first of overlapping ranges without saying so. A pointer scan
//! needs to know exactly what was captured, so this reader keeps every range that is
//! in the file, cuts a range at the end of the file or where it overlaps an earlier
//! one, and says so in a warning naming the stream, the descriptor and its field.

use crate::addr::VirtAddr;

/// MemoryListStream: 32-bit count, then 16-byte descriptors (start, size, rva).
pub const MEMORY_LIST_STREAM: u32 = 5;
/// Memory64ListStream: 64-bit count and base rva, then 16-byte descriptors (start,
/// size), the data laid out back to back from the base rva.
pub const MEMORY64_LIST_STREAM: u32 = 9;

/// One captured range of the process's memory, borrowed from the mapped file.
#[derive(Clone, Copy, Debug)]
pub struct MemoryRange<'a> {
    pub base: VirtAddr,
    pub bytes: &'a [u8],
}

impl MemoryRange<'_> {
    /// One past the last address (saturating: a range is cut before it wraps).
    pub fn end(&self) -> u64 {
        self.base.0.saturating_add(self.bytes.len() as u64)
    }
}

/// Every captured range, sorted by address and disjoint.
#[derive(Clone, Debug, Default)]
pub struct DumpMemory<'a> {
    pub ranges: Vec<MemoryRange<'a>>,
    /// Which streams the ranges came from (`MemoryListStream`, `Memory64ListStream`).
    pub streams: Vec<&'static str>,
    /// What was cut or left out, each naming the stream, descriptor and field.
    pub warnings: Vec<String>,
}

impl<'a> DumpMemory<'a> {
    /// Reads the memory lists of the dump whose bytes are `file`, located by
    /// `directory` entries `(stream_type, size, rva)`.
    pub fn read(file: &'a [u8], directory: &[(u32, u32, u32)]) -> Self {
        let mut out = DumpMemory::default();
        let mut raw: Vec<(u64, &'a [u8], String)> = Vec::new();
        for &(stream_type, size, rva) in directory {
            let Some(stream) = file.get(rva as usize..(rva as usize).saturating_add(size as usize))
            else {
                if matches!(stream_type, MEMORY_LIST_STREAM | MEMORY64_LIST_STREAM) {
                    out.warnings.push(format!(
                        "{}: the directory entry (rva {rva}, size {size}) reaches past the end of the file; its memory is not read",
                        stream_name(stream_type)
                    ));
                }
                continue;
            };
            match stream_type {
                MEMORY_LIST_STREAM => {
                    out.streams.push("MemoryListStream");
                    read_memory_list(file, stream, &mut raw, &mut out.warnings);
                }
                MEMORY64_LIST_STREAM => {
                    out.streams.push("Memory64ListStream");
                    read_memory64_list(file, stream, &mut raw, &mut out.warnings);
                }
                _ => {}
            }
        }
        // Sorted by address, then by the order the file lists them: the first of two
        // overlapping ranges keeps the overlap.
        raw.sort_by_key(|r| r.0);
        let mut end_so_far = 0u64;
        for (base, bytes, what) in raw {
            let mut base = base;
            let mut bytes = bytes;
            if base < end_so_far {
                let overlap = end_so_far - base;
                out.warnings.push(format!(
                    "{what}: start_of_memory_range 0x{base:x} lies inside an earlier range (up to 0x{end_so_far:x}); the overlapping {overlap} bytes are read once",
                ));
                if overlap >= bytes.len() as u64 {
                    continue;
                }
                bytes = &bytes[overlap as usize..];
                base = end_so_far;
            }
            // A range that would wrap around the address space is cut at its end.
            let room = u64::MAX - base;
            if bytes.len() as u64 > room {
                out.warnings.push(format!(
                    "{what}: start_of_memory_range 0x{base:x} plus its size passes the top of the address space; the range is cut there"
                ));
                bytes = &bytes[..room as usize];
            }
            if bytes.is_empty() {
                continue;
            }
            end_so_far = base + bytes.len() as u64;
            out.ranges.push(MemoryRange {
                base: VirtAddr(base),
                bytes,
            });
        }
        out
    }

    /// Total bytes captured.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.bytes.len() as u64).sum()
    }

    /// The captured bytes at `[address, address + len)`, when one range holds them all.
    pub fn slice(&self, address: u64, len: u64) -> Option<&'a [u8]> {
        let i = self
            .ranges
            .partition_point(|r| r.base.0 <= address)
            .checked_sub(1)?;
        let r = &self.ranges[i];
        let from = address - r.base.0;
        let to = from.checked_add(len)?;
        r.bytes
            .get(usize::try_from(from).ok()?..usize::try_from(to).ok()?)
    }
}

fn stream_name(t: u32) -> &'static str {
    if t == MEMORY_LIST_STREAM {
        "MemoryListStream"
    } else {
        "Memory64ListStream"
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The bytes of `[rva, rva + size)` that lie in the file, with a warning when cut.
fn file_bytes<'a>(
    file: &'a [u8],
    rva: u64,
    size: u64,
    what: &str,
    warnings: &mut Vec<String>,
) -> &'a [u8] {
    let len = file.len() as u64;
    if rva >= len {
        if size > 0 {
            warnings.push(format!(
                "{what}: its data (file offset {rva}, {size} bytes) lies past the end of the file ({len} bytes); the range is not read"
            ));
        }
        return &[];
    }
    let end = rva.saturating_add(size);
    if end > len {
        warnings.push(format!(
            "{what}: its data (file offset {rva}, {size} bytes) reaches past the end of the file ({len} bytes); {} bytes are read",
            len - rva
        ));
    }
    &file[rva as usize..end.min(len) as usize]
}

fn read_memory_list<'a>(
    file: &'a [u8],
    stream: &[u8],
    out: &mut Vec<(u64, &'a [u8], String)>,
    warnings: &mut Vec<String>,
) {
    let Some(count) = le32(stream, 0) else {
        warnings.push("MemoryListStream: shorter than its 4-byte count".into());
        return;
    };
    // The count is checked against the bytes that hold the descriptors first.
    let fits = (stream.len().saturating_sub(4) / 16) as u64;
    if u64::from(count) > fits {
        warnings.push(format!(
            "MemoryListStream: number_of_memory_ranges {count} needs {} bytes, the stream holds {}; the {fits} descriptors present are read",
            4 + u64::from(count) * 16,
            stream.len()
        ));
    }
    for i in 0..u64::from(count).min(fits) as usize {
        let at = 4 + i * 16;
        let (Some(start), Some(size), Some(rva)) = (
            le64(stream, at),
            le32(stream, at + 8),
            le32(stream, at + 12),
        ) else {
            break;
        };
        let what = format!("MemoryListStream descriptor {i}");
        let bytes = file_bytes(file, u64::from(rva), u64::from(size), &what, warnings);
        out.push((start, bytes, what));
    }
}

fn read_memory64_list<'a>(
    file: &'a [u8],
    stream: &[u8],
    out: &mut Vec<(u64, &'a [u8], String)>,
    warnings: &mut Vec<String>,
) {
    let (Some(count), Some(base_rva)) = (le64(stream, 0), le64(stream, 8)) else {
        warnings.push("Memory64ListStream: shorter than its 16-byte header".into());
        return;
    };
    let fits = (stream.len().saturating_sub(16) / 16) as u64;
    if count > fits {
        warnings.push(format!(
            "Memory64ListStream: number_of_memory_ranges {count} does not fit the stream's {} bytes; the {fits} descriptors present are read",
            stream.len()
        ));
    }
    let mut rva = base_rva;
    for i in 0..count.min(fits) as usize {
        let at = 16 + i * 16;
        let (Some(start), Some(size)) = (le64(stream, at), le64(stream, at + 8)) else {
            break;
        };
        let what = format!("Memory64ListStream descriptor {i}");
        let bytes = file_bytes(file, rva, size, &what, warnings);
        out.push((start, bytes, what));
        let Some(next) = rva.checked_add(size) else {
            warnings.push(format!(
                "Memory64ListStream descriptor {i}: data_size {size} overflows the file offset; the later ranges are not read"
            ));
            break;
        };
        rva = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list64(ranges: &[(u64, u64)], data_at: u64) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&(ranges.len() as u64).to_le_bytes());
        s.extend_from_slice(&data_at.to_le_bytes());
        for &(start, size) in ranges {
            s.extend_from_slice(&start.to_le_bytes());
            s.extend_from_slice(&size.to_le_bytes());
        }
        s
    }

    #[test]
    fn ranges_are_sorted_cut_and_named() {
        // file: [stream at 0..][data at 64..]
        let stream = list64(
            &[(0x2000, 16), (0x1000, 16), (0x2008, 16), (0x9000, 100)],
            64,
        );
        let mut file = stream.clone();
        file.resize(64, 0);
        file.extend((0..48u8).collect::<Vec<_>>());
        let m = DumpMemory::read(&file, &[(MEMORY64_LIST_STREAM, stream.len() as u32, 0)]);
        let bases: Vec<u64> = m.ranges.iter().map(|r| r.base.0).collect();
        assert_eq!(bases, vec![0x1000, 0x2000, 0x2010]);
        assert_eq!(m.ranges[2].bytes.len(), 8, "overlap cut");
        assert_eq!(m.ranges[0].bytes[0], 16, "second descriptor's data");
        assert!(m
            .warnings
            .iter()
            .any(|w| w.contains("descriptor 2") && w.contains("inside an earlier range")));
        assert!(m
            .warnings
            .iter()
            .any(|w| w.contains("descriptor 3") && w.contains("past the end of the file")));
        assert_eq!(m.slice(0x1004, 4), Some(&file[84..88]));
        assert_eq!(m.slice(0x100e, 4), None);
    }

    #[test]
    fn an_absurd_count_is_checked_before_anything_is_read() {
        let mut stream = list64(&[(0x1000, 8)], 32);
        stream[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut file = stream.clone();
        file.extend_from_slice(&[7; 8]);
        let m = DumpMemory::read(&file, &[(MEMORY64_LIST_STREAM, stream.len() as u32, 0)]);
        assert!(m.warnings[0].contains("number_of_memory_ranges"));
        assert_eq!(m.ranges.len(), 1);
    }
}
