//! A run's index.json: every input, the series of dumps, the vendor reports.

use super::Series;
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
    pub series: Vec<Series>,
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
