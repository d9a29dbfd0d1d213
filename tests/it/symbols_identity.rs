//! Identity checks and failure statuses: mismatched, missing and corrupt PDBs;
//! module identity from dump memory or an image file when the dump has no
//! CodeView record; the unverified by-name fallback; JSON shape of the results.

use crate::symbols_common::*;
use leakdiag::symbols::pe;
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
    assert_eq!(
        s.searched[0].outcome,
        "the dump does not hold the module's image"
    );
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

/// The fixture images' CodeView identities, as binutils' `objdump -p` prints them
/// (GUID in textual order, age): one PE32+ (x64) and one PE32 (x86) image.
const IMAGES: [(&str, &str, &str, u32); 2] = [
    (
        "pdb/odbcvend.dll",
        "odbcvend.pdb",
        "D6B222FCC3C30C624C4C44205044422E/1",
        0x1000_0000,
    ),
    (
        "pe/odbcvend32.dll",
        "odbcvend32.pdb",
        "21DA0EF352665BBDE2C5E35614F59E08/1",
        0x8000,
    ),
];

fn fixture_image(relative: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("..").join(relative)).unwrap()
}

#[test]
fn pe32_and_pe32_plus_identities_from_file_and_memory() {
    for (image, pdb, signature, _) in IMAGES {
        let file = fixture_image(image);
        let info = pe::identity_from_file(&file).unwrap();
        assert_eq!(info.pdb.pdb_name, pdb, "{image}");
        assert_eq!(info.pdb.signature_text(), signature, "{image}");
        assert_eq!(
            info.pdb.debug_id().breakpad().to_string(),
            signature.replace('/', ""),
            "{image}"
        );
        // The same image mapped by the loader, at a 32-bit and a 64-bit base.
        for base in [0x1000_0000u64, VENDOR_BASE] {
            let read = memory_reader(map_image(&file), base);
            assert_eq!(pe::identity_from_memory(base, &read), Ok(info.clone()));
        }
    }
    let info = pe::identity_from_file(&fixture_image(IMAGES[1].0)).unwrap();
    assert_eq!(info.size_of_image, 0x8000);
}

/// Every truncation of each fixture image, and every byte of it set to 0x00 and to
/// 0xff in turn, as a file and as a mapped image: an identity or an error, never a
/// panic. A truncation before the end of the CodeView record is an error.
#[test]
fn damaged_images_give_an_error_never_a_panic() {
    for (image, ..) in IMAGES {
        let file = fixture_image(image);
        let good = pe::identity_from_file(&file).unwrap();
        let record_end = file
            .windows(4)
            .position(|w| w == b"RSDS")
            .map(|at| at + 24)
            .unwrap();
        for n in 0..file.len() {
            let got = pe::identity_from_file(&file[..n]);
            if n < record_end {
                assert!(got.is_err(), "{image} cut at {n:#x}: {got:?}");
            }
        }
        let mapped = map_image(&file);
        let nt = u32::from_le_bytes(file[0x3c..0x40].try_into().unwrap()) as usize;
        let mut errors = 0;
        for (what, mut bytes) in [("file", file.clone()), ("mapped", mapped.clone())] {
            for i in 0..bytes.len().min(0x4000) {
                let old = bytes[i];
                for damage in [0x00, 0xff] {
                    bytes[i] = damage;
                    let got = if what == "file" {
                        pe::identity_from_file(&bytes)
                    } else {
                        let read = |rva: u64, len: usize| {
                            let start = usize::try_from(rva).ok()?;
                            bytes
                                .get(start..start.checked_add(len)?)
                                .map(<[u8]>::to_vec)
                        };
                        pe::identity_from_memory(0, &read)
                    };
                    // The DOS stub is never read: damage there changes nothing.
                    if (0x40..nt).contains(&i) {
                        assert_eq!(got.as_ref(), Ok(&good), "{image} {what} at {i:#x}");
                    }
                    errors += usize::from(got.is_err());
                }
                bytes[i] = old;
            }
        }
        assert!(errors > 0, "{image}");
        assert_eq!(pe::identity_from_file(&file), Ok(good));
    }
}

/// Header fields set to hostile values, in the file and in the mapped image: an
/// error, after reads that the caps keep small (never the 4 GiB a field asks for),
/// or, where the damage can be read past, the right identity.
#[test]
fn hostile_header_values_are_errors_with_bounded_reads() {
    let file = fixture_image(IMAGES[0].0);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let nt = u32_at(&file, 0x3c) as usize;
    let optional = nt + 24;
    // PE32+: the data directories start at 112; the debug directory is entry 6.
    let debug_dir = optional + 112 + 6 * 8;
    // The CodeView entry of the debug directory: type 2, size 0x40.
    let codeview_entry = |b: &[u8]| {
        b.windows(8)
            .position(|w| w == [2, 0, 0, 0, 0x40, 0, 0, 0])
            .unwrap()
            - 12
    };
    type Case = (
        &'static str,
        fn(usize, usize, usize) -> usize,
        &'static [u8],
    );
    let cases: [Case; 8] = [
        (
            "e_lfanew past the end",
            |_, _, _| 0x3c,
            &[0xf0, 0xff, 0xff, 0xff],
        ),
        ("65535 sections", |nt, _, _| nt + 6, &[0xff, 0xff]),
        (
            "optional header size 65535",
            |nt, _, _| nt + 20,
            &[0xff, 0xff],
        ),
        (
            "2^32-1 data directories",
            |nt, _, _| nt + 24 + 108,
            &[0xff; 4],
        ),
        ("debug directory 4 GiB long", |_, d, _| d + 4, &[0xff; 4]),
        (
            "debug directory at RVA 0xfffffff0",
            |_, d, _| d,
            &[0xf0, 0xff, 0xff, 0xff],
        ),
        ("CodeView record 4 GiB long", |_, _, e| e + 16, &[0xff; 4]),
        (
            "CodeView record nowhere",
            |_, _, e| e + 20,
            &[0xf0, 0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xff],
        ),
    ];
    for (what, at, value) in cases {
        for mapped in [false, true] {
            let mut bytes = if mapped {
                map_image(&file)
            } else {
                file.clone()
            };
            let at = at(nt, debug_dir, codeview_entry(&bytes));
            bytes[at..at + value.len()].copy_from_slice(value);
            let got = if mapped {
                pe::identity_from_memory(VENDOR_BASE, &memory_reader(bytes, VENDOR_BASE))
            } else {
                pe::identity_from_file(&bytes)
            };
            match got {
                Err(pe::PeError::Truncated { len, .. }) => {
                    assert!(len <= 4 << 20, "{what} (mapped: {mapped}): read {len}")
                }
                Err(_) => {}
                // A mapped image's RVAs need no section table, so it is not read;
                // the debug directory and CodeView record are read up to a cap.
                Ok(info)
                    if (mapped && what == "65535 sections") || what.ends_with("4 GiB long") =>
                {
                    assert_eq!(Ok(info), pe::identity_from_file(&file))
                }
                Ok(info) => panic!("{what} (mapped: {mapped}): {info:?}"),
            }
        }
    }
}

/// A reader that hands back fewer bytes than asked, or more: never trusted blindly.
#[test]
fn short_and_long_reads_from_memory() {
    let file = fixture_image(IMAGES[0].0);
    let image = map_image(&file);
    let short = |addr: u64, len: usize| {
        let start = usize::try_from(addr.checked_sub(VENDOR_BASE)?).ok()?;
        image
            .get(start..(start + len).min(image.len()))
            .map(|b| b[..b.len().saturating_sub(1)].to_vec())
    };
    assert!(matches!(
        pe::identity_from_memory(VENDOR_BASE, &short),
        Err(pe::PeError::Truncated { offset: 0, len: 64 })
    ));
    let long = |addr: u64, len: usize| {
        let start = usize::try_from(addr.checked_sub(VENDOR_BASE)?).ok()?;
        image
            .get(start..(start + len + 16).min(image.len()))
            .map(<[u8]>::to_vec)
    };
    assert_eq!(
        pe::identity_from_memory(VENDOR_BASE, &long),
        pe::identity_from_file(&file)
    );
}
