//! The module findings of a dump's summary, written from its verdict, so that no
//! finding can contradict it.

use super::FINDING_FUNCTIONS;
use crate::model::{
    EvidenceKind, Finding, FindingKind, LeakAnalysis, Severity, Verdict, VerdictStatus,
};
use crate::text::{count, thousands};

/// The module findings of a dump's summary, written from its verdict: one finding
/// per module the verdict names (with the growth, the share, the probability and
/// the top functions), or one finding for spread memory.
pub fn verdict_findings(verdict: &Verdict, leak: Option<&LeakAnalysis>) -> Vec<Finding> {
    let module_leak = |name: &str| leak.and_then(|l| l.modules.iter().find(|m| m.name == name));
    let mut out = Vec::new();
    match verdict.status {
        VerdictStatus::Leak | VerdictStatus::PossibleLeak => {
            let leak_status = verdict.status == VerdictStatus::Leak;
            for m in &verdict.modules {
                let evidence: Vec<&str> = verdict
                    .evidence
                    .iter()
                    .filter(|e| e.module.as_deref() == Some(m.name.as_str()))
                    .map(|e| e.text.as_str())
                    .collect();
                let functions = module_leak(&m.name)
                    .map(|l| {
                        l.functions
                            .iter()
                            .take(FINDING_FUNCTIONS)
                            .map(|f| format!("{} ({} bytes)", f.name, thousands(f.bytes)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .filter(|f| !f.is_empty())
                    .map(|f| format!(" Top functions: {f}."))
                    .unwrap_or_default();
                let vendor = match &m.company {
                    Some(c) => format!("{} ({c})", m.name),
                    None => m.name.clone(),
                };
                out.push(
                    Finding::new(
                        if leak_status {
                            Severity::Error
                        } else {
                            Severity::Warning
                        },
                        if leak_status {
                            FindingKind::Leak
                        } else {
                            FindingKind::PossibleLeak
                        },
                        "verdict",
                        if leak_status {
                            format!("{} is leaking", m.name)
                        } else {
                            format!("{} is probably leaking", m.name)
                        },
                        if leak.is_some() {
                            format!(
                                "{} holds {} bytes ({:.1}% of outstanding bytes) in {}. {}{functions}",
                                m.name,
                                thousands(m.bytes),
                                m.share_percent,
                                count(m.allocations, "allocation"),
                                evidence.join(" "),
                            )
                        } else {
                            // Growth without a table of outstanding allocations (a
                            // UMDH comparison): the evidence says it all.
                            evidence.join(" ")
                        },
                        format!(
                            "{} The sample stacks in the leak analysis show the code paths that allocate without freeing; if the calls come from your code, check that every object {vendor} returns is released as documented.",
                            verdict.next_step
                        ),
                    )
                    .about_module(&m.name),
                );
            }
        }
        VerdictStatus::Spread => {
            let evidence: Vec<&str> = verdict.evidence.iter().map(|e| e.text.as_str()).collect();
            out.push(Finding::new(
                Severity::Warning,
                FindingKind::SpreadGrowth,
                "verdict",
                "Leak-like memory is spread over many modules".into(),
                evidence.join(" "),
                verdict.next_step.clone(),
            ));
        }
        VerdictStatus::NoLeakFound => {
            // The largest module explained, so that nobody reads it as a leak.
            if let Some(e) = verdict
                .evidence
                .iter()
                .find(|e| e.kind == EvidenceKind::LeakProbability && e.module.is_some())
            {
                let module = e.module.clone().unwrap_or_default();
                out.push(
                    Finding::new(
                        Severity::Information,
                        FindingKind::LargestNotLeaking,
                        "verdict",
                        format!("{module} holds the most memory but does not look like a leak"),
                        e.text.clone(),
                        "Compare with a later dump of the same process: memory that keeps growing is a leak, memory that stays flat is not.".to_owned(),
                    )
                    .about_module(module),
                );
            }
        }
        VerdictStatus::NoTrackerData => {}
    }
    out
}
