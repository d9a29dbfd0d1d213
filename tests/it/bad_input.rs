//! Every bad input of the spec: one clear error naming the file and the field.

use crate::helpers::leak_of;
use crate::synth::{demo_dump, SynthDump, SynthModule};
use leakdiag::analysis::{analyze_dump, AnalyzeOptions};
use leakdiag::dump::stream::{field, AllocatorKind};
use leakdiag::dump::writer::AllocationStreamBuilder;
use std::path::PathBuf;

fn small_stream() -> Vec<u8> {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.allocate(0x10, 5, 0, AllocatorKind::Heap, &[0x40_1000, 0x40_2000]);
    b.allocate(0x20, 7, 1, AllocatorKind::Heap, &[0x40_1000]);
    b.metadata("tracker", "t");
    b.build()
}

fn write_dump(dir: &tempfile::TempDir, name: &str, stream: Option<Vec<u8>>) -> PathBuf {
    let bytes = SynthDump {
        modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
        stream,
        ..Default::default()
    }
    .build();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Analyses a dump whose stream was changed by `edit` and returns the error message.
fn error_for(edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut stream = small_stream();
    edit(&mut stream);
    let path = write_dump(&dir, "bad.dmp", Some(stream));
    let err = analyze_dump(&path, &AnalyzeOptions::default()).expect_err("must be refused");
    let message = err.to_string();
    assert!(message.contains("bad.dmp"), "names the file: {message}");
    message
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_magic() {
    let m = error_for(|b| b[0] = b'X');
    assert!(m.contains("magic") && m.contains("0x4b41454c"), "{m}");
}

#[test]
fn unknown_major_version() {
    let m = error_for(|b| b[field::VERSION_MAJOR] = 2);
    assert!(m.contains("version_major is 2"), "{m}");
}

#[test]
fn header_size_out_of_range() {
    let m = error_for(|b| b[field::HEADER_SIZE] = 40);
    assert!(m.contains("header_size is 40"), "{m}");
    let m = error_for(|b| {
        b[field::HEADER_SIZE..field::HEADER_SIZE + 4].copy_from_slice(&u32::MAX.to_le_bytes())
    });
    assert!(m.contains("header_size is 4294967295"), "{m}");
}

#[test]
fn stream_shorter_than_header() {
    let m = error_for(|b| b.truncate(50));
    assert!(m.contains("shorter than the 96-byte header"), "{m}");
}

#[test]
fn section_outside_the_stream() {
    let m = error_for(|b| set_u64(b, field::ALLOCATIONS_OFFSET, 1 << 40));
    assert!(
        m.contains("allocations_offset = 1099511627776") && m.contains("outside the stream"),
        "{m}"
    );
    let m = error_for(|b| set_u64(b, field::FRAME_COUNT, 1000));
    assert!(m.contains("frame_count = 1000"), "{m}");
    let m = error_for(|b| set_u64(b, field::METADATA_SIZE, 5000));
    assert!(m.contains("metadata_size = 5000"), "{m}");
}

#[test]
fn counts_that_overflow() {
    let m = error_for(|b| set_u64(b, field::ALLOCATION_COUNT, u64::MAX));
    assert!(
        m.contains("allocation_count") && m.contains("overflows"),
        "{m}"
    );
    let m = error_for(|b| set_u64(b, field::STACK_COUNT, u64::MAX / 8));
    assert!(m.contains("stack_count") && m.contains("overflows"), "{m}");
}

#[test]
fn misaligned_section() {
    let m = error_for(|b| set_u64(b, field::STACKS_OFFSET, 97));
    assert!(
        m.contains("stacks_offset = 97 is not 8-byte aligned"),
        "{m}"
    );
}

#[test]
fn stack_frames_outside_the_frame_table() {
    // The first stack record sits right after the header and 3 frames.
    let m = error_for(|b| set_u64(b, 96 + 3 * 8, 2));
    assert!(
        m.contains("stack 0") && m.contains("first_frame = 2"),
        "{m}"
    );
}

#[test]
fn metadata_not_utf8() {
    let m = error_for(|b| {
        let last = b.len() - 2;
        b[last] = 0xFF;
    });
    assert!(m.contains("metadata is not UTF-8"), "{m}");
}

#[test]
fn not_a_minidump() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.dmp");
    std::fs::write(
        &path,
        "This is not a minidump but a text file with enough bytes.",
    )
    .unwrap();
    let m = analyze_dump(&path, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("notes.dmp") && m.contains("not a minidump") && m.contains("MDMP"),
        "{m}"
    );

    std::fs::write(&path, b"MDMP").unwrap();
    let m = analyze_dump(&path, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("shorter than the 32-byte minidump header"),
        "{m}"
    );

    std::fs::write(&path, b"").unwrap();
    let m = analyze_dump(&path, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(m.contains("not a minidump"), "{m}");
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn truncated_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let full = demo_dump(1);
    // minidump-synth writes the stream directory last: cutting the file anywhere
    // loses it.
    for (name, len) in [
        ("cut-half.dmp", full.len() / 2),
        ("cut-end.dmp", full.len() - 4),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &full[..len]).unwrap();
        let m = analyze_dump(&path, &AnalyzeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(m.contains(name) && m.contains("stream directory"), "{m}");
    }
    // A writer that put the directory first and was cut in the allocation stream:
    // the stream's directory entry reaches past the end of the file.
    let mut cut = full.clone();
    let (count, dir_rva) = (u32_at(&cut, 8) as usize, u32_at(&cut, 12) as usize);
    let entry = (0..count)
        .map(|i| dir_rva + i * 12)
        .find(|&e| u32_at(&cut, e) == leakdiag::dump::stream::ALLOCATION_STREAM_TYPE)
        .unwrap();
    cut[entry + 4..entry + 8].copy_from_slice(&(full.len() as u32).to_le_bytes());
    let path = dir.path().join("cut-stream.dmp");
    std::fs::write(&path, &cut).unwrap();
    let m = analyze_dump(&path, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("cut-stream.dmp") && m.contains("points outside the file"),
        "{m}"
    );
}

#[test]
fn missing_file() {
    let m = analyze_dump(
        &PathBuf::from("/nonexistent/x.dmp"),
        &AnalyzeOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        m.contains("/nonexistent/x.dmp") && m.contains("cannot read"),
        "{m}"
    );
}

#[test]
fn a_dump_without_tracker_data_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_dump(&dir, "plain.dmp", None);
    let r = analyze_dump(&path, &AnalyzeOptions::default()).unwrap();
    assert!(r.tracking.is_none() && r.leak().is_none());
    assert!(r.warnings[0].contains("no tracker data"));
    let modules: &leakdiag::model::Modules = r.modules().unwrap();
    assert_eq!(
        modules.modules.len(),
        1,
        "module information is still shown"
    );
}

#[test]
fn out_of_range_stack_indices_are_kept_and_counted() {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.allocate(0x10, 5, 0, AllocatorKind::Heap, &[0x40_1000]);
    b.add_allocation(leakdiag::dump::writer::NewAllocation {
        address: 0x20,
        size: 700,
        time: 0,
        heap: 0,
        stack: 99,
        allocator: AllocatorKind::Heap,
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write_dump(&dir, "odd.dmp", Some(b.build()));
    let r = analyze_dump(&path, &AnalyzeOptions::default()).unwrap();
    let leak = leak_of(&r);
    assert_eq!((leak.totals.allocations, leak.totals.bytes), (2, 705));
    assert_eq!(
        (
            leak.invalid_stack_records.allocations,
            leak.invalid_stack_records.bytes
        ),
        (1, 700)
    );
    let no_stack = leak
        .modules
        .iter()
        .find(|m| m.name == "(no stack)")
        .unwrap();
    assert_eq!(no_stack.bytes, 700);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("1 allocation records (700 bytes) have a stack index outside")));
}

#[test]
fn sizes_that_overflow_the_total() {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.allocate(0x10, u64::MAX, 0, AllocatorKind::Heap, &[0x40_1000]);
    b.allocate(0x20, 2, 0, AllocatorKind::Heap, &[0x40_1000]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_dump(&dir, "huge.dmp", Some(b.build()));
    let m = analyze_dump(&path, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("huge.dmp") && m.contains("more than 2^64 bytes"),
        "{m}"
    );
}
