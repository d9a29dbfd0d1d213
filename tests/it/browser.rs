//! The reports in a real browser: `analyze` the demo incident (with a vendor report), then
//! tests/browser/check-pages.mjs opens index.html, the first dump's report.html and
//! any vendor report in Debian's Chromium (playwright-core, network cut off), with
//! JavaScript on and off, and checks that they load without failed requests, console
//! or page errors, and show their charts and content. Screenshots stay in
//! `target/browser-artefacts/`.
//!
//! Needs Debian's `chromium` and `nodejs`/`npm`; without them the test is skipped
//! with a line naming the package (it fails under `LEAKDIAG_REQUIRE_TOOLS=1`).
//! playwright-core is installed with `npm ci` from tests/browser's package.json and
//! package-lock.json into a folder under target/, never into the source tree.

use crate::helpers::{leakdiag, read_json, require_tools, root, stderr, target_tmp};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest the page check may take before its browser is killed, in seconds;
/// `LEAKDIAG_BROWSER_TIMEOUT_S` overrides it.
const CHECK_TIMEOUT_S: u64 = 120;
/// The longest `npm ci` may take.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

struct Run {
    ok: bool,
    timed_out: bool,
    status: String,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cmd`, killing its process group when it runs past `limit`: a hung browser
/// fails the test instead of hanging the suite.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> Run {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let program = format!("{cmd:?}");
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            timed_out = true;
            kill_group(&mut child);
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    Run {
        ok: status.success() && !timed_out,
        timed_out,
        status: status.to_string(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed,
    }
}

/// Kills the child, its process group and, on Linux, every process descended from it:
/// playwright starts Chromium in a process group of its own.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let mut pids = vec![child.id()];
        let mut i = 0;
        while i < pids.len() {
            let parent = pids[i];
            pids.extend(children_of(parent));
            i += 1;
        }
        let mut args = vec!["-KILL".to_owned(), format!("-{}", child.id())];
        args.extend(pids.iter().map(u32::to_string));
        let _ = Command::new("kill")
            .args(&args)
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}

/// The processes whose parent is `pid` (from /proc; none elsewhere).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // /proc/<p>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// target/ (or $CARGO_TARGET_DIR): two folders above the test binary's leakdiag.
fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_leakdiag"));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root().join("target"))
}

/// The pages to check in `out`: index.html, the first dump's report.html, and every
/// vendor report (`vendor-*/report.html`, at the top or in a dump's folder).
fn pages_of(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let is_vendor = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("vendor-"))
    };
    let first_dump = dirs
        .iter()
        .find(|d| !is_vendor(d) && d.join("report.html").is_file())
        .unwrap_or_else(|| panic!("no <dump>/report.html in {}", out.display()));
    let mut pages = vec![out.join("index.html"), first_dump.join("report.html")];
    let mut vendors: Vec<PathBuf> = Vec::new();
    for d in &dirs {
        if is_vendor(d) {
            vendors.push(d.join("report.html"));
        } else if let Ok(entries) = std::fs::read_dir(d) {
            vendors.extend(
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.is_dir() && is_vendor(p))
                    .map(|p| p.join("report.html")),
            );
        }
    }
    vendors.retain(|p| p.is_file());
    vendors.sort();
    pages.extend(vendors);
    pages
}

/// Copies tests/browser's package.json, package-lock.json and check-pages.mjs into
/// `dir` (under target/) and installs its node_modules there (playwright-core only, no
/// browser download) when missing or not the version package-lock.json pins. Returns
/// the copied check-pages.mjs, which node runs so that it finds that node_modules.
fn prepare_check(dir: &Path) -> PathBuf {
    let source = root().join("tests/browser");
    for file in ["package.json", "package-lock.json", "check-pages.mjs"] {
        std::fs::copy(source.join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("copy {file} into {}: {e}", dir.display()));
    }
    let script = dir.join("check-pages.mjs");
    let pinned = read_json(&dir.join("package-lock.json"))["packages"]
        ["node_modules/playwright-core"]["version"]
        .as_str()
        .map(str::to_owned)
        .expect("package-lock.json pins playwright-core");
    let installed = dir.join("node_modules/playwright-core/package.json");
    if installed.is_file() && read_json(&installed)["version"].as_str() == Some(&pinned) {
        return script;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    let run = run_with_timeout(npm, NPM_TIMEOUT);
    assert!(
        run.ok,
        "npm ci in {} failed ({}{}):\n{}\n{}",
        dir.display(),
        run.status,
        if run.timed_out { ", timed out" } else { "" },
        run.stdout,
        run.stderr
    );
    script
}

#[test]
fn reports_render_in_chromium() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| CHROMIUM.to_owned());
    if !require_tools(&[(&chromium, "chromium"), ("node", "nodejs"), ("npm", "npm")]) {
        return;
    }
    let check_dir = target_tmp("browser-check");
    let script = prepare_check(&check_dir);

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let o = leakdiag(
        &root(),
        &[
            "analyze",
            "examples/demo-incident/dumps",
            "-s",
            "examples/demo-incident/symbols",
            "--images",
            "examples/demo-incident/symbols",
            "--vendor",
            "odbcvend.dll",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut pages = pages_of(&out);
    // A small full-memory dump: the reachability section and the module cards'
    // classes, holders and chains.
    let full = tmp.path().join("full.dmp");
    std::fs::write(&full, crate::reachability::showcase()).unwrap();
    let out_full = tmp.path().join("report-full");
    let o = leakdiag(
        &root(),
        &[
            "analyze",
            full.to_str().unwrap(),
            "-o",
            out_full.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    pages.extend(pages_of(&out_full));

    let artefacts = target_dir().join("browser-artefacts");
    let _ = std::fs::remove_dir_all(&artefacts);
    std::fs::create_dir_all(&artefacts).unwrap();

    let mut node = Command::new("node");
    node.arg(&script)
        .arg(&artefacts)
        .args(&pages)
        .env("CHROMIUM_PATH", &chromium)
        .current_dir(&check_dir);
    let limit = std::env::var("LEAKDIAG_BROWSER_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(CHECK_TIMEOUT_S), Duration::from_secs);
    let run = run_with_timeout(node, limit);
    let log = format!(
        "{} ({}, {:.1} s{})\n--- stdout\n{}--- stderr\n{}",
        "node tests/browser/check-pages.mjs",
        run.status,
        run.elapsed.as_secs_f64(),
        if run.timed_out {
            format!(", killed after {} s", limit.as_secs())
        } else {
            String::new()
        },
        run.stdout,
        run.stderr
    );
    std::fs::write(artefacts.join("check-pages.log"), &log).unwrap();
    assert!(run.ok, "browser check failed: {log}");
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        summary,
        format!("{} passed, 0 failed", pages.len()),
        "unexpected summary: {log}"
    );
}
