//! Reports with real PDBs: a synthetic dump whose modules are the clang/lld-built
//! fixtures of tests/fixtures/pdb, analysed with a symbol path.

use crate::helpers::{leakdiag, read_json, root, stderr};
use crate::symbols_common::{fixtures, image_identity};
use crate::synth::{filetime, SynthDump, SynthModule, SECOND};
use leakdiag::dump::stream::AllocatorKind;
use leakdiag::dump::writer::AllocationStreamBuilder;
use leakdiag::symbols::{ModuleIdentity, SymbolOptions, SymbolPathEntry, Symbolizer};
use serde_json::Value;

const VEND_BASE: u64 = 0x1_8000_0000;
const NTDLL_BASE: u64 = 0x7ffa_0000_0000;

/// (rva of an address inside `function` where code of an inlined function lies, the
/// inline chain's names innermost first)
fn inlined_site(function: &str) -> (u32, Vec<String>) {
    let s = Symbolizer::new(SymbolOptions {
        search_path: vec![SymbolPathEntry::Folder(fixtures())],
        ..Default::default()
    });
    let id = image_identity(&fixtures().join("odbcvend.dll"));
    let m = s.load(
        &ModuleIdentity {
            file_name: "odbcvend.dll".into(),
            code_path: "odbcvend.dll".into(),
            base: VEND_BASE,
            size: 0x10000,
            pdb: Some(id),
        },
        None,
    );
    let (start, end, _) = m
        .functions()
        .into_iter()
        .find(|f| f.2 == function)
        .unwrap_or_else(|| panic!("{function} in odbcvend.pdb"));
    (start..end.unwrap_or(start + 0x100))
        .find_map(|rva| {
            let frames = m.lookup(rva)?;
            (frames.len() > 1).then(|| (rva, frames.into_iter().map(|f| f.function).collect()))
        })
        .unwrap_or_else(|| panic!("no inlined code in {function}"))
}

fn vend_module(image: &str) -> SynthModule {
    let id = image_identity(&fixtures().join(image));
    let guid: &'static [u8; 16] = Box::leak(Box::new(id.guid));
    SynthModule {
        pdb: Some(("odbcvend.pdb", *guid, id.age)),
        ..SynthModule::new("C:\\Vendor\\odbcvend.dll", VEND_BASE, 0x10000)
    }
}

fn dump(vend: SynthModule, rva: u32) -> Vec<u8> {
    let mut b = AllocationStreamBuilder::new(filetime(1_700_000_000), filetime(1_700_003_600));
    b.flags = 1; // return addresses: the frame is the instruction after the call
    let frames = [NTDLL_BASE + 0x1a20, VEND_BASE + u64::from(rva) + 1];
    for i in 0..20 {
        b.allocate(
            0x1000 + i * 0x100,
            100,
            i * 100 * SECOND,
            AllocatorKind::CRuntime,
            &frames,
        );
    }
    SynthDump {
        modules: vec![
            SynthModule::new("C:\\Windows\\System32\\ntdll.dll", NTDLL_BASE, 0x10000),
            vend,
        ],
        stream: Some(b.build()),
        ..Default::default()
    }
    .build()
}

/// The Symbols-table row of `module` in a leak section.
fn symbols_row(leak: &Value, module: &str) -> Value {
    leak["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["module"] == module)
        .unwrap_or_else(|| panic!("no symbols row for {module}"))
        .clone()
}

fn analyze(bytes: Vec<u8>, symbols: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.dmp"), bytes).unwrap();
    let o = leakdiag(
        dir.path(),
        &[
            "analyze",
            "d.dmp",
            "-o",
            "out",
            "-s",
            symbols,
            "--scripts",
            "leak",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    read_json(&dir.path().join("out/d/report.json"))
}

#[test]
fn frames_and_functions_are_named_from_the_pdb() {
    let (rva, chain) = inlined_site("SQLAllocHandle");
    let pdbs = root().join("tests/fixtures/pdb");
    let r = analyze(
        dump(vend_module("odbcvend.dll"), rva),
        pdbs.to_str().unwrap(),
    );
    let leak = &r["sections"]["leak"];
    let vend = &leak["modules"][0];
    assert_eq!(vend["name"], "odbcvend.dll");
    // Grouped by the innermost resolved function.
    assert_eq!(
        vend["functions"][0]["name"],
        format!("odbcvend.dll!{}", chain[0])
    );
    assert_eq!(vend["functions"][0]["bytes"], 2000);
    let frames = vend["stacks"][0]["frames"].as_array().unwrap();
    // ntdll (no symbols), then the inline chain at one address.
    assert_eq!(frames.len(), 1 + chain.len());
    assert_eq!(frames[0]["module"], "ntdll.dll");
    assert!(frames[0]["function"].is_null());
    for (i, name) in chain.iter().enumerate() {
        let f = &frames[1 + i];
        assert_eq!(f["function"], name.as_str());
        assert_eq!(f["inlined"], i + 1 < chain.len(), "frame {i}");
        assert_eq!(f["responsible"], true);
        assert!(
            f["file"]
                .as_str()
                .is_some_and(|p| p.ends_with(".c") || p.ends_with(".h")),
            "{f}"
        );
        assert!(f["line"].as_u64().is_some_and(|l| l > 0));
    }
    assert_eq!(chain.last().unwrap(), "SQLAllocHandle");
    assert_eq!(symbols_row(leak, "odbcvend.dll")["status"], "loaded");
    assert_eq!(symbols_row(leak, "ntdll.dll")["status"], "not found");
}

#[test]
fn a_pdb_of_another_build_is_rejected() {
    let (rva, _) = inlined_site("SQLAllocHandle");
    let pdbs = root().join("tests/fixtures/pdb");
    // The module claims the identity of the other build; only the first build's PDB
    // is on the path.
    let r = analyze(
        dump(vend_module("mismatch/odbcvend.dll"), rva),
        pdbs.to_str().unwrap(),
    );
    let leak = &r["sections"]["leak"];
    let row = symbols_row(leak, "odbcvend.dll");
    assert_eq!(row["status"], "mismatched");
    assert!(
        row["message"]
            .as_str()
            .unwrap()
            .contains("does not match the module's"),
        "{row}"
    );
    let vend = &leak["modules"][0];
    assert!(vend["functions"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("odbcvend.dll+0x"));
    assert!(vend["stacks"][0]["frames"][1]["function"].is_null());
}

#[test]
fn a_module_without_identity_uses_its_pdb_by_name_unverified() {
    let (rva, chain) = inlined_site("SQLAllocHandle");
    let pdbs = root().join("tests/fixtures/pdb");
    // Wine's dump writer leaves the CodeView record empty.
    let vend = SynthModule::new("C:\\Vendor\\odbcvend.dll", VEND_BASE, 0x10000);
    let r = analyze(dump(vend, rva), pdbs.to_str().unwrap());
    let leak = &r["sections"]["leak"];
    let row = symbols_row(leak, "odbcvend.dll");
    assert_eq!(row["status"], "loaded (unverified)", "{row}");
    assert_eq!(
        leak["modules"][0]["functions"][0]["name"],
        format!("odbcvend.dll!{}", chain[0])
    );
}

#[test]
fn symbols_come_from_an_http_server_named_in_nt_symbol_path() {
    use crate::symbols_common::FileServer;
    let (rva, chain) = inlined_site("SQLAllocHandle");
    let dir = tempfile::tempdir().unwrap();
    // A symbol store as symstore lays it out, served over loopback HTTP.
    let id = image_identity(&fixtures().join("odbcvend.dll"));
    let store = dir.path().join("store");
    let in_store = leakdiag::symbols::store::store_path(&store, &id);
    std::fs::create_dir_all(in_store.parent().unwrap()).unwrap();
    std::fs::copy(fixtures().join("odbcvend.pdb"), &in_store).unwrap();
    let server = FileServer::start(store);
    let cache = dir.path().join("cache");
    let symbol_path = format!("srv*{}*{}", cache.display(), server.url);
    std::fs::write(
        dir.path().join("d.dmp"),
        dump(vend_module("odbcvend.dll"), rva),
    )
    .unwrap();
    let run = |out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_leakdiag"))
            .args(["analyze", "d.dmp", "-o", out, "--scripts", "leak"])
            .current_dir(dir.path())
            .env("_NT_SYMBOL_PATH", &symbol_path)
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .output()
            .unwrap()
    };
    let o = run("out");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_json(&dir.path().join("out/d/report.json"));
    let leak = &r["sections"]["leak"];
    assert_eq!(
        leak["modules"][0]["functions"][0]["name"],
        format!("odbcvend.dll!{}", chain[0])
    );
    let row = symbols_row(leak, "odbcvend.dll");
    assert_eq!(row["status"], "loaded");
    assert!(
        row["pdb"]
            .as_str()
            .unwrap()
            .starts_with(cache.to_str().unwrap()),
        "{row}"
    );
    // Saved in the cache in the store layout, so the next run needs no server.
    assert!(leakdiag::symbols::store::store_path(&cache, &id).is_file());
    drop(server);
    let o = run("again");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_json(&dir.path().join("again/d/report.json"));
    let row = symbols_row(&r["sections"]["leak"], "odbcvend.dll");
    assert_eq!(row["status"], "loaded");
}

#[test]
fn a_bad_symbol_path_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.dmp"), crate::synth::demo_dump(1)).unwrap();
    let o = leakdiag(dir.path(), &["analyze", "d.dmp", "-s", "bogus*x*y*z"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("symbol path"));
}

#[test]
fn a_corrupt_pdb_is_an_error_status_and_the_report_goes_on() {
    let (rva, _) = inlined_site("SQLAllocHandle");
    let dir = tempfile::tempdir().unwrap();
    let pdbs = dir.path().join("pdbs");
    std::fs::create_dir(&pdbs).unwrap();
    // A truncated copy of the right PDB.
    let pdb = std::fs::read(fixtures().join("odbcvend.pdb")).unwrap();
    std::fs::write(pdbs.join("odbcvend.pdb"), &pdb[..pdb.len() / 3]).unwrap();
    let r = analyze(
        dump(vend_module("odbcvend.dll"), rva),
        pdbs.to_str().unwrap(),
    );
    let leak = &r["sections"]["leak"];
    let row = symbols_row(leak, "odbcvend.dll");
    assert_eq!(row["status"], "error", "{row}");
    assert!(
        row["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{row}"
    );
    // The analysis is complete, with offsets instead of names.
    let vend = &leak["modules"][0];
    assert_eq!(
        (vend["allocations"].as_u64(), vend["bytes"].as_u64()),
        (Some(20), Some(2000))
    );
    assert!(vend["functions"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("odbcvend.dll+0x"));
}
