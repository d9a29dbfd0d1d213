//! The vendor report page: one module, its totals, functions, sample stacks and
//! trend, for the company that makes it.

use super::charts::{line_chart, timeline_chart};
use super::html::{write_page, RenderError};
use super::stacks::{stack_view, StackView};
use super::view::{kv, opt, KeyValue};
use crate::model::{VendorReport, VerdictStatus};
use crate::text::{approx_bytes, count, duration, percent, probability, thousands};
use askama::Template;
use std::io::Write;
use std::path::Path;

/// The latest dump holding the module, in detail.
struct LatestView {
    file_name: String,
    facts: Vec<KeyValue>,
    timeline: String,
    functions: Vec<(String, String, String, String)>,
    stacks: Vec<StackView>,
}

struct SeriesView {
    id: usize,
    chart: Option<String>,
    rows: Vec<(String, String, String, String)>,
    verdict: &'static str,
}

#[derive(Template)]
#[template(path = "vendor.html")]
struct VendorPage {
    generator: String,
    module: String,
    redacted: bool,
    /// `leak`, `possible_leak` or `observed`: a CSS class, and its label.
    status: (&'static str, &'static str),
    observed: String,
    info: Vec<KeyValue>,
    series: Vec<SeriesView>,
    /// One row per dump: file, snapshot, allocations, bytes, share, leak probability.
    dumps: Vec<[String; 6]>,
    latest: Option<LatestView>,
    tracker_modules: String,
}

/// Renders a vendor report into `w`.
pub fn render_vendor(w: &mut dyn Write, r: &VendorReport) -> Result<(), RenderError> {
    let mut info = Vec::new();
    if let Some(m) = &r.module_info {
        info.push(kv("Path", m.path.clone()));
        info.push(kv("File version", opt(&m.file_version)));
        info.push(kv("Product version", opt(&m.product_version)));
        if let Some(v) = &m.version_strings {
            info.push(kv("Company", opt(&v.company_name)));
            info.push(kv("Product", opt(&v.product_name)));
            info.push(kv("Description", opt(&v.file_description)));
        }
        info.push(kv("Timestamp", opt(&m.timestamp_rfc3339)));
        info.push(kv(
            "PDB identity",
            match (&m.debug_file, &m.debug_id) {
                (Some(f), Some(id)) => format!("{f} {id}"),
                (Some(f), None) => f.clone(),
                _ => "not recorded in the dump".to_owned(),
            },
        ));
    }
    info.push(kv(
        "Symbols used",
        r.pdb
            .clone()
            .unwrap_or_else(|| "none: frames are shown as module offsets".to_owned()),
    ));
    let series = r
        .series
        .iter()
        .map(|s| {
            let chart = if s.hours.len() >= 2 {
                Some(line_chart(
                    &format!("{}: outstanding bytes, series {}", r.module, s.series),
                    &s.hours,
                    &[(r.module.clone(), s.trend.bytes.clone())],
                )?)
            } else {
                None
            };
            let rows = s
                .dumps
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        d.clone(),
                        duration(s.hours[i] * 3600.0),
                        thousands(s.trend.allocations[i]),
                        thousands(s.trend.bytes[i]),
                    )
                })
                .collect();
            Ok(SeriesView {
                id: s.series,
                chart,
                rows,
                verdict: s.trend.verdict.label(),
            })
        })
        .collect::<Result<_, RenderError>>()?;
    let dumps = r
        .dumps
        .iter()
        .map(|d| {
            [
                d.file_name.clone(),
                format!(
                    "{} (tracking {})",
                    opt(&d.snapshot),
                    duration(d.tracking_seconds)
                ),
                thousands(d.allocations),
                format!("{} ({})", thousands(d.bytes), approx_bytes(d.bytes)),
                d.share_of_bytes.clone(),
                probability(d.leak_probability),
            ]
        })
        .collect();
    let latest = r
        .dumps
        .last()
        .map(|d| -> Result<LatestView, RenderError> {
            let bins: Vec<(f64, f64, u64)> = d
                .timeline
                .iter()
                .map(|b| (b.start_seconds, b.end_seconds, b.bytes))
                .collect();
            Ok(LatestView {
                file_name: d.file_name.clone(),
                facts: vec![
                    kv(
                        "Outstanding",
                        format!(
                            "{} bytes ({}) in {} — {} of the process's outstanding bytes",
                            thousands(d.bytes),
                            approx_bytes(d.bytes),
                            count(d.allocations, "allocation"),
                            d.share_of_bytes
                        ),
                    ),
                    kv("Leak probability", probability(d.leak_probability)),
                    kv("Snapshot", opt(&d.snapshot)),
                    kv("Tracking window", duration(d.tracking_seconds)),
                ],
                timeline: timeline_chart(
                    &format!("{}: outstanding bytes by time of allocation", r.module),
                    &bins,
                )?,
                functions: d
                    .functions
                    .iter()
                    .map(|f| {
                        (
                            f.name.clone(),
                            thousands(f.allocations),
                            format!("{} ({})", thousands(f.bytes), percent(f.bytes, d.bytes)),
                            probability(f.leak_probability),
                        )
                    })
                    .collect(),
                stacks: d
                    .stacks
                    .iter()
                    .map(|s| stack_view(s, &r.tracker_modules))
                    .collect(),
            })
        })
        .transpose()?;
    VendorPage {
        generator: r.generator.clone(),
        module: r.module.clone(),
        redacted: r.redacted,
        status: match r.status {
            Some(VerdictStatus::Leak) => ("leak", "leak"),
            Some(VerdictStatus::PossibleLeak) => ("possible_leak", "possible leak"),
            _ => ("observed", "observed"),
        },
        observed: r.observed.clone(),
        info,
        series,
        dumps,
        latest,
        tracker_modules: r.tracker_modules.join(", "),
    }
    .write_into(w)?;
    Ok(())
}

/// Writes a vendor report page.
pub fn write_vendor(path: &Path, report: &VendorReport) -> Result<(), RenderError> {
    write_page(path, |w| render_vendor(w, report))
}
