//! HTML pages: askama view-models over the model. Everything here is formatting:
//! the numbers come from the model as they are, only spelled for people.
//!
//! Pages are self-contained: the style sheet is compiled in and inlined, charts are
//! inline SVG, and nothing refers to anything outside the file.

use super::charts::ChartError;
use super::view::{kv, module_anchor, opt, verdict_view, KeyValue, PageLinks, VerdictView};
use crate::model::{DumpReport, SectionError, TrackingSource};
use crate::text::{duration, thousands};
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

struct FindingView {
    severity: &'static str,
    title: String,
    description: String,
    recommendation: String,
}

struct SectionView {
    id: &'static str,
    title: &'static str,
    /// The section's HTML, or why there is none.
    body: Result<String, String>,
    /// `skipped` or `error`, as a CSS class.
    status: &'static str,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    title: String,
    generator: String,
    links: PageLinks,
    verdict: VerdictView,
    dump: Vec<KeyValue>,
    process: Vec<KeyValue>,
    tracking: Option<Vec<KeyValue>>,
    warnings: Vec<String>,
    findings: Vec<FindingView>,
    sections: Vec<SectionView>,
    metadata: Vec<KeyValue>,
}

fn report_page(r: &DumpReport, links: &PageLinks) -> Result<ReportPage, RenderError> {
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
        let mut rows = if t.source == TrackingSource::UmdhSnapshot {
            vec![
                kv("Source", "UMDH snapshot log".to_owned()),
                kv("Logtime", opt(&t.snapshot)),
                kv(
                    "Allocation times",
                    "none in a UMDH log: leak probability is not judged; growth across snapshots is the evidence".to_owned(),
                ),
            ]
        } else {
            vec![
                kv("Tracking started", opt(&t.start)),
                kv("Snapshot taken", opt(&t.snapshot)),
                kv("Tracking window", duration(t.duration_seconds)),
                kv("Stream version", t.version.clone()),
            ]
        };
        rows.extend([
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
        ]);
        rows
    });
    let findings = r
        .summary
        .iter()
        .map(|f| FindingView {
            severity: f.severity.label(),
            title: f.title.clone(),
            description: f.description.clone(),
            recommendation: f.recommendation.clone(),
        })
        .collect();
    let mut sections = Vec::new();
    for s in &r.sections {
        let (body, status) = match &s.result {
            Ok(section) => {
                let mut html = String::new();
                super::sections::render(section, &mut html)?;
                (Ok(html), "ok")
            }
            Err(SectionError::NotApplicable(m)) => (Err(format!("Not applicable: {m}.")), "none"),
            Err(SectionError::Failed(m)) => (Err(format!("This script failed: {m}")), "failed"),
        };
        sections.push(SectionView {
            id: s.script,
            title: s.title,
            body,
            status,
        });
    }
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
    let leak = r.leak();
    let details = |name: &str| {
        leak.filter(|l| l.modules.iter().any(|m| m.name == name))
            .map(|_| format!("#{}", module_anchor(name)))
    };
    Ok(ReportPage {
        title: format!("leakdiag — {}", r.dump.file_name),
        generator: r.generator.clone(),
        links: links.clone(),
        verdict: verdict_view(&r.verdict, "../", &details),
        dump,
        process,
        tracking,
        warnings: r.warnings.clone(),
        findings,
        sections,
        metadata,
    })
}

/// Renders a dump's report.html into `w`; `links` lead to the rest of the run.
pub fn render_report<W: Write>(
    mut w: W,
    report: &DumpReport,
    links: &PageLinks,
) -> Result<(), RenderError> {
    let page = report_page(report, links)?;
    page.write_into(&mut w)?;
    Ok(())
}

/// Writes a dump's report.html.
pub fn write_report(
    path: &Path,
    report: &DumpReport,
    links: &PageLinks,
) -> Result<(), RenderError> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    render_report(&mut w, report, links)?;
    w.flush()?;
    Ok(())
}

/// Writes a page to a file through `render`.
pub fn write_page(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> Result<(), RenderError>,
) -> Result<(), RenderError> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    render(&mut w)?;
    w.flush()?;
    Ok(())
}

pub use super::index_page::{render_index, write_index};
pub use super::vendor_page::{render_vendor, write_vendor};
