//! The one read of a dump's allocation table.
//!
//! Every distinct stack is attributed to its responsible module first (stacks are
//! deduplicated by the tracker, so this is cheap); then the allocation table is read
//! once, in order, adding each record to its stack's and its owner's sums. The
//! totals, the 2^64 check, the records with an invalid stack index, and everything
//! the leak analysis needs per stack and per module come from this one pass.
//! Memory is proportional to the number of stacks and modules, both already checked
//! against the stream's size, never to the allocation count.

use super::attribution::{responsible_frames, ModuleFilter, Owner, Responsible};
use super::probability::{bin_of, TimeHistogram, TIME_BINS};
use crate::dump::stream::{AllocationStream, NO_STACK};
use crate::model::{ModuleMap, StackId, Totals, SIZE_BUCKETS};
use std::collections::HashMap;
use thiserror::Error;

/// The outstanding sizes add up to more than 2^64 bytes: no total could be exact.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("allocation stream: the sizes of the outstanding allocations add up to more than 2^64 bytes (at allocation {index}, size {size})")]
pub struct TotalOverflow {
    pub index: u64,
    pub size: u64,
}

/// The size bucket of an allocation of `size` bytes (see [`SIZE_BUCKETS`]).
pub fn size_bucket(size: u64) -> usize {
    SIZE_BUCKETS.partition_point(|&b| b <= size)
}

/// Sums of the allocations charged to one owner.
#[derive(Default)]
pub struct OwnerSums {
    pub totals: Totals,
    pub sizes: [Totals; SIZE_BUCKETS.len() + 1],
    pub allocators: [Totals; 6],
    pub time: TimeHistogram,
    pub heaps: HashMap<u64, Totals>,
    /// The owner's stacks that have outstanding allocations, by stack index.
    pub stacks: Vec<u32>,
}

/// Allocation counts by time bin for each stack that has allocations. Slots are
/// handed out on first use, so memory follows the stacks actually used (at most one
/// per allocation record), not the stack table's size.
pub struct StackTimes {
    slot: Vec<u32>,
    counts: Vec<[u32; TIME_BINS]>,
}

impl StackTimes {
    const NONE: u32 = u32::MAX;

    fn new(stacks: usize) -> Self {
        StackTimes {
            slot: vec![Self::NONE; stacks],
            counts: Vec::new(),
        }
    }

    fn add(&mut self, stack: usize, bin: usize) {
        if self.slot[stack] == Self::NONE {
            self.slot[stack] = self.counts.len() as u32;
            self.counts.push([0; TIME_BINS]);
        }
        let c = &mut self.counts[self.slot[stack] as usize][bin];
        *c = c.saturating_add(1);
    }

    /// Adds stack `stack`'s counts into `into`.
    pub fn merge_into(&self, stack: usize, into: &mut TimeHistogram) {
        if let Some(counts) = self.counts.get(self.slot[stack] as usize) {
            for (total, &c) in into.allocations.iter_mut().zip(counts) {
                *total += u64::from(c);
            }
        }
    }
}

/// What the one read of the allocation table found.
pub struct Table {
    /// Every record: the stream's outstanding allocations and bytes.
    pub totals: Totals,
    /// Records with stack index `NO_STACK`.
    pub no_stack: Totals,
    /// Records whose stack index is neither `NO_STACK` nor in the stack table.
    pub invalid: Totals,
    /// The responsible frame of every stack, by stack index.
    pub responsible: Vec<Option<Responsible>>,
    /// Outstanding allocations per stack, by stack index.
    pub per_stack: Vec<Totals>,
    pub stack_times: StackTimes,
    pub by_owner: HashMap<Owner, OwnerSums>,
    /// The tracking window in ticks, as the time bins were cut.
    pub window: u64,
}

impl Table {
    /// Attributes every stack (skipping `system` modules and the stream's declared
    /// allocator modules), then reads the allocation table once.
    pub fn read(
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        system: &ModuleFilter,
    ) -> Result<Table, TotalOverflow> {
        let mut skip = system.clone();
        skip.extend(&stream.allocator_modules());
        let stack_count = stream.stack_count();
        let responsible: Vec<Option<Responsible>> = responsible_frames(stream, modules, &skip);

        let window = stream.header().window_ticks();
        let mut per_stack = vec![Totals::default(); stack_count];
        let mut stack_times = StackTimes::new(stack_count);
        let mut by_owner: HashMap<Owner, OwnerSums> = HashMap::new();
        let mut totals = Totals::default();
        let mut no_stack = Totals::default();
        let mut invalid = Totals::default();
        for (index, a) in stream.allocations().enumerate() {
            totals.bytes = totals.bytes.checked_add(a.size).ok_or(TotalOverflow {
                index: index as u64,
                size: a.size,
            })?;
            totals.allocations += 1;
            let bin = bin_of(a.time, window);
            // Every partial sum below is bounded by `totals.bytes`, so none can overflow.
            let owner = if a.stack == NO_STACK {
                no_stack.add(a.size);
                Owner::NoStack
            } else if (a.stack as usize) < stack_count {
                per_stack[a.stack as usize].add(a.size);
                stack_times.add(a.stack as usize, bin);
                responsible[a.stack as usize].map_or(Owner::NoStack, |r| r.owner)
            } else {
                invalid.add(a.size);
                Owner::NoStack
            };
            let acc = by_owner.entry(owner).or_default();
            acc.totals.add(a.size);
            acc.sizes[size_bucket(a.size)].add(a.size);
            acc.allocators[a.allocator().index()].add(a.size);
            acc.time.add(bin, a.size);
            acc.heaps.entry(a.heap).or_default().add(a.size);
        }
        for (s, r) in responsible.iter().enumerate() {
            if per_stack[s].allocations == 0 {
                continue;
            }
            let owner = r.map_or(Owner::NoStack, |r| r.owner);
            if let Some(acc) = by_owner.get_mut(&owner) {
                acc.stacks.push(s as u32);
            }
        }
        Ok(Table {
            totals,
            no_stack,
            invalid,
            responsible,
            per_stack,
            stack_times,
            by_owner,
            window,
        })
    }

    /// Totals of every stack with outstanding allocations, by [`StackId`], so that
    /// the dumps of a series can be compared stack by stack.
    pub fn totals_by_stack_id(
        &self,
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
    ) -> HashMap<StackId, Totals> {
        let mut out: HashMap<StackId, Totals> = HashMap::new();
        for (s, t) in self.per_stack.iter().enumerate() {
            if t.allocations > 0 {
                out.entry(stack_id(stream, s as u32, modules))
                    .or_default()
                    .merge(*t);
            }
        }
        out
    }
}

/// A stack's identity across dumps: its frames as (module name, offset), or the
/// address for a frame in no module (see [`StackId`]).
pub fn stack_id(stream: &AllocationStream<'_>, stack: u32, modules: &ModuleMap) -> StackId {
    use crate::model::IdFrame;
    // At most the innermost MAX_SAMPLE_FRAMES frames: the id of every stack costs
    // bounded work however deep the stream's stacks are.
    StackId::of(
        stream
            .stack_frames(stack)
            .into_iter()
            .flatten()
            .take(crate::model::MAX_SAMPLE_FRAMES)
            .map(|addr| match modules.locate(addr) {
                Some((m, rva)) => IdFrame::Module {
                    name: &modules.get(m).name,
                    offset: rva.0,
                },
                None => IdFrame::Address(addr.0),
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_size() {
        assert_eq!(size_bucket(0), 0);
        assert_eq!(size_bucket(15), 0);
        assert_eq!(size_bucket(16), 1);
        assert_eq!(size_bucket(1024 * 1024 - 1), 7);
        assert_eq!(size_bucket(1024 * 1024), 8);
        assert_eq!(size_bucket(u64::MAX), 8);
    }
}
