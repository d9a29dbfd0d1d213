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
