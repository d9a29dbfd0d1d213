//! Issue 14, item by item: each numbered finding run on its exact input (built by
//! `hostile.rs`), asserting a hang bound, bounded output, the exit code and the file
//! system outside the output folder.

use crate::helpers::read_json;
use crate::hostile::*;
use std::path::{Path, PathBuf};

/// A scratch folder with `name` written into it.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The file system under `dir` but the output folders (`out*`): what a run must leave
/// as it was.
fn around(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    snapshot(dir, &[])
        .into_iter()
        .filter(|(p, _)| {
            let first = p.strip_prefix(dir).ok().and_then(|r| r.components().next());
            !first.is_some_and(|c| c.as_os_str().to_string_lossy().starts_with("out"))
        })
        .collect()
}

/// No staging folder of a run is left beside the output folder.
fn no_leftovers(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".leakdiag-"), "left behind: {name}");
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn item_1_a_million_frame_stack_is_listed_up_to_the_limit_and_counted() {
    let dir = scratch();
    write(dir.path(), "deep.dmp", &deep_stack_dump(1_000_000));
    let before = snapshot(dir.path(), &[&dir.path().join("out")]);
    let r = run(dir.path(), &["analyze", "deep.dmp", "-o", "out", "-q"]);
    eprintln!("item 1: analyze took {:?}", r.took);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        size_of(&dir.path().join("out")) < 4 * MIB,
        "output stays small"
    );
    let report = read_json(&dir.path().join("out/deep/report.json"));
    // 256 frames listed and the responsible one (frame 1, in vendor.dll) among them.
    assert!(
        report.to_string().contains("\"frames_omitted\":999744"),
        "the full depth is counted"
    );
    let html = std::fs::read_to_string(dir.path().join("out/deep/report.html")).unwrap();
    assert!(
        html.contains("999,744 more frames not listed"),
        "the page says so"
    );
    no_leftovers(dir.path());
    assert_eq!(before, snapshot(dir.path(), &[&dir.path().join("out")]));
}

#[test]
fn item_2_overlapping_deep_stacks_cost_frames_plus_stacks() {
    let dir = scratch();
    write(
        dir.path(),
        "a_overlap.dmp",
        &overlapping_stacks_dump(300_000, 1_000),
    );
    write(dir.path(), "b_small.dmp", &small_dump());
    let before = snapshot(dir.path(), &[&dir.path().join("out")]);
    let r = run(
        dir.path(),
        &[
            "analyze",
            "a_overlap.dmp",
            "b_small.dmp",
            "-o",
            "out",
            "-q",
            "-j",
            "1",
        ],
    );
    assert_eq!(before, snapshot(dir.path(), &[&dir.path().join("out")]));
    eprintln!("item 2: analyze took {:?}", r.took);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let index = read_json(&dir.path().join("out/index.json"));
    assert_eq!(index["ok"], 2, "both dumps reported");
    // Every stack is charged past its 299,000-odd ntdll frames, to vendor.dll.
    let report = read_json(&dir.path().join("out/a_overlap/report.json"));
    assert!(report.to_string().contains("vendor.dll"));
    assert!(size_of(&dir.path().join("out")) < 8 * MIB);
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn item_3_a_fifo_is_refused_not_waited_on() {
    let dir = scratch();
    mkfifo(&dir.path().join("x.dmp"));
    std::fs::create_dir(dir.path().join("in")).unwrap();
    mkfifo(&dir.path().join("in/pipe.dmp"));
    write(dir.path(), "in/good.dmp", &small_dump());

    let before = around(dir.path());
    let r = run(dir.path(), &["analyze", "x.dmp", "-o", "out", "-q"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stderr().contains("x.dmp") && r.stderr().contains("named pipe"),
        "{}",
        r.stderr()
    );

    let r = run(dir.path(), &["inspect", "x.dmp"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("named pipe"), "{}", r.stderr());

    // Inside a searched folder: skipped, and listed with why.
    let r = run(dir.path(), &["analyze", "in", "-o", "out2", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let index = read_json(&dir.path().join("out2/index.json"));
    assert_eq!(index["ok"], 1);
    let skipped = index["skipped"].as_array().expect("skipped inputs listed");
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("pipe.dmp"));
    assert!(skipped[0]["reason"]
        .as_str()
        .unwrap()
        .contains("named pipe"));
    assert_eq!(
        before,
        around(dir.path()),
        "nothing outside the output folders changed"
    );
}

#[cfg(unix)]
#[test]
fn item_4_symlinks_in_the_output_folder_are_never_written_through() {
    let dir = scratch();
    let d = dir.path();
    write(d, "leakyapp_1.dmp", &small_dump());
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    write(d, "elsewhere/secret.txt", b"secret");
    std::fs::create_dir(d.join("out")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), d.join("out/leakyapp_1")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere/secret.txt"), d.join("out/index.html")).unwrap();
    let before = snapshot(d, &[]);

    let r = run(d, &["analyze", "leakyapp_1.dmp", "-o", "out", "-q"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("symbolic link"), "{}", r.stderr());
    assert_eq!(before, snapshot(d, &[]), "nothing changed anywhere");
    no_leftovers(d);

    // A folder an earlier run wrote, replaced by a link since: refused too.
    let r = run(d, &["analyze", "leakyapp_1.dmp", "-o", "out2", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    std::fs::remove_dir_all(d.join("out2/leakyapp_1")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), d.join("out2/leakyapp_1")).unwrap();
    let before = snapshot(d, &[]);
    let r = run(d, &["analyze", "leakyapp_1.dmp", "-o", "out2", "-q"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert_eq!(before, snapshot(d, &[]));
}

#[test]
fn item_5_a_dump_named_like_a_vendor_folder_keeps_its_report() {
    let dir = scratch();
    let d = dir.path();
    let demo = crate::helpers::root().join("examples/demo-incident/dumps/leakyapp_1.dmp");
    std::fs::copy(demo, d.join("vendor-odbcvend.dll.dmp")).unwrap();
    let before = around(d);
    let r = run(
        d,
        &[
            "analyze",
            "vendor-odbcvend.dll.dmp",
            "--vendor",
            "odbcvend.dll",
            "-o",
            "out",
            "-q",
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let vendor = read_json(&d.join("out/vendor-odbcvend.dll/report.json"));
    assert_eq!(vendor["module"], "odbcvend.dll", "the vendor report");
    let dump = read_json(&d.join("out/vendor-odbcvend.dll-2/report.json"));
    assert!(dump["dump"].is_object(), "the dump's own report, beside it");
    let index = read_json(&d.join("out/index.json"));
    assert_eq!(index["inputs"][0]["report_dir"], "vendor-odbcvend.dll-2");
    assert!(size_of(&d.join("out")) < 8 * MIB);
    assert_eq!(
        before,
        around(d),
        "nothing outside the output folders changed"
    );
}

#[test]
fn item_6_summary_pages_and_terminal_carry_no_markup_or_control_characters() {
    let dir = scratch();
    let d = dir.path();
    write(d, "hostile.dmp", &hostile_names_dump());
    let before = around(d);
    let r = run(d, &["analyze", "hostile.dmp", "-o", "out", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(size_of(&d.join("out")) < 4 * MIB);
    let md = std::fs::read_to_string(d.join("out/hostile/summary.md")).unwrap();
    for bad in ["<img", "<svg", "`tick`", "&amp;.dll", "\u{1b}", "\r"] {
        assert!(!md.contains(bad), "summary.md holds {bad:?}:\n{md}");
    }
    assert!(!has_control(&md));
    assert!(!unescaped_link(&md), "a link can start in:\n{md}");
    // One heading (the title), and the table: a header, a rule and one row per module.
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(headings.len(), 1, "{md}");
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 2 + HOSTILE_NAMES.len(), "{md}");
    assert!(rows.iter().all(|r| r.ends_with('|')));
    // The names still read as themselves once rendered (escaped, not dropped).
    assert!(
        md.contains("&lt;img src=x onerror=alert(1)&gt;.dll"),
        "{md}"
    );
    assert!(md.contains("\\[x\\](javascript:alert(1)).dll"), "{md}");

    for page in [
        "out/hostile/report.html",
        "out/hostile/report.json",
        "out/index.html",
    ] {
        let text = std::fs::read_to_string(d.join(page)).unwrap();
        assert!(!has_control(&text), "{page} holds a control character");
    }
    let html = std::fs::read_to_string(d.join("out/hostile/report.html")).unwrap();
    assert!(!html.contains("<img src=x") && !html.contains("<svg onload"));

    let r = run(d, &["inspect", "hostile.dmp"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        !has_control(&r.stdout()),
        "inspect printed a control character"
    );
    assert!(
        r.stdout()
            .contains("esc\u{fffd}]0;pwned\u{fffd}\u{fffd}[2J.dll"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        before,
        around(d),
        "nothing outside the output folders changed"
    );
}

#[test]
fn item_7_a_failed_run_leaves_the_earlier_report_and_stale_folders_go() {
    let dir = scratch();
    let d = dir.path();
    write(d, "in/a.dmp", &small_dump());
    write(d, "in/b.dmp", &small_dump());
    std::fs::create_dir(d.join("empty")).unwrap();
    let r = run(d, &["analyze", "in", "-o", "out", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    std::fs::create_dir(d.join("out/notes")).unwrap();
    write(d, "out/notes/mine.txt", b"keep me");
    let good = snapshot(d, &[]);

    // Nothing to analyse: exit 2, nothing touched.
    let r = run(d, &["analyze", "empty", "-o", "out", "-q"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert_eq!(good, snapshot(d, &[]));
    // Every input failed: exit 1, the earlier report stays.
    write(d, "bad/broken.dmp", b"MDMP but not really");
    let good = snapshot(d, &[]);
    let r = run(d, &["analyze", "bad", "-o", "out", "-q"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("left as it was"), "{}", r.stderr());
    assert_eq!(good, snapshot(d, &[]));

    // Fewer inputs: b's folder, recorded by the earlier run, goes; notes/ stays, listed.
    let r = run(d, &["analyze", "in/a.dmp", "-o", "out", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(d.join("out/a/report.json").is_file());
    assert!(!d.join("out/b").exists(), "the stale folder is removed");
    assert_eq!(
        std::fs::read(d.join("out/notes/mine.txt")).unwrap(),
        b"keep me"
    );
    let index = read_json(&d.join("out/index.json"));
    assert_eq!(index["foreign_entries"], serde_json::json!(["notes"]));
    no_leftovers(d);
}

#[cfg(unix)]
#[test]
fn item_8_silent_mistakes_are_said() {
    let dir = scratch();
    let d = dir.path();
    let demo = crate::helpers::root().join("examples/demo-incident/dumps/leakyapp_1.dmp");
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::copy(&demo, d.join("in/leakyapp_1.dmp")).unwrap();

    for (vendor, close) in [("nosuch.dll", None), ("odbcvend", Some("odbcvend.dll"))] {
        let r = run(d, &["analyze", "in", "--vendor", vendor, "-o", "out", "-q"]);
        assert_eq!(r.code(), 2, "{}", r.stderr());
        assert!(
            r.stderr().contains(&format!("--vendor {vendor}")),
            "{}",
            r.stderr()
        );
        if let Some(close) = close {
            assert!(
                r.stderr().contains(&format!("did you mean {close}")),
                "{}",
                r.stderr()
            );
        }
        assert!(!d.join("out").exists(), "nothing written");
    }

    let r = run(
        d,
        &["analyze", "in", "-s", "/nonexistent/symbols", "-o", "out"],
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains("warning: -s /nonexistent/symbols"),
        "{}",
        r.stderr()
    );

    std::fs::create_dir(d.join("nodumps")).unwrap();
    let r = run(d, &["analyze", "nodumps", "-o", "out3", "-q"]);
    assert_eq!(r.code(), 2);
    assert!(!d.join("out3").exists(), "no index for no dumps");

    std::os::unix::fs::symlink("loop.dmp", d.join("in/loop.dmp")).unwrap();
    std::os::unix::fs::symlink("/dev/null", d.join("in/null.dmp")).unwrap();
    let r = run(d, &["analyze", "in", "-o", "out4"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let index = read_json(&d.join("out4/index.json"));
    let skipped = index["skipped"].to_string();
    assert!(
        skipped.contains("loop.dmp") && skipped.contains("null.dmp"),
        "{skipped}"
    );
    assert!(skipped.contains("a device"), "{skipped}");
    assert!(r.stderr().contains("skipped"), "{}", r.stderr());
}

#[test]
fn item_9_duplicate_streams_and_overlapping_sections_are_refused() {
    use leakdiag::dump::stream::field;
    let dir = scratch();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dup.dmp",
            duplicate_stream(small_dump()),
            "directory entries",
        ),
        (
            "alloc0.dmp",
            dump_with(stream_with(field::ALLOCATIONS_OFFSET, 0, 8)),
            "allocations_offset = 0 lies inside the 96-byte header",
        ),
        (
            "hdr256.dmp",
            dump_with(stream_with(field::HEADER_SIZE, 256, 4)),
            "frames_offset = 96 lies inside the 256-byte header",
        ),
        (
            "overlap.dmp",
            dump_with(stream_with(field::STACKS_OFFSET, 96, 8)),
            "sections overlap: frames_offset = 96",
        ),
    ];
    for (name, bytes, _) in &cases {
        write(d, name, bytes);
    }
    let sum = dump_with(raw_stream(
        &[VENDOR + 0x10],
        &[(0, 1)],
        &[(u64::MAX, 0), (2, 0)],
        "",
    ));
    write(d, "sum.dmp", &sum);
    let before = around(d);
    for (name, _, message) in &cases {
        let r = run(d, &["analyze", name, "-o", &format!("out-{name}"), "-q"]);
        assert_eq!(r.code(), 1, "{name}: {}", r.stderr());
        assert!(r.stderr().contains(message), "{name}: {}", r.stderr());
        let r = run(d, &["inspect", name]);
        assert_eq!(r.code(), 1, "inspect {name}");
        assert!(
            r.stdout().contains(message),
            "inspect {name}: {}",
            r.stdout()
        );
    }
    // A sum past 2^64: inspect refuses it as analyze does.
    let r = run(d, &["inspect", "sum.dmp"]);
    assert_eq!(r.code(), 1);
    assert!(r.stdout().contains("more than 2^64"), "{}", r.stdout());
    assert_eq!(
        before,
        around(d),
        "nothing outside the output folders changed"
    );
}

#[test]
fn item_10_an_output_path_that_is_a_file_is_a_usage_error_before_analysis() {
    let dir = scratch();
    let d = dir.path();
    write(d, "a.dmp", &small_dump());
    write(d, "report", b"not a folder");
    let before = snapshot(d, &[]);
    let r = run(d, &["analyze", "a.dmp", "-o", "report"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert_eq!(r.stderr().lines().count(), 1, "one line: {}", r.stderr());
    assert!(r.stderr().contains("-o report") && !r.stderr().contains("analysed"));
    assert_eq!(before, snapshot(d, &[]));
}

/// Whether `md` holds `](` whose `]` is not backslash-escaped: a link or image.
fn unescaped_link(md: &str) -> bool {
    md.match_indices("](")
        .any(|(i, _)| !md[..i].ends_with('\\'))
}

#[test]
fn output_folders_that_do_not_exist_yet_or_have_no_name_of_their_own() {
    let dir = scratch();
    let d = dir.path();
    write(d, "a.dmp", &small_dump());
    let r = run(d, &["analyze", "a.dmp", "-o", "deep/er/out", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(d.join("deep/er/out/a/report.json").is_file());
    no_leftovers(&d.join("deep/er"));

    std::fs::create_dir(d.join("here")).unwrap();
    let r = run(&d.join("here"), &["analyze", "../a.dmp", "-o", ".", "-q"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(d.join("here/a/report.json").is_file() && d.join("here/index.json").is_file());
    no_leftovers(d);
}
