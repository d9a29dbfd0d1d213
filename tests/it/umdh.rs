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

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn analyze(path: &Path) -> DumpReport {
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
fn leak_module<'a>(r: &'a DumpReport, name: &str) -> &'a leakdiag::model::ModuleLeak {
    let leak = r.leak().expect("the leak section");
    leak.modules.iter().find(|m| m.name == name).expect(name)
}

/// Checks that one of the report's warnings holds `needle`.
fn assert_warned(r: &DumpReport, needle: &str) {
    assert!(
        r.warnings.iter().any(|w| w.contains(needle)),
        "no warning with {needle:?} in {:?}",
        r.warnings
    );
}

fn check_snapshot(path: &Path, truth: &Truth) -> DumpReport {
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

/// A snapshot log with every irregularity the reader settles across chunks: stacks
/// referenced before they are printed, never printed and printed twice, a cut line,
/// a heap without its end, allocation lines outside any heap, a second header, an
/// ANSI line and already-resolved frames.
fn irregular_snapshot() -> String {
    let (spec, _) = scenario(true, 1, 300);
    let text = snapshot_text(&spec).replace("\r\n", "\n");
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    let find = |v: &[String], needle: &str| v.iter().position(|l| l.contains(needle)).unwrap();
    // Stack 0 printed only at its second reference.
    let id0 = format!("by BackTrace{}", spec.ids[0]);
    let first = find(&v, &id0);
    let stack: Vec<String> = v.drain(first + 1..first + 5).collect();
    let second = first + 1 + find(&v[first + 1..], &id0);
    for (k, f) in stack.iter().enumerate() {
        v.insert(second + 1 + k, f.clone());
    }
    // Stack 1 never printed; stack 2 printed twice.
    let id1 = format!("by BackTrace{}", spec.ids[1]);
    let at = find(&v, &id1);
    let mut end = at + 1;
    while v[end].starts_with('\t') {
        end += 1;
    }
    v.drain(at + 1..end);
    let id2 = format!("by BackTrace{}", spec.ids[2]);
    let at = find(&v, &id2);
    let mut end = at + 1;
    while v[end].starts_with('\t') {
        end += 1;
    }
    let printed: Vec<String> = v[at + 1..end].to_vec();
    let last2 = v.iter().rposition(|l| l.contains(&id2)).unwrap();
    for (k, f) in printed.iter().enumerate() {
        v.insert(last2 + 1 + k, f.clone());
    }
    // A cut line, a second header, lines outside any heap, a heap left open.
    let mid = v.len() / 2;
    v.insert(mid, "100 bytes + 20 at".into());
    v.insert(
        mid + 1,
        "// UMDH: version 9: Logtime 2030-01-01 00:00 - PID=1".into(),
    );
    let start2 = v
        .iter()
        .rposition(|l| l.contains("Start of data for heap"))
        .unwrap();
    v.insert(
        start2,
        format!("40 bytes + 10 at 5000 by BackTrace{}", spec.ids[3]),
    );
    let end_first = find(&v, "End of data for heap");
    v.remove(end_first);
    v.push("*- - - - - - - - - - Start of data for heap @ ABC0000 - - - - - - - - - -".into());
    v.push(format!("30 bytes + 8 at 6000 by BackTrace{}", spec.ids[4]));
    v.push("\tleaky!CRow::Grow+0x1E (d:\\src\\row.cpp, 42)".into());
    v.push("\tapp!main+2C".into());
    let mut text = v.join("\r\n");
    text.push_str("\r\n");
    text
}

#[test]
fn snapshot_reading_is_the_same_for_any_chunk_size_and_thread_count() {
    use leakdiag::umdh::snapshot::{parse, parse_chunked};
    let dir = tempfile::tempdir().unwrap();
    let text = irregular_snapshot();
    let mut bytes = text.clone().into_bytes();
    // One ANSI (Windows-1252) line in the middle.
    let at = bytes.len() / 3;
    let nl = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.splice(nl..nl, b"// caf\xe9\r\n".iter().copied());
    let utf8 = write(dir.path(), "chunks.txt", &bytes);
    let utf16 = write(dir.path(), "chunks16.txt", utf16le(&text));
    for path in [&utf8, &utf16] {
        let whole = parse(path).unwrap();
        assert!(
            whole.allocations > 100 && whole.warnings.len() >= 6,
            "{:?}",
            whole.warnings
        );
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for chunk in [1, 7, 100, 1000, 4096, 1 << 20] {
                let snap = pool.install(|| parse_chunked(path, chunk)).unwrap();
                assert_eq!(snap, whole, "{} threads, chunks of {chunk}", threads);
            }
        }
    }
    // The UTF-16 text is the same log (less the ANSI line).
    let a = parse(&utf16).unwrap();
    let plain = write(dir.path(), "plain.txt", &text);
    let b = parse(&plain).unwrap();
    assert_eq!(
        (a.allocations, a.bytes, a.traces.len()),
        (b.allocations, b.bytes, b.traces.len())
    );
    assert_eq!(a.sizes, b.sizes);

    // Sizes passing 2^64: the same line is named whatever the chunks.
    let mut v: Vec<&str> = text.split("\r\n").collect();
    let late = v.len() - 10;
    let big = "8000000000000000 bytes + 0 at 1 by BackTrace1";
    v.insert(late, big);
    v.insert(late / 2, big);
    let over = write(dir.path(), "over.txt", v.join("\r\n"));
    let want = parse(&over).unwrap_err().to_string();
    assert!(
        want.contains(&format!("over.txt:{}:", late + 2)) && want.contains("2^64"),
        "{want}"
    );
    for chunk in [1, 50, 1000] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        assert_eq!(
            pool.install(|| parse_chunked(&over, chunk))
                .unwrap_err()
                .to_string(),
            want
        );
    }
}

/// Many stacks sharing resolved frames, printed across many chunks and waves: the
/// texts are interned per chunk and numbered once across chunks
/// (`snapshot::texts`), in order of first printing whatever the cut.
#[test]
fn resolved_frames_shared_across_chunks_are_numbered_the_same_for_any_cut() {
    use leakdiag::umdh::snapshot::{chunk_bytes, parse, parse_chunked, Frame};
    let dir = tempfile::tempdir().unwrap();
    let modules = scenario_modules(true);
    let mut spec = SnapshotSpec::new(7, "2026-03-05 10:00", modules.clone());
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let frames = (0..12)
            .map(|_| match next() % 3 {
                0 => GenFrame::Address(modules[0].base + 0x1000 + next() % 0x100),
                1 => GenFrame::Symbolic(format!("app!f{}+{:X}", next() % 40, next() % 4)),
                _ => GenFrame::Symbolic(format!("vendor!g{}+1 (d:\\v.cpp, 7)", next() % 20)),
            })
            .collect();
        spec.stack(frames);
    }
    for h in 0..3u64 {
        let allocs = (0..400u64)
            .map(|i| GenAlloc {
                size: 16 + next() % 300,
                overhead: 0x20,
                address: 0x1_0000_0000 + h * 0x100_0000 + i * 0x100,
                stack: (next() % 300) as usize,
            })
            .collect();
        spec.heaps.push((0x5_0000 + h * 0x1000, allocs));
    }
    // One resolved frame in Windows-1252 (read as ANSI, interned at once rather than
    // when its stack ends): the same numbering.
    let mut text = snapshot_text(&spec).replacen("app!f7+", "app!caf\u{1}7+", 3);
    // A stack printed a second time, with a text found nowhere else: the first
    // printing is kept, and the text is not among the log's.
    let id = format!("by BackTrace{}\r\n", spec.ids[0]);
    let second = text
        .match_indices(&id)
        .nth(1)
        .expect("stack 0 referenced twice")
        .0;
    text.insert_str(second + id.len(), "\tdup!only+1\r\n");
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect();
    let path = write(dir.path(), "shared.txt", bytes);
    let whole = parse(&path).unwrap();
    assert!(whole.symbolic.len() >= 40, "{}", whole.symbolic.len());
    assert!(whole.symbolic.iter().any(|t| t.starts_with("app!café7+")));
    assert!(!whole.symbolic.iter().any(|t| t == "dup!only+1"));
    assert!(whole
        .warnings
        .iter()
        .any(|w| w.contains("printed a second time")));
    assert!(whole.frames.iter().any(|f| matches!(f, Frame::Symbolic(_))));
    let len = std::fs::metadata(&path).unwrap().len();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for chunk in [1, 300, 2000, 9000, chunk_bytes(len, threads)] {
            let snap = pool.install(|| parse_chunked(&path, chunk)).unwrap();
            assert_eq!(snap, whole, "{threads} threads, chunks of {chunk}");
        }
    }
}

/// Thousands of stacks (the reader keeps its sums per BackTrace in blocks of 1,024,
/// updated by parts in parallel, as many parts as the threads make) referenced in
/// four heaps, in small chunks: many more waves than threads, stacks first
/// referenced in a later wave and again in the same wave. The sums by size and by
/// heap are those of the allocations, in order, whatever the cut.
#[test]
fn sums_of_thousands_of_stacks_over_many_waves_are_exact_for_any_cut() {
    use leakdiag::umdh::snapshot::{parse, parse_chunked, size_bucket};
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let modules = scenario_modules(true);
    let mut spec = SnapshotSpec::new(11, "2026-03-05 10:00", modules.clone());
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const STACKS: u64 = 4_500;
    for s in 0..STACKS {
        spec.stack(vec![
            GenFrame::Address(modules[0].base + 0x1000 + s),
            GenFrame::Symbolic(format!("app!f{}+1", s % 700)),
        ]);
    }
    for h in 0..4u64 {
        let allocs = (0..6_000u64)
            .map(|i| {
                // Later heaps reach further: stacks first referenced late.
                let reach = STACKS * (h + 1) / 4;
                GenAlloc {
                    size: 1 + next() % 5_000,
                    overhead: 0x20,
                    address: 0x1_0000_0000 + h * 0x100_0000 + i * 0x100,
                    stack: (next() % reach) as usize,
                }
            })
            .collect();
        spec.heaps.push((0x5_0000 + h * 0x1000, allocs));
    }
    // The sums the allocations make, by BackTrace ID.
    let mut by_heap: BTreeMap<(&str, u64), (u64, u64)> = BTreeMap::new();
    let mut sizes: BTreeMap<(&str, u8), (u64, u64)> = BTreeMap::new();
    for (heap, allocs) in &spec.heaps {
        for a in allocs {
            let id = spec.ids[a.stack].as_str();
            let e = by_heap.entry((id, *heap)).or_default();
            *e = (e.0 + 1, e.1 + a.size);
            let bucket = u8::try_from(size_bucket(a.size)).unwrap();
            let e = sizes.entry((id, bucket)).or_default();
            *e = (e.0 + 1, e.1 + a.size);
        }
    }
    let path = write(dir.path(), "many.txt", snapshot_text(&spec));
    let whole = parse(&path).unwrap();
    assert!(whole.traces.len() > 4_000, "{}", whole.traces.len());
    let id = |t: u32| whole.traces[t as usize].id.as_str();
    let got: BTreeMap<(&str, u64), (u64, u64)> = whole
        .by_heap
        .iter()
        .map(|&(t, h, s)| ((id(t), h), (s.allocations, s.bytes)))
        .collect();
    assert_eq!(got, by_heap);
    let got: BTreeMap<(&str, u8), (u64, u64)> = whole
        .sizes
        .iter()
        .map(|&(t, b, s)| ((id(t), b), (s.allocations, s.bytes)))
        .collect();
    assert_eq!(got, sizes);
    // In order, one entry per pair.
    assert!(whole
        .by_heap
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    assert!(whole
        .sizes
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    for threads in [1, 2, 3, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for chunk in [700, 20_000, 150_000] {
            let snap = pool.install(|| parse_chunked(&path, chunk)).unwrap();
            assert_eq!(snap, whole, "{threads} threads, chunks of {chunk}");
        }
    }
}

#[test]
fn chunk_size_gives_each_thread_several_chunks_within_bounds() {
    use leakdiag::umdh::snapshot::{chunk_bytes, CHUNK_BYTES, MIN_CHUNK_BYTES};
    assert_eq!(chunk_bytes(0, 16), MIN_CHUNK_BYTES);
    assert_eq!(chunk_bytes(1 << 40, 2), CHUNK_BYTES);
    assert_eq!(chunk_bytes(u64::MAX, 0), CHUNK_BYTES);
    // A 1 GiB log on 16 threads: 64 chunks of 16 MiB.
    assert_eq!(chunk_bytes(1 << 30, 16), 16 << 20);
    // 256 MiB on 16 threads: the floor.
    assert_eq!(chunk_bytes(256 << 20, 16), MIN_CHUNK_BYTES);
}

#[test]
fn resolved_frames_are_in_the_function_table_and_stacks_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, truth) = scenario(true, 1, 10);
    let text = snapshot_text(&spec).replace(
        "vendor!CVendorCache::Grow+0000001E",
        "vendor!CVendorCache::Grow+0000001E (d:\\src\\vendor\\cache.cpp, 42)",
    );
    assert!(text.contains("cache.cpp, 42)"));
    let p = write(dir.path(), "given.txt", &text);
    let r = check_snapshot(&p, &truth);
    let vendor = leak_module(&r, "vendor.dll");
    let f = vendor
        .functions
        .iter()
        .find(|f| f.name == "vendor.dll!CVendorCache::Grow")
        .unwrap_or_else(|| panic!("{:?}", vendor.functions));
    assert!(f.allocations > 0);
    // The sample stack shows every resolved frame as printed.
    let frames: Vec<_> = vendor
        .stacks
        .iter()
        .flat_map(|s| &s.frames)
        .filter(|f| f.function.as_deref() == Some("CVendorCache::Grow"))
        .collect();
    assert!(!frames.is_empty(), "{:?}", vendor.stacks);
    let g = frames[0];
    assert_eq!(g.module.as_deref(), Some("vendor.dll"));
    assert_eq!(g.function_offset, Some(0x1E));
    assert_eq!(g.file.as_deref(), Some("d:\\src\\vendor\\cache.cpp"));
    assert_eq!(g.line, Some(42));
    assert!(g.responsible);
    let all: Vec<_> = vendor.stacks.iter().flat_map(|s| &s.frames).collect();
    assert!(all
        .iter()
        .any(|f| f.function.as_deref() == Some("RtlAllocateHeap")
            && f.module.as_deref() == Some("ntdll.dll")
            && f.function_offset == Some(0x808)));
    assert!(all
        .iter()
        .any(|f| f.function.as_deref() == Some("main") && f.module.as_deref() == Some("app.exe")));
    // In report.json too.
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("CVendorCache::Grow") && json.contains("cache.cpp"));
}

/// A log of few stacks and many allocations, read in small chunks: each chunk
/// repeats the stacks' (BackTrace, size bucket) pairs, which the reader sums while
/// merging once they outgrow dense rows; the sums are the same as read whole.
#[test]
fn size_sums_of_few_stacks_over_many_chunks_are_the_same_for_any_cut() {
    use leakdiag::umdh::snapshot::{parse, parse_chunked};
    let dir = tempfile::tempdir().unwrap();
    let modules = scenario_modules(true);
    let mut spec = SnapshotSpec::new(9, "2026-03-05 10:00", modules.clone());
    for s in 0..7u64 {
        spec.stack(vec![GenFrame::Address(modules[0].base + 0x1000 + s)]);
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let allocs = (0..200_000u64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            GenAlloc {
                size: 1 + x % 70_000,
                overhead: 0x20,
                address: 0x1_0000_0000 + i * 0x100,
                stack: (x >> 32) as usize % 7,
            }
        })
        .collect();
    spec.heaps.push((0x5_0000, allocs));
    let path = write(dir.path(), "few.txt", snapshot_text(&spec));
    let whole = parse(&path).unwrap();
    assert_eq!(whole.allocations, 200_000);
    assert!(whole.sizes.len() > 7 * 5, "{}", whole.sizes.len());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Chunks of about 40 lines: some 5,000 chunks of up to 7 × 9 pairs each,
    // more entries than the reader keeps before summing them.
    let snap = pool.install(|| parse_chunked(&path, 2000)).unwrap();
    assert_eq!(snap, whole);
}

/// A module's function table groups its stacks by the function as printed (two
/// printed offsets of one function are one row) and by address where a frame is
/// raw; the rows' sums are exact, the unlisted module's frames are "(unknown)", and
/// past the module's room for printed frames they are charged without a function.
#[test]
fn printed_functions_are_grouped_by_name_with_exact_sums() {
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        GenModule::new("C:\\app\\vendor.dll", 0x1000_0000, 0x3000),
        GenModule::new("C:\\Windows\\SYSTEM32\\ntdll.dll", 0x7700_0000, 0x1A_0000),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    let sym = |t: &str| GenFrame::Symbolic(t.to_owned());
    let alloc = sym("ntdll!RtlAllocateHeap+00000808");
    let main = sym("app!main+00000010 (c:\\src\\main.cpp, 7)");
    let stacks = [
        s.stack(vec![
            alloc.clone(),
            sym("vendor!Cache::Grow+0000001E"),
            main.clone(),
        ]),
        s.stack(vec![
            alloc.clone(),
            sym("vendor!Cache::Grow+00000042"),
            main.clone(),
        ]),
        s.stack(vec![
            alloc.clone(),
            sym("vendor!Pool::Get+00000008"),
            main.clone(),
        ]),
        // Raw: charged by address, named by offset (no PDB).
        s.stack(vec![
            alloc.clone(),
            GenFrame::Address(0x1000_2345),
            main.clone(),
        ]),
        // A module the log does not list: its frame is unknown, and so is the owner.
        s.stack(vec![
            alloc.clone(),
            sym("other!Thing+00000001"),
            main.clone(),
        ]),
    ];
    let sizes = [
        (3u64, 0x100u64),
        (2, 0x40),
        (1, 0x1000),
        (4, 0x18),
        (5, 0x20),
    ];
    let mut allocs = Vec::new();
    let mut address = 0x5000_0000u64;
    for (&stack, &(count, size)) in stacks.iter().zip(&sizes) {
        for _ in 0..count {
            allocs.push(GenAlloc {
                size,
                overhead: 0x10,
                address,
                stack,
            });
            address += 0x1000;
        }
    }
    s.heaps.push((0x2A0000, allocs));
    let p = write(dir.path(), "grouped.txt", snapshot_text(&s));
    let r = analyze(&p);
    let vendor = leak_module(&r, "vendor.dll");
    let rows: Vec<(&str, u64, u64)> = vendor
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.allocations, f.bytes))
        .collect();
    assert_eq!(
        rows,
        // Ranked by bytes.
        [
            ("vendor.dll!Pool::Get", 1, 0x1000),
            ("vendor.dll!Cache::Grow", 5, 3 * 0x100 + 2 * 0x40),
            ("vendor.dll+0x2345", 4, 4 * 0x18),
        ]
    );
    assert_eq!(
        (vendor.allocations, vendor.bytes),
        (10, 0x300 + 0x80 + 0x1000 + 0x60)
    );
    let names: Vec<&str> = r
        .leak()
        .unwrap()
        .modules
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["vendor.dll", "(unknown)"]);
    let unknown = leak_module(&r, "(unknown)");
    assert_eq!((unknown.allocations, unknown.bytes), (5, 5 * 0x20));
    assert_warned(&r, "name a module the log does not list");
}

/// A module has room for as many printed frames as its first page (or its size)
/// has offsets: the frames past it are charged to the module without a function,
/// with a warning, and every allocation is still counted.
#[test]
fn printed_frames_past_the_module_room_are_charged_without_a_function() {
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        // Room for offsets 1..=15.
        GenModule::new("C:\\app\\tiny.dll", 0x1000_0000, 0x10),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    let mut allocs = Vec::new();
    for i in 0..20u64 {
        let stack = s.stack(vec![
            GenFrame::Symbolic(format!("tiny!F{i}+00000001")),
            GenFrame::Symbolic("app!main+00000010".into()),
        ]);
        allocs.push(GenAlloc {
            size: 0x10 + i,
            overhead: 8,
            address: 0x5000_0000 + i * 0x100,
            stack,
        });
    }
    s.heaps.push((0x2A0000, allocs));
    let p = write(dir.path(), "tiny.txt", snapshot_text(&s));
    let r = analyze(&p);
    let tiny = leak_module(&r, "tiny.dll");
    assert_eq!(
        (tiny.allocations, tiny.bytes),
        (20, (0..20).map(|i| 0x10 + i).sum::<u64>())
    );
    let named: Vec<&str> = tiny
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| n.starts_with("tiny.dll!F"))
        .collect();
    // F0..F14 named (the table shows the first rows, the rest counted as omitted),
    // and one more row for the rest.
    assert_eq!(
        tiny.functions.len() as u64 + tiny.functions_omitted.count,
        16,
        "{named:?}"
    );
    assert_eq!(named.len(), tiny.functions.len() - 1);
    // The five past the room: at the module's base, one row by offset.
    let base = tiny
        .functions
        .iter()
        .find(|f| f.name == "tiny.dll+0x0")
        .unwrap_or_else(|| panic!("{:?}", tiny.functions));
    assert_eq!(
        (base.allocations, base.bytes),
        (5, (15..20).map(|i| 0x10 + i).sum::<u64>())
    );
    assert_warned(&r, "5 distinct resolved stack frames past");
}

/// One stack with more allocations than a 16-bit count holds (the table keeps
/// per-stack counts modulo 2^16 with a carry per wrap): its module, function and
/// sample stack count every one, and the incident's totals add up.
#[test]
fn a_stack_with_more_than_65536_allocations_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        GenModule::new("C:\\app\\vendor.dll", 0x1000_0000, 0x10_0000),
        GenModule::new("C:\\Windows\\SYSTEM32\\ntdll.dll", 0x7700_0000, 0x1A_0000),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    let hot = s.stack(vec![
        GenFrame::Symbolic("ntdll!RtlAllocateHeap+00000808".into()),
        GenFrame::Symbolic("vendor!Cache::Grow+0000001E".into()),
        GenFrame::Address(0x40_1234),
    ]);
    let other = s.stack(vec![GenFrame::Address(0x40_2000)]);
    const HOT: u64 = 3 * 65_536 + 17;
    // Two heaps, so that the stack's sums come from two places.
    for (heap, range) in [(0x2A_0000u64, 0..HOT / 2), (0x3B_0000, HOT / 2..HOT)] {
        let mut allocs: Vec<GenAlloc> = range
            .map(|i| GenAlloc {
                size: 0x20 + (i % 3),
                overhead: 8,
                address: 0x1_0000_0000 + i * 0x40,
                stack: hot,
            })
            .collect();
        allocs.push(GenAlloc {
            size: 0x100,
            overhead: 8,
            address: 0x9_0000_0000 + heap,
            stack: other,
        });
        s.heaps.push((heap, allocs));
    }
    let hot_bytes: u64 = (0..HOT).map(|i| 0x20 + (i % 3)).sum();
    let p = write(dir.path(), "hot.txt", snapshot_text(&s));
    let r = analyze(&p);
    let vendor = leak_module(&r, "vendor.dll");
    assert_eq!((vendor.allocations, vendor.bytes), (HOT, hot_bytes));
    assert_eq!(
        (vendor.functions[0].allocations, vendor.functions[0].bytes),
        (HOT, hot_bytes)
    );
    assert_eq!(
        (vendor.stacks[0].allocations, vendor.stacks[0].bytes),
        (HOT, hot_bytes)
    );
    let app = leak_module(&r, "app.exe");
    assert_eq!((app.allocations, app.bytes), (2, 0x200));
    let leak = r.leak().unwrap();
    assert_eq!(
        (leak.totals.allocations, leak.totals.bytes),
        (HOT + 2, hot_bytes + 0x200)
    );
}

/// `leakdiag inspect` lists what a snapshot and a comparison log hold, with text
/// from the log on one line and without control characters; a log that cannot be
/// read is listed as far as known and exits 1.
#[test]
fn inspect_lists_what_a_log_holds() {
    use crate::helpers::{leakdiag, stdout};
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, _) = scenario(true, 1, 10);
    spec.modules[1].path = "C:\\app\\evil\u{1b}]0;pwned\u{7}.dll".into();
    let text = snapshot_text(&spec);
    write(dir.path(), "snap.log", &text);
    let o = leakdiag(dir.path(), &["inspect", "snap.log"]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::helpers::stderr(&o));
    let out = stdout(&o);
    for needle in [
        "UMDH snapshot log",
        "umdh version       7.04.0001",
        "pid                ",
        "C:\\Windows\\SYSTEM32\\ntdll.dll",
        "heaps: ",
        "backtraces: ",
        "largest backtraces (by bytes, top 10):",
        "warnings: 0",
        "evil\u{fffd}]0;pwned\u{fffd}.dll",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
    // The same text in UTF-16 lists the same, but for its encoding.
    write(dir.path(), "snap16.log", utf16le(&text));
    let o16 = leakdiag(dir.path(), &["inspect", "snap16.log"]);
    assert_eq!(o16.status.code(), Some(0));
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.contains("encoding") && !l.ends_with(".log"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&stdout(&o16)), strip(&out));

    let (entries, _) = comparison_scenario();
    write(dir.path(), "cmp.txt", comparison_text(&entries, true, true));
    let o = leakdiag(dir.path(), &["inspect", "cmp.txt"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for needle in [
        "UMDH comparison log",
        "numbers            decimal (umdh -d)",
        &format!("entries: {} (", entries.len()),
        "total line ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }

    // Sizes past 64 bits: the error, with the file and line, and exit 1.
    let mut first = true;
    let bad: String = text
        .split_inclusive('\n')
        .map(|l| match l.split_once(" bytes + ") {
            Some((n, rest)) if first && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
                first = false;
                format!("1FFFFFFFFFFFFFFFF bytes + {rest}")
            }
            _ => l.to_owned(),
        })
        .collect();
    assert!(!first);
    write(dir.path(), "bad.log", bad);
    let o = leakdiag(dir.path(), &["inspect", "bad.log"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("not read:") && out.contains("bad.log:"),
        "{out}"
    );
}

/// A log of thousands of malformed lines, one of them two megabytes long, and an ID
/// past any real one: the warnings are the first `MAX_WARNINGS` by line and one
/// that counts the rest, each quoting at most `QUOTE_CHARS` characters of its line,
/// the same for any cut; the well-formed lines are all counted.
#[test]
fn warnings_are_bounded_and_quote_lines_briefly() {
    use leakdiag::umdh::snapshot::{parse, parse_chunked};
    use leakdiag::umdh::{MAX_WARNINGS, QUOTE_CHARS};
    let dir = tempfile::tempdir().unwrap();
    let (spec, _) = scenario(true, 1, 10);
    let text = snapshot_text(&spec);
    let good = parse(&write(dir.path(), "good.txt", &text)).unwrap();
    // After the module list: 3,000 lines that are no allocation, one of 2 MB, and
    // an allocation with a 100-character ID.
    let at = text.find("*- - -").unwrap();
    let mut bad = String::new();
    for i in 0..3000 {
        bad.push_str(&format!("{i:X} bytes + zz at 10 by BackTrace1\r\n"));
    }
    bad.push_str(&format!(
        "10 bytes + zz{} at 10 by BackTrace1\r\n",
        "9".repeat(2 << 20)
    ));
    bad.push_str(&format!(
        "10 bytes + 1 at 10 by BackTrace{}\r\n",
        "A".repeat(100)
    ));
    let log = format!("{}{bad}{}", &text[..at], &text[at..]);
    let p = write(dir.path(), "noisy.txt", &log);
    let snap = parse(&p).unwrap();
    assert_eq!(
        (snap.allocations, snap.bytes),
        (good.allocations, good.bytes)
    );
    assert_eq!(
        snap.warnings.len(),
        MAX_WARNINGS + 1,
        "{:?}",
        &snap.warnings[..3]
    );
    let last = snap.warnings.last().unwrap();
    assert!(last.contains("2,802 more warnings"), "{last}");
    for w in &snap.warnings {
        assert!(w.chars().count() < QUOTE_CHARS + 200, "{}", &w[..300]);
    }
    for chunk in [1000, 1 << 16, 1 << 20] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let cut = pool.install(|| parse_chunked(&p, chunk)).unwrap();
        assert_eq!(cut.warnings, snap.warnings, "chunks of {chunk}");
    }
    // The two-megabyte line and the long ID, quoted briefly, when listed.
    let only = format!(
        "{}{}{}",
        &text[..at],
        bad.lines().skip(3000).collect::<Vec<_>>().join("\r\n") + "\r\n",
        &text[at..]
    );
    let snap = parse(&write(dir.path(), "two.txt", &only)).unwrap();
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.contains("(2097185 characters)")),
        "{:?}",
        snap.warnings
    );
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.contains("BackTrace ID longer than 64 characters")),
        "{:?}",
        snap.warnings
    );

    // A comparison log likewise: 500 lines that are no comparison line.
    let (entries, _) = comparison_scenario();
    let cmp = comparison_text(&entries, false, true);
    let junk: String = (0..500).map(|i| format!("junk line {i}\n")).collect();
    let p = write(dir.path(), "cmp-noisy.txt", format!("{junk}{cmp}"));
    let c = leakdiag::umdh::compare::parse(&p).unwrap();
    assert_eq!(c.entries.len(), entries.len());
    assert_eq!(c.warnings.len(), MAX_WARNINGS + 1, "{:?}", &c.warnings[..3]);
    assert!(
        c.warnings[MAX_WARNINGS].contains("300 more warnings"),
        "{:?}",
        c.warnings.last()
    );
}
