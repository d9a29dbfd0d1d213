//! report.json written in parallel (`report::json::write_report`) is byte for byte the
//! model's own serialization (`report::json::write`), on reports with every kind of
//! section, with more leak modules than one parallel window, and with none.

use crate::helpers::analyze_synth;
use crate::synth::{demo_dump, filetime, SynthDump, SynthModule};
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::dump::stream::AllocatorKind;
use leakdiag::dump::writer::AllocationStreamBuilder;
use leakdiag::model::DumpReport;
use leakdiag::report::json;

fn both(report: &DumpReport) -> (String, String) {
    let mut plain = Vec::new();
    json::write(&mut plain, report).unwrap();
    let mut parallel = Vec::new();
    json::write_report(&mut parallel, report).unwrap();
    (
        String::from_utf8(plain).unwrap(),
        String::from_utf8(parallel).unwrap(),
    )
}

/// A dump whose allocations lie in `n` modules (one stack each), with threads, handles
/// and memory information so that every script has something to say.
fn many_modules(n: u64) -> Vec<u8> {
    let base = |i: u64| 0x7ff6_0000_0000 + i * 0x10_0000;
    let modules = (0..n)
        .map(|i| {
            let path: &'static str = Box::leak(format!("C:\\app\\m{i:03}.dll").into_boxed_str());
            SynthModule::new(path, base(i), 0x8_0000)
        })
        .collect();
    let start = filetime(1_764_000_000);
    let mut b = AllocationStreamBuilder::new(start, start + 36_000_000_000);
    b.metadata("tracker", "json test \"quoted\" \u{7f}");
    let mut address = 0x1d0_0000_0000u64;
    for i in 0..n {
        // Every module a different count and size, so the ranking is total.
        for k in 0..=i {
            address += 0x100;
            let stack = [base(i) + 0x1000 + k % 3, base((i + 1) % n) + 0x2000];
            b.allocate(address, 16 + i, k * 1_000_000, AllocatorKind::Heap, &stack);
        }
    }
    b.allocate(address + 0x100, 8, 0, AllocatorKind::CRuntime, &[]);
    SynthDump {
        modules,
        stream: Some(b.build()),
        pid: Some(7),
        system_info: true,
        threads: vec![1, 2],
        handles: vec![Some("File"), None],
        memory_info: vec![(0x1d0_0000_0000, 0x10_0000, 0x1000, 4, 0x2_0000)],
        ..Default::default()
    }
    .build()
}

#[test]
fn report_json_in_parallel_is_the_same_bytes() {
    let options = AnalyzeOptions::default();
    for n in [1, 2, 63, 64, 65, 150] {
        let report = analyze_synth(many_modules(n), &options);
        let modules = report.leak().map_or(0, |l| l.modules.len());
        assert!(modules as u64 >= n.min(2), "{n}: {modules} modules");
        let (plain, parallel) = both(&report);
        assert_eq!(plain, parallel, "{n} modules");
    }
    let (plain, parallel) = both(&analyze_synth(demo_dump(3), &options));
    assert_eq!(plain, parallel, "the demo dump");
    // No allocation stream: the leak section is an error status.
    let bare = SynthDump {
        system_info: true,
        ..Default::default()
    };
    let (plain, parallel) = both(&analyze_synth(bare.build(), &options));
    assert_eq!(plain, parallel, "no stream");
}
