//! The script registry: listing, selection, and failures that stay contained.

use crate::helpers::{leakdiag, read_json, stderr, stdout};
use crate::synth::demo_dump;
use leakdiag::analysis::scripts::{
    registry, run_scripts, Script, ScriptContext, ScriptInfo, ScriptOutput,
};
use leakdiag::analysis::table::Table;
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::dump::DumpFile;
use leakdiag::model::{SectionData, SectionError};

#[test]
fn scripts_lists_every_script_with_a_line() {
    let o = leakdiag(std::path::Path::new("."), &["scripts"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), registry().len());
    for s in registry() {
        assert!(
            out.contains(s.info().name) && out.contains(s.info().description),
            "{out}"
        );
    }
}

#[test]
fn scripts_can_be_selected_and_unknown_names_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.dmp"), demo_dump(1)).unwrap();
    let o = leakdiag(
        dir.path(),
        &["analyze", "d.dmp", "-o", "out", "--scripts", "leak"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_json(&dir.path().join("out/d/report.json"));
    let sections = r["sections"].as_object().unwrap();
    assert_eq!(sections.keys().collect::<Vec<_>>(), ["leak"]);

    let o = leakdiag(dir.path(), &["analyze", "d.dmp", "--scripts", "leak,nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown script \"nope\""));
}

/// A script with a bug.
struct Broken;

impl Script for Broken {
    fn info(&self) -> &'static ScriptInfo {
        &ScriptInfo {
            name: "broken",
            title: "Broken",
            description: "panics",
            needs: &[],
        }
    }
    fn run(&self, _: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        panic!("index out of range in a test script")
    }
}

#[test]
fn a_failing_script_is_recorded_and_the_others_still_run() {
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), demo_dump(1)).unwrap();
    let dump = DumpFile::open(f.path()).unwrap();
    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let process = dump.process_info(&modules);
    let stream = dump.allocation_stream().unwrap();
    let options = AnalyzeOptions::default();
    let table = stream
        .as_ref()
        .map(|s| Table::read(s, &modules, &options.leak.system_modules).unwrap());
    let ctx = ScriptContext {
        dump: &dump,
        modules: &modules,
        process: &process,
        stream: stream.as_ref(),
        table: table.as_ref(),
        reachability: None,
        options: &options,
    };
    let broken: &'static dyn Script = &Broken;
    let leak = leakdiag::analysis::scripts::find("leak").unwrap();
    let out = run_scripts(&[broken, leak], &ctx);
    assert_eq!(out.len(), 2);
    match &out[0].0.result {
        Err(SectionError::Failed(m)) => {
            assert!(m.contains("index out of range in a test script"), "{m}")
        }
        other => panic!("{:?}", other.as_ref().map(|_| ())),
    }
    let Ok(SectionData::Leak(leak)) = &out[1].0.result else {
        panic!("the leak script did not run");
    };
    assert_eq!(leak.totals.allocations, 2649);
}
