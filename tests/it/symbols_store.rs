//! Symbol path parsing, local store/flat layouts and HTTP symbol servers (a real
//! loopback server started by the test), including 404s and time-outs.

use crate::symbols_common::*;
use leakdiag::symbols::store::{signature_dir, store_path};
use leakdiag::symbols::{
    StoreLocation, SymbolOptions, SymbolPathEntry, SymbolPathError, SymbolStatus, Symbolizer,
};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn options(path: &str) -> SymbolOptions {
    SymbolOptions::from_args_and_env(&[path.to_string()], None, &[]).unwrap()
}

/// A store folder holding the fixture PDB in the store layout.
fn make_store(root: &std::path::Path) -> PathBuf {
    let id = vendor_module().pdb.unwrap();
    let path = store_path(root, &id);
    copy_to(&fixtures().join("odbcvend.pdb"), &path);
    path
}

#[test]
fn parses_args_then_env_in_order() {
    let args = vec![
        "/a;cache*/c".to_string(),
        "srv*/cache1*https://sym.example.test/store/".to_string(),
    ];
    let env = "SRV*http://h.test;symsrv*symsrv.dll*/d*/e;;/f";
    let o = SymbolOptions::from_args_and_env(&args, Some(env), &[PathBuf::from("/img")]).unwrap();
    assert_eq!(
        o.search_path,
        vec![
            SymbolPathEntry::Folder("/a".into()),
            SymbolPathEntry::Cache("/c".into()),
            SymbolPathEntry::Store {
                caches: vec!["/cache1".into()],
                store: StoreLocation::Http("https://sym.example.test/store".into()),
            },
            SymbolPathEntry::Store {
                caches: vec![],
                store: StoreLocation::Http("http://h.test".into()),
            },
            SymbolPathEntry::Store {
                caches: vec!["/d".into()],
                store: StoreLocation::Folder("/e".into()),
            },
            SymbolPathEntry::Folder("/f".into()),
        ]
    );
    assert_eq!(o.images, vec![PathBuf::from("/img")]);
    let err = SymbolOptions::from_args_and_env(&[], Some("srv*/x*"), &[]).unwrap_err();
    assert!(matches!(err, SymbolPathError::MissingStore { .. }), "{err}");
}

#[test]
fn store_layout_then_flat_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let expected = make_store(&store);
    let id = vendor_module().pdb.unwrap();
    assert!(expected.ends_with(format!(
        "odbcvend.pdb/{}/odbcvend.pdb",
        signature_dir(&id.guid, id.age)
    )));

    let s = Symbolizer::new(options(&store.display().to_string())).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path.as_deref(), Some(expected.as_path()));
    assert!(s.lookup(sql_alloc_handle_rva()).is_some());

    // Flat: the PDB directly in a folder; the store layout is tried first.
    let flat = dir.path().join("flat");
    copy_to(&fixtures().join("odbcvend.pdb"), &flat.join("odbcvend.pdb"));
    let s = Symbolizer::new(options(&flat.display().to_string())).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path, Some(flat.join("odbcvend.pdb")));
    assert_eq!(s.searched.len(), 2, "{:?}", s.searched);
    assert_eq!(s.searched[0].outcome, "not found");
    assert_eq!(s.searched[1].outcome, "found");

    // Case-insensitive names, as on Windows.
    let upper = dir.path().join("upper");
    copy_to(
        &fixtures().join("odbcvend.pdb"),
        &upper.join("ODBCVEND.PDB"),
    );
    let s = Symbolizer::new(options(&upper.display().to_string())).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
}

#[test]
fn path_order_skips_a_wrong_pdb() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    copy_to(
        &fixtures().join("mismatch/odbcvend.pdb"),
        &wrong.join("odbcvend.pdb"),
    );
    let right = dir.path().join("right");
    copy_to(
        &fixtures().join("odbcvend.pdb"),
        &right.join("odbcvend.pdb"),
    );
    let path = format!("{};{}", wrong.display(), right.display());
    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path, Some(right.join("odbcvend.pdb")));
    assert!(
        s.searched[1]
            .outcome
            .starts_with("found, GUID/age mismatch"),
        "{:?}",
        s.searched
    );
}

#[test]
fn cache_entry_and_folder_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let expected = make_store(&store);
    // cache*DIR is searched where it stands; a srv* folder store after it.
    let path = format!(
        "cache*{};srv*{}*{}",
        dir.path().join("c1").display(),
        dir.path().join("c2").display(),
        store.display()
    );
    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path, Some(expected));
    let places: Vec<&str> = s.searched.iter().map(|a| a.place.as_str()).collect();
    assert!(places[0].contains("c1"), "{places:?}");
    assert!(places[1].contains("c2"), "{places:?}");
    let symsrv = format!(
        "symsrv*symsrv.dll*{}*{}",
        dir.path().join("c3").display(),
        store.display()
    );
    let s = Symbolizer::new(options(&symsrv)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
}

#[test]
fn http_download_lands_in_cache_and_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    make_store(&served);
    let cache = dir.path().join("cache");
    let mut server = FileServer::start(served);
    let path = format!("srv*{}*{}", cache.display(), server.url);

    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    let cached = store_path(&cache, &vendor_module().pdb.unwrap());
    assert_eq!(s.pdb_path.as_deref(), Some(cached.as_path()));
    assert!(cached.is_file());
    let last = s.searched.last().unwrap();
    assert!(last.place.starts_with(&server.url), "{last:?}");
    assert!(last.outcome.starts_with("downloaded"), "{last:?}");
    assert!(s.lookup(sql_alloc_handle_rva()).is_some());
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    // A new run with the server gone finds it in the cache.
    server.stop();
    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path.as_deref(), Some(cached.as_path()));
    assert_eq!(s.searched.len(), 1, "{:?}", s.searched);
    assert_eq!(s.searched[0].outcome, "found");
}

#[test]
fn http_uses_last_cache_entry_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    make_store(&served);
    let server = FileServer::start(served);
    let cache = dir.path().join("cache");
    let path = format!("cache*{};srv*{}", cache.display(), server.url);
    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(
        s.pdb_path,
        Some(store_path(&cache, &vendor_module().pdb.unwrap()))
    );

    // No cache anywhere: used from memory, nothing saved.
    let s = Symbolizer::new(options(&format!("srv*{}", server.url))).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert_eq!(s.pdb_path, None);
    assert!(
        s.searched[0].outcome.contains("no cache folder"),
        "{:?}",
        s.searched
    );
    assert!(s.lookup(sql_alloc_handle_rva()).is_some());
}

#[test]
fn http_404_and_wrong_pdb_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let server = FileServer::start(served.clone());
    let cache = dir.path().join("cache");
    let path = format!("srv*{}*{}", cache.display(), server.url);
    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::NotFound, "{s:?}");
    // The cache, then the server's `.pdb`, `.pd_` and `file.ptr`.
    assert_eq!(s.searched.len(), 4, "{:?}", s.searched);
    let names: Vec<&str> = s.searched[1..]
        .iter()
        .map(|a| a.place.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["odbcvend.pdb", "odbcvend.pd_", "file.ptr"]);
    assert!(s.searched[1..].iter().all(|a| a.outcome == "HTTP 404"));
    assert!(s.message.as_deref().unwrap().contains("odbcvend.pdb"));

    // The server hands out a PDB with another GUID: rejected, not cached.
    let id = vendor_module().pdb.unwrap();
    copy_to(
        &fixtures().join("mismatch/odbcvend.pdb"),
        &store_path(&served, &id),
    );
    let s = Symbolizer::new(options(&path)).load(&vendor_module(), None);
    assert_eq!(s.status, SymbolStatus::Mismatched, "{s:?}");
    assert!(!store_path(&cache, &id).exists());
}

#[test]
fn http_timeout_and_refused_connection_do_not_hang() {
    let silent = SilentServer::start();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right");
    copy_to(
        &fixtures().join("odbcvend.pdb"),
        &right.join("odbcvend.pdb"),
    );
    let mut o = options(&format!(
        "srv*{};srv*{};{}",
        silent.url,
        closed,
        right.display()
    ));
    o.http_timeout = Duration::from_millis(800);
    let started = Instant::now();
    let s = Symbolizer::new(o).load(&vendor_module(), None);
    let took = started.elapsed();
    // Not a speed check: a server that never answers must not hang the lookup. The
    // bound is far above the 800 ms time-out so that a loaded machine cannot fail it.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
    assert!(
        s.searched[0].outcome.contains("timed out"),
        "{:?}",
        s.searched
    );
    assert!(
        s.searched[1].outcome.starts_with("HTTP error"),
        "{:?}",
        s.searched
    );
}
