//! The table of allocations summed elsewhere ([`Table::from_summed`]): for a reader
//! that has sums per stack instead of an allocation table (the UMDH reader). The sums
//! go into the same partial sums as the record read, so the result is the same.

use super::partial::{merge, Partial, Setup};
use super::Table;
use crate::analysis::attribution::ModuleFilter;
use crate::dump::stream::{AllocationStream, AllocatorKind, NO_STACK};
use crate::model::{ModuleMap, Totals, SIZE_BUCKETS};

/// Allocations summed per stack by a reader that has no allocation table (a UMDH
/// snapshot log: `crate::umdh::snapshot`), for [`Table::from_summed`]. Every
/// allocation has the same `time` and `allocator`; a stack index that is not in the
/// stream's stack table counts as "no stack" ([`NO_STACK`]) or invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummedRecords {
    pub time: u64,
    pub allocator: AllocatorKind,
    /// (stack, size bucket ([`size_bucket`](super::size_bucket)), sums): any order, a
    /// pair may repeat.
    pub by_size: Vec<(u32, usize, Totals)>,
    /// (stack, heap, sums) of the same allocations: any order, a pair may repeat.
    pub by_heap: Vec<(u32, u64, Totals)>,
}

impl Table {
    /// The table of allocations summed elsewhere (see [`SummedRecords`]): the same
    /// result as [`Table::read`] over a stream holding those allocations as records.
    /// The caller has checked that the sizes add up to at most 2^64 − 1.
    pub fn from_summed(
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        system: &ModuleFilter,
        records: &SummedRecords,
    ) -> Table {
        let setup = Setup::new(stream, modules, system);
        let ctx = &setup.ctx;
        let bin = ctx.bins.of(records.time);
        let allocator = records.allocator.index();
        let mut p = Partial::new(ctx);
        let owner_of = |stack: u32| {
            ctx.owner_of
                .get(stack as usize)
                .copied()
                .unwrap_or(ctx.no_stack_owner)
        };
        for &(stack, bucket, t) in &records.by_size {
            p.records += t.allocations;
            p.bytes += u128::from(t.bytes);
            match p.stacks.get_mut(stack as usize) {
                Some(s) => {
                    s.bytes = s.bytes.wrapping_add(t.bytes);
                    // Counts modulo 2^16 with one carry per wrap, as the record read keeps them.
                    let c = u64::from(s.times[bin]) + t.allocations;
                    s.times[bin] = c as u16;
                    for _ in 0..c >> 16 {
                        p.carries.push((stack, bin as u8));
                    }
                }
                None => {
                    if stack == NO_STACK {
                        merge(&mut p.no_stack, t);
                    } else {
                        merge(&mut p.invalid, t);
                    }
                    p.unstacked_times[bin] += t.allocations;
                }
            }
            let o = &mut p.owners[owner_of(stack) as usize];
            merge(&mut o.sizes[bucket.min(SIZE_BUCKETS.len())], t);
            merge(&mut o.allocators[allocator], t);
            o.time_bytes[bin] = o.time_bytes[bin].wrapping_add(t.bytes);
        }
        for &(stack, heap, t) in &records.by_heap {
            merge(p.heap_sums(owner_of(stack), heap), t);
        }
        Self::from_sums(p, setup)
    }
}
