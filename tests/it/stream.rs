//! The allocation stream read back from whole dumps: every field of the spec.

use crate::synth::{filetime, SynthDump, SynthModule, SECOND};
use leakdiag::addr::VirtAddr;
use leakdiag::dump::stream::{AllocationStream, AllocatorKind, StreamFlags, NO_STACK};
use leakdiag::dump::writer::{AllocationStreamBuilder, NewAllocation};
use leakdiag::dump::DumpFile;

fn dump_with(stream: Vec<u8>) -> tempfile::NamedTempFile {
    let bytes = SynthDump {
        modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
        stream: Some(stream),
        ..Default::default()
    }
    .build();
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn every_field_survives_a_dump() {
    let mut b = AllocationStreamBuilder::new(filetime(1_700_000_000), filetime(1_700_003_600));
    b.flags = StreamFlags::RETURN_ADDRESSES | StreamFlags::DROPPED | StreamFlags::TRUNCATED_STACKS;
    let s0 = b.add_stack(&[0x40_1000, 0x40_2000]);
    let s1 = b.add_stack(&[]);
    for (i, kind) in AllocatorKind::ALL.iter().enumerate() {
        b.add_allocation(NewAllocation {
            address: 0x1000 + i as u64 * 0x100,
            size: 10 + i as u64,
            time: i as u64 * SECOND,
            heap: 0xAA00 + i as u64,
            stack: if i % 2 == 0 { s0 } else { s1 },
            allocator: *kind,
        });
    }
    b.add_allocation(NewAllocation {
        address: 0x9000,
        size: 1,
        time: 0,
        heap: 0,
        stack: NO_STACK,
        allocator: AllocatorKind::Unknown,
    });
    b.metadata("tracker", "t 1.0")
        .metadata("allocator_modules", "ldtrack.dll,custom.dll")
        .metadata("hooks", "malloc,free")
        .metadata("max_depth", "16")
        .metadata("site", "web-01");
    let file = dump_with(b.build());
    let dump = DumpFile::open(file.path()).unwrap();
    let s = dump.allocation_stream().unwrap().expect("stream present");
    let h = s.header();
    assert_eq!(
        (h.version_major, h.version_minor, h.header_size),
        (1, 0, 96)
    );
    assert_eq!(h.tracking_start, filetime(1_700_000_000));
    assert_eq!(h.snapshot_time, filetime(1_700_003_600));
    assert!(s.flags().return_addresses() && s.flags().dropped() && s.flags().truncated_stacks());
    assert_eq!(
        (s.frame_count(), s.stack_count(), s.allocation_count()),
        (2, 2, AllocatorKind::ALL.len() + 1)
    );
    assert_eq!(
        s.stack(s1).unwrap().frame_count,
        0,
        "an empty stack is valid"
    );
    assert_eq!(
        s.stack_frames(s0).unwrap().collect::<Vec<_>>(),
        vec![VirtAddr(0x40_1000), VirtAddr(0x40_2000)]
    );
    assert!(s.stack_frames(2).is_none());
    let allocations: Vec<_> = s.allocations().collect();
    for (i, kind) in AllocatorKind::ALL.iter().enumerate() {
        let a = &allocations[i];
        assert_eq!(a.address, VirtAddr(0x1000 + i as u64 * 0x100));
        assert_eq!(a.size, 10 + i as u64);
        assert_eq!(a.time, i as u64 * SECOND);
        assert_eq!(a.heap, 0xAA00 + i as u64);
        assert_eq!(a.allocator(), *kind);
        assert_eq!(a.flags, 0);
    }
    assert_eq!(allocations[AllocatorKind::ALL.len()].stack, NO_STACK);
    assert_eq!(s.allocator_modules(), vec!["ldtrack.dll", "custom.dll"]);
    assert_eq!(
        s.metadata_value("site"),
        Some("web-01"),
        "unknown keys are kept"
    );
    assert_eq!(s.metadata().count(), 5);
}

#[test]
fn readable_from_the_minidump_crates_raw_stream() {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.allocate(0x10, 5, 0, AllocatorKind::Heap, &[0x40_1000]);
    let file = dump_with(b.build());
    let dump = minidump::Minidump::read_path(file.path()).unwrap();
    let raw = dump
        .get_raw_stream(leakdiag::dump::stream::ALLOCATION_STREAM_TYPE)
        .unwrap();
    let s = AllocationStream::parse(raw).unwrap();
    assert_eq!(s.allocation_count(), 1);
}

#[test]
fn later_minor_versions_and_larger_headers_are_accepted() {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.version_minor = 7;
    b.header_size = 136;
    b.allocate(0x10, 5, 0, AllocatorKind::Heap, &[0x40_1000]);
    let bytes = b.build();
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!((s.header().version_minor, s.header().header_size), (7, 136));
    assert_eq!(s.allocations().next().unwrap().size, 5);
}

#[test]
fn unknown_allocator_values_and_flag_bits_are_tolerated() {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.flags = 0xF0;
    b.allocate(0x10, 5, 0, AllocatorKind::Heap, &[0x40_1000]);
    let mut bytes = b.build();
    let first = 96 + 8 + 16; // header, one frame, one stack
    bytes[first + 36] = 200;
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!(
        s.allocations().next().unwrap().allocator(),
        AllocatorKind::Unknown
    );
    assert!(!s.flags().dropped());
}

#[test]
fn a_dump_without_the_stream_has_none() {
    let bytes = SynthDump {
        modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
        ..Default::default()
    }
    .build();
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    let dump = DumpFile::open(f.path()).unwrap();
    assert!(dump.allocation_stream().unwrap().is_none());
}

/// The worked example of docs/allocation-stream.md (§ 12): the writer produces the
/// bytes the document shows, and the reader reads them as it says.
#[test]
fn the_spec_example_is_what_the_writer_writes_and_the_reader_reads() {
    let doc =
        std::fs::read_to_string(crate::helpers::root().join("docs/allocation-stream.md")).unwrap();
    // The hex lines of the example: "0098  10 00 40 ...   comment".
    let shown: Vec<(usize, Vec<u8>)> = doc
        .lines()
        .filter_map(|l| {
            let (at, rest) = l.split_once("  ")?;
            let at = usize::from_str_radix(at, 16)
                .ok()
                .filter(|_| at.len() == 4)?;
            let bytes = rest
                .split("   ")
                .next()?
                .split(' ')
                .map(|b| u8::from_str_radix(b, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((at, bytes))
        })
        .collect();
    assert_eq!(shown.len(), 9, "the example's hex lines: {shown:?}");

    let mut b = AllocationStreamBuilder::new(filetime(1_705_320_000), filetime(1_705_323_600));
    b.flags = StreamFlags::RETURN_ADDRESSES;
    let (ldtrack, vendor, app) = (0x7FFB_1234_1A2B, 0x7FFB_5678_0F10, 0x7FF7_1234_0456);
    let s0 = b.add_stack(&[ldtrack, vendor]);
    let s1 = b.add_stack(&[app]);
    let heap = 0x1D2_3A40_0000;
    for (address, size, time, heap, stack, allocator) in [
        (
            0x1D2_3A40_0010,
            416,
            1200 * SECOND,
            heap,
            s0,
            AllocatorKind::CRuntime,
        ),
        (
            0x1D2_3A41_0000,
            4096,
            3000 * SECOND,
            0,
            s1,
            AllocatorKind::Virtual,
        ),
        (0x1D2_3A40_2000, 64, 0, heap, NO_STACK, AllocatorKind::Heap),
    ] {
        b.add_allocation(NewAllocation {
            address,
            size,
            time,
            heap,
            stack,
            allocator,
        });
    }
    b.metadata("tracker", "ldtrack 0.1")
        .metadata("allocator_modules", "ldtrack.dll")
        .metadata("max_depth", "62");
    let bytes = b.build();
    // 335 bytes; the document's stream has one byte of padding after the metadata.
    assert_eq!(bytes.len(), 335);
    for (at, line) in &shown {
        assert_eq!(&bytes[*at..*at + line.len()], &line[..], "at 0x{at:04x}");
    }

    let s = AllocationStream::parse(&bytes).unwrap();
    let h = s.header();
    assert_eq!(h.snapshot_time - h.tracking_start, 3600 * SECOND);
    assert_eq!(h.tracking_start, 133_497_936_000_000_000);
    assert_eq!(s.allocations().map(|a| a.size).sum::<u64>(), 4576);
    assert_eq!(s.metadata_text().len(), 63);
    assert_eq!(s.allocator_modules(), ["ldtrack.dll"]);
    let stack0: Vec<VirtAddr> = s.stack_frames(0).unwrap().collect();
    assert_eq!(stack0, [VirtAddr(ldtrack), VirtAddr(vendor)]);

    // A stack reaching past the frame table is refused (rule 7).
    let mut bad = bytes.clone();
    let stack1 = h.stacks.offset.0 as usize + 16;
    bad[stack1 + 8..stack1 + 12].copy_from_slice(&2u32.to_le_bytes());
    assert!(AllocationStream::parse(&bad).is_err());
}
