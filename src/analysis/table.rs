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
//! The per-record work touches little memory: one 64-byte cache line of the record's
//! stack (its bytes and allocation counts per time bin), the stack's owner (a dense
//! index, looked up in a table built from the attribution) and that owner's size class,
//! allocator and time-bin bytes in a few hundred bytes per owner. Totals per stack and
//! per owner, and the owners' allocation counts per time bin, are derived afterwards
//! from the per-stack sums; no per-record work hashes anything but the (owner, heap)
//! pair, with a multiply-fold hash, not SipHash. The time bin of a record is found
//! without a division ([`Bins`]).
//!
//! The totals, the 2^64 check, the records with an invalid stack index, and everything
//! the leak analysis needs per stack and per module come from this one pass. Memory is
//! proportional to the number of stacks and modules (both already checked against
//! the stream's size) times the number of partial sums (a few per thread), never to
//! the allocation count.

use super::attribution::{responsible_frames, FrameModules, ModuleFilter, Owner, Responsible};
use super::probability::{Bins, TimeHistogram, TIME_BINS};
use crate::dump::stream::{AllocationStream, AllocatorKind, ALLOCATION_RECORD_SIZE, NO_STACK};
use crate::model::{ModuleMap, StackId, Totals, SIZE_BUCKETS};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use thiserror::Error;

/// Records per chunk of the parallel read (2.5 MiB of table).
pub const CHUNK: usize = 1 << 16;

/// The outstanding sizes add up to more than 2^64 bytes: no total could be exact.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("allocation stream: the sizes of the outstanding allocations add up to more than 2^64 bytes (at allocation {index}, size {size})")]
pub struct TotalOverflow {
    pub index: u64,
    pub size: u64,
}

/// The size bucket of an allocation of `size` bytes (see [`SIZE_BUCKETS`]).
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
}

/// Allocation counts by time bin for each stack that has allocations (saturating at
/// 2^32 − 1 per bin). Slots are handed out in stack order to the stacks with
/// allocations, so memory follows the stacks actually used, not the stack table's
/// size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackTimes {
    slot: Vec<u32>,
    counts: Vec<[u32; TIME_BINS]>,
}

impl StackTimes {
    const NONE: u32 = u32::MAX;

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

/// A multiply-fold hash for the per-record (owner, heap) map: a few instructions
/// instead of SipHash. The keys come from the dump; the map only sums them, and the
/// output is sorted, so the hash never shows in any result.
#[derive(Clone, Copy, Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        let p = u128::from(self.0 ^ n) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (p as u64) ^ ((p >> 64) as u64).rotate_left(17);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FoldMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// Adds one allocation of `size` bytes. Wrapping: the sums of a table whose total
/// overflows 2^64 are thrown away (the total is kept in 128 bits and checked).
#[inline]
fn add(t: &mut Totals, size: u64) {
    t.allocations += 1;
    t.bytes = t.bytes.wrapping_add(size);
}

fn merge(t: &mut Totals, o: Totals) {
    t.allocations += o.allocations;
    t.bytes = t.bytes.wrapping_add(o.bytes);
}

/// One stack's sums in a partial sum: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct StackSums {
    bytes: u64,
    /// Allocations per time bin, modulo 2^16; each wrap to 0 is recorded in
    /// [`Partial::carries`].
    times: [u16; TIME_BINS],
}

/// One owner's per-record sums in a partial sum; its totals and its allocation
/// counts per time bin are derived from the stacks.
#[derive(Clone, Copy, Default)]
struct OwnerPartial {
    sizes: [Totals; SIZE_BUCKETS.len() + 1],
    allocators: [Totals; AllocatorKind::ALL.len()],
    time_bytes: [u64; TIME_BINS],
}

/// What the per-record work reads: shared by every worker.
struct Context {
    bins: Bins,
    /// The owner index of every stack (see [`owner_index`]).
    owner_of: Vec<u32>,
    /// The owner index of [`Owner::NoStack`].
    no_stack_owner: u32,
    /// The allocator byte's index in [`AllocatorKind::ALL`].
    allocator_index: [u8; 256],
}

/// How many records ahead [`Partial::add_records`] prefetches a record's stack sums.
const PREFETCH_AHEAD: usize = 16;

/// Asks the CPU to bring `line` into the cache (a hint: no effect on the result).
#[inline(always)]
fn prefetch<T>(line: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults and changes nothing but the cache; `sse`
        // is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(line).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// The partial sums of some chunks of the table.
struct Partial {
    records: u64,
    /// Kept in 128 bits, so that overflowing 2^64 is seen after the merge.
    bytes: u128,
    no_stack: Totals,
    invalid: Totals,
    stacks: Vec<StackSums>,
    /// Each (stack, bin) here stands for 2^16 more allocations.
    carries: Vec<(u32, u8)>,
    owners: Vec<OwnerPartial>,
    /// Allocations per time bin of the records without a valid stack.
    unstacked_times: [u64; TIME_BINS],
    /// The first [`SMALL_HEAPS`] heap handles seen (a process has few heaps); their
    /// sums are in `small_heap_sums[slot × owners + owner]`, found by a short scan.
    small_heaps: Vec<u64>,
    small_heap_sums: Vec<Totals>,
    /// The sums of any further heap, by (owner, heap).
    heaps: FoldMap<(u32, u64), Totals>,
}

/// Heap handles kept in the partial sums' small table.
const SMALL_HEAPS: usize = 16;

impl Partial {
    fn new(ctx: &Context) -> Self {
        Partial {
            records: 0,
            bytes: 0,
            no_stack: Totals::default(),
            invalid: Totals::default(),
            stacks: vec![StackSums::default(); ctx.owner_of.len()],
            carries: Vec::new(),
            owners: vec![OwnerPartial::default(); ctx.no_stack_owner as usize + 1],
            unstacked_times: [0; TIME_BINS],
            small_heaps: Vec::with_capacity(SMALL_HEAPS),
            small_heap_sums: Vec::new(),
            heaps: FoldMap::default(),
        }
    }

    /// The sums of `owner`'s allocations on `heap`.
    #[inline]
    fn heap_sums(&mut self, owner: u32, heap: u64) -> &mut Totals {
        let owners = self.owners.len();
        let slot = match self.small_heaps.iter().position(|&h| h == heap) {
            Some(slot) => slot,
            None if self.small_heaps.len() < SMALL_HEAPS => {
                self.small_heaps.push(heap);
                self.small_heap_sums
                    .resize(self.small_heaps.len() * owners, Totals::default());
                self.small_heaps.len() - 1
            }
            None => return self.heaps.entry((owner, heap)).or_default(),
        };
        &mut self.small_heap_sums[slot * owners + owner as usize]
    }

    /// Every (owner, heap) with allocations, and its sums.
    fn heap_totals(&self) -> impl Iterator<Item = ((u32, u64), Totals)> + '_ {
        let owners = self.owners.len();
        let small = self
            .small_heap_sums
            .iter()
            .enumerate()
            .filter(|(_, t)| t.allocations > 0)
            .map(move |(i, &t)| (((i % owners) as u32, self.small_heaps[i / owners]), t));
        small.chain(self.heaps.iter().map(|(&k, &t)| (k, t)))
    }

    /// Adds consecutive records of the table.
    fn add_records(&mut self, records: &[[u8; ALLOCATION_RECORD_SIZE]], ctx: &Context) {
        for (i, r) in records.iter().enumerate() {
            // The stack sums of a record a little ahead are requested now, so that
            // their cache misses overlap instead of stalling each record in turn.
            if let Some(ahead) = records.get(i + PREFETCH_AHEAD) {
                let s = u32::from_le_bytes(ahead[32..36].try_into().unwrap_or_default());
                if let Some(line) = self.stacks.get(s as usize) {
                    prefetch(line);
                }
            }
            let size = u64::from_le_bytes(r[8..16].try_into().unwrap_or_default());
            let time = u64::from_le_bytes(r[16..24].try_into().unwrap_or_default());
            let heap = u64::from_le_bytes(r[24..32].try_into().unwrap_or_default());
            let stack = u32::from_le_bytes(r[32..36].try_into().unwrap_or_default());
            let allocator = ctx.allocator_index[usize::from(r[36])] as usize;
            self.records += 1;
            self.bytes += u128::from(size);
            let bin = ctx.bins.of(time);
            let owner = match self.stacks.get_mut(stack as usize) {
                Some(s) => {
                    s.bytes = s.bytes.wrapping_add(size);
                    let c = &mut s.times[bin];
                    *c = c.wrapping_add(1);
                    if *c == 0 {
                        self.carries.push((stack, bin as u8));
                    }
                    ctx.owner_of[stack as usize]
                }
                None => {
                    if stack == NO_STACK {
                        add(&mut self.no_stack, size);
                    } else {
                        add(&mut self.invalid, size);
                    }
                    self.unstacked_times[bin] += 1;
                    ctx.no_stack_owner
                }
            };
            let o = &mut self.owners[owner as usize];
            add(&mut o.sizes[size_bucket(size)], size);
            add(&mut o.allocators[allocator], size);
            o.time_bytes[bin] = o.time_bytes[bin].wrapping_add(size);
            add(self.heap_sums(owner, heap), size);
        }
    }

    /// Adds `other` into `self`.
    fn merge(mut self, other: Partial) -> Partial {
        self.records += other.records;
        self.bytes += other.bytes;
        merge(&mut self.no_stack, other.no_stack);
        merge(&mut self.invalid, other.invalid);
        for (s, (a, b)) in self.stacks.iter_mut().zip(&other.stacks).enumerate() {
            a.bytes = a.bytes.wrapping_add(b.bytes);
            for (bin, (x, &y)) in a.times.iter_mut().zip(&b.times).enumerate() {
                let (sum, carry) = x.overflowing_add(y);
                *x = sum;
                if carry {
                    self.carries.push((s as u32, bin as u8));
                }
            }
        }
        self.carries.extend_from_slice(&other.carries);
        for (a, b) in self.owners.iter_mut().zip(&other.owners) {
            for (x, &y) in a.sizes.iter_mut().zip(&b.sizes) {
                merge(x, y);
            }
            for (x, &y) in a.allocators.iter_mut().zip(&b.allocators) {
                merge(x, y);
            }
            for (x, &y) in a.time_bytes.iter_mut().zip(&b.time_bytes) {
                *x = x.wrapping_add(y);
            }
        }
        for (x, &y) in self.unstacked_times.iter_mut().zip(&other.unstacked_times) {
            *x += y;
        }
        for ((owner, heap), t) in other.heap_totals() {
            merge(self.heap_sums(owner, heap), t);
        }
        self
    }
}

/// The dense index of an owner: modules by index, then `Unknown`, then `NoStack`.
fn owner_index(owner: Owner, modules: usize) -> u32 {
    (match owner {
        Owner::Module(i) => i,
        Owner::Unknown => modules,
        Owner::NoStack => modules + 1,
    }) as u32
}

fn owner_at(index: usize, modules: usize) -> Owner {
    match index.cmp(&modules) {
        std::cmp::Ordering::Less => Owner::Module(index),
        std::cmp::Ordering::Equal => Owner::Unknown,
        std::cmp::Ordering::Greater => Owner::NoStack,
    }
}

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
        let mut skip = system.clone();
        skip.extend(&stream.allocator_modules());
        let frames = FrameModules::locate(stream, modules);
        let responsible: Vec<Option<Responsible>> =
            responsible_frames(stream, modules, &frames, &skip);

        let window = stream.header().window_ticks();
        let n = modules.len();
        let mut allocator_index = [0u8; 256];
        for (b, i) in allocator_index.iter_mut().enumerate() {
            *i = AllocatorKind::from_byte(b as u8).index() as u8;
        }
        let ctx = Context {
            bins: Bins::new(window),
            owner_of: responsible
                .iter()
                .map(|r| owner_index(r.map_or(Owner::NoStack, |r| r.owner), n))
                .collect(),
            no_stack_owner: owner_index(Owner::NoStack, n),
            allocator_index,
        };

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
                || Partial::new(&ctx),
                |mut p, c| {
                    p.add_records(c, &ctx);
                    p
                },
            )
            .reduce_with(Partial::merge)
            .unwrap_or_else(|| Partial::new(&ctx));
        if sums.bytes > u128::from(u64::MAX) {
            return Err(first_overflow(stream));
        }
        Ok(Self::from_sums(sums, &ctx, responsible, frames, window, n))
    }

    /// The table from the merged partial sums: per-stack totals and time counts, then
    /// each owner's totals and time counts from its stacks.
    fn from_sums(
        sums: Partial,
        ctx: &Context,
        responsible: Vec<Option<Responsible>>,
        frames: FrameModules,
        window: u64,
        modules: usize,
    ) -> Table {
        let mut carried: BTreeMap<(u32, u8), u64> = BTreeMap::new();
        for &c in &sums.carries {
            *carried.entry(c).or_default() += 1 << 16;
        }
        let owners = sums.owners.len();
        let mut owner_totals = vec![Totals::default(); owners];
        let mut owner_times = vec![[0u64; TIME_BINS]; owners];
        let mut owner_stacks: Vec<Vec<u32>> = vec![Vec::new(); owners];
        let mut per_stack = vec![Totals::default(); sums.stacks.len()];
        // Sized once: growing it by doubling copies it over and over (megabytes for
        // 100,000 stacks). A stack without a count this side of a carry may still
        // have allocations, so carried stacks count too.
        let used = sums
            .stacks
            .iter()
            .filter(|s| s.times.iter().any(|&c| c > 0))
            .count()
            + sums.carries.len();
        let mut times = StackTimes {
            slot: vec![StackTimes::NONE; sums.stacks.len()],
            counts: Vec::with_capacity(used.min(sums.stacks.len())),
        };
        for (s, sum) in sums.stacks.iter().enumerate() {
            let mut exact = [0u64; TIME_BINS];
            for (bin, (e, &c)) in exact.iter_mut().zip(&sum.times).enumerate() {
                *e = u64::from(c);
                if !carried.is_empty() {
                    *e += carried.get(&(s as u32, bin as u8)).copied().unwrap_or(0);
                }
            }
            let allocations: u64 = exact.iter().sum();
            if allocations == 0 {
                continue;
            }
            per_stack[s] = Totals {
                allocations,
                bytes: sum.bytes,
            };
            times.slot[s] = times.counts.len() as u32;
            times
                .counts
                .push(exact.map(|e| u32::try_from(e).unwrap_or(u32::MAX)));
            let o = ctx.owner_of[s] as usize;
            merge(&mut owner_totals[o], per_stack[s]);
            for (t, e) in owner_times[o].iter_mut().zip(exact) {
                *t += e;
            }
            owner_stacks[o].push(s as u32);
        }
        let nso = ctx.no_stack_owner as usize;
        merge(&mut owner_totals[nso], sums.no_stack);
        merge(&mut owner_totals[nso], sums.invalid);
        for (t, &e) in owner_times[nso].iter_mut().zip(&sums.unstacked_times) {
            *t += e;
        }
        let mut heaps: Vec<HashMap<u64, Totals>> = vec![HashMap::new(); owners];
        for ((o, heap), t) in sums.heap_totals() {
            merge(heaps[o as usize].entry(heap).or_default(), t);
        }
        let by_owner = (0..owners)
            .filter(|&o| owner_totals[o].allocations > 0)
            .map(|o| {
                let p = &sums.owners[o];
                let sums = OwnerSums {
                    totals: owner_totals[o],
                    sizes: p.sizes,
                    allocators: p.allocators,
                    time: TimeHistogram {
                        allocations: owner_times[o],
                        bytes: p.time_bytes,
                    },
                    heaps: std::mem::take(&mut heaps[o]),
                    stacks: std::mem::take(&mut owner_stacks[o]),
                };
                (owner_at(o, modules), sums)
            })
            .collect();
        Table {
            totals: Totals {
                allocations: sums.records,
                bytes: sums.bytes as u64,
            },
            no_stack: sums.no_stack,
            invalid: sums.invalid,
            responsible,
            frames,
            per_stack,
            stack_times: times,
            by_owner,
            window,
        }
    }

    /// Totals of every stack with outstanding allocations, by [`StackId`], so that
    /// the dumps of a series can be compared stack by stack.
    pub fn totals_by_stack_id(
        &self,
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
    ) -> HashMap<StackId, Totals> {
        // The ids (every frame located and hashed) in parallel, then one map.
        let encoder = StackIdEncoder::new(modules);
        let ids: Vec<(StackId, Totals)> = self
            .per_stack
            .par_iter()
            .with_min_len(1024)
            .enumerate()
            .filter(|(_, t)| t.allocations > 0)
            .map_init(Vec::new, |buf, (s, t)| {
                (encoder.id(stream, s as u32, modules, &self.frames, buf), *t)
            })
            .collect();
        let mut out: HashMap<StackId, Totals> = HashMap::with_capacity(ids.len());
        for (id, t) in ids {
            out.entry(id).or_default().merge(t);
        }
        out
    }
}

/// What every stack with the same [`StackId`] as another shares: its depth (up to
/// the id's frame limit) and its innermost frame as the id encodes it (the module by
/// its first index among the modules of the same lower-case name, and the offset; or
/// the address). Cheap to compute, and equal for equal ids (equal ids hash equal bytes,
/// and the encoding of a frame delimits itself), so only stacks of a wanted shape need
/// their id.
type StackShape = (usize, u32, u64);

impl Table {
    /// [`Table::totals_by_stack_id`] for the ids of `wanted` (stack indices) only: the
    /// same entries as the full map for these ids, and no others; only the stacks of
    /// a wanted stack's shape (depth and innermost frame, equal for equal ids) are hashed.
    pub fn totals_of_stack_ids(
        &self,
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        wanted: impl IntoIterator<Item = u32>,
    ) -> HashMap<StackId, Totals> {
        let mut canonical: HashMap<String, u32> = HashMap::new();
        let canon: Vec<u32> = modules
            .modules()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                *canonical
                    .entry(m.name.to_ascii_lowercase())
                    .or_insert(i as u32)
            })
            .collect();
        let shape = |stack: u32| -> StackShape {
            let Some(r) = stream.stack(stack) else {
                return (0, u32::MAX, 0);
            };
            let depth = (r.frame_count as usize).min(crate::model::MAX_SAMPLE_FRAMES);
            let first = r.first_frame as usize;
            match stream.frame(first).filter(|_| depth > 0) {
                None => (depth, u32::MAX, 0),
                Some(addr) => match self.frames.locate_frame(first, addr, modules) {
                    Some((m, rva)) => (depth, canon[m], rva.0),
                    None => (depth, u32::MAX - 1, addr.0),
                },
            }
        };
        let encoder = StackIdEncoder::new(modules);
        let mut buf = Vec::new();
        let wanted: Vec<u32> = wanted.into_iter().collect();
        let shapes: std::collections::HashSet<StackShape, BuildHasherDefault<FoldHasher>> =
            wanted.iter().map(|&s| shape(s)).collect();
        let mut out: HashMap<StackId, Totals> = wanted
            .iter()
            .map(|&s| {
                let id = encoder.id(stream, s, modules, &self.frames, &mut buf);
                (id, Totals::default())
            })
            .collect();
        // The stacks of a wanted shape, found in parallel, in stack order.
        let candidates: Vec<usize> = self
            .per_stack
            .par_iter()
            .with_min_len(1 << 12)
            .enumerate()
            .filter(|(s, t)| t.allocations > 0 && shapes.contains(&shape(*s as u32)))
            .map(|(s, _)| s)
            .collect();
        for s in candidates {
            let id = encoder.id(stream, s as u32, modules, &self.frames, &mut buf);
            // Stacks of the same shape but another id are not wanted.
            if let Some(sum) = out.get_mut(&id) {
                sum.merge(self.per_stack[s]);
            }
        }
        // An id whose stacks have no outstanding allocations has no entry, as in the
        // full map.
        out.retain(|_, t| t.allocations > 0);
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

/// [`stack_id`] for many stacks: each module's part of the id's input (tag, name
/// length, lower-case name) is encoded once, and each stack's input is hashed in one
/// call into a reused buffer, instead of a streaming hasher fed field by field. The
/// bytes are exactly those [`StackId::of`] hashes (docs/report-schema.md, "Stack
/// ids"), and XXH3 of the same bytes is the same in one call or many; a test compares
/// the two on every kind of frame.
pub struct StackIdEncoder {
    prefixes: Vec<Vec<u8>>,
}

impl StackIdEncoder {
    pub fn new(modules: &ModuleMap) -> Self {
        let prefixes = modules
            .modules()
            .iter()
            .map(|m| {
                let name = m.name.as_bytes();
                let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
                let mut p = Vec::with_capacity(5 + name.len());
                p.push(0x01);
                p.extend_from_slice(&len.to_le_bytes());
                p.extend(name.iter().map(u8::to_ascii_lowercase));
                p
            })
            .collect();
        StackIdEncoder { prefixes }
    }

    /// The id of stack `stack`, as [`stack_id`] computes it (its innermost
    /// [`MAX_SAMPLE_FRAMES`](crate::model::MAX_SAMPLE_FRAMES) frames), with the frames'
    /// modules from `located`; `buf` is scratch space.
    pub fn id(
        &self,
        stream: &AllocationStream<'_>,
        stack: u32,
        modules: &ModuleMap,
        located: &FrameModules,
        buf: &mut Vec<u8>,
    ) -> StackId {
        buf.clear();
        let first = stream.stack(stack).map_or(0, |r| r.first_frame as usize);
        let frames = stream
            .stack_frames(stack)
            .into_iter()
            .flatten()
            .take(crate::model::MAX_SAMPLE_FRAMES);
        for (i, addr) in frames.enumerate() {
            match located.locate_frame(first + i, addr, modules) {
                Some((m, rva)) => {
                    buf.extend_from_slice(&self.prefixes[m]);
                    buf.extend_from_slice(&rva.0.to_le_bytes());
                }
                None => {
                    buf.push(0x02);
                    buf.extend_from_slice(&addr.0.to_le_bytes());
                }
            }
        }
        StackId(xxhash_rust::xxh3::xxh3_64(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::writer::AllocationStreamBuilder;
    use crate::model::Module;

    #[test]
    fn the_stack_id_encoder_gives_stack_id() {
        let long = format!("{}.DLL", "VeryLong_Module-Name".repeat(9));
        let module = |name: &str, base: u64, size: u64| Module {
            name: name.into(),
            path: format!("C:\\app\\{name}"),
            base: crate::addr::VirtAddr(base),
            size,
            unloaded: false,
            timestamp: 0,
            debug_id: None,
            debug_file: None,
            version: None,
            pdb: None,
        };
        let modules = ModuleMap::new(vec![
            module("App.EXE", 0x40_0000, 0x10_0000),
            module(&long, 0x7ff0_0000, 0x1000),
        ]);
        let mut b = AllocationStreamBuilder::new(0, 10);
        let stacks: Vec<Vec<u64>> = vec![
            vec![0x40_1234],
            vec![0x40_1234, 0x7ff0_0010, 0x1234, 0x40_0000],
            vec![0xdead_beef_0000, 0x7ff0_0fff],
            (0..200).map(|i| 0x40_0000 + i * 0x111).collect(),
            // Deeper than the id's frame limit: both take the same innermost frames.
            (0..(crate::model::MAX_SAMPLE_FRAMES as u64 + 40))
                .map(|i| 0x40_0000 + i * 0x10)
                .collect(),
        ];
        for s in &stacks {
            b.add_stack(s);
        }
        let bytes = b.build();
        let stream = AllocationStream::parse(&bytes).unwrap();
        let encoder = StackIdEncoder::new(&modules);
        let located = FrameModules::locate(&stream, &modules);
        let mut buf = Vec::new();
        for s in 0..stream.stack_count() as u32 {
            assert_eq!(
                encoder.id(&stream, s, &modules, &located, &mut buf),
                stack_id(&stream, s, &modules),
                "stack {s}"
            );
        }
    }

    #[test]
    fn totals_of_stack_ids_are_those_of_the_full_map() {
        let module = |name: &str, base: u64| Module {
            name: name.into(),
            path: format!("C:\\app\\{name}"),
            base: crate::addr::VirtAddr(base),
            size: 0x10_0000,
            unloaded: false,
            timestamp: 0,
            debug_id: None,
            debug_file: None,
            version: None,
            pdb: None,
        };
        // The same module name twice (loaded, unloaded, loaded again elsewhere): its
        // stacks at either base have the same id.
        let modules = ModuleMap::new(vec![
            module("App.EXE", 0x40_0000),
            module("app.exe", 0x80_0000),
            module("other.dll", 0xc0_0000),
        ]);
        let mut b = AllocationStreamBuilder::new(0, 10_000_000);
        let stacks: Vec<Vec<u64>> = vec![
            vec![0x40_1000, 0x40_2000],
            vec![0x80_1000, 0x80_2000],
            vec![0x40_1000, 0x40_3000],
            vec![0x40_1000],
            vec![0xc0_1000, 0x40_2000],
            vec![0xdead_0000, 0x40_2000],
            vec![0xdead_0000],
            (0..300).map(|i| 0x40_0000 + i * 0x10).collect(),
            (0..301).map(|i| 0x40_0000 + i * 0x10).collect(),
        ];
        for (i, s) in stacks.iter().enumerate() {
            for k in 0..=i as u64 {
                b.allocate(0x1000 * (k + 1), 10 + k, 5, AllocatorKind::CRuntime, s);
            }
        }
        let bytes = b.build();
        let stream = AllocationStream::parse(&bytes).unwrap();
        let table =
            Table::read(&stream, &modules, &ModuleFilter::new::<[&str; 0], &str>([])).unwrap();
        let full = table.totals_by_stack_id(&stream, &modules);
        assert!(full.len() < stacks.len(), "some stacks share an id");
        for s in 0..stream.stack_count() as u32 {
            let id = stack_id(&stream, s, &modules);
            let some = table.totals_of_stack_ids(&stream, &modules, [s]);
            assert_eq!(some.len(), 1, "stack {s}");
            assert_eq!(some.get(&id), full.get(&id), "stack {s}");
        }
        let all = table.totals_of_stack_ids(&stream, &modules, 0..stream.stack_count() as u32);
        assert_eq!(all, full);
    }

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

/// Allocations summed per stack by a reader that has no allocation table (a UMDH
/// snapshot log: `crate::umdh::snapshot`), for [`Table::from_summed`]. Every
/// allocation has the same `time` and `allocator`; a stack index that is not in the
/// stream's stack table counts as "no stack" ([`NO_STACK`]) or invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummedRecords {
    pub time: u64,
    pub allocator: AllocatorKind,
    /// (stack, size bucket ([`size_bucket`]), sums): any order, a pair may repeat.
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
        let mut skip = system.clone();
        skip.extend(&stream.allocator_modules());
        let frames = FrameModules::locate(stream, modules);
        let responsible: Vec<Option<Responsible>> =
            responsible_frames(stream, modules, &frames, &skip);
        let window = stream.header().window_ticks();
        let n = modules.len();
        let mut allocator_index = [0u8; 256];
        for (b, i) in allocator_index.iter_mut().enumerate() {
            *i = AllocatorKind::from_byte(b as u8).index() as u8;
        }
        let ctx = Context {
            bins: Bins::new(window),
            owner_of: responsible
                .iter()
                .map(|r| owner_index(r.map_or(Owner::NoStack, |r| r.owner), n))
                .collect(),
            no_stack_owner: owner_index(Owner::NoStack, n),
            allocator_index,
        };
        let bin = ctx.bins.of(records.time);
        let allocator = records.allocator.index();
        let mut p = Partial::new(&ctx);
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
        Self::from_sums(p, &ctx, responsible, frames, window, n)
    }
}
