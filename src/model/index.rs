//! A run's index.json: every input, the series of dumps, the vendor reports.

use super::{Series, Verdict, VerdictStatus};
use serde::Serialize;

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
    /// The dump's verdict (docs/verdict.md): its status and sentence.
    pub verdict: Option<VerdictStatus>,
    pub headline: Option<String>,
    pub warnings: usize,
}

impl IndexEntry {
    /// An input that could not be analysed (or not even read), with its error.
    pub fn failed(path: String, file_name: String, error: String) -> Self {
        IndexEntry {
            status: "error",
            error: Some(error),
            ..IndexEntry::new(path, file_name)
        }
    }

    /// An input analysed; the caller fills in what its report says.
    pub fn new(path: String, file_name: String) -> Self {
        IndexEntry {
            path,
            file_name,
            status: "ok",
            error: None,
            report_dir: None,
            tracker_data: false,
            allocations: None,
            bytes: None,
            top_module: None,
            verdict: None,
            headline: None,
            warnings: 0,
        }
    }
}

/// The run's index.json.
#[derive(Clone, Debug, Serialize)]
pub struct Index {
    pub schema: &'static str,
    pub generator: String,
    /// The process the dumps are of (file name of the main module), when they agree.
    pub process: Option<String>,
    /// The verdict on the whole incident: the strongest of the dumps' verdicts.
    pub verdict: Verdict,
    pub inputs: Vec<IndexEntry>,
    pub ok: usize,
    pub failed: usize,
    /// The dumps grouped by process, with what grew between them.
    pub series: Vec<Series>,
    pub vendor_reports: Vec<VendorEntry>,
    /// Entries of the searched folders that were not read (not regular files), with
    /// why; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedInput>,
    /// Entries of the output folder that this run neither wrote nor removed, because
    /// no earlier run of leakdiag recorded them in its index.json; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub foreign_entries: Vec<String>,
    /// The run analysed no dump and left the earlier report in the output folder as
    /// it was: this index was not written.
    #[serde(skip)]
    pub not_written: bool,
}

/// A folder entry the run did not read.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedInput {
    pub path: String,
    pub reason: String,
}

/// A vendor report written by the run.
#[derive(Clone, Debug, Serialize)]
pub struct VendorEntry {
    pub module: String,
    pub report_dir: String,
    /// Dumps in which the module holds outstanding allocations.
    pub dumps: usize,
}
