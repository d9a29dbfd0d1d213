//! The chunked parallel read of a stream's allocation table ([`Table::read`]): the
//! records in chunks of [`CHUNK`], each worker summing its chunks into a partial sum of
//! its own, the partial sums merged, and the 2^64 check on the merged total.

use super::partial::{Partial, Setup};
use super::{Table, TotalOverflow};
use crate::analysis::attribution::ModuleFilter;
use crate::dump::stream::AllocationStream;
use crate::model::ModuleMap;
use rayon::prelude::*;

/// Records per chunk of the parallel read (2.5 MiB of table).
pub const CHUNK: usize = 1 << 16;

/// The first record at which the running total passes 2^64 (the table's total is
/// known to).
fn first_overflow(stream: &AllocationStream<'_>) -> TotalOverflow {
    let mut total = 0u64;
    for (index, a) in stream.allocations().enumerate() {
        match total.checked_add(a.size) {
            Some(t) => total = t,
            None => {
                return TotalOverflow {
                    index: index as u64,
                    size: a.size,
                }
            }
        }
    }
    unreachable!("first_overflow is called only when the total passes 2^64")
}

impl Table {
    /// Attributes every stack (skipping `system` modules and the stream's declared
    /// allocator modules), then reads the allocation table once, in chunks of
    /// [`CHUNK`] records.
    pub fn read(
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        system: &ModuleFilter,
    ) -> Result<Table, TotalOverflow> {
        Self::read_chunked(stream, modules, system, CHUNK)
    }

    /// [`Table::read`] with chunks of `chunk` records (at least 1). The result does not
    /// depend on `chunk` or on the number of threads; tests check it.
    pub fn read_chunked(
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        system: &ModuleFilter,
        chunk: usize,
    ) -> Result<Table, TotalOverflow> {
        let setup = Setup::new(stream, modules, system);
        let ctx = &setup.ctx;

        // At most two partial sums per thread (each as large as the stack table: 64
        // bytes per stack), so that a busy thread leaves work to steal; one per thread
        // where the records are few for the stacks (fewer than 16 a stack), as there
        // making, zeroing and merging a partial sum costs about as much as its records.
        let records = stream.allocation_table();
        let chunk = chunk.max(1);
        let chunks = records.len().div_ceil(chunk);
        let per_thread = if records.len() >= 16 * ctx.owner_of.len() {
            2
        } else {
            1
        };
        let per_split = chunks
            .div_ceil(per_thread * rayon::current_num_threads())
            .max(1);
        let sums = records
            .par_chunks(chunk)
            .with_min_len(per_split)
            .fold(
                || Partial::new(ctx),
                |mut p, c| {
                    p.add_records(c, ctx);
                    p
                },
            )
            .reduce_with(Partial::merge)
            .unwrap_or_else(|| Partial::new(ctx));
        if sums.bytes > u128::from(u64::MAX) {
            return Err(first_overflow(stream));
        }
        Ok(Self::from_sums(sums, setup))
    }
}
