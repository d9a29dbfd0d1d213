//! Reachability (docs/reachability.md): which outstanding blocks no pointer in the
//! process leads to — leaked, whatever their age — and which root holds the others.
//!
//! * [`blocks`]: the blocks sorted by address, and the index that finds the block
//!   an address lies in;
//! * [`layout`]: what every other address is (tracker memory, stacks, thread
//!   blocks, module data, untracked memory);
//! * [`scan`]: the three parallel passes (roots, breadth-first walk, references
//!   between unreachable blocks);
//! * [`roots`]: names for roots (globals from the PDB, threads, memory ranges).
//!
//! [`compute`] runs once per dump, before the scripts; the leak script adds the
//! classes and holders to every module, function and stack, and the reachability
//! script writes the section.

pub mod blocks;
pub mod layout;
pub mod roots;
pub mod scan;

use crate::addr::VirtAddr;
use crate::analysis::AnalyzeOptions;
use crate::dump::memory::DumpMemory;
use crate::dump::stream::AllocationStream;
use crate::dump::{DumpFile, ThreadInfo};
use crate::model::{
    Chain, ChainLink, Holder, ModuleMap, Omitted, ReachabilityTotals, ReachabilityView, StackId,
    Totals, TOP_HOLDERS,
};
use crate::symbols::{ModuleIdentity, ModuleSymbols};
use blocks::{BlockIndex, Blocks};
use layout::{Area, Layout, Painter};
use rayon::prelude::*;
use roots::{GroupKey, RootGroup, RootNamer};
use scan::{RootKey, Scan, NO_ROOT};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The result of the reachability scan of one dump, or why it did not run.
pub enum Outcome<'a> {
    NotRun(String),
    Done(Box<Reach<'a>>),
}

/// Chains longer than this keep their first and last links.
pub const MAX_CHAIN_LINKS: usize = 8;

/// A block's place in the per-stack sums: its stack index, or one slot past the
/// stack table for records without a usable stack.
fn slot(stack: u32, stack_count: usize) -> usize {
    if (stack as usize) < stack_count {
        stack as usize
    } else {
        stack_count
    }
}

/// The blocks of one stack held through one root group.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub slot: u32,
    pub group: u32,
    pub totals: Totals,
    /// The first of them by address: the block its chain leads to.
    pub first: u32,
}

/// What the scan found, summed per stack, with what it needs to build chains.
pub struct Reach<'a> {
    pub memory: DumpMemory<'a>,
    pub blocks: Blocks,
    pub scan: Scan,
    pub pointer_size: u64,
    /// Per stack index, plus one last slot for records without a usable stack.
    pub per_stack: Vec<ReachabilityTotals>,
    /// Root groups, by [`GroupKey`] order.
    pub groups: Vec<RootGroup>,
    /// Per (stack slot, group), sorted: the blocks held and the first of them.
    pub held: Vec<Held>,
    /// What the names of roots are made from.
    threads: Vec<ThreadInfo>,
    layout: Layout,
    sections: HashMap<u32, Vec<crate::pe::PeSection>>,
    symbols: HashMap<u32, Arc<ModuleSymbols>>,
    frame_symbols: HashMap<u32, Arc<ModuleSymbols>>,
    pub tracker_regions_declared: bool,
    /// Blocks whose memory the dump does not hold: their pointers cannot be followed.
    pub blocks_without_memory: Totals,
    pub warnings: Vec<String>,
    /// For the stack ids of chain links, computed only for the links shown.
    stream: &'a AllocationStream<'a>,
    modules: &'a ModuleMap,
}

/// Runs the scan when the dump has tracker data and memory.
pub fn compute<'a>(
    dump: &'a DumpFile,
    stream: &'a AllocationStream<'a>,
    table: &crate::analysis::table::Table,
    modules: &'a ModuleMap,
    options: &AnalyzeOptions,
) -> Outcome<'a> {
    let Some(memory) = dump.memory() else {
        return Outcome::NotRun(
            "the dump holds no process memory (no MemoryListStream or Memory64ListStream); reachability needs a full-memory dump, e.g. from `ldtrack dump PID --full`".into(),
        );
    };
    if memory.ranges.is_empty() {
        return Outcome::NotRun("the dump's memory lists hold no readable range".into());
    }
    let mut warnings = memory.warnings.clone();
    let pointer_size = pointer_size(dump);
    let blocks = Blocks::read(stream);
    warnings.extend(blocks.warnings.iter().cloned());
    let without_memory = scan::without_memory(&memory, &blocks);
    let missing = without_memory.iter().filter(|&&w| w).count();
    // A dump that holds little more than its thread stacks (a plain minidump)
    // would make almost every block look unreachable.
    if missing * 2 > blocks.len() {
        return Outcome::NotRun(format!(
            "the dump holds the memory of only {} of the {} outstanding blocks (it is not a full-memory dump): reachability needs one, e.g. from `ldtrack dump PID --full`",
            blocks.len() - missing,
            blocks.len()
        ));
    }
    let index = BlockIndex::new(&blocks);
    let threads = dump.threads();
    let tracker = declared_tracker_regions(stream);
    let tracker_regions_declared = tracker.is_some();
    if !tracker_regions_declared {
        warnings.push("the allocation stream does not declare the tracker's own memory (format 1.3): copies of block addresses in the tracker's tables may make leaked blocks look reachable".into());
    }
    let mut sections = HashMap::new();
    let layout = paint(
        &memory,
        &threads,
        modules,
        tracker.as_deref().unwrap_or_default(),
        pointer_size,
        &mut sections,
    );
    let registers: Vec<(u32, u32, u64)> = threads
        .iter()
        .enumerate()
        .flat_map(|(t, th)| {
            th.registers
                .iter()
                .enumerate()
                .map(move |(r, &(_, v))| (t as u32, r as u32, v))
        })
        .collect();
    if threads.is_empty() {
        warnings.push("the dump has no thread list: stacks and registers are not roots, so blocks only a stack holds look leaked".into());
    }
    let overlaid = scan::overlaid(&blocks, &layout);
    let scan = Scan::run(
        &scan::Input {
            memory: &memory,
            blocks: &blocks,
            index: &index,
            layout: &layout,
            pointer_size,
            registers: &registers,
            overlaid: &overlaid,
        },
        without_memory,
    );

    // Symbols of the modules whose data holds a root, loaded once (in parallel,
    // through the run's cache) before anything is named.
    let mut keys: Vec<RootKey> = scan
        .holder
        .par_iter()
        .copied()
        .filter(|&k| k != NO_ROOT)
        .collect();
    keys.par_sort_unstable();
    keys.dedup();
    let reader = |address: u64, len: usize| memory.slice(address, len as u64).map(<[u8]>::to_vec);
    let symbols: HashMap<u32, Arc<ModuleSymbols>> = RootNamer::modules_of(&layout, &keys)
        .into_par_iter()
        .map(|m| {
            let reader: &(dyn Fn(u64, usize) -> Option<Vec<u8>> + Sync) = &reader;
            let identity = ModuleIdentity::of(modules.get(m as usize));
            (m, options.symbolizer.load(&identity, Some(reader)))
        })
        .collect();
    // Frames of stack roots are named from the PDBs the leak analysis loads anyway
    // (modules in allocation stacks), never from others: a symbol server may be
    // slow.
    let in_stacks =
        crate::analysis::attribution::modules_in_stacks(stream, &table.frames, modules.len());
    let frame_symbols: HashMap<u32, Arc<ModuleSymbols>> =
        RootNamer::code_modules_on_stacks(modules, &threads, &memory, pointer_size)
            .into_par_iter()
            .filter(|&m| in_stacks.contains(&(m as usize)))
            .map(|m| {
                let reader: &(dyn Fn(u64, usize) -> Option<Vec<u8>> + Sync) = &reader;
                let identity = ModuleIdentity::of(modules.get(m as usize));
                (m, options.symbolizer.load(&identity, Some(reader)))
            })
            .collect();
    let namer = RootNamer {
        modules,
        threads: &threads,
        layout: &layout,
        memory: &memory,
        sections: &sections,
        symbols: &symbols,
        frame_symbols: &frame_symbols,
        pointer_size,
    };
    // Every distinct root's group, then the groups numbered in order and named once.
    let key_groups: Vec<GroupKey> = keys.par_iter().map(|&k| namer.group_key(k)).collect();
    let mut group_keys = key_groups.clone();
    group_keys.sort_unstable();
    group_keys.dedup();
    let groups: Vec<RootGroup> = group_keys.par_iter().map(|&g| namer.group(g)).collect();
    let group_of_key: Vec<u32> = key_groups
        .iter()
        .map(|g| group_keys.binary_search(g).unwrap_or(0) as u32)
        .collect();

    let stack_count = stream.stack_count();
    let mut per_stack = vec![ReachabilityTotals::default(); stack_count + 1];
    for b in 0..blocks.len() {
        let size = blocks.size[b];
        let t = &mut per_stack[slot(blocks.stack[b], stack_count)];
        match scan.state[b] {
            scan::REACHABLE => t.reachable.add(size),
            scan::HELD_BY_UNTRACKED => t.held_by_untracked.add(size),
            _ => {
                t.unreachable.add(size);
                if !scan.referenced[b] {
                    t.unreferenced.add(size);
                }
            }
        }
    }
    // What each (stack, group) holds: one row per held block, sorted, then summed.
    let mut rows: Vec<(u32, u32, u32)> = (0..blocks.len() as u32)
        .into_par_iter()
        .filter_map(|b| {
            let key = scan.holder[b as usize];
            let k = keys.binary_search(&key).ok()?;
            let s = slot(blocks.stack[b as usize], stack_count) as u32;
            Some((s, group_of_key[k], b))
        })
        .collect();
    rows.par_sort_unstable();
    let mut held: Vec<Held> = Vec::new();
    for (s, g, b) in rows {
        match held.last_mut() {
            Some(h) if h.slot == s && h.group == g => h.totals.add(blocks.size[b as usize]),
            _ => held.push(Held {
                slot: s,
                group: g,
                totals: Totals {
                    allocations: 1,
                    bytes: blocks.size[b as usize],
                },
                first: b,
            }),
        }
    }
    for &(stack, size) in &blocks.not_judged {
        per_stack[slot(stack, stack_count)].not_judged.add(size);
    }

    let without: Totals = (0..blocks.len()).filter(|&b| scan.without_memory[b]).fold(
        Totals::default(),
        |mut t, b| {
            t.add(blocks.size[b]);
            t
        },
    );
    if without.allocations > 0 {
        warnings.push(format!(
            "the dump does not hold the memory of {} blocks ({} bytes): their pointers cannot be followed, so blocks they hold may be called unreachable",
            without.allocations, without.bytes
        ));
    }
    Outcome::Done(Box::new(Reach {
        memory,
        blocks,
        scan,
        pointer_size,
        per_stack,
        groups,
        held,
        threads,
        layout,
        sections,
        symbols,
        frame_symbols,
        tracker_regions_declared,
        blocks_without_memory: without,
        warnings,
        stream,
        modules,
    }))
}

/// The regions the tracker declares as its own (stream format 1.3), as
/// `(base, size)`; `None` when the stream declares nothing.
fn declared_tracker_regions(stream: &AllocationStream<'_>) -> Option<Vec<(u64, u64)>> {
    stream
        .tracker_regions()
        .map(|regions| regions.iter().map(|r| (r.base.0, r.size)).collect())
}

fn pointer_size(dump: &DumpFile) -> u64 {
    use minidump::system_info::PointerWidth;
    match dump
        .minidump()
        .get_stream::<minidump::MinidumpSystemInfo>()
        .map(|s| s.cpu.pointer_width())
    {
        Ok(PointerWidth::Bits32) => 4,
        _ => 8,
    }
}

/// Reads a pointer from the dump's memory.
fn read_pointer(memory: &DumpMemory<'_>, address: u64, ps: u64) -> Option<u64> {
    let b = memory.slice(address, ps)?;
    Some(if ps == 8 {
        u64::from_le_bytes(b.try_into().ok()?)
    } else {
        u64::from(u32::from_le_bytes(b.try_into().ok()?))
    })
}

/// Paints what every address is, by precedence (see [`layout`]).
fn paint(
    memory: &DumpMemory<'_>,
    threads: &[ThreadInfo],
    modules: &ModuleMap,
    tracker: &[(u64, u64)],
    ps: u64,
    sections: &mut HashMap<u32, Vec<crate::pe::PeSection>>,
) -> Layout {
    let mut p = Painter::default();
    for &(base, size) in tracker {
        p.paint(base, base.saturating_add(size), Area::Tracker);
    }
    for (t, th) in threads.iter().enumerate() {
        // The stack's bounds from the TEB's NT_TIB (StackBase, StackLimit), else the
        // captured stack.
        let tib = (th.teb != 0)
            .then(|| {
                Some((
                    read_pointer(memory, th.teb.checked_add(ps)?, ps)?,
                    read_pointer(memory, th.teb.checked_add(2 * ps)?, ps)?,
                ))
            })
            .flatten()
            .filter(|&(base, limit)| limit < base);
        let captured_end = th.stack_start.saturating_add(th.stack_size);
        let (low, high) = match tib {
            Some((base, limit)) => (limit.min(th.stack_start), base.max(captured_end)),
            None => (th.stack_start, captured_end),
        };
        match th.stack_pointer.filter(|&sp| low <= sp && sp <= high) {
            Some(sp) => {
                p.paint(low, sp, Area::DeadStack);
                p.paint(sp, high, Area::LiveStack(t as u32));
            }
            None => p.paint(low, high, Area::LiveStack(t as u32)),
        }
    }
    let teb_size = if ps == 8 { 0x2000 } else { 0x1000 };
    for (t, th) in threads.iter().enumerate() {
        if th.teb != 0 {
            p.paint(
                th.teb,
                th.teb.saturating_add(teb_size),
                Area::ThreadBlock(t as u32),
            );
        }
    }
    for (i, m) in modules.modules().iter().enumerate() {
        if m.unloaded {
            continue;
        }
        let (base, end) = (m.base.0, m.base.0.saturating_add(m.size));
        let read = |rva: u64, len: usize| {
            memory
                .slice(base.checked_add(rva)?, len as u64)
                .map(<[u8]>::to_vec)
        };
        let image = crate::pe::ImageBytes::mapped(&read);
        let list = image.parse().map(|img| img.sections()).unwrap_or_default();
        if list.is_empty() {
            p.paint(base, end, Area::ModuleData(i as u32));
            continue;
        }
        for s in list.iter().filter(|s| s.writable) {
            p.paint(
                base.saturating_add(u64::from(s.rva)),
                base.saturating_add(u64::from(s.end)).min(end),
                Area::ModuleData(i as u32),
            );
        }
        p.paint(base, end, Area::ImageReadOnly);
        sections.insert(i as u32, list.into_iter().filter(|s| s.writable).collect());
    }
    p.finish()
}

impl Reach<'_> {
    /// The classes of the given stacks' blocks (and of the blocks without a usable
    /// stack, with `no_stack`).
    pub fn totals(&self, stacks: &[u32], no_stack: bool) -> ReachabilityTotals {
        let mut t = ReachabilityTotals::default();
        for &s in stacks {
            if let Some(x) = self.per_stack.get(s as usize) {
                t.merge(x);
            }
        }
        if no_stack {
            if let Some(x) = self.per_stack.last() {
                t.merge(x);
            }
        }
        t
    }

    /// Classes and top holders of the given stacks' blocks.
    pub fn view(&self, stacks: &[u32], no_stack: bool) -> ReachabilityView {
        let mut slots: Vec<u32> = stacks.to_vec();
        if no_stack {
            slots.push((self.per_stack.len() - 1) as u32);
        }
        slots.sort_unstable();
        slots.dedup();
        let mut by_group: BTreeMap<u32, (Totals, u32)> = BTreeMap::new();
        for &s in &slots {
            let from = self.held.partition_point(|h| h.slot < s);
            for h in self.held[from..].iter().take_while(|h| h.slot == s) {
                let e = by_group
                    .entry(h.group)
                    .or_insert((Totals::default(), h.first));
                e.0.merge(h.totals);
                e.1 = e.1.min(h.first);
            }
        }
        let (holders, holders_omitted) = self.top_holders(by_group);
        ReachabilityView {
            reachability: self.totals(stacks, no_stack),
            holders,
            holders_omitted,
        }
    }

    /// Holders over the whole dump.
    pub fn all_holders(&self) -> (Vec<Holder>, Omitted) {
        let mut by_group: BTreeMap<u32, (Totals, u32)> = BTreeMap::new();
        for h in &self.held {
            let e = by_group
                .entry(h.group)
                .or_insert((Totals::default(), h.first));
            e.0.merge(h.totals);
            e.1 = e.1.min(h.first);
        }
        self.top_holders(by_group)
    }

    fn top_holders(&self, by_group: BTreeMap<u32, (Totals, u32)>) -> (Vec<Holder>, Omitted) {
        let mut list: Vec<(u32, Totals, u32)> =
            by_group.into_iter().map(|(g, (t, f))| (g, t, f)).collect();
        list.sort_by(|a, b| {
            a.1.rank(&b.1)
                .then_with(|| self.groups[a.0 as usize].cmp(&self.groups[b.0 as usize]))
        });
        let mut omitted = Omitted::default();
        for (_, t, _) in list.iter().skip(TOP_HOLDERS) {
            omitted.count += 1;
            omitted.allocations += t.allocations;
            omitted.bytes += t.bytes;
        }
        let holders = list
            .into_iter()
            .take(TOP_HOLDERS)
            .map(|(g, t, first)| {
                let group = &self.groups[g as usize];
                Holder {
                    root: group.name.clone(),
                    kind: group.kind,
                    allocations: t.allocations,
                    bytes: t.bytes,
                    chain: self.chain(first),
                }
            })
            .collect();
        (holders, omitted)
    }

    fn namer(&self) -> RootNamer<'_> {
        RootNamer {
            modules: self.modules,
            threads: &self.threads,
            layout: &self.layout,
            memory: &self.memory,
            sections: &self.sections,
            symbols: &self.symbols,
            frame_symbols: &self.frame_symbols,
            pointer_size: self.pointer_size,
        }
    }

    fn stack_id(&self, block: usize) -> Option<StackId> {
        let stack = self.blocks.stack[block];
        ((stack as usize) < self.stream.stack_count())
            .then(|| crate::analysis::table::stack_id(self.stream, stack, self.modules))
    }

    /// The chain from the block's root to the block.
    pub fn chain(&self, block: u32) -> Chain {
        let mut path = vec![block];
        let mut at = block;
        while self.scan.parent[at as usize] != u32::MAX && path.len() <= self.blocks.len() {
            at = self.scan.parent[at as usize];
            path.push(at);
        }
        path.reverse();
        let key = self.scan.holder[block as usize];
        let root = self.namer().exact(key);
        let root_address = (scan::root_priority(key) != scan::priority::REGISTER)
            .then(|| VirtAddr(scan::root_address(key)));
        let links: Vec<ChainLink> = path
            .iter()
            .enumerate()
            .map(|(i, &b)| ChainLink {
                address: VirtAddr(self.blocks.start(b as usize)),
                size: self.blocks.size[b as usize],
                stack: self.stack_id(b as usize),
                next_at: path.get(i + 1).and_then(|&n| self.pointer_offset(b, n)),
            })
            .collect();
        let (links, links_omitted) = if links.len() > MAX_CHAIN_LINKS {
            let omitted = links.len() - (MAX_CHAIN_LINKS - 1);
            let mut kept: Vec<ChainLink> = links[..MAX_CHAIN_LINKS / 2].to_vec();
            kept.extend_from_slice(&links[links.len() - (MAX_CHAIN_LINKS / 2 - 1)..]);
            (kept, omitted as u64)
        } else {
            (links, 0)
        };
        Chain {
            root,
            root_address,
            links,
            links_omitted,
        }
    }

    /// Where in block `from` the first pointer into block `to` lies.
    fn pointer_offset(&self, from: u32, to: u32) -> Option<u64> {
        let (s, e) = self.blocks.bounds[from as usize];
        let (ts, te) = self.blocks.bounds[to as usize];
        let mut found = None;
        scan::block_words(&self.memory, s, e, self.pointer_size, |at, value| {
            if found.is_none() && ts <= value && value < te {
                found = Some(at - s);
            }
        });
        found
    }

    /// Totals over every block.
    pub fn overall(&self) -> ReachabilityTotals {
        let mut t = ReachabilityTotals::default();
        for x in &self.per_stack {
            t.merge(x);
        }
        t
    }
}
