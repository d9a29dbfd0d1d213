//! The outstanding blocks, sorted by address, and the index that answers "which
//! block holds this address?" for every word of a dump.
//!
//! Most words of a process are not pointers into a tracked block, so a lookup
//! first tests the range `[lowest block, end of highest block)`, then a hash of the
//! address's 64 KiB granule, and only then searches the few blocks of that granule.
//! Blocks over 1 MiB (virtual allocations) are kept apart so that one huge block
//! does not fill the granule table; they are searched by address.

use crate::dump::stream::AllocationStream;

/// Granules of 64 KiB: a heap block of under 1 MiB spans at most 17 of them.
const GRANULE_SHIFT: u32 = 16;
/// Blocks at least this large are searched apart.
const LARGE_BLOCK: u64 = 1 << 20;

/// The blocks that take part in the scan, sorted by address and disjoint.
#[derive(Debug, Default)]
pub struct Blocks {
    pub start: Vec<u64>,
    /// Exclusive; a block of size 0 spans one byte, so that a pointer to its address
    /// still finds it.
    pub end: Vec<u64>,
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
            out.start.push(address);
            out.end.push(end);
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
        self.start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }
}

/// Finds the block holding an address.
#[derive(Debug)]
pub struct BlockIndex {
    low: u64,
    high: u64,
    /// Open addressing, keyed by granule; `EMPTY` marks a free slot.
    keys: Vec<u64>,
    /// For each key: the blocks `[first, last)` (indices into [`Blocks`]) that
    /// overlap the granule.
    ranges: Vec<(u32, u32)>,
    shift: u32,
    /// Indices of the large blocks, by address.
    large: Vec<u32>,
}

const EMPTY: u64 = u64::MAX;

impl BlockIndex {
    pub fn new(blocks: &Blocks) -> Self {
        let n = blocks.len();
        let low = blocks.start.first().copied().unwrap_or(u64::MAX);
        let high = blocks.end.iter().copied().max().unwrap_or(0);
        let mut large = Vec::new();
        // Granule entries: the distinct granules of the small blocks.
        let mut entries = 0usize;
        let mut last = EMPTY;
        for i in 0..n {
            if blocks.end[i] - blocks.start[i] >= LARGE_BLOCK {
                large.push(i as u32);
                continue;
            }
            let (g0, g1) = granules(blocks.start[i], blocks.end[i]);
            for g in g0..=g1 {
                if g != last {
                    entries += 1;
                    last = g;
                }
            }
        }
        let capacity = (entries * 2).max(16).next_power_of_two();
        let shift = 64 - capacity.trailing_zeros();
        let mut index = BlockIndex {
            low,
            high,
            keys: vec![EMPTY; capacity],
            ranges: vec![(0, 0); capacity],
            shift,
            large,
        };
        for i in 0..n {
            if blocks.end[i] - blocks.start[i] >= LARGE_BLOCK {
                continue;
            }
            let (g0, g1) = granules(blocks.start[i], blocks.end[i]);
            for g in g0..=g1 {
                let slot = index.slot(g);
                if index.keys[slot] == EMPTY {
                    index.keys[slot] = g;
                    index.ranges[slot] = (i as u32, i as u32 + 1);
                } else {
                    index.ranges[slot].1 = i as u32 + 1;
                }
            }
        }
        index
    }

    /// The slot of granule `g`: its own, or the empty one where it would go.
    #[inline]
    fn slot(&self, g: u64) -> usize {
        let mask = self.keys.len() - 1;
        let mut slot = (g.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        loop {
            let k = self.keys[slot];
            if k == g || k == EMPTY {
                return slot;
            }
            slot = (slot + 1) & mask;
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
    pub fn find(&self, blocks: &Blocks, value: u64) -> Option<u32> {
        if !self.in_range(value) {
            return None;
        }
        let slot = self.slot(value >> GRANULE_SHIFT);
        if self.keys[slot] != EMPTY {
            let (first, last) = self.ranges[slot];
            let starts = &blocks.start[first as usize..last as usize];
            let k = starts.partition_point(|&s| s <= value);
            if k > 0 {
                let i = first as usize + k - 1;
                if value < blocks.end[i] {
                    return Some(i as u32);
                }
            }
        }
        if self.large.is_empty() {
            return None;
        }
        let k = self
            .large
            .partition_point(|&i| blocks.start[i as usize] <= value);
        let i = *self.large.get(k.checked_sub(1)?)?;
        (value < blocks.end[i as usize]).then_some(i)
    }
}

fn granules(start: u64, end: u64) -> (u64, u64) {
    (start >> GRANULE_SHIFT, (end - 1) >> GRANULE_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(list: &[(u64, u64)]) -> Blocks {
        let mut b = Blocks::default();
        for &(s, size) in list {
            b.start.push(s);
            b.end.push(s + size.max(1));
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
        assert_eq!(ix.find(&b, 0x1000), Some(0));
        assert_eq!(ix.find(&b, 0x100f), Some(0));
        assert_eq!(ix.find(&b, 0x1010), None, "one past the end is not inside");
        assert_eq!(ix.find(&b, 0xfff), None);
        assert_eq!(ix.find(&b, 0x1_0004), Some(1));
        assert_eq!(ix.find(&b, 0xfffa), Some(1));
        assert_eq!(ix.find(&b, 0x20_0000), Some(2));
        assert_eq!(ix.find(&b, 0x20_0001), None);
        assert_eq!(ix.find(&b, 0x300_0000), Some(3));
        assert_eq!(ix.find(&b, 0x500_0000), None);
        assert_eq!(ix.find(&b, 0x7000_001f), Some(4));
        assert_eq!(ix.find(&b, 0x7000_0020), None);
        assert_eq!(ix.find(&b, u64::MAX), None);
    }
}
