//! One `Symbolizer` shared by many threads: every thread gets the same answers as
//! a single-threaded run, and each PDB is opened once.

use crate::symbols_common::*;
use leakdiag::symbols::{
    ModuleIdentity, ModuleSymbols, SymbolFrame, SymbolOptions, SymbolPathEntry, SymbolStatus,
    Symbolizer,
};
use std::sync::Arc;

fn all_addresses(symbols: &ModuleSymbols) -> Vec<u32> {
    let mut rvas = Vec::new();
    for (start, end, _) in symbols.functions() {
        let end = end.unwrap_or(start + 1).min(start + 512);
        rvas.extend(start..end);
    }
    rvas
}

/// What `lookup` returned for one address.
type Answer = Option<Vec<SymbolFrame>>;

fn resolve_all(symbols: &ModuleSymbols, rvas: &[u32]) -> Vec<Answer> {
    rvas.iter().map(|&rva| symbols.lookup(rva)).collect()
}

#[test]
fn threads_share_pdbs_and_agree() {
    let options = SymbolOptions {
        search_path: vec![SymbolPathEntry::Folder(fixtures())],
        ..SymbolOptions::default()
    };
    let modules: Vec<ModuleIdentity> = vec![
        vendor_module(),
        module_from_image(
            &fixtures().join("leakapp.exe"),
            "C:\\app\\leakapp.exe",
            0x1_4000_0000,
        ),
    ];

    // Single-threaded reference, from its own symbolizer.
    let reference_run = Symbolizer::new(options.clone());
    let reference: Vec<(Vec<u32>, Vec<Answer>)> = modules
        .iter()
        .map(|m| {
            let s = reference_run.load(m, None);
            assert_eq!(s.status, SymbolStatus::Loaded, "{s:?}");
            let rvas = all_addresses(&s);
            let frames = resolve_all(&s, &rvas);
            (rvas, frames)
        })
        .collect();

    let shared = Symbolizer::new(options);
    let loaded: Vec<Vec<Arc<ModuleSymbols>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (shared, modules, reference) = (&shared, &modules, &reference);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    // Threads start on different modules and walk the addresses in
                    // different orders, so lookups really overlap.
                    for k in 0..modules.len() {
                        let i = (t + k) % modules.len();
                        let s = shared.load(&modules[i], None);
                        let (rvas, expected) = &reference[i];
                        for round in 0..2 {
                            let order: Vec<usize> = if (t + round) % 2 == 0 {
                                (0..rvas.len()).collect()
                            } else {
                                (0..rvas.len()).rev().collect()
                            };
                            for j in order {
                                let rva = rvas[j];
                                assert_eq!(s.lookup(rva), expected[j], "thread {t} rva {rva:#x}");
                            }
                        }
                        mine.push((i, s));
                    }
                    mine.sort_by_key(|(i, _)| *i);
                    mine.into_iter().map(|(_, s)| s).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Every thread got the very same loaded module (opened once per run).
    for per_thread in &loaded[1..] {
        for (a, b) in per_thread.iter().zip(&loaded[0]) {
            assert!(Arc::ptr_eq(a, b));
        }
    }
}
