//! The verdict (docs/verdict.md): one test per status, ties, evidence that outranks
//! other evidence, and the rule that no finding contradicts the verdict.

use crate::helpers::{analyze_synth, leakdiag, read_json, stderr};
use crate::synth::{filetime, SynthDump, SynthModule, SECOND};
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::dump::stream::AllocatorKind;
use leakdiag::dump::writer::AllocationStreamBuilder;
use leakdiag::model::{DumpReport, FindingKind, VerdictStatus};

const HOUR: u64 = 3600 * SECOND;
const START: u64 = 1_700_000_000;

/// How one module's allocations are made.
#[derive(Clone, Copy)]
enum When {
    /// Spread evenly over the window: looks like a leak.
    Steadily,
    /// All in the first minute: a start-up cache.
    AtStart,
}

/// `n` modules `mNNN.dll`, each with its own allocations of `size` bytes.
fn modules(n: usize) -> Vec<SynthModule> {
    let names: &'static [&'static str] = Box::leak(
        (0..n)
            .map(|i| &*Box::leak(format!("C:\\app\\m{i:03}.dll").into_boxed_str()))
            .collect::<Vec<&'static str>>()
            .into_boxed_slice(),
    );
    let mut out = vec![SynthModule::new(
        "C:\\app\\app.exe",
        0x1_0000_0000,
        0x1_0000,
    )];
    for (i, name) in names.iter().enumerate() {
        out.push(SynthModule::new(
            name,
            0x2_0000_0000 + i as u64 * 0x10_0000,
            0x1_0000,
        ));
    }
    out
}

/// A dump at `hours` of tracking of a process whose module `i` holds `counts[i]`
/// allocations of 100 bytes, made as `when[i]` says.
fn dump(hours: u64, counts: &[u64], when: &[When]) -> Vec<u8> {
    let window = hours * HOUR;
    let mut b = AllocationStreamBuilder::new(filetime(START), filetime(START) + window);
    let mut address = 0x10_0000u64;
    for (i, (&n, &w)) in counts.iter().zip(when).enumerate() {
        let frame = 0x2_0000_0000 + i as u64 * 0x10_0000 + 0x100;
        for k in 0..n {
            let t = match w {
                When::Steadily => k * window / n.max(1),
                When::AtStart => k * 60 * SECOND / n.max(1),
            };
            b.allocate(
                address,
                100,
                t,
                AllocatorKind::Heap,
                &[frame, 0x1_0000_0100],
            );
            address += 128;
        }
    }
    SynthDump {
        modules: modules(counts.len()),
        stream: Some(b.build()),
        pid: Some(4711),
        process_create_time: Some(START as u32),
        dump_time: Some((START + hours * 3600) as u32),
        ..Default::default()
    }
    .build()
}

fn one(counts: &[u64], when: &[When]) -> DumpReport {
    analyze_synth(dump(2, counts, when), &AnalyzeOptions::default())
}

/// Analyses dumps as one run; returns the index and each dump's report.json.
fn run(dumps: &[Vec<u8>]) -> (serde_json::Value, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    for (i, d) in dumps.iter().enumerate() {
        std::fs::write(dir.path().join(format!("d{}.dmp", i + 1)), d).unwrap();
    }
    let o = leakdiag(dir.path(), &["analyze", ".", "-o", "out", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let index = read_json(&dir.path().join("out/index.json"));
    let reports = (1..=dumps.len())
        .map(|i| read_json(&dir.path().join(format!("out/d{i}/report.json"))))
        .collect();
    (index, reports)
}

fn named(r: &DumpReport) -> Vec<&str> {
    r.verdict.modules.iter().map(|m| m.name.as_str()).collect()
}

/// No finding of the summary contradicts the verdict.
pub fn consistent(r: &DumpReport) {
    let blamed: Vec<&str> = named(r);
    for f in &r.summary {
        match f.kind {
            FindingKind::Leak | FindingKind::PossibleLeak => {
                assert!(
                    blamed.contains(&f.module.as_deref().unwrap()),
                    "{} while the verdict names {blamed:?}",
                    f.title
                );
                let expected = if r.verdict.status == VerdictStatus::Leak {
                    FindingKind::Leak
                } else {
                    FindingKind::PossibleLeak
                };
                assert_eq!(f.kind, expected);
            }
            FindingKind::LargestNotLeaking => {
                assert_eq!(r.verdict.status, VerdictStatus::NoLeakFound);
            }
            FindingKind::SpreadGrowth => assert_eq!(r.verdict.status, VerdictStatus::Spread),
            _ => {}
        }
    }
    // Every module the verdict names has exactly one finding.
    for m in blamed {
        let n = r
            .summary
            .iter()
            .filter(|f| f.module.as_deref() == Some(m))
            .count();
        assert_eq!(n, 1, "{m}: {:#?}", r.summary);
    }
}

#[test]
fn possible_leak_one_dump_one_dominant_steady_module() {
    let r = one(&[900, 100], &[When::Steadily, When::AtStart]);
    assert_eq!(r.verdict.status, VerdictStatus::PossibleLeak);
    assert_eq!(named(&r), ["m000.dll"]);
    assert!(
        r.verdict.headline.starts_with("m000.dll probably leaks"),
        "{}",
        r.verdict.headline
    );
    consistent(&r);
}

#[test]
fn no_leak_found_when_the_big_module_is_a_cache() {
    let r = one(&[900, 100], &[When::AtStart, When::AtStart]);
    assert_eq!(r.verdict.status, VerdictStatus::NoLeakFound);
    assert!(named(&r).is_empty());
    assert!(r.summary.iter().any(
        |f| f.kind == FindingKind::LargestNotLeaking && f.module.as_deref() == Some("m000.dll")
    ));
    consistent(&r);
}

#[test]
fn spread_when_many_small_modules_each_look_leaked() {
    // 200 modules, each about 0.5% of the bytes, every one allocating steadily.
    let counts: Vec<u64> = (0..200).map(|i| 20 + (i % 3)).collect();
    let r = one(&counts, &[When::Steadily; 200]);
    assert_eq!(r.verdict.status, VerdictStatus::Spread, "{:#?}", r.verdict);
    assert!(named(&r).is_empty());
    // Nobody is told that one 0.5% module is "probably leaking".
    assert!(!r
        .summary
        .iter()
        .any(|f| matches!(f.kind, FindingKind::Leak | FindingKind::PossibleLeak)));
    assert!(r
        .summary
        .iter()
        .any(|f| f.kind == FindingKind::SpreadGrowth));
    consistent(&r);
}

#[test]
fn a_tie_names_both_modules() {
    let r = one(
        &[500, 500, 10],
        &[When::Steadily, When::Steadily, When::AtStart],
    );
    assert_eq!(r.verdict.status, VerdictStatus::PossibleLeak);
    assert_eq!(named(&r), ["m000.dll", "m001.dll"]);
    assert!(r
        .verdict
        .headline
        .starts_with("m000.dll and m001.dll probably leak"));
    consistent(&r);
}

#[test]
fn no_tracker_data_without_a_stream() {
    let bytes = SynthDump {
        modules: modules(1),
        ..Default::default()
    }
    .build();
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    assert_eq!(r.verdict.status, VerdictStatus::NoTrackerData);
    consistent(&r);
}

#[test]
fn leak_when_a_module_grows_in_every_interval_of_a_series() {
    // m000 grows 300 → 600 → 900; m001 is a cache that stays; m002 a tie of m000.
    let dumps: Vec<Vec<u8>> = (1..=3)
        .map(|h| {
            dump(
                h,
                &[300 * h, 400, 300 * h],
                &[When::AtStart, When::AtStart, When::Steadily],
            )
        })
        .collect();
    let (index, reports) = run(&dumps);
    for r in &reports {
        assert_eq!(r["verdict"]["status"], "leak");
        let names: Vec<&str> = r["verdict"]["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        // Growth outranks the dump's own timing: m000 allocates at start each time
        // (leak probability low), yet it grew in every interval.
        assert_eq!(names, ["m000.dll", "m002.dll"]);
        assert_eq!(r["verdict"]["confidence"], "high");
    }
    assert_eq!(index["verdict"]["status"], "leak");
    assert!(index["verdict"]["headline"]
        .as_str()
        .unwrap()
        .starts_with("m000.dll and m002.dll are leaking"));
    for input in index["inputs"].as_array().unwrap() {
        assert_eq!(input["verdict"], "leak");
    }
}

#[test]
fn a_series_that_shows_no_growth_overrules_the_leak_probability() {
    // m000 looks like a leak in each dump (steady times) but never grows.
    let dumps: Vec<Vec<u8>> = (1..=3)
        .map(|h| dump(h, &[900, 100], &[When::Steadily, When::AtStart]))
        .collect();
    let (index, reports) = run(&dumps);
    for r in &reports {
        assert_eq!(r["verdict"]["status"], "no_leak_found", "{}", r["verdict"]);
        assert!(r["verdict"]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "series_no_growth" && e["module"] == "m000.dll"));
    }
    assert_eq!(index["verdict"]["status"], "no_leak_found");
}

#[test]
fn growth_spread_over_many_modules_in_a_series_is_spread() {
    // Ten modules grow equally in every interval: none holds 20% of the growth.
    let dumps: Vec<Vec<u8>> = (1..=3)
        .map(|h| dump(h, &[50 * h; 10], &[When::Steadily; 10]))
        .collect();
    let (index, reports) = run(&dumps);
    for r in &reports {
        assert_eq!(r["verdict"]["status"], "spread", "{}", r["verdict"]);
        assert!(r["verdict"]["modules"].as_array().unwrap().is_empty());
    }
    assert_eq!(index["verdict"]["status"], "spread");
}

#[test]
fn a_dump_written_before_its_own_snapshot_is_a_warning() {
    // The stream's snapshot is 2 hours after START; the header says START + 1 h.
    let mut bytes = dump(2, &[10], &[When::Steadily]);
    let ok = analyze_synth(bytes.clone(), &AnalyzeOptions::default());
    assert!(
        !ok.warnings.iter().any(|w| w.contains("clocks")),
        "{:?}",
        ok.warnings
    );
    // MINIDUMP_HEADER.TimeDateStamp is at offset 20.
    bytes[20..24].copy_from_slice(&((START + 3600) as u32).to_le_bytes());
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("1h 00m 00s before the tracker's snapshot")
                && w.contains("clocks is wrong")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn tracking_that_began_by_attach_is_said() {
    let window = 2 * HOUR;
    let mut b = AllocationStreamBuilder::new(filetime(START), filetime(START) + window);
    b.metadata("tracking_began", "attach");
    b.allocate(0x1000, 100, 0, AllocatorKind::Heap, &[0x2_0000_0100]);
    let bytes = SynthDump {
        modules: modules(1),
        stream: Some(b.build()),
        ..Default::default()
    }
    .build();
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    assert!(r
        .summary
        .iter()
        .any(|f| f.kind == FindingKind::AttachedLate && f.description.contains("ldtrack attach")));
    // Launched under the tracker: nothing to say.
    let launched = one(&[10], &[When::Steadily]);
    assert!(!launched
        .summary
        .iter()
        .any(|f| f.kind == FindingKind::AttachedLate));
}
