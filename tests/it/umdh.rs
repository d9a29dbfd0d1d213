//! UMDH logs in, the same reports out: generated snapshot and comparison logs
//! (tests/it/umdh_gen.rs follows docs/umdh.md) analysed with exact per-module
//! truth, a three-snapshot series, UTF-16 and ANSI text, and the bad inputs.

use crate::helpers::read_json;
use crate::symbols_common::fixtures;
use crate::umdh_gen::*;
use leakdiag::analysis::{analyze_input, AnalyzeOptions};
use leakdiag::batch::{run, RunOptions};
use leakdiag::model::{DumpReport, FindingKind, TrackingSource, VerdictStatus};
use leakdiag::symbols::{SymbolOptions, SymbolPathEntry, Symbolizer};
use leakdiag::umdh::{detect, LogKind};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub(crate) fn analyze(path: &Path) -> DumpReport {
    analyze_input(path, &AnalyzeOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The leak section's modules as the truth's shape.
fn modules_of(r: &DumpReport) -> Truth {
    r.leak()
        .expect("leak section")
        .modules
        .iter()
        .map(|m| (m.name.clone(), (m.allocations, m.bytes)))
        .collect()
}

/// The leak section's entry of module `name`.
pub(crate) fn leak_module<'a>(r: &'a DumpReport, name: &str) -> &'a leakdiag::model::ModuleLeak {
    let leak = r.leak().expect("the leak section");
    leak.modules.iter().find(|m| m.name == name).expect(name)
}

/// Checks that one of the report's warnings holds `needle`.
pub(crate) fn assert_warned(r: &DumpReport, needle: &str) {
    assert!(
        r.warnings.iter().any(|w| w.contains(needle)),
        "no warning with {needle:?} in {:?}",
        r.warnings
    );
}

pub(crate) fn check_snapshot(path: &Path, truth: &Truth) -> DumpReport {
    assert_eq!(detect(path).unwrap(), Some(LogKind::Snapshot));
    let r = analyze(path);
    assert_eq!(&modules_of(&r), truth, "{}", path.display());
    let t = r.tracking.as_ref().expect("tracking info");
    assert_eq!(t.source, TrackingSource::UmdhSnapshot);
    let (n, bytes) = truth.values().fold((0, 0), |(a, b), (n, s)| (a + n, b + s));
    // The overhead column is shown in the metadata, never added to the totals.
    assert_eq!((t.allocations, t.bytes), (n, bytes));
    assert!(t.metadata.iter().any(|m| m.key == "overhead_bytes"
        && m.value
            .as_deref()
            .is_some_and(|v| v.contains("not in the totals"))));
    // No allocation times: no leak probability anywhere, and the report says so.
    let leak = r.leak().unwrap();
    assert!(leak.modules.iter().all(|m| m.leak_probability.is_none()));
    assert!(leak
        .modules
        .iter()
        .flat_map(|m| &m.stacks)
        .all(|s| s.leak_probability.is_none()));
    assert!(r
        .summary
        .iter()
        .any(|f| f.kind == FindingKind::NoAllocationTimes));
    assert!(!r.summary.iter().any(|f| f.kind == FindingKind::ShortWindow));
    assert_eq!(r.process.pid, Some(4242));
    assert_eq!(r.process.image.as_deref(), Some("C:\\App\\app.exe"));
    // The other scripts say why they did not run.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["sections"]["process"]["status"], "skipped");
    r
}

#[test]
fn snapshot_64_and_32_bit_give_exact_module_totals() {
    let dir = tempfile::tempdir().unwrap();
    for bits64 in [true, false] {
        let (spec, truth) = scenario(bits64, 1, 10);
        let p = write(
            dir.path(),
            &format!("snap{bits64}.txt"),
            snapshot_text(&spec),
        );
        let r = check_snapshot(&p, &truth);
        assert_eq!(
            r.process.arch.as_deref(),
            Some(if bits64 { "64-bit" } else { "32-bit" })
        );
        // The stack printed already resolved is shown as given.
        let vendor = leak_module(&r, "vendor.dll");
        assert!(
            vendor
                .functions
                .iter()
                .any(|f| f.name == "vendor.dll!CVendorCache::Grow"),
            "{:?}",
            vendor.functions
        );
        // A single snapshot cannot show a leak; the largest module is explained.
        assert_eq!(r.verdict.status, VerdictStatus::NoLeakFound);
        assert!(r
            .verdict
            .evidence
            .iter()
            .any(|e| e.text.contains("not judged")));
    }
}

#[test]
fn utf16_and_ansi_logs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, truth) = scenario(true, 0, 0);
    spec.machine = "BÜRO-PC".into();
    let text = snapshot_text(&spec);
    let le = write(dir.path(), "le.txt", utf16le(&text));
    let be = write(dir.path(), "be.log", utf16be(&text));
    check_snapshot(&le, &truth);
    check_snapshot(&be, &truth);
    // The same text in Windows-1252: read, with one warning naming the line.
    let ansi: Vec<u8> = text
        .chars()
        .map(|c| if c == 'Ü' { 0xDC } else { c as u8 })
        .collect();
    let p = write(dir.path(), "ansi.txt", ansi);
    let r = check_snapshot(&p, &truth);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("ansi.txt:3:") && w.contains("ANSI")),
        "{:?}",
        r.warnings
    );
    let machine = r
        .tracking
        .unwrap()
        .metadata
        .into_iter()
        .find(|m| m.key == "machine");
    assert_eq!(machine.unwrap().value.as_deref(), Some("BÜRO-PC"));
}

fn report_json(out: &Path, dir: &str) -> Value {
    read_json(&out.join(dir).join("report.json"))
}

#[test]
fn three_snapshots_of_one_pid_are_a_series_with_a_leak() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("later")).unwrap();
    // Out of name order on purpose: the series is ordered by Logtime.
    for (n, name) in [(2, "a.txt"), (0, "b.log"), (1, "later/c.txt")] {
        let (spec, _) = scenario(true, n, 400);
        write(&logs, name, snapshot_text(&spec));
    }
    // Another process's snapshot is its own series; a text file that is not UMDH
    // is not an input.
    let (mut other, _) = scenario(true, 0, 0);
    other.pid = 77;
    write(&logs, "other.txt", snapshot_text(&other));
    write(&logs, "notes.txt", "remember to take snapshots\n");
    let out = dir.path().join("report");
    let index = run(
        std::slice::from_ref(&logs),
        &out,
        &AnalyzeOptions::default(),
        &RunOptions {
            vendors: vec!["leaky.dll".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((index.ok, index.failed), (4, 0));
    assert!(index.inputs.iter().all(|e| e.file_name != "notes.txt"));
    let series = index
        .series
        .iter()
        .find(|s| s.dumps.len() == 3)
        .expect("a series of three snapshots");
    let order: Vec<&str> = series.dumps.iter().map(|d| d.file_name.as_str()).collect();
    assert_eq!(order, ["b.log", "c.txt", "a.txt"]);
    assert!(series.identity.contains("4242"), "{}", series.identity);
    assert_eq!(index.series.len(), 2);
    assert_eq!(index.verdict.status, VerdictStatus::Leak);
    assert_eq!(index.verdict.modules[0].name, "leaky.dll");
    let last = report_json(&out, "a");
    assert_eq!(last["verdict"]["status"], "leak");
    assert_eq!(last["tracking"]["source"], "umdh_snapshot");
    let vendor = read_json(&out.join("vendor-leaky.dll").join("report.json"));
    // Every snapshot that holds leaky.dll, the other process's included.
    assert_eq!(vendor["dumps"].as_array().unwrap().len(), 4);
    assert!(out.join("a").join("report.html").is_file());
    assert!(out.join("a").join("summary.md").is_file());
    let html = std::fs::read_to_string(out.join("a").join("report.html")).unwrap();
    assert!(html.contains("leaky.dll"));
}

#[test]
fn comparison_logs_in_hex_and_decimal_report_growth() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, growth) = comparison_scenario();
    for (decimal, new_total) in [(false, true), (true, false), (false, false)] {
        let p = write(
            dir.path(),
            &format!("cmp-{decimal}-{new_total}.txt"),
            comparison_text(&entries, decimal, new_total),
        );
        assert_eq!(detect(&p).unwrap(), Some(LogKind::Comparison));
        let r = analyze(&p);
        let g = r.umdh_growth().expect("growth section");
        assert_eq!(g.decimal, decimal);
        let got: std::collections::BTreeMap<String, i128> = g
            .modules
            .iter()
            .map(|m| (m.name.clone(), i128::from(m.totals.growth_bytes)))
            .collect();
        assert_eq!(got, growth);
        assert_eq!(g.modules[0].name, "leaky");
        assert_eq!(
            g.stacks[0].function.as_deref(),
            Some("leaky!CRowBuffer::Alloc")
        );
        let responsible = g.stacks[0].frames.iter().find(|f| f.responsible).unwrap();
        assert_eq!(
            responsible.file.as_deref(),
            Some("d:\\src\\leaky\\rowbuf.cpp")
        );
        assert_eq!(responsible.line, Some(42));
        assert!(g.functions.iter().any(|f| f.name == "app!operator new"));
        let total = g.total_line.expect("total line");
        assert_eq!(i128::from(total.requested), growth.values().sum::<i128>());
        assert_eq!(total.overhead.is_some(), new_total);
        // Growth is not outstanding memory: no leak section, no tracking totals.
        assert!(r.leak().is_none() && r.tracking.is_none());
        assert_eq!(r.verdict.status, VerdictStatus::PossibleLeak);
        assert_eq!(r.verdict.modules[0].name, "leaky");
        let mut html = String::new();
        leakdiag::report::sections::render(r.section_data().next().unwrap(), &mut html).unwrap();
        assert!(html.contains("leaky!CRowBuffer::Alloc"));
    }
}

#[test]
fn symbols_resolve_by_name_unverified_unless_images_verify() {
    let image = fixtures().join("odbcvend.dll");
    let bytes = std::fs::read(&image).unwrap();
    let size = u64::from(
        leakdiag::pe::ImageBytes::file(&bytes)
            .parse()
            .unwrap()
            .size_of_image(),
    );
    let symbolizer = || {
        Arc::new(Symbolizer::new(SymbolOptions {
            search_path: vec![SymbolPathEntry::Folder(fixtures())],
            ..Default::default()
        }))
    };
    let s = symbolizer();
    let id = crate::symbols_common::vendor_module();
    let m = s.load(&id, None);
    let (start, _, _) = m.functions().into_iter().next().expect("a function");
    let base = 0x1_8000_0000u64;
    let mut spec = SnapshotSpec::new(
        9,
        "2026-03-05 10:00",
        vec![
            GenModule::new(
                "C:\\Windows\\SYSTEM32\\ntdll.dll",
                0x7FFB_F000_0000,
                0x1F_0000,
            ),
            GenModule::new("C:\\Vendor\\odbcvend.dll", base, size),
        ],
    );
    let st = spec.stack(vec![
        GenFrame::Address(0x7FFB_F000_1A20),
        GenFrame::Address(base + u64::from(start) + 1),
    ]);
    spec.heaps = vec![(
        0x150000,
        (0..5)
            .map(|i| GenAlloc {
                size: 64,
                overhead: 16,
                address: 0x2000_0000 + i * 0x100,
                stack: st,
            })
            .collect(),
    )];
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "snap.txt", snapshot_text(&spec));
    for (images, status) in [
        (vec![], "loaded (unverified)"),
        (vec![fixtures()], "loaded"),
    ] {
        let options = AnalyzeOptions {
            symbolizer: symbolizer(),
            images,
            ..Default::default()
        };
        let r = analyze_input(&p, &options).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        let rows = json["sections"]["leak"]["symbols"].as_array().unwrap();
        let row = rows.iter().find(|r| r["module"] == "odbcvend.dll").unwrap();
        assert_eq!(row["status"], status, "{row}");
        let leak = r.leak().unwrap();
        assert_eq!(leak.modules[0].name, "odbcvend.dll");
        let f = &leak.modules[0].functions[0].name;
        assert!(f.starts_with("odbcvend.dll!") && !f.contains("+0x"), "{f}");
    }
}

#[test]
fn bad_inputs_are_warnings_or_errors_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, truth) = scenario(true, 0, 0);
    let text = snapshot_text(&spec).replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let line_of = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap() + 1;

    // Cut mid-stack: the log ends inside a heap.
    let cut_at = line_of("End of data for heap") - 4;
    let cut = lines[..cut_at].join("\n");
    let p = write(dir.path(), "cut.txt", &cut);
    let r = analyze(&p);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("cut.txt:") && w.contains("truncated")),
        "{:?}",
        r.warnings
    );

    // A line cut mid-allocation: skipped with a warning naming it.
    let mut v = lines.clone();
    let first_alloc = line_of(&format!("by BackTrace{}", spec.ids[0]));
    let cut_line = "100 bytes + 20 at";
    v.insert(first_alloc + 6, cut_line);
    let p = write(dir.path(), "midline.txt", v.join("\n"));
    let r = analyze(&p);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(&format!("midline.txt:{}:", first_alloc + 7))
                && w.contains("cut short")),
        "{:?}",
        r.warnings
    );
    assert_eq!(modules_of(&r), truth);

    // Referenced before defined: the first allocation's stack printed after a
    // second reference.
    let id = &spec.ids[0];
    let first = line_of(&format!("by BackTrace{id}"));
    let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let stack: Vec<String> = v.drain(first..first + 4).collect();
    // The next allocation line of the same ID gets the stack.
    let second = v
        .iter()
        .enumerate()
        .skip(first)
        .find(|(_, l)| l.contains(&format!("by BackTrace{id}")))
        .unwrap()
        .0;
    for (k, f) in stack.into_iter().enumerate() {
        v.insert(second + 1 + k, f);
    }
    let p = write(dir.path(), "before.txt", v.join("\n"));
    let r = analyze(&p);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(&format!("before.txt:{first}:")) && w.contains("before its stack")),
        "{:?}",
        r.warnings
    );
    assert_eq!(modules_of(&r), truth);

    // Never defined: charged to (no stack).
    let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    v.drain(first..first + 4);
    let p = write(dir.path(), "never.txt", v.join("\n"));
    let r = analyze(&p);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(&format!("never.txt:{first}:")) && w.contains("never printed")),
        "{:?}",
        r.warnings
    );
    assert!(modules_of(&r).contains_key("(no stack)"));

    // A number that overflows: an error naming the file and the line.
    let mut v = lines.clone();
    let big = "1FFFFFFFFFFFFFFFF bytes + 20 at 1000 by BackTrace1";
    v[first_alloc - 1] = big;
    let p = write(dir.path(), "overflow.txt", v.join("\n"));
    let e = analyze_input(&p, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("overflow.txt:{first_alloc}:")) && e.contains("64 bits"),
        "{e}"
    );

    // A frame that overflows, in a comparison log: errors name the line.
    let (entries, _) = comparison_scenario();
    let cmp = comparison_text(&entries, false, true).replace("f110 -", "1f110f110f110f110f110 -");
    let p = write(dir.path(), "cmp-overflow.txt", cmp);
    let e = analyze_input(&p, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cmp-overflow.txt:") && e.contains("64 bits"),
        "{e}"
    );

    // In a batch, the bad log is listed with its error and the others reported.
    let out = dir.path().join("report");
    let index = run(
        &[dir.path().to_owned()],
        &out,
        &AnalyzeOptions::default(),
        &RunOptions::default(),
    )
    .unwrap();
    let failed: Vec<&str> = index
        .inputs
        .iter()
        .filter(|e| e.status != "ok")
        .map(|e| e.file_name.as_str())
        .collect();
    assert_eq!(failed, ["cmp-overflow.txt", "overflow.txt"]);
    assert!(index.ok >= 4);
}

#[test]
fn dumps_and_umdh_logs_mixed_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let dumps = crate::helpers::root().join("tests/fixtures/synthetic-incident");
    std::fs::copy(
        dumps.join("w3wp_4711_1h.dmp"),
        inputs.join("w3wp_4711_1h.dmp"),
    )
    .unwrap();
    let (spec, _) = scenario(false, 0, 0);
    write(&inputs, "snap.log", snapshot_text(&spec));
    let (entries, _) = comparison_scenario();
    // A comparison log named on the command line, outside the folder.
    let cmp = write(dir.path(), "cmp.out", comparison_text(&entries, true, true));
    let out = dir.path().join("report");
    let index = run(
        &[inputs, cmp],
        &out,
        &AnalyzeOptions::default(),
        &RunOptions::default(),
    )
    .unwrap();
    let names: Vec<&str> = index.inputs.iter().map(|e| e.file_name.as_str()).collect();
    assert_eq!(names, ["snap.log", "w3wp_4711_1h.dmp", "cmp.out"]);
    assert_eq!((index.ok, index.failed), (3, 0));
    let dump = report_json(&out, "w3wp_4711_1h");
    assert!(dump["tracking"].get("source").is_none());
    let cmp = report_json(&out, "cmp");
    assert_eq!(cmp["sections"]["umdh_growth"]["decimal"], true);
    assert_eq!(cmp["sections"]["leak"]["status"], "skipped");
    let md = std::fs::read_to_string(out.join("cmp").join("summary.md")).unwrap();
    assert!(
        md.contains("Growth between the two snapshots, by module"),
        "{md}"
    );
}
