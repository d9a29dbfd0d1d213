//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the leakdiag binary with `args` in `cwd`.
pub fn leakdiag(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leakdiag"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run leakdiag")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether golden files should be rewritten instead of compared
/// (`LEAKDIAG_BLESS=1 cargo test`).
pub fn bless() -> bool {
    std::env::var_os("LEAKDIAG_BLESS").is_some_and(|v| v == "1")
}

/// The leak section of a report.
pub fn leak_of(r: &leakdiag::model::DumpReport) -> &leakdiag::model::LeakAnalysis {
    r.leak().expect("the leak section")
}

/// Analyses a dump given as bytes.
pub fn analyze_synth(
    bytes: Vec<u8>,
    options: &leakdiag::analysis::AnalyzeOptions,
) -> leakdiag::model::DumpReport {
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    leakdiag::analysis::analyze_dump(f.path(), options).unwrap()
}

/// The findings of one script in a report's summary.
pub fn findings_of<'a>(
    r: &'a leakdiag::model::DumpReport,
    script: &str,
) -> Vec<&'a leakdiag::model::Finding> {
    r.summary.iter().filter(|f| f.script == script).collect()
}

/// Where `tool` is: a path (it holds a `/`) when that file exists, else the first
/// executable file of that name in a `PATH` folder.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        let p = PathBuf::from(tool);
        return p.exists().then_some(p);
    }
    let is_executable = |p: &Path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            p.is_file()
        }
    };
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

/// Whether every tool a test shells out to is installed: `tools` are (program on
/// `PATH` or file path, Debian package that provides it). When some are missing, the
/// test is skipped: this prints one line naming them and their packages, straight to
/// stderr so that `cargo test` shows it for a passing test, and returns false for the
/// test to return early. Under `LEAKDIAG_REQUIRE_TOOLS=1` (as `.ci/run` sets) a
/// missing tool fails the test instead.
pub fn require_tools(tools: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| find_tool(tool).is_none())
        .map(|(tool, package)| format!("{tool} (Debian package {package})"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let current = std::thread::current();
    let test = current.name().filter(|n| *n != "main").unwrap_or("test");
    let line = format!("{test}: missing {}", missing.join(", "));
    if std::env::var_os("LEAKDIAG_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
        panic!("{line}; LEAKDIAG_REQUIRE_TOOLS=1 makes a missing tool an error");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped {line}");
    false
}

/// [`require_tools`] for one tool.
pub fn require_tool(tool: &str, package: &str) -> bool {
    require_tools(&[(tool, package)])
}

/// A folder of this test run under `target/` (Cargo's `CARGO_TARGET_TMPDIR`), made if
/// missing and kept between runs: where tests put what they build or install, never
/// in the source tree.
pub fn target_tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}
