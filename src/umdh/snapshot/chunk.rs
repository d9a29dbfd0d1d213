//! One chunk of the log read on its own: its state, the line loop that tries the
//! fast reader first, and the transcoding of a UTF-16 chunk to UTF-8. What a chunk
//! cannot know alone is settled when the chunks are merged ([`super::merge`]).

use super::fast::{fast_allocation, fast_frame, HEX};
use super::sums::{Hot, IdTable, LocalTrace, Pending};
use super::texts::Texts;
use super::warnings::LineWarnings;
use super::{Frame, Header, HeapSums, LogModule};
use crate::model::Totals;
use crate::umdh::lines::{ansi_char, find_newline, Encoding};
use std::collections::HashMap;

/// The heap state of a chunk: a heap it started, none, or the one open where the
/// chunk starts (known only when the chunks are merged).
pub(super) const INHERITED: u32 = u32::MAX - 1;
pub(super) const NO_HEAP: u32 = u32::MAX;

/// What one chunk holds, line numbers counted from its start.
pub(super) struct Chunk {
    pub(super) lines: u64,
    /// The line that stops the whole log, and why; the chunk is read up to it.
    pub(super) fatal: Option<(u64, String)>,
    /// Requested bytes before `fatal`; reading stops when they pass `budget`.
    pub(super) bytes: u128,
    pub(super) budget: u128,
    pub(super) overhead: u64,
    pub(super) allocations: u64,
    pub(super) max_address: u64,
    /// The chunk's first warnings, by its own line numbers.
    pub(super) warnings: LineWarnings,
    pub(super) header: Option<(u64, Header)>,
    pub(super) modules: Vec<LogModule>,
    pub(super) in_modules: bool,
    /// Allocation lines before the chunk's first heap line.
    pub(super) inherited: HeapSums,
    /// The chunk's first heap event: a heap started (line) or ended while the
    /// inherited one is open.
    pub(super) start_while_inherited: Option<u64>,
    pub(super) closes_inherited: bool,
    pub(super) heaps: Vec<HeapSums>,
    pub(super) open: u32,
    pub(super) traces: Vec<LocalTrace>,
    pub(super) hot: Vec<Hot>,
    pub(super) ids: IdTable,
    pub(super) text_ids: HashMap<String, u32>,
    pub(super) frames: Vec<Frame>,
    /// The distinct texts of the resolved frames read ([`Frame::Symbolic`] numbers them).
    pub(super) symbolic: Texts,
    /// Per text of `symbolic`: its number in the log's texts when the log knew it
    /// before this chunk was merged (looked up in parallel, so that the serial merge
    /// numbers only the new ones); `u32::MAX` or missing: not known.
    pub(super) known: Vec<u32>,
    /// Per trace of `traces`: its number in the log when a chunk merged before this
    /// one's wave referenced it (looked up in parallel, like `known`); `u32::MAX` or
    /// missing: not known.
    pub(super) known_traces: Vec<u32>,
    /// The resolved frames of the stack being read, interned when it ends (their
    /// slots prefetched meanwhile): index in `frames`, place in the chunk's text,
    /// hash.
    pub(super) deferred: Vec<(usize, std::ops::Range<usize>, u64)>,
    /// Set by the merge: the frames of the stacks this chunk prints first, in the
    /// order they go into the log's frames, and the log's (provisional) number of
    /// each of `symbolic`; the frames are then copied in parallel.
    pub(super) layout: Vec<std::ops::Range<usize>>,
    pub(super) numbers: Vec<u32>,
    /// Set by the merge: the log's number of each of `traces`, the place of the
    /// chunk's first heap in the log's heaps, and the heap open where it starts
    /// (0: none); the chunk's sums are then added in parallel.
    pub(super) global: Vec<u32>,
    pub(super) heap_base: usize,
    pub(super) inherited_heap: u64,
    pub(super) heap_entries: Vec<(u32, u32, Totals)>,
    /// The traces with allocation lines without a stack before the chunk's first
    /// printing of it (or none): trace, first such line, their count.
    pub(super) pending: Vec<(u32, u64, u64)>,
    pub(super) batch: Vec<Pending>,
    /// The batch entry whose stack is being read, and where its frames start.
    pub(super) stack: Option<(usize, usize)>,
    pub(super) first_ansi_line: Option<u64>,
    pub(super) first_bad_utf16_line: Option<u64>,
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
            warnings: LineWarnings::default(),
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
            symbolic: Texts::default(),
            known: Vec::new(),
            known_traces: Vec::new(),
            deferred: Vec::new(),
            layout: Vec::new(),
            numbers: Vec::new(),
            global: Vec::new(),
            heap_base: 0,
            inherited_heap: 0,
            heap_entries: Vec::new(),
            pending: Vec::new(),
            batch: Vec::new(),
            stack: None,
            first_ansi_line: None,
            first_bad_utf16_line: None,
        }
    }

    pub(super) fn warn(&mut self, line: u64, message: impl std::fmt::Display) {
        self.warnings.push(line, message);
    }

    pub(super) fn fatal(&mut self, line: u64, message: String) -> bool {
        self.fatal = Some((line, message));
        false
    }

    /// Ends the stack being read (`buf`: the chunk's text).
    pub(super) fn end_stack(&mut self, buf: &[u8]) {
        if !self.deferred.is_empty() {
            let deferred = std::mem::take(&mut self.deferred);
            for (_, _, hash) in &deferred {
                self.symbolic.prefetch_text(*hash);
            }
            for (f, text, hash) in &deferred {
                let (i, _) = self.symbolic.intern(&buf[text.clone()], *hash);
                self.frames[*f] = Frame::Symbolic(i);
            }
            self.deferred = deferred;
            self.deferred.clear();
        }
        if let Some((i, start)) = self.stack.take() {
            self.batch[i].frames = start..self.frames.len();
        }
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
                    self.end_stack(buf);
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
pub(super) fn read_chunk(bytes: &[u8], encoding: Encoding, odd: bool, budget: u128) -> Chunk {
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
