//! End to end under Wine: the demo program and its "third-party" DLLs run through
//! `ldtrack run`, three dumps are taken with `ldtrack dump`, and leakdiag's report
//! must show exactly what the demo leaked, named from the PDBs.
//!
//! Needs Debian's clang-14, lld-14, mingw-w64, wine and wine64 (`.ci/run` installs
//! them); without them the test is skipped with a line naming what to install (it
//! fails under `LEAKDIAG_REQUIRE_TOOLS=1`). The tracker is built into, and its dumps
//! written to, a folder under target/.

use crate::helpers::{leakdiag, read_json, require_tools, root, stderr, target_tmp};
use leakdiag::dump::stream::TrackerRegionKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Requests made before each dump, and what each vendor DLL leaks per request.
const REQUESTS: [u64; 3] = [100, 200, 400];
const BYTES_PER_REQUEST: u64 = 416;
const BLOCKS_PER_REQUEST: u64 = 2;

fn sequence_dumps(out: &std::path::Path) -> Vec<PathBuf> {
    (1..=3)
        .map(|k| {
            std::fs::read_dir(out)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.starts_with("leakyapp_") && name.ends_with(&format!("_{k}.dmp"))
                })
                .unwrap_or_else(|| panic!("dump {k} missing in {}", out.display()))
        })
        .collect()
}

/// What tracker/test.sh, tracker/test-truth.sh and their Makefile run.
pub(crate) const TRACKER_TOOLS: &[(&str, &str)] = &[
    ("bash", "bash"),
    ("make", "make"),
    ("bc", "bc"),
    ("python3", "python3"),
    ("cargo", "cargo"),
    ("clang-14", "clang-14"),
    ("ld.lld-14", "lld-14"),
    ("llvm-dlltool-14", "llvm-14"),
    ("x86_64-w64-mingw32-windres", "binutils-mingw-w64-x86-64"),
    ("/usr/x86_64-w64-mingw32/include/windows.h", "mingw-w64"),
    ("wine", "wine"),
    ("wineserver", "wine"),
];

/// Issue 11's table, row by row, under Wine: `tracker/test-truth.sh` runs
/// `demo/truth.c`, a program that prints its own truth about every block it keeps
/// or frees (Local/Global pairs, HeapDestroy, HeapFree on the wrong heap, a msvcrt
/// block given to ucrtbase's free, HeapAlloc through GetProcAddress, a DLL that
/// imports API sets, BSTRs and their cache, DllMain of a DLL loaded later, realloc in
/// place and moving, and an audit of 33 allocation entry points), an 8-thread stress
/// with dumps during the run, a table-full run, `ldtrack dump` of an exiting process
/// and `--dump-at-exit`; each dump must match that truth exactly.
/// Runs one of tracker/'s scripts with its build folder `build` and `args`; fails the
/// test with the script's output unless it succeeds, else returns that output.
pub fn run_script(script: &str, args: &[&Path], build: &Path) -> String {
    let run = Command::new("bash")
        .arg(script)
        .args(args)
        .current_dir(root().join("tracker"))
        .env("LDTRACK_BUILD", build)
        .output()
        .unwrap_or_else(|e| panic!("run tracker/{script}: {e}"));
    let log =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "tracker/{script} failed:\n{log}");
    log
}

#[test]
fn the_tracker_sees_every_allocation_and_free_whatever_path_it_takes() {
    if !require_tools(TRACKER_TOOLS) {
        return;
    }
    let build = target_tmp("tracker-truth");
    let log = run_script("test-truth.sh", &[], &build);
    for line in [
        "scenarios:   truth: 68 of 68 facts hold",
        "stress:   truth: 16 of 16 facts hold",
        "full:   truth: 1 of 1 facts hold",
        "atexit:   truth: 68 of 68 facts hold",
        "exit: prompt error",
        "7 passed, 0 failed",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }

    // leakdiag reads the same dump: the families (allocator 6 included) and the
    // DLLs' blocks are charged exactly as the program's truth says.
    let dump = build.join("truth-out/scenarios/scenarios.dmp");
    let dir = tempfile::tempdir().unwrap();
    let b = build.to_str().unwrap();
    let args = [
        "analyze",
        dump.to_str().unwrap(),
        "-o",
        "out",
        "-s",
        b,
        "--images",
        b,
    ];
    let o = leakdiag(dir.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_json(&dir.path().join("out/scenarios/report.json"));
    // 1.2: module strings and the dump type (issue 17); 1.3: tracker regions (issue 13).
    assert_eq!(r["tracking"]["version"], "1.3");
    let modules = r["sections"]["leak"]["modules"].as_array().unwrap();
    let module = |name: &str| {
        modules
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let family = |m: &serde_json::Value, kind: &str| {
        let a = m["allocators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} missing in {}", m["name"]));
        (
            a["allocations"].as_u64().unwrap(),
            a["bytes"].as_u64().unwrap(),
        )
    };
    let truth = module("truth.exe");
    // 2 LocalAlloc + 2 GlobalAlloc kept (7009, 7011 bytes) + 6 audit entry points
    assert_eq!(
        family(truth, "local_global"),
        (
            10,
            2 * 7009 + 2 * 7011 + (7611..=7621).step_by(2).sum::<u64>()
        )
    );
    // 3 SysAllocStringByteLen(7029), 1 from the cache (7028), 1 audit (7669)
    assert_eq!(family(truth, "bstr"), (5, 3 * 7029 + 7028 + 7669));
    // CoTaskMemAlloc, IMalloc::Alloc, CoTaskMemRealloc, 2 audit entry points
    assert_eq!(family(truth, "com"), (5, 7515 + 7517 + 7521 + 7665 + 7667));
    let apiset = module("apisetvend.dll");
    assert_eq!(
        (apiset["allocations"].as_u64(), apiset["bytes"].as_u64()),
        (Some(3), Some(3 * 70250))
    );
    assert_eq!(family(apiset, "virtual"), (3, 3 * 70250));
    let late = module("latedll.dll");
    assert_eq!(
        (late["allocations"].as_u64(), late["bytes"].as_u64()),
        (Some(3), Some(3 * 7035))
    );
}

#[test]
fn a_real_tracked_process_gives_the_exact_leak_named_from_its_pdbs() {
    // What tracker/test.sh and its Makefile run.
    if !require_tools(TRACKER_TOOLS) {
        return;
    }
    let build = target_tmp("tracker-build");
    run_script("test.sh", &[], &build);

    let dumps = sequence_dumps(&build.join("test-out"));
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["analyze".to_owned()];
    args.extend(dumps.iter().map(|d| d.display().to_string()));
    for a in [
        "-o",
        "out",
        "-s",
        build.to_str().unwrap(),
        "--images",
        build.to_str().unwrap(),
        "--vendor",
        "odbcvend.dll",
    ] {
        args.push(a.to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = leakdiag(dir.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let index = read_json(&dir.path().join("out/index.json"));
    let reports: Vec<String> = index["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["report_dir"].as_str().unwrap().to_owned())
        .collect();
    for (k, report_dir) in reports.iter().enumerate() {
        let r = read_json(&dir.path().join("out").join(report_dir).join("report.json"));
        let leak = &r["sections"]["leak"];
        let modules = leak["modules"].as_array().unwrap();
        let requests = REQUESTS[k];
        assert_eq!(
            modules[0]["name"],
            "odbcvend.dll",
            "dump {}: top module",
            k + 1
        );
        for name in ["odbcvend.dll", "ucrtvend.dll"] {
            let m = modules.iter().find(|m| m["name"] == name).unwrap();
            assert_eq!(
                m["bytes"],
                BYTES_PER_REQUEST * requests,
                "dump {}: {name} bytes",
                k + 1
            );
            assert_eq!(
                m["allocations"],
                BLOCKS_PER_REQUEST * requests,
                "dump {}: {name} blocks",
                k + 1
            );
            let function = m["functions"][0]["name"].as_str().unwrap();
            assert!(
                function.starts_with(&format!("{name}!")) && function.contains("VendRowBuffer"),
                "{function}"
            );
            let symbols = leak["symbols"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["module"] == name)
                .unwrap();
            assert_eq!(symbols["status"], "loaded", "{symbols}");
            let frame = m["stacks"][0]["frames"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["responsible"] == true)
                .unwrap();
            assert!(
                frame["file"].as_str().unwrap().ends_with("odbcvend.c")
                    || frame["file"].as_str().unwrap().ends_with(".c"),
                "{frame}"
            );
            assert!(frame["line"].as_u64().unwrap() > 0);
        }
        // The tracker names itself as allocation plumbing.
        assert_eq!(r["tracking"]["allocator_modules"][0], "ldtrack.dll");
    }
    let series = &index["series"][0];
    assert_eq!(series["dumps"].as_array().unwrap().len(), 3);
    let vend = series["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "odbcvend.dll")
        .unwrap();
    assert_eq!(vend["verdict"], "grew_in_every_interval");
    assert!(dir
        .path()
        .join("out/vendor-odbcvend.dll/report.html")
        .is_file());
    dump_types_are_recorded(&build.join("test-out"), &dumps[0]);
    the_vendor_comes_from_the_tracker_without_images(&dumps[0]);
}

/// What both dump paths ask MiniDumpWriteDump for (no --full): handle data,
/// unloaded modules, process/thread data, the memory-info list and thread times.
const DUMP_TYPE: &str = "0x00001924";
const DUMP_TYPE_FLAGS: &str =
    "WithHandleData,WithUnloadedModules,WithProcessThreadData,WithFullMemoryInfo,WithThreadInfo";

/// Issue 17: `ldtrack dump` prints the dump type it asked for, and the metadata of
/// its dumps and of the tracker's own (rule) dumps records it. Wine's dbghelp writes
/// no memory-info list whatever it is asked, so the request is checked, not the
/// dump's streams.
fn dump_types_are_recorded(out: &std::path::Path, first: &std::path::Path) {
    let printed = std::fs::read_to_string(out.join("dump1.out")).unwrap();
    assert!(
        printed.contains(&format!("dump type {DUMP_TYPE} ({DUMP_TYPE_FLAGS})")),
        "{printed}"
    );
    let mut dumps = vec![first.to_owned()];
    dumps.extend(
        std::fs::read_dir(out.join("rules"))
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    assert_eq!(dumps.len(), 3, "{dumps:?}");
    for d in &dumps {
        let f = leakdiag::dump::DumpFile::open(d).unwrap();
        let s = f.allocation_stream().unwrap().unwrap();
        assert_eq!(s.metadata_value("dump_type"), Some(DUMP_TYPE), "{d:?}");
        assert_eq!(
            s.metadata_value("dump_type_flags"),
            Some(DUMP_TYPE_FLAGS),
            "{d:?}"
        );
        let h = s.header();
        assert_eq!((h.version_minor, h.header_size), (3, 128), "{d:?}");
        // Issue 13: the tracker declares its own memory: 64 allocation-table shards,
        // the stack table, stack index and frame pool, the module-strings buffer and
        // ldtrack.dll's image; the snapshot buffer only where it still exists while
        // the dump is written (the rule dumps, written in the process; `ldtrack dump`
        // frees it first).
        let regions = s
            .tracker_regions()
            .expect("stream 1.3 declares its regions");
        let count = |k: TrackerRegionKind| regions.iter().filter(|r| r.kind == k).count();
        assert_eq!(count(TrackerRegionKind::AllocationTable), 64, "{d:?}");
        assert_eq!(count(TrackerRegionKind::StackTable), 3, "{d:?}");
        assert_eq!(count(TrackerRegionKind::ModuleStrings), 1, "{d:?}");
        assert_eq!(count(TrackerRegionKind::TrackerImage), 1, "{d:?}");
        let in_process = d != first;
        assert_eq!(
            count(TrackerRegionKind::SnapshotBuffer),
            usize::from(in_process),
            "{d:?}"
        );
        let image = regions
            .iter()
            .find(|r| r.kind == TrackerRegionKind::TrackerImage)
            .unwrap();
        let modules = f.modules(&mut Vec::new());
        let ldtrack = modules
            .modules()
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case("ldtrack.dll"))
            .expect("ldtrack.dll in the module list");
        assert_eq!(image.base, ldtrack.base, "{d:?}");
    }
}

/// Issue 17: odbcvend.dll (loaded by the demo after tracking began) has a version
/// resource (tracker/demo/odbcvend.rc); with no --images the report names its
/// company, product and version from the tracker's module strings, escaped.
fn the_vendor_comes_from_the_tracker_without_images(dump: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let o = leakdiag(
        dir.path(),
        &[
            "analyze",
            dump.to_str().unwrap(),
            "-o",
            "out",
            "--vendor",
            "odbcvend.dll",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stem = dump.file_stem().unwrap().to_str().unwrap();
    let r = read_json(&dir.path().join("out").join(stem).join("report.json"));
    let modules = r["sections"]["modules"]["modules"].as_array().unwrap();
    let vend = modules
        .iter()
        .find(|m| m["name"] == "odbcvend.dll")
        .unwrap();
    assert_eq!(vend["version_source"], "tracker", "{vend}");
    assert_eq!(vend["image_file"], serde_json::Value::Null);
    let v = &vend["version_strings"];
    assert_eq!(v["company_name"], "Northwind Drivers & Co.");
    assert_eq!(v["product_name"], "Northwind ODBC Connect");
    assert_eq!(v["file_description"], "Northwind ODBC Driver (demo)");
    assert_eq!(v["file_version"], "4.2.0.17");
    assert_eq!(v["product_version"], "4.2");
    assert_eq!(vend["file_version"], "4.2.0.17", "the fixed file info");
    // ucrtvend.dll has no version resource: the tracker says so.
    let ucrt = modules
        .iter()
        .find(|m| m["name"] == "ucrtvend.dll")
        .unwrap();
    assert_eq!(ucrt["version_strings"], serde_json::Value::Null, "{ucrt}");
    assert!(
        ucrt["version_note"]
            .as_str()
            .unwrap()
            .starts_with("the tracker"),
        "{ucrt}"
    );
    // The vendor report names the company (one short dump gives no verdict modules).
    let vendor = read_json(&dir.path().join("out/vendor-odbcvend.dll/report.json"));
    assert_eq!(
        vendor["module_info"]["version_strings"]["company_name"], "Northwind Drivers & Co.",
        "{vendor}"
    );
    let html =
        std::fs::read_to_string(dir.path().join("out").join(stem).join("report.html")).unwrap();
    assert!(
        html.contains("Northwind Drivers &#38; Co."),
        "escaped in HTML"
    );
    // (Markdown escaping: tests/it/module_strings.rs; one short dump names no
    // module in its summary.)
}
