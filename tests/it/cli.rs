//! The command line: batches, exit codes, determinism, `inspect`.

use crate::helpers::{leakdiag, read_json, stderr, stdout};
use crate::synth::{demo_dump, SynthDump, SynthModule};
use std::path::Path;

/// A folder with good dumps, a plain dump and several bad ones, nested.
fn mixed_batch(dir: &Path) {
    std::fs::create_dir_all(dir.join("series/b")).unwrap();
    std::fs::write(dir.join("series/w3wp_1.dmp"), demo_dump(1)).unwrap();
    std::fs::write(dir.join("series/b/w3wp_1.dmp"), demo_dump(2)).unwrap();
    std::fs::write(dir.join("series/b/notes.txt"), "not a dump, not picked up").unwrap();
    std::fs::write(dir.join("series/garbage.DMP"), "garbage").unwrap();
    let full = demo_dump(1);
    std::fs::write(dir.join("series/truncated.dmp"), &full[..full.len() / 2]).unwrap();
    let plain = SynthDump {
        modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
        ..Default::default()
    }
    .build();
    std::fs::write(dir.join("series/plain.dmp"), plain).unwrap();
}

#[test]
fn a_batch_reports_every_input_and_exits_1_on_failures() {
    let dir = tempfile::tempdir().unwrap();
    mixed_batch(dir.path());
    let o = leakdiag(dir.path(), &["analyze", "series", "-o", "out", "-j", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("garbage.DMP: not a minidump"), "{err}");
    assert!(err.contains("truncated.dmp"), "{err}");

    let index = read_json(&dir.path().join("out/index.json"));
    assert_eq!(index["schema"], "leakdiag-index/3");
    let inputs = index["inputs"].as_array().unwrap();
    let names: Vec<&str> = inputs
        .iter()
        .map(|i| i["file_name"].as_str().unwrap())
        .collect();
    // Sorted by path: series/b/… before series/garbage…
    assert_eq!(
        names,
        [
            "w3wp_1.dmp",
            "garbage.DMP",
            "plain.dmp",
            "truncated.dmp",
            "w3wp_1.dmp"
        ]
    );
    let status: Vec<&str> = inputs
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["ok", "error", "ok", "error", "ok"]);
    assert_eq!(
        (index["ok"].as_u64(), index["failed"].as_u64()),
        (Some(3), Some(2))
    );
    // Same stem twice: distinct folders.
    assert_eq!(inputs[0]["report_dir"], "w3wp_1");
    assert_eq!(inputs[4]["report_dir"], "w3wp_1-2");
    assert_eq!(inputs[0]["top_module"]["name"], "odbcvend.dll");
    assert_eq!(inputs[0]["bytes"], 4_645_424); // the demo at 2 hours
    assert_eq!(inputs[2]["tracker_data"], false);
    for dir_name in ["w3wp_1", "w3wp_1-2", "plain"] {
        assert!(dir
            .path()
            .join("out")
            .join(dir_name)
            .join("report.html")
            .is_file());
        assert!(dir
            .path()
            .join("out")
            .join(dir_name)
            .join("report.json")
            .is_file());
    }
    let html = std::fs::read_to_string(dir.path().join("out/index.html")).unwrap();
    assert!(html.contains("garbage.DMP") && html.contains("not a minidump"));
    assert!(html.contains("w3wp_1-2/report.html"));
}

#[test]
fn output_is_identical_at_any_job_count() {
    let dir = tempfile::tempdir().unwrap();
    mixed_batch(dir.path());
    for j in ["1", "2", "7"] {
        leakdiag(
            dir.path(),
            &["analyze", "series", "-o", &format!("out{j}"), "-j", j, "-q"],
        );
    }
    let listing = |root: &Path| {
        let mut files = Vec::new();
        for entry in walk(root) {
            let rel = entry.strip_prefix(root).unwrap().to_path_buf();
            files.push((rel, std::fs::read(&entry).unwrap()));
        }
        files.sort();
        files
    };
    let one = listing(&dir.path().join("out1"));
    assert!(one.len() >= 8);
    assert!(
        one == listing(&dir.path().join("out2")),
        "-j 1 and -j 2 differ"
    );
    assert!(
        one == listing(&dir.path().join("out7")),
        "-j 1 and -j 7 differ"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn all_good_inputs_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.dmp"), demo_dump(1)).unwrap();
    let o = leakdiag(dir.path(), &["analyze", "a.dmp", "-o", "r"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 analysed, 0 failed"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["analyze"][..],
        &["analyze", "x.dmp", "-j", "0"],
        &["frobnicate"],
        &["analyze", "--bogus", "x"],
    ] {
        let o = leakdiag(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let o = leakdiag(dir.path(), &["analyze", "empty", "-o", "r"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no dumps found"));
    let o = leakdiag(dir.path(), &["--help"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_missing_input_is_listed_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.dmp"), demo_dump(1)).unwrap();
    let o = leakdiag(dir.path(), &["analyze", "a.dmp", "missing.dmp", "-o", "r"]);
    assert_eq!(o.status.code(), Some(1));
    let index = read_json(&dir.path().join("r/index.json"));
    assert_eq!(index["inputs"][0]["status"], "error");
    assert!(index["inputs"][0]["error"]
        .as_str()
        .unwrap()
        .contains("missing.dmp"));
    assert_eq!(index["inputs"][1]["status"], "ok");
}

#[test]
fn inspect_lists_streams_modules_and_the_stream_header() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.dmp"), demo_dump(1)).unwrap();
    let o = leakdiag(dir.path(), &["inspect", "a.dmp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "0x4c440001 leakdiag allocation stream",
        "ModuleListStream",
        "SystemInfoStream",
        "odbcvend.dll",
        "odbcvend.pdb 030303030303030303030303030303031",
        "oldplugin.dll",
        "unloaded",
        "version            1.0",
        "return addresses: true",
        "allocations        offset",
        "outstanding        2649 allocations, 2695424 bytes",
        "allocator_modules = ldtrack.dll",
        "pid                4711",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }

    let full = demo_dump(1);
    let mut bad = full.clone();
    // Break the stream's magic: inspect still lists the rest and exits 1.
    let at = find(&bad, b"LEAK").unwrap();
    bad[at] = b'X';
    std::fs::write(dir.path().join("bad.dmp"), bad).unwrap();
    let o = leakdiag(dir.path(), &["inspect", "bad.dmp"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("ModuleListStream") && out.contains("error: ") && out.contains("magic"),
        "{out}"
    );

    std::fs::write(dir.path().join("junk.dmp"), "junk").unwrap();
    let o = leakdiag(dir.path(), &["inspect", "junk.dmp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("junk.dmp: not a minidump"));
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The progress bar shows on a terminal only, and `--quiet` silences it. A real
/// pseudo-terminal comes from util-linux's `script`.
#[test]
fn progress_shows_on_a_terminal_and_quiet_silences_it() {
    if !crate::helpers::require_tool("script", "bsdutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.dmp"), demo_dump(1)).unwrap();
    std::fs::write(dir.path().join("b.dmp"), demo_dump(2)).unwrap();
    let on_tty = |extra: &str| {
        let cmd = format!(
            "{} analyze a.dmp b.dmp -o out {extra}",
            env!("CARGO_BIN_EXE_leakdiag")
        );
        let o = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(dir.path())
            .output()
            .expect("util-linux's script");
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let shown = on_tty("");
    assert!(shown.contains("2/2 dumps"), "{shown}");
    assert!(on_tty("--quiet").is_empty());
    // Not a terminal: no bar, only the one-line result.
    let o = leakdiag(dir.path(), &["analyze", "a.dmp", "b.dmp", "-o", "out2"]);
    assert!(!stderr(&o).contains("dumps  "), "{}", stderr(&o));
}
