//! The allocation stream's module-strings section (format 1.2): written by
//! leakdiag's writer and read back, refused field by field when broken (without
//! refusing the stream), and used by the modules script and the verdict to name a
//! module's vendor without `--images`, escaped in every output.

use crate::helpers::{analyze_synth, leakdiag, read_json, stderr};
use crate::synth::{SynthDump, SynthModule};
use leakdiag::addr::VirtAddr;
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::dump::module_strings::{
    module_strings, parse_section, ModuleStringsError, ModuleStringsStatus,
    MODULE_STRINGS_OFFSET_FIELD, MODULE_STRINGS_SIZE_FIELD,
};
use leakdiag::dump::stream::{field, AllocationStream, AllocatorKind};
use leakdiag::dump::writer::{AllocationStreamBuilder, NewModuleStrings};
use leakdiag::model::VersionSource;

const BASE: u64 = 0x7ffa_4000_0000;
const APP: u64 = 0x40_0000;

fn record(base: u64, status: ModuleStringsStatus, strings: [&str; 5]) -> NewModuleStrings {
    NewModuleStrings {
        base,
        image_size: 0x8000,
        status,
        strings: strings.map(str::to_owned),
    }
}

fn vendor_record(company: &str) -> NewModuleStrings {
    record(
        BASE,
        ModuleStringsStatus::Read,
        [
            company,
            "Contoso ODBC Connect",
            "Contoso ODBC Driver",
            "7.3.1.42",
            "7.3",
        ],
    )
}

/// A leak in the vendor DLL (100 blocks over an hour), with these module records.
fn leaky_stream(records: &[NewModuleStrings]) -> AllocationStreamBuilder {
    let window = 3600 * 10_000_000u64;
    let mut b = AllocationStreamBuilder::new(0, window);
    for i in 0..100 {
        b.allocate(
            0x1000 + i * 64,
            500,
            i * window / 100,
            AllocatorKind::CRuntime,
            &[BASE + 0x1010],
        );
    }
    b.metadata("tracker", "test");
    for r in records {
        b.module_strings(r.clone());
    }
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn section_error(bytes: &[u8]) -> ModuleStringsError {
    let s = AllocationStream::parse(bytes).expect("a broken section does not refuse the stream");
    assert_eq!(s.allocation_count(), 100, "the tables are still read");
    module_strings(&s).expect_err("the section is refused")
}

#[test]
fn module_strings_round_trip_through_the_writer() {
    let mut b = leaky_stream(&[
        vendor_record("Contoso Data Access Ltd."),
        record(APP, ModuleStringsStatus::NoResource, ["", "", "", "", ""]),
        record(
            0x7ff0_0000_0000,
            ModuleStringsStatus::Read,
            ["Ünïcødé GmbH ☃", "", "", "", "1.0"],
        ),
    ]);
    b.flags = 1;
    let bytes = b.build();
    let s = AllocationStream::parse(&bytes).unwrap();
    let h = s.header();
    assert_eq!(
        (h.version_major, h.version_minor, h.header_size),
        (1, 2, 112)
    );
    assert_eq!(s.allocation_count(), 100);
    assert_eq!(s.metadata_value("tracker"), Some("test"));
    let m = module_strings(&s).unwrap().expect("the section");
    assert_eq!(m.records.len(), 3);
    let v = m.find(VirtAddr(BASE)).unwrap();
    assert_eq!(v.status, ModuleStringsStatus::Read);
    assert_eq!(v.image_size, 0x8000);
    let vs = v.version_strings();
    assert_eq!(vs.company_name.as_deref(), Some("Contoso Data Access Ltd."));
    assert_eq!(vs.product_name.as_deref(), Some("Contoso ODBC Connect"));
    assert_eq!(vs.file_description.as_deref(), Some("Contoso ODBC Driver"));
    assert_eq!(vs.file_version.as_deref(), Some("7.3.1.42"));
    assert_eq!(vs.product_version.as_deref(), Some("7.3"));
    let app = m.find(VirtAddr(APP)).unwrap();
    assert_eq!(app.status, ModuleStringsStatus::NoResource);
    assert_eq!(app.version_strings(), Default::default());
    let u = &m.records[2];
    assert_eq!(u.strings, ["Ünïcødé GmbH ☃", "", "", "", "1.0"]);
    // The section starts 8-aligned after the metadata and ends the stream.
    let offset = u64_at(&bytes, MODULE_STRINGS_OFFSET_FIELD);
    let size = u64_at(&bytes, MODULE_STRINGS_SIZE_FIELD);
    assert_eq!(offset % 8, 0);
    assert_eq!(offset + size, bytes.len() as u64);
    // An empty section is a section with no records.
    let mut e = AllocationStreamBuilder::new(0, 1);
    e.empty_module_strings();
    let bytes = e.build();
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!(module_strings(&s).unwrap().unwrap().records.len(), 0);
}

#[test]
fn streams_1_0_and_1_1_and_a_zero_offset_have_no_module_strings() {
    for minor in [0, 1] {
        let mut b = leaky_stream(&[]);
        b.version_minor = minor;
        let bytes = b.build();
        let s = AllocationStream::parse(&bytes).unwrap();
        assert_eq!(module_strings(&s), Ok(None), "1.{minor}");
    }
    // A 1.1 writer's larger header whose bytes after 96 are zero.
    let mut b = leaky_stream(&[]);
    b.header_size = 128;
    let bytes = b.build();
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!(module_strings(&s), Ok(None));
    // A 1.2 stream with offset 0 has none, whatever the size says.
    let mut bytes = leaky_stream(&[vendor_record("C")]).build();
    put_u64(&mut bytes, MODULE_STRINGS_OFFSET_FIELD, 0);
    put_u64(&mut bytes, MODULE_STRINGS_SIZE_FIELD, u64::MAX);
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!(module_strings(&s), Ok(None));
    // A header of 96 bytes never reads past them, even on a short stream.
    assert_eq!(parse_section(&bytes[..100], 96), Ok(None));
}

#[test]
fn a_1_2_stream_reads_like_any_1_x_stream_without_the_section() {
    // What an older reader sees: the tables through the header's offsets; the extra
    // header fields and the section after the metadata are skipped.
    let bytes = leaky_stream(&[vendor_record("C")]).build();
    let s = AllocationStream::parse(&bytes).unwrap();
    assert_eq!(
        u64_at(&bytes, field::FRAMES_OFFSET),
        112,
        "the frames follow the 112-byte header"
    );
    assert_eq!(s.allocations().map(|a| a.size).sum::<u64>(), 50_000);
    assert_eq!(s.stack_frames(0).unwrap().count(), 1);
}

#[test]
fn broken_sections_are_refused_naming_the_field() {
    let good = leaky_stream(&[vendor_record("Contoso"), vendor_record("Two")]).build();
    let offset = u64_at(&good, MODULE_STRINGS_OFFSET_FIELD) as usize;
    let size = u64_at(&good, MODULE_STRINGS_SIZE_FIELD);

    let mut b = good.clone();
    put_u64(&mut b, MODULE_STRINGS_OFFSET_FIELD, offset as u64 + 4);
    let e = section_error(&b);
    assert_eq!(
        e,
        ModuleStringsError::Misaligned {
            offset: offset as u64 + 4
        }
    );
    assert!(e.to_string().contains("module_strings_offset"), "{e}");

    let mut b = good.clone();
    put_u64(&mut b, MODULE_STRINGS_SIZE_FIELD, size + 8);
    let e = section_error(&b);
    assert!(matches!(e, ModuleStringsError::OutOfBounds { .. }), "{e:?}");
    assert!(e.to_string().contains("module_strings_size"), "{e}");

    let mut b = good.clone();
    put_u64(&mut b, MODULE_STRINGS_SIZE_FIELD, u64::MAX);
    let e = section_error(&b);
    assert!(
        e.to_string()
            .contains(&format!("ends at {}", offset as u128 + u64::MAX as u128)),
        "no overflow: {e}"
    );

    let mut b = good.clone();
    put_u64(&mut b, MODULE_STRINGS_SIZE_FIELD, 4);
    let e = section_error(&b);
    assert_eq!(e, ModuleStringsError::TooSmall { size: 4 });

    // A count that would ask for gigabytes is refused before any allocation.
    let mut b = good.clone();
    b[offset..offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = section_error(&b);
    assert_eq!(
        e,
        ModuleStringsError::CountTooLarge {
            count: u32::MAX,
            size
        }
    );
    assert!(e.to_string().contains("module_count = 4294967295"), "{e}");

    // Over-long strings, from the writer (which does not enforce the limit).
    let long = "A".repeat(257);
    let mut r = vendor_record("ok");
    r.strings[3] = long.clone();
    let b = leaky_stream(&[vendor_record("first"), r]).build();
    let e = section_error(&b);
    assert_eq!(
        e,
        ModuleStringsError::StringTooLong {
            index: 1,
            field: "file_version",
            length: 257
        }
    );
    assert!(
        e.to_string()
            .contains("module record 1: file_version length = 257 bytes exceeds the limit of 256"),
        "{e}"
    );
    // 256 bytes is the limit, and allowed.
    let mut r = vendor_record(&"B".repeat(256));
    r.strings[4] = "é".repeat(128);
    let b = leaky_stream(&[r]).build();
    let s = AllocationStream::parse(&b).unwrap();
    assert_eq!(
        module_strings(&s).unwrap().unwrap().records[0].strings[0].len(),
        256
    );

    // A length that reaches past the section (the last record's strings).
    let mut b = good.clone();
    let first_len: usize = [
        "Contoso",
        "Contoso ODBC Connect",
        "Contoso ODBC Driver",
        "7.3.1.42",
        "7.3",
    ]
    .iter()
    .map(|s| s.len())
    .sum();
    let last = offset + 8 + (24 + first_len).div_ceil(8) * 8;
    b[last + 12..last + 14].copy_from_slice(&200u16.to_le_bytes());
    let e = section_error(&b);
    assert!(
        matches!(e, ModuleStringsError::RecordOutOfBounds { index: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("module record 1"), "{e}");

    // A count one too many: the missing record's header is out of bounds.
    let mut b = good.clone();
    b[offset..offset + 4].copy_from_slice(&3u32.to_le_bytes());
    let e = section_error(&b);
    assert!(
        matches!(e, ModuleStringsError::RecordOutOfBounds { index: 2, .. }),
        "{e:?}"
    );

    // Invalid UTF-8 in record 0's product_name (its first byte).
    let mut b = good.clone();
    b[offset + 8 + 24 + "Contoso".len()] = 0xff;
    let e = section_error(&b);
    assert_eq!(
        e,
        ModuleStringsError::NotUtf8 {
            index: 0,
            field: "product_name",
            at: 0
        }
    );
}

fn dump(stream: Vec<u8>) -> Vec<u8> {
    SynthDump {
        modules: vec![
            SynthModule::new("C:\\app\\app.exe", APP, 0x1_0000),
            SynthModule::new("C:\\Program Files\\Vendor\\odbcvend.dll", BASE, 0x8000),
        ],
        stream: Some(stream),
        ..Default::default()
    }
    .build()
}

#[test]
fn the_report_names_the_vendor_from_the_tracker_without_images() {
    let r = analyze_synth(
        dump(leaky_stream(&[vendor_record("Contoso Data Access Ltd.")]).build()),
        &AnalyzeOptions::default(),
    );
    let modules = r.modules().unwrap();
    let e = modules
        .modules
        .iter()
        .find(|m| m.name == "odbcvend.dll")
        .unwrap();
    assert_eq!(e.version_source, Some(VersionSource::Tracker));
    let v = e.version_strings.as_ref().unwrap();
    assert_eq!(v.company_name.as_deref(), Some("Contoso Data Access Ltd."));
    assert_eq!(v.product_name.as_deref(), Some("Contoso ODBC Connect"));
    assert_eq!(v.file_version.as_deref(), Some("7.3.1.42"));
    assert_eq!(e.image_file, None);
    assert_eq!(modules.with_version_strings, 1);
    let app = modules
        .modules
        .iter()
        .find(|m| m.name == "app.exe")
        .unwrap();
    assert!(app.version_strings.is_none());
    assert_eq!(
        app.version_note.as_deref(),
        Some("the tracker's module strings have no record for this module (it was loaded after the tracker's snapshot)")
    );
    assert_eq!(
        r.verdict.modules[0].company.as_deref(),
        Some("Contoso Data Access Ltd.")
    );
    assert!(
        r.verdict
            .headline
            .contains("odbcvend.dll (Contoso Data Access Ltd.)"),
        "{}",
        r.verdict.headline
    );
}

/// The verdict's reason for an unknown vendor, for the vendor DLL's stream.
fn company_unknown(stream: Vec<u8>) -> String {
    let r = analyze_synth(dump(stream), &AnalyzeOptions::default());
    assert_eq!(r.verdict.modules[0].name, "odbcvend.dll");
    assert_eq!(r.verdict.modules[0].company, None);
    r.verdict.modules[0].company_unknown.clone().unwrap()
}

#[test]
fn vendor_unknown_says_precisely_why() {
    const TAIL: &str =
        ", and no version resource was found in the dump's memory or an --images folder";
    let none = ["", "", "", "", ""];
    assert_eq!(
        company_unknown(
            leaky_stream(&[record(BASE, ModuleStringsStatus::NoResource, none)]).build()
        ),
        format!("vendor unknown: the tracker found no version resource in the module's file{TAIL}")
    );
    assert_eq!(
        company_unknown(
            leaky_stream(&[record(BASE, ModuleStringsStatus::NotRead, none)]).build()
        ),
        format!("vendor unknown: the tracker could not read the module's version resource (its file could not be read){TAIL}")
    );
    assert_eq!(
        company_unknown(leaky_stream(&[record(APP, ModuleStringsStatus::Read, ["App Co", "", "", "", ""])]).build()),
        format!("vendor unknown: the tracker's module strings have no record for this module (it was loaded after the tracker's snapshot){TAIL}")
    );
    assert_eq!(
        company_unknown(leaky_stream(&[]).build()),
        format!("vendor unknown: the tracker recorded no module strings (allocation stream 1.0; module strings came with 1.2){TAIL}")
    );
    let mut broken = leaky_stream(&[vendor_record("C")]).build();
    let offset = u64_at(&broken, MODULE_STRINGS_OFFSET_FIELD) as usize;
    broken[offset..offset + 4].copy_from_slice(&1000u32.to_le_bytes());
    let why = company_unknown(broken);
    assert!(
        why.starts_with("vendor unknown: the tracker's module strings were left out, the section is malformed: module_count = 1000 records"),
        "{why}"
    );
    assert_eq!(
        company_unknown(
            leaky_stream(&[record(
                BASE,
                ModuleStringsStatus::Read,
                ["", "Product", "", "1.0", ""]
            )])
            .build()
        ),
        "vendor unknown: its version resource, as the tracker read it in the process, names no company"
    );
}

#[test]
fn hostile_module_strings_are_escaped_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let company = "<script>alert(1)</script> & [x](javascript:y) | `z`";
    let mut r = vendor_record(company);
    r.strings[1] = "<img src=x onerror=alert(2)>".into();
    std::fs::write(dir.path().join("h.dmp"), dump(leaky_stream(&[r]).build())).unwrap();
    let o = leakdiag(
        dir.path(),
        &["analyze", "h.dmp", "-o", "out", "--vendor", "odbcvend.dll"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = read_json(&dir.path().join("out/h/report.json"));
    assert_eq!(json["verdict"]["modules"][0]["company"], company);
    for page in ["out/h/report.html", "out/vendor-odbcvend.dll/report.html"] {
        let html = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(!html.contains("<script>alert"), "{page}");
        assert!(!html.contains("<img src=x"), "{page}");
        // askama writes numeric character references.
        assert!(html.contains("&#60;script&#62;alert(1)"), "{page}");
    }
    let md = std::fs::read_to_string(dir.path().join("out/h/summary.md")).unwrap();
    assert!(!md.contains("<script>"), "{md}");
    assert!(!md.contains("[x](javascript"), "{md}");
    assert!(
        md.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; \\[x\\](javascript:y) \\| \\`z\\`"
        ),
        "{md}"
    );
}
