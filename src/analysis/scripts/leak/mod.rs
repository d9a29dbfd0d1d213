//! The leak-analysis script: which modules hold the outstanding allocations, how
//! likely each is a leak, with their functions and sample stacks.

pub mod analysis;
pub mod findings;
pub mod symbols;

pub use analysis::*;

use super::{Need, Script, ScriptContext, ScriptInfo, ScriptOutput};
use crate::model::{SectionData, SectionError};

/// The leak-analysis script.
pub struct LeakScript;

const INFO: ScriptInfo = ScriptInfo {
    name: "leak",
    title: "Leak analysis",
    description:
        "outstanding allocations by module, function and stack, ranked, with sample stacks",
    needs: &[Need::AllocationStream, Need::ModuleList, Need::Symbols],
};

impl Script for LeakScript {
    fn info(&self) -> &'static ScriptInfo {
        &INFO
    }

    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        let (stream, table) = ctx.tracked()?;
        let memory = ctx.dump.minidump().get_memory();
        let reader = |address: u64, len: usize| {
            memory
                .as_ref()
                .and_then(|m| crate::dump::read_memory(m, address, len))
        };
        let symbols = symbols::Symbols::load(
            &ctx.options.symbolizer,
            ctx.modules,
            // Every frame was located when the table was read.
            &crate::analysis::attribution::modules_in_stacks(
                stream,
                &table.frames,
                ctx.modules.len(),
            ),
            &reader,
            stream.flags().return_addresses(),
        );
        let reach = match ctx.reachability {
            Some(crate::analysis::reachability::Outcome::Done(r)) => Some(&**r),
            _ => None,
        };
        let analysis = build(
            stream,
            table,
            ctx.modules,
            &ctx.options.leak,
            &symbols,
            reach,
        );
        let findings = findings::findings(
            &analysis,
            &findings::FindingInputs {
                window_seconds: stream.header().window_seconds(),
                min_window_seconds: ctx.options.leak.min_window_seconds,
                flags: stream.flags(),
                max_depth: stream.metadata_value("max_depth"),
                tracking_began: stream.metadata_value("tracking_began"),
            },
        );
        Ok(ScriptOutput::new(
            SectionData::Leak(Box::new(analysis)),
            findings,
        ))
    }
}
