//! The leak analysis proper: outstanding allocations aggregated by stack, charged to their
//! responsible module, and ranked.
//!
//! The work is two linear passes. First every distinct stack is attributed once
//! (stacks are deduplicated by the tracker, so this is cheap); then the allocation
//! table is read once, adding each record to its stack's and its module's totals.
//! Memory is proportional to the number of stacks and modules, both already checked
//! against the stream's size, never to the allocation count.

use super::probability::{bin_of, TimeHistogram, TIME_BINS};
use super::symbols::{Symbols, SymbolsRow};
use crate::addr::{Rva, VirtAddr};
use crate::dump::stream::{AllocationStream, AllocatorKind, NO_STACK};
use crate::model::ModuleMap;
use crate::scripts::attribution::{responsible_frame, ModuleFilter, Owner, Responsible};
use crate::scripts::Finding;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

/// Name used for allocations whose responsible frame lies in no module.
pub const UNKNOWN_MODULE: &str = "(unknown)";
/// Name used for allocations with no usable stack.
pub const NO_STACK_MODULE: &str = "(no stack)";

/// How much detail to keep per module.
#[derive(Clone, Debug)]
pub struct LeakOptions {
    /// Modules whose frames are plumbing, besides the stream's `allocator_modules`.
    pub system_modules: ModuleFilter,
    /// Sample stacks kept per module (most bytes first).
    pub sample_stacks: usize,
    /// Functions listed per module (most bytes first).
    pub top_functions: usize,
    /// A tracking window shorter than this (seconds) is too short to judge.
    pub min_window_seconds: u64,
}

impl Default for LeakOptions {
    fn default() -> Self {
        LeakOptions {
            system_modules: ModuleFilter::system_with::<&str>(&[]),
            sample_stacks: 3,
            top_functions: 10,
            min_window_seconds: 15 * 60,
        }
    }
}

/// Why the analysis refused a stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LeakError {
    #[error("allocation stream: the sizes of the outstanding allocations add up to more than 2^64 bytes (at allocation {index}, size {size})")]
    TotalOverflow { index: u64, size: u64 },
}

/// A count of allocations and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub allocations: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(&mut self, bytes: u64) {
        self.allocations += 1;
        self.bytes += bytes;
    }
    fn merge(&mut self, other: Totals) {
        self.allocations += other.allocations;
        self.bytes += other.bytes;
    }
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

fn size_bucket(size: u64) -> usize {
    SIZE_BUCKETS.partition_point(|&b| b <= size)
}

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

/// Heap handles listed per module.
pub const TOP_HEAPS: usize = 10;

/// A function (until symbols: the responsible frame's `module+0xRVA`).
#[derive(Clone, Debug, Serialize)]
pub struct FunctionLeak {
    pub name: String,
    pub allocations: u64,
    pub bytes: u64,
    /// 0–100, see docs/leak-probability.md; `None` when it cannot be judged.
    pub leak_probability: Option<u8>,
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
    /// The stack's identity across dumps of a series: a hash of its frames as module
    /// name and offset (16 hex digits).
    pub id: String,
    pub allocations: u64,
    pub bytes: u64,
    pub leak_probability: Option<u8>,
    pub frames: Vec<Frame>,
}

/// What a list left out, so totals still add up.
#[derive(Clone, Copy, Debug, Default, Serialize)]
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
    /// For the analysis summary (which serializes them once, for every script).
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// Totals of every stack with outstanding allocations, by [`stack_signature`], so
    /// that the dumps of a series can be compared stack by stack.
    #[serde(skip)]
    pub stack_totals: HashMap<u64, Totals>,
}

/// A stack's identity across dumps: its frames as (module name, offset), or the
/// address for a frame in no module. Stack indices differ from dump to dump; this
/// does not.
pub fn stack_signature(stream: &AllocationStream<'_>, stack: u32, modules: &ModuleMap) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for addr in stream.stack_frames(stack).into_iter().flatten() {
        match modules.locate(addr) {
            Some((m, rva)) => (modules.get(m).name.as_str(), rva.0).hash(&mut h),
            None => ("", addr.0).hash(&mut h),
        }
    }
    h.finish()
}

#[derive(Default)]
struct ModuleAcc {
    totals: Totals,
    sizes: [Totals; SIZE_BUCKETS.len() + 1],
    allocators: [Totals; 6],
    time: TimeHistogram,
    heaps: HashMap<u64, Totals>,
    stacks: Vec<u32>,
}

/// Allocation counts by time bin for each stack that has allocations. Slots are
/// handed out on first use, so memory follows the stacks actually used (at most one
/// per allocation record), not the stack table's size.
struct StackTimes {
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
    fn merge_into(&self, stack: usize, into: &mut TimeHistogram) {
        if let Some(counts) = self.counts.get(self.slot[stack] as usize) {
            for (total, &c) in into.allocations.iter_mut().zip(counts) {
                *total += u64::from(c);
            }
        }
    }
}

fn owner_name(owner: Owner, modules: &ModuleMap) -> String {
    match owner {
        Owner::Module(i) => modules.get(i).name.clone(),
        Owner::Unknown => UNKNOWN_MODULE.to_owned(),
        Owner::NoStack => NO_STACK_MODULE.to_owned(),
    }
}

/// The name a responsible frame is grouped under: `module!function` of the innermost
/// (inlined) function when symbols resolve it, else `module+0xRVA`, else the address.
fn function_name(r: &Responsible, modules: &ModuleMap, symbols: &Symbols) -> String {
    match (r.owner, r.rva) {
        (Owner::Module(i), Some(rva)) => {
            let name = &modules.get(i).name;
            match symbols.lookup(i, rva).as_deref() {
                Some([innermost, ..]) => format!("{name}!{}", innermost.function),
                _ => format!("{name}+{rva}"),
            }
        }
        _ => format!("{}", r.address),
    }
}

/// The modules any frame of any stack lies in, whose symbols the report needs.
pub fn modules_in_stacks(stream: &AllocationStream<'_>, modules: &ModuleMap) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    for s in 0..stream.stack_count() as u32 {
        for addr in stream.stack_frames(s).into_iter().flatten() {
            if let Some(i) = modules.find(addr) {
                found.insert(i);
            }
        }
    }
    found
}

/// The report frames of one stack address.
fn frames_at(
    address: VirtAddr,
    responsible: bool,
    modules: &ModuleMap,
    symbols: &Symbols,
) -> Vec<Frame> {
    let located = modules.locate(address);
    let base = Frame {
        module: located.map(|(m, _)| modules.get(m).name.clone()),
        offset: located.map(|(_, rva)| rva),
        address,
        responsible,
        function: None,
        function_offset: None,
        file: None,
        line: None,
        inlined: false,
    };
    let resolved = located.and_then(|(m, rva)| symbols.lookup(m, rva));
    match resolved {
        Some(frames) if !frames.is_empty() => frames
            .into_iter()
            .map(|f| Frame {
                function: Some(f.function),
                function_offset: f.function_offset,
                file: f.file,
                line: f.line,
                inlined: f.inlined,
                ..base.clone()
            })
            .collect(),
        _ => vec![base],
    }
}

/// Runs the analysis over one stream.
pub fn analyze(
    stream: &AllocationStream<'_>,
    modules: &ModuleMap,
    options: &LeakOptions,
    symbols: &Symbols,
) -> Result<LeakAnalysis, LeakError> {
    let mut skip = options.system_modules.clone();
    skip.extend(&stream.allocator_modules());

    // Pass 1: attribute every distinct stack once.
    let stack_count = stream.stack_count();
    let responsible: Vec<Option<Responsible>> = (0..stack_count as u32)
        .map(|s| {
            stream
                .stack_frames(s)
                .and_then(|frames| responsible_frame(frames, modules, &skip))
        })
        .collect();

    // Pass 2: one read of the allocation table.
    let h = stream.header();
    let window = h.snapshot_time.saturating_sub(h.tracking_start);
    let mut per_stack = vec![Totals::default(); stack_count];
    let mut stack_times = StackTimes::new(stack_count);
    let mut by_owner: HashMap<Owner, ModuleAcc> = HashMap::new();
    let mut totals = Totals::default();
    let mut no_stack = Totals::default();
    let mut invalid = Totals::default();
    for (index, a) in stream.allocations().enumerate() {
        totals.bytes = totals
            .bytes
            .checked_add(a.size)
            .ok_or(LeakError::TotalOverflow {
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
    let mut stack_totals: HashMap<u64, Totals> = HashMap::new();
    for (s, r) in responsible.iter().enumerate() {
        if per_stack[s].allocations == 0 {
            continue;
        }
        stack_totals
            .entry(stack_signature(stream, s as u32, modules))
            .or_default()
            .merge(per_stack[s]);
        let owner = r.map_or(Owner::NoStack, |r| r.owner);
        if let Some(acc) = by_owner.get_mut(&owner) {
            acc.stacks.push(s as u32);
        }
    }

    let pass = Pass {
        stream,
        modules,
        responsible: &responsible,
        per_stack: &per_stack,
        stack_times: &stack_times,
        window,
        options,
        symbols,
    };
    let mut modules_out: Vec<ModuleLeak> = by_owner
        .into_iter()
        .map(|(owner, acc)| build_module(owner, acc, &pass))
        .collect();
    modules_out.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.allocations.cmp(&a.allocations))
            .then_with(|| a.name.cmp(&b.name))
            .then(a.base.cmp(&b.base))
    });
    let mut modules_by_count: Vec<RankEntry> = modules_out
        .iter()
        .map(|m| RankEntry {
            name: m.name.clone(),
            allocations: m.allocations,
            bytes: m.bytes,
        })
        .collect();
    modules_by_count.sort_by(|a, b| {
        b.allocations
            .cmp(&a.allocations)
            .then(b.bytes.cmp(&a.bytes))
            .then_with(|| a.name.cmp(&b.name))
    });

    Ok(LeakAnalysis {
        totals,
        no_stack,
        invalid_stack_records: invalid,
        modules: modules_out,
        modules_by_count,
        symbols: symbols.rows(modules),
        findings: Vec::new(),
        stack_totals,
    })
}

/// What every module's summary is built from.
struct Pass<'a> {
    stream: &'a AllocationStream<'a>,
    modules: &'a ModuleMap,
    responsible: &'a [Option<Responsible>],
    per_stack: &'a [Totals],
    stack_times: &'a StackTimes,
    /// The tracking window in ticks.
    window: u64,
    options: &'a LeakOptions,
    symbols: &'a Symbols,
}

fn build_module(owner: Owner, acc: ModuleAcc, pass: &Pass<'_>) -> ModuleLeak {
    let Pass {
        stream,
        modules,
        responsible,
        per_stack,
        stack_times,
        window,
        options,
        symbols,
    } = *pass;
    // Functions: the responsible frames of the module's stacks, grouped by name.
    let mut functions: HashMap<String, (Totals, TimeHistogram)> = HashMap::new();
    for &s in &acc.stacks {
        if let Some(r) = &responsible[s as usize] {
            let f = functions
                .entry(function_name(r, modules, symbols))
                .or_default();
            f.0.merge(per_stack[s as usize]);
            stack_times.merge_into(s as usize, &mut f.1);
        }
    }
    let mut functions: Vec<FunctionLeak> = functions
        .into_iter()
        .map(|(name, (t, times))| FunctionLeak {
            name,
            allocations: t.allocations,
            bytes: t.bytes,
            leak_probability: times.leak_probability(window),
        })
        .collect();
    functions.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.allocations.cmp(&a.allocations))
            .then_with(|| a.name.cmp(&b.name))
    });
    let functions_omitted = omit(&mut functions, options.top_functions, |f| {
        (f.allocations, f.bytes)
    });

    let mut stacks = acc.stacks;
    stacks.sort_by(|&a, &b| {
        let (ta, tb) = (per_stack[a as usize], per_stack[b as usize]);
        tb.bytes
            .cmp(&ta.bytes)
            .then(tb.allocations.cmp(&ta.allocations))
            .then(a.cmp(&b))
    });
    let stack_count = stacks.len() as u64;
    // Only the kept samples are built; the rest are counted in `stacks_omitted`.
    let mut stacks_omitted = Omitted::default();
    for &s in stacks.iter().skip(options.sample_stacks) {
        stacks_omitted.count += 1;
        stacks_omitted.allocations += per_stack[s as usize].allocations;
        stacks_omitted.bytes += per_stack[s as usize].bytes;
    }
    let samples: Vec<StackSample> = stacks
        .iter()
        .take(options.sample_stacks)
        .map(|&s| {
            let mut times = TimeHistogram::default();
            stack_times.merge_into(s as usize, &mut times);
            let charged = responsible[s as usize].map(|r| r.frame);
            StackSample {
                stack: s,
                id: format!("{:016x}", stack_signature(stream, s, modules)),
                allocations: per_stack[s as usize].allocations,
                bytes: per_stack[s as usize].bytes,
                leak_probability: times.leak_probability(window),
                frames: stream
                    .stack_frames(s)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .flat_map(|(i, address)| {
                        frames_at(address, charged == Some(i), modules, symbols)
                    })
                    .collect(),
            }
        })
        .collect();

    let size_distribution = acc
        .sizes
        .iter()
        .enumerate()
        .map(|(i, t)| SizeBucket {
            min: if i == 0 { 0 } else { SIZE_BUCKETS[i - 1] },
            max: SIZE_BUCKETS.get(i).copied(),
            allocations: t.allocations,
            bytes: t.bytes,
        })
        .collect();
    let allocators = AllocatorKind::ALL
        .iter()
        .zip(acc.allocators.iter())
        .filter(|(_, t)| t.allocations > 0)
        .map(|(&kind, t)| AllocatorTotals {
            kind,
            allocations: t.allocations,
            bytes: t.bytes,
        })
        .collect();
    let module = match owner {
        Owner::Module(i) => Some(modules.get(i)),
        _ => None,
    };
    let bin_seconds = window as f64 / 1e7 / TIME_BINS as f64;
    let timeline = (0..TIME_BINS)
        .map(|i| TimelineBin {
            start_seconds: i as f64 * bin_seconds,
            end_seconds: (i + 1) as f64 * bin_seconds,
            allocations: acc.time.allocations[i],
            bytes: acc.time.bytes[i],
        })
        .collect();
    let mut heaps: Vec<HeapTotals> = acc
        .heaps
        .iter()
        .map(|(&h, t)| HeapTotals {
            heap: format!("0x{h:x}"),
            allocations: t.allocations,
            bytes: t.bytes,
        })
        .collect();
    heaps.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.allocations.cmp(&a.allocations))
            .then_with(|| a.heap.cmp(&b.heap))
    });
    let heaps_omitted = omit(&mut heaps, TOP_HEAPS, |h| (h.allocations, h.bytes));
    ModuleLeak {
        name: owner_name(owner, modules),
        path: module.map(|m| m.path.clone()),
        base: module.map(|m| m.base),
        size: module.map(|m| m.size),
        allocations: acc.totals.allocations,
        bytes: acc.totals.bytes,
        leak_probability: acc.time.leak_probability(window),
        timeline,
        heaps,
        heaps_omitted,
        functions,
        functions_omitted,
        size_distribution,
        allocators,
        stack_count,
        stacks: samples,
        stacks_omitted,
    }
}

/// Truncates `items` to `keep` and returns what was cut.
fn omit<T>(items: &mut Vec<T>, keep: usize, totals: impl Fn(&T) -> (u64, u64)) -> Omitted {
    let mut omitted = Omitted::default();
    for item in items.iter().skip(keep) {
        let (allocations, bytes) = totals(item);
        omitted.count += 1;
        omitted.allocations += allocations;
        omitted.bytes += bytes;
    }
    items.truncate(keep);
    omitted
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
