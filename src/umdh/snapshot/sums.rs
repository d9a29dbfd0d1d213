//! The per-BackTrace sums of a chunk: the traces it knows, their IDs looked up in
//! an open-addressing table, and the allocation lines summed into them in batches
//! with the lookups and the sums prefetched a few lines ahead.

use super::chunk::{Chunk, INHERITED, NO_HEAP};
use super::{size_bucket, BUCKETS};
use crate::model::Totals;
use crate::umdh::hex;
use std::ops::Range;

/// An ID's text as written, kept without an allocation when short (as UMDH's are):
/// a chunk sees each BackTrace it references, and only those new to the log need
/// a `String`.
pub(super) enum IdText {
    Short { len: u8, bytes: [u8; 22] },
    Long(Box<str>),
}

impl IdText {
    fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if usize::from(len) <= 22 => {
                let mut bytes = [0; 22];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                IdText::Short { len, bytes }
            }
            _ => IdText::Long(s.into()),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // A whole `str` was copied: always UTF-8.
            IdText::Short { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            IdText::Long(s) => s,
        }
    }
}

/// A BackTrace ID as seen by one chunk: what is needed rarely.
pub(super) struct LocalTrace {
    /// The ID as first written in the chunk; its value when it is hexadecimal.
    pub(super) id: IdText,
    /// The ID as a `String`, made in parallel before the merge when the log may not
    /// know the ID yet (the merge moves it into the log's trace).
    pub(super) id_string: Option<String>,
    pub(super) num: Option<u64>,
    /// The chunk's first printing: its line and frames in [`Chunk::frames`].
    pub(super) def: Option<(u64, Range<usize>)>,
    /// The lines of later printings.
    pub(super) dups: Vec<u64>,
}

/// A BackTrace's sums in a chunk: what every allocation line touches, in one
/// aligned block (the first cache line holds the heap sums and the flag).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Hot {
    /// The sums of the allocations in heap `heap` not yet flushed into
    /// [`Chunk::heap_entries`] (flushed when the heap changes).
    heap_sums: Totals,
    /// Allocation lines without a stack before the chunk's first printing of the
    /// stack: the first one's line (0: none) and their count.
    pub(super) pending_line: u64,
    pub(super) pending: u64,
    heap: u32,
    /// The chunk printed the stack.
    defined: bool,
    pub(super) sizes: [Totals; BUCKETS],
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
pub(super) struct IdTable {
    slots: Vec<(u64, u32)>,
    len: usize,
    shift: u32,
}

impl IdTable {
    pub(super) const EMPTY: u32 = u32::MAX;

    pub(super) fn new() -> Self {
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
pub(super) fn prefetch<T>(at: &T) {
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
pub(super) struct Pending {
    /// The trace, or [`IdTable::EMPTY`] until the hexadecimal `id` is looked up.
    trace: u32,
    id: u64,
    size: u64,
    line: u64,
    /// The stack printed after it, in [`Chunk::frames`] (empty: none).
    pub(super) frames: Range<usize>,
    /// The ID's text in the chunk's text.
    id_text: Range<usize>,
}

/// Allocation lines are summed in batches, so that the lookups and the sums of a
/// batch can be prefetched a few lines ahead (the sums of 20,000 stacks do not fit
/// a core's cache).
const BATCH: usize = 1024;
const AHEAD: usize = 32;

impl Chunk {
    fn new_trace(&mut self, id: &str, num: Option<u64>) -> u32 {
        self.traces.push(LocalTrace {
            id: IdText::new(id),
            id_string: None,
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
    pub(super) fn trace(&mut self, id: &str) -> u32 {
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

    /// One allocation line (`trace` unknown for a hexadecimal ID looked up later);
    /// `false` when it stops the log. The caller has ended the previous stack.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn allocation(
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
    pub(super) fn flush(&mut self, buf: &[u8]) {
        self.end_stack(buf);
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

    /// Flushes the per-trace heap sums, and lists the traces referenced before
    /// the chunk prints their stack (few: the merge then need not go through every
    /// trace's sums for them).
    pub(super) fn finish(&mut self) {
        for (t, h) in self.hot.iter_mut().enumerate() {
            if h.heap_sums.allocations > 0 {
                self.heap_entries.push((t as u32, h.heap, h.heap_sums));
                h.heap_sums = Totals::default();
            }
            if h.pending > 0 {
                self.pending.push((t as u32, h.pending_line, h.pending));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdText;

    #[test]
    fn id_texts_short_and_long_read_back_as_written() {
        for s in [
            "",
            "1A6A0000",
            "00053",
            &"7".repeat(22),
            &"7".repeat(23),
            "ID-é",
        ] {
            assert_eq!(IdText::new(s).as_str(), s);
        }
        assert!(matches!(IdText::new(&"F".repeat(22)), IdText::Short { .. }));
        assert!(matches!(IdText::new(&"F".repeat(23)), IdText::Long(_)));
    }
}
