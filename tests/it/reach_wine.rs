//! Issue 13 end to end under Wine: `tracker/test-reach.sh` runs `demo/reach.c` under
//! `ldtrack run`, takes a full dump from outside the process while it waits, and
//! leaves the program's own truth: per case (function), how many blocks are
//! unreachable, unreferenced and reachable, and who holds the reachable ones.
//! leakdiag's reachability analysis must give exactly those counts per function and
//! name the holders: the cache by its global `reach.exe!g_cache` (from the PDB), the
//! requests by the main thread's stack.
//!
//! Needs the tools of tests/it/tracker.rs (skipped without them, with a line naming
//! them; an error under `LEAKDIAG_REQUIRE_TOOLS=1`). The tracker is built into, and
//! the dump written to, a folder under target/.

use crate::helpers::{leakdiag, read_json, require_tools, stderr, target_tmp};
use crate::tracker::{run_script, TRACKER_TOOLS};
use serde_json::Value;
use std::collections::HashMap;

/// One truth line of reach.exe (format: the comment at the top of demo/reach.c).
#[derive(Debug)]
struct Case {
    function: String,
    count: u64,
    bytes: u64,
    unreachable: u64,
    unreferenced: u64,
    reachable: u64,
    held_by_untracked: u64,
    holder: Option<String>,
    holder_kind: String,
}

fn read_truth(text: &str) -> Vec<Case> {
    text.lines()
        .filter(|l| l.starts_with("truth "))
        .map(|l| {
            let kv: HashMap<&str, &str> = l
                .split_whitespace()
                .skip(2)
                .filter_map(|f| f.split_once('='))
                .collect();
            let n = |k: &str| -> u64 {
                kv.get(k)
                    .unwrap_or_else(|| panic!("{k} missing in {l}"))
                    .parse()
                    .unwrap()
            };
            Case {
                function: kv["function"].to_owned(),
                count: n("count"),
                bytes: n("bytes"),
                unreachable: n("unreachable"),
                unreferenced: n("unreferenced"),
                reachable: n("reachable"),
                held_by_untracked: n("held_by_untracked"),
                holder: kv.get("holder").map(|s| s.to_string()),
                holder_kind: kv["holder_kind"].to_owned(),
            }
        })
        .collect()
}

/// `{allocations, bytes}` of one class.
fn class(v: &Value, name: &str) -> (u64, u64) {
    let c = &v["reachability"][name];
    (
        c["allocations"]
            .as_u64()
            .unwrap_or_else(|| panic!("reachability.{name}.allocations missing in {v}")),
        c["bytes"].as_u64().unwrap(),
    )
}

/// Whether a stack of the report is charged to `function` of reach.exe (its
/// responsible frame lies there; other stacks may pass through it).
fn stack_of(stack: &Value, function: &str) -> bool {
    stack["frames"].as_array().is_some_and(|frames| {
        frames.iter().any(|f| {
            f["responsible"] == true
                && f["function"]
                    .as_str()
                    .is_some_and(|name| name == function || name.ends_with(&format!("!{function}")))
        })
    })
}

#[test]
fn reachability_matches_the_programs_own_truth_under_wine() {
    if !require_tools(TRACKER_TOOLS) {
        return;
    }
    let build = target_tmp("tracker-reach");
    let out = build.join("reach-out");
    let log = run_script("test-reach.sh", &[&out], &build);
    assert!(log.contains("reach: 5 of 5 cases hold"), "{log}");
    let truth = read_truth(&std::fs::read_to_string(out.join("truth.txt")).unwrap());
    assert_eq!(truth.len(), 5, "{truth:?}");

    let dir = tempfile::tempdir().unwrap();
    let dump = out.join("reach.dmp");
    let o = leakdiag(
        dir.path(),
        &[
            "analyze",
            dump.to_str().unwrap(),
            "-o",
            "out",
            "-s",
            out.to_str().unwrap(),
            // Every case's stack among the samples (reach.exe has a few more).
            "--stacks",
            "20",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_json(&dir.path().join("out/reach/report.json"));
    assert_eq!(r["tracking"]["version"], "1.3");
    let modules = r["sections"]["leak"]["modules"].as_array().unwrap();
    let reach = modules
        .iter()
        .find(|m| m["name"] == "reach.exe")
        .unwrap_or_else(|| panic!("reach.exe missing in {modules:?}"));

    // Per function: exactly the truth's counts in each class.
    let functions = reach["functions"].as_array().unwrap();
    for case in &truth {
        let name = format!("reach.exe!{}", case.function);
        let f = functions
            .iter()
            .find(|f| f["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing in {functions:?}"));
        let per = case.bytes / case.count;
        assert_eq!(
            (f["allocations"].as_u64(), f["bytes"].as_u64()),
            (Some(case.count), Some(case.bytes)),
            "{name}"
        );
        for (cls, want) in [
            ("unreachable", case.unreachable),
            ("unreferenced", case.unreferenced),
            ("reachable", case.reachable),
            ("held_by_untracked", case.held_by_untracked),
        ] {
            assert_eq!(class(f, cls), (want, want * per), "{name}: {cls}");
        }
    }

    // The module's classes hold at least the cases' blocks (reach.exe makes a few
    // more: its C runtime's buffers).
    let sum = |f: fn(&Case) -> u64| truth.iter().map(f).sum::<u64>();
    assert!(class(reach, "unreachable").0 >= sum(|c| c.unreachable));
    assert!(class(reach, "unreferenced").0 >= sum(|c| c.unreferenced));
    assert!(class(reach, "reachable").0 >= sum(|c| c.reachable));

    // Holders: the cache by its global (named from the PDB), the requests by the main
    // thread's stack; in the module's top holders and in each case's stack.
    let holders = reach["holders"].as_array().unwrap();
    let stacks = reach["stacks"].as_array().unwrap();
    for case in truth.iter().filter(|c| c.reachable > 0) {
        let matches = |h: &Value| {
            h["kind"] == case.holder_kind.as_str()
                && case
                    .holder
                    .as_ref()
                    .is_none_or(|root| h["root"].as_str().is_some_and(|r| r.starts_with(root)))
        };
        let held: u64 = holders
            .iter()
            .filter(|h| matches(h))
            .map(|h| h["allocations"].as_u64().unwrap())
            .sum();
        assert!(
            held >= case.reachable,
            "{}: holders of reach.exe: {holders:?}",
            case.function
        );
        let stack = stacks
            .iter()
            .find(|s| stack_of(s, &case.function))
            .unwrap_or_else(|| panic!("no stack of {} in {stacks:?}", case.function));
        let top = &stack["holders"][0];
        assert!(matches(top), "{}: {top}", case.function);
        assert!(top["chain"]["links"].is_array(), "{top}");
        if case.holder_kind == "stack" {
            // main's local array: the frame is named from reach.pdb.
            let root = top["chain"]["root"].as_str().unwrap_or_default();
            assert!(root.ends_with("in the frame of reach.exe!main"), "{root}");
        }
        // Every reachable block of the case is held by such a root (one holder, or one
        // per global offset such as g_cache+0x18).
        let by_root: u64 = stack["holders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| matches(h))
            .map(|h| h["allocations"].as_u64().unwrap())
            .sum();
        assert_eq!(
            by_root, case.reachable,
            "{}: {}",
            case.function, stack["holders"]
        );
        assert_eq!(class(stack, "reachable").0, case.reachable);
    }
    // The cache's holder root is the global's symbol, e.g. "reach.exe!g_cache+0x18".
    assert!(holders.iter().any(|h| h["root"]
        .as_str()
        .is_some_and(|r| r.starts_with("reach.exe!g_cache"))
        && h["kind"] == "global"));
    // Leaked cases' stacks (a case may allocate from more than one call site): all
    // their blocks unreachable, no holders.
    for case in truth.iter().filter(|c| c.reachable == 0) {
        let of_case: Vec<&Value> = stacks
            .iter()
            .filter(|s| stack_of(s, &case.function))
            .collect();
        assert!(!of_case.is_empty(), "no stack of {}", case.function);
        let total = |cls: &str| of_case.iter().map(|s| class(s, cls).0).sum::<u64>();
        assert_eq!(total("unreachable"), case.unreachable, "{}", case.function);
        assert_eq!(
            total("unreferenced"),
            case.unreferenced,
            "{}",
            case.function
        );
        assert!(of_case
            .iter()
            .all(|s| s["holders"].as_array().is_some_and(|h| h.is_empty())));
    }
}
