//! The verdict: one answer per dump and per incident, reconciled from all the
//! evidence, and the module findings that state it. The rules are documented in
//! docs/verdict.md; each status has a test.
//!
//! Evidence is weighed, not listed side by side: growth in every interval of a
//! series outranks a single dump's leak probability, a series that shows a module
//! flat overrules its probability, and a module must hold a dominant share of the
//! memory (or of its growth) before the verdict names it. The module findings of a
//! dump's summary are written from the verdict, so no finding can contradict it.

use crate::model::{
    Confidence, DumpReport, Evidence, EvidenceKind, FindingKind, LeakAnalysis, ModuleLeak, Series,
    TrackingSource, TrendVerdict, UmdhGrowth, Verdict, VerdictModule, VerdictStatus, VersionSource,
    NO_STACK_MODULE, UNKNOWN_MODULE,
};
use crate::text::{percent, thousands};

mod findings;
mod reach;

pub use findings::verdict_findings;

/// A leak probability at least this high counts as evidence of a leak.
pub const PROBABLE_LEAK: u8 = 75;
/// A module is named by the verdict when it holds at least this share (percent) of
/// the outstanding bytes, or of the growth across a series.
pub const DOMINANT_SHARE_PERCENT: f64 = 20.0;
/// Modules that look like leaks but are each below the dominant share make the
/// memory "spread" when together they hold at least this share (percent).
pub const SPREAD_SHARE_PERCENT: f64 = 20.0;
/// A series needs this many dumps for growth in every interval to be a leak.
pub const MIN_DUMPS_FOR_LEAK: usize = 3;
/// Functions named per module in a finding.
const FINDING_FUNCTIONS: usize = 3;

/// What the verdict on one dump is judged with besides the dump itself.
#[derive(Clone, Copy, Default)]
pub struct VerdictContext<'a> {
    /// The series the dump belongs to, when it has other dumps.
    pub series: Option<&'a Series>,
    /// Tracking windows shorter than this (seconds) are too short to judge.
    pub min_window_seconds: u64,
    /// `(module, folder)` of the vendor reports written by the run.
    pub vendor_reports: &'a [(String, String)],
}

fn is_real(m: &ModuleLeak) -> bool {
    m.name != UNKNOWN_MODULE && m.name != NO_STACK_MODULE && !m.system
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The company of `module` from the modules section's version resources, or why it
/// is unknown.
fn company(report: &DumpReport, module: &str) -> Result<String, String> {
    let Some(modules) = report.modules() else {
        if report
            .tracking
            .as_ref()
            .is_some_and(|t| t.source == TrackingSource::UmdhSnapshot)
        {
            return Err("vendor unknown: a UMDH log holds no version resources".into());
        }
        return Err("vendor unknown: the modules script did not run".into());
    };
    let Some(entry) = modules
        .modules
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(module))
    else {
        return Err("vendor unknown: the module is not in the dump's module list".into());
    };
    const NO_IMAGE: &str =
        "no version resource was found in the dump's memory or an --images folder";
    let Some(strings) = &entry.version_strings else {
        let why = match (&entry.version_note, &report.tracking) {
            _ if entry.unloaded => {
                "it was unloaded before the dump (the tracker records loaded modules only)"
                    .to_owned()
            }
            (Some(note), _) => note.clone(),
            (None, Some(t)) => format!(
                "the tracker recorded no module strings (allocation stream {}; module strings came with 1.2)",
                t.version
            ),
            (None, None) => "the dump has no tracker data to carry module strings".to_owned(),
        };
        return Err(format!("vendor unknown: {why}, and {NO_IMAGE}"));
    };
    strings
        .company_name
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            let from = match (entry.version_source, &entry.image_file) {
                (Some(VersionSource::Tracker), _) => {
                    ", as the tracker read it in the process,".to_owned()
                }
                (Some(VersionSource::DumpMemory), _) => ", in the dump's memory,".to_owned(),
                (Some(VersionSource::ImageFile), Some(f)) => format!(", in {f},"),
                _ => String::new(),
            };
            format!("vendor unknown: its version resource{from} names no company")
        })
}

/// A module's growth over a series: (bytes of growth, bytes per hour), when it
/// grew in every interval.
fn growth(series: &Series, module: &str) -> Option<(i128, Option<f64>, TrendVerdict)> {
    let t = series
        .modules
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(module))?;
    let first = i128::from(*t.bytes.first()?);
    let last = i128::from(*t.bytes.last()?);
    Some((last - first, t.rate_per_hour, t.verdict))
}

/// The verdict on a dump without tracker data (or whose leak analysis did not run).
pub fn no_tracker_data() -> Verdict {
    Verdict {
        status: VerdictStatus::NoTrackerData,
        modules: Vec::new(),
        confidence: Confidence::Low,
        evidence: vec![Evidence {
            kind: EvidenceKind::NoTrackerData,
            module: None,
            text: "The dump has no allocation stream, or its leak analysis did not run: outstanding allocations cannot be judged.".into(),
        }],
        headline: "No tracker data: this dump holds no record of outstanding allocations, so leaks cannot be judged from it.".into(),
        next_step: "Run the process under the tracker (ldtrack run, or ldtrack attach) and take dumps with it.".into(),
    }
}

/// The verdict on one dump.
pub fn dump_verdict(report: &DumpReport, ctx: &VerdictContext<'_>) -> Verdict {
    if let Some(g) = report.umdh_growth() {
        return growth_verdict(g, ctx);
    }
    let (Some(leak), Some(tracking)) = (report.leak(), &report.tracking) else {
        return no_tracker_data();
    };
    // A UMDH snapshot has no window: its evidence is growth across snapshots.
    let umdh = tracking.source == TrackingSource::UmdhSnapshot;
    let short_window = !umdh && tracking.duration_seconds < ctx.min_window_seconds as f64;
    let mut evidence = Vec::new();
    let series = ctx.series.filter(|s| s.dumps.len() >= 2);

    // Series evidence first: growth in every interval outranks everything else.
    if let Some(s) = series {
        let first = s.dumps.first().map_or(0, |d| d.bytes);
        let last = s.dumps.last().map_or(0, |d| d.bytes);
        let total_growth = i128::from(last) - i128::from(first);
        let growing: Vec<(&ModuleLeak, i128, Option<f64>)> = leak
            .modules
            .iter()
            .filter(|m| is_real(m))
            .filter_map(|m| match growth(s, &m.name)? {
                (g, rate, TrendVerdict::GrewInEveryInterval) => Some((m, g, rate)),
                _ => None,
            })
            .collect();
        let grown: i128 = growing.iter().map(|g| g.1.max(0)).sum();
        let denominator = total_growth.max(grown).max(1);
        let dominant: Vec<&(&ModuleLeak, i128, Option<f64>)> = growing
            .iter()
            .filter(|(_, g, _)| *g as f64 * 100.0 / denominator as f64 >= DOMINANT_SHARE_PERCENT)
            .collect();
        for (m, g, rate) in &growing {
            evidence.push(Evidence {
                kind: EvidenceKind::SeriesGrowth,
                module: Some(m.name.clone()),
                text: format!(
                    "{} grew in every interval of the {} dumps of series {}: +{} bytes ({} of the growth){}.",
                    m.name,
                    s.dumps.len(),
                    s.id,
                    thousands(u64::try_from(*g).unwrap_or(0)),
                    format_share(*g as f64 * 100.0 / denominator as f64),
                    rate.map(|r| format!(", {} bytes per hour", thousands(r.max(0.0).round() as u64)))
                        .unwrap_or_default()
                ),
            });
        }
        if !dominant.is_empty() {
            let confirmed = s.dumps.len() >= MIN_DUMPS_FOR_LEAK;
            // The dump's own timing evidence, reconciled with the growth: it
            // supports the verdict or is outranked by it, never read against it.
            for (m, _, _) in &dominant {
                let text = match m.leak_probability {
                    Some(p) if p >= PROBABLE_LEAK => format!(
                        "In this dump, {}'s outstanding allocations were made steadily over the tracking window (leak probability {p}%).",
                        m.name
                    ),
                    Some(p) => format!(
                        "In this dump alone, {}'s allocation times look less like a leak (leak probability {p}%); growth across dumps is the stronger evidence and outranks it.",
                        m.name
                    ),
                    None => continue,
                };
                evidence.push(Evidence {
                    kind: EvidenceKind::LeakProbability,
                    module: Some(m.name.clone()),
                    text,
                });
            }
            evidence.extend(dominant.iter().filter_map(|(m, _, _)| reach::evidence(m)));
            let modules = dominant
                .iter()
                .map(|(m, _, rate)| verdict_module(report, leak, m, *rate, ctx))
                .collect();
            return finish(
                if confirmed {
                    VerdictStatus::Leak
                } else {
                    VerdictStatus::PossibleLeak
                },
                modules,
                if confirmed {
                    Confidence::High
                } else {
                    Confidence::Medium
                },
                evidence,
                Some(s),
            );
        }
        if !growing.is_empty() && s.dumps.len() >= MIN_DUMPS_FOR_LEAK {
            return finish(
                VerdictStatus::Spread,
                Vec::new(),
                Confidence::Medium,
                evidence,
                Some(s),
            );
        }
    }

    // The scan's proof: blocks no pointer reaches can never be freed, whatever
    // their age.
    let complete_scan = reach::complete(report);
    let (proven, unreachable) = reach::proven(leak.modules.iter().filter(|m| is_real(m)));
    let (_, unreachable_anywhere) = reach::proven(leak.modules.iter());
    if complete_scan && !proven.is_empty() {
        evidence.extend(proven.iter().filter_map(|m| reach::evidence(m)));
        let modules = named(report, leak, &proven, series, ctx);
        return finish(
            VerdictStatus::Leak,
            modules,
            Confidence::High,
            evidence,
            series,
        );
    }

    // One dump's evidence: when the outstanding allocations were made.
    let total = leak.totals.bytes;
    let mut probable: Vec<&ModuleLeak> = Vec::new();
    for m in leak.modules.iter().filter(|m| is_real(m)) {
        if m.leak_probability.is_none_or(|p| p < PROBABLE_LEAK) {
            continue;
        }
        // A series that shows the module not growing overrules its probability.
        if let Some((g, _, v)) = series.and_then(|s| growth(s, &m.name)) {
            if v != TrendVerdict::GrewInEveryInterval && v != TrendVerdict::TooFewDumps {
                evidence.push(Evidence {
                    kind: EvidenceKind::SeriesNoGrowth,
                    module: Some(m.name.clone()),
                    text: format!(
                        "{} looks like a leak in this dump (leak probability {}%) but did not grow steadily across the series ({}, {} bytes overall).",
                        m.name,
                        m.leak_probability.unwrap_or(0),
                        v.label(),
                        signed(g)
                    ),
                });
                continue;
            }
        }
        probable.push(m);
    }
    let dominant: Vec<&ModuleLeak> = probable
        .iter()
        .copied()
        .filter(|m| share(m.bytes, total) >= DOMINANT_SHARE_PERCENT)
        .collect();
    for m in &probable {
        if share(m.bytes, total) >= DOMINANT_SHARE_PERCENT || probable.len() <= 3 {
            evidence.push(Evidence {
                kind: EvidenceKind::LeakProbability,
                module: Some(m.name.clone()),
                text: format!(
                    "{} holds {} bytes ({}) allocated steadily over the tracking window (leak probability {}%).",
                    m.name,
                    thousands(m.bytes),
                    percent(m.bytes, total),
                    m.leak_probability.unwrap_or(0)
                ),
            });
        }
    }
    if short_window {
        evidence.push(Evidence {
            kind: EvidenceKind::ShortWindow,
            module: None,
            text: format!(
                "Tracking ran for {}, less than {} minutes: leak probabilities are weak evidence.",
                crate::text::duration(tracking.duration_seconds),
                ctx.min_window_seconds / 60
            ),
        });
    }
    let confidence = if short_window {
        Confidence::Low
    } else {
        Confidence::Medium
    };
    if !dominant.is_empty() {
        evidence.extend(dominant.iter().filter_map(|m| reach::evidence(m)));
        let modules = named(report, leak, &dominant, series, ctx);
        return finish(
            VerdictStatus::PossibleLeak,
            modules,
            confidence,
            evidence,
            series,
        );
    }
    let probable_share: f64 = probable.iter().map(|m| share(m.bytes, total)).sum();
    if complete_scan && unreachable.allocations > 0 {
        // Unreachable blocks in real modules, none of which holds a dominant share
        // (a dominant one was proven above).
        return spread(
            evidence,
            EvidenceKind::Unreachable,
            format!(
                "{} blocks ({} bytes) in several modules are unreachable, none holding {}% of them: each is leaked, but no single module is responsible.",
                thousands(unreachable.allocations),
                thousands(unreachable.bytes),
                DOMINANT_SHARE_PERCENT
            ),
            confidence,
            series,
        );
    }
    if complete_scan && unreachable_anywhere.allocations > 0 {
        return spread(
            evidence,
            EvidenceKind::Unreachable,
            format!(
                "{} blocks ({} bytes) are unreachable, all charged to system modules or to code outside every module: they are leaked, but no module can be named; their sample stacks show who called the allocator.",
                thousands(unreachable_anywhere.allocations),
                thousands(unreachable_anywhere.bytes),
            ),
            confidence,
            series,
        );
    }
    if probable_share >= SPREAD_SHARE_PERCENT {
        return spread(
            evidence,
            EvidenceKind::Share,
            format!(
                "{} modules look like leaks and together hold {} of the outstanding bytes, but none holds {}% or more.",
                probable.len(),
                format_share(probable_share),
                DOMINANT_SHARE_PERCENT
            ),
            confidence,
            series,
        );
    }
    if let Some(largest) = leak.modules.iter().find(|m| is_real(m)).filter(|_| umdh) {
        evidence.push(Evidence {
            kind: EvidenceKind::LeakProbability,
            module: Some(largest.name.clone()),
            text: format!(
                "{} holds the most memory, {} bytes ({}); a UMDH snapshot has no allocation times, so its leak probability is not judged: only growth across snapshots of the process can show a leak{}.",
                largest.name,
                thousands(largest.bytes),
                percent(largest.bytes, total),
                if series.is_some() { ", and it did not grow in every interval" } else { "" }
            ),
        });
    } else if let Some(largest) = leak.modules.iter().find(|m| is_real(m)) {
        evidence.push(Evidence {
            kind: EvidenceKind::LeakProbability,
            module: Some(largest.name.clone()),
            text: format!(
                "{} holds the most memory, {} bytes ({}), but its allocations were not made steadily over the tracking window (leak probability {}): more likely a cache filled at start-up or work in progress at dump time.",
                largest.name,
                thousands(largest.bytes),
                percent(largest.bytes, total),
                largest
                    .leak_probability
                    .map_or_else(|| "not judged".to_owned(), |p| format!("{p}%"))
            ),
        });
    }
    finish(
        VerdictStatus::NoLeakFound,
        Vec::new(),
        confidence,
        evidence,
        series,
    )
}

/// The verdict on a UMDH comparison: like a series of two dumps, a module holding a
/// dominant share of the growth is a possible leak; a third snapshot confirms it.
fn growth_verdict(g: &UmdhGrowth, ctx: &VerdictContext<'_>) -> Verdict {
    let real = |name: &str| name != UNKNOWN_MODULE && name != NO_STACK_MODULE;
    let positive: i64 = g.modules.iter().map(|m| m.totals.growth_bytes.max(0)).sum();
    let mut evidence = Vec::new();
    let mut modules = Vec::new();
    for m in g.modules.iter().filter(|m| !m.system && real(&m.name)) {
        if m.totals.growth_bytes <= 0 || m.share_percent < DOMINANT_SHARE_PERCENT {
            continue;
        }
        evidence.push(Evidence {
            kind: EvidenceKind::SeriesGrowth,
            module: Some(m.name.clone()),
            text: format!(
                "{} grew by {} bytes between the two snapshots of this UMDH comparison ({} of the growth).",
                m.name,
                thousands(m.totals.growth_bytes.unsigned_abs()),
                format_share(m.share_percent)
            ),
        });
        modules.push(VerdictModule {
            name: m.name.clone(),
            company: None,
            company_unknown: Some("vendor unknown: a UMDH log holds no version resources".into()),
            // Outstanding in the newer snapshot on the stacks the log lists; the
            // share is of the growth.
            allocations: m.totals.new_count.unwrap_or(0),
            bytes: m.totals.new_bytes,
            share_percent: m.share_percent,
            growth_per_hour: None,
            leak_probability: None,
            unreachable: None,
            held_by: None,
            vendor_report: ctx
                .vendor_reports
                .iter()
                .find(|(module, _)| module.eq_ignore_ascii_case(&m.name))
                .map(|(_, dir)| dir.clone()),
        });
    }
    if modules.is_empty() {
        return Verdict {
            status: VerdictStatus::NoLeakFound,
            modules,
            confidence: Confidence::Low,
            evidence,
            headline: if positive > 0 {
                format!("No leak found: {} bytes grew between the two snapshots, but no module outside the system modules holds {DOMINANT_SHARE_PERCENT}% of that growth.", thousands(positive.unsigned_abs()))
            } else {
                "No leak found: nothing grew between the two snapshots of this UMDH comparison.".into()
            },
            next_step: "Take snapshots later in the process's life (three or more) and analyse the snapshot logs together, so growth can be measured in every interval.".into(),
        };
    }
    modules.sort_by(|a, b| {
        b.share_percent
            .total_cmp(&a.share_percent)
            .then_with(|| a.name.cmp(&b.name))
    });
    let bytes: u64 = g
        .modules
        .iter()
        .filter(|m| modules.iter().any(|v| v.name == m.name))
        .map(|m| m.totals.growth_bytes.unsigned_abs())
        .sum();
    Verdict {
        status: VerdictStatus::PossibleLeak,
        headline: format!(
            "{} probably {}: +{} bytes between the two snapshots of this UMDH comparison.",
            names(&modules),
            if modules.len() > 1 { "leak" } else { "leaks" },
            thousands(bytes)
        ),
        next_step: "Take a third snapshot later and analyse the snapshot logs together: memory that grows in every interval confirms the leak.".into(),
        modules,
        confidence: Confidence::Medium,
        evidence,
    }
}

fn verdict_module(
    report: &DumpReport,
    leak: &LeakAnalysis,
    m: &ModuleLeak,
    growth_per_hour: Option<f64>,
    ctx: &VerdictContext<'_>,
) -> VerdictModule {
    let company = company(report, &m.name);
    VerdictModule {
        name: m.name.clone(),
        company_unknown: company.clone().err(),
        company: company.ok(),
        allocations: m.allocations,
        bytes: m.bytes,
        share_percent: share(m.bytes, leak.totals.bytes),
        growth_per_hour,
        leak_probability: m.leak_probability,
        vendor_report: ctx
            .vendor_reports
            .iter()
            .find(|(module, _)| module.eq_ignore_ascii_case(&m.name))
            .map(|(_, dir)| dir.clone()),
        unreachable: reach::unreachable(m),
        held_by: reach::held_by(m),
    }
}

/// `spread`: leak-like memory that no single module holds, with the evidence line
/// that says why.
fn spread(
    mut evidence: Vec<Evidence>,
    kind: EvidenceKind,
    text: String,
    confidence: Confidence,
    series: Option<&Series>,
) -> Verdict {
    evidence.push(Evidence {
        kind,
        module: None,
        text,
    });
    finish(
        VerdictStatus::Spread,
        Vec::new(),
        confidence,
        evidence,
        series,
    )
}

/// The modules a one-dump verdict names, with their growth when a series is known.
fn named(
    report: &DumpReport,
    leak: &LeakAnalysis,
    modules: &[&ModuleLeak],
    series: Option<&Series>,
    ctx: &VerdictContext<'_>,
) -> Vec<VerdictModule> {
    modules
        .iter()
        .map(|m| {
            let rate = series.and_then(|s| growth(s, &m.name)).and_then(|g| g.1);
            verdict_module(report, leak, m, rate, ctx)
        })
        .collect()
}

fn format_share(p: f64) -> String {
    format!("{p:.1}%")
}

fn signed(n: i128) -> String {
    let magnitude = thousands(n.unsigned_abs().min(u128::from(u64::MAX)) as u64);
    if n < 0 {
        format!("−{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// Names as a sentence: `a`, `a and b`, `a, b and c`.
fn names(modules: &[VerdictModule]) -> String {
    let named: Vec<String> = modules
        .iter()
        .map(|m| match &m.company {
            Some(c) => format!("{} ({c})", m.name),
            None => m.name.clone(),
        })
        .collect();
    match named.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn finish(
    status: VerdictStatus,
    mut modules: Vec<VerdictModule>,
    confidence: Confidence,
    evidence: Vec<Evidence>,
    series: Option<&Series>,
) -> Verdict {
    finish_with(
        status,
        std::mem::take(&mut modules),
        confidence,
        evidence,
        series.map_or(0, |s| s.dumps.len()),
    )
}

fn finish_with(
    status: VerdictStatus,
    mut modules: Vec<VerdictModule>,
    confidence: Confidence,
    evidence: Vec<Evidence>,
    dumps: usize,
) -> Verdict {
    modules.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    let bytes: u64 = modules.iter().map(|m| m.bytes).sum();
    let rate: Option<f64> = modules
        .iter()
        .map(|m| m.growth_per_hour)
        .try_fold(0.0, |sum, r| r.map(|r| sum + r));
    let verb = if modules.len() > 1 { "are" } else { "is" };
    let unreachable: Option<u64> = modules
        .iter()
        .filter_map(|m| m.unreachable)
        .map(|u| u.bytes)
        .reduce(|a, b| a + b)
        .filter(|&b| b > 0);
    let held: Vec<String> = modules
        .iter()
        .filter_map(|m| {
            m.held_by
                .as_ref()
                .map(|h| format!("{} is held by {h}", m.name))
        })
        .collect();
    let held = if held.is_empty() {
        String::new()
    } else {
        format!(" {}: a cache or list that grows.", held.join("; "))
    };
    let (headline, next_step) = match status {
        VerdictStatus::Leak if dumps < MIN_DUMPS_FOR_LEAK => (
            format!(
                "{} {verb} leaking: {} bytes in blocks that no pointer in the process reaches, of {} bytes outstanding.",
                names(&modules),
                thousands(unreachable.unwrap_or(0)),
                thousands(bytes),
            ),
            vendor_step(&modules),
        ),
        VerdictStatus::Leak => (
            format!(
                "{} {verb} leaking: {} bytes outstanding, growing{} in every interval of {dumps} dumps.",
                names(&modules),
                thousands(bytes),
                rate.map(|r| format!(" {} bytes per hour", thousands(r.max(0.0).round() as u64)))
                    .unwrap_or_default(),
            ) + &held,
            vendor_step(&modules),
        ),
        VerdictStatus::PossibleLeak => (
            format!(
                "{} probably {}: {} bytes outstanding, allocated steadily over the tracking window.{held}",
                names(&modules),
                if modules.len() > 1 { "leak" } else { "leaks" },
                thousands(bytes)
            ),
            "Take another dump of the same process later: memory that keeps growing confirms the leak.".to_owned(),
        ),
        VerdictStatus::Spread => (
            "Memory that looks leaked is spread over many modules, none holding a dominant share: no single module is responsible.".to_owned(),
            "Look at the largest stacks and functions across modules for a common caller (a shared allocator, a cache, a queue) rather than at one module.".to_owned(),
        ),
        VerdictStatus::NoLeakFound => (
            "No leak found: no module's outstanding allocations look like a leak.".to_owned(),
            "If the process still grows, take dumps later in its life (a series of three or more) so growth can be measured.".to_owned(),
        ),
        VerdictStatus::NoTrackerData => unreachable!("decided before the evidence is weighed"),
    };
    Verdict {
        status,
        modules,
        confidence,
        evidence,
        headline,
        next_step,
    }
}

fn vendor_step(modules: &[VerdictModule]) -> String {
    let mut steps: Vec<String> = Vec::new();
    for m in modules {
        let who = m
            .company
            .as_deref()
            .map_or_else(|| format!("{}'s vendor", m.name), str::to_owned);
        steps.push(match &m.vendor_report {
            Some(dir) => format!("send the vendor report ({dir}/report.html) to {who}"),
            None => format!(
                "write a vendor report for {} (leakdiag analyze … --vendor {}) and send it to {who}",
                m.name, m.name
            ),
        });
    }
    let mut text = steps.join("; ");
    if let Some(first) = text.get(..1) {
        text = format!("{}{}.", first.to_uppercase(), &text[1..]);
    }
    text
}

/// Sets the dump's verdict and rewrites the module findings of its summary from
/// it (idempotent: run again with more context, e.g. once the series is known).
pub fn apply(report: &mut DumpReport, ctx: &VerdictContext<'_>) {
    let verdict = dump_verdict(report, ctx);
    let mut summary = verdict_findings(&verdict, report.leak());
    summary.extend(
        std::mem::take(&mut report.summary)
            .into_iter()
            .filter(|f| !is_verdict_finding(f.kind)),
    );
    // Stable: within a severity, the verdict's findings come first, then the
    // scripts' in their order.
    summary.sort_by_key(|f| f.severity);
    report.summary = summary;
    report.verdict = verdict;
}

/// Findings that state the verdict; every other finding is left alone.
fn is_verdict_finding(kind: FindingKind) -> bool {
    matches!(
        kind,
        FindingKind::Leak
            | FindingKind::PossibleLeak
            | FindingKind::SpreadGrowth
            | FindingKind::LargestNotLeaking
    )
}

/// The verdict on an incident: the strongest of its dumps' verdicts (leak, then
/// possible leak, spread, no leak found, no tracker data), with every module that
/// the dumps of that status name (ties and several series included).
pub fn incident_verdict<'a>(
    verdicts: impl IntoIterator<Item = &'a Verdict>,
    series: &[Series],
) -> Verdict {
    let verdicts: Vec<&Verdict> = verdicts.into_iter().collect();
    let Some(strongest) = verdicts.iter().map(|v| v.status).min() else {
        return Verdict {
            status: VerdictStatus::NoTrackerData,
            modules: Vec::new(),
            confidence: Confidence::Low,
            evidence: Vec::new(),
            headline: "No dump could be analysed.".into(),
            next_step: "Check the errors listed for each input.".into(),
        };
    };
    // The last dump of each status is the best informed (series verdicts are the
    // same for every dump of a series).
    let chosen: Vec<&Verdict> = verdicts
        .iter()
        .copied()
        .filter(|v| v.status == strongest)
        .collect();
    let mut base = (*chosen.last().expect("one verdict has the strongest status")).clone();
    for v in &chosen {
        for m in &v.modules {
            if !base
                .modules
                .iter()
                .any(|b| b.name.eq_ignore_ascii_case(&m.name))
            {
                base.modules.push(m.clone());
                base.evidence.extend(
                    v.evidence
                        .iter()
                        .filter(|e| e.module.as_deref() == Some(m.name.as_str()))
                        .cloned(),
                );
            }
        }
    }
    if base.modules.len() > 1 && chosen.len() > 1 {
        base.modules
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        let dumps = series.iter().map(|s| s.dumps.len()).max().unwrap_or(1);
        let rebuilt = finish_with(
            base.status,
            base.modules.clone(),
            base.confidence,
            base.evidence.clone(),
            dumps,
        );
        base.headline = rebuilt.headline;
        base.next_step = rebuilt.next_step;
    }
    base
}
