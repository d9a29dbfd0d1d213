//! The parallel read: the log mapped and cut into chunks at lines that may start
//! one, a wave of one chunk per thread read at a time, and the chunks merged in
//! file order.

use super::chunk::{read_chunk, Chunk, INHERITED, NO_HEAP};
use super::{Frame, Snapshot, Trace, BUCKETS};
use crate::model::Totals;
use crate::umdh::lines::{find_newline, Encoding};
use crate::umdh::UmdhError;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

/// The size of the chunks the log is read in, in parallel.
pub const CHUNK_BYTES: usize = 32 << 20;

/// The page size the read pages are given back in.
const PAGE: usize = 4096;

/// A cheap hasher for BackTrace IDs read as numbers (SipHash is most of the cost
/// of a map lookup per allocation line).
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type IdMap<K> = HashMap<K, u32, std::hash::BuildHasherDefault<IdHasher>>;

/// Whether a chunk may start on a line that starts with `b`: an unindented line
/// that is no comment ends any stack and the module list.
fn starts_chunk(b: u16) -> bool {
    b < 0x80 && ((b as u8).is_ascii_alphanumeric() || b == u16::from(b'*'))
}

/// The start of the first line at or after `from` that may start a chunk, or the
/// end of the text.
fn next_boundary(bytes: &[u8], from: usize, encoding: Encoding, text_start: usize) -> usize {
    let len = bytes.len();
    match encoding {
        Encoding::Utf8OrAnsi => {
            let mut s = from.max(text_start + 1) - 1;
            while s < len {
                let Some(k) = find_newline(&bytes[s..]) else {
                    return len;
                };
                let i = s + k + 1;
                if i >= len || starts_chunk(u16::from(bytes[i])) {
                    return i.min(len);
                }
                s = i;
            }
            len
        }
        Encoding::Utf16Le | Encoding::Utf16Be => {
            let unit = |i: usize| {
                let c = [bytes[i], bytes[i + 1]];
                if encoding == Encoding::Utf16Le {
                    u16::from_le_bytes(c)
                } else {
                    u16::from_be_bytes(c)
                }
            };
            // Units are at text_start + 2k; a line end at or after `from − 2`, so
            // that the next line starts at or after `from`.
            let rel = from.max(text_start + 2) - 2 - text_start;
            let mut i = text_start + ((rel + 1) & !1);
            while i + 1 < len {
                if unit(i) == u16::from(b'\n') {
                    let next = i + 2;
                    if next + 1 >= len || starts_chunk(unit(next)) {
                        return if next + 1 >= len { len } else { next };
                    }
                }
                i += 2;
            }
            len
        }
    }
}

/// The merge of the chunks, in file order.
struct Merger<'p> {
    path: &'p Path,
    snap: Snapshot,
    ids: IdMap<u64>,
    text_ids: HashMap<String, u32>,
    /// First line and count of allocation lines without a stack, per trace whose
    /// stack is not printed yet.
    unresolved: HashMap<u32, (u64, u64)>,
    open: Option<usize>,
    saw_header: bool,
    /// Lines before the chunk being merged.
    offset: u64,
    bytes: u128,
    warnings: Vec<(u64, String)>,
    /// Per trace: the heap of the sums not yet flushed into `by_heap`.
    cur_heap: Vec<(u64, Totals)>,
    symbolic_ids: HashMap<String, u32>,
    first_ansi_line: Option<u64>,
    first_bad_utf16_line: Option<u64>,
}

impl Merger<'_> {
    fn warn(&mut self, line: u64, message: impl std::fmt::Display) {
        self.warnings.push((line, message.to_string()));
    }

    fn merge(&mut self, mut c: Chunk) -> Result<(), UmdhError> {
        let off = self.offset;
        if let Some((line, message)) = c.fatal.take() {
            return Err(UmdhError::Line {
                path: self.path.to_owned(),
                line: off + line,
                message,
            });
        }
        if let Some((line, h)) = c.header.take().filter(|_| !self.saw_header) {
            self.saw_header = true;
            if h.logtime.is_some() && h.logtime_filetime.is_none() {
                self.warn(off + line, "the Logtime is not a date and time YYYY-MM-DD HH:MM: the snapshot cannot be placed in time");
            }
            self.snap.header = h;
        }
        self.snap.modules.append(&mut c.modules);

        // Heaps.
        let inherited_heap = self.open.map_or(0, |g| self.snap.heaps[g].heap);
        if let Some(g) = self.open {
            self.snap.heaps[g].merge(&c.inherited);
            if let Some(line) = c.start_while_inherited {
                self.warn(
                    off + line,
                    format_args!("heap {inherited_heap:X} has no \"End of data\" line before the next heap starts"),
                );
            }
            if c.closes_inherited {
                self.snap.heaps[g].complete = true;
            }
        }
        let base = self.snap.heaps.len();
        self.snap.heaps.append(&mut c.heaps);
        self.open = match c.open {
            INHERITED => self.open,
            NO_HEAP => None,
            h => Some(base + h as usize),
        };

        // Traces.
        let mut global = Vec::with_capacity(c.traces.len());
        let mut defs: Vec<(u64, usize)> = Vec::new();
        for lt in &c.traces {
            let next = self.snap.traces.len() as u32;
            let g = match lt.num {
                Some(n) => *self.ids.entry(n).or_insert(next),
                None => *self.text_ids.entry(lt.id.clone()).or_insert(next),
            };
            if g == next {
                self.snap.traces.push(Trace {
                    id: lt.id.clone(),
                    frames: None,
                });
                self.snap.sizes.push([Totals::default(); BUCKETS]);
                self.cur_heap.push((0, Totals::default()));
            }
            global.push(g);
            let gi = g as usize;
            for (a, b) in self.snap.sizes[gi]
                .iter_mut()
                .zip(&c.hot[global.len() - 1].sizes)
            {
                a.allocations += b.allocations;
                a.bytes = a.bytes.wrapping_add(b.bytes);
            }
            let mut dups: Vec<u64> = lt.dups.clone();
            if self.snap.traces[gi].frames.is_some() {
                if let Some((line, _)) = &lt.def {
                    dups.insert(0, *line);
                }
            } else {
                let h = &c.hot[global.len() - 1];
                if h.pending > 0 {
                    self.unresolved
                        .entry(g)
                        .or_insert((off + h.pending_line, 0))
                        .1 += h.pending;
                }
                if let Some((line, _)) = &lt.def {
                    defs.push((*line, global.len() - 1));
                }
            }
            for line in dups {
                let id = self.snap.traces[gi].id.clone();
                self.warn(
                    off + line,
                    format_args!(
                        "the stack of BackTrace{id} is printed a second time: the first one is kept"
                    ),
                );
            }
        }
        // The stacks first printed here, in file order (so the frames are laid out
        // the same way whatever the chunks).
        defs.sort_unstable();
        for (line, l) in defs {
            let g = global[l];
            let gi = g as usize;
            let Some((_, range)) = &c.traces[l].def else {
                continue;
            };
            let start = self.snap.frames.len();
            for &f in &c.frames[range.clone()] {
                let f = match f {
                    Frame::Address(a) => Frame::Address(a),
                    Frame::Symbolic(i) => {
                        let text = &c.symbolic[i as usize];
                        let next = self.snap.symbolic.len() as u32;
                        let i = *self.symbolic_ids.entry(text.clone()).or_insert(next);
                        if i == next {
                            self.snap.symbolic.push(text.clone());
                        }
                        Frame::Symbolic(i)
                    }
                };
                self.snap.frames.push(f);
            }
            self.snap.traces[gi].frames = Some(start..self.snap.frames.len());
            if let Some((first, count)) = self.unresolved.remove(&g) {
                let id = self.snap.traces[gi].id.clone();
                self.warn(
                    first,
                    format_args!("BackTrace{id} is referenced here ({count} allocation lines) before its stack is printed on line {}", off + line),
                );
            }
        }
        for &(t, h, sums) in &c.heap_entries {
            let heap = match h {
                INHERITED => inherited_heap,
                NO_HEAP => 0,
                h => self.snap.heaps[base + h as usize].heap,
            };
            let g = global[t as usize];
            let cur = &mut self.cur_heap[g as usize];
            if cur.0 != heap || cur.1.allocations == 0 {
                if cur.1.allocations > 0 {
                    self.snap.by_heap.push((g, cur.0, cur.1));
                }
                *cur = (heap, Totals::default());
            }
            cur.1.allocations += sums.allocations;
            cur.1.bytes = cur.1.bytes.wrapping_add(sums.bytes);
        }

        self.bytes += c.bytes;
        self.snap.allocations += c.allocations;
        self.snap.overhead = self.snap.overhead.saturating_add(c.overhead);
        self.snap.max_address = self.snap.max_address.max(c.max_address);
        self.warnings
            .extend(c.warnings.into_iter().map(|(l, m)| (off + l, m)));
        if self.first_ansi_line.is_none() {
            self.first_ansi_line = c.first_ansi_line.map(|l| off + l);
        }
        if self.first_bad_utf16_line.is_none() {
            self.first_bad_utf16_line = c.first_bad_utf16_line.map(|l| off + l);
        }
        self.offset += c.lines;
        Ok(())
    }
}

/// Reads the snapshot log at `path` (see the module's documentation).
pub fn parse(path: &Path) -> Result<Snapshot, UmdhError> {
    parse_chunked(path, CHUNK_BYTES)
}

/// [`parse`] with chunks of about `chunk_bytes` bytes, on the current rayon pool:
/// the result does not depend on either.
pub fn parse_chunked(path: &Path, chunk_bytes: usize) -> Result<Snapshot, UmdhError> {
    let map = crate::umdh::map(path)?;
    let bytes: &[u8] = &map;
    let (encoding, bom) = Encoding::of(bytes);
    // A UTF-16 text with an odd number of bytes: the last one dangles.
    let utf16 = encoding != Encoding::Utf8OrAnsi;
    let odd = utf16 && (bytes.len() - bom) % 2 == 1;
    let mut m = Merger {
        path,
        snap: Snapshot {
            encoding: encoding.label(),
            ..Default::default()
        },
        ids: IdMap::default(),
        text_ids: HashMap::new(),
        unresolved: HashMap::new(),
        open: None,
        saw_header: false,
        offset: 0,
        bytes: 0,
        warnings: Vec::new(),
        cur_heap: Vec::new(),
        symbolic_ids: HashMap::new(),
        first_ansi_line: None,
        first_bad_utf16_line: None,
    };
    let chunk_bytes = chunk_bytes.max(1);
    let wave = rayon::current_num_threads().max(1);
    let mut start = bom;
    while start < bytes.len() {
        let mut ranges = Vec::with_capacity(wave);
        let mut s = start;
        while ranges.len() < wave && s < bytes.len() {
            let e = next_boundary(bytes, s.saturating_add(chunk_bytes), encoding, bom);
            ranges.push(s..e);
            s = e;
        }
        let last = bytes.len();
        let read = |r: &Range<usize>, budget: u128| {
            read_chunk(&bytes[r.clone()], encoding, odd && r.end == last, budget)
        };
        let chunks: Vec<Chunk> = ranges
            .par_iter()
            .map(|r| {
                let c = read(r, u128::from(u64::MAX));
                // The chunk is read: its pages leave this process (the page cache
                // keeps them). Whole pages inside the chunk only.
                let (from, to) = (r.start.next_multiple_of(PAGE), r.end / PAGE * PAGE);
                if from < to {
                    // SAFETY: the mapping is read-only and shared: a page read again
                    // is faulted back in from the file, never zero-filled.
                    let _ = unsafe {
                        map.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            from,
                            to - from,
                        )
                    };
                }
                c
            })
            .collect();
        for (r, c) in ranges.iter().zip(chunks) {
            let max = u128::from(u64::MAX);
            let c = if m.bytes + c.bytes > max || (c.fatal.is_some() && m.bytes > 0) {
                // The sizes may pass 2^64 in this chunk: read it again, counting from
                // the sum before it, to stop at the right line.
                read(r, max - m.bytes)
            } else {
                c
            };
            m.merge(c)?;
        }
        start = s;
    }
    finish(m)
}

fn finish(mut m: Merger<'_>) -> Result<Snapshot, UmdhError> {
    let path = m.path;
    for (g, (heap, sums)) in m.cur_heap.drain(..).enumerate() {
        if sums.allocations > 0 {
            m.snap.by_heap.push((g as u32, heap, sums));
        }
    }
    let last = m.offset;
    m.snap.bytes = m.bytes as u64;
    m.snap.lines = last;
    let mut warnings = std::mem::take(&mut m.warnings);
    warnings.sort_by_key(|(line, _)| *line);
    if let Some(open) = m.open {
        let h = m.snap.heaps[open].heap;
        warnings.push((last, format!("the log ends inside the data of heap {h:X} (no \"End of data\" line): it is truncated; what was read is reported")));
    }
    let mut unresolved: Vec<(u32, (u64, u64))> = m.unresolved.drain().collect();
    unresolved.sort_by_key(|(_, (line, _))| *line);
    for (trace, (line, count)) in unresolved {
        let id = &m.snap.traces[trace as usize].id;
        warnings.push((line, format!("BackTrace{id} is referenced here ({count} allocation lines) but its stack is never printed: its allocations are counted under \"(no stack)\"")));
    }
    if !m.saw_header {
        warnings.push((
            1,
            "no \"// UMDH: version …\" header: the process id, machine and Logtime are unknown"
                .to_owned(),
        ));
    }
    if let Some(l) = m.first_ansi_line {
        warnings.push((l, "the text is not UTF-8 from this line on: read as the Windows ANSI code page (Windows-1252)".to_owned()));
    }
    if let Some(l) = m.first_bad_utf16_line {
        warnings.push((
            l,
            "the UTF-16 text has an unpaired surrogate or a dangling byte: replaced by U+FFFD"
                .to_owned(),
        ));
    }
    m.snap.warnings = warnings
        .into_iter()
        .map(|(line, message)| format!("{}:{line}: {message}", path.display()))
        .collect();
    Ok(m.snap)
}
