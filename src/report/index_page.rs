//! The run's index.html: every input with its status, the series of dumps with their
//! growth charts and trends, and the vendor reports.

use super::charts::line_chart;
use super::html::{write_page, RenderError};
use super::view::{module_anchor, stack_anchor, verdict_view, VerdictView};
use crate::model::Index;
use crate::model::{Series, Trend, TrendVerdict};
use crate::text::{approx_bytes, duration, thousands};
use askama::Template;
use std::io::Write;
use std::path::Path;

/// Lines drawn in a series chart.
const CHART_LINES: usize = 5;

struct IndexRow {
    file_name: String,
    path: String,
    ok: bool,
    link: Option<String>,
    error: String,
    allocations: String,
    bytes: String,
    top_module: String,
    /// The dump's verdict: a CSS class, its label and its sentence.
    verdict: (&'static str, &'static str, String),
    note: String,
}

struct TrendRow {
    name: String,
    /// For a stack: its place in the last dump's report.
    link: Option<String>,
    /// Bytes in each dump.
    values: Vec<String>,
    /// Growth over each interval, with its rate per hour.
    growth: Vec<String>,
    rate: String,
    verdict: &'static str,
    alarm: bool,
}

struct FindingRow {
    title: String,
    description: String,
    recommendation: String,
}

struct SeriesView {
    id: usize,
    identity: String,
    dumps: Vec<(String, String, String)>,
    chart: Option<String>,
    modules: Vec<TrendRow>,
    stacks: Vec<TrendRow>,
    findings: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    generator: String,
    title: String,
    verdict: VerdictView,
    ok: usize,
    failed: usize,
    rows: Vec<IndexRow>,
    series: Vec<SeriesView>,
    vendors: Vec<(String, String, usize)>,
}

fn signed(n: i128) -> String {
    let magnitude = thousands(n.unsigned_abs().min(u128::from(u64::MAX)) as u64);
    match n.signum() {
        1 => format!("+{magnitude}"),
        -1 => format!("−{magnitude}"),
        _ => "0".to_owned(),
    }
}

fn trend_row(t: &Trend, last_dir: Option<&str>) -> TrendRow {
    TrendRow {
        name: t.name.clone(),
        link: t
            .id
            .zip(last_dir)
            .map(|(id, dir)| format!("{dir}/report.html#{}", stack_anchor(id))),
        values: t.bytes.iter().map(|&b| thousands(b)).collect(),
        growth: t
            .growth
            .iter()
            .zip(&t.growth_per_hour)
            .map(|(g, r)| match r {
                Some(r) => format!("{} ({}/h)", signed(*g), signed(r.round() as i128)),
                None => signed(*g),
            })
            .collect(),
        rate: t
            .rate_per_hour
            .map(|r| format!("{} bytes/h", signed(r.round() as i128)))
            .unwrap_or_else(|| "–".into()),
        verdict: t.verdict.label(),
        alarm: t.verdict == TrendVerdict::GrewInEveryInterval,
    }
}

fn series_view(s: &Series) -> Result<SeriesView, RenderError> {
    let hours: Vec<f64> = s.dumps.iter().map(|d| d.hours).collect();
    let chart = if s.dumps.len() >= 2 {
        let lines: Vec<(String, Vec<u64>)> = s
            .modules
            .iter()
            .take(CHART_LINES)
            .map(|t| (t.name.clone(), t.bytes.clone()))
            .collect();
        Some(line_chart(
            &format!("Series {}: outstanding bytes of the top modules", s.id),
            &hours,
            &lines,
        )?)
    } else {
        None
    };
    Ok(SeriesView {
        id: s.id,
        identity: s.identity.clone(),
        dumps: s
            .dumps
            .iter()
            .map(|d| {
                (
                    d.file_name.clone(),
                    format!("{}/report.html", d.report_dir),
                    format!(
                        "+{} — {} bytes ({})",
                        duration(d.hours * 3600.0),
                        thousands(d.bytes),
                        approx_bytes(d.bytes)
                    ),
                )
            })
            .collect(),
        chart,
        modules: s.modules.iter().map(|t| trend_row(t, None)).collect(),
        stacks: s
            .stacks
            .iter()
            .map(|t| trend_row(t, s.dumps.last().map(|d| d.report_dir.as_str())))
            .collect(),
        findings: s
            .findings
            .iter()
            .map(|f| FindingRow {
                title: f.title.clone(),
                description: f.description.clone(),
                recommendation: f.recommendation.clone(),
            })
            .collect(),
    })
}

/// Renders the run's index.html into `w`.
pub fn render_index(w: &mut dyn Write, index: &Index) -> Result<(), RenderError> {
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
            verdict: match (e.verdict, &e.headline) {
                (Some(v), Some(h)) => (status_class(v), v.label(), h.clone()),
                _ => ("none", "–", String::new()),
            },
            note: if e.status == "ok" && !e.tracker_data {
                "no tracker data".to_owned()
            } else if e.warnings > 0 {
                format!("{} warnings", e.warnings)
            } else {
                String::new()
            },
        })
        .collect();
    let series = index
        .series
        .iter()
        .map(series_view)
        .collect::<Result<_, _>>()?;
    // A named module links to its card in the last dump that was analysed.
    let last_report = index.inputs.iter().rev().find_map(|e| e.report_dir.clone());
    let details = |name: &str| {
        last_report
            .as_ref()
            .map(|dir| format!("{dir}/report.html#{}", module_anchor(name)))
    };
    IndexPage {
        generator: index.generator.clone(),
        title: match &index.process {
            Some(p) => format!("Memory leak incident: {p}"),
            None => "Memory leak incident".to_owned(),
        },
        verdict: verdict_view(&index.verdict, "", &details),
        ok: index.ok,
        failed: index.failed,
        rows,
        series,
        vendors: index
            .vendor_reports
            .iter()
            .map(|v| {
                (
                    v.module.clone(),
                    format!("{}/report.html", v.report_dir),
                    v.dumps,
                )
            })
            .collect(),
    }
    .write_into(w)?;
    Ok(())
}

/// Writes the run's index.html.
pub fn write_index(path: &Path, index: &Index) -> Result<(), RenderError> {
    write_page(path, |w| render_index(w, index))
}

/// The CSS class of a verdict status.
fn status_class(s: crate::model::VerdictStatus) -> &'static str {
    use crate::model::VerdictStatus;
    match s {
        VerdictStatus::Leak => "leak",
        VerdictStatus::PossibleLeak => "possible_leak",
        VerdictStatus::Spread => "spread",
        VerdictStatus::NoLeakFound => "no_leak_found",
        VerdictStatus::NoTrackerData => "no_tracker_data",
    }
}
