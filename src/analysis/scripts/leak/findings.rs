//! The leak analysis's findings for the analysis summary: which module leaks and how
//! sure we are, what to do about it, and what limits the evidence.

use crate::analysis::attribution::ModuleFilter;
use crate::dump::stream::StreamFlags;
use crate::model::{
    Finding, FindingKind, LeakAnalysis, ModuleLeak, Severity, SymbolStatus, NO_STACK_MODULE,
    UNKNOWN_MODULE,
};
use crate::text::{count, percent, thousands};

/// A module scoring at least this is reported as a probable leak.
pub const PROBABLE_LEAK: u8 = 75;
/// Other probable leaks are reported when they hold at least this share of bytes (%).
pub const NOTABLE_SHARE_PERCENT: u64 = 5;
/// Modules whose symbols are checked.
pub const TOP_MODULES: usize = 3;

/// What the findings are judged against.
pub struct FindingInputs<'a> {
    pub window_seconds: f64,
    pub min_window_seconds: u64,
    pub flags: StreamFlags,
    pub max_depth: Option<&'a str>,
    pub system: &'a ModuleFilter,
    /// The company that made a module, from its version resource, when known.
    pub vendor: &'a dyn Fn(&str) -> Option<String>,
}

fn is_real(m: &ModuleLeak) -> bool {
    m.name != UNKNOWN_MODULE && m.name != NO_STACK_MODULE
}

fn top_functions(m: &ModuleLeak, n: usize) -> String {
    let names: Vec<String> = m
        .functions
        .iter()
        .take(n)
        .map(|f| format!("{} ({} bytes)", f.name, thousands(f.bytes)))
        .collect();
    if names.is_empty() {
        "none listed".to_owned()
    } else {
        names.join(", ")
    }
}

fn probability_text(p: Option<u8>) -> String {
    p.map(|p| format!("{p}%"))
        .unwrap_or_else(|| "not judged".into())
}

/// The findings of one analysis.
pub fn findings(leak: &LeakAnalysis, inputs: &FindingInputs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let total = leak.totals.bytes;
    let finding = |severity, kind, title: String, description: String, recommendation: String| {
        Finding::new(severity, kind, "leak", title, description, recommendation)
    };

    // Probable leaks, in ranking order; the largest non-system one is the headline.
    let candidates = leak
        .modules
        .iter()
        .filter(|m| is_real(m) && !inputs.system.matches(&m.name));
    let mut headline = true;
    for m in candidates {
        let probable = m.leak_probability.is_some_and(|p| p >= PROBABLE_LEAK);
        let notable =
            total > 0 && m.bytes.saturating_mul(100) >= total.saturating_mul(NOTABLE_SHARE_PERCENT);
        if probable && (headline || notable) {
            let vendor = (inputs.vendor)(&m.name)
                .map(|v| format!("the vendor of {} ({v})", m.name))
                .unwrap_or_else(|| format!("the vendor of {}", m.name));
            out.push(finding(
                if headline { Severity::Error } else { Severity::Warning },
                FindingKind::ProbableLeak,
                format!("{} is probably leaking", m.name),
                format!(
                    "{} is responsible for {} bytes ({}) of outstanding allocations, in {}; leak probability {}; top functions: {}.",
                    m.name,
                    thousands(m.bytes),
                    percent(m.bytes, total),
                    count(m.allocations, "allocation"),
                    probability_text(m.leak_probability),
                    top_functions(m, 3),
                ),
                format!(
                    "Contact {vendor} with this report: the sample stacks show the code paths that allocate without freeing. If the calls come from your code, check that every object the module returns is released as its documentation says."
                ),
            ).about_module(&m.name));
            out.push(
                finding(
                    Severity::Information,
                    FindingKind::TopFunctions,
                    format!("Top functions of {}", m.name),
                    format!(
                        "Outstanding allocations in {} come from: {}.",
                        m.name,
                        top_functions(m, 5)
                    ),
                    String::new(),
                )
                .about_module(&m.name),
            );
        } else if headline && !probable && total > 0 {
            out.push(finding(
                Severity::Information,
                FindingKind::LargestNotLeaking,
                format!("{} holds the most memory but does not look like a leak", m.name),
                format!(
                    "{} holds {} bytes ({}) of outstanding allocations, but their allocation times do not spread over the tracking window (leak probability {}): more likely a cache filled at start-up or work in progress at dump time.",
                    m.name,
                    thousands(m.bytes),
                    percent(m.bytes, total),
                    probability_text(m.leak_probability),
                ),
                "Compare with a later dump of the same process: memory that keeps growing is a leak, memory that stays flat is not.".to_owned(),
            ).about_module(&m.name));
        }
        headline = false;
    }

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
    if inputs.window_seconds < inputs.min_window_seconds as f64 {
        out.push(finding(
            Severity::Warning,
            FindingKind::ShortWindow,
            "The tracking window is too short to judge".into(),
            format!(
                "Tracking ran for {:.0} seconds, less than {} minutes: a slow leak cannot yet be told from a cache or from work in progress, so leak probabilities are weak evidence.",
                inputs.window_seconds,
                inputs.min_window_seconds / 60
            ),
            "Let the tracker run longer (an hour or more for a leak of a few MB an hour) and take another dump.".into(),
        ));
    }
    out
}
