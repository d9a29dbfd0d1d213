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
    let symbols = leak["symbols"].as_array().unwrap();
    let status = |m: &str| symbols.iter().find(|s| s["module"] == m).unwrap()["status"].clone();
    assert_eq!(status("odbcvend.dll"), "loaded");
    assert_eq!(status("ntdll.dll"), "not found");
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
    let row = leak["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["module"] == "odbcvend.dll")
        .unwrap()
        .clone();
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
