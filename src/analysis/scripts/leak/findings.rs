//! The leak analysis's findings for the analysis summary: what limits the evidence
//! (missing symbols, dropped allocations, cut stacks, a short tracking window).
//! Which module leaks is the verdict's to say (`analysis::verdict`).

use crate::dump::stream::StreamFlags;
use crate::model::{
    Finding, FindingKind, LeakAnalysis, ModuleLeak, Severity, SymbolStatus, NO_STACK_MODULE,
    UNKNOWN_MODULE,
};
use crate::text::duration;

/// Modules whose symbols are checked.
pub const TOP_MODULES: usize = 3;

/// What the findings are judged against.
pub struct FindingInputs<'a> {
    pub window_seconds: f64,
    pub min_window_seconds: u64,
    pub flags: StreamFlags,
    pub max_depth: Option<&'a str>,
    /// The tracker's `tracking_began` metadata: `attach` when it was injected into a
    /// running process.
    pub tracking_began: Option<&'a str>,
}

fn is_real(m: &ModuleLeak) -> bool {
    m.name != UNKNOWN_MODULE && m.name != NO_STACK_MODULE
}

/// The findings of one analysis.
pub fn findings(leak: &LeakAnalysis, inputs: &FindingInputs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let finding = |severity, kind, title: String, description: String, recommendation: String| {
        Finding::new(severity, kind, "leak", title, description, recommendation)
    };

    // Modules of the top three without symbols: one finding naming them all.
    let missing: Vec<String> = leak
        .modules
        .iter()
        .filter(|m| is_real(m))
        .take(TOP_MODULES)
        .filter_map(|m| {
            let row = leak.symbols.iter().find(|s| s.module == m.name);
            let usable = row.is_some_and(|s| {
                matches!(
                    s.status,
                    SymbolStatus::Loaded | SymbolStatus::LoadedUnverified
                )
            });
            (!usable).then(|| {
                let why = row
                    .map(|s| s.message.clone().unwrap_or_else(|| s.status.to_string()))
                    .unwrap_or_else(|| "no symbols were searched".into());
                format!("{} ({why})", m.name)
            })
        })
        .collect();
    if !missing.is_empty() {
        out.push(finding(
            Severity::Warning,
            FindingKind::MissingSymbols,
            format!("No symbols for {} of the top {TOP_MODULES} modules", missing.len()),
            format!(
                "Without symbols, function names are module offsets and may be missing or wrong: {}.",
                missing.join("; ")
            ),
            "Add the folders or symbol servers holding their PDBs with -s (or _NT_SYMBOL_PATH) and analyse again.".to_owned(),
        ));
    }

    if inputs.flags.dropped() {
        out.push(finding(
            Severity::Warning,
            FindingKind::DroppedAllocations,
            "The tracker dropped allocations".into(),
            "The tracker's tables were full, so some allocations were not recorded: every count and byte total is a lower bound.".into(),
            "Track again with larger tables (the tracker's --max-allocations and --max-stacks).".into(),
        ));
    }
    if inputs.flags.truncated_stacks() {
        let depth = inputs
            .max_depth
            .map(|d| format!(" of {d} frames"))
            .unwrap_or_default();
        out.push(finding(
            Severity::Warning,
            FindingKind::TruncatedStacks,
            "Some stacks were cut".into(),
            format!("Some call stacks reached the tracker's depth limit{depth} and were cut: the module responsible for them may lie beyond the last frame."),
            "Track again with a larger --max-depth if the responsible modules look like allocation plumbing.".into(),
        ));
    }
    if inputs.tracking_began == Some("attach") {
        out.push(finding(
            Severity::Information,
            FindingKind::AttachedLate,
            "Tracking began after the process started".into(),
            "The tracker was attached to the running process (ldtrack attach): blocks allocated before that are not in its table, so a leak that began earlier is seen only from the attach on.".into(),
            "To see the whole life of the process, start it under the tracker (ldtrack run) or attach as early as possible after a restart.".into(),
        ));
    }
    if inputs.window_seconds < inputs.min_window_seconds as f64 {
        out.push(finding(
            Severity::Warning,
            FindingKind::ShortWindow,
            "The tracking window is too short to judge".into(),
            format!(
                "Tracking ran for {}, less than {} minutes: a slow leak cannot yet be told from a cache or from work in progress, so leak probabilities are weak evidence.",
                duration(inputs.window_seconds),
                inputs.min_window_seconds / 60
            ),
            "Let the tracker run longer (an hour or more for a leak of a few MB an hour) and take another dump.".into(),
        ));
    }
    out
}
