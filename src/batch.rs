//! A run over many inputs: find the dumps, analyse them in parallel, write one report
//! folder per dump and the run's index.
//!
//! Each worker produces its own result; results are collected in input order, so the
//! output is byte-identical whatever the number of jobs. A failed input becomes an
//! index entry with its message and never stops the others.

use crate::analyze::{analyze_dump, generator, AnalyzeOptions};
use crate::model::{DumpReport, INDEX_SCHEMA};
use crate::report;
use crate::scripts::leak::LeakAnalysis;
use crate::{series, vendor};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// An input that could not be turned into a list of dumps.
#[derive(Debug, Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Expands the command line's inputs: files are taken as they are, folders are
/// searched recursively for `*.dmp` (any case), sorted by path. A path that cannot be
/// read is returned as an error entry so it is listed in the index.
pub fn discover_inputs(inputs: &[PathBuf]) -> Vec<Result<PathBuf, InputError>> {
    let mut out = Vec::new();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                walk(input, &mut found, &mut out);
                found.sort();
                out.extend(found.into_iter().map(Ok));
            }
            Ok(_) => out.push(Ok(input.clone())),
            Err(source) => out.push(Err(InputError::Io {
                path: input.clone(),
                source,
            })),
        }
    }
    out
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, errors: &mut Vec<Result<PathBuf, InputError>>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            errors.push(Err(InputError::Io {
                path: dir.to_owned(),
                source,
            }));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // file_type() does not follow symlinks, so a link cycle cannot make this loop.
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, found, errors),
            Ok(_) => {
                let is_dump = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("dmp"));
                if is_dump && path.is_file() {
                    found.push(path);
                }
            }
            Err(_) => {}
        }
    }
}

/// Folder names for the inputs' reports: the file stem, with `-2`, `-3`… for repeats.
pub fn report_dirs(inputs: &[PathBuf]) -> Vec<String> {
    let mut used = HashSet::new();
    inputs
        .iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| sanitize(&s.to_string_lossy()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "dump".to_owned());
            let mut name = stem.clone();
            let mut n = 1;
            while !used.insert(name.to_ascii_lowercase()) {
                n += 1;
                name = format!("{stem}-{n}");
            }
            name
        })
        .collect()
}

/// Keeps a stem usable as a folder name on every system.
fn sanitize(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches(['.', ' '])
        .to_owned()
}

/// The module that tops an input's ranking, as the index lists it.
#[derive(Clone, Debug, Serialize)]
pub struct TopModule {
    pub name: String,
    pub allocations: u64,
    pub bytes: u64,
}

/// One input of the run.
#[derive(Clone, Debug, Serialize)]
pub struct IndexEntry {
    pub path: String,
    pub file_name: String,
    /// `ok` or `error`.
    pub status: &'static str,
    pub error: Option<String>,
    /// Folder of the input's report, relative to the output folder.
    pub report_dir: Option<String>,
    pub tracker_data: bool,
    pub allocations: Option<u64>,
    pub bytes: Option<u64>,
    pub top_module: Option<TopModule>,
    pub warnings: usize,
}

/// The run's index.json.
#[derive(Clone, Debug, Serialize)]
pub struct Index {
    pub schema: &'static str,
    pub generator: String,
    pub inputs: Vec<IndexEntry>,
    pub ok: usize,
    pub failed: usize,
    /// The dumps grouped by process, with what grew between them.
    pub series: Vec<series::Series>,
    pub vendor_reports: Vec<VendorEntry>,
}

/// A vendor report written by the run.
#[derive(Clone, Debug, Serialize)]
pub struct VendorEntry {
    pub module: String,
    pub report_dir: String,
    /// Dumps in which the module holds outstanding allocations.
    pub dumps: usize,
}

/// The outcome of one input.
pub enum Outcome {
    Ok(Box<DumpReport>),
    Failed(String),
}

/// Analyses every input on the current rayon pool; results are in input order.
/// With `progress`, a bar on standard error shows dumps done and the dump being read.
pub fn analyze_all(inputs: &[PathBuf], options: &AnalyzeOptions, progress: bool) -> Vec<Outcome> {
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(inputs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} dumps  {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let outcomes = inputs
        .par_iter()
        .map(|p| {
            if let Some(bar) = &bar {
                bar.set_message(file_name(p));
            }
            // A bug must cost one input, not the batch: a panic becomes that input's
            // error (scripts already contain their own; this covers the rest).
            let run = std::panic::AssertUnwindSafe(|| analyze_dump(p, options));
            let outcome = match std::panic::catch_unwind(run) {
                Ok(Ok(r)) => Outcome::Ok(Box::new(r)),
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(_) => Outcome::Failed(format!(
                    "{}: leakdiag stopped on an internal error while reading this dump (please report it with the dump)",
                    p.display()
                )),
            };
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            outcome
        })
        .collect();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    outcomes
}

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

    // Series across the dumps; their findings join each member's summary.
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
    let input_of: std::collections::HashMap<&str, usize> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    for s in series.iter().filter(|s| !s.findings.is_empty()) {
        for d in &s.dumps {
            if let Some(Outcome::Ok(r)) = input_of
                .get(d.report_dir.as_str())
                .map(|&i| &mut outcomes[i])
            {
                r.summary.extend(s.findings.iter().cloned());
                r.summary.sort_by_key(|f| f.severity);
            }
        }
    }

    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OutputError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;

    let vendor_dirs: Vec<String> = run.vendors.iter().map(|v| vendor_dir(v)).collect();
    // Report folders are written in parallel; each worker writes only its own.
    let written: Vec<Result<IndexEntry, OutputError>> = files
        .par_iter()
        .zip(dirs.par_iter())
        .zip(outcomes.par_iter())
        .map(|((path, dir), outcome)| write_one(path, dir, outcome, out, &vendor_dirs))
        .collect();

    let reports: Vec<(&str, &DumpReport)> = outcomes
        .iter()
        .zip(&dirs)
        .filter_map(|(o, d)| match o {
            Outcome::Ok(r) => Some((d.as_str(), &**r)),
            Outcome::Failed(_) => None,
        })
        .collect();
    let mut vendor_reports = Vec::new();
    for (module, dir) in run.vendors.iter().zip(&vendor_dirs) {
        let report = vendor::build(module, &reports, &series, !run.no_redact);
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
            entries.push(IndexEntry {
                path: path.display().to_string(),
                file_name: file_name(path),
                status: "error",
                error: Some(e.to_string()),
                report_dir: None,
                tracker_data: false,
                allocations: None,
                bytes: None,
                top_module: None,
                warnings: 0,
            });
        }
    }
    for w in written {
        entries.push(w?);
    }
    let failed = entries.iter().filter(|e| e.status != "ok").count();
    let index = Index {
        schema: INDEX_SCHEMA,
        generator: generator(),
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

/// The folder of a module's vendor report.
pub fn vendor_dir(module: &str) -> String {
    format!("vendor-{}", sanitize(module))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn write_one(
    path: &Path,
    dir: &str,
    outcome: &Outcome,
    out: &Path,
    vendor_dirs: &[String],
) -> Result<IndexEntry, OutputError> {
    let mut entry = IndexEntry {
        path: path.display().to_string(),
        file_name: file_name(path),
        status: "ok",
        error: None,
        report_dir: None,
        tracker_data: false,
        allocations: None,
        bytes: None,
        top_module: None,
        warnings: 0,
    };
    let report = match outcome {
        Outcome::Failed(message) => {
            entry.status = "error";
            entry.error = Some(message.clone());
            return Ok(entry);
        }
        Outcome::Ok(r) => r,
    };
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
    report::html::write_report(&html_path, report).map_err(|source| OutputError::Render {
        path: html_path.clone(),
        source,
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
    if let Some(leak) = report.section::<LeakAnalysis>("leak") {
        entry.top_module = leak.modules.first().map(|m| TopModule {
            name: m.name.clone(),
            allocations: m.allocations,
            bytes: m.bytes,
        });
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_stems_get_distinct_folders() {
        let dirs = report_dirs(&[
            PathBuf::from("a/w3wp.dmp"),
            PathBuf::from("b/w3wp.dmp"),
            PathBuf::from("c/W3WP.dmp"),
            PathBuf::from("x/we:ird?.dmp"),
        ]);
        assert_eq!(dirs, vec!["w3wp", "w3wp-2", "W3WP-3", "we_ird_"]);
    }
}
