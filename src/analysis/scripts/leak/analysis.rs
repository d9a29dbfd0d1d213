//! The leak analysis proper: the outstanding allocations of the table read (see
//! [`Table`]) charged to their responsible modules, grouped by function and stack,
//! and ranked.

use super::symbols::Symbols;
use crate::addr::{Rva, VirtAddr};
use crate::analysis::attribution::{ModuleFilter, Owner, Responsible};
use crate::analysis::probability::{TimeHistogram, TIME_BINS};
use crate::analysis::reachability::Reach;
use crate::analysis::table::ChargedAt;
use crate::analysis::table::{stack_id, OwnerSums, Table, TotalOverflow};
use crate::dump::stream::AllocationStream;
use crate::model::{
    sort_ranked, AllocatorKind, AllocatorTotals, Frame, FunctionLeak, HeapTotals, LeakAnalysis,
    ModuleLeak, ModuleMap, Omitted, RankEntry, SizeBucket, StackSample, TimelineBin, Totals,
    NO_STACK_MODULE, SIZE_BUCKETS, UNKNOWN_MODULE,
};
use std::collections::HashMap;

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
    /// Whether [`LeakAnalysis::stack_totals`] holds every stack (for a series of
    /// several dumps, which follows the last dump's stacks back through the others),
    /// or only the ids of this dump's sample stacks (enough for a dump alone: hashing
    /// every stack's id is a large part of the work on 100,000 stacks).
    pub all_stack_totals: bool,
}

impl Default for LeakOptions {
    fn default() -> Self {
        LeakOptions {
            system_modules: ModuleFilter::system_with::<&str>(&[]),
            sample_stacks: 3,
            top_functions: 10,
            min_window_seconds: 15 * 60,
            all_stack_totals: true,
        }
    }
}

/// Heap handles listed per module.
pub const TOP_HEAPS: usize = 10;

pub use crate::model::MAX_SAMPLE_FRAMES;

fn owner_name(owner: Owner, modules: &ModuleMap) -> String {
    match owner {
        Owner::Module(i) => modules.get(i).name.clone(),
        Owner::Unknown => UNKNOWN_MODULE.to_owned(),
        Owner::NoStack => NO_STACK_MODULE.to_owned(),
    }
}

/// The name a responsible frame is grouped under: `module!function` of the innermost
/// (inlined) function when symbols resolve it, else `module+0xRVA`, else the address
/// (what [`FunctionKey::name`] gives for the frame's key).
pub(crate) fn function_name(r: &Responsible, modules: &ModuleMap, symbols: &Symbols) -> String {
    function_key(r, modules, symbols).name(modules)
}

/// What a responsible frame is grouped under: its function's name, `module!function`
/// of the innermost (inlined) function when symbols resolve it, else `module+0xRVA`,
/// else the address. A frame with no symbol is keyed by its module and offset, which
/// name it as `module+0xRVA` and which no other key shares (a resolved name has a `!`
/// where this has a `+`, an address has neither), so grouping by the key is grouping
/// by the name, without making the name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FunctionKey {
    Named(String),
    /// Module index and offset: named `module+0xRVA`.
    Offset(usize, Rva),
}

impl FunctionKey {
    /// The function's name.
    fn name(&self, modules: &ModuleMap) -> String {
        match self {
            FunctionKey::Named(name) => name.clone(),
            FunctionKey::Offset(m, rva) => format!("{}+{rva}", modules.get(*m).name),
        }
    }
}

fn function_key(r: &Responsible, modules: &ModuleMap, symbols: &Symbols) -> FunctionKey {
    function_key_at(r.owner, ChargedAt::of(r), modules, symbols)
}

/// The function key of an allocation of `owner` charged `at`.
fn function_key_at(
    owner: Owner,
    r: ChargedAt,
    modules: &ModuleMap,
    symbols: &Symbols,
) -> FunctionKey {
    match (owner, r.rva) {
        (Owner::Module(i), Some(rva)) => function_key_in(i, rva, modules, symbols),
        _ => FunctionKey::Named(format!("{}", r.address)),
    }
}

/// The key of the function at `rva` in module `m`.
fn function_key_in(m: usize, rva: Rva, modules: &ModuleMap, symbols: &Symbols) -> FunctionKey {
    match symbols.lookup(m, rva).as_deref() {
        Some([innermost, ..]) => {
            FunctionKey::Named(format!("{}!{}", modules.get(m).name, innermost.function))
        }
        _ => FunctionKey::Offset(m, rva),
    }
}

/// The name of the function at `rva` in module `m`, as a function table groups it:
/// `module!function` of the innermost (inlined) function when symbols resolve it,
/// else `module+0xRVA`.
pub(crate) fn function_name_in(
    m: usize,
    rva: Rva,
    modules: &ModuleMap,
    symbols: &Symbols,
) -> String {
    function_key_in(m, rva, modules, symbols).name(modules)
}

/// The module index of a named function's sort key (no module has it).
const NAMED: usize = usize::MAX;

/// One function of a module: its stacks are `keyed[start..end]`.
struct FunctionGroup {
    start: usize,
    end: usize,
    totals: Totals,
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

/// Runs the leak analysis over one stream: one read of its table (see
/// [`Table::read`]), then the report's model built from it.
pub fn analyze(
    stream: &AllocationStream<'_>,
    modules: &ModuleMap,
    options: &LeakOptions,
    symbols: &Symbols,
) -> Result<LeakAnalysis, TotalOverflow> {
    let table = Table::read(stream, modules, &options.system_modules)?;
    Ok(build(stream, &table, modules, options, symbols, None))
}

/// Builds the leak analysis from the read table; with `reach`, every module,
/// function and sample stack gets its reachability classes and holders.
pub fn build(
    stream: &AllocationStream<'_>,
    table: &Table,
    modules: &ModuleMap,
    options: &LeakOptions,
    symbols: &Symbols,
    reach: Option<&Reach<'_>>,
) -> LeakAnalysis {
    let mut system = options.system_modules.clone();
    system.extend(&stream.allocator_modules());
    let pass = Pass {
        stream,
        modules,
        table,
        options,
        system: &system,
        symbols,
        reach,
    };
    // Owners are independent: built in parallel, collected in owner order.
    let mut modules_out: Vec<ModuleLeak> = {
        use rayon::prelude::*;
        table
            .by_owner
            .par_iter()
            .map(|(owner, acc)| build_module(*owner, acc, &pass))
            .collect()
    };
    sort_ranked(&mut modules_out, |m| (m.totals(), (m.name.clone(), m.base)));
    let mut modules_by_count: Vec<RankEntry> = modules_out
        .iter()
        .map(|m| RankEntry {
            name: m.name.clone(),
            allocations: m.allocations,
            bytes: m.bytes,
        })
        .collect();
    // The ranking by count: most allocations first, then most bytes, then name.
    modules_by_count.sort_by(|a, b| {
        b.allocations
            .cmp(&a.allocations)
            .then(b.bytes.cmp(&a.bytes))
            .then_with(|| a.name.cmp(&b.name))
    });

    let stack_totals = if options.all_stack_totals {
        table.totals_by_stack_id(stream, modules)
    } else {
        let samples = modules_out
            .iter()
            .flat_map(|m| m.stacks.iter().map(|s| s.stack));
        table.totals_of_stack_ids(stream, modules, samples)
    };
    LeakAnalysis {
        totals: table.totals,
        no_stack: table.no_stack,
        invalid_stack_records: table.invalid,
        modules: modules_out,
        modules_by_count,
        symbols: symbols.rows(modules),
        stack_totals,
    }
}

/// What every module's summary is built from.
struct Pass<'a> {
    stream: &'a AllocationStream<'a>,
    modules: &'a ModuleMap,
    table: &'a Table,
    options: &'a LeakOptions,
    /// System and allocator modules: plumbing, never the one to blame.
    system: &'a ModuleFilter,
    symbols: &'a Symbols,
    reach: Option<&'a Reach<'a>>,
}

fn build_module(owner: Owner, acc: &OwnerSums, pass: &Pass<'_>) -> ModuleLeak {
    let Pass {
        stream,
        modules,
        table,
        options,
        system,
        symbols,
        reach,
    } = *pass;
    let (responsible, per_stack, stack_times, window) = (
        &table.responsible,
        &table.per_stack,
        &table.stack_times,
        table.window,
    );
    // Functions: the responsible frames of the module's stacks, grouped by name. Names
    // are made only for the functions kept (see `FunctionKey`), and the time histogram
    // and leak probability only for them; the others are only counted.
    // Sorted as integers: (module, offset), or (NAMED, the name's index in `names`).
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<String, u64> = HashMap::new();
    let mut keyed: Vec<((usize, u64), u32)> = acc
        .charged
        .iter()
        .map(|&(s, at)| {
            let key = match function_key_at(owner, at, modules, symbols) {
                FunctionKey::Offset(m, rva) => (m, rva.0),
                FunctionKey::Named(name) => {
                    let i = *name_index.entry(name).or_insert_with_key(|name| {
                        names.push(name.clone());
                        names.len() as u64 - 1
                    });
                    (NAMED, i)
                }
            };
            (key, s)
        })
        .collect();
    keyed.sort_unstable();
    let mut groups: Vec<FunctionGroup> = Vec::new();
    for (i, (key, s)) in keyed.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if keyed[g.start].0 == *key => {
                g.totals.merge(per_stack[*s as usize]);
                g.end = i + 1;
            }
            _ => groups.push(FunctionGroup {
                start: i,
                end: i + 1,
                totals: per_stack[*s as usize],
            }),
        }
    }
    // Names are unique, so the order is total: only the kept ones need sorting (and
    // naming: two groups are named only when their totals tie).
    let name_of = |g: &FunctionGroup| match keyed[g.start].0 {
        (NAMED, i) => names[i as usize].clone(),
        (m, rva) => FunctionKey::Offset(m, Rva(rva)).name(modules),
    };
    top_ranked(&mut groups, options.top_functions, |a, b| {
        a.totals
            .rank(&b.totals)
            .then_with(|| name_of(a).cmp(&name_of(b)))
    });
    let functions_omitted = omit(&mut groups, options.top_functions, |g| {
        (g.totals.allocations, g.totals.bytes)
    });
    let functions: Vec<FunctionLeak> = groups
        .iter()
        .map(|g| {
            let mut times = TimeHistogram::default();
            for &(_, s) in &keyed[g.start..g.end] {
                stack_times.merge_into(s as usize, &mut times);
            }
            let stacks: Vec<u32> = keyed[g.start..g.end].iter().map(|&(_, s)| s).collect();
            FunctionLeak {
                name: name_of(g),
                allocations: g.totals.allocations,
                bytes: g.totals.bytes,
                leak_probability: times.leak_probability(window),
                reachability: reach.map(|r| r.totals(&stacks, false)),
            }
        })
        .collect();

    let mut stacks = acc.stacks.clone();
    top_ranked(&mut stacks, options.sample_stacks, |&a, &b| {
        per_stack[a as usize]
            .rank(&per_stack[b as usize])
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
            let frames = stream.stack_frames(s);
            let depth = frames.as_ref().map_or(0, |f| f.len());
            // The innermost frames, and the responsible one wherever it lies; the
            // rest are only counted.
            let listed: Vec<(usize, VirtAddr)> = frames
                .into_iter()
                .flatten()
                .enumerate()
                .take(MAX_SAMPLE_FRAMES)
                .chain(
                    charged
                        .filter(|&c| c >= MAX_SAMPLE_FRAMES)
                        .and_then(|c| Some((c, stream.stack_frames(s)?.nth(c)?))),
                )
                .collect();
            StackSample {
                stack: s,
                id: stack_id(stream, s, modules),
                allocations: per_stack[s as usize].allocations,
                bytes: per_stack[s as usize].bytes,
                leak_probability: times.leak_probability(window),
                frames_omitted: (depth - listed.len()) as u64,
                frames: listed
                    .into_iter()
                    .flat_map(|(i, address)| {
                        frames_at(address, charged == Some(i), modules, symbols)
                    })
                    .collect(),
                reach: reach.map(|r| r.view(&[s], false)),
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
        a.totals()
            .rank(&b.totals())
            .then_with(|| a.heap.cmp(&b.heap))
    });
    let heaps_omitted = omit(&mut heaps, TOP_HEAPS, |h| (h.allocations, h.bytes));
    let name = owner_name(owner, modules);
    ModuleLeak {
        system: module.is_some() && system.matches(&name),
        name,
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
        reach: reach.map(|r| r.view(&acc.stacks, matches!(owner, Owner::NoStack))),
    }
}

/// Puts the first `keep` items in the order of `cmp` at the front (the rest follow in
/// no particular order): the same first `keep` items as a full sort, when `cmp` is a
/// total order, in O(n) instead of O(n log n).
pub(crate) fn top_ranked<T>(
    items: &mut [T],
    keep: usize,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    if keep < items.len() {
        items.select_nth_unstable_by(keep, &cmp);
    }
    let keep = keep.min(items.len());
    items[..keep].sort_by(&cmp);
}

/// Truncates `items` to `keep` and returns what was cut.
pub(crate) fn omit<T>(
    items: &mut Vec<T>,
    keep: usize,
    totals: impl Fn(&T) -> (u64, u64),
) -> Omitted {
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
