//! The incident folder: series and trends, vendor reports, ticket summaries, size caps.

use crate::helpers::{leakdiag, read_json, root, stderr};
use crate::synth::{filetime, SynthDump, SynthModule, SECOND};
use leakdiag::dump::stream::AllocatorKind;
use leakdiag::dump::writer::AllocationStreamBuilder;
use serde_json::Value;
use std::path::Path;

fn run_demo(dir: &Path, extra: &[&str]) -> Value {
    let demo = root().join("tests/fixtures/synthetic-incident");
    let mut args = vec!["analyze", demo.to_str().unwrap(), "-o", "out"];
    args.extend_from_slice(extra);
    let o = leakdiag(dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    read_json(&dir.join("out/index.json"))
}

#[test]
fn a_series_shows_what_grew_between_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let index = run_demo(dir.path(), &[]);
    assert_eq!(index["schema"], "leakdiag-index/3");
    let series = index["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    let s = &series[0];
    let dumps: Vec<&str> = s["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        dumps,
        ["w3wp_4711_1h.dmp", "w3wp_4711_2h.dmp", "w3wp_4711_3h.dmp"]
    );
    assert_eq!(s["dumps"][2]["hours"], 2.0);
    let module = |name: &str| {
        s["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    let vend = module("odbcvend.dll");
    assert_eq!(
        vend["bytes"],
        serde_json::json!([1_950_000, 3_900_000, 5_850_000])
    );
    assert_eq!(vend["growth"], serde_json::json!([1_950_000, 1_950_000]));
    assert_eq!(vend["rate_per_hour"], 1_950_000.0);
    assert_eq!(vend["verdict"], "grew_in_every_interval");
    assert_eq!(module("orders.dll")["verdict"], "flat");
    assert_eq!(module("httpmod.dll")["verdict"], "flat");
    // The leak's two stacks are followed too.
    let growing: Vec<&Value> = s["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["verdict"] == "grew_in_every_interval")
        .collect();
    assert_eq!(growing.len(), 2);
    assert!(growing
        .iter()
        .all(|t| t["name"].as_str().unwrap().starts_with("odbcvend.dll")));
    // The series finding is in the index and in each dump's summary.
    let titles: Vec<&str> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"odbcvend.dll grew in every interval of series 1"),
        "{titles:?}"
    );
    let module_growth: Vec<&serde_json::Value> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "module_growth")
        .collect();
    assert_eq!(module_growth.len(), 1);
    assert_eq!(module_growth[0]["module"], "odbcvend.dll");
    for d in ["w3wp_4711_1h", "w3wp_4711_2h", "w3wp_4711_3h"] {
        let r = read_json(&dir.path().join("out").join(d).join("report.json"));
        // Every dump of the series carries the series' verdict: a leak, named once.
        assert_eq!(r["verdict"]["status"], "leak", "{d}");
        let leaks: Vec<&serde_json::Value> = r["summary"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["module"] == "odbcvend.dll")
            .collect();
        assert_eq!(leaks.len(), 1, "{d}: {leaks:?}");
        assert_eq!(leaks[0]["title"], "odbcvend.dll is leaking");
        assert_eq!(leaks[0]["severity"], "error");
        assert!(leaks[0]["description"]
            .as_str()
            .unwrap()
            .contains("grew in every interval of the 3 dumps of series 1"));
    }
    let html = std::fs::read_to_string(dir.path().join("out/index.html")).unwrap();
    let doc = scraper::Html::parse_document(&html);
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    assert_eq!(doc.select(&sel("#series-1 figure.chart svg")).count(), 1);
    assert!(doc.select(&sel("#series-1 tr.alarm")).count() >= 3);
}

/// Two dumps of one process and one of another: two series, the lone dump has too
/// few dumps to judge.
#[test]
fn dumps_are_grouped_by_process() {
    let dir = tempfile::tempdir().unwrap();
    let dump = |pid: u32, hour: u64| {
        let mut b = AllocationStreamBuilder::new(
            filetime(1_700_000_000),
            filetime(1_700_000_000 + hour * 3600),
        );
        for i in 0..hour * 10 {
            b.allocate(
                0x1000 + i * 64,
                100_000,
                i * 360 * SECOND,
                AllocatorKind::Heap,
                &[0x40_1000],
            );
        }
        SynthDump {
            modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
            stream: Some(b.build()),
            pid: Some(pid),
            process_create_time: Some(1_699_999_000),
            ..Default::default()
        }
        .build()
    };
    std::fs::write(dir.path().join("a-2.dmp"), dump(10, 2)).unwrap();
    std::fs::write(dir.path().join("a-1.dmp"), dump(10, 1)).unwrap();
    std::fs::write(dir.path().join("b-1.dmp"), dump(20, 1)).unwrap();
    let o = leakdiag(dir.path(), &["analyze", ".", "-o", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let index = read_json(&dir.path().join("out/index.json"));
    let series = index["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    let names = |s: &Value| -> Vec<String> {
        s["dumps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["file_name"].as_str().unwrap().to_owned())
            .collect()
    };
    // Ordered by snapshot, not by file name.
    assert_eq!(names(&series[0]), ["a-1.dmp", "a-2.dmp"]);
    assert_eq!(names(&series[1]), ["b-1.dmp"]);
    assert_eq!(series[1]["modules"][0]["verdict"], "too_few_dumps");
    // Two dumps: a trend but no finding (a finding needs three).
    assert_eq!(series[0]["modules"][0]["verdict"], "grew_in_every_interval");
    assert!(series[0]["findings"].as_array().unwrap().is_empty());
}

#[test]
fn a_vendor_report_holds_only_that_module_and_redacts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let index = run_demo(
        dir.path(),
        &["--vendor", "odbcvend.dll", "--vendor", "orders.dll"],
    );
    assert_eq!(
        index["vendor_reports"][0]["report_dir"],
        "vendor-odbcvend.dll"
    );
    let v = read_json(&dir.path().join("out/vendor-odbcvend.dll/report.json"));
    assert_eq!(v["schema"], "leakdiag-vendor-report/2");
    assert_eq!(v["module"], "odbcvend.dll");
    assert_eq!(v["redacted"], true);
    let dumps = v["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 3);
    assert_eq!(dumps[2]["bytes"], 5_850_000);
    assert_eq!(dumps[2]["share_of_bytes"], "88.7%");
    assert_eq!(v["series"][0]["trend"]["verdict"], "grew_in_every_interval");
    assert_eq!(
        v["module_info"]["path"],
        "C:\\Program Files\\Vendor\\odbcvend.dll"
    );
    // Nothing about other modules' totals or functions.
    let text =
        std::fs::read_to_string(dir.path().join("out/vendor-odbcvend.dll/report.json")).unwrap();
    assert!(
        !text.contains("orders.dll!"),
        "no function names of other modules"
    );
    for d in dumps {
        for f in d["functions"].as_array().unwrap() {
            assert!(f["name"].as_str().unwrap().starts_with("odbcvend.dll"));
        }
    }
    // One statement of what we observed, for the vendor: the numbers and the
    // growth, once for the whole series, and no instructions meant for the customer.
    assert_eq!(v["status"], "leak");
    let observed = v["observed"].as_str().unwrap();
    assert!(
        observed.contains("5,850,000 bytes, 88.7% of all outstanding bytes"),
        "{observed}"
    );
    assert!(observed.contains("went from 1,950,000 to 5,850,000 bytes (grew in every interval, 1,950,000 bytes per hour)"), "{observed}");
    assert!(!text.contains("\"findings\""), "no per-dump findings");
    let html =
        std::fs::read_to_string(dir.path().join("out/vendor-odbcvend.dll/report.html")).unwrap();
    assert!(html.contains("odbcvend.dll: memory allocated and not freed"));
    assert!(html.contains("names and source paths of other modules' functions were removed"));
    for internal in [
        "leakdiag analyze",
        "--vendor",
        "Contact the vendor",
        "dump reports",
    ] {
        assert!(
            !html.contains(internal),
            "the vendor page says {internal:?}"
        );
    }
    // The tracker's frames are labelled as such.
    assert!(
        html.contains("<span class=\"tag\">tracker</span>"),
        "tracker frames marked"
    );
    assert!(dir
        .path()
        .join("out/vendor-orders.dll/report.html")
        .is_file());
}

#[test]
fn redaction_removes_other_modules_symbols_unless_asked_not_to() {
    use leakdiag::model::Frame;
    let frame = |module: &str, function: &str, inlined: bool| Frame {
        module: Some(module.into()),
        offset: Some(leakdiag::addr::Rva(0x10)),
        address: leakdiag::addr::VirtAddr(0x1010),
        responsible: false,
        function: Some(function.into()),
        function_offset: None,
        file: Some("C:\\src\\secret.c".into()),
        line: Some(7),
        inlined,
    };
    let frames = vec![
        frame("odbcvend.dll", "VendRowBuffer", true),
        frame("odbcvend.dll", "VendFetch", false),
        frame("orders.dll", "InlinedSecret", true),
        frame("orders.dll", "CustomerSecret", false),
    ];
    let redacted = leakdiag::analysis::vendor::redact_frames(&frames, "odbcvend.dll");
    assert_eq!(
        redacted.len(),
        3,
        "other modules' inlined frames collapse to one"
    );
    assert_eq!(redacted[0].function.as_deref(), Some("VendRowBuffer"));
    assert_eq!(redacted[2].module.as_deref(), Some("orders.dll"));
    assert_eq!(redacted[2].offset, Some(leakdiag::addr::Rva(0x10)));
    assert!(
        redacted[2].function.is_none() && redacted[2].file.is_none() && redacted[2].line.is_none()
    );
}

#[test]
fn each_dump_gets_a_ticket_summary() {
    let dir = tempfile::tempdir().unwrap();
    run_demo(dir.path(), &["--vendor", "odbcvend.dll"]);
    let md = std::fs::read_to_string(dir.path().join("out/w3wp_4711_2h/summary.md")).unwrap();
    assert!(md.starts_with("# Memory leak analysis: w3wp_4711_2h.dmp"));
    assert!(
        md.contains("| odbcvend.dll | 4,800 | 3,900,000 (3.7 MiB) | 84.0% | 100% |"),
        "{md}"
    );
    assert!(md.contains("**error: odbcvend.dll is leaking**"), "{md}");
    assert!(
        md.contains(
            "Recommendation: Send the vendor report (vendor-odbcvend.dll/report.html) to odbcvend.dll's vendor."
        ),
        "{md}"
    );
    assert!(md.contains("`w3wp_4711_2h/report.html`"));
    assert!(md.contains("`vendor-odbcvend.dll/report.html`"));
}

#[test]
fn pages_stay_under_2_mb_and_say_what_they_left_out() {
    // 300 modules, each with 40 distinct deep stacks.
    let mut modules = Vec::new();
    let mut b = AllocationStreamBuilder::new(0, 3600 * SECOND);
    let mut address = 0x1_0000_0000u64;
    for m in 0..300u64 {
        let base = 0x7ff0_0000_0000 + m * 0x10_0000;
        let path: &'static str = Box::leak(format!("C:\\app\\module{m:03}.dll").into_boxed_str());
        modules.push(SynthModule::new(path, base, 0x10_0000));
        for s in 0..40u64 {
            let frames: Vec<u64> = (0..32).map(|f| base + 0x1000 + s * 0x100 + f * 8).collect();
            for i in 0..3 {
                address += 0x100;
                b.allocate(
                    address,
                    100 + m,
                    (s * 3 + i) * 29 * SECOND,
                    AllocatorKind::Heap,
                    &frames,
                );
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.dmp"),
        SynthDump {
            modules,
            stream: Some(b.build()),
            ..Default::default()
        }
        .build(),
    )
    .unwrap();
    let o = leakdiag(
        dir.path(),
        &[
            "analyze",
            "big.dmp",
            "-o",
            "out",
            "--stacks",
            "10",
            "--functions",
            "50",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let html = std::fs::read_to_string(dir.path().join("out/big/report.html")).unwrap();
    assert!(
        html.len() < 2 * 1024 * 1024,
        "report.html is {} bytes",
        html.len()
    );
    assert!(html.contains("Details are shown for the top 25 modules; 275 more modules"));
    assert!(html.contains("more stacks not shown"));
}
