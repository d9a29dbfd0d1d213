//! The merge's sums per BackTrace (by size bucket and by heap), kept in blocks of
//! [`BLOCK`] BackTraces and updated in parallel after each wave is merged: block
//! `b` belongs to part `b % parts`, one part per task, so that the BackTraces first
//! referenced in a wave (numbered one after another) are spread over the parts.
//! Each part goes through the wave's chunks in file order, so its sums are those of
//! a serial merge. At the end each block puts its entries in order (by BackTrace,
//! then key, one entry per pair) and the blocks are joined in order, each freed
//! once copied: the result does not depend on the number of parts. The merge
//! itself (serial) only numbers the BackTraces.

use super::chunk::{Chunk, INHERITED, NO_HEAP};
use super::{HeapSums, BUCKETS};
use crate::model::Totals;
use rayon::prelude::*;

/// BackTraces per block (a power of two).
const BLOCK_BITS: u32 = 10;
const BLOCK: usize = 1 << BLOCK_BITS;

/// A (BackTrace, key, sums) entry.
type Entry<K> = (u32, K, Totals);

/// A chunk's sums of the BackTraces of one part: by size, by heap.
type PartSums = (Vec<Entry<u8>>, Vec<Entry<u64>>);

/// The sums of the BackTraces of one block.
#[derive(Default)]
struct Block {
    /// Per BackTrace of the block: the heap of its sums not yet flushed into
    /// `by_heap`, and those sums (allocated when the block is first used).
    cur_heap: Vec<(u64, Totals)>,
    /// The size-bucket sums: only the buckets used, as entries appended (most
    /// stacks use one to three of the nine, and a dense row per trace was 144
    /// bytes of a million stacks), summed once they pass twice as many as at the
    /// last sum ([`Block::sum_sizes`]; a log of few stacks and many allocations
    /// repeats its pairs in every chunk).
    sizes: Vec<Entry<u8>>,
    /// The entries of `sizes` after their last sum.
    sizes_summed: usize,
    by_heap: Vec<Entry<u64>>,
}

impl Block {
    /// Sums the size entries of one pair in a dense row per BackTrace (one pass, no
    /// sort; the entries come out in order), once they pass twice as many as at
    /// the last sum, or `end`.
    fn sum_sizes(&mut self, block: usize, end: bool) {
        if self.sizes.is_empty() || !end && self.sizes.len() <= 2 * self.sizes_summed + BLOCK {
            return;
        }
        let mut rows = vec![[Totals::default(); BUCKETS]; BLOCK];
        for &(g, b, s) in &self.sizes {
            if let Some(r) = rows[g as usize & (BLOCK - 1)].get_mut(usize::from(b)) {
                r.allocations += s.allocations;
                r.bytes = r.bytes.wrapping_add(s.bytes);
            }
        }
        self.sizes.clear();
        for (i, row) in rows.iter().enumerate() {
            for (b, s) in row.iter().enumerate() {
                if s.allocations > 0 {
                    // A BackTrace number (a u32) and b < BUCKETS (9): exact casts.
                    self.sizes
                        .push((((block << BLOCK_BITS) | i) as u32, b as u8, *s));
                }
            }
        }
        self.sizes_summed = self.sizes.len();
    }
}

/// The sums per BackTrace, in blocks, by part.
pub(super) struct Parts {
    /// Part `p` holds blocks `p`, `p + parts.len()`, … one after another.
    parts: Vec<Vec<Block>>,
}

impl Parts {
    /// About four parts per thread of the current rayon pool, a power of two (the
    /// result does not depend on their number).
    pub(super) fn new() -> Self {
        Parts {
            parts: (0..(rayon::current_num_threads().max(1) * 4).next_power_of_two())
                .map(|_| Vec::new())
                .collect(),
        }
    }

    /// Adds the sums of a wave of merged chunks (in file order; `global`,
    /// `heap_base` and `inherited_heap` set by the merge): each chunk's sums sorted
    /// into the parts (in parallel over the chunks: one pass over its sums, in its
    /// order), then each part's added (in parallel over the parts, chunk by chunk).
    /// `heaps`: the log's heaps, the wave's included.
    pub(super) fn add_wave(&mut self, merged: &[Chunk], heaps: &[HeapSums]) {
        let n = self.parts.len();
        let sorted: Vec<Vec<PartSums>> = merged
            .par_iter()
            .map(|c| {
                let mut out: Vec<PartSums> = (0..n).map(|_| Default::default()).collect();
                for (&g, h) in c.global.iter().zip(&c.hot) {
                    let sizes = &mut out[part(n, g)].0;
                    for (b, t) in h.sizes.iter().enumerate() {
                        if t.allocations > 0 {
                            // b < BUCKETS (9): the cast is exact.
                            sizes.push((g, b as u8, *t));
                        }
                    }
                }
                for &(t, h, sums) in &c.heap_entries {
                    let g = c.global[t as usize];
                    let heap = match h {
                        INHERITED => c.inherited_heap,
                        NO_HEAP => 0,
                        h => heaps[c.heap_base + h as usize].heap,
                    };
                    out[part(n, g)].1.push((g, heap, sums));
                }
                out
            })
            .collect();
        self.parts
            .par_iter_mut()
            .enumerate()
            .for_each(|(p, blocks)| {
                for chunk in &sorted {
                    let (sizes, by_heap) = &chunk[p];
                    for &(g, b, t) in sizes {
                        block_of(blocks, n, g).sizes.push((g, b, t));
                    }
                    for &(g, heap, sums) in by_heap {
                        let block = block_of(blocks, n, g);
                        if block.cur_heap.is_empty() {
                            block.cur_heap = vec![(0, Totals::default()); BLOCK];
                        }
                        let cur = &mut block.cur_heap[g as usize & (BLOCK - 1)];
                        if cur.0 != heap || cur.1.allocations == 0 {
                            if cur.1.allocations > 0 {
                                block.by_heap.push((g, cur.0, cur.1));
                            }
                            *cur = (heap, Totals::default());
                        }
                        cur.1.allocations += sums.allocations;
                        cur.1.bytes = cur.1.bytes.wrapping_add(sums.bytes);
                    }
                }
                for (i, block) in blocks.iter_mut().enumerate() {
                    block.sum_sizes(i * n + p, false);
                }
            });
    }

    /// No parts (what is left once [`Parts::finish`] took them).
    pub(super) fn empty() -> Self {
        Parts { parts: Vec::new() }
    }

    /// The sums by size and by heap, each by BackTrace and key, one entry per pair.
    pub(super) fn finish(self) -> (Vec<Entry<u8>>, Vec<Entry<u64>>) {
        let n = self.parts.len();
        let mut parts = self.parts;
        parts.par_iter_mut().enumerate().for_each(|(p, blocks)| {
            for (i, block) in blocks.iter_mut().enumerate() {
                let b = i * n + p;
                for (k, &(heap, sums)) in block.cur_heap.iter().enumerate() {
                    if sums.allocations > 0 {
                        // A BackTrace number (a u32): an exact cast.
                        block
                            .by_heap
                            .push((((b << BLOCK_BITS) | k) as u32, heap, sums));
                    }
                }
                block.cur_heap = Vec::new();
                // The heap sums in one order whatever the cut (each chunk flushes
                // them when it meets another heap, so their order and splitting
                // follow the chunks): by trace and heap, one entry per pair.
                sum_by_key(&mut block.by_heap);
                block.sum_sizes(b, true);
            }
        });
        // The blocks' entries in order, joined in parallel.
        let blocks = parts.iter().map(Vec::len).max().unwrap_or(0) * n;
        let (mut sizes, mut by_heap) = (Vec::new(), Vec::new());
        for b in 0..blocks {
            if let Some(block) = parts[b % n].get_mut(b / n) {
                sizes.push(std::mem::take(&mut block.sizes));
                by_heap.push(std::mem::take(&mut block.by_heap));
            }
        }
        drop(parts);
        rayon::join(|| concat(sizes), || concat(by_heap))
    }
}

/// The part of BackTrace `g` among `n` (a power of two).
#[inline]
fn part(n: usize, g: u32) -> usize {
    (g as usize >> BLOCK_BITS) & (n - 1)
}

/// The block of BackTrace `g` in its part (`blocks`; `n` parts), made if new.
#[inline]
fn block_of(blocks: &mut Vec<Block>, n: usize, g: u32) -> &mut Block {
    let i = (g as usize >> BLOCK_BITS) >> n.trailing_zeros();
    if i >= blocks.len() {
        blocks.resize_with(i + 1, Block::default);
    }
    &mut blocks[i]
}

/// `parts` one after another, copied in parallel, an eighth at a time: each
/// part is freed once copied, so that the copy and the parts are not all held.
fn concat<K: Copy + Default + Send + Sync>(parts: Vec<Vec<Entry<K>>>) -> Vec<Entry<K>> {
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut parts = parts.into_iter().peekable();
    while parts.peek().is_some() {
        let mut round = Vec::new();
        let mut len = 0;
        while len <= total / 8 {
            let Some(p) = parts.next() else {
                break;
            };
            len += p.len();
            round.push(p);
        }
        // The room made in parallel: its pages are first touched here.
        let start = out.len();
        out.par_extend(rayon::iter::repeat_n(
            (0, K::default(), Totals::default()),
            len,
        ));
        let mut rest = &mut out[start..];
        let mut pairs = Vec::with_capacity(round.len());
        for p in round {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(p.len());
            pairs.push((head, p));
            rest = tail;
        }
        pairs
            .into_par_iter()
            .for_each(|(to, from)| to.copy_from_slice(&from));
    }
    out
}

/// Sorts (trace, key, sums) entries by trace and key and sums those of one pair
/// into one entry.
fn sum_by_key<K: Ord + Copy>(entries: &mut Vec<Entry<K>>) {
    entries.sort_unstable_by_key(|&(trace, key, _)| (trace, key));
    entries.dedup_by(|next, kept| {
        let same = (next.0, next.1) == (kept.0, kept.1);
        if same {
            kept.2.allocations += next.2.allocations;
            kept.2.bytes = kept.2.bytes.wrapping_add(next.2.bytes);
        }
        same
    });
}
