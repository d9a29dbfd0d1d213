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
//! * `output`: the report folder, checked first, built beside it and moved into place;
//! * `write`: one dump's report folder.

pub mod discover;
pub mod names;
mod output;
pub mod parallel;
mod write;

use crate::analysis::{generator, series, vendor, verdict, AnalyzeOptions};
use crate::model::{DumpReport, Index, IndexEntry, SkippedInput, VendorEntry, INDEX_SCHEMA};
use crate::report;
use crate::report::view::PageLinks;
use discover::{discover_inputs, Discovered, InputError};
use names::{file_name, report_dirs, vendor_dir, INDEX_FILES};
use parallel::{analyze_all, Outcome};
use rayon::prelude::*;
use std::collections::BTreeSet;
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

/// Why the run's reports could not be written. [`OutputError::is_usage`] tells the
/// command line's mistakes (exit status 2) from failures while writing.
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
    #[error("output folder {path} exists and is not a folder; name a folder with -o")]
    OutNotAFolder { path: PathBuf },
    #[error("output folder {path} is a symbolic link; name the folder it leads to with -o")]
    OutIsSymlink { path: PathBuf },
    #[error("{path} is a symbolic link: leakdiag does not write through links in its output folder; remove it or choose another -o")]
    SymlinkInOutput { path: PathBuf },
    #[error("{path} exists and no earlier leakdiag run recorded it in index.json: leakdiag does not replace it; move it away or choose another -o")]
    NotWrittenByLeakdiag { path: PathBuf },
    #[error("--vendor {module}: no analysed dump has a module of that name{}", close_matches(.close))]
    UnknownVendor { module: String, close: Vec<String> },
    #[error("no dumps found in the inputs (folders are searched for *.dmp, and for *.txt/*.log files that are UMDH logs){}; nothing was written", skipped_list(.skipped))]
    NoDumps { skipped: Vec<discover::Skipped> },
}

fn skipped_list(skipped: &[discover::Skipped]) -> String {
    skipped
        .iter()
        .map(|s| format!("; skipped {}: {}", s.path.display(), s.reason))
        .collect()
}

fn close_matches(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

impl OutputError {
    /// Whether the command line asked for something that cannot be done (exit 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, OutputError::Io { .. } | OutputError::Render { .. })
    }
}

/// Edit distance between two short names (ASCII case folded).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The dumps' module names close to `wanted`: the same stem (`odbcvend` for
/// `odbcvend.dll`), one containing the other, or a few letters apart.
fn close_to(wanted: &str, names: &BTreeSet<String>) -> Vec<String> {
    let w = wanted.to_ascii_lowercase();
    let stem = |s: &str| s.rsplit_once('.').map_or(s, |(a, _)| a).to_owned();
    let mut close: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|n| {
            let l = n.to_ascii_lowercase();
            let d = distance(&w, &l);
            let near = stem(&l) == stem(&w)
                || (w.len() >= 3 && l.contains(&w))
                || (l.len() >= 3 && w.contains(&l))
                || d <= 2.max(w.len() / 4);
            near.then_some((d, n))
        })
        .collect();
    close.sort();
    close.into_iter().take(5).map(|(_, n)| n.clone()).collect()
}

/// Runs the whole job: check the output folder, discover, analyse, write the reports
/// and the index beside the output folder, then move them into place (see
/// `docs/robustness.md`). Returns the index.
///
/// A run that analysed no dump leaves an earlier report in the output folder as it
/// was; a run that found no dump at all writes nothing ([`OutputError::NoDumps`]).
pub fn run(
    inputs: &[PathBuf],
    out: &Path,
    options: &AnalyzeOptions,
    run: &RunOptions,
) -> Result<Index, OutputError> {
    let target = output::check(out)?;
    let discovered = discover_inputs(inputs);
    let files: Vec<PathBuf> = discovered
        .inputs
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    if discovered.inputs.is_empty() {
        return Err(OutputError::NoDumps {
            skipped: discovered.skipped,
        });
    }
    // One vendor folder per module, whatever the case it was named in.
    let mut vendors: Vec<(String, String)> = Vec::new();
    for v in &run.vendors {
        let dir = vendor_dir(v);
        if !vendors.iter().any(|(_, d)| d.eq_ignore_ascii_case(&dir)) {
            vendors.push((v.clone(), dir));
        }
    }
    let vendor_dirs: Vec<String> = vendors.iter().map(|(_, d)| d.clone()).collect();
    let dirs = report_dirs(&files, &vendor_dirs);
    target.check_names(dirs.iter().chain(&vendor_dirs).map(String::as_str))?;
    // One input is a series of one: it follows only its own sample stacks, so the
    // analysis need not hash the id of every stack (see `LeakOptions`).
    let single;
    let options = if files.len() == 1 && options.leak.all_stack_totals {
        let mut o = options.clone();
        o.leak.all_stack_totals = false;
        single = o;
        &single
    } else {
        options
    };
    let mut outcomes = analyze_all(&files, options, run.progress);
    let analysed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Ok(_)))
        .count();

    if analysed > 0 {
        let mut names = BTreeSet::new();
        for o in &outcomes {
            if let Outcome::Ok(r) = o {
                if let Some(m) = r.modules() {
                    names.extend(m.modules.iter().map(|e| e.name.clone()));
                }
                if let Some(l) = r.leak() {
                    names.extend(l.modules.iter().map(|e| e.name.clone()));
                }
            }
        }
        for (module, _) in &vendors {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(module)) {
                return Err(OutputError::UnknownVendor {
                    module: module.clone(),
                    close: close_to(module, &names),
                });
            }
        }
    }
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
    let vendor_reports: Vec<(String, String)> = vendors.clone();
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

    // Nothing analysed: an earlier report stays as it was.
    if analysed == 0 && target.has_index {
        let mut index = index_of(
            &discovered,
            entries_of_failed(&files, &outcomes),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            &[],
        );
        index.not_written = true;
        return Ok(index);
    }

    let staging = output::stage(out)?;
    let stage = staging.dir.as_path();
    // Report folders are written in parallel; each worker writes only its own.
    let written: Vec<Result<IndexEntry, OutputError>> = files
        .par_iter()
        .zip(dirs.par_iter())
        .zip(outcomes.par_iter())
        .map(|((path, dir), outcome)| {
            let links = page_links(dir, series_of.get(dir.as_str()).copied(), &vendor_reports);
            write::write_one(path, dir, outcome, stage, &vendor_dirs, &links)
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
    let mut vendor_entries = Vec::new();
    for (module, dir) in &vendors {
        let report = vendor::build(module, &reports, &series, !run.no_redact, &incident);
        let folder = stage.join(dir);
        std::fs::create_dir(&folder).map_err(io(&folder))?;
        let json_path = folder.join("report.json");
        write_file(
            &json_path,
            |w| report::json::write(w, &report),
            io(&json_path),
        )?;
        let html_path = folder.join("report.html");
        write_file(
            &html_path,
            |w| report::html::render_vendor(w, &report),
            |source| OutputError::Render {
                path: html_path.clone(),
                source,
            },
        )?;
        vendor_entries.push(VendorEntry {
            module: module.clone(),
            report_dir: dir.clone(),
            dumps: report.dumps.len(),
        });
    }

    let mut entries = Vec::new();
    for w in written {
        entries.push(w?);
    }
    let mut names: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.report_dir.clone())
        .collect();
    names.extend(vendor_dirs.iter().cloned());
    names.extend(INDEX_FILES.iter().map(|f| f.to_string()));
    let foreign = target.foreign_entries(&names);
    let mut index = index_of(
        &discovered,
        entries,
        series,
        vendor_entries,
        foreign,
        &reports,
    );
    index.verdict = incident;
    let json_path = stage.join("index.json");
    write_file(
        &json_path,
        |w| report::json::write(w, &index),
        io(&json_path),
    )?;
    let html_path = stage.join("index.html");
    write_file(
        &html_path,
        |w| report::html::render_index(w, &index),
        |source| OutputError::Render {
            path: html_path.clone(),
            source,
        },
    )?;
    output::commit(&target, staging, &names)?;
    Ok(index)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError {
    let path = path.to_owned();
    move |source| OutputError::Io { path, source }
}

/// One file of the run (index, vendor report), created new, filtered and limited.
fn write_file<E>(
    path: &Path,
    render: impl FnOnce(&mut write::FileWriter) -> Result<(), E>,
    error: impl FnOnce(E) -> OutputError,
) -> Result<(), OutputError> {
    match write::create_file(path, render, error) {
        Ok(()) => Ok(()),
        Err(write::FileError::Failed(e)) => Err(e),
        Err(write::FileError::TooLarge) => Err(OutputError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!(
                "larger than {} MiB",
                write::MAX_FILE_BYTES >> 20
            )),
        }),
    }
}

/// The index entries of a run in which nothing was written.
fn entries_of_failed(files: &[PathBuf], outcomes: &[Outcome]) -> Vec<IndexEntry> {
    files
        .iter()
        .zip(outcomes)
        .map(|(path, o)| match o {
            Outcome::Failed(m) => {
                IndexEntry::failed(path.display().to_string(), file_name(path), m.clone())
            }
            Outcome::Ok(_) => IndexEntry::new(path.display().to_string(), file_name(path)),
        })
        .collect()
}

/// The run's index: inputs that could not even be listed first, in command-line
/// order, then one entry per dump.
fn index_of(
    discovered: &Discovered,
    written: Vec<IndexEntry>,
    series: Vec<crate::model::Series>,
    vendor_reports: Vec<VendorEntry>,
    foreign_entries: Vec<String>,
    reports: &[(&str, &DumpReport)],
) -> Index {
    let mut entries = Vec::new();
    for r in &discovered.inputs {
        if let Err(e) = r {
            let InputError::Io { path, .. } = e;
            entries.push(IndexEntry::failed(
                path.display().to_string(),
                file_name(path),
                e.to_string(),
            ));
        }
    }
    entries.extend(written);
    let failed = entries.iter().filter(|e| e.status != "ok").count();
    Index {
        schema: INDEX_SCHEMA,
        generator: generator(),
        process: process_name(reports),
        verdict: verdict::incident_verdict(reports.iter().map(|(_, r)| &r.verdict), &series),
        ok: entries.len() - failed,
        failed,
        inputs: entries,
        series,
        vendor_reports,
        skipped: discovered
            .skipped
            .iter()
            .map(|s| SkippedInput {
                path: s.path.display().to_string(),
                reason: s.reason.clone(),
            })
            .collect(),
        foreign_entries,
        not_written: false,
    }
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
