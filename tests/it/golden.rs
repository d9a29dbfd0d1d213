//! Golden files: report.json and index.json of the committed synthetic incident
//! (tests/fixtures/synthetic-incident, made by `examples/make-synthetic-incident.rs`).
//! Regenerate after an intended change with `LEAKDIAG_BLESS=1 cargo test golden`
//! and review the diff.

use crate::helpers::{bless, leakdiag, root, stderr};
use crate::synth::demo_dump;

fn check(actual: &str, golden: &str) {
    let path = root().join("tests/golden").join(golden);
    if bless() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with LEAKDIAG_BLESS=1)", path.display()));
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(actual.lines().count().min(expected.lines().count()));
        panic!(
            "{golden} differs from {} at line {}:\n  actual:   {:?}\n  expected: {:?}\n(if intended: LEAKDIAG_BLESS=1 cargo test golden)",
            path.display(),
            line + 1,
            actual.lines().nth(line),
            expected.lines().nth(line)
        );
    }
}

#[test]
fn committed_demo_incident_matches_its_generator() {
    for hour in 1..=3 {
        let path = root().join(format!(
            "tests/fixtures/synthetic-incident/w3wp_4711_{hour}h.dmp"
        ));
        let committed = std::fs::read(&path).unwrap();
        assert!(
            committed == demo_dump(hour),
            "{} is stale: run `cargo run --example make-synthetic-incident`",
            path.display()
        );
    }
}

#[test]
fn demo_incident_reports_match_golden_files() {
    let out = tempfile::tempdir().unwrap();
    let o = leakdiag(
        &root(),
        &[
            "analyze",
            "tests/fixtures/synthetic-incident",
            "-o",
            out.path().to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let read = |p: &str| std::fs::read_to_string(out.path().join(p)).unwrap();
    check(
        &read("w3wp_4711_3h/report.json"),
        "synthetic-3h.report.json",
    );
    check(&read("index.json"), "synthetic.index.json");
}
