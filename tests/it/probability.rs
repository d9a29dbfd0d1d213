//! Leak probability behaviours required of the method (docs/leak-probability.md),
//! and the findings they lead to.

use crate::helpers::leak_of;
use crate::synth::{demo_dump, demo_modules, filetime, frames, SynthDump, SECOND};
use leakdiag::analysis::{analyze_dump, AnalyzeOptions};
use leakdiag::dump::stream::{AllocatorKind, StreamFlags};
use leakdiag::dump::writer::AllocationStreamBuilder;
use leakdiag::model::DumpReport;
use leakdiag::model::ModuleLeak;
use leakdiag::model::{FindingKind, Severity, VerdictStatus};

const HOUR: u64 = 3600 * SECOND;

/// A dump of the demo modules with one stack in odbcvend.dll whose allocations are
/// made at `times` (ticks after tracking start) in a window of `window` ticks.
fn pattern(times: &[u64], window: u64, flags: u32) -> DumpReport {
    let mut b =
        AllocationStreamBuilder::new(filetime(1_700_000_000), filetime(1_700_000_000) + window);
    b.flags = flags;
    b.metadata("allocator_modules", "ldtrack.dll")
        .metadata("max_depth", "16");
    let stack = [
        frames::LDTRACK_HOOK,
        frames::UCRT_MALLOC,
        frames::VEND_ROW_BUFFER,
        frames::W3WP_MAIN,
    ];
    for (i, &t) in times.iter().enumerate() {
        b.allocate(
            0x1000 + i as u64 * 64,
            100,
            t,
            AllocatorKind::CRuntime,
            &stack,
        );
    }
    let bytes = SynthDump {
        modules: demo_modules(),
        stream: Some(b.build()),
        ..Default::default()
    }
    .build();
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    analyze_dump(f.path(), &AnalyzeOptions::default()).unwrap()
}

fn vend(r: &DumpReport) -> &ModuleLeak {
    leak_of(r)
        .modules
        .iter()
        .find(|m| m.name == "odbcvend.dll")
        .unwrap()
}

/// Every level reports the same score for a single-stack module.
fn scores(r: &DumpReport) -> [Option<u8>; 3] {
    let m = vend(r);
    [
        m.leak_probability,
        m.functions[0].leak_probability,
        m.stacks[0].leak_probability,
    ]
}

fn evenly(n: u64, from: u64, to: u64) -> Vec<u64> {
    (0..n).map(|i| from + i * (to - from) / n).collect()
}

#[test]
fn a_steady_leak_scores_at_least_75() {
    for n in [10, 37, 500] {
        let r = pattern(&evenly(n, 0, 2 * HOUR), 2 * HOUR, 1);
        for s in scores(&r) {
            assert!(s.unwrap() >= 75, "{n} allocations: {s:?}");
        }
    }
}

#[test]
fn a_start_up_cache_scores_at_most_25() {
    let r = pattern(&evenly(300, 0, 2 * HOUR / 20), 2 * HOUR, 1);
    for s in scores(&r) {
        assert!(s.unwrap() <= 25, "{s:?}");
    }
}

#[test]
fn work_in_flight_scores_at_most_25() {
    let r = pattern(
        &evenly(300, 2 * HOUR - 2 * HOUR / 20, 2 * HOUR),
        2 * HOUR,
        1,
    );
    for s in scores(&r) {
        assert!(s.unwrap() <= 25, "{s:?}");
    }
}

#[test]
fn fewer_than_10_allocations_never_score_above_50() {
    for n in 1..10 {
        let r = pattern(&evenly(n, 0, 2 * HOUR), 2 * HOUR, 1);
        for s in scores(&r) {
            assert!(s.unwrap() <= 50, "{n} allocations: {s:?}");
        }
    }
}

#[test]
fn the_incident_flags_the_leak_and_not_the_cache_or_the_work_in_flight() {
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), demo_dump(2)).unwrap();
    let r = analyze_dump(f.path(), &AnalyzeOptions::default()).unwrap();
    let leak = leak_of(&r);
    let p = |name: &str| {
        leak.modules
            .iter()
            .find(|m| m.name == name)
            .unwrap()
            .leak_probability
            .unwrap()
    };
    assert!(p("odbcvend.dll") >= 75);
    assert!(p("orders.dll") <= 25, "start-up cache");
    assert!(p("httpmod.dll") <= 25, "work in flight");

    // One dump alone: a possible leak, named once, until a series confirms growth.
    assert_eq!(r.verdict.status, VerdictStatus::PossibleLeak);
    let named: Vec<&str> = r.verdict.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(named, ["odbcvend.dll"]);
    let flagged: Vec<_> = r
        .summary
        .iter()
        .filter(|f| f.severity <= Severity::Warning && f.module.is_some())
        .collect();
    assert_eq!(flagged.len(), 1, "{:#?}", r.summary);
    assert_eq!(flagged[0].title, "odbcvend.dll is probably leaking");
    assert_eq!(flagged[0].kind, FindingKind::PossibleLeak);
    assert!(
        flagged[0].description.contains("3,900,000 bytes"),
        "{}",
        flagged[0].description
    );
    assert!(flagged[0].description.contains("leak probability 100%"));
    assert!(flagged[0].recommendation.contains("Take another dump"));
    for quiet in ["orders.dll", "httpmod.dll"] {
        assert!(
            !r.summary
                .iter()
                .any(|f| f.severity != Severity::Information && f.title.starts_with(quiet)),
            "{quiet} must not be flagged"
        );
    }
    // Summary order: most severe first, the verdict's finding before the others.
    assert_eq!(r.summary[0].kind, FindingKind::PossibleLeak);
    assert!(r.summary.windows(2).all(|w| w[0].severity <= w[1].severity));
    // The demo has no symbol path: the top three modules lack symbols.
    assert!(r
        .summary
        .iter()
        .any(|f| f.title == "No symbols for 3 of the top 3 modules"));
}

#[test]
fn tracker_limits_and_short_windows_are_findings() {
    let flags =
        StreamFlags::RETURN_ADDRESSES | StreamFlags::DROPPED | StreamFlags::TRUNCATED_STACKS;
    let r = pattern(&evenly(50, 0, 10 * 60 * SECOND), 10 * 60 * SECOND, flags);
    let titles: Vec<&str> = r.summary.iter().map(|f| f.title.as_str()).collect();
    assert!(
        titles.contains(&"The tracker dropped allocations"),
        "{titles:?}"
    );
    assert!(titles.contains(&"Some stacks were cut"));
    assert!(titles.contains(&"The tracking window is too short to judge"));
    let cut = r
        .summary
        .iter()
        .find(|f| f.title == "Some stacks were cut")
        .unwrap();
    assert!(cut.description.contains("16 frames"));
    let long = pattern(&evenly(50, 0, HOUR), HOUR, 1);
    assert!(!long.summary.iter().any(|f| f.title.contains("too short")));
}

#[test]
fn a_big_module_that_is_not_leaking_is_explained() {
    // Everything in the first minutes: the top module is a cache.
    let r = pattern(&evenly(300, 0, 60 * SECOND), 2 * HOUR, 1);
    assert_eq!(r.verdict.status, VerdictStatus::NoLeakFound);
    assert!(r.verdict.modules.is_empty());
    assert!(!r.summary.iter().any(|f| f.severity == Severity::Error));
    assert!(r
        .summary
        .iter()
        .any(|f| f.title == "odbcvend.dll holds the most memory but does not look like a leak"));
}
