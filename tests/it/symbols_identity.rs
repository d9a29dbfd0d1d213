//! Identity checks and failure statuses: mismatched, missing and corrupt PDBs;
//! module identity from dump memory or an image file when the dump has no
//! CodeView record; the unverified by-name fallback; JSON shape of the results.

use crate::symbols_common::*;
use leakdiag::symbols::store::guid_hex;
use leakdiag::symbols::{ModuleIdentity, SymbolOptions, SymbolPathEntry, SymbolStatus, Symbolizer};

fn folder(dir: &std::path::Path) -> SymbolOptions {
    SymbolOptions {
        search_path: vec![SymbolPathEntry::Folder(dir.to_path_buf())],
        ..SymbolOptions::default()
    }
}

/// The vendor module as a Wine-written dump describes it: no CodeView record.
fn bare_vendor_module() -> ModuleIdentity {
    ModuleIdentity {
        pdb: None,
        ..vendor_module()
    }
}

#[test]
fn mismatched_pdb_is_rejected_with_both_identities() {
    let wrong_dir = fixtures().join("mismatch");
    let s = Symbolizer::new(folder(&wrong_dir)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Mismatched, "{s:?}");
    assert!(s.lookup(sql_alloc_handle_rva()).is_none());
    let wrong = image_identity(&wrong_dir.join("odbcvend.dll"));
    let right = vendor_module().pdb.unwrap();
    let message = s.message.clone().unwrap();
    let expected = format!(
        "odbcvend.pdb found at {} but GUID/age {}/{} does not match the module's {}/{}",
        wrong_dir.join("odbcvend.pdb").display(),
        guid_hex(&wrong.guid),
        wrong.age,
        guid_hex(&right.guid),
        right.age
    );
    assert_eq!(message, expected);
    let json = serde_json::to_value(&*s).unwrap();
    assert_eq!(json["status"], "mismatched");
}

#[test]
fn missing_pdb_lists_every_place() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let o = SymbolOptions::from_args_and_env(
        &[format!("{};srv*{}", a.display(), b.display())],
        None,
        &[],
    )
    .unwrap();
    let s = Symbolizer::new(o).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    let places: Vec<String> = s.searched.iter().map(|p| p.place.clone()).collect();
    let id = vendor_module().pdb.unwrap();
    let sig = leakdiag::symbols::store::signature_dir(&id.guid, id.age);
    assert_eq!(
        places,
        vec![
            a.join("odbcvend.pdb")
                .join(&sig)
                .join("odbcvend.pdb")
                .display()
                .to_string(),
            a.join("odbcvend.pdb").display().to_string(),
            b.join("odbcvend.pdb")
                .join(&sig)
                .join("odbcvend.pdb")
                .display()
                .to_string(),
        ]
    );
    assert!(s.searched.iter().all(|p| p.outcome == "not found"));
    assert!(s.message.as_deref().unwrap().contains("3 places"));

    let s = Symbolizer::new(SymbolOptions::default()).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::NotFound);
}

/// A tiny deterministic generator, so the corrupt inputs are the same every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn load_bytes(bytes: &[u8]) -> std::sync::Arc<leakdiag::symbols::ModuleSymbols> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("odbcvend.pdb"), bytes).unwrap();
    let s = Symbolizer::new(folder(dir.path())).load(&vendor_module(), None);
    for rva in (0x1000..0x1600).step_by(7) {
        let _ = s.lookup(rva);
    }
    s
}

#[test]
fn corrupt_pdbs_give_error_status_not_panics() {
    let good = std::fs::read(fixtures().join("odbcvend.pdb")).unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);

    // Empty, truncated and random files: status Error with a message.
    let random: Vec<u8> = (0..good.len()).map(|_| rng.next() as u8).collect();
    for (what, bytes) in [
        ("empty", &good[..0]),
        ("header only", &good[..64]),
        ("first page", &good[..4096]),
        ("half", &good[..good.len() / 2]),
        ("all but the last byte", &good[..good.len() - 1]),
        ("random bytes", &random[..]),
    ] {
        let s = load_bytes(bytes);
        assert_eq!(s.status, SymbolStatus::Error, "{what}: {s:?}");
        let message = s.message.clone().unwrap();
        assert!(message.contains("odbcvend.pdb"), "{what}: {message}");
        assert!(
            s.searched
                .iter()
                .any(|a| a.outcome.starts_with("corrupt PDB")),
            "{what}: {:?}",
            s.searched
        );
    }

    // Damage inside an otherwise valid file: any status, but an answer.
    for _ in 0..150 {
        let mut bytes = good.clone();
        let at = (rng.next() as usize) % bytes.len();
        let len = 1 + (rng.next() as usize) % 256;
        for b in bytes.iter_mut().skip(at).take(len) {
            *b = rng.next() as u8;
        }
        let s = load_bytes(&bytes);
        if s.status != SymbolStatus::Loaded {
            assert!(s.message.is_some(), "{s:?}");
        }
    }
}

#[test]
fn identity_from_dump_memory() {
    let file = std::fs::read(fixtures().join("odbcvend.dll")).unwrap();
    let read = memory_reader(map_image(&file), VENDOR_BASE);
    let s = Symbolizer::new(folder(&fixtures())).load(&bare_vendor_module(), Some(&read));
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.identity, vendor_module().pdb);
    assert_eq!(
        s.searched[0].place,
        format!("dump memory at {VENDOR_BASE:#x}")
    );
    assert!(s.searched[0]
        .outcome
        .starts_with("CodeView identity odbcvend.pdb"));
    assert!(s.lookup(sql_alloc_handle_rva()).is_some());

    // Memory that is not there, or not a PE image: recorded, then by name.
    let nothing = |_: u64, _: usize| -> Option<Vec<u8>> { None };
    let s = Symbolizer::new(folder(&fixtures())).load(&bare_vendor_module(), Some(&nothing));
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");
    assert!(s.searched[0]
        .outcome
        .starts_with("no identity: truncated image"));
    let zeros = |_: u64, len: usize| -> Option<Vec<u8>> { Some(vec![0; len]) };
    let s = Symbolizer::new(folder(&fixtures())).load(&bare_vendor_module(), Some(&zeros));
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");
    assert!(s.searched[0].outcome.contains("no MZ signature"));

    // The memory's identity is checked like a CodeView record: wrong PDB rejected.
    let s = Symbolizer::new(folder(&fixtures().join("mismatch")))
        .load(&bare_vendor_module(), Some(&read));
    assert_eq!(s.status, SymbolStatus::Mismatched, "{s:?}");

    // Truncated mappings of every length never panic.
    let image = map_image(&file);
    for cut in (0..0x1000).step_by(13) {
        let part = image[..cut].to_vec();
        let read = memory_reader(part, VENDOR_BASE);
        let s = Symbolizer::new(SymbolOptions::default()).load(&bare_vendor_module(), Some(&read));
        assert_eq!(s.status, SymbolStatus::NotFound);
    }
}

#[test]
fn identity_from_image_file() {
    let mut o = folder(&fixtures());
    o.images = vec![fixtures()];
    let s = Symbolizer::new(o.clone()).load(&bare_vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.identity, vendor_module().pdb);
    assert_eq!(
        s.searched[0].place,
        fixtures().join("odbcvend.dll").display().to_string()
    );

    // An image file named directly works too.
    o.images = vec![fixtures().join("odbcvend.dll")];
    let s = Symbolizer::new(o.clone()).load(&bare_vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");

    // The wrong build of the image (another size) is not trusted.
    let other = fixtures().join("mismatch");
    let mut module = bare_vendor_module();
    module.size += 0x1000;
    o.images = vec![other];
    let s = Symbolizer::new(o.clone()).load(&module, None);
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");
    assert!(s.searched[0].outcome.contains("differs from the module's"));

    // A file with the right name but junk inside: reported, then by name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ODBCVEND.DLL"), b"MZ not really").unwrap();
    o.images = vec![dir.path().to_path_buf()];
    let s = Symbolizer::new(o).load(&bare_vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");
    assert!(
        s.searched[0]
            .outcome
            .starts_with("no identity: truncated image"),
        "{:?}",
        s.searched
    );
}

#[test]
fn unverified_fallback_by_module_name() {
    let s = Symbolizer::new(folder(&fixtures())).load(&bare_vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");
    assert_eq!(s.pdb_path, Some(fixtures().join("odbcvend.pdb")));
    assert!(s.message.as_deref().unwrap().contains("by name"));
    let frames = s.lookup(sql_alloc_handle_rva()).unwrap();
    assert_eq!(frames.last().unwrap().function, "SQLAllocHandle");
    let json = serde_json::to_value(&*s).unwrap();
    assert_eq!(json["status"], "loaded (unverified)");
    assert!(json.get("pdb").is_none());

    // By name in a store folder holding exactly one version.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy_to(
        &fixtures().join("odbcvend.pdb"),
        &leakdiag::symbols::store::store_path(&store, &vendor_module().pdb.unwrap()),
    );
    let s = Symbolizer::new(folder(&store)).load(&bare_vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");

    // Nothing by that name.
    let mut module = bare_vendor_module();
    module.file_name = "other.dll".into();
    let s = Symbolizer::new(folder(&fixtures())).load(&module, None);
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    assert!(s.message.as_deref().unwrap().contains("other.pdb"));
}

#[test]
fn frames_serialize_for_the_report() {
    let s = Symbolizer::new(folder(&fixtures())).load(&vendor_module(), None);
    let start = function_rva(&s, "SQLAllocHandle");
    // The address with the deepest inline chain inside SQLAllocHandle.
    let (rva, frames) = (start..start + 0x100)
        .filter_map(|rva| s.lookup(rva).map(|f| (rva, f)))
        .filter(|(_, f)| f.last().unwrap().function == "SQLAllocHandle")
        .max_by_key(|(rva, f)| (f.len(), std::cmp::Reverse(*rva)))
        .unwrap();
    let json = serde_json::to_value(&frames).unwrap();
    assert_eq!(json[0]["function"], "round_up_16");
    assert_eq!(json[0]["inlined"], true);
    assert_eq!(json[3]["function"], "SQLAllocHandle");
    assert_eq!(json[3]["function_offset"], rva - start);
    assert!(json[0].get("function_offset").unwrap().is_null());
    assert_eq!(json[3]["inlined"], false);
    let json = serde_json::to_value(&*s).unwrap();
    assert_eq!(json["status"], "loaded");
    assert_eq!(json["searched"][0]["outcome"], "not found");
}
