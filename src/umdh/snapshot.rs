//! Snapshot logs (`umdh -p:PID -f:FILE`): header, loaded modules, per-heap
//! allocations, and each stack printed the first time its BackTrace ID appears.
//!
//! [`parse`] maps the log and reads it in chunks of about [`CHUNK_BYTES`], cut at
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

use super::lines::{ansi_char, find_newline, Encoding};
use super::{hex, UmdhError};
use crate::model::{Totals, SIZE_BUCKETS};
use memmap2::Mmap;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

/// The size of the chunks the log is read in, in parallel.
pub const CHUNK_BYTES: usize = 32 << 20;

/// The page size the read pages are given back in.
const PAGE: usize = 4096;

/// Size buckets per BackTrace: [`SIZE_BUCKETS`] and the one above the last.
pub const BUCKETS: usize = SIZE_BUCKETS.len() + 1;

/// The size bucket of an allocation of `size` bytes: the number of bounds of
/// [`SIZE_BUCKETS`] at most `size` (the table read's `size_bucket`; a test checks
/// they agree). Every bound is a power of two, so it depends only on the size's
/// highest bit.
#[inline]
pub fn size_bucket(size: u64) -> usize {
    usize::from(BUCKET_BY_LOG2[(63 - (size | 1).leading_zeros()) as usize])
}

const BUCKET_BY_LOG2: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        let mut k = 0;
        while k < SIZE_BUCKETS.len() {
            assert!(SIZE_BUCKETS[k].is_power_of_two());
            if SIZE_BUCKETS[k] <= 1u64 << i {
                table[i] += 1;
            }
            k += 1;
        }
        i += 1;
    }
    table
};

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
    pub frames: Vec<Frame>,
    /// The distinct texts of already-resolved frames.
    pub symbolic: Vec<String>,
    /// Per trace: its allocations by size bucket ([`size_bucket`]).
    pub sizes: Vec<[Totals; BUCKETS]>,
    /// (trace, heap address, sums) of the same allocations: a pair may repeat; heap 0
    /// for allocation lines outside any heap.
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
    pub fn frames_of(&self, t: usize) -> Option<&[Frame]> {
        let r = self.traces.get(t)?.frames.clone()?;
        self.frames.get(r)
    }
}

/// The fields of an allocation line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocationLine<'a> {
    pub size: u64,
    pub overhead: u64,
    pub address: u64,
    /// The BackTrace ID as written.
    pub id: &'a str,
}

/// `SIZE bytes + OVERHEAD at ADDRESS by BackTraceID`, all hexadecimal: `None` when
/// the line is not an allocation line, `Some(Err)` when it starts like one but is
/// cut or holds a number that does not fit 64 bits.
pub fn parse_allocation(line: &str) -> Option<Result<AllocationLine<'_>, String>> {
    let mut t = line.split_ascii_whitespace();
    let size = t.next()?;
    if t.next()? != "bytes" {
        return None;
    }
    let size = hex(size)?;
    let bad = |what: &str| Some(Err(format!("an allocation line {what}: \"{line}\"")));
    let num = |tok: Option<&str>, name: &str| -> Result<u64, String> {
        match tok.and_then(hex) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(format!(
                "the {name} of an allocation line does not fit 64 bits: \"{line}\""
            )),
            None => Err(format!(
                "an allocation line cut short or malformed (no {name}): \"{line}\""
            )),
        }
    };
    let Ok(size) = size else {
        return Some(Err(format!(
            "the size of an allocation line does not fit 64 bits: \"{line}\""
        )));
    };
    if t.next() != Some("+") {
        return bad("cut short or malformed (no \"+ OVERHEAD\")");
    }
    let overhead = match num(t.next(), "overhead") {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if t.next() != Some("at") {
        return bad("cut short or malformed (no \"at ADDRESS\")");
    }
    let address = match num(t.next(), "address") {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if t.next() != Some("by") {
        return bad("cut short or malformed (no \"by BackTraceID\")");
    }
    match t.next().and_then(|b| b.strip_prefix("BackTrace")) {
        Some(id) if !id.is_empty() => Some(Ok(AllocationLine {
            size,
            overhead,
            address,
            id,
        })),
        _ => bad("cut short or malformed (no BackTrace ID)"),
    }
}

/// The header's fields; `None` when the line is not the header.
fn parse_header(line: &str) -> Option<Header> {
    let rest = line.trim_start_matches('/').trim().strip_prefix("UMDH:")?;
    let mut h = Header::default();
    if let Some(v) = rest.trim().strip_prefix("version") {
        let v = v.trim_start();
        let end = v.find([':', ' ']).unwrap_or(v.len());
        h.version = Some(v[..end].to_owned()).filter(|v| !v.is_empty());
    }
    for part in rest.split(" - ") {
        let part = part.trim();
        if let Some(i) = part.find("Logtime") {
            let t = part[i + "Logtime".len()..].trim();
            h.logtime_filetime = logtime_filetime(t);
            h.logtime = Some(t.to_owned());
        } else if let Some(m) = part.strip_prefix("Machine=") {
            h.machine = Some(m.trim().to_owned());
        } else if let Some(p) = part.strip_prefix("PID=") {
            h.pid = p.trim().parse().ok();
        }
    }
    Some(h)
}

/// `YYYY-MM-DD HH:MM[:SS]` as a FILETIME.
pub fn logtime_filetime(t: &str) -> Option<u64> {
    let (date, time) = t.split_once(' ')?;
    let d: Vec<u32> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let c: Vec<u32> = time
        .trim()
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [y, mo, da] = d[..] else { return None };
    let (h, mi, s) = match c[..] {
        [h, m] => (h, m, 0),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(da).ok()?)
            .ok()?;
    let at = date
        .with_hms(
            u8::try_from(h).ok()?,
            u8::try_from(mi).ok()?,
            u8::try_from(s).ok()?,
        )
        .ok()?
        .assume_utc();
    let unix = u64::try_from(at.unix_timestamp()).ok()?;
    Some((unix + 11_644_473_600) * 10_000_000)
}

/// A module-list line `//  BASE  SIZE  PATH`.
fn parse_module(line: &str) -> Option<Result<LogModule, String>> {
    let rest = line.strip_prefix("//")?.trim_start();
    let (base, rest) = rest.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (size, path) = rest.split_once(char::is_whitespace)?;
    let (base, size) = (hex(base)?, hex(size)?);
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    match (base, size) {
        (Ok(base), Ok(size)) => Some(Ok(LogModule {
            base,
            size,
            path: path.to_owned(),
        })),
        _ => Some(Err(format!(
            "a module's base or size does not fit 64 bits: \"{line}\""
        ))),
    }
}

/// The heap address of `Start of data for heap @ 150000 - - -` and the like.
fn heap_of(line: &str) -> Option<Result<u64, ()>> {
    let after = &line[line.find('@')? + 1..];
    hex(after.split_whitespace().next()?)
}

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

/// The value of each byte as a hexadecimal digit, 0xFF for the others.
const HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 1 to 16 hexadecimal digits at `pos`: the value and the position after them;
/// `None` otherwise (the general reader then decides).
#[inline(always)]
fn fast_hex(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let start = pos;
    let mut v = 0u64;
    while let Some(&b) = buf.get(pos) {
        let d = HEX[usize::from(b)];
        if d == 0xFF {
            break;
        }
        v = (v << 4) | u64::from(d);
        pos += 1;
    }
    (pos > start && pos - start <= 16).then_some((v, pos))
}

#[inline(always)]
fn expect(buf: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    (buf.get(pos..pos + word.len())? == word).then_some(pos + word.len())
}

/// The start of the next line when the line ends at `pos`, `None` when it does not.
#[inline(always)]
fn line_end(buf: &[u8], pos: usize) -> Option<usize> {
    match buf.get(pos..)? {
        [] => Some(pos),
        [b'\n', ..] => Some(pos + 1),
        [b'\r', b'\n', ..] => Some(pos + 2),
        [b'\r'] => Some(pos + 1),
        _ => None,
    }
}

/// An allocation line exactly as UMDH writes it (`SIZE bytes + OVERHEAD at ADDRESS
/// by BackTraceID`, single spaces, a hexadecimal ID of at most 16 digits, nothing
/// after it): its numbers, the ID's range and the next line's start. Anything else
/// goes to the general reader, which reads these lines the same way.
#[inline(always)]
fn fast_allocation(buf: &[u8], pos: usize) -> Option<([u64; 4], Range<usize>, usize)> {
    let (size, p) = fast_hex(buf, pos)?;
    let p = expect(buf, p, b" bytes + ")?;
    let (overhead, p) = fast_hex(buf, p)?;
    let p = expect(buf, p, b" at ")?;
    let (address, p) = fast_hex(buf, p)?;
    let id_start = expect(buf, p, b" by BackTrace")?;
    let (id, p) = fast_hex(buf, id_start)?;
    let next = line_end(buf, p)?;
    Some(([size, overhead, address, id], id_start..p, next))
}

/// A frame line that is an indented address and nothing else: the address and the
/// next line's start.
#[inline(always)]
fn fast_frame(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    while matches!(buf.get(pos), Some(b'\t' | b' ')) {
        pos += 1;
    }
    let (a, p) = fast_hex(buf, pos)?;
    Some((a, line_end(buf, p)?))
}

/// A frame as the general reader sees it.
enum ParsedFrame<'a> {
    Address(u64),
    Symbolic(&'a str),
}

/// A stack frame line (already trimmed).
fn parse_frame(t: &str) -> Option<Result<ParsedFrame<'_>, ()>> {
    let first = t.split_ascii_whitespace().next()?;
    match hex(first) {
        Some(Ok(a)) => Some(Ok(ParsedFrame::Address(a))),
        Some(Err(())) => Some(Err(())),
        None if first.contains('!') || first.contains('+') => Some(Ok(ParsedFrame::Symbolic(t))),
        None => None,
    }
}

/// The heap state of a chunk: a heap it started, none, or the one open where the
/// chunk starts (known only when the chunks are merged).
const INHERITED: u32 = u32::MAX - 1;
const NO_HEAP: u32 = u32::MAX;

/// A BackTrace ID as seen by one chunk: what is needed rarely.
struct LocalTrace {
    /// The ID as first written in the chunk; its value when it is hexadecimal.
    id: String,
    num: Option<u64>,
    /// The chunk's first printing: its line and frames in [`Chunk::frames`].
    def: Option<(u64, Range<usize>)>,
    /// The lines of later printings.
    dups: Vec<u64>,
}

/// A BackTrace's sums in a chunk: what every allocation line touches, in one
/// aligned block (the first cache line holds the heap sums and the flag).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Hot {
    /// The sums of the allocations in heap `heap` not yet flushed into
    /// [`Chunk::heap_entries`] (flushed when the heap changes).
    heap_sums: Totals,
    /// Allocation lines without a stack before the chunk's first printing of the
    /// stack: the first one's line (0: none) and their count.
    pending_line: u64,
    pending: u64,
    heap: u32,
    /// The chunk printed the stack.
    defined: bool,
    sizes: [Totals; BUCKETS],
}

const HOT: Hot = Hot {
    heap_sums: Totals {
        allocations: 0,
        bytes: 0,
    },
    pending_line: 0,
    pending: 0,
    heap: NO_HEAP,
    defined: false,
    sizes: [Totals {
        allocations: 0,
        bytes: 0,
    }; BUCKETS],
};

/// Hexadecimal BackTrace IDs by value: open addressing, linear probing, one 16-byte
/// slot per probe, so that a batch of lookups can be prefetched.
struct IdTable {
    slots: Vec<(u64, u32)>,
    len: usize,
    shift: u32,
}

impl IdTable {
    const EMPTY: u32 = u32::MAX;

    fn new() -> Self {
        IdTable {
            slots: vec![(0, Self::EMPTY); 1 << 4],
            len: 0,
            shift: 64 - 4,
        }
    }

    #[inline(always)]
    fn slot(&self, id: u64) -> usize {
        (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline(always)]
    fn prefetch(&self, id: u64) {
        prefetch(&self.slots[self.slot(id)]);
    }

    #[inline(always)]
    fn get(&self, id: u64) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(id);
        loop {
            let (k, v) = self.slots[i];
            if v == Self::EMPTY {
                return None;
            }
            if k == id {
                return Some(v);
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, id: u64, value: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let grown = vec![(0, Self::EMPTY); self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            self.shift -= 1;
            self.len = 0;
            for (k, v) in old {
                if v != Self::EMPTY {
                    self.insert(k, v);
                }
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(id);
        while self.slots[i].1 != Self::EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = (id, value);
        self.len += 1;
    }
}

#[inline(always)]
fn prefetch<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(at).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// An allocation line waiting in the batch.
#[derive(Clone)]
struct Pending {
    /// The trace, or [`IdTable::EMPTY`] until the hexadecimal `id` is looked up.
    trace: u32,
    id: u64,
    size: u64,
    line: u64,
    /// The stack printed after it, in [`Chunk::frames`] (empty: none).
    frames: Range<usize>,
    /// The ID's text in the chunk's text.
    id_text: Range<usize>,
}

/// Allocation lines are summed in batches, so that the lookups and the sums of a
/// batch can be prefetched a few lines ahead (the sums of 20,000 stacks do not fit
/// a core's cache).
const BATCH: usize = 1024;
const AHEAD: usize = 32;

/// What one chunk holds, line numbers counted from its start.
struct Chunk {
    lines: u64,
    /// The line that stops the whole log, and why; the chunk is read up to it.
    fatal: Option<(u64, String)>,
    /// Requested bytes before `fatal`; reading stops when they pass `budget`.
    bytes: u128,
    budget: u128,
    overhead: u64,
    allocations: u64,
    max_address: u64,
    warnings: Vec<(u64, String)>,
    header: Option<(u64, Header)>,
    modules: Vec<LogModule>,
    in_modules: bool,
    /// Allocation lines before the chunk's first heap line.
    inherited: HeapSums,
    /// The chunk's first heap event: a heap started (line) or ended while the
    /// inherited one is open.
    start_while_inherited: Option<u64>,
    closes_inherited: bool,
    heaps: Vec<HeapSums>,
    open: u32,
    traces: Vec<LocalTrace>,
    hot: Vec<Hot>,
    ids: IdTable,
    text_ids: HashMap<String, u32>,
    frames: Vec<Frame>,
    symbolic: Vec<String>,
    heap_entries: Vec<(u32, u32, Totals)>,
    batch: Vec<Pending>,
    /// The batch entry whose stack is being read, and where its frames start.
    stack: Option<(usize, usize)>,
    first_ansi_line: Option<u64>,
    first_bad_utf16_line: Option<u64>,
}

impl Chunk {
    fn new(budget: u128) -> Self {
        Chunk {
            lines: 0,
            fatal: None,
            bytes: 0,
            budget,
            overhead: 0,
            allocations: 0,
            max_address: 0,
            warnings: Vec::new(),
            header: None,
            modules: Vec::new(),
            in_modules: false,
            inherited: HeapSums::default(),
            start_while_inherited: None,
            closes_inherited: false,
            heaps: Vec::new(),
            open: INHERITED,
            traces: Vec::new(),
            hot: Vec::new(),
            ids: IdTable::new(),
            text_ids: HashMap::new(),
            frames: Vec::new(),
            symbolic: Vec::new(),
            heap_entries: Vec::new(),
            batch: Vec::new(),
            stack: None,
            first_ansi_line: None,
            first_bad_utf16_line: None,
        }
    }

    fn warn(&mut self, line: u64, message: impl std::fmt::Display) {
        self.warnings.push((line, message.to_string()));
    }

    fn fatal(&mut self, line: u64, message: String) -> bool {
        self.fatal = Some((line, message));
        false
    }

    fn new_trace(&mut self, id: &str, num: Option<u64>) -> u32 {
        self.traces.push(LocalTrace {
            id: id.to_owned(),
            num,
            def: None,
            dups: Vec::new(),
        });
        self.hot.push(HOT);
        let t = (self.traces.len() - 1) as u32;
        if let Some(n) = num {
            self.ids.insert(n, t);
        }
        t
    }

    /// The trace of an ID written `id` (the general reader's lookup).
    fn trace(&mut self, id: &str) -> u32 {
        match hex(id) {
            Some(Ok(n)) => match self.ids.get(n) {
                Some(t) => t,
                None => self.new_trace(id, Some(n)),
            },
            _ => {
                if let Some(&t) = self.text_ids.get(id) {
                    return t;
                }
                let t = self.new_trace(id, None);
                self.text_ids.insert(id.to_owned(), t);
                t
            }
        }
    }

    /// Ends the stack being read.
    fn end_stack(&mut self) {
        if let Some((i, start)) = self.stack.take() {
            self.batch[i].frames = start..self.frames.len();
        }
    }

    /// One allocation line (`trace` unknown for a hexadecimal ID looked up later);
    /// `false` when it stops the log. The caller has ended the previous stack.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn allocation(
        &mut self,
        buf: &[u8],
        line: u64,
        size: u64,
        overhead: u64,
        address: u64,
        trace: u32,
        id: u64,
        id_text: Range<usize>,
    ) -> bool {
        self.bytes += u128::from(size);
        if self.bytes > self.budget {
            self.bytes -= u128::from(size);
            return self.fatal(
                line,
                "the allocation sizes add up to more than 2^64 bytes".into(),
            );
        }
        self.overhead = self.overhead.saturating_add(overhead);
        self.allocations += 1;
        self.max_address = self.max_address.max(address);
        match self.open {
            NO_HEAP => {}
            INHERITED => self.inherited.add(size, overhead),
            h => self.heaps[h as usize].add(size, overhead),
        }
        if self.batch.len() == BATCH {
            self.flush(buf);
        }
        self.batch.push(Pending {
            trace,
            id,
            size,
            line,
            frames: 0..0,
            id_text,
        });
        self.stack = Some((self.batch.len() - 1, self.frames.len()));
        true
    }

    /// Sums the batch into the traces, in file order. The heap open now is the
    /// heap of every line in the batch: the batch is flushed before a heap line.
    fn flush(&mut self, buf: &[u8]) {
        self.end_stack();
        let mut batch = std::mem::take(&mut self.batch);
        let n = batch.len();
        // The IDs, looked up a few lines ahead; new ones in file order.
        for i in 0..n {
            if let Some(p) = batch.get(i + AHEAD) {
                if p.trace == IdTable::EMPTY {
                    self.ids.prefetch(p.id);
                }
            }
            let p = &mut batch[i];
            if p.trace == IdTable::EMPTY {
                p.trace = match self.ids.get(p.id) {
                    Some(t) => t,
                    None => {
                        // The fast reader's IDs are ASCII hexadecimal digits.
                        let text = std::str::from_utf8(&buf[p.id_text.clone()]).unwrap_or("");
                        self.new_trace(text, Some(p.id))
                    }
                };
            }
        }
        let open = self.open;
        for i in 0..n {
            if let Some(p) = batch.get(i + AHEAD) {
                let h = &self.hot[p.trace as usize];
                prefetch(h);
                prefetch(&h.sizes[size_bucket(p.size)]);
            }
            let p = &batch[i];
            let t = p.trace as usize;
            let h = &mut self.hot[t];
            let b = &mut h.sizes[size_bucket(p.size)];
            b.allocations += 1;
            b.bytes = b.bytes.wrapping_add(p.size);
            if h.heap != open {
                if h.heap_sums.allocations > 0 {
                    self.heap_entries.push((p.trace, h.heap, h.heap_sums));
                }
                h.heap = open;
                h.heap_sums = Totals::default();
            }
            h.heap_sums.allocations += 1;
            h.heap_sums.bytes = h.heap_sums.bytes.wrapping_add(p.size);
            if p.frames.is_empty() {
                if !h.defined {
                    if h.pending == 0 {
                        h.pending_line = p.line;
                    }
                    h.pending += 1;
                }
            } else if h.defined {
                // A second printing: its frames stay unused in the chunk.
                self.traces[t].dups.push(p.line);
            } else {
                h.defined = true;
                self.traces[t].def = Some((p.line, p.frames.clone()));
            }
        }
        batch.clear();
        self.batch = batch;
    }

    /// Reads `buf` (UTF-8 or ANSI text, whole lines).
    fn read(&mut self, buf: &[u8]) {
        let mut pos = 0;
        let mut text = String::new();
        while pos < buf.len() {
            self.lines += 1;
            let line = self.lines;
            let b = buf[pos];
            if HEX[usize::from(b)] != 0xFF {
                if let Some(([size, overhead, address, id], range, next)) =
                    fast_allocation(buf, pos)
                {
                    self.end_stack();
                    self.in_modules = false;
                    if !self.allocation(
                        buf,
                        line,
                        size,
                        overhead,
                        address,
                        IdTable::EMPTY,
                        id,
                        range,
                    ) {
                        return;
                    }
                    pos = next;
                    continue;
                }
            } else if (b == b'\t' || b == b' ') && self.stack.is_some() {
                if let Some((a, next)) = fast_frame(buf, pos) {
                    self.max_address = self.max_address.max(a);
                    self.frames.push(Frame::Address(a));
                    pos = next;
                    continue;
                }
            }
            let end = find_newline(&buf[pos..]).map_or(buf.len(), |e| pos + e);
            let mut raw = &buf[pos..end];
            pos = (end + 1).min(buf.len());
            if let [head @ .., b'\r'] = raw {
                raw = head;
            }
            let s = match std::str::from_utf8(raw) {
                Ok(s) => s,
                Err(_) => {
                    self.first_ansi_line.get_or_insert(line);
                    text.clear();
                    text.extend(raw.iter().map(|&b| ansi_char(b)));
                    text.as_str()
                }
            };
            if !self.line(buf, line, s) {
                return;
            }
        }
        self.flush(buf);
    }

    /// Any line but the fast ones; `false` when it stops the log.
    fn line(&mut self, buf: &[u8], n: u64, raw: &str) -> bool {
        let indented = raw.starts_with([' ', '\t']);
        let t = raw.trim();

        // Stack frames: indented lines right after an allocation line.
        if self.stack.is_some() {
            if t.is_empty() || !indented {
                self.end_stack();
            } else {
                match parse_frame(t) {
                    Some(Ok(ParsedFrame::Address(a))) => {
                        self.max_address = self.max_address.max(a);
                        self.frames.push(Frame::Address(a));
                        return true;
                    }
                    Some(Ok(ParsedFrame::Symbolic(text))) => {
                        self.symbolic.push(text.to_owned());
                        self.frames
                            .push(Frame::Symbolic((self.symbolic.len() - 1) as u32));
                        return true;
                    }
                    Some(Err(())) => {
                        return self.fatal(
                            n,
                            format!("a stack frame's address does not fit 64 bits: \"{t}\""),
                        )
                    }
                    None => {
                        self.warn(
                            n,
                            format_args!("not a stack frame, the stack ends before it: \"{t}\""),
                        );
                        self.end_stack();
                        return true;
                    }
                }
            }
        }
        if t.is_empty() {
            return true;
        }

        if self.in_modules {
            if t.contains("Process modules enumerated") || !t.starts_with("//") {
                self.in_modules = false;
            } else {
                match parse_module(t) {
                    Some(Ok(m)) => {
                        self.max_address = self.max_address.max(m.base.saturating_add(m.size));
                        self.modules.push(m);
                    }
                    Some(Err(e)) => return self.fatal(n, e),
                    None => {}
                }
                return true;
            }
        }
        if t.starts_with("//") {
            if t.contains("Loaded modules") {
                self.in_modules = true;
            } else if self.header.is_none() {
                if let Some(h) = parse_header(t) {
                    self.header = Some((n, h));
                }
            }
            return true;
        }
        // Allocation lines start with a hex digit; heap lines with `*-`.
        let heap_line = !t.as_bytes()[0].is_ascii_hexdigit();
        if heap_line && t.contains("Start of data for heap") {
            match heap_of(t) {
                Some(Ok(heap)) => {
                    self.flush(buf);
                    match self.open {
                        NO_HEAP => {}
                        INHERITED => self.start_while_inherited = Some(n),
                        open => {
                            let h = self.heaps[open as usize].heap;
                            self.warn(n, format_args!("heap {h:X} has no \"End of data\" line before the next heap starts"));
                        }
                    }
                    self.heaps.push(HeapSums {
                        heap,
                        ..Default::default()
                    });
                    self.open = (self.heaps.len() - 1) as u32;
                }
                Some(Err(())) => {
                    return self.fatal(n, format!("the heap address does not fit 64 bits: \"{t}\""))
                }
                None => self.warn(
                    n,
                    format_args!("a heap line without a heap address: \"{t}\""),
                ),
            }
            return true;
        }
        if heap_line && t.contains("End of data for heap") {
            self.flush(buf);
            match self.open {
                NO_HEAP => {}
                INHERITED => self.closes_inherited = true,
                open => self.heaps[open as usize].complete = true,
            }
            self.open = NO_HEAP;
            return true;
        }
        match parse_allocation(t) {
            Some(Ok(a)) => {
                // The IDs of the batch are looked up first, so that traces are made
                // in file order.
                self.flush(buf);
                let trace = self.trace(a.id);
                self.allocation(buf, n, a.size, a.overhead, a.address, trace, 0, 0..0)
            }
            Some(Err(e)) if e.contains("64 bits") => self.fatal(n, e),
            Some(Err(e)) => {
                self.warn(n, format_args!("{e}: skipped"));
                true
            }
            None => true,
        }
    }

    /// Flushes the per-trace heap sums.
    fn finish(&mut self) {
        for (t, h) in self.hot.iter_mut().enumerate() {
            if h.heap_sums.allocations > 0 {
                self.heap_entries.push((t as u32, h.heap, h.heap_sums));
                h.heap_sums = Totals::default();
            }
        }
    }
}

/// Transcodes UTF-16 `bytes` (whole lines) to UTF-8, unpaired surrogates replaced;
/// the first line with one, or with the file's dangling odd byte (`odd`), is noted.
/// An odd byte after the last line end makes one more (empty) line, as the line
/// reader counts it.
fn transcode(bytes: &[u8], le: bool, odd: bool, first_bad: &mut Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 2 + 16);
    let units = bytes.chunks_exact(2).map(|c| {
        if le {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let mut line = 1u64;
    let mut tmp = [0u8; 4];
    for c in char::decode_utf16(units) {
        let c = c.unwrap_or_else(|_| {
            first_bad.get_or_insert(line);
            char::REPLACEMENT_CHARACTER
        });
        if c == '\n' {
            line += 1;
        }
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
    }
    if odd {
        first_bad.get_or_insert(line);
        if out.last().is_none_or(|&b| b == b'\n') {
            out.push(b'\r');
        }
    }
    out
}

/// Reads one chunk of the log.
fn read_chunk(bytes: &[u8], encoding: Encoding, odd: bool, budget: u128) -> Chunk {
    let mut c = Chunk::new(budget);
    match encoding {
        Encoding::Utf8OrAnsi => c.read(bytes),
        Encoding::Utf16Le | Encoding::Utf16Be => {
            let mut bad = None;
            let text = transcode(bytes, encoding == Encoding::Utf16Le, odd, &mut bad);
            c.first_bad_utf16_line = bad;
            c.read(&text);
        }
    }
    c.finish();
    c
}

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
    let io = |source| UmdhError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size == 0 {
        return Err(UmdhError::NotUmdh {
            path: path.to_owned(),
            reason: "the file is empty".into(),
        });
    }
    // SAFETY: the mapping is read-only; as with dumps, a log truncated by another
    // process while we read it would fault, and logs are not written in place.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_lines() {
        assert_eq!(
            parse_allocation("D5C bytes + 1C at 163B28 by BackTrace00004"),
            Some(Ok(AllocationLine {
                size: 0xD5C,
                overhead: 0x1C,
                address: 0x163B28,
                id: "00004"
            }))
        );
        assert!(parse_allocation("D5C bytes + 1C at").unwrap().is_err());
        assert!(parse_allocation("hello world").is_none());
    }

    #[test]
    fn header() {
        let h = parse_header(
            "// UMDH: version 7.04.0001: Logtime 2024-03-05 14:17 - Machine=BUILD01 - PID=2644",
        )
        .unwrap();
        assert_eq!(h.version.as_deref(), Some("7.04.0001"));
        assert_eq!(h.machine.as_deref(), Some("BUILD01"));
        assert_eq!(h.pid, Some(2644));
        assert_eq!(h.logtime.as_deref(), Some("2024-03-05 14:17"));
        assert!(h.logtime_filetime.is_some());
    }
}
