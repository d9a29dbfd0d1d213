//! A run over many inputs: find the dumps, analyse them in parallel, write one report
//! folder per dump and the run's index.
//!
//! Each worker produces its own result; results are collected in input order, so the
//! output is byte-identical whatever the number of jobs. A failed input becomes an
//! index entry with its message and never stops the others.
//!
//! * [`discover`]: which files the run reads;
//! * [`names`]: the folders of the report;
//! * [`parallel`]: the dumps analysed in parallel;
//! * `write`: one dump's report folder.

pub mod discover;
pub mod names;
pub mod parallel;
mod write;

use crate::analysis::{generator, series, vendor, verdict, AnalyzeOptions};
use crate::model::{DumpReport, Index, IndexEntry, VendorEntry, INDEX_SCHEMA};
use crate::report;
use crate::report::view::PageLinks;
use discover::{discover_inputs, InputError};
use names::{file_name, report_dirs, vendor_dir};
use parallel::{analyze_all, Outcome};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a run writes besides one report per dump.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Modules to write a vendor report for (`--vendor`).
    pub vendors: Vec<String>,
    /// Keep other modules' function names and source paths in vendor reports.
    pub no_redact: bool,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

/// Why the run's reports could not be written.
#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{path}: cannot write: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Render {
        path: PathBuf,
        source: report::RenderError,
    },
}

/// Runs the whole job: discover, analyse, write reports and index. Returns the index.
pub fn run(
    inputs: &[PathBuf],
    out: &Path,
    options: &AnalyzeOptions,
    run: &RunOptions,
) -> Result<Index, OutputError> {
    let discovered = discover_inputs(inputs);
    let files: Vec<PathBuf> = discovered
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let dirs = report_dirs(&files);
    let mut outcomes = analyze_all(&files, options, run.progress);

    // Series across the dumps, then each dump's verdict with its series in view.
    let series = {
        let members: Vec<series::Member<'_>> = outcomes
            .iter()
            .zip(&dirs)
            .filter_map(|(o, dir)| match o {
                Outcome::Ok(r) => Some(series::Member {
                    report_dir: dir,
                    report: r,
                }),
                Outcome::Failed(_) => None,
            })
            .collect();
        series::build(&members)
    };
    let vendor_dirs: Vec<String> = run.vendors.iter().map(|v| vendor_dir(v)).collect();
    let vendor_reports: Vec<(String, String)> = run
        .vendors
        .iter()
        .cloned()
        .zip(vendor_dirs.iter().cloned())
        .collect();
    let series_of: std::collections::HashMap<&str, &crate::model::Series> = series
        .iter()
        .flat_map(|s| s.dumps.iter().map(move |d| (d.report_dir.as_str(), s)))
        .collect();
    for (outcome, dir) in outcomes.iter_mut().zip(&dirs) {
        if let Outcome::Ok(r) = outcome {
            let ctx = verdict::VerdictContext {
                series: series_of.get(dir.as_str()).copied(),
                min_window_seconds: options.leak.min_window_seconds,
                vendor_reports: &vendor_reports,
            };
            verdict::apply(r, &ctx);
        }
    }

    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OutputError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;

    // Report folders are written in parallel; each worker writes only its own.
    let written: Vec<Result<IndexEntry, OutputError>> = files
        .par_iter()
        .zip(dirs.par_iter())
        .zip(outcomes.par_iter())
        .map(|((path, dir), outcome)| {
            let links = page_links(dir, series_of.get(dir.as_str()).copied(), &vendor_reports);
            write::write_one(path, dir, outcome, out, &vendor_dirs, &links)
        })
        .collect();

    let reports: Vec<(&str, &DumpReport)> = outcomes
        .iter()
        .zip(&dirs)
        .filter_map(|(o, d)| match o {
            Outcome::Ok(r) => Some((d.as_str(), &**r)),
            Outcome::Failed(_) => None,
        })
        .collect();
    let incident = verdict::incident_verdict(reports.iter().map(|(_, r)| &r.verdict), &series);
    let mut vendor_reports = Vec::new();
    for (module, dir) in run.vendors.iter().zip(&vendor_dirs) {
        let report = vendor::build(module, &reports, &series, !run.no_redact, &incident);
        let folder = out.join(dir);
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let json_path = folder.join("report.json");
        report::json::write_file(&json_path, &report).map_err(io(&json_path))?;
        let html_path = folder.join("report.html");
        report::html::write_vendor(&html_path, &report).map_err(|source| OutputError::Render {
            path: html_path.clone(),
            source,
        })?;
        vendor_reports.push(VendorEntry {
            module: module.clone(),
            report_dir: dir.clone(),
            dumps: report.dumps.len(),
        });
    }

    let mut entries = Vec::new();
    // Inputs that could not even be listed come first, in command-line order.
    for r in &discovered {
        if let Err(e) = r {
            let InputError::Io { path, .. } = e;
            entries.push(IndexEntry::failed(
                path.display().to_string(),
                file_name(path),
                e.to_string(),
            ));
        }
    }
    for w in written {
        entries.push(w?);
    }
    let failed = entries.iter().filter(|e| e.status != "ok").count();
    let index = Index {
        schema: INDEX_SCHEMA,
        generator: generator(),
        process: process_name(&reports),
        verdict: incident,
        ok: entries.len() - failed,
        failed,
        inputs: entries,
        series,
        vendor_reports,
    };
    let json_path = out.join("index.json");
    report::json::write_file(&json_path, &index).map_err(io(&json_path))?;
    let html_path = out.join("index.html");
    report::html::write_index(&html_path, &index).map_err(|source| OutputError::Render {
        path: html_path.clone(),
        source,
    })?;
    Ok(index)
}

/// The file name of the dumps' main module, when every dump names the same one.
fn process_name(reports: &[(&str, &DumpReport)]) -> Option<String> {
    let mut names = reports.iter().filter_map(|(_, r)| {
        r.process
            .image
            .as_deref()
            .map(|i| crate::model::file_name_of(i).to_owned())
    });
    let first = names.next()?;
    names
        .all(|n| n.eq_ignore_ascii_case(&first))
        .then_some(first)
}

/// The links of a dump report to the index, the other dumps of its series and the
/// vendor reports.
fn page_links(
    dir: &str,
    series: Option<&crate::model::Series>,
    vendor_reports: &[(String, String)],
) -> PageLinks {
    PageLinks {
        index: Some("../index.html".to_owned()),
        siblings: series
            .filter(|s| s.dumps.len() > 1)
            .map(|s| {
                s.dumps
                    .iter()
                    .map(|d| {
                        (
                            d.file_name.clone(),
                            format!("../{}/report.html", d.report_dir),
                            d.report_dir == dir,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        vendors: vendor_reports
            .iter()
            .map(|(module, folder)| (module.clone(), format!("../{folder}/report.html")))
            .collect(),
    }
}
