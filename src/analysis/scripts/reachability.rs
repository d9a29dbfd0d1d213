//! The reachability script: the section of the scan that [`crate::analysis::reachability`]
//! ran over the dump's memory — the blocks by class, the roots that hold the most,
//! the stacks with the most unreachable bytes. What the scan proves is stated by
//! the verdict.

use super::leak::symbols::Symbols;
use super::{Need, Script, ScriptContext, ScriptInfo, ScriptOutput};
use crate::analysis::attribution::Owner;
use crate::analysis::reachability::{Outcome, Reach};
use crate::model::{
    Omitted, Reachability, SectionData, SectionError, Totals, UnreachableStack, UNKNOWN_MODULE,
};
use std::collections::BTreeSet;

/// The reachability script.
pub struct ReachabilityScript;

const INFO: ScriptInfo = ScriptInfo {
    name: "reachability",
    title: "Reachability",
    description: "scans a full-memory dump for pointers: which blocks are unreachable (leaked), which root holds the others",
    needs: &[
        Need::AllocationStream,
        Need::Memory,
        Need::ThreadList,
        Need::ModuleList,
        Need::Symbols,
    ],
};

/// Stacks listed by unreachable bytes.
const TOP_STACKS: usize = 10;

impl Script for ReachabilityScript {
    fn info(&self) -> &'static ScriptInfo {
        &INFO
    }

    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        let (stream, table) = ctx.tracked()?;
        let reach = match ctx.reachability {
            Some(Outcome::Done(reach)) => reach,
            Some(Outcome::NotRun(why)) => return Err(SectionError::NotApplicable(why.clone())),
            None => return Err(SectionError::NotApplicable("the scan was not run".into())),
        };
        let totals = reach.overall();
        let (holders, holders_omitted) = reach.all_holders();
        let (unreachable_stacks, unreachable_stacks_omitted) =
            top_stacks(ctx, stream, table, reach);
        let section = Reachability {
            pointer_size: reach.pointer_size as u8,
            memory_streams: reach.memory.streams.iter().map(|s| s.to_string()).collect(),
            memory_ranges: reach.memory.ranges.len() as u64,
            scanned: reach.scan.scanned,
            blocks: totals.total(),
            blocks_without_memory: reach.blocks_without_memory,
            tracker_regions_declared: reach.tracker_regions_declared,
            totals,
            holders,
            holders_omitted,
            unreachable_stacks,
            unreachable_stacks_omitted,
            warnings: reach.warnings.clone(),
        };
        // The verdict states what the scan proves (docs/verdict.md), so that no
        // finding here can contradict it.
        Ok(ScriptOutput::new(
            SectionData::Reachability(Box::new(section)),
            Vec::new(),
        ))
    }
}

/// The stacks with the most unreachable bytes, named like the leak section names
/// their responsible function.
fn top_stacks(
    ctx: &ScriptContext<'_>,
    stream: &crate::dump::stream::AllocationStream<'_>,
    table: &crate::analysis::table::Table,
    reach: &Reach<'_>,
) -> (Vec<UnreachableStack>, Omitted) {
    let mut slots: Vec<(usize, Totals)> = reach
        .per_stack
        .iter()
        .enumerate()
        .filter(|(_, t)| t.unreachable.allocations > 0)
        .map(|(s, t)| (s, t.unreachable))
        .collect();
    slots.sort_by(|a, b| a.1.rank(&b.1).then(a.0.cmp(&b.0)));
    let mut omitted = Omitted::default();
    for (_, t) in slots.iter().skip(TOP_STACKS) {
        omitted.count += 1;
        omitted.allocations += t.allocations;
        omitted.bytes += t.bytes;
    }
    slots.truncate(TOP_STACKS);
    let responsible = |s: usize| table.responsible.get(s).copied().flatten();
    let wanted: BTreeSet<usize> = slots
        .iter()
        .filter_map(|&(s, _)| match responsible(s)?.owner {
            Owner::Module(i) => Some(i),
            _ => None,
        })
        .collect();
    let memory = ctx.dump.minidump().get_memory();
    let reader = |address: u64, len: usize| {
        memory
            .as_ref()
            .and_then(|m| crate::dump::read_memory(m, address, len))
    };
    let symbols = Symbols::load(
        &ctx.options.symbolizer,
        ctx.modules,
        &wanted,
        &reader,
        stream.flags().return_addresses(),
    );
    let list = slots
        .into_iter()
        .map(|(s, _)| {
            let t = &reach.per_stack[s];
            let r = responsible(s);
            let module = match r.map(|r| r.owner) {
                Some(Owner::Module(i)) => ctx.modules.get(i).name.clone(),
                Some(Owner::Unknown) => UNKNOWN_MODULE.to_owned(),
                _ => crate::model::NO_STACK_MODULE.to_owned(),
            };
            UnreachableStack {
                stack: (s < stream.stack_count())
                    .then(|| crate::analysis::table::stack_id(stream, s as u32, ctx.modules)),
                module,
                function: r
                    .map(|r| super::leak::analysis::function_name(&r, ctx.modules, &symbols)),
                unreachable: t.unreachable,
                unreferenced: t.unreferenced,
                total: t.total(),
            }
        })
        .collect();
    (list, omitted)
}
