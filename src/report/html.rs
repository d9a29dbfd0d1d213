//! HTML pages: askama view-models over the model. Everything here is formatting:
//! the numbers come from the model as they are, only spelled for people.
//!
//! Pages are self-contained: the style sheet is compiled in and inlined, charts are
//! inline SVG, and nothing refers to anything outside the file.

use super::charts::{bar_chart, ChartError, Unit};
use super::format::{approx_bytes, duration, percent, thousands};
use crate::batch::Index;
use crate::model::DumpReport;
use crate::scripts::leak::{LeakAnalysis, ModuleLeak, Omitted};
use askama::Template;
use std::io::Write;
use std::path::Path;

/// Why a page could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Modules drawn in the overview charts.
const CHART_MODULES: usize = 10;

struct KeyValue {
    key: &'static str,
    value: String,
}

struct ModuleRow {
    rank: usize,
    anchor: String,
    name: String,
    allocations: String,
    bytes: String,
    approx: String,
    share: String,
    top_function: String,
}

struct Row {
    name: String,
    allocations: String,
    bytes: String,
    share: String,
}

struct FrameView {
    module: String,
    offset: String,
    address: String,
    responsible: bool,
}

struct StackView {
    title: String,
    frames: Vec<FrameView>,
}

struct ModuleSection {
    anchor: String,
    name: String,
    facts: Vec<KeyValue>,
    functions: Vec<Row>,
    functions_omitted: Option<String>,
    sizes: Vec<Row>,
    allocators: Vec<Row>,
    stacks: Vec<StackView>,
    stacks_omitted: Option<String>,
}

struct ListedModule {
    name: String,
    path: String,
    base: String,
    size: String,
    state: &'static str,
    debug: String,
    version: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    title: String,
    generator: String,
    dump: Vec<KeyValue>,
    process: Vec<KeyValue>,
    tracking: Option<Vec<KeyValue>>,
    summary: Vec<KeyValue>,
    warnings: Vec<String>,
    chart_bytes: String,
    chart_count: String,
    modules: Vec<ModuleRow>,
    sections: Vec<ModuleSection>,
    metadata: Vec<KeyValue>,
    module_list: Vec<ListedModule>,
}

fn kv(key: &'static str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key,
        value: value.into(),
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "–".to_owned())
}

fn anchor(rank: usize) -> String {
    format!("module-{rank}")
}

fn omitted_text(o: &Omitted, what: &str) -> Option<String> {
    (o.count > 0).then(|| {
        format!(
            "{} more {what} not shown: {} allocations, {} bytes.",
            thousands(o.count),
            thousands(o.allocations),
            thousands(o.bytes)
        )
    })
}

fn row(name: String, allocations: u64, bytes: u64, whole: u64) -> Row {
    Row {
        name,
        allocations: thousands(allocations),
        bytes: thousands(bytes),
        share: percent(bytes, whole),
    }
}

fn module_section(rank: usize, m: &ModuleLeak) -> ModuleSection {
    let mut facts = vec![
        kv(
            "Outstanding",
            format!(
                "{} bytes in {} allocations",
                thousands(m.bytes),
                thousands(m.allocations)
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
    let stacks = m
        .stacks
        .iter()
        .enumerate()
        .map(|(i, s)| StackView {
            title: format!(
                "Sample {} — stack #{}: {} allocations, {} bytes",
                i + 1,
                s.stack,
                thousands(s.allocations),
                thousands(s.bytes)
            ),
            frames: s
                .frames
                .iter()
                .map(|f| FrameView {
                    module: f.module.clone().unwrap_or_else(|| "(unknown)".to_owned()),
                    offset: f.offset.map(|o| format!("+{o}")).unwrap_or_default(),
                    address: f.address.to_string(),
                    responsible: f.responsible,
                })
                .collect(),
        })
        .collect();
    ModuleSection {
        anchor: anchor(rank),
        name: m.name.clone(),
        facts,
        functions: m
            .functions
            .iter()
            .map(|f| row(f.name.clone(), f.allocations, f.bytes, m.bytes))
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
    }
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
            anchor: anchor(i + 1),
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
    let sections = leak
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| module_section(i + 1, m))
        .collect();
    Ok((chart_bytes, chart_count, rows, sections))
}

fn report_page(r: &DumpReport) -> Result<ReportPage, RenderError> {
    let p = &r.process;
    let dump = vec![
        kv("File", r.dump.file_name.clone()),
        kv("Path", r.dump.path.clone()),
        kv("Size", format!("{} bytes", thousands(r.dump.size))),
    ];
    let process = vec![
        kv("Image", opt(&p.image)),
        kv(
            "Process ID",
            p.pid.map(|p| p.to_string()).unwrap_or_else(|| "–".into()),
        ),
        kv("Architecture", opt(&p.arch)),
        kv(
            "Operating system",
            format!(
                "{} {}",
                opt(&p.os),
                p.os_version.clone().unwrap_or_default()
            ),
        ),
        kv("Process started", opt(&p.process_create_time)),
        kv("Dump written", opt(&p.dump_time)),
    ];
    let tracking = r.tracking.as_ref().map(|t| {
        let mut flags = Vec::new();
        if t.flags.return_addresses {
            flags.push("frames are return addresses");
        }
        if t.flags.dropped {
            flags.push("allocations dropped (counts are a lower bound)");
        }
        if t.flags.truncated_stacks {
            flags.push("some stacks cut at the depth limit");
        }
        vec![
            kv("Tracking started", opt(&t.start)),
            kv("Snapshot taken", opt(&t.snapshot)),
            kv("Tracking window", duration(t.duration_seconds)),
            kv("Stream version", t.version.clone()),
            kv(
                "Flags",
                if flags.is_empty() {
                    "none".to_owned()
                } else {
                    flags.join("; ")
                },
            ),
            kv(
                "Distinct stacks / frames",
                format!("{} / {}", thousands(t.stacks), thousands(t.frames)),
            ),
        ]
    });
    let (chart_bytes, chart_count, modules, sections, summary) = match &r.leak {
        Some(leak) => {
            let (a, b, c, d) = leak_views(leak)?;
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
                    format!(
                        "{} ({} bytes)",
                        thousands(leak.no_stack.allocations),
                        thousands(leak.no_stack.bytes)
                    ),
                ),
                kv(
                    "Records with an invalid stack index",
                    format!(
                        "{} ({} bytes)",
                        thousands(leak.invalid_stack_records.allocations),
                        thousands(leak.invalid_stack_records.bytes)
                    ),
                ),
            ];
            (a, b, c, d, summary)
        }
        None => Default::default(),
    };
    let metadata = r
        .tracking
        .iter()
        .flat_map(|t| t.metadata.iter())
        .map(|m| KeyValue {
            key: "",
            value: match &m.value {
                Some(v) => format!("{} = {}", m.key, v),
                None => format!("{} (no '=')", m.key),
            },
        })
        .collect();
    let module_list = r
        .module_list
        .iter()
        .map(|m| ListedModule {
            name: m.name.clone(),
            path: m.path.clone(),
            base: m.base.to_string(),
            size: thousands(m.size),
            state: if m.unloaded { "unloaded" } else { "loaded" },
            debug: match (&m.debug_file, &m.debug_id) {
                (Some(f), Some(id)) => format!("{f} {id}"),
                (Some(f), None) => f.clone(),
                (None, Some(id)) => id.clone(),
                (None, None) => "–".to_owned(),
            },
            version: opt(&m.version),
        })
        .collect();
    Ok(ReportPage {
        title: format!("leakdiag — {}", r.dump.file_name),
        generator: r.generator.clone(),
        dump,
        process,
        tracking,
        summary,
        warnings: r.warnings.clone(),
        chart_bytes,
        chart_count,
        modules,
        sections,
        metadata,
        module_list,
    })
}

/// Renders a dump's report.html into `w`.
pub fn render_report<W: Write>(mut w: W, report: &DumpReport) -> Result<(), RenderError> {
    let page = report_page(report)?;
    page.write_into(&mut w)?;
    Ok(())
}

/// Writes a dump's report.html.
pub fn write_report(path: &Path, report: &DumpReport) -> Result<(), RenderError> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    render_report(&mut w, report)?;
    w.flush()?;
    Ok(())
}

struct IndexRow {
    file_name: String,
    path: String,
    ok: bool,
    link: Option<String>,
    error: String,
    allocations: String,
    bytes: String,
    top_module: String,
    note: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    generator: String,
    ok: usize,
    failed: usize,
    rows: Vec<IndexRow>,
}

/// Renders the run's index.html into `w`.
pub fn render_index<W: Write>(mut w: W, index: &Index) -> Result<(), RenderError> {
    let rows = index
        .inputs
        .iter()
        .map(|e| IndexRow {
            file_name: e.file_name.clone(),
            path: e.path.clone(),
            ok: e.status == "ok",
            link: e.report_dir.as_ref().map(|d| format!("{d}/report.html")),
            error: e.error.clone().unwrap_or_default(),
            allocations: e.allocations.map(thousands).unwrap_or_else(|| "–".into()),
            bytes: e.bytes.map(thousands).unwrap_or_else(|| "–".into()),
            top_module: e
                .top_module
                .as_ref()
                .map(|t| format!("{} ({} bytes)", t.name, thousands(t.bytes)))
                .unwrap_or_else(|| "–".into()),
            note: if e.status == "ok" && !e.tracker_data {
                "no tracker data".to_owned()
            } else if e.warnings > 0 {
                format!("{} warnings", e.warnings)
            } else {
                String::new()
            },
        })
        .collect();
    IndexPage {
        generator: index.generator.clone(),
        ok: index.ok,
        failed: index.failed,
        rows,
    }
    .write_into(&mut w)?;
    Ok(())
}

/// Writes the run's index.html.
pub fn write_index(path: &Path, index: &Index) -> Result<(), RenderError> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    render_index(&mut w, index)?;
    w.flush()?;
    Ok(())
}
