//! Findings: the conclusions of the analysis summary, as data.
//!
//! Consumers (vendor reports, series, Markdown) select findings by their typed
//! fields — [`FindingKind`], `module`, `stack` — never by their wording, so a title
//! can be reworded without changing what reaches whom.

use super::StackId;
use serde::Serialize;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// What a finding is about. The set is closed: every producer of findings names its
/// kind here, so a consumer can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The verdict: a module is leaking (`module` set).
    Leak,
    /// The verdict: a module probably leaks, not yet confirmed by growth (`module`
    /// set).
    PossibleLeak,
    /// The verdict: leak-like memory spread over many modules.
    SpreadGrowth,
    /// The verdict found no leak; the module holding the most memory is explained
    /// (`module` set).
    LargestNotLeaking,
    /// Some of the top modules have no usable symbols.
    MissingSymbols,
    /// The tracker's tables were full: totals are a lower bound.
    DroppedAllocations,
    /// Some stacks were cut at the tracker's depth limit.
    TruncatedStacks,
    /// The tracking window is too short to judge leak probabilities.
    ShortWindow,
    /// The tracker was attached to a running process: earlier blocks are unknown.
    AttachedLate,
    /// The process holds very many handles.
    HandleCount,
    /// Private bytes of the process.
    PrivateBytes,
    /// Free address space is fragmented.
    Fragmentation,
    /// A 32-bit process's largest free block is small.
    SmallLargestFreeBlock,
    /// A module grew in every interval of a series (`module` set).
    ModuleGrowth,
    /// A UMDH snapshot has no allocation times: leak probability is not judged.
    NoAllocationTimes,
}

/// A conclusion for the analysis summary.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    /// The script (or `series`) that made it.
    pub script: &'static str,
    /// The module the finding is about, as the leak analysis names it.
    pub module: Option<String>,
    /// The stack the finding is about.
    pub stack: Option<StackId>,
    pub title: String,
    pub description: String,
    pub recommendation: String,
}

impl Finding {
    /// A finding about nothing in particular (no module, no stack).
    pub fn new(
        severity: Severity,
        kind: FindingKind,
        script: &'static str,
        title: String,
        description: String,
        recommendation: String,
    ) -> Self {
        Finding {
            severity,
            kind,
            script,
            module: None,
            stack: None,
            title,
            description,
            recommendation,
        }
    }

    /// The same finding, about `module`.
    pub fn about_module(mut self, module: impl Into<String>) -> Self {
        self.module = Some(module.into());
        self
    }

    /// The same finding, about `stack`.
    pub fn about_stack(mut self, stack: StackId) -> Self {
        self.stack = Some(stack);
        self
    }

    /// Whether the finding is about `module` (module names compare as Windows file
    /// names do, ignoring ASCII case).
    pub fn concerns_module(&self, module: &str) -> bool {
        self.module
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(module))
    }
}
