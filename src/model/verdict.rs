//! The verdict: one answer per dump and one per incident, reconciled from all the
//! evidence (series growth, leak probability, share of memory, tracking window).
//! The rules are in docs/verdict.md and `analysis::verdict`.

use super::Totals;
use serde::Serialize;

/// What the evidence says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    /// One or a few modules grew in every interval of a series: a leak.
    Leak,
    /// One or a few modules hold much memory allocated steadily over the tracking
    /// window, but no series confirms growth yet.
    PossibleLeak,
    /// Memory grew, or looks leaked, but no module holds a dominant share of it.
    Spread,
    /// Nothing looks like a leak.
    NoLeakFound,
    /// The dump has no tracker data: nothing can be judged.
    NoTrackerData,
}

impl VerdictStatus {
    /// A label for people.
    pub fn label(self) -> &'static str {
        match self {
            VerdictStatus::Leak => "leak",
            VerdictStatus::PossibleLeak => "possible leak",
            VerdictStatus::Spread => "growth spread over many modules",
            VerdictStatus::NoLeakFound => "no leak found",
            VerdictStatus::NoTrackerData => "no tracker data",
        }
    }
}

/// How strongly the evidence supports the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

/// Which piece of evidence a line of the verdict rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Outstanding bytes grew in every interval of a series of dumps.
    SeriesGrowth,
    /// A series shows the module flat or shrinking.
    SeriesNoGrowth,
    /// When the outstanding allocations were made (docs/leak-probability.md).
    LeakProbability,
    /// The module's share of the outstanding (or grown) bytes.
    Share,
    /// The tracking window is too short for the probability to mean much.
    ShortWindow,
    /// No allocation stream in the dump.
    NoTrackerData,
    /// The reachability scan: blocks no pointer leads to (proof of a leak).
    Unreachable,
    /// The reachability scan: the module's blocks are all held by one root (a
    /// cache or list that grows, named by that root).
    HeldBy,
}

/// One piece of evidence, as data and in words.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// The module it is about, if one.
    pub module: Option<String>,
    pub text: String,
}

/// A module the verdict names.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictModule {
    pub name: String,
    /// The company that makes it, from its version resource; null when unknown.
    pub company: Option<String>,
    /// Why the company is unknown; null when it is known.
    pub company_unknown: Option<String>,
    /// Outstanding in the (last) dump.
    pub allocations: u64,
    pub bytes: u64,
    /// Share of the dump's outstanding bytes, in percent.
    pub share_percent: f64,
    /// Growth over the series, bytes per hour; null without a series.
    pub growth_per_hour: Option<f64>,
    pub leak_probability: Option<u8>,
    /// Folder of the module's vendor report in the run, when one was written.
    pub vendor_report: Option<String>,
    /// Its blocks that no pointer reaches, when the dump was scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<Totals>,
    /// The root (a global) that holds nearly all of its reachable blocks: a cache
    /// or list that grows. Absent when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// The verdict on a dump or an incident.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub status: VerdictStatus,
    /// The responsible modules, most bytes first; ties are all listed.
    pub modules: Vec<VerdictModule>,
    pub confidence: Confidence,
    /// The evidence that decided it, strongest first.
    pub evidence: Vec<Evidence>,
    /// The answer in one sentence.
    pub headline: String,
    /// What to do next, in one sentence.
    pub next_step: String,
}
