//! Snapshot logs (`umdh -p:PID -f:FILE`): header, loaded modules, per-heap
//! allocations, and each stack printed the first time its BackTrace ID appears.
//!
//! [`parse`] maps the log and reads it in chunks of [`chunk_bytes`] (about four per
//! thread, from [`MIN_CHUNK_BYTES`] to [`CHUNK_BYTES`]), cut at
//! the start of an unindented line (an allocation or heap line: no stack, module
//! list or header runs across such a line), a wave of one chunk per thread at a
//! time, in parallel. Each chunk is read on its own into per-BackTrace sums (by size
//! bucket and by heap) and the stacks it prints; the chunks are then merged in file
//! order, which settles what a chunk cannot know alone (the heap open at its start,
//! whether a stack was printed before, the line numbers). The result is the same for
//! any chunk size and any number of threads. The pages of a wave are given back to
//! the kernel once it is merged, and a UTF-16 log is transcoded chunk by chunk, so
//! memory follows the distinct stacks and heaps, never the text or the allocation
//! count (see docs/umdh.md).
//!
//! The parts: `parallel` cuts the log and reads the chunks, `merge` merges them in
//! file order; `chunk` is one chunk
//! and its line loop; `fast` reads the usual allocation and frame lines from the
//! bytes, `general` every other line, with the fields of each kind of line in
//! `fields`; `sums` holds the per-BackTrace sums of a chunk, `texts` the distinct
//! texts of resolved frames, `frames` the log's frames in 8 bytes each, `warnings`
//! the bounded list of warnings about lines.

mod chunk;
mod fast;
mod fields;
mod frames;
mod general;
mod merge;
mod parallel;
mod parts;
mod sums;
mod texts;
mod warnings;

pub use fields::{logtime_filetime, parse_allocation, AllocationLine};
pub use frames::Frames;
pub use parallel::{
    chunk_bytes, parse, parse_chunked, parse_timed, ReadTimes, CHUNK_BYTES, MIN_CHUNK_BYTES,
};

use crate::model::{Totals, SIZE_BUCKETS};
use std::ops::Range;

/// Size buckets per BackTrace: [`SIZE_BUCKETS`] and the one above the last.
pub const BUCKETS: usize = SIZE_BUCKETS.len() + 1;

pub use crate::model::size_bucket;

/// The header line `// UMDH: version V: Logtime DATE TIME - Machine=M - PID=N`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub version: Option<String>,
    /// The Logtime as written (the logging machine's local time).
    pub logtime: Option<String>,
    /// The Logtime as a FILETIME, taking the local time as UTC.
    pub logtime_filetime: Option<u64>,
    pub machine: Option<String>,
    pub pid: Option<u32>,
}

/// A line of the loaded-module list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogModule {
    pub base: u64,
    pub size: u64,
    pub path: String,
}

/// The sums of one heap's allocation lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapSums {
    pub heap: u64,
    pub allocations: u64,
    /// Requested bytes (the first column).
    pub bytes: u64,
    /// UMDH's overhead column: heap headers and padding, not requested memory.
    pub overhead: u64,
    /// The heap's `End of data` line was read.
    pub complete: bool,
}

impl HeapSums {
    fn add(&mut self, size: u64, overhead: u64) {
        self.allocations += 1;
        self.bytes = self.bytes.saturating_add(size);
        self.overhead = self.overhead.saturating_add(overhead);
    }

    fn merge(&mut self, o: &HeapSums) {
        self.allocations += o.allocations;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.overhead = self.overhead.saturating_add(o.overhead);
    }
}

/// One frame of a stack as printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A return address (`7FF6A0011234`).
    Address(u64),
    /// A frame UMDH already resolved, kept as given: index into
    /// [`Snapshot::symbolic`] (`module!symbol+offset`, maybe with `(file, line)`, or
    /// `module+offset`).
    Symbolic(u32),
}

/// A BackTrace ID and its stack, once printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The ID as written after `BackTrace` (at its first reference).
    pub id: String,
    /// Its frames in [`Snapshot::frames`]; `None` when the stack is never printed.
    pub frames: Option<Range<usize>>,
}

/// What a snapshot log holds, its allocations summed per BackTrace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub header: Header,
    pub modules: Vec<LogModule>,
    pub heaps: Vec<HeapSums>,
    /// In order of first reference.
    pub traces: Vec<Trace>,
    /// The frames of every printed stack, innermost first.
    pub frames: Frames,
    /// The distinct texts of already-resolved frames.
    pub symbolic: Vec<String>,
    /// (trace, size bucket ([`size_bucket`], below [`BUCKETS`]), sums) of the
    /// allocations, by trace and bucket, one entry per pair used.
    pub sizes: Vec<(u32, u8, Totals)>,
    /// (trace, heap address, sums) of the same allocations, by trace and heap, one
    /// entry per pair; heap 0 for allocation lines outside any heap.
    pub by_heap: Vec<(u32, u64, Totals)>,
    pub allocations: u64,
    pub bytes: u64,
    pub overhead: u64,
    /// The largest address seen (allocations, frames, modules): above 2^32 it is a
    /// 64-bit process.
    pub max_address: u64,
    pub encoding: &'static str,
    pub lines: u64,
    /// Each names the file and the line; those about lines in line order.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// The printed frames of trace `t`.
    pub fn frames_of(&self, t: usize) -> Option<impl ExactSizeIterator<Item = Frame> + '_> {
        let r = self.traces.get(t)?.frames.clone()?;
        self.frames.range(r)
    }
}
