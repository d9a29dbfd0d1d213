//! The one read of a dump's allocation table.
//!
//! Every distinct stack is attributed to its responsible module first (stacks are
//! deduplicated by the tracker, so this is cheap, and done in parallel); then the
//! allocation table is read once, in order, in chunks of [`CHUNK`] records that rayon
//! spreads over the pool. Each worker adds its records into a partial sum of its own,
//! and the partial sums are merged at the end. Every sum is an exact integer sum, so
//! the result is the same for any chunk size, any number of threads and any merge
//! order (`tests/it/chunking.rs` checks it).
//!
//! The totals, the 2^64 check, the records with an invalid stack index, and everything
//! the leak analysis needs per stack and per module come from this one pass. Memory is
//! proportional to the number of stacks and modules (both already checked against
//! the stream's size) times the number of partial sums (a few per thread), never to
//! the allocation count.
//!
//! This module holds what the read produces ([`Table`] and its parts) and the size
//! buckets; the work is in its submodules:
//! - `partial`: the partial sums of the records, and the [`Table`] made from them;
//! - `read`: the chunked parallel read of a stream's allocation table ([`Table::read`]);
//! - `summed`: the table of allocations summed elsewhere ([`Table::from_summed`], for
//!   the UMDH reader);
//! - `stack_id`: stack ids across dumps ([`stack_id`], [`StackIdEncoder`]) and the
//!   totals by id ([`Table::totals_by_stack_id`], [`Table::totals_of_stack_ids`]).

mod partial;
mod read;
mod stack_id;
mod summed;

pub use read::CHUNK;
pub use stack_id::{stack_id, StackIdEncoder};
pub use summed::SummedRecords;

use super::attribution::{FrameModules, Owner, Responsible};
use super::probability::TimeHistogram;
use crate::dump::stream::AllocatorKind;
use crate::model::{Totals, SIZE_BUCKETS};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// The outstanding sizes add up to more than 2^64 bytes: no total could be exact.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("allocation stream: the sizes of the outstanding allocations add up to more than 2^64 bytes (at allocation {index}, size {size})")]
pub struct TotalOverflow {
    pub index: u64,
    pub size: u64,
}

pub use crate::model::size_bucket;

/// Sums of the allocations charged to one owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerSums {
    pub totals: Totals,
    pub sizes: [Totals; SIZE_BUCKETS.len() + 1],
    pub allocators: [Totals; AllocatorKind::ALL.len()],
    pub time: TimeHistogram,
    pub heaps: HashMap<u64, Totals>,
    /// The owner's stacks that have outstanding allocations, by stack index.
    pub stacks: Vec<u32>,
    /// For each of `stacks` with a responsible frame (all but the "no stack" owner's),
    /// where it is charged, copied here in one pass over the stacks in order: per
    /// owner, a lookup in the table of every stack's responsible frame is a cache miss
    /// for each stack.
    pub charged: Vec<(u32, ChargedAt)>,
}

/// Where a stack's allocations are charged: its responsible frame's address, and the
/// offset in the owning module when the owner is a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargedAt {
    pub address: crate::addr::VirtAddr,
    pub rva: Option<crate::addr::Rva>,
}

impl ChargedAt {
    /// Where the responsible frame `r` charges its stack.
    pub fn of(r: &Responsible) -> Self {
        ChargedAt {
            address: r.address,
            rva: r.rva,
        }
    }
}

/// Allocation counts by time bin of every stack: the merged partial sums themselves
/// (counts modulo 2^16 in one cache line per stack, `partial::StackSums`) and
/// the wraps past 2^16, so that the read hands its sums over instead of copying them
/// into a table of its own (megabytes of fresh memory for 100,000 stacks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackTimes {
    sums: Vec<partial::StackSums>,
    /// (stack, bin) → the allocations above the 16-bit count (multiples of 2^16).
    carried: BTreeMap<(u32, u8), u64>,
}

impl StackTimes {
    /// Adds stack `stack`'s counts into `into`.
    pub fn merge_into(&self, stack: usize, into: &mut TimeHistogram) {
        if let Some(sum) = self.sums.get(stack) {
            for (total, &c) in into.allocations.iter_mut().zip(&sum.times) {
                *total += u64::from(c);
            }
            if !self.carried.is_empty() {
                let s = stack as u32;
                for (&(_, bin), &extra) in self.carried.range((s, 0)..=(s, u8::MAX)) {
                    into.allocations[usize::from(bin)] += extra;
                }
            }
        }
    }
}

/// What the one read of the allocation table found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Every record: the stream's outstanding allocations and bytes.
    pub totals: Totals,
    /// Records with stack index `NO_STACK`.
    pub no_stack: Totals,
    /// Records whose stack index is neither `NO_STACK` nor in the stack table.
    pub invalid: Totals,
    /// The responsible frame of every stack, by stack index.
    pub responsible: Vec<Option<Responsible>>,
    /// The module of every frame-table entry, located once.
    pub frames: FrameModules,
    /// Outstanding allocations per stack, by stack index.
    pub per_stack: Vec<Totals>,
    pub stack_times: StackTimes,
    /// Every owner with outstanding allocations, in owner order: modules by index,
    /// then [`Owner::Unknown`], then [`Owner::NoStack`].
    pub by_owner: Vec<(Owner, OwnerSums)>,
    /// The tracking window in ticks, as the time bins were cut.
    pub window: u64,
}
