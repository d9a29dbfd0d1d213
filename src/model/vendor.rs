//! A vendor report: what concerns one module, fit to send to the company making it.

use super::{FunctionLeak, ModuleEntry, StackSample, TimelineBin, Trend, VerdictStatus};
use serde::Serialize;

/// The module in one dump.
#[derive(Clone, Debug, Serialize)]
pub struct VendorDump {
    pub file_name: String,
    /// The dump's report folder in the run (the customer decides whether to send it).
    pub report_dir: String,
    pub snapshot: Option<String>,
    pub tracking_seconds: f64,
    pub allocations: u64,
    pub bytes: u64,
    /// Share of all outstanding bytes of the dump, e.g. `"79.3%"`.
    pub share_of_bytes: String,
    pub leak_probability: Option<u8>,
    pub functions: Vec<FunctionLeak>,
    pub stacks: Vec<StackSample>,
    pub timeline: Vec<TimelineBin>,
}

/// The module's trend in one series.
#[derive(Clone, Debug, Serialize)]
pub struct VendorSeries {
    pub series: usize,
    pub dumps: Vec<String>,
    pub hours: Vec<f64>,
    pub trend: Trend,
}

/// A vendor report.
#[derive(Clone, Debug, Serialize)]
pub struct VendorReport {
    pub schema: &'static str,
    pub generator: String,
    pub module: String,
    /// Whether other modules' function names and source paths were removed.
    pub redacted: bool,
    /// What we observed, in plain words, for the vendor: the numbers, the growth,
    /// the functions. No instructions meant for the customer.
    pub observed: String,
    /// What the incident's verdict says of the module: `leak` or `possible_leak`
    /// when it names it, else null.
    pub status: Option<VerdictStatus>,
    /// The module as the latest dump holding it describes it (path, versions, vendor).
    pub module_info: Option<ModuleEntry>,
    /// The PDB the frames were resolved with, and how it was matched, e.g.
    /// `odbcvend.pdb (loaded: GUID and age match the module)`; null without one.
    pub pdb: Option<String>,
    /// Modules whose frames are the tracker's own (they recorded the allocation and
    /// are not part of the module's code path).
    pub tracker_modules: Vec<String>,
    pub dumps: Vec<VendorDump>,
    pub series: Vec<VendorSeries>,
}
