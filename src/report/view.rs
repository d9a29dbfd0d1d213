//! Small view-model pieces shared by the pages and the sections.

use crate::text::{approx_bytes, percent, probability, thousands};

/// A labelled value.
pub struct KeyValue {
    pub key: &'static str,
    pub value: String,
}

pub fn kv(key: &'static str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key,
        value: value.into(),
    }
}

/// An optional value, or a dash.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "–".to_owned())
}

/// A table row of totals with their share of a whole.
pub struct Row {
    pub name: String,
    pub allocations: String,
    pub bytes: String,
    pub share: String,
}

pub fn row(name: String, allocations: u64, bytes: u64, whole: u64) -> Row {
    Row {
        name,
        allocations: thousands(allocations),
        bytes: thousands(bytes),
        share: percent(bytes, whole),
    }
}

/// The anchor of a module's card in a dump report: stable across runs, unlike its
/// rank, so that other pages can link to it.
pub fn module_anchor(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("module-{safe}")
}

/// The anchor of a sample stack: its id, the same in every page and JSON file.
pub fn stack_anchor(id: crate::model::StackId) -> String {
    format!("stack-{id}")
}

/// A module the verdict names, spelled for the page.
pub struct VerdictModuleView {
    pub name: String,
    /// The company, or why it is unknown.
    pub vendor: String,
    pub bytes: String,
    pub approx: String,
    pub share: String,
    pub growth: String,
    pub probability: String,
    /// Link to the module's card, when the page has or links to one.
    pub details: Option<String>,
    /// Link to the module's vendor report.
    pub vendor_report: Option<String>,
}

/// The verdict at the top of every page.
pub struct VerdictView {
    /// `leak`, `possible_leak`…: a CSS class.
    pub status: &'static str,
    pub label: &'static str,
    pub confidence: &'static str,
    pub headline: String,
    pub next_step: String,
    /// The first vendor report the next step points to.
    pub next_link: Option<String>,
    pub modules: Vec<VerdictModuleView>,
    pub evidence: Vec<String>,
}

/// The verdict's view. `vendor_prefix` leads from the page to the run's folder
/// (`../` from a dump report, empty from the index); `details` gives the link to a
/// module's card, if the page has one.
pub fn verdict_view(
    v: &crate::model::Verdict,
    vendor_prefix: &str,
    details: &dyn Fn(&str) -> Option<String>,
) -> VerdictView {
    use crate::model::{Confidence, VerdictStatus};
    let modules: Vec<VerdictModuleView> = v
        .modules
        .iter()
        .map(|m| VerdictModuleView {
            name: m.name.clone(),
            vendor: m
                .company
                .clone()
                .or_else(|| m.company_unknown.clone())
                .unwrap_or_else(|| "vendor unknown".to_owned()),
            bytes: thousands(m.bytes),
            approx: approx_bytes(m.bytes),
            share: format!("{:.1}%", m.share_percent),
            growth: m
                .growth_per_hour
                .map(|g| format!("{} bytes/h", thousands(g.max(0.0).round() as u64)))
                .unwrap_or_else(|| "–".to_owned()),
            probability: probability(m.leak_probability),
            details: details(&m.name),
            vendor_report: m
                .vendor_report
                .as_ref()
                .map(|d| format!("{vendor_prefix}{d}/report.html")),
        })
        .collect();
    VerdictView {
        status: match v.status {
            VerdictStatus::Leak => "leak",
            VerdictStatus::PossibleLeak => "possible_leak",
            VerdictStatus::Spread => "spread",
            VerdictStatus::NoLeakFound => "no_leak_found",
            VerdictStatus::NoTrackerData => "no_tracker_data",
        },
        label: v.status.label(),
        confidence: match v.confidence {
            Confidence::High => "high confidence",
            Confidence::Medium => "medium confidence",
            Confidence::Low => "low confidence",
        },
        headline: v.headline.clone(),
        next_step: v.next_step.clone(),
        next_link: modules.iter().find_map(|m| m.vendor_report.clone()),
        modules,
        evidence: v.evidence.iter().map(|e| e.text.clone()).collect(),
    }
}

/// Links from a dump report to the rest of the incident folder.
#[derive(Clone, Debug, Default)]
pub struct PageLinks {
    /// The run's index, relative to the page.
    pub index: Option<String>,
    /// The dumps of the page's series in order: label, link, whether it is this page.
    pub siblings: Vec<(String, String, bool)>,
    /// The run's vendor reports: module, link.
    pub vendors: Vec<(String, String)>,
}

/// The note a sample stack's title carries when not all its frames are listed.
pub fn frames_omitted_note(omitted: u64) -> String {
    if omitted == 0 {
        String::new()
    } else {
        format!(
            " — {} more frames not listed (the stack is deeper than {} frames; see report.json's frames_omitted)",
            crate::text::thousands(omitted),
            crate::model::MAX_SAMPLE_FRAMES
        )
    }
}

/// "N more … not shown: …" for a list that was cut; `None` when nothing was.
pub fn omitted_text(o: &crate::model::Omitted, what: &str) -> Option<String> {
    (o.count > 0).then(|| {
        format!(
            "{} more {what} not shown: {}, {} bytes.",
            thousands(o.count),
            crate::text::count(o.allocations, "allocation"),
            thousands(o.bytes)
        )
    })
}
