//! The leak-analysis section: charts of the top modules, the module table, and a
//! card per module with its functions, sizes, allocators and sample stacks.

use crate::model::{LeakAnalysis, ModuleLeak};
use crate::report::charts::{bar_chart, timeline_chart, Unit};
use crate::report::stacks::{stack_view, StackView};
use crate::report::view::omitted_text;
use crate::report::view::{kv, module_anchor, row, KeyValue, Row};
use crate::report::RenderError;
use crate::text::{approx_bytes, count, percent, probability, thousands, with_bytes};
use askama::Template;
use rayon::prelude::*;

/// Modules drawn in the overview charts.
const CHART_MODULES: usize = 10;

struct ModuleRow {
    probability: String,
    rank: usize,
    anchor: String,
    name: String,
    allocations: String,
    bytes: String,
    approx: String,
    share: String,
    top_function: String,
}

struct SymbolsView {
    module: String,
    status: String,
    /// The status as a CSS class name.
    class: String,
    pdb: String,
    message: String,
    searched: Vec<(String, String)>,
}

struct FunctionRow {
    name: String,
    allocations: String,
    bytes: String,
    share: String,
    probability: String,
    /// `N of M` unreachable, when the dump was scanned.
    unreachable: Option<String>,
}

struct ModuleSection {
    anchor: String,
    name: String,
    facts: Vec<KeyValue>,
    /// The allocation timeline chart (top modules only, to keep the page small).
    timeline: Option<String>,
    heaps: Vec<Row>,
    heaps_omitted: Option<String>,
    functions: Vec<FunctionRow>,
    functions_omitted: Option<String>,
    sizes: Vec<Row>,
    allocators: Vec<Row>,
    stacks: Vec<StackView>,
    stacks_omitted: Option<String>,
    /// The reachability classes and holders, when the dump was scanned.
    reach_classes: Vec<super::reachability::ClassRow>,
    holders: Vec<super::reachability::HolderView>,
    holders_omitted: Option<String>,
}

/// Modules that get a card with functions and sample stacks: the page stays small
/// (well under 2 MB) whatever the dump; the rest are in the table and in report.json.
pub const DETAIL_MODULES: usize = 25;

/// Modules that get a timeline chart.
const TIMELINE_MODULES: usize = 10;

fn module_section(rank: usize, m: &ModuleLeak) -> Result<ModuleSection, RenderError> {
    // No timeline without allocation times (a UMDH snapshot).
    let timeline = if rank <= TIMELINE_MODULES && !m.timeline.is_empty() {
        let bins: Vec<(f64, f64, u64)> = m
            .timeline
            .iter()
            .map(|b| (b.start_seconds, b.end_seconds, b.bytes))
            .collect();
        Some(timeline_chart(
            &format!("{}: outstanding bytes by time of allocation", m.name),
            &bins,
        )?)
    } else {
        None
    };
    let mut facts = vec![
        kv("Leak probability", probability(m.leak_probability)),
        kv(
            "Outstanding",
            format!(
                "{} bytes in {}",
                thousands(m.bytes),
                count(m.allocations, "allocation")
            ),
        ),
        kv("Distinct stacks", thousands(m.stack_count)),
    ];
    if let Some(p) = &m.path {
        facts.push(kv("Path", p.clone()));
    }
    if let (Some(base), Some(size)) = (m.base, m.size) {
        facts.push(kv("Base", base.to_string()));
        facts.push(kv("Size", format!("{} bytes", thousands(size))));
    }
    let stacks = m.stacks.iter().map(|s| stack_view(s, &[])).collect();
    Ok(ModuleSection {
        anchor: module_anchor(&m.name),
        name: m.name.clone(),
        facts,
        timeline,
        heaps: m
            .heaps
            .iter()
            .map(|h| row(h.heap.clone(), h.allocations, h.bytes, m.bytes))
            .collect(),
        heaps_omitted: omitted_text(&m.heaps_omitted, "heaps"),
        functions: m
            .functions
            .iter()
            .map(|f| FunctionRow {
                name: f.name.clone(),
                allocations: thousands(f.allocations),
                bytes: thousands(f.bytes),
                share: percent(f.bytes, m.bytes),
                probability: probability(f.leak_probability),
                unreachable: f.reachability.map(|r| {
                    format!(
                        "{} of {}",
                        thousands(r.unreachable.allocations),
                        thousands(r.total().allocations)
                    )
                }),
            })
            .collect(),
        functions_omitted: omitted_text(&m.functions_omitted, "functions"),
        sizes: m
            .size_distribution
            .iter()
            .filter(|b| b.allocations > 0)
            .map(|b| {
                let name = match b.max {
                    Some(max) => format!("{} – {} bytes", thousands(b.min), thousands(max - 1)),
                    None => format!("{} bytes and more", thousands(b.min)),
                };
                row(name, b.allocations, b.bytes, m.bytes)
            })
            .collect(),
        allocators: m
            .allocators
            .iter()
            .map(|a| row(a.kind.label().to_owned(), a.allocations, a.bytes, m.bytes))
            .collect(),
        stacks,
        stacks_omitted: omitted_text(&m.stacks_omitted, "stacks"),
        reach_classes: m
            .reach
            .as_ref()
            .map(|r| super::reachability::class_rows(&r.reachability))
            .unwrap_or_default(),
        holders: m
            .reach
            .as_ref()
            .map(|r| super::reachability::holder_views(&r.holders))
            .unwrap_or_default(),
        holders_omitted: m
            .reach
            .as_ref()
            .and_then(|r| omitted_text(&r.holders_omitted, "roots")),
    })
}

fn leak_views(
    leak: &LeakAnalysis,
) -> Result<(String, String, Vec<ModuleRow>, Vec<ModuleSection>), RenderError> {
    let total = leak.totals.bytes;
    let by_bytes: Vec<(String, u64)> = leak
        .modules
        .iter()
        .take(CHART_MODULES)
        .map(|m| (m.name.clone(), m.bytes))
        .collect();
    let by_count: Vec<(String, u64)> = leak
        .modules_by_count
        .iter()
        .take(CHART_MODULES)
        .map(|m| (m.name.clone(), m.allocations))
        .collect();
    let chart_bytes = bar_chart("Top modules by outstanding bytes", &by_bytes, Unit::Bytes)?;
    let chart_count = bar_chart(
        "Top modules by outstanding allocations",
        &by_count,
        Unit::Count,
    )?;
    let rows = leak
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| ModuleRow {
            rank: i + 1,
            probability: probability(m.leak_probability),
            anchor: module_anchor(&m.name),
            name: m.name.clone(),
            allocations: thousands(m.allocations),
            bytes: thousands(m.bytes),
            approx: approx_bytes(m.bytes),
            share: percent(m.bytes, total),
            top_function: m
                .functions
                .first()
                .map(|f| f.name.clone())
                .unwrap_or_default(),
        })
        .collect();
    // The cards (each with its charts) are independent: built in parallel, in rank
    // order.
    let sections = leak.modules[..leak.modules.len().min(DETAIL_MODULES)]
        .par_iter()
        .enumerate()
        .map(|(i, m)| module_section(i + 1, m))
        .collect::<Result<_, _>>()?;
    Ok((chart_bytes, chart_count, rows, sections))
}

#[derive(Template)]
#[template(path = "sections/leak.html")]
struct LeakView {
    /// Says how many modules have no card, when some were left out.
    details_omitted: Option<String>,
    summary: Vec<KeyValue>,
    chart_bytes: String,
    chart_count: String,
    modules: Vec<ModuleRow>,
    sections: Vec<ModuleSection>,
    symbols: Vec<SymbolsView>,
}

/// Renders the section into `out`.
pub fn render(leak: &LeakAnalysis, out: &mut String) -> Result<(), RenderError> {
    let (chart_bytes, chart_count, modules, sections) = leak_views(leak)?;
    let summary = vec![
        kv(
            "Outstanding allocations",
            thousands(leak.totals.allocations),
        ),
        kv(
            "Outstanding bytes",
            format!(
                "{} ({})",
                thousands(leak.totals.bytes),
                approx_bytes(leak.totals.bytes)
            ),
        ),
        kv("Modules charged", thousands(leak.modules.len() as u64)),
        kv(
            "Top module",
            leak.modules
                .first()
                .map(|m| {
                    format!(
                        "{} — {} bytes ({})",
                        m.name,
                        thousands(m.bytes),
                        percent(m.bytes, leak.totals.bytes)
                    )
                })
                .unwrap_or_else(|| "–".into()),
        ),
        kv(
            "Allocations without a stack",
            with_bytes(leak.no_stack.allocations, leak.no_stack.bytes),
        ),
        kv(
            "Records with an invalid stack index",
            with_bytes(
                leak.invalid_stack_records.allocations,
                leak.invalid_stack_records.bytes,
            ),
        ),
    ];
    let symbols = leak
        .symbols
        .iter()
        .map(|s| SymbolsView {
            module: s.module.clone(),
            status: s.status.to_string(),
            class: s
                .status
                .to_string()
                .replace(' ', "-")
                .replace(['(', ')'], ""),
            pdb: s.pdb.clone().unwrap_or_else(|| "–".into()),
            message: s.message.clone().unwrap_or_default(),
            searched: s
                .searched
                .iter()
                .map(|a| (a.place.clone(), a.outcome.clone()))
                .collect(),
        })
        .collect();
    let details_omitted = (leak.modules.len() > DETAIL_MODULES).then(|| {
        format!(
            "Details are shown for the top {DETAIL_MODULES} modules; {} more modules are in the table above, and all of them in report.json.",
            leak.modules.len() - DETAIL_MODULES
        )
    });
    LeakView {
        details_omitted,
        symbols,
        summary,
        chart_bytes,
        chart_count,
        modules,
        sections,
    }
    .render_into(out)?;
    Ok(())
}
