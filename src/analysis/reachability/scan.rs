//! The scan: every captured word outside the tracked blocks is read once to find
//! the blocks roots point to; the graph of blocks is then walked breadth first from
//! those roots, reading each block's words once when it is reached; last, the
//! blocks nothing reached are read to tell which of them another block points to.
//!
//! All three passes run in parallel (rayon) and give the same result at any thread
//! count: a block's root is the minimum of a total order (root kind, then address),
//! and each breadth-first level is merged in the order of the level before.

use super::blocks::{BlockIndex, Blocks, BATCH};
use super::layout::{Area, Layout};
use crate::dump::memory::DumpMemory;
use crate::model::ScannedMemory;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Root kinds by strength: a block hit by several roots is held by the strongest
/// (lowest), then by the lowest address.
pub mod priority {
    pub const GLOBAL: u64 = 0;
    pub const THREAD_BLOCK: u64 = 1;
    pub const STACK: u64 = 2;
    pub const REGISTER: u64 = 3;
    pub const UNTRACKED: u64 = 4;
}

/// A root: its kind in the top 4 bits, its address below (for a register: the
/// thread index × 64 + register index).
pub type RootKey = u64;
pub const NO_ROOT: RootKey = u64::MAX;
const ADDRESS_BITS: u32 = 60;
/// Roots at addresses from here up cannot be encoded; no user-mode address is there.
pub const MAX_ROOT_ADDRESS: u64 = 1 << ADDRESS_BITS;

pub fn root_key(priority: u64, address: u64) -> RootKey {
    (priority << ADDRESS_BITS) | (address & (MAX_ROOT_ADDRESS - 1))
}
pub fn root_priority(key: RootKey) -> u64 {
    key >> ADDRESS_BITS
}
pub fn root_address(key: RootKey) -> u64 {
    key & (MAX_ROOT_ADDRESS - 1)
}

/// Block states after the walk.
pub const UNREACHABLE: u8 = 0;
pub const REACHABLE: u8 = 1;
pub const HELD_BY_UNTRACKED: u8 = 2;

/// What the scan found, per block (indices into [`Blocks`]).
#[derive(Debug)]
pub struct Scan {
    pub state: Vec<u8>,
    /// The block this one was reached from; `u32::MAX` for one a root points to.
    pub parent: Vec<u32>,
    /// The root at the start of the block's chain ([`NO_ROOT`] when unreachable).
    pub holder: Vec<RootKey>,
    /// Pointed to by another block (meaningful for unreachable blocks).
    pub referenced: Vec<bool>,
    /// The dump holds none of the block's bytes.
    pub without_memory: Vec<bool>,
    pub scanned: ScannedMemory,
}

/// What the scan reads.
pub struct Input<'a> {
    pub memory: &'a DumpMemory<'a>,
    pub blocks: &'a Blocks,
    pub index: &'a BlockIndex<'a>,
    pub layout: &'a Layout,
    /// 8 or 4.
    pub pointer_size: u64,
    /// Register roots: `(thread index, register index, value)`.
    pub registers: &'a [(u32, u32, u64)],
    /// Per block: an area painted above blocks (tracker memory, a stack) overlaps
    /// it, so each of its words must be checked ([`overlaid`]).
    pub overlaid: &'a [bool],
}

/// For every block, whether an area painted above blocks overlaps it.
pub fn overlaid(blocks: &Blocks, layout: &Layout) -> Vec<bool> {
    let mut out = vec![false; blocks.len()];
    for k in 0..layout.start.len() {
        if !layout.area[k].above_blocks() {
            continue;
        }
        let (s, e) = (layout.start[k], layout.end[k]);
        let mut i = blocks.bounds.partition_point(|b| b.1 <= s);
        while i < blocks.len() && blocks.start(i) < e {
            out[i] = true;
            i += 1;
        }
    }
    out
}

/// The whole, aligned words of `bytes` (captured at `base`) that start in
/// `[from, to)`: the first one's address and their bytes.
#[inline]
fn word_slice(bytes: &[u8], base: u64, from: u64, to: u64, ps: u64) -> Option<(u64, &[u8])> {
    let first = from.max(base).next_multiple_of(ps);
    let end = base + bytes.len() as u64;
    let last = to.min(end);
    if first >= last || first + ps > end {
        return None;
    }
    let off = (first - base) as usize;
    // Whole words only: a word that would run past the captured bytes is not read.
    let avail = (end - first) / ps;
    let count = ((last - first).div_ceil(ps)).min(avail) as usize;
    Some((first, &bytes[off..off + count * ps as usize]))
}

#[inline]
fn word_at(w: &[u8], ps: u64) -> u64 {
    if ps == 8 {
        u64::from_le_bytes(w.try_into().unwrap_or_default())
    } else {
        u64::from(u32::from_le_bytes(w.try_into().unwrap_or_default()))
    }
}

/// Calls `f(address, value)` for every whole, aligned word of `bytes` (captured at
/// `base`) that starts in `[from, to)`.
#[inline]
fn words(bytes: &[u8], base: u64, from: u64, to: u64, ps: u64, mut f: impl FnMut(u64, u64)) {
    let Some((mut at, slice)) = word_slice(bytes, base, from, to, ps) else {
        return;
    };
    for w in slice.chunks_exact(ps as usize) {
        f(at, word_at(w, ps));
        at += ps;
    }
}

/// Calls `f(address, value)` for every captured word of `[from, to)`.
pub fn block_words(
    memory: &DumpMemory<'_>,
    from: u64,
    to: u64,
    ps: u64,
    mut f: impl FnMut(u64, u64),
) {
    let mut i = memory.ranges.partition_point(|r| r.end() <= from);
    while let Some(r) = memory.ranges.get(i) {
        if r.base.0 >= to {
            break;
        }
        words(r.bytes, r.base.0, from, to, ps, &mut f);
        i += 1;
    }
}

/// For every block: the dump holds none of its bytes.
pub fn without_memory(memory: &DumpMemory<'_>, blocks: &Blocks) -> Vec<bool> {
    (0..blocks.len())
        .into_par_iter()
        .map(|b| {
            let (start, end) = blocks.bounds[b];
            let i = memory.ranges.partition_point(|r| r.end() <= start);
            memory.ranges.get(i).is_none_or(|r| r.base.0 >= end)
        })
        .collect()
}

/// Calls `f(address, block)` for every word of `[from, to)` (captured at `base`)
/// whose value points into a block, looking values up in batches.
#[inline]
fn hits(
    index: &BlockIndex,
    bytes: &[u8],
    base: u64,
    from: u64,
    to: u64,
    ps: u64,
    mut f: impl FnMut(u64, u32),
) {
    let Some((mut at, slice)) = word_slice(bytes, base, from, to, ps) else {
        return;
    };
    let mut batch = [(0u64, 0u64); BATCH];
    let mut n = 0;
    let mut take = |at: u64, value: u64, f: &mut dyn FnMut(u64, u32)| {
        if index.in_range(value) {
            batch[n] = (at, value);
            n += 1;
            if n == BATCH {
                index.find_batch(&batch, f);
                n = 0;
            }
        }
    };
    // Eight words at a time: most groups hold no value in the blocks' range, and a
    // branch-free test of all eight skips them at once.
    let group = 8 * ps as usize;
    let mut groups = slice.chunks_exact(group);
    for g in &mut groups {
        let mut values = [0u64; 8];
        let mut any = false;
        for (k, v) in values.iter_mut().enumerate() {
            *v = word_at(&g[k * ps as usize..(k + 1) * ps as usize], ps);
            any |= index.in_range(*v);
        }
        if any {
            for (k, &v) in values.iter().enumerate() {
                take(at + k as u64 * ps, v, &mut f);
            }
        }
        at += group as u64;
    }
    for w in groups.remainder().chunks_exact(ps as usize) {
        take(at, word_at(w, ps), &mut f);
        at += ps;
    }
    index.find_batch(&batch[..n], &mut f);
}

/// [`hits`] over every captured range of `[from, to)`.
fn block_hits(
    memory: &DumpMemory<'_>,
    index: &BlockIndex,
    from: u64,
    to: u64,
    ps: u64,
    mut f: impl FnMut(u64, u32),
) {
    let mut i = memory.ranges.partition_point(|r| r.end() <= from);
    while let Some(r) = memory.ranges.get(i) {
        if r.base.0 >= to {
            break;
        }
        hits(index, r.bytes, r.base.0, from, to, ps, &mut f);
        i += 1;
    }
}

/// Pieces of memory scanned in parallel, split at 1 MiB address boundaries (so a
/// word never straddles two).
const PIECE: u64 = 1 << 20;

impl Scan {
    pub fn run(input: &Input<'_>, without_memory: Vec<bool>) -> Scan {
        let n = input.blocks.len();
        let best: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(NO_ROOT)).collect();
        let scanned = scan_roots(input, &best);
        for &(thread, register, value) in input.registers {
            if let Some(t) = input.index.find(value) {
                let key = root_key(
                    priority::REGISTER,
                    u64::from(thread) * 64 + u64::from(register),
                );
                best[t as usize].fetch_min(key, Ordering::Relaxed);
            }
        }
        let best: Vec<RootKey> = best.into_iter().map(AtomicU64::into_inner).collect();
        let mut scan = Scan {
            state: vec![UNREACHABLE; n],
            parent: vec![u32::MAX; n],
            holder: vec![NO_ROOT; n],
            referenced: vec![false; n],
            without_memory,
            scanned,
        };
        let mut visited = vec![false; n];
        let claim: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(u32::MAX)).collect();
        // Strong roots first; untracked memory holds only what they did not reach.
        for (state, weak) in [(REACHABLE, false), (HELD_BY_UNTRACKED, true)] {
            let frontier: Vec<u32> = (0..n as u32)
                .filter(|&b| {
                    let key = best[b as usize];
                    !visited[b as usize]
                        && key != NO_ROOT
                        && (root_priority(key) == priority::UNTRACKED) == weak
                })
                .collect();
            for &b in &frontier {
                visited[b as usize] = true;
                scan.state[b as usize] = state;
                scan.holder[b as usize] = best[b as usize];
            }
            scan.walk(input, frontier, state, &mut visited, &claim);
        }
        scan.mark_referenced(input);
        scan
    }

    /// Breadth first from `frontier`: each level's blocks are read in parallel. A
    /// block reached from several of them takes as parent the first in the level's
    /// order (an atomic minimum of its position, so the result does not depend on
    /// which thread read first), and is collected once, by the reader that claimed
    /// it first: a level holds each block once, whatever the number of pointers to
    /// it, so memory stays bounded by the number of blocks.
    fn walk(
        &mut self,
        input: &Input<'_>,
        mut frontier: Vec<u32>,
        state: u8,
        visited: &mut [bool],
        claim: &[AtomicU32],
    ) {
        while !frontier.is_empty() {
            let mut next: Vec<u32> = {
                let visited = &*visited;
                frontier
                    .par_iter()
                    .enumerate()
                    .with_min_len(64)
                    .flat_map_iter(|(position, &b)| {
                        let mut out = Vec::new();
                        let (from, to) = input.blocks.bounds[b as usize];
                        let overlaid = input.overlaid[b as usize];
                        let ps = input.pointer_size;
                        block_hits(input.memory, input.index, from, to, ps, |at, t| {
                            // A pointer in a part of the block painted above blocks
                            // (tracker memory, a stack) is not the block's.
                            if t != b
                                && !visited[t as usize]
                                && !(overlaid && above_blocks(input.layout, at))
                                && claim[t as usize].fetch_min(position as u32, Ordering::Relaxed)
                                    == u32::MAX
                            {
                                out.push(t);
                            }
                        });
                        out
                    })
                    .collect()
            };
            next.sort_unstable();
            for &t in &next {
                let parent = frontier[claim[t as usize].load(Ordering::Relaxed) as usize];
                visited[t as usize] = true;
                self.state[t as usize] = state;
                self.parent[t as usize] = parent;
                self.holder[t as usize] = self.holder[parent as usize];
            }
            frontier = next;
        }
    }

    /// Marks the unreachable blocks that another block points to. Only unreachable
    /// blocks can point to unreachable ones, so only they are read.
    fn mark_referenced(&mut self, input: &Input<'_>) {
        let n = input.blocks.len();
        let marks: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
        let state = &self.state;
        (0..n as u32)
            .into_par_iter()
            .with_min_len(256)
            .filter(|&b| state[b as usize] == UNREACHABLE)
            .for_each(|b| {
                let (from, to) = input.blocks.bounds[b as usize];
                let overlaid = input.overlaid[b as usize];
                let ps = input.pointer_size;
                block_hits(input.memory, input.index, from, to, ps, |at, t| {
                    if t != b && !(overlaid && above_blocks(input.layout, at)) {
                        marks[t as usize].store(true, Ordering::Relaxed);
                    }
                });
            });
        self.referenced = marks.into_iter().map(AtomicBool::into_inner).collect();
    }
}

/// Whether `at` lies in an area painted above blocks (tracker memory, a stack).
#[inline]
fn above_blocks(layout: &Layout, at: u64) -> bool {
    if layout.start.is_empty() {
        return false;
    }
    layout.at(at).is_some_and(Area::above_blocks)
}

/// Pass 1: every captured word outside the blocks, in parallel pieces. Records the
/// strongest root of every block a root word points to; returns what was scanned.
fn scan_roots(input: &Input<'_>, best: &[AtomicU64]) -> ScannedMemory {
    let pieces: Vec<(usize, u64, u64)> = input
        .memory
        .ranges
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let (base, end) = (r.base.0, r.end());
            let mut at = base;
            std::iter::from_fn(move || {
                (at < end).then(|| {
                    let stop = ((at / PIECE).saturating_add(1))
                        .saturating_mul(PIECE)
                        .min(end);
                    let piece = (i, at, stop);
                    at = stop;
                    piece
                })
            })
        })
        .collect();
    pieces
        .par_iter()
        .map(|&(range, from, to)| scan_piece(input, best, range, from, to))
        .reduce(ScannedMemory::default, add_scanned)
}

fn add_scanned(mut a: ScannedMemory, b: ScannedMemory) -> ScannedMemory {
    a.captured += b.captured;
    a.blocks += b.blocks;
    a.modules += b.modules;
    a.live_stacks += b.live_stacks;
    a.dead_stacks += b.dead_stacks;
    a.thread_blocks += b.thread_blocks;
    a.tracker += b.tracker;
    a.untracked += b.untracked;
    a
}

fn scan_piece(
    input: &Input<'_>,
    best: &[AtomicU64],
    range: usize,
    from: u64,
    to: u64,
) -> ScannedMemory {
    let Input {
        memory,
        blocks,
        index,
        layout,
        pointer_size: ps,
        ..
    } = *input;
    let bytes = memory.ranges[range].bytes;
    let base = memory.ranges[range].base.0;
    let mut sum = ScannedMemory {
        captured: to - from,
        ..Default::default()
    };
    let mut ai = layout.first_after(from);
    let mut bi = blocks.bounds.partition_point(|b| b.1 <= from);
    let mut at = from;
    while at < to {
        while ai < layout.start.len() && layout.end[ai] <= at {
            ai += 1;
        }
        while bi < blocks.len() && blocks.end(bi) <= at {
            bi += 1;
        }
        let area_here = ai < layout.start.len() && layout.start[ai] <= at;
        let area_edge = if area_here {
            layout.end[ai]
        } else {
            layout.start.get(ai).copied().unwrap_or(u64::MAX)
        };
        let block_here = bi < blocks.len() && blocks.start(bi) <= at;
        let block_edge = if block_here {
            blocks.end(bi)
        } else {
            blocks.bounds.get(bi).map_or(u64::MAX, |b| b.0)
        };
        let stop = to.min(area_edge).min(block_edge);
        let len = stop - at;
        let area = area_here.then(|| layout.area[ai]);
        let priority = match area {
            Some(a) if a.above_blocks() => match a {
                Area::Tracker => {
                    sum.tracker += len;
                    None
                }
                Area::DeadStack => {
                    sum.dead_stacks += len;
                    None
                }
                _ => {
                    sum.live_stacks += len;
                    Some(priority::STACK)
                }
            },
            _ if block_here => {
                sum.blocks += len;
                None
            }
            Some(Area::ThreadBlock(_)) => {
                sum.thread_blocks += len;
                Some(priority::THREAD_BLOCK)
            }
            Some(Area::ModuleData(_)) => {
                sum.modules += len;
                Some(priority::GLOBAL)
            }
            Some(_) => {
                // A read-only part of an image.
                sum.modules += len;
                None
            }
            None => {
                sum.untracked += len;
                Some(priority::UNTRACKED)
            }
        };
        if let Some(p) = priority {
            hits(index, bytes, base, at, stop, ps, |address, t| {
                best[t as usize].fetch_min(root_key(p, address), Ordering::Relaxed);
            });
        }
        at = stop;
    }
    sum
}
