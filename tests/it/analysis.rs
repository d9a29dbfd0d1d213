//! The analysis on the demo incident: attribution, ranking and totals.

use crate::helpers::leak_of;
use crate::synth::{demo_dump, demo_modules, filetime, frames, SynthDump, SECOND};
use leakdiag::analysis::attribution::ModuleFilter;
use leakdiag::analysis::scripts::leak::LeakOptions;
use leakdiag::analysis::{analyze_dump, AnalyzeOptions};
use leakdiag::dump::stream::AllocatorKind;
use leakdiag::dump::writer::AllocationStreamBuilder;
use leakdiag::model::DumpReport;
use leakdiag::model::{LeakAnalysis, ModuleLeak};

fn analyze_bytes(bytes: Vec<u8>, options: &AnalyzeOptions) -> DumpReport {
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    analyze_dump(f.path(), options).unwrap()
}

fn module<'a>(leak: &'a LeakAnalysis, name: &str) -> &'a ModuleLeak {
    leak.modules
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no module {name}"))
}

#[test]
fn demo_incident_is_charged_to_the_right_modules() {
    let r = analyze_bytes(demo_dump(1), &AnalyzeOptions::default());
    let leak = leak_of(&r);
    let names: Vec<&str> = leak.modules.iter().map(|m| m.name.as_str()).collect();
    // Ranked by bytes: the leak (2,400 buffers: 1,800 × 1,000 + 600 × 250), then the
    // requests in flight (30 × 16,384), then the cache.
    assert_eq!(names[0], "odbcvend.dll");
    assert_eq!(names[1], "httpmod.dll");
    assert_eq!(names[2], "orders.dll");
    let vend = module(leak, "odbcvend.dll");
    assert_eq!((vend.allocations, vend.bytes), (2400, 1_950_000));
    let http = module(leak, "httpmod.dll");
    assert_eq!((http.allocations, http.bytes), (30, 491_520));
    // JIT frames lie in no module: charged to "(unknown)".
    let unknown = module(leak, "(unknown)");
    assert_eq!((unknown.allocations, unknown.bytes), (12, 768));
    // A frame in an unloaded module is charged to it.
    assert_eq!(module(leak, "oldplugin.dll").bytes, 4096);
    // Pure plumbing: the innermost frame's module (the tracker itself).
    assert_eq!(module(leak, "ldtrack.dll").bytes, 48);
    // No stack captured.
    let none = module(leak, "(no stack)");
    assert_eq!((none.allocations, none.bytes), (5, 160));
    // System modules are never charged while a non-system frame exists.
    assert!(!names.contains(&"ntdll.dll") && !names.contains(&"ucrtbase.dll"));
}

#[test]
fn totals_add_up_everywhere() {
    let r = analyze_bytes(demo_dump(2), &AnalyzeOptions::default());
    let leak = leak_of(&r);
    let t = r.tracking.as_ref().unwrap();
    assert_eq!(
        (t.allocations, t.bytes),
        (leak.totals.allocations, leak.totals.bytes)
    );
    let sum = |f: fn(&ModuleLeak) -> (u64, u64)| {
        leak.modules
            .iter()
            .map(f)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    assert_eq!(
        sum(|m| (m.allocations, m.bytes)),
        (leak.totals.allocations, leak.totals.bytes)
    );
    for m in &leak.modules {
        let sizes = m
            .size_distribution
            .iter()
            .fold((0, 0), |a, b| (a.0 + b.allocations, a.1 + b.bytes));
        assert_eq!(sizes, (m.allocations, m.bytes), "{} sizes", m.name);
        let kinds = m
            .allocators
            .iter()
            .fold((0, 0), |a, b| (a.0 + b.allocations, a.1 + b.bytes));
        assert_eq!(kinds, (m.allocations, m.bytes), "{} allocators", m.name);
        let timeline = m
            .timeline
            .iter()
            .fold((0, 0), |a, b| (a.0 + b.allocations, a.1 + b.bytes));
        assert_eq!(timeline, (m.allocations, m.bytes), "{} timeline", m.name);
        let heaps = m.heaps.iter().fold(
            (m.heaps_omitted.allocations, m.heaps_omitted.bytes),
            |a, b| (a.0 + b.allocations, a.1 + b.bytes),
        );
        assert_eq!(heaps, (m.allocations, m.bytes), "{} heaps", m.name);
        if m.name != "(no stack)" {
            let funcs = m.functions.iter().fold(
                (m.functions_omitted.allocations, m.functions_omitted.bytes),
                |a, b| (a.0 + b.allocations, a.1 + b.bytes),
            );
            assert_eq!(funcs, (m.allocations, m.bytes), "{} functions", m.name);
            let stacks = m.stacks.iter().fold(
                (m.stacks_omitted.allocations, m.stacks_omitted.bytes),
                |a, b| (a.0 + b.allocations, a.1 + b.bytes),
            );
            assert_eq!(stacks, (m.allocations, m.bytes), "{} stacks", m.name);
        }
    }
}

#[test]
fn ranking_by_count_differs_from_ranking_by_bytes() {
    let r = analyze_bytes(demo_dump(1), &AnalyzeOptions::default());
    let leak = leak_of(&r);
    let by_count: Vec<&str> = leak
        .modules_by_count
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    // orders.dll's 200 cache entries outnumber httpmod.dll's 30 requests in flight,
    // though they hold fewer bytes.
    assert_eq!(
        &by_count[..3],
        &["odbcvend.dll", "orders.dll", "httpmod.dll"]
    );
}

#[test]
fn sample_stacks_are_the_heaviest_first_with_their_frames() {
    let r = analyze_bytes(demo_dump(1), &AnalyzeOptions::default());
    let vend = module(leak_of(&r), "odbcvend.dll");
    assert_eq!(vend.stack_count, 2);
    assert_eq!(vend.stacks.len(), 2);
    assert!(vend.stacks[0].bytes >= vend.stacks[1].bytes);
    assert_eq!(vend.stacks[0].bytes, 1_800_000);
    let frames = &vend.stacks[0].frames;
    assert_eq!(frames.len(), 8);
    assert_eq!(frames[0].module.as_deref(), Some("ldtrack.dll"));
    assert_eq!(frames[3].module.as_deref(), Some("odbcvend.dll"));
    assert_eq!(frames[3].offset.unwrap().0, 0x1366);
    assert!(frames[3].responsible && frames.iter().filter(|f| f.responsible).count() == 1);
    assert_eq!(vend.functions[0].name, "odbcvend.dll+0x1366");
    assert_eq!(
        vend.allocators.iter().map(|a| a.kind).collect::<Vec<_>>(),
        vec![AllocatorKind::CRuntime]
    );
}

#[test]
fn limits_on_stacks_and_functions_say_what_they_left_out() {
    let options = AnalyzeOptions {
        leak: LeakOptions {
            sample_stacks: 1,
            top_functions: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = analyze_bytes(demo_dump(1), &options);
    let vend = module(leak_of(&r), "odbcvend.dll");
    assert_eq!(vend.stacks.len(), 1);
    assert_eq!(
        (vend.stacks_omitted.count, vend.stacks_omitted.bytes),
        (1, 150_000)
    );
    assert!(vend.functions.is_empty());
    assert_eq!(
        (vend.functions_omitted.count, vend.functions_omitted.bytes),
        (1, 1_950_000)
    );
}

#[test]
fn extra_system_modules_move_the_charge_outward() {
    let options = AnalyzeOptions {
        leak: LeakOptions {
            system_modules: ModuleFilter::system_with(&["odbcvend.dll"]),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = analyze_bytes(demo_dump(1), &options);
    let leak = leak_of(&r);
    assert_eq!(leak.modules[0].name, "orders.dll");
    assert!(leak.modules.iter().all(|m| m.name != "odbcvend.dll"));
}

#[test]
fn allocator_modules_come_from_the_stream_metadata() {
    // Without the metadata line the tracker's own frame is charged.
    let mut b = AllocationStreamBuilder::new(filetime(0), filetime(60));
    b.allocate(
        0x10,
        100,
        SECOND,
        AllocatorKind::CRuntime,
        &[frames::LDTRACK_HOOK, frames::VEND_ROW_BUFFER],
    );
    let dump = |bytes| {
        SynthDump {
            modules: demo_modules(),
            stream: Some(bytes),
            ..Default::default()
        }
        .build()
    };
    let r = analyze_bytes(dump(b.build()), &AnalyzeOptions::default());
    assert_eq!(leak_of(&r).modules[0].name, "ldtrack.dll");
    b.metadata("allocator_modules", "LDTRACK.DLL");
    let r = analyze_bytes(dump(b.build()), &AnalyzeOptions::default());
    assert_eq!(leak_of(&r).modules[0].name, "odbcvend.dll");
}

#[test]
fn the_process_and_tracking_window_are_reported() {
    let r = analyze_bytes(demo_dump(3), &AnalyzeOptions::default());
    assert_eq!(r.process.pid, Some(4711));
    assert_eq!(r.process.arch.as_deref(), Some("amd64"));
    assert_eq!(r.process.dump_time.as_deref(), Some("2025-11-24T19:00:00Z"));
    assert_eq!(
        r.process.process_create_time.as_deref(),
        Some("2025-11-24T15:59:00Z")
    );
    assert!(r.process.image.as_deref().unwrap().ends_with("w3wp.exe"));
    let t = r.tracking.as_ref().unwrap();
    assert_eq!(t.start.as_deref(), Some("2025-11-24T16:00:00Z"));
    assert_eq!(t.duration_seconds, 10800.0);
    assert!(t.flags.return_addresses && !t.flags.dropped);
    assert_eq!(t.allocator_modules, vec!["ldtrack.dll"]);
    let modules: &leakdiag::model::Modules = r.modules().unwrap();
    let m = modules
        .modules
        .iter()
        .find(|m| m.name == "odbcvend.dll")
        .unwrap();
    assert_eq!(m.debug_file.as_deref(), Some("odbcvend.pdb"));
    assert_eq!(
        m.debug_id.as_deref(),
        Some("030303030303030303030303030303031")
    );
}
