//! The partial sums of the table's records, and the [`Table`] made from them: what
//! both the record read (`read`) and the summed read (`summed`) fill in.
//!
//! The per-record work touches little memory: one 64-byte cache line of the record's
//! stack (its bytes, allocation counts per time bin, and the stack's owner: a dense
//! index from the attribution), that owner's size class, allocator and time-bin bytes
//! in a few hundred bytes per owner, and the (owner, heap) sums, found through a small
//! hint table. Totals per stack and per owner, and the owners' allocation counts per
//! time bin, are derived afterwards from the per-stack sums, which the [`Table`] then
//! keeps; no per-record work hashes anything but a heap handle missing from the hints
//! (with a multiply-fold hash, not SipHash). The time bin of a record is found without
//! a division ([`Bins`]).

use super::{size_bucket, ChargedAt, OwnerSums, StackTimes, Table};
use crate::analysis::attribution::{
    responsible_frames, FrameModules, ModuleFilter, Owner, Responsible,
};
use crate::analysis::probability::{Bins, TimeHistogram, TIME_BINS};
use crate::dump::stream::{AllocationStream, AllocatorKind, ALLOCATION_RECORD_SIZE, NO_STACK};
use crate::hash::FoldMap;
use crate::model::{ModuleMap, Totals, SIZE_BUCKETS};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Adds one allocation of `size` bytes. Wrapping: the sums of a table whose total
/// overflows 2^64 are thrown away (the total is kept in 128 bits and checked).
#[inline]
fn add(t: &mut Totals, size: u64) {
    t.allocations += 1;
    t.bytes = t.bytes.wrapping_add(size);
}

pub(super) fn merge(t: &mut Totals, o: Totals) {
    t.allocations += o.allocations;
    t.bytes = t.bytes.wrapping_add(o.bytes);
}

/// One stack's sums in a partial sum: one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct StackSums {
    pub(super) bytes: u64,
    /// Allocations per time bin, modulo 2^16; each wrap to 0 is recorded in
    /// [`Partial::carries`].
    pub(super) times: [u16; TIME_BINS],
    /// The stack's owner index ([`Context::owner_of`]), in the line the record reads
    /// anyway (and prefetches): one dependent load fewer per record.
    pub(super) owner: u32,
}

/// One owner's per-record sums in a partial sum; its totals and its allocation
/// counts per time bin are derived from the stacks.
#[derive(Clone, Copy, Default)]
pub(super) struct OwnerPartial {
    pub(super) sizes: [Totals; SIZE_BUCKETS.len() + 1],
    pub(super) allocators: [Totals; AllocatorKind::ALL.len()],
    pub(super) time_bytes: [u64; TIME_BINS],
}

/// What the per-record work reads: shared by every worker.
pub(super) struct Context {
    pub(super) bins: Bins,
    /// The owner index of every stack (see [`owner_index`]).
    pub(super) owner_of: Vec<u32>,
    /// The owner index of [`Owner::NoStack`].
    pub(super) no_stack_owner: u32,
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
pub(super) struct Partial {
    pub(super) records: u64,
    /// Kept in 128 bits, so that overflowing 2^64 is seen after the merge.
    pub(super) bytes: u128,
    pub(super) no_stack: Totals,
    pub(super) invalid: Totals,
    pub(super) stacks: Vec<StackSums>,
    /// Each (stack, bin) here stands for 2^16 more allocations.
    pub(super) carries: Vec<(u32, u8)>,
    pub(super) owners: Vec<OwnerPartial>,
    /// Allocations per time bin of the records without a valid stack.
    pub(super) unstacked_times: [u64; TIME_BINS],
    /// The first [`SMALL_HEAPS`] heap handles seen (a process has few heaps); their
    /// sums are in `small_heap_sums[slot × owners + owner]`, found by a short scan.
    small_heaps: Vec<u64>,
    small_heap_sums: Vec<Totals>,
    /// 1 + the slot in `small_heaps` of the last heap seen with each 6-bit hash, 0 for
    /// none: checked before the scan.
    heap_hint: [u8; 64],
    /// The sums of any further heap, by (owner, heap).
    heaps: FoldMap<(u32, u64), Totals>,
}

/// Heap handles kept in the partial sums' small table.
const SMALL_HEAPS: usize = 16;

impl Partial {
    pub(super) fn new(ctx: &Context) -> Self {
        Partial {
            records: 0,
            bytes: 0,
            no_stack: Totals::default(),
            invalid: Totals::default(),
            stacks: ctx
                .owner_of
                .iter()
                .map(|&owner| StackSums {
                    owner,
                    ..StackSums::default()
                })
                .collect(),
            carries: Vec::new(),
            owners: vec![OwnerPartial::default(); ctx.no_stack_owner as usize + 1],
            unstacked_times: [0; TIME_BINS],
            small_heaps: Vec::with_capacity(SMALL_HEAPS),
            small_heap_sums: Vec::new(),
            heap_hint: [0; 64],
            heaps: FoldMap::default(),
        }
    }

    /// The sums of `owner`'s allocations on `heap`.
    #[inline]
    pub(super) fn heap_sums(&mut self, owner: u32, heap: u64) -> &mut Totals {
        let owners = self.owners.len();
        // The hint is right for almost every record (a process has few heaps), so the
        // per-record cost is a multiplication and one predictable comparison.
        let hint = (heap.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize;
        let slot = match self.heap_hint[hint] {
            h if h != 0 && self.small_heaps[usize::from(h) - 1] == heap => usize::from(h) - 1,
            _ => match self.small_heaps.iter().position(|&h| h == heap) {
                Some(slot) => {
                    self.heap_hint[hint] = (slot + 1) as u8;
                    slot
                }
                None if self.small_heaps.len() < SMALL_HEAPS => {
                    self.small_heaps.push(heap);
                    self.small_heap_sums
                        .resize(self.small_heaps.len() * owners, Totals::default());
                    self.heap_hint[hint] = self.small_heaps.len() as u8;
                    self.small_heaps.len() - 1
                }
                None => return self.heaps.entry((owner, heap)).or_default(),
            },
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
    pub(super) fn add_records(&mut self, records: &[[u8; ALLOCATION_RECORD_SIZE]], ctx: &Context) {
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
                    s.owner
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
    pub(super) fn merge(mut self, other: Partial) -> Partial {
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

/// What every way of building a [`Table`] does first: attribute every stack (skipping
/// `system` modules and the stream's declared allocator modules) and build the
/// per-record [`Context`] from the attribution. One function, so that the record read
/// and the summed read cannot drift apart.
pub(super) struct Setup {
    pub(super) responsible: Vec<Option<Responsible>>,
    pub(super) frames: FrameModules,
    /// The tracking window in ticks.
    pub(super) window: u64,
    /// The number of modules.
    pub(super) modules: usize,
    pub(super) ctx: Context,
}

impl Setup {
    pub(super) fn new(
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        system: &ModuleFilter,
    ) -> Setup {
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
        Setup {
            responsible,
            frames,
            window,
            modules: n,
            ctx,
        }
    }
}

impl Table {
    /// The table from the merged partial sums: per-stack totals and time counts, then
    /// each owner's totals and time counts from its stacks.
    pub(super) fn from_sums(sums: Partial, setup: Setup) -> Table {
        let Setup {
            responsible,
            frames,
            window,
            modules,
            ctx,
        } = setup;
        let mut carried: BTreeMap<(u32, u8), u64> = BTreeMap::new();
        for &c in &sums.carries {
            *carried.entry(c).or_default() += 1 << 16;
        }
        let owners = sums.owners.len();
        let mut owner_totals = vec![Totals::default(); owners];
        // Per stack, then per owner, over pieces of the stack table in parallel (exact
        // integer sums: the same in any order).
        let mut per_stack: Vec<Totals> = sums
            .stacks
            .par_iter()
            .with_min_len(1 << 12)
            .map(|sum| Totals {
                allocations: sum.times.iter().map(|&c| u64::from(c)).sum(),
                bytes: sum.bytes,
            })
            .collect();
        let mut owner_times = sums
            .stacks
            .par_iter()
            .enumerate()
            .with_min_len(1 << 12)
            .fold(
                || vec![[0u64; TIME_BINS]; owners],
                |mut times, (s, sum)| {
                    let o = ctx.owner_of[s] as usize;
                    for (t, &c) in times[o].iter_mut().zip(&sum.times) {
                        *t += u64::from(c);
                    }
                    times
                },
            )
            .reduce_with(|mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    for (x, y) in x.iter_mut().zip(y) {
                        *x += y;
                    }
                }
                a
            })
            .unwrap_or_else(|| vec![[0u64; TIME_BINS]; owners]);
        // The wraps past 2^16 (a stack with 65,536 allocations or more in one bin).
        for (&(s, bin), &extra) in &carried {
            per_stack[s as usize].allocations += extra;
            owner_times[ctx.owner_of[s as usize] as usize][usize::from(bin)] += extra;
        }
        // Each owner's stacks, in stack order, into lists sized once (growing them by
        // doubling copies megabytes for 100,000 stacks).
        let mut counts = vec![0usize; owners];
        for (s, t) in per_stack.iter().enumerate() {
            if t.allocations > 0 {
                counts[ctx.owner_of[s] as usize] += 1;
            }
        }
        let mut owner_stacks: Vec<Vec<u32>> =
            counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        let mut owner_charged: Vec<Vec<(u32, ChargedAt)>> =
            counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        for (s, t) in per_stack.iter().enumerate() {
            if t.allocations > 0 {
                let o = ctx.owner_of[s] as usize;
                merge(&mut owner_totals[o], *t);
                owner_stacks[o].push(s as u32);
                if let Some(r) = &responsible[s] {
                    owner_charged[o].push((s as u32, ChargedAt::of(r)));
                }
            }
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
                    charged: std::mem::take(&mut owner_charged[o]),
                };
                (owner_at(o, modules), sums)
            })
            .collect();
        let times = StackTimes {
            sums: sums.stacks,
            carried,
        };
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
}
