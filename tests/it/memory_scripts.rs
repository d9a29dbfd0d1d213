//! The virtual_memory, process and handles scripts on synthetic dumps with and
//! without their streams.

use crate::helpers::{analyze_synth, findings_of};
use crate::synth::{mem, SynthDump, SynthModule};
use leakdiag::analysis::scripts::handles::count_types;
use leakdiag::analysis::scripts::process::parse_vm_counters;
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::model::Handles;
use leakdiag::model::ProcessSection;
use leakdiag::model::Severity;
use leakdiag::model::VirtualMemory;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

fn dump_with(f: impl FnOnce(&mut SynthDump)) -> Vec<u8> {
    let mut d = SynthDump {
        modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
        system_info: true,
        ..Default::default()
    };
    f(&mut d);
    d.build()
}

fn vm(bytes: Vec<u8>) -> (VirtualMemory, Vec<(Severity, String)>) {
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    let v: &VirtualMemory = r.virtual_memory().expect("the section");
    let f = findings_of(&r, "virtual_memory")
        .into_iter()
        .map(|f| (f.severity, f.title.clone()))
        .collect();
    (v.clone(), f)
}

#[test]
fn virtual_memory_totals_of_a_64bit_process() {
    let (v, findings) = vm(dump_with(|d| {
        d.memory_info = vec![
            (0x0, 0x1_0000, mem::FREE, 1, 0),
            (0x1_0000, 0x2_0000, mem::COMMIT, 0x20, mem::IMAGE),
            (0x3_0000, 0x1_0000, mem::COMMIT, 4, mem::PRIVATE),
            (0x4_0000, 0x4_0000, mem::RESERVE, 0, mem::PRIVATE),
            (0x8_0000, 0x8000, mem::COMMIT, 2, mem::MAPPED),
            (0x8_8000, 4 * GIB, mem::FREE, 1, 0),
        ]
    }));
    assert!(v.present && v.message.is_none());
    assert_eq!(v.pointer_bits, Some(64));
    assert_eq!(v.regions, 6);
    let free = 0x1_0000 + 4 * GIB;
    assert_eq!((v.free.bytes, v.free.regions), (free, 2));
    assert_eq!((v.reserved.bytes, v.reserved.regions), (0x4_0000, 1));
    assert_eq!((v.committed.bytes, v.committed.regions), (0x3_8000, 3));
    assert_eq!(v.total, free + 0x4_0000 + 0x3_8000);
    let largest = v.largest_free.unwrap();
    assert_eq!((largest.address.0, largest.size), (0x8_8000, 4 * GIB));
    let frag = v.fragmentation.unwrap();
    assert!((frag - 65536.0 / free as f64).abs() < 1e-12);
    assert!((v.fragmentation_percent.unwrap() - frag * 100.0).abs() < 1e-9);
    let t = v.committed_by_type;
    assert_eq!(
        (t.image, t.mapped, t.private, t.other),
        (0x2_0000, 0x8000, 0x1_0000, 0)
    );
    let space = v.address_space.unwrap();
    assert_eq!((space.size, space.basis), (128 * 1024 * GIB, "user_64bit"));
    let share = v.free.percent.unwrap();
    assert!((share - free as f64 * 100.0 / (128.0 * 1024.0 * GIB as f64)).abs() < 1e-12);
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_32bit_process_with_a_small_largest_free_block_is_an_error() {
    let (v, findings) = vm(dump_with(|d| {
        d.processor_architecture = Some(0); // x86
        d.memory_info = vec![
            (0x1000_0000, 48 * MIB, mem::FREE, 1, 0),
            (0x2000_0000, 40 * MIB, mem::FREE, 1, 0),
            (0x3000_0000, 32 * MIB, mem::FREE, 1, 0),
            (0x4000_0000, GIB, mem::COMMIT, 4, mem::PRIVATE),
        ]
    }));
    assert_eq!(v.pointer_bits, Some(32));
    let space = v.address_space.as_ref().unwrap();
    assert_eq!((space.size, space.basis), (2 * GIB, "user_32bit_2gib"));
    assert_eq!(v.free.bytes, 120 * MIB);
    assert_eq!(v.largest_free.unwrap().size, 48 * MIB);
    assert!((v.fragmentation.unwrap() - 0.6).abs() < 1e-12);
    assert!((v.committed.percent.unwrap() - 50.0).abs() < 1e-12);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].0, Severity::Error);
    assert!(findings[0].1.contains("largest free block"), "{findings:?}");
}

#[test]
fn a_fragmented_32bit_large_address_aware_process_gets_two_warnings() {
    let (v, findings) = vm(dump_with(|d| {
        d.processor_architecture = Some(0);
        d.memory_info = (0..9u64)
            .map(|i| (0x1000_0000 + i * 0x1000_0000, 50 * MIB, mem::FREE, 1, 0))
            .chain([(0xc000_0000, 100 * MIB, mem::FREE, 1, 0)])
            .collect();
    }));
    let space = v.address_space.as_ref().unwrap();
    assert_eq!((space.size, space.basis), (4 * GIB, "user_32bit_4gib"));
    assert_eq!(v.largest_free.unwrap().address.0, 0xc000_0000);
    assert!((v.fragmentation.unwrap() - 450.0 / 550.0).abs() < 1e-12);
    let severities: Vec<Severity> = findings.iter().map(|f| f.0).collect();
    assert_eq!(
        severities,
        vec![Severity::Warning, Severity::Warning],
        "{findings:?}"
    );
    assert!(findings[0].1.contains("fragmented"));
    assert!(findings[1].1.contains("32-bit"));
}

/// Issue 17: the tracker records the dump type it asked for, so a dump without a
/// memory-info list says whether the tracker asked for one.
#[test]
fn a_missing_memory_info_list_says_whether_the_tracker_asked_for_it() {
    use leakdiag::dump::writer::AllocationStreamBuilder;
    let message = |dump_type: Option<&str>| {
        let mut b = AllocationStreamBuilder::new(0, 10_000_000);
        if let Some(t) = dump_type {
            b.metadata("dump_type", t);
        }
        let (v, _) = vm(dump_with(|d| d.stream = Some(b.build())));
        assert!(!v.present);
        v.message.unwrap()
    };
    let asked = message(Some("0x00001924"));
    assert!(asked.contains("no memory-info list"), "{asked}");
    assert!(
        asked.contains("although the tracker asked for it (dump type 0x00001924 includes MiniDumpWithFullMemoryInfo): the dump writer ignored the request (Wine's dbghelp does)"),
        "{asked}"
    );
    let not_asked = message(Some("0x00000124"));
    assert!(
        not_asked.contains("the tracker did not ask for it (dump type 0x00000124 lacks MiniDumpWithFullMemoryInfo)"),
        "{not_asked}"
    );
    assert!(message(None).contains("write it with MiniDumpWithFullMemoryInfo"));
}

/// The section's numbers on a tracker dump (stream with its dump type) that does
/// carry a memory-info list: exact totals, largest free block and committed by type.
#[test]
fn a_tracker_dump_with_a_memory_info_list_gives_exact_numbers() {
    use leakdiag::dump::writer::AllocationStreamBuilder;
    let mut b = AllocationStreamBuilder::new(0, 10_000_000);
    b.metadata("dump_type", "0x00001924");
    let (v, findings) = vm(dump_with(|d| {
        d.stream = Some(b.build());
        d.memory_info = vec![
            (0x1_0000, 0x1_0000, mem::FREE, 1, 0),
            (0x2_0000, 0x3_0000, mem::COMMIT, 0x20, mem::IMAGE),
            (0x5_0000, 0x2000, mem::COMMIT, 4, mem::PRIVATE),
            (0x5_2000, 0xe000, mem::RESERVE, 0, mem::PRIVATE),
            (0x6_0000, 0x10_0000, mem::RESERVE, 0, mem::MAPPED),
            (0x16_0000, 0x4000, mem::COMMIT, 2, mem::MAPPED),
            (0x16_4000, 0x2000_0000, mem::FREE, 1, 0),
            (0x2016_4000, 0x1000, mem::COMMIT, 4, mem::PRIVATE),
        ]
    }));
    assert!(v.present && v.message.is_none());
    assert_eq!((v.free.bytes, v.free.regions), (0x1_0000 + 0x2000_0000, 2));
    assert_eq!(
        (v.reserved.bytes, v.reserved.regions),
        (0xe000 + 0x10_0000, 2)
    );
    assert_eq!(
        (v.committed.bytes, v.committed.regions),
        (0x3_0000 + 0x2000 + 0x4000 + 0x1000, 4)
    );
    let largest = v.largest_free.unwrap();
    assert_eq!((largest.address.0, largest.size), (0x16_4000, 0x2000_0000));
    let t = v.committed_by_type;
    assert_eq!(
        (t.image, t.mapped, t.private, t.other),
        (0x3_0000, 0x4000, 0x3000, 0)
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_dump_without_a_memory_info_list_says_so() {
    let (v, findings) = vm(dump_with(|_| {}));
    assert!(!v.present);
    assert!(v.message.unwrap().contains("no memory-info list"));
    assert!(v.largest_free.is_none() && findings.is_empty());
}

/// A revision-2 counters stream with every flag set; the n-th 64-bit counter
/// (from offset 8) is (n + 1) MiB.
fn counters_v2(flags: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(2u16.to_le_bytes());
    b.extend(flags.to_le_bytes());
    b.extend(1234u32.to_le_bytes());
    for n in 0..18u64 {
        b.extend(((n + 1) * MIB).to_le_bytes());
    }
    assert_eq!(b.len(), 152);
    b
}

#[test]
fn process_section_has_times_threads_and_counters() {
    let bytes = dump_with(|d| {
        d.pid = Some(4711);
        d.process_create_time = Some(1_764_000_000);
        d.dump_time = Some(1_764_003_723);
        d.threads = vec![10, 11, 12];
        d.vm_counters = Some(counters_v2(0x1f));
    });
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    let p: &ProcessSection = r.process_section().unwrap();
    assert_eq!(p.pid, Some(4711));
    assert_eq!(p.create_time.as_deref(), Some("2025-11-24T16:00:00Z"));
    assert_eq!(p.dump_time.as_deref(), Some("2025-11-24T17:02:03Z"));
    assert_eq!(p.uptime_seconds, Some(3723));
    assert_eq!(
        (p.user_time_seconds, p.kernel_time_seconds),
        (Some(10), Some(5))
    );
    assert_eq!(p.threads, Some(3));
    assert!(p.image.as_deref().unwrap().ends_with("app.exe"));
    assert_eq!(p.command_line, None);
    let c = p.vm_counters.as_ref().unwrap();
    assert_eq!(
        (c.revision, c.flags, c.page_fault_count),
        (2, 0x1f, Some(1234))
    );
    assert_eq!(c.peak_working_set_size, Some(MIB));
    assert_eq!(c.working_set_size, Some(2 * MIB));
    assert_eq!(c.pagefile_usage, Some(7 * MIB));
    assert_eq!(c.virtual_size, Some(10 * MIB));
    assert_eq!(c.private_usage, Some(11 * MIB));
    assert_eq!(c.private_working_set_size, Some(12 * MIB));
    assert_eq!(c.job_total_commit_limit, Some(18 * MIB));
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    let f = findings_of(&r, "process");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Information);
    assert!(f[0].description.contains("11,534,336 bytes"));
}

#[test]
fn vm_counter_revisions_flags_and_truncation() {
    let mut v1 = vec![0u8; 80];
    v1[0] = 1;
    v1[72..80].copy_from_slice(&(5 * MIB).to_le_bytes());
    v1[16..24].copy_from_slice(&(3 * MIB).to_le_bytes());
    let c = parse_vm_counters(&v1).unwrap();
    assert_eq!(
        (c.private_usage, c.working_set_size, c.virtual_size),
        (Some(5 * MIB), Some(3 * MIB), None)
    );
    assert_eq!(parse_vm_counters(&v1[..79]), None);
    let basic_only = parse_vm_counters(&counters_v2(0x1)).unwrap();
    assert_eq!(
        (basic_only.working_set_size, basic_only.private_usage),
        (Some(2 * MIB), None)
    );
    assert_eq!(parse_vm_counters(&counters_v2(0x1f)[..151]), None);
    let mut unknown = counters_v2(0x1f);
    unknown[0] = 3;
    assert_eq!(parse_vm_counters(&unknown), None);
    assert_eq!(parse_vm_counters(&[]), None);
}

#[test]
fn process_section_without_the_streams_says_what_is_missing() {
    let r = analyze_synth(dump_with(|_| {}), &AnalyzeOptions::default());
    let p: &ProcessSection = r.process_section().unwrap();
    assert_eq!((p.pid, p.uptime_seconds, p.threads), (None, None, None));
    assert!(p.vm_counters.is_none());
    assert_eq!(p.notes.len(), 3, "{:?}", p.notes);
    assert!(findings_of(&r, "process").is_empty());
    // A truncated counters stream is reported, not an error.
    let r = analyze_synth(
        dump_with(|d| d.vm_counters = Some(counters_v2(0x1f)[..100].to_vec())),
        &AnalyzeOptions::default(),
    );
    let p: &ProcessSection = r.process_section().unwrap();
    assert!(p.vm_counters.is_none());
    assert!(p.notes.iter().any(|n| n.contains("truncated")));
}

#[test]
fn handles_are_counted_by_type() {
    let bytes = dump_with(|d| {
        d.handles = vec![
            Some("File"),
            Some("File"),
            Some("Event"),
            Some("File"),
            Some("Key"),
            None,
            Some("Event"),
        ]
    });
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    let h: &Handles = r.handles().unwrap();
    assert!(h.present);
    assert_eq!(h.total, 7);
    let types: Vec<(&str, u64)> = h
        .types
        .iter()
        .map(|t| (t.type_name.as_str(), t.count))
        .collect();
    assert_eq!(
        types,
        vec![("File", 3), ("Event", 2), ("(no type)", 1), ("Key", 1)]
    );
    assert!(findings_of(&r, "handles").is_empty());
}

#[test]
fn a_dump_without_handle_data_says_so() {
    let r = analyze_synth(dump_with(|_| {}), &AnalyzeOptions::default());
    let h: &Handles = r.handles().unwrap();
    assert!(!h.present && h.total == 0 && h.types.is_empty());
    assert!(h.message.as_deref().unwrap().contains("no handle data"));
}

#[test]
fn many_handles_are_a_probable_leak_and_the_table_is_capped() {
    use leakdiag::analysis::scripts::handles::findings;
    use leakdiag::report::sections::handles::render;
    let names: Vec<String> = (0..25).map(|i| format!("Type{i:02}")).collect();
    let below = count_types((0..9_999).map(|i| Some(names[i % 25].as_str())));
    assert!(findings(&below).is_empty());
    let h = count_types((0..10_000).map(|i| Some(names[i % 25].as_str())));
    assert_eq!((h.total, h.types.len()), (10_000, 25));
    let f = findings(&h);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].title.contains("10,000 open handles"));
    assert!(!f[0].recommendation.is_empty());
    let mut html = String::new();
    render(&h, &mut html).unwrap();
    let doc = scraper::Html::parse_fragment(&html);
    let rows = scraper::Selector::parse("table tbody tr").unwrap();
    assert_eq!(doc.select(&rows).count(), 20);
    assert!(html.contains("5 more types not shown"));
}

#[test]
fn sections_render_charts_and_notes() {
    use leakdiag::report::sections::{process, virtual_memory};
    let bytes = dump_with(|d| {
        d.memory_info = vec![
            (0x0, 0x1_0000, mem::FREE, 1, 0),
            (0x1_0000, 0x2_0000, mem::COMMIT, 0x20, mem::IMAGE),
        ]
    });
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    let v: &VirtualMemory = r.virtual_memory().unwrap();
    let mut html = String::new();
    virtual_memory::render(v, &mut html).unwrap();
    let doc = scraper::Html::parse_fragment(&html);
    let charts = scraper::Selector::parse("#virtual-memory-charts svg").unwrap();
    assert_eq!(doc.select(&charts).count(), 2);
    assert!(html.contains("131,072 bytes"));
    let p: &ProcessSection = r.process_section().unwrap();
    let mut html = String::new();
    process::render(p, &mut html).unwrap();
    assert!(html.contains("not recorded in the dump"));
    assert!(html.contains("no process VM counters"));
}
