//! The leak analysis's data: outstanding allocations by module, function and stack.
//!
//! Every byte count is exact and every list that is cut says what it left out
//! ([`Omitted`]), so totals add up. Rankings share one order, [`Totals::rank`].

use super::{AllocatorKind, ReachabilityTotals, ReachabilityView, StackId, SymbolsRow};
use crate::addr::{Rva, VirtAddr};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Name used for allocations whose responsible frame lies in no module.
pub const UNKNOWN_MODULE: &str = "(unknown)";
/// Name used for allocations with no usable stack.
pub const NO_STACK_MODULE: &str = "(no stack)";

/// A count of allocations and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub allocations: u64,
    pub bytes: u64,
}

impl Totals {
    /// Counts one allocation of `bytes`.
    pub fn add(&mut self, bytes: u64) {
        self.allocations += 1;
        self.bytes += bytes;
    }
    pub fn is_zero(&self) -> bool {
        self.allocations == 0 && self.bytes == 0
    }
    pub fn merge(&mut self, other: Totals) {
        self.allocations += other.allocations;
        self.bytes += other.bytes;
    }

    /// The order of every ranking in the reports: most bytes first, then most
    /// allocations. Callers break the remaining ties with a stable key of their own.
    pub fn rank(&self, other: &Totals) -> Ordering {
        other
            .bytes
            .cmp(&self.bytes)
            .then(other.allocations.cmp(&self.allocations))
    }
}

/// Sorts `items` by [`Totals::rank`], ties by `key` ascending.
pub fn sort_ranked<T, K: Ord>(items: &mut [T], key: impl Fn(&T) -> (Totals, K)) {
    items.sort_by(|a, b| {
        let (ta, ka) = key(a);
        let (tb, kb) = key(b);
        ta.rank(&tb).then_with(|| ka.cmp(&kb))
    });
}

/// The upper bounds (exclusive) of the allocation-size buckets; the last is open.
pub const SIZE_BUCKETS: [u64; 8] = [
    16,
    64,
    256,
    1024,
    4 * 1024,
    16 * 1024,
    64 * 1024,
    1024 * 1024,
];

/// The size bucket of an allocation of `size` bytes (see [`SIZE_BUCKETS`]): the number of
/// bounds at most `size`; the table read and the UMDH reader both sum by it.
#[inline]
pub fn size_bucket(size: u64) -> usize {
    // Every bound is a power of two, so `bound <= size` iff `bound <= 2^floor(log2 size)`:
    // the bucket depends only on the size's highest bit.
    usize::from(BUCKET_BY_LOG2[(63 - (size | 1).leading_zeros()) as usize])
}

/// The bucket of the sizes whose highest bit is bit `i`.
const BUCKET_BY_LOG2: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut k = 0;
    while k < SIZE_BUCKETS.len() {
        assert!(SIZE_BUCKETS[k].is_power_of_two());
        k += 1;
    }
    let mut i = 0;
    while i < 64 {
        let mut k = 0;
        while k < SIZE_BUCKETS.len() {
            if SIZE_BUCKETS[k] <= 1u64 << i {
                table[i] += 1;
            }
            k += 1;
        }
        i += 1;
    }
    table
};

/// One bucket of the size distribution: sizes in `[min, max)`, `max` absent for the
/// last, open bucket.
#[derive(Clone, Debug, Serialize)]
pub struct SizeBucket {
    pub min: u64,
    pub max: Option<u64>,
    pub allocations: u64,
    pub bytes: u64,
}

/// Totals for one allocator kind.
#[derive(Clone, Debug, Serialize)]
pub struct AllocatorTotals {
    pub kind: AllocatorKind,
    pub allocations: u64,
    pub bytes: u64,
}

/// One bin of a module's allocation timeline: allocations made between `start` and
/// `end` seconds after tracking began that are still outstanding.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineBin {
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub allocations: u64,
    pub bytes: u64,
}

/// Totals for one heap handle.
#[derive(Clone, Debug, Serialize)]
pub struct HeapTotals {
    /// The heap handle as a hex string.
    pub heap: String,
    pub allocations: u64,
    pub bytes: u64,
}

/// A function (until symbols: the responsible frame's `module+0xRVA`).
#[derive(Clone, Debug, Serialize)]
pub struct FunctionLeak {
    pub name: String,
    pub allocations: u64,
    pub bytes: u64,
    /// 0–100, see docs/leak-probability.md; `None` when it cannot be judged.
    pub leak_probability: Option<u8>,
    /// The function's blocks by reachability class, when the dump was scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachability: Option<ReachabilityTotals>,
}

/// One frame of a sample stack. An address inside inlined code yields several
/// frames with the same address: the inlined functions innermost first, each with
/// `inlined: true`, then the function they were inlined into.
#[derive(Clone, Debug, Serialize)]
pub struct Frame {
    /// The module's file name, `None` when the address lies in no module.
    pub module: Option<String>,
    /// Offset in the module.
    pub offset: Option<Rva>,
    pub address: VirtAddr,
    /// This is the frame the allocation was charged to.
    pub responsible: bool,
    /// Function name from the module's PDB; `None` without symbols.
    pub function: Option<String>,
    /// Offset of the address from the function's start (outer frame only).
    pub function_offset: Option<u32>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

/// A sample stack.
#[derive(Clone, Debug, Serialize)]
pub struct StackSample {
    /// Index in the stream's stack table.
    pub stack: u32,
    /// The stack's identity across dumps and runs (see [`StackId`]).
    pub id: StackId,
    pub allocations: u64,
    pub bytes: u64,
    pub leak_probability: Option<u8>,
    pub frames: Vec<Frame>,
    /// Stack frames not listed in `frames`: a stack deeper than the sample limit
    /// lists its innermost frames (and the responsible frame, wherever it lies); the
    /// stack's depth is the frames listed plus these. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frames_omitted: u64,
    /// The stack's blocks by reachability class and their holders, when the dump
    /// was scanned (`reachability`, `holders`, `holders_omitted`).
    #[serde(flatten)]
    pub reach: Option<ReachabilityView>,
}

/// Stack frames listed per sample stack. The spec sets no depth limit, so a sample
/// lists its innermost frames up to this many (and the responsible frame when it lies
/// deeper); the others are counted in [`StackSample::frames_omitted`]. ldtrack's own
/// limit is 62 frames, so real stacks are listed whole.
pub const MAX_SAMPLE_FRAMES: usize = 256;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a list left out, so totals still add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Omitted {
    pub count: u64,
    pub allocations: u64,
    pub bytes: u64,
}

/// A module and the outstanding allocations charged to it.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleLeak {
    /// The module's file name, or `(unknown)` / `(no stack)`.
    pub name: String,
    /// A system, runtime or allocator module (plumbing: never the one to blame).
    pub system: bool,
    pub path: Option<String>,
    pub base: Option<VirtAddr>,
    pub size: Option<u64>,
    pub allocations: u64,
    pub bytes: u64,
    /// 0–100, see docs/leak-probability.md; `None` when it cannot be judged.
    pub leak_probability: Option<u8>,
    /// Outstanding allocations by time of allocation, over the tracking window.
    pub timeline: Vec<TimelineBin>,
    /// Heap handles the blocks came from (0: none or unknown), most bytes first.
    pub heaps: Vec<HeapTotals>,
    pub heaps_omitted: Omitted,
    pub functions: Vec<FunctionLeak>,
    pub functions_omitted: Omitted,
    pub size_distribution: Vec<SizeBucket>,
    pub allocators: Vec<AllocatorTotals>,
    /// Distinct stacks charged to the module.
    pub stack_count: u64,
    pub stacks: Vec<StackSample>,
    pub stacks_omitted: Omitted,
    /// The module's blocks by reachability class and their holders, when the dump
    /// was scanned (`reachability`, `holders`, `holders_omitted`).
    #[serde(flatten)]
    pub reach: Option<ReachabilityView>,
}

/// A module's place in the ranking by count.
#[derive(Clone, Debug, Serialize)]
pub struct RankEntry {
    pub name: String,
    pub allocations: u64,
    pub bytes: u64,
}

/// The leak analysis of one dump.
#[derive(Clone, Debug, Serialize)]
pub struct LeakAnalysis {
    pub totals: Totals,
    /// Records with stack index 0xFFFFFFFF.
    pub no_stack: Totals,
    /// Records whose stack index is neither 0xFFFFFFFF nor below stack_count: kept in the
    /// totals, charged to `(no stack)`.
    pub invalid_stack_records: Totals,
    /// Modules ranked by outstanding bytes (then count, then name).
    pub modules: Vec<ModuleLeak>,
    /// The same modules ranked by outstanding allocation count.
    pub modules_by_count: Vec<RankEntry>,
    /// Symbol status of every module that appears in a stack.
    pub symbols: Vec<SymbolsRow>,
    /// Totals of every stack with outstanding allocations, by [`StackId`], so
    /// that the dumps of a series can be compared stack by stack.
    #[serde(skip)]
    pub stack_totals: HashMap<StackId, Totals>,
}

/// The totals of a ranked item.
macro_rules! impl_totals {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn totals(&self) -> Totals {
                Totals {
                    allocations: self.allocations,
                    bytes: self.bytes,
                }
            }
        }
    )*};
}
impl_totals!(
    ModuleLeak,
    FunctionLeak,
    HeapTotals,
    StackSample,
    RankEntry,
    AllocatorTotals,
    SizeBucket
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_highest_bit_match_the_bounds() {
        let mut sizes = vec![0, 1, u64::MAX];
        for b in SIZE_BUCKETS {
            sizes.extend([b - 1, b, b + 1]);
        }
        for i in 0..64 {
            sizes.extend([1u64 << i, (1u64 << i) - 1, (1u64 << i) + 1]);
        }
        for size in sizes {
            assert_eq!(
                size_bucket(size),
                SIZE_BUCKETS.partition_point(|&b| b <= size),
                "{size}"
            );
        }
    }

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
