//! Dump series: the dumps of one process over time, and what grew between them.

use super::{Finding, StackId};
use serde::Serialize;

/// One dump of a series.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesDump {
    pub file_name: String,
    pub report_dir: String,
    pub snapshot: Option<String>,
    /// Hours since the series' first snapshot.
    pub hours: f64,
    pub allocations: u64,
    pub bytes: u64,
}

/// How something changed across a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendVerdict {
    /// Grew in every interval.
    GrewInEveryInterval,
    /// Grew, then stayed flat.
    GrewThenFlat,
    /// Ended smaller than it started.
    Shrank,
    /// Never changed.
    Flat,
    /// Grew overall but not steadily.
    Fluctuated,
    /// A series of one dump has no interval.
    TooFewDumps,
}

/// Outstanding bytes of one module or stack in each dump of a series.
#[derive(Clone, Debug, Serialize)]
pub struct Trend {
    /// The module's name, or for a stack its module and a short description.
    pub name: String,
    /// The module: for a module trend, the module itself; for a stack, the module
    /// its responsible frame lies in.
    pub module: Option<String>,
    /// For a stack: its id (`stacks[].id` in the dump reports).
    pub id: Option<StackId>,
    pub allocations: Vec<u64>,
    pub bytes: Vec<u64>,
    /// Change of bytes between consecutive dumps.
    pub growth: Vec<i128>,
    /// Change of bytes per hour between consecutive dumps (`null` when two dumps
    /// share a snapshot time).
    pub growth_per_hour: Vec<Option<f64>>,
    /// (last − first) / hours over the whole series.
    pub rate_per_hour: Option<f64>,
    pub verdict: TrendVerdict,
}

/// A series of dumps of one process.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// 1-based, in order of first appearance among the inputs.
    pub id: usize,
    /// What ties the dumps together, for people.
    pub identity: String,
    pub dumps: Vec<SeriesDump>,
    pub modules: Vec<Trend>,
    pub stacks: Vec<Trend>,
    pub findings: Vec<Finding>,
}

impl TrendVerdict {
    pub fn label(self) -> &'static str {
        match self {
            TrendVerdict::GrewInEveryInterval => "grew in every interval",
            TrendVerdict::GrewThenFlat => "grew then flat",
            TrendVerdict::Shrank => "shrank",
            TrendVerdict::Flat => "flat",
            TrendVerdict::Fluctuated => "grew, not steadily",
            TrendVerdict::TooFewDumps => "too few dumps",
        }
    }
}
