//! Compressed symbol stores: `.pd_` files (CABs written by gcab, see
//! `tests/fixtures/symstore/build.sh`) and `file.ptr` redirects, in local folders
//! and over HTTP (a real loopback server).

use crate::symbols_common::*;
use leakdiag::symbols::cab::{expand_single_file, MAX_EXPANDED_SIZE};
use leakdiag::symbols::store::{signature_dir, store_path};
use leakdiag::symbols::{
    ModuleIdentity, ModuleSymbols, SymbolFrame, SymbolOptions, SymbolStatus, Symbolizer,
};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

fn symstore_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/symstore")
}

fn options(path: &str) -> SymbolOptions {
    SymbolOptions::from_args_and_env(&[path.to_string()], None, &[]).unwrap()
}

fn load(path: &str, module: &ModuleIdentity) -> std::sync::Arc<ModuleSymbols> {
    Symbolizer::new(options(path)).load(module, None)
}

fn leakapp_module() -> ModuleIdentity {
    module_from_image(
        &fixtures().join("leakapp.exe"),
        "C:\\app\\leakapp.exe",
        0x1_4000_0000,
    )
}

/// `<root>/<name>/<GUID><age>/`, the folder a store keeps one PDB version in.
fn signature_folder(root: &Path, module: &ModuleIdentity) -> PathBuf {
    let id = module.pdb.clone().unwrap();
    root.join(&id.pdb_name)
        .join(signature_dir(&id.guid, id.age))
}

/// A compressed store under `root` holding `pd_` (a fixture file name) as the
/// module's `<name>.pd_`; returns the `.pd_` path.
fn compressed_store(root: &Path, module: &ModuleIdentity, pd_: &str) -> PathBuf {
    let name = module
        .pdb
        .as_ref()
        .unwrap()
        .pdb_name
        .replace(".pdb", ".pd_");
    let to = signature_folder(root, module).join(name);
    copy_to(&symstore_fixtures().join(pd_), &to);
    to
}

/// Every address of every function (up to 512 bytes each) with its answer.
fn all_answers(symbols: &ModuleSymbols) -> Vec<(u32, Option<Vec<SymbolFrame>>)> {
    let mut out = Vec::new();
    for (start, end, _) in symbols.functions() {
        let end = end.unwrap_or(start + 1).min(start + 512);
        out.extend((start..end).map(|rva| (rva, symbols.lookup(rva))));
    }
    out
}

/// The answers from the plain fixture PDB.
fn plain_answers(module: &ModuleIdentity) -> Vec<(u32, Option<Vec<SymbolFrame>>)> {
    let s = load(&fixtures().display().to_string(), module);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    all_answers(&s)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn committed_pd_files_hold_the_fixture_pdbs() {
    // Also a staleness check: rebuilding tests/fixtures/pdb needs build.sh rerun.
    for (pd_, pdb) in [
        ("odbcvend.pd_", "odbcvend.pdb"),
        ("leakapp.pd_", "leakapp.pdb"),
        ("odbcvend-stored.pd_", "odbcvend.pdb"),
    ] {
        let cab = std::fs::read(symstore_fixtures().join(pd_)).unwrap();
        let mut out = Vec::new();
        let e = expand_single_file(Cursor::new(&cab), &mut out, MAX_EXPANDED_SIZE).unwrap();
        assert_eq!(e.name, pdb);
        assert!(
            out == std::fs::read(fixtures().join(pdb)).unwrap(),
            "{pd_} does not hold tests/fixtures/pdb/{pdb}: run tests/fixtures/symstore/build.sh"
        );
    }
}

#[test]
fn local_compressed_store_resolves_exactly_like_the_plain_pdb() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for module in [vendor_module(), leakapp_module()] {
        let stem = module.pdb.as_ref().unwrap().pdb_name.replace(".pdb", "");
        let pd_ = compressed_store(&store, &module, &format!("{stem}.pd_"));
        let s = load(&store.display().to_string(), &module);
        assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
        // No cache: expanded into a temporary file; the .pd_ is where it came from.
        assert_eq!(s.pdb_path.as_deref(), Some(pd_.as_path()));
        assert_eq!(s.searched.len(), 1, "{:?}", s.searched);
        assert_eq!(s.searched[0].place, pd_.display().to_string());
        assert_eq!(
            s.searched[0].outcome,
            "found (compressed), expanded into a temporary file"
        );
        let answers = all_answers(&s);
        assert!(answers.len() > 1000, "{}", answers.len());
        assert!(answers == plain_answers(&module), "{stem}: answers differ");
        // Nothing was written into the store.
        assert!(files_under(&store)
            .iter()
            .all(|f| f.extension().unwrap() == "pd_"));
    }

    // A CAB that stores the PDB without compression works the same way.
    let stored = dir.path().join("stored");
    compressed_store(&stored, &vendor_module(), "odbcvend-stored.pd_");
    let s = load(&stored.display().to_string(), &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert!(all_answers(&s) == plain_answers(&vendor_module()));
}

#[test]
fn folder_store_expands_into_the_cache_as_the_plain_pdb() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cache = dir.path().join("cache");
    let pd_ = compressed_store(&store, &vendor_module(), "odbcvend.pd_");
    let path = format!("srv*{}*{}", cache.display(), store.display());
    let s = load(&path, &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    let cached = store_path(&cache, &vendor_module().pdb.unwrap());
    assert_eq!(s.pdb_path.as_deref(), Some(cached.as_path()));
    assert_eq!(
        s.searched[1].outcome,
        format!("found (compressed), expanded to {}", cached.display())
    );
    // The cache holds the uncompressed layout and nothing else.
    assert_eq!(files_under(&cache), vec![cached.clone()]);
    assert!(
        std::fs::read(&cached).unwrap() == std::fs::read(fixtures().join("odbcvend.pdb")).unwrap()
    );
    assert!(all_answers(&s) == plain_answers(&vendor_module()));

    // The next run takes it from the cache.
    std::fs::remove_file(&pd_).unwrap();
    let s = load(&path, &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.searched.len(), 1, "{:?}", s.searched);
    assert_eq!(s.searched[0].outcome, "found");

    // cache*DIR before a plain folder is the cache in effect there too.
    let cache2 = dir.path().join("cache2");
    compressed_store(&store, &vendor_module(), "odbcvend.pd_");
    let s = load(
        &format!("cache*{};{}", cache2.display(), store.display()),
        &vendor_module(),
    );
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(
        s.pdb_path,
        Some(store_path(&cache2, &vendor_module().pdb.unwrap()))
    );
}

#[test]
fn http_compressed_store_expands_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    compressed_store(&served, &vendor_module(), "odbcvend.pd_");
    let cache = dir.path().join("cache");
    let mut server = FileServer::start(served);
    let path = format!("srv*{}*{}", cache.display(), server.url);

    let s = load(&path, &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    let id = vendor_module().pdb.unwrap();
    let cached = store_path(&cache, &id);
    assert_eq!(s.pdb_path.as_deref(), Some(cached.as_path()));
    let sig = format!(
        "{}/odbcvend.pdb/{}",
        server.url,
        signature_dir(&id.guid, id.age)
    );
    let tried: Vec<(&str, &str)> = s
        .searched
        .iter()
        .map(|a| (a.place.as_str(), a.outcome.as_str()))
        .collect();
    let expanded = format!("downloaded (compressed), expanded to {}", cached.display());
    assert_eq!(
        tried[1..],
        [
            (format!("{sig}/odbcvend.pdb").as_str(), "HTTP 404"),
            (format!("{sig}/odbcvend.pd_").as_str(), expanded.as_str()),
        ]
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(files_under(&cache), vec![cached.clone()]);
    assert!(all_answers(&s) == plain_answers(&vendor_module()));

    // Without a cache: expanded into a temporary file, used from there.
    let s = load(&format!("srv*{}", server.url), &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path, None);
    assert_eq!(
        s.searched[1].outcome,
        "downloaded (compressed), expanded into a temporary file"
    );
    assert!(all_answers(&s) == plain_answers(&vendor_module()));

    // A new run with the server gone finds the expanded PDB in the cache.
    server.stop();
    let s = load(&path, &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.searched.len(), 1, "{:?}", s.searched);
}

#[test]
fn file_ptr_path_is_followed_and_msg_is_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("share");
    copy_to(
        &fixtures().join("odbcvend.pdb"),
        &elsewhere.join("odbcvend.pdb"),
    );
    copy_to(
        &symstore_fixtures().join("odbcvend.pd_"),
        &elsewhere.join("odbcvend.pd_"),
    );
    let store = dir.path().join("store");
    let ptr = signature_folder(&store, &vendor_module()).join("file.ptr");
    let write_ptr = |text: &str| {
        std::fs::create_dir_all(ptr.parent().unwrap()).unwrap();
        std::fs::write(&ptr, text).unwrap();
    };
    let store_arg = store.display().to_string();

    // PATH: to a plain PDB elsewhere.
    let target = elsewhere.join("odbcvend.pdb");
    write_ptr(&format!("PATH:{}\r\n", target.display()));
    let s = load(&store_arg, &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path.as_deref(), Some(target.as_path()));
    assert_eq!(s.searched[0].place, ptr.display().to_string());
    assert_eq!(
        s.searched[0].outcome,
        format!("PATH:{}, followed", target.display())
    );
    assert_eq!(s.searched[1].place, target.display().to_string());
    assert_eq!(s.searched[1].outcome, "found");

    // PATH: written with Windows separators, to a compressed file: expanded.
    let target = elsewhere.join("odbcvend.pd_");
    write_ptr(&format!(
        "PATH:{}",
        target.display().to_string().replace('/', "\\")
    ));
    let s = load(&store_arg, &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path.as_deref(), Some(target.as_path()));
    assert!(
        s.searched[1].outcome.starts_with("found (compressed)"),
        "{:?}",
        s.searched
    );
    assert!(all_answers(&s) == plain_answers(&vendor_module()));

    // PATH: to a share that is not mounted here.
    write_ptr("PATH:\\\\symsrv\\symbols\\odbcvend.pdb\\X\\odbcvend.pdb");
    let s = load(&store_arg, &vendor_module());
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    assert!(
        s.searched[0].outcome.contains("not followed")
            && s.searched[0].outcome.contains("does not exist here"),
        "{:?}",
        s.searched
    );

    // MSG: recorded, and given as the reason.
    write_ptr("MSG: withheld by the vendor; ask support@example.test");
    let s = load(&store_arg, &vendor_module());
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    assert_eq!(
        s.searched[0].outcome,
        "MSG:withheld by the vendor; ask support@example.test"
    );
    assert!(
        s.message
            .as_deref()
            .unwrap()
            .ends_with("the symbol store says: withheld by the vendor; ask support@example.test"),
        "{:?}",
        s.message
    );

    // Junk.
    write_ptr("\u{0}\u{1}junk");
    let s = load(&store_arg, &vendor_module());
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    assert!(s.searched[0].outcome.starts_with("unreadable file.ptr"));

    // The same file.ptr over HTTP: PATH and MSG.
    let server = FileServer::start(store.clone());
    write_ptr(&format!(
        "PATH:{}",
        elsewhere.join("odbcvend.pdb").display()
    ));
    let s = load(&format!("srv*{}", server.url), &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    let outcomes: Vec<&str> = s.searched.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes[..2], ["HTTP 404", "HTTP 404"]);
    assert!(
        s.searched[2].place.ends_with("/file.ptr"),
        "{:?}",
        s.searched
    );
    assert!(outcomes[2].ends_with(", followed"), "{outcomes:?}");
    assert_eq!(outcomes[3], "found");
    write_ptr("MSG:gone");
    let s = load(&format!("srv*{}", server.url), &vendor_module());
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    assert_eq!(s.searched[2].outcome, "MSG:gone");
    assert!(s
        .message
        .as_deref()
        .unwrap()
        .ends_with("the symbol store says: gone"));
}

#[test]
fn damaged_or_odd_cabs_are_errors_and_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(symstore_fixtures().join("odbcvend.pd_")).unwrap();
    let id = vendor_module().pdb.unwrap();
    let check = |name: &str, bytes: &[u8]| -> std::sync::Arc<ModuleSymbols> {
        let store = dir.path().join(name).join("store");
        let cache = dir.path().join(name).join("cache");
        let pd_ = signature_folder(&store, &vendor_module()).join("odbcvend.pd_");
        std::fs::create_dir_all(pd_.parent().unwrap()).unwrap();
        std::fs::write(&pd_, bytes).unwrap();
        let s = load(
            &format!("srv*{}*{}", cache.display(), store.display()),
            &vendor_module(),
        );
        assert_ne!(s.status, SymbolStatus::Loaded, "{name}: {s:?}");
        assert_eq!(s.searched[1].place, pd_.display().to_string(), "{name}");
        // Nothing is left in the cache: no PDB, no temporary file.
        assert_eq!(files_under(&cache), Vec::<PathBuf>::new(), "{name}");
        s
    };

    for cut in [0, 10, 36, 60, good.len() / 3, good.len() - 1] {
        let s = check(&format!("cut{cut}"), &good[..cut]);
        assert_eq!(s.status, SymbolStatus::Error, "{s:?}");
        let outcome = &s.searched[1].outcome;
        assert!(
            outcome.starts_with("cannot expand: corrupt CAB"),
            "cut {cut}: {outcome}"
        );
        let message = s.message.as_deref().unwrap();
        assert!(
            message.contains("odbcvend.pd_"),
            "the message names the file: {message}"
        );
    }

    // A flipped byte in the compressed data: the block checksum catches it.
    let mut flipped = good.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x55;
    let s = check("flipped", &flipped);
    assert_eq!(s.status, SymbolStatus::Error, "{s:?}");

    // Two files in one CAB.
    let two = std::fs::read(symstore_fixtures().join("two-files.pd_")).unwrap();
    let s = check("two", &two);
    assert_eq!(s.status, SymbolStatus::Error, "{s:?}");
    assert_eq!(
        s.searched[1].outcome,
        "cannot expand: the CAB holds 2 files (odbcvend.pdb, leakapp.pdb); \
         a compressed store file holds exactly one"
    );

    // A header claiming a 4 GiB file: streamed, and the claim is not believed.
    let mut huge = good.clone();
    let file_entry = u32::from_le_bytes(huge[16..20].try_into().unwrap()) as usize;
    huge[file_entry..file_entry + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let s = check("huge", &huge);
    assert_eq!(s.status, SymbolStatus::Error, "{s:?}");
    assert_eq!(
        s.searched[1].outcome,
        "cannot expand: corrupt CAB: odbcvend.pdb expanded to 102400 bytes but the CAB says 4294967295"
    );

    // A PDB with another GUID inside: mismatched, not cached.
    let mut other = Cursor::new(Vec::new());
    {
        let mut builder = cab::CabinetBuilder::new();
        builder
            .add_folder(cab::CompressionType::MsZip)
            .add_file("odbcvend.pdb");
        let mut w = builder.build(&mut other).unwrap();
        let mut f = w.next_file().unwrap().unwrap();
        std::io::Write::write_all(
            &mut f,
            &std::fs::read(fixtures().join("mismatch/odbcvend.pdb")).unwrap(),
        )
        .unwrap();
        w.finish().unwrap();
    }
    let s = check("mismatch", other.get_ref());
    assert_eq!(s.status, SymbolStatus::Mismatched, "{s:?}");
    assert!(s.searched[1]
        .outcome
        .starts_with("found, GUID/age mismatch"));
    assert!(!store_path(&dir.path().join("mismatch/cache"), &id).exists());
}

#[test]
fn a_cab_naming_another_file_is_used_when_the_pdb_matches() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    compressed_store(&store, &vendor_module(), "renamed.pd_");
    let s = load(&store.display().to_string(), &vendor_module());
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(
        s.searched[0].outcome,
        "found (compressed), the CAB names it OTHER.PDB, expanded into a temporary file"
    );
}

#[test]
fn by_name_search_finds_a_single_compressed_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    compressed_store(&store, &vendor_module(), "odbcvend.pd_");
    let mut module = vendor_module();
    module.pdb = None;
    let s = load(&store.display().to_string(), &module);
    assert_eq!(s.status, SymbolStatus::LoadedUnverified, "{s:?}");
    assert!(s.lookup(sql_alloc_handle_rva()).is_some());
}

#[cfg(unix)]
#[test]
fn expansion_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cache = dir.path().join("cache");
    compressed_store(&store, &vendor_module(), "odbcvend.pd_");
    let cached = store_path(&cache, &vendor_module().pdb.unwrap());
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, &cached).unwrap();
    let s = load(
        &format!("srv*{}*{}", cache.display(), store.display()),
        &vendor_module(),
    );
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert!(!victim.exists(), "wrote through the symlink");
    let meta = std::fs::symlink_metadata(&cached).unwrap();
    assert!(meta.file_type().is_file());
}
