//! Writing one dump's report folder: report.json, report.html and summary.md.

use super::names::file_name;
use super::parallel::Outcome;
use super::OutputError;
use crate::model::{IndexEntry, TopModule};
use crate::report;
use crate::report::view::PageLinks;
use std::path::Path;

pub(super) fn write_one(
    path: &Path,
    dir: &str,
    outcome: &Outcome,
    out: &Path,
    vendor_dirs: &[String],
    links: &PageLinks,
) -> Result<IndexEntry, OutputError> {
    let report = match outcome {
        Outcome::Failed(message) => {
            return Ok(IndexEntry::failed(
                path.display().to_string(),
                file_name(path),
                message.clone(),
            ))
        }
        Outcome::Ok(r) => r,
    };
    let mut entry = IndexEntry::new(path.display().to_string(), file_name(path));
    entry.verdict = Some(report.verdict.status);
    entry.headline = Some(report.verdict.headline.clone());
    let folder = out.join(dir);
    std::fs::create_dir_all(&folder).map_err(|source| OutputError::Io {
        path: folder.clone(),
        source,
    })?;
    let json_path = folder.join("report.json");
    report::json::write_file(&json_path, &report).map_err(|source| OutputError::Io {
        path: json_path.clone(),
        source,
    })?;
    let html_path = folder.join("report.html");
    report::html::write_report(&html_path, report, links).map_err(|source| {
        OutputError::Render {
            path: html_path.clone(),
            source,
        }
    })?;
    let md_path = folder.join("summary.md");
    report::markdown::write_summary(&md_path, report, dir, vendor_dirs).map_err(|source| {
        OutputError::Io {
            path: md_path.clone(),
            source,
        }
    })?;
    entry.report_dir = Some(dir.to_owned());
    entry.warnings = report.warnings.len();
    if let Some(t) = &report.tracking {
        entry.tracker_data = true;
        entry.allocations = Some(t.allocations);
        entry.bytes = Some(t.bytes);
    }
    if let Some(leak) = report.leak() {
        entry.top_module = leak.modules.first().map(|m| TopModule {
            name: m.name.clone(),
            allocations: m.allocations,
            bytes: m.bytes,
        });
    }
    Ok(entry)
}
