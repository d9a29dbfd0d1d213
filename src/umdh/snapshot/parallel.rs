//! The parallel read: the log mapped and cut into chunks at lines that may start
//! one, a wave of one chunk per thread read at a time, and the chunks handed to
//! the merge ([`super::merge`]) in file order.

use super::chunk::{read_chunk, Chunk};
use super::merge::{finish, Merger};
use super::Snapshot;
use crate::umdh::lines::{find_newline, Encoding};
use crate::umdh::UmdhError;
use rayon::prelude::*;
use std::ops::Range;
use std::path::Path;

/// The largest chunk the log is read in (see [`chunk_bytes`]).
pub const CHUNK_BYTES: usize = 32 << 20;

/// The smallest chunk the log is read in, unless the log is smaller: below it the
/// chunks' own costs (their tables, the stacks and texts each chunk holds again)
/// outweigh the parallelism.
pub const MIN_CHUNK_BYTES: usize = 4 << 20;

/// The chunk size for a log of `len` bytes read by `threads` threads: about four
/// chunks per thread (so a many-core machine is not left with fewer chunks than
/// threads, and a slow chunk does not hold up the rest), between
/// [`MIN_CHUNK_BYTES`] and [`CHUNK_BYTES`]. The result does not depend on it.
pub fn chunk_bytes(len: u64, threads: usize) -> usize {
    let per = len / (threads.max(1) as u64).saturating_mul(4);
    usize::try_from(per)
        .unwrap_or(CHUNK_BYTES)
        .clamp(MIN_CHUNK_BYTES, CHUNK_BYTES)
}

/// Where the reading time went: the parts run in parallel (reading the chunks,
/// adding their sums, writing the frames they print, freeing them) and the serial
/// ones (merging the chunks in file order, the steps between the parallel ones,
/// the last renumbering): the part that more threads do not shorten.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadTimes {
    pub parallel: std::time::Duration,
    pub serial: std::time::Duration,
}

/// The page size the read pages are given back in.
const PAGE: usize = 4096;

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

/// Reads the snapshot log at `path` (see the module's documentation), in chunks of
/// [`chunk_bytes`] for its size and the current rayon pool.
pub fn parse(path: &Path) -> Result<Snapshot, UmdhError> {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    parse_chunked(path, chunk_bytes(len, rayon::current_num_threads()))
}

/// [`parse`] with chunks of about `chunk_bytes` bytes, on the current rayon pool:
/// the result does not depend on either.
pub fn parse_chunked(path: &Path, chunk_bytes: usize) -> Result<Snapshot, UmdhError> {
    parse_timed(path, chunk_bytes, &mut ReadTimes::default())
}

/// [`parse_chunked`], adding the time spent in its parallel and serial parts to
/// `times`.
pub fn parse_timed(
    path: &Path,
    chunk_bytes: usize,
    times: &mut ReadTimes,
) -> Result<Snapshot, UmdhError> {
    let map = crate::umdh::map(path)?;
    let bytes: &[u8] = &map;
    let (encoding, bom) = Encoding::of(bytes);
    // A UTF-16 text with an odd number of bytes: the last one dangles.
    let utf16 = encoding != Encoding::Utf8OrAnsi;
    let odd = utf16 && (bytes.len() - bom) % 2 == 1;
    let mut m = Merger::new(path, encoding.label());
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
        let t0 = std::time::Instant::now();
        // The resolved-frame texts and the BackTrace IDs of earlier waves, read-only
        // while a wave is read: each chunk finds what it can of its own there, so
        // that the serial merge looks up only what is new.
        let merger = &m;
        let chunks: Vec<Chunk> = ranges
            .par_iter()
            .map(|r| {
                let mut c = read(r, u128::from(u64::MAX));
                merger.find_known(&mut c);
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
        let t1 = std::time::Instant::now();
        times.parallel += t1 - t0;
        let mut merged = Vec::with_capacity(chunks.len());
        for (r, c) in ranges.iter().zip(chunks) {
            let max = u128::from(u64::MAX);
            let mut c = if m.bytes + c.bytes > max || (c.fatal.is_some() && m.bytes > 0) {
                // The sizes may pass 2^64 in this chunk: read it again, counting from
                // the sum before it, to stop at the right line.
                let mut c = read(r, max - m.bytes);
                m.find_known(&mut c);
                c
            } else {
                c
            };
            m.merge(&mut c)?;
            merged.push(c);
        }
        let t2 = std::time::Instant::now();
        times.serial += t2 - t1;
        // The sums of the wave added and the frames of the stacks first printed in
        // it written, in parallel; then the chunks freed, in parallel too.
        let sums_serial = m.add_wave(&merged);
        merged.into_par_iter().for_each(drop);
        times.parallel += t2.elapsed().saturating_sub(sums_serial);
        times.serial += sums_serial;
        start = s;
    }
    let t5 = std::time::Instant::now();
    let snap = finish(m);
    release_free_memory();
    times.serial += t5.elapsed();
    snap
}

/// Gives the heap memory freed by the read back to the kernel. The chunks of the
/// last wave and the merge's tables are freed by now, but glibc keeps freed memory
/// in its arenas (each reading thread has its own) for reuse: 40% of the
/// process's memory after reading a million stacks, held while the analysis
/// allocates its own on top (docs/umdh.md, "Speed and memory").
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim only returns free pages of its own heaps to
        // the kernel; it takes each arena's lock and touches no live allocation.
        unsafe { malloc_trim(0) };
    }
}
