//! Stream format 1.3: the tracker declares its own memory (docs/allocation-stream.md
//! § 14). Written by leakdiag's writer, read back by the reader and `inspect`; broken
//! sections are refused naming the field (§ 9).

use crate::helpers::{leakdiag, stderr, stdout};
use crate::synth::{SynthDump, SynthModule};
use leakdiag::addr::VirtAddr;
use leakdiag::dump::stream::{
    field, AllocationStream, AllocatorKind, StreamError, TrackerRegion, TrackerRegionKind,
    TRACKER_REGIONS_HEADER_SIZE, TRACKER_REGION_SIZE,
};
use leakdiag::dump::writer::AllocationStreamBuilder;

fn base_stream() -> AllocationStreamBuilder {
    let mut b = AllocationStreamBuilder::new(1, 2);
    b.allocate(0x1_0000, 100, 0, AllocatorKind::CRuntime, &[0x40_1000]);
    b.allocate(0x2_0000, 200, 0, AllocatorKind::Heap, &[0x40_2000]);
    b.metadata("tracker", "test");
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn regions_stream() -> Vec<u8> {
    let mut b = base_stream();
    b.tracker_region(0x7000_0000, 0x20_0000, TrackerRegionKind::AllocationTable)
        .tracker_region(0x7100_0000, 0x1000, TrackerRegionKind::StackTable)
        .tracker_region(0x7100_0000, 0x2000, TrackerRegionKind::StackTable) // overlaps: fine
        .tracker_region(0x7200_0000, 0x4000, TrackerRegionKind::SnapshotBuffer)
        .tracker_region(0x7300_0000, 0x1000, TrackerRegionKind::ModuleStrings)
        .tracker_region(0x1_8000_0000, 0x8_1000, TrackerRegionKind::TrackerImage)
        .tracker_region_raw(0x7400_0000, 0, 99); // unknown kind: other; empty: fine
    b.build()
}

#[test]
fn a_1_3_stream_declares_its_regions() {
    let bytes = regions_stream();
    let s = AllocationStream::parse(&bytes).unwrap();
    let h = s.header();
    assert_eq!(
        (h.version_minor, h.header_size),
        (3, TRACKER_REGIONS_HEADER_SIZE as u32)
    );
    let loc = h.tracker_regions.expect("declared");
    assert_eq!(loc.count, 7);
    assert_eq!(loc.offset.0 % 8, 0);
    assert_eq!(
        loc.offset.0,
        u64_at(&bytes, field::TRACKER_REGIONS_OFFSET),
        "the header field locates the section"
    );
    let regions = s.tracker_regions().unwrap();
    assert_eq!(s.tracker_region_count(), Some(7));
    assert_eq!(
        regions[0],
        TrackerRegion {
            base: VirtAddr(0x7000_0000),
            size: 0x20_0000,
            kind: TrackerRegionKind::AllocationTable
        }
    );
    assert_eq!(regions[5].kind, TrackerRegionKind::TrackerImage);
    assert_eq!(regions[5].end(), 0x1_8008_1000);
    assert!(regions[5].contains(0x1_8008_0fff) && !regions[5].contains(0x1_8008_1000));
    assert_eq!(
        regions[6].kind,
        TrackerRegionKind::Other,
        "unknown kinds read as 0"
    );
    // The rest of the stream reads as always.
    assert_eq!(s.allocation_count(), 2);
    assert_eq!(s.metadata_value("tracker"), Some("test"));
    for (i, kind) in [0u32, 1, 2, 3, 4, 5].into_iter().enumerate() {
        assert_eq!(TrackerRegionKind::from_u32(kind).to_u32(), kind, "{i}");
    }
}

#[test]
fn a_count_of_zero_declares_no_tracker_memory() {
    let mut b = base_stream();
    b.empty_tracker_regions();
    let bytes = b.build();
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!(s.header().version_minor, 3);
    assert_eq!(s.tracker_regions(), Some(vec![]));
    // Its offset is not checked at all (§ 9 rule 5.2), like any empty section.
    let mut odd = bytes.clone();
    put_u64(&mut odd, field::TRACKER_REGIONS_OFFSET, 3);
    assert_eq!(
        AllocationStream::parse(&odd).unwrap().tracker_regions(),
        Some(vec![])
    );
}

#[test]
fn older_streams_and_short_headers_declare_nothing() {
    // 1.0 (96 bytes) and 1.2 with module strings (112 bytes).
    let plain = base_stream().build();
    assert_eq!(
        AllocationStream::parse(&plain).unwrap().tracker_regions(),
        None
    );
    let mut b = base_stream();
    b.empty_module_strings();
    let v12 = b.build();
    let s = AllocationStream::parse(&v12).unwrap();
    assert_eq!(s.header().version_minor, 2);
    assert_eq!(
        (s.tracker_regions(), s.header().tracker_regions),
        (None, None)
    );
    // A 1.3 stream whose header is shorter than 128 bytes: no fields, nothing declared.
    let mut b = base_stream();
    b.version_minor = 3;
    b.header_size = 112;
    let short = b.build();
    assert_eq!(
        AllocationStream::parse(&short).unwrap().tracker_regions(),
        None
    );
    // A 1.2 stream with a 128-byte header: bytes 112..128 mean nothing yet.
    let mut b = base_stream();
    b.version_minor = 2;
    b.header_size = 128;
    let mut v12_long = b.build();
    put_u64(&mut v12_long, field::TRACKER_REGION_COUNT, u64::MAX);
    assert_eq!(
        AllocationStream::parse(&v12_long)
            .unwrap()
            .tracker_regions(),
        None
    );
}

#[test]
fn a_count_too_large_for_the_stream_is_refused_before_anything_is_read() {
    let mut bytes = regions_stream();
    let off = u64_at(&bytes, field::TRACKER_REGIONS_OFFSET);
    // One record more than the stream holds.
    put_u64(&mut bytes, field::TRACKER_REGION_COUNT, 8);
    match AllocationStream::parse(&bytes).unwrap_err() {
        StreamError::SectionOutOfBounds {
            offset_field,
            count_field,
            offset,
            count,
            ..
        } => {
            assert_eq!(
                (offset_field, count_field, offset, count),
                ("tracker_regions_offset", "tracker_region_count", off, 8)
            );
        }
        e => panic!("{e}"),
    }
    // A count whose byte size overflows 64 bits.
    put_u64(&mut bytes, field::TRACKER_REGION_COUNT, u64::MAX / 2);
    let e = AllocationStream::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            e,
            StreamError::CountOverflow {
                count_field: "tracker_region_count",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("tracker_region_count"), "{e}");
}

#[test]
fn base_plus_size_overflowing_is_refused_naming_the_record() {
    let mut b = base_stream();
    b.tracker_region(0x1000, 0x1000, TrackerRegionKind::AllocationTable)
        .tracker_region_raw(0xFFFF_FFFF_FFFF_0000, 0x1_0000, 1);
    let bytes = b.build();
    let e = AllocationStream::parse(&bytes).unwrap_err();
    assert_eq!(
        e,
        StreamError::RegionOverflow {
            index: 1,
            base: 0xFFFF_FFFF_FFFF_0000,
            size: 0x1_0000
        }
    );
    let text = e.to_string();
    assert!(
        text.contains("tracker region 1") && text.contains("base = 0xffffffffffff0000"),
        "{text}"
    );
    // Ending exactly at 2^64 − 1 is fine.
    let mut b = base_stream();
    b.tracker_region_raw(0xFFFF_FFFF_FFFF_0000, 0xFFFF, 1);
    assert!(AllocationStream::parse(&b.build()).is_ok());
}

#[test]
fn a_misaligned_or_misplaced_section_is_refused_naming_the_field() {
    let bytes = regions_stream();
    let off = u64_at(&bytes, field::TRACKER_REGIONS_OFFSET);
    let mut misaligned = bytes.clone();
    put_u64(&mut misaligned, field::TRACKER_REGIONS_OFFSET, off - 4);
    assert_eq!(
        AllocationStream::parse(&misaligned).unwrap_err(),
        StreamError::Misaligned {
            offset_field: "tracker_regions_offset",
            offset: off - 4
        }
    );
    // Inside the header.
    let mut in_header = bytes.clone();
    put_u64(&mut in_header, field::TRACKER_REGIONS_OFFSET, 8);
    let e = AllocationStream::parse(&in_header).unwrap_err();
    assert!(
        matches!(
            e,
            StreamError::SectionOverlapsHeader {
                offset_field: "tracker_regions_offset",
                offset: 8,
                ..
            }
        ),
        "{e}"
    );
    // Over the allocation table.
    let allocations = u64_at(&bytes, field::ALLOCATIONS_OFFSET);
    let mut overlap = bytes.clone();
    put_u64(&mut overlap, field::TRACKER_REGIONS_OFFSET, allocations);
    let e = AllocationStream::parse(&overlap).unwrap_err();
    assert!(
        matches!(e, StreamError::SectionsOverlap { .. })
            && e.to_string().contains("tracker_regions_offset"),
        "{e}"
    );
    // Cut short: the last record does not fit.
    let cut = &bytes[..bytes.len() - TRACKER_REGION_SIZE / 2];
    assert!(matches!(
        AllocationStream::parse(cut).unwrap_err(),
        StreamError::SectionOutOfBounds {
            offset_field: "tracker_regions_offset",
            ..
        }
    ));
}

#[test]
fn inspect_lists_the_declared_regions_or_says_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let dump = |stream: Vec<u8>| {
        SynthDump {
            modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
            stream: Some(stream),
            ..Default::default()
        }
        .build()
    };
    std::fs::write(dir.path().join("r.dmp"), dump(regions_stream())).unwrap();
    std::fs::write(dir.path().join("old.dmp"), dump(base_stream().build())).unwrap();
    let o = leakdiag(dir.path(), &["inspect", "r.dmp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "version            1.3",
        "tracker_regions    offset",
        "count 7",
        "tracker regions:   7 declared",
        "0x0000000070000000 .. 0x0000000070200000      2097152 bytes  allocation table",
        "tracker image",
        "snapshot buffer",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let o = leakdiag(dir.path(), &["inspect", "old.dmp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("tracker_regions    not declared"),
        "{}",
        stdout(&o)
    );
    // A broken section: inspect prints the error and exits 1.
    let mut b = base_stream();
    b.tracker_region_raw(u64::MAX, 2, 1);
    std::fs::write(dir.path().join("bad.dmp"), dump(b.build())).unwrap();
    let o = leakdiag(dir.path(), &["inspect", "bad.dmp"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("tracker region 0"), "{}", stdout(&o));
}
