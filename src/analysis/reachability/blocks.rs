//! The outstanding blocks, sorted by address, and the index that answers "which
//! block holds this address?" for every word of a dump.
//!
//! Most words of a process are not pointers into a tracked block, so a lookup
//! first tests the range `[lowest block, end of highest block)`, then the page
//! table of [`BlockIndex`], and only then looks at the one or two blocks of that
//! page.

use crate::dump::stream::AllocationStream;

/// Blocks at least this large are searched apart.
const LARGE_BLOCK: u64 = 1 << 20;

/// The blocks that take part in the scan, sorted by address and disjoint.
#[derive(Debug, Default)]
pub struct Blocks {
    /// `(start, end)` of each block; the end is exclusive, and a block of size 0
    /// spans one byte, so that a pointer to its address still finds it. Start and
    /// end sit side by side: a lookup reads both from one cache line.
    pub bounds: Vec<(u64, u64)>,
    /// The size the record gives.
    pub size: Vec<u64>,
    /// The record's raw stack index.
    pub stack: Vec<u32>,
    /// Records left out because they overlap an earlier block: `(stack, size)`.
    pub not_judged: Vec<(u32, u64)>,
    /// What was wrong with the records, for the section's warnings.
    pub warnings: Vec<String>,
}

impl Blocks {
    /// Reads every allocation record of `stream`, sorted by address. A record that
    /// overlaps an earlier one cannot be told apart from it by a pointer: it is left
    /// out of the scan (and counted as not judged) with a warning.
    pub fn read(stream: &AllocationStream<'_>) -> Self {
        use rayon::prelude::*;
        let mut records: Vec<(u64, u64, u32, u32)> = stream
            .allocation_table()
            .par_iter()
            .enumerate()
            .map(|(i, r)| {
                let r = crate::dump::stream::AllocationRecord::decode(r);
                (r.address.0, r.size, r.stack, i as u32)
            })
            .collect();
        // The record index makes the order total, so equal blocks sort the same way
        // at any thread count.
        records.par_sort_unstable();
        let mut out = Blocks::default();
        let mut kept_end = 0u64;
        let (mut overlaps, mut wraps) = (0u64, 0u64);
        for (address, size, stack, index) in records {
            let end = match address.checked_add(size.max(1)) {
                Some(end) => end,
                None => {
                    if wraps == 0 {
                        out.warnings.push(format!(
                            "allocation record {index}: address 0x{address:x} plus size {size} passes the top of the address space; the block is taken to end there"
                        ));
                    }
                    wraps += 1;
                    u64::MAX
                }
            };
            if address < kept_end {
                if overlaps < 3 {
                    out.warnings.push(format!(
                        "allocation record {index}: the block at 0x{address:x} ({size} bytes) overlaps an earlier block (which ends at 0x{kept_end:x}); it is not judged"
                    ));
                }
                overlaps += 1;
                out.not_judged.push((stack, size));
                continue;
            }
            kept_end = end;
            out.bounds.push((address, end));
            out.size.push(size);
            out.stack.push(stack);
        }
        if overlaps > 3 {
            out.warnings.push(format!(
                "{overlaps} allocation records in all overlap an earlier block and are not judged"
            ));
        }
        if wraps > 1 {
            out.warnings.push(format!(
                "{wraps} allocation records in all pass the top of the address space"
            ));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Where block `b` starts.
    pub fn start(&self, b: usize) -> u64 {
        self.bounds[b].0
    }

    /// Where block `b` ends (exclusive).
    pub fn end(&self, b: usize) -> u64 {
        self.bounds[b].1
    }
}

/// Finds the block holding an address.
///
/// Small blocks are found through a page table: the 4 KiB pages their blocks
/// cover are grouped into runs ("segments", a few per heap region, searched by
/// address), and each page of a run holds the index of the first block that ends
/// after the page's start. A lookup is then a search of a short, cache-resident
/// segment list, one read of the page table and a look at one or two blocks, whose
/// bounds sit side by side. Blocks of 1 MiB or more are searched apart, so that a
/// huge reservation does not fill the page table.
#[derive(Debug)]
pub struct BlockIndex<'a> {
    low: u64,
    high: u64,
    /// The blocks' bounds ([`Blocks::bounds`]).
    bounds: &'a [(u64, u64)],
    /// Runs of pages: `(first page, page count, offset into page_first)`.
    segments: Vec<(u64, u64, usize)>,
    /// Per page of every segment: the first block that ends after the page start.
    page_first: Vec<u32>,
    /// Indices of the large blocks, by address.
    large: Vec<u32>,
}

const PAGE_SHIFT: u32 = 12;
/// Pages without a block between two blocks' pages still join one segment when the
/// gap is at most this many pages (2 MiB): fewer segments to search, at most 2 KiB
/// more table per gap.
const SEGMENT_GAP: u64 = 512;

impl<'a> BlockIndex<'a> {
    pub fn new(blocks: &'a Blocks) -> Self {
        let n = blocks.len();
        let bounds = &blocks.bounds[..];
        let low = bounds.first().map_or(u64::MAX, |b| b.0);
        let high = bounds.iter().map(|b| b.1).max().unwrap_or(0);
        let mut large = Vec::new();
        // The page runs covered by small blocks, in address order.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (i, &(start, end)) in bounds.iter().enumerate() {
            if end - start >= LARGE_BLOCK {
                large.push(i as u32);
                continue;
            }
            let (p0, p1) = (start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT);
            match runs.last_mut() {
                Some(last) if p0 <= last.1 + SEGMENT_GAP => last.1 = last.1.max(p1),
                _ => runs.push((p0, p1)),
            }
        }
        let mut segments = Vec::with_capacity(runs.len());
        let mut page_first = Vec::new();
        let mut next = 0usize;
        for (p0, p1) in runs {
            segments.push((p0, p1 - p0 + 1, page_first.len()));
            for page in p0..=p1 {
                let page_start = page << PAGE_SHIFT;
                // Blocks are sorted and disjoint, so their ends are sorted too.
                while next < n && bounds[next].1 <= page_start {
                    next += 1;
                }
                page_first.push(next as u32);
            }
        }
        BlockIndex {
            low,
            high,
            bounds,
            segments,
            page_first,
            large,
        }
    }

    /// Whether `value` could point into a block at all: the cheap test every word
    /// takes first.
    #[inline(always)]
    pub fn in_range(&self, value: u64) -> bool {
        value >= self.low && value < self.high
    }

    /// The block holding address `value`.
    #[inline]
    pub fn find(&self, value: u64) -> Option<u32> {
        if !self.in_range(value) {
            return None;
        }
        match self.page_slot(value) {
            Some(slot) => self.find_from(value, self.page_first[slot] as usize),
            None => self.find_large(value),
        }
    }

    /// The page-table entry of `value`'s page, when a segment holds it.
    #[inline]
    fn page_slot(&self, value: u64) -> Option<usize> {
        let page = value >> PAGE_SHIFT;
        let s = self
            .segments
            .partition_point(|&(first, _, _)| first <= page);
        let &(first, count, offset) = self.segments.get(s.checked_sub(1)?)?;
        (page - first < count).then(|| offset + (page - first) as usize)
    }

    /// The block holding `value`, searching from block `from` (its page's first),
    /// then among the large blocks.
    #[inline]
    fn find_from(&self, value: u64, from: usize) -> Option<u32> {
        let mut i = from;
        while let Some(&(start, end)) = self.bounds.get(i) {
            if start > value {
                break;
            }
            if value < end {
                return Some(i as u32);
            }
            i += 1;
            if i - from > 8 {
                // Many tiny blocks in one page: search the rest.
                let rest = &self.bounds[i..];
                let k = rest.partition_point(|&(start, _)| start <= value);
                if k > 0 && value < self.bounds[i + k - 1].1 {
                    return Some((i + k - 1) as u32);
                }
                break;
            }
        }
        self.find_large(value)
    }

    fn find_large(&self, value: u64) -> Option<u32> {
        if self.large.is_empty() {
            return None;
        }
        let k = self
            .large
            .partition_point(|&i| self.bounds[i as usize].0 <= value);
        let i = *self.large.get(k.checked_sub(1)?)?;
        (value < self.bounds[i as usize].1).then_some(i)
    }

    /// Looks up many values at once: `f(tag, block)` for each `(tag, value)` that
    /// lies in a block, in order. The table and block reads of a batch are
    /// independent, so the processor overlaps their cache misses instead of waiting
    /// for each in turn — most of a scan's time is those misses.
    #[inline]
    pub fn find_batch(&self, batch: &[(u64, u64)], mut f: impl FnMut(u64, u32)) {
        let mut from = [u32::MAX; BATCH];
        for (k, &(_, value)) in batch.iter().enumerate() {
            if let Some(slot) = self.page_slot(value) {
                from[k] = self.page_first[slot];
            }
        }
        // Touch each candidate's bounds first: independent loads, in flight together.
        let mut first = [0u64; BATCH];
        for (k, &i) in from.iter().enumerate().take(batch.len()) {
            first[k] = self.bounds.get(i as usize).map_or(u64::MAX, |b| b.0);
        }
        for (k, &(tag, value)) in batch.iter().enumerate() {
            let found = if from[k] == u32::MAX {
                self.find_large(value)
            } else if first[k] > value {
                // The page's first candidate starts after the value.
                self.find_large(value)
            } else {
                self.find_from(value, from[k] as usize)
            };
            if let Some(t) = found {
                f(tag, t);
            }
        }
    }
}

/// Values looked up together by [`BlockIndex::find_batch`].
pub const BATCH: usize = 32;
#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(list: &[(u64, u64)]) -> Blocks {
        let mut b = Blocks::default();
        for &(s, size) in list {
            b.bounds.push((s, s + size.max(1)));
            b.size.push(size);
            b.stack.push(0);
        }
        b
    }

    #[test]
    fn finds_interior_pointers_and_nothing_else() {
        let b = blocks(&[
            (0x1000, 0x10),
            (0x1_0000 - 8, 16),       // spans two granules
            (0x20_0000, 0),           // size 0: its address only
            (0x100_0000, 0x400_0000), // large
            (0x7000_0000, 32),
        ]);
        let ix = BlockIndex::new(&b);
        assert_eq!(ix.find(0x1000), Some(0));
        assert_eq!(ix.find(0x100f), Some(0));
        assert_eq!(ix.find(0x1010), None, "one past the end is not inside");
        assert_eq!(ix.find(0xfff), None);
        assert_eq!(ix.find(0x1_0004), Some(1));
        assert_eq!(ix.find(0xfffa), Some(1));
        assert_eq!(ix.find(0x20_0000), Some(2));
        assert_eq!(ix.find(0x20_0001), None);
        assert_eq!(ix.find(0x300_0000), Some(3));
        assert_eq!(ix.find(0x500_0000), None);
        assert_eq!(ix.find(0x7000_001f), Some(4));
        assert_eq!(ix.find(0x7000_0020), None);
        assert_eq!(ix.find(u64::MAX), None);
    }
}
