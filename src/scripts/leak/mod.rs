//! The leak-analysis script: which modules hold the outstanding allocations, how
//! likely each is a leak, with their functions and sample stacks.

pub mod analysis;
pub mod findings;
pub mod probability;
pub mod symbols;

pub use analysis::*;

use super::{Need, Script, ScriptContext, ScriptError, Section, SectionData};
use crate::report::RenderError;

/// The leak-analysis script.
pub struct LeakScript;

impl Script for LeakScript {
    fn name(&self) -> &'static str {
        "leak"
    }
    fn title(&self) -> &'static str {
        "Leak analysis"
    }
    fn description(&self) -> &'static str {
        "outstanding allocations by module, function and stack, ranked, with sample stacks"
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::AllocationStream, Need::ModuleList, Need::Symbols]
    }
    fn run(&self, ctx: &ScriptContext<'_>) -> Result<Box<dyn Section>, ScriptError> {
        let stream = ctx.stream.ok_or_else(|| {
            ScriptError::NotApplicable("the dump has no allocation stream (no tracker data)".into())
        })?;
        let memory = ctx.dump.minidump().get_memory();
        let reader = |address: u64, len: usize| {
            memory
                .as_ref()
                .and_then(|m| crate::dump::read_memory(m, address, len))
        };
        let symbols = symbols::Symbols::load(
            &ctx.options.symbolizer,
            ctx.modules,
            &modules_in_stacks(stream, ctx.modules),
            &reader,
            stream.flags().return_addresses(),
        );
        let mut analysis = analyze(stream, ctx.modules, &ctx.options.leak, &symbols)
            .map_err(|e| ScriptError::Failed(e.to_string()))?;
        // Images are found (folders indexed) once, and only if a finding needs a vendor.
        let images = std::cell::OnceCell::new();
        let make_images =
            || crate::scripts::modules::ImageReader::new(ctx.dump.minidump(), &ctx.options.images);
        let h = stream.header();
        let mut system = ctx.options.leak.system_modules.clone();
        system.extend(&stream.allocator_modules());
        analysis.findings = findings::findings(
            &analysis,
            &findings::FindingInputs {
                window_seconds: h.snapshot_time.saturating_sub(h.tracking_start) as f64 / 1e7,
                min_window_seconds: ctx.options.leak.min_window_seconds,
                flags: h.flags,
                max_depth: stream.metadata_value("max_depth"),
                system: &system,
                vendor: &|name| {
                    let module = ctx.modules.modules().iter().find(|m| m.name == name)?;
                    let (strings, _, _) = images.get_or_init(make_images).version(module)?;
                    strings.company_name
                },
            },
        );
        Ok(Box::new(analysis))
    }
}

impl SectionData for LeakAnalysis {
    fn render_html(&self, out: &mut String) -> Result<(), RenderError> {
        crate::report::sections::leak::render(self, out)
    }
    fn findings(&self) -> Vec<super::Finding> {
        self.findings.clone()
    }
}
