//! Symbols for the leak analysis: the PDBs of every module that appears in a stack,
//! loaded through the run's shared [`Symbolizer`], and address lookups in them.

use crate::addr::Rva;
use crate::model::ModuleMap;
use crate::model::{SymbolStatus, SymbolsRow};
use crate::symbols::{MemoryReader, ModuleIdentity, ModuleSymbols, SymbolFrame, Symbolizer};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The loaded symbols of one dump's modules.
#[derive(Default)]
pub struct Symbols {
    /// By module index: looked up for every stack's responsible frame, so an index,
    /// not a hash.
    loaded: Vec<Option<Arc<ModuleSymbols>>>,
    /// Frames are return addresses: look up address − 1, as debuggers do, so that a
    /// call at the end of a function or inline range resolves to the caller's line.
    return_addresses: bool,
}

impl Symbols {
    /// Loads the symbols of `wanted` modules (indices into `modules`), in parallel.
    pub fn load(
        symbolizer: &Symbolizer,
        modules: &ModuleMap,
        wanted: &BTreeSet<usize>,
        memory: &(dyn Fn(u64, usize) -> Option<Vec<u8>> + Sync),
        return_addresses: bool,
    ) -> Self {
        let wanted: Vec<usize> = wanted.iter().copied().collect();
        let found: Vec<(usize, Arc<ModuleSymbols>)> = wanted
            .par_iter()
            .map(|&i| {
                let reader: MemoryReader<'_> = memory;
                (
                    i,
                    symbolizer.load(&ModuleIdentity::of(modules.get(i)), Some(reader)),
                )
            })
            .collect();
        let mut loaded = vec![None; modules.len()];
        for (i, s) in found {
            if let Some(slot) = loaded.get_mut(i) {
                *slot = Some(s);
            }
        }
        Symbols {
            loaded,
            return_addresses,
        }
    }

    /// The frames (innermost inlined first) at `rva` in module `module`.
    pub fn lookup(&self, module: usize, rva: Rva) -> Option<Vec<SymbolFrame>> {
        let symbols = self.loaded.get(module)?.as_ref()?;
        let rva = if self.return_addresses {
            rva.0.checked_sub(1)?
        } else {
            rva.0
        };
        symbols.lookup(u32::try_from(rva).ok()?)
    }

    /// Whether the module has usable symbols.
    pub fn has_symbols(&self, module: usize) -> bool {
        self.loaded
            .get(module)
            .and_then(Option::as_ref)
            .is_some_and(|s| {
                matches!(
                    s.status,
                    SymbolStatus::Loaded | SymbolStatus::LoadedUnverified
                )
            })
    }

    /// One row per loaded-or-tried module, sorted by module name.
    pub fn rows(&self, modules: &ModuleMap) -> Vec<SymbolsRow> {
        let mut rows: Vec<SymbolsRow> = self
            .loaded
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
            .map(|(i, s)| SymbolsRow {
                module: modules.get(i).name.clone(),
                status: s.status,
                pdb: s.pdb_path.as_ref().map(|p| p.display().to_string()),
                message: s.message.clone(),
                searched: s.searched.clone(),
            })
            .collect();
        rows.sort_by(|a, b| a.module.cmp(&b.module).then(a.pdb.cmp(&b.pdb)));
        rows
    }
}
