//! Names by address: a PDB's symbols of one kind sorted by RVA, with its sections'
//! ranges. An address takes the nearest name at or before it in the same section,
//! as WinDbg's `ln` does; among several names at one address the last in (address,
//! name) order, which is what llvm-symbolizer reports. Public symbols
//! ([`super::publics`]) and global variables ([`super::globals`]) are such tables.

use super::pdb::SharedBytes;
use pdb_addr2line::pdb::{FallibleIterator, PdbInternalSectionOffset, SymbolData, SymbolIter, PDB};
use std::io::Cursor;

/// `(rva, name)` sorted by rva then name, and the sections' RVA ranges.
#[derive(Debug, Default)]
pub struct NearestNames {
    symbols: Vec<(u32, String)>,
    sections: Vec<(u32, u32)>,
}

/// Which streams hold the symbols wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streams {
    /// The global symbol stream only (public symbols).
    Global,
    /// The global stream and every module's own (statics are only there).
    GlobalAndModules,
}

impl NearestNames {
    /// Reads the symbols `pick` keeps (its section offset and name). Damage makes the
    /// table shorter, never an error: names are a convenience on top of offsets.
    pub fn read(
        bytes: &SharedBytes,
        streams: Streams,
        pick: impl Fn(&SymbolData<'_>) -> Option<(PdbInternalSectionOffset, String)>,
    ) -> Self {
        Self::try_read(bytes, streams, pick).unwrap_or_default()
    }

    fn try_read(
        bytes: &SharedBytes,
        streams: Streams,
        pick: impl Fn(&SymbolData<'_>) -> Option<(PdbInternalSectionOffset, String)>,
    ) -> Result<Self, pdb_addr2line::pdb::Error> {
        let mut pdb = PDB::open(Cursor::new(bytes.clone()))?;
        let address_map = pdb.address_map()?;
        let sections = pdb
            .sections()?
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let size = s.virtual_size.max(s.size_of_raw_data);
                (s.virtual_address, s.virtual_address.saturating_add(size))
            })
            .collect();
        let mut symbols = Vec::new();
        let mut collect = |mut iter: SymbolIter<'_>| {
            while let Ok(Some(symbol)) = iter.next() {
                let Some((offset, name)) = symbol.parse().ok().as_ref().and_then(&pick) else {
                    continue;
                };
                if let Some(rva) = offset.to_rva(&address_map) {
                    symbols.push((rva.0, name));
                }
            }
        };
        let globals = pdb.global_symbols()?;
        collect(globals.iter());
        if streams == Streams::GlobalAndModules {
            if let Ok(info) = pdb.debug_information() {
                if let Ok(mut modules) = info.modules() {
                    while let Ok(Some(module)) = modules.next() {
                        if let Ok(Some(module_info)) = pdb.module_info(&module) {
                            if let Ok(iter) = module_info.symbols() {
                                collect(iter);
                            }
                        }
                    }
                }
            }
        }
        symbols.sort();
        symbols.dedup();
        Ok(Self { symbols, sections })
    }

    /// The name covering `rva`: `(its start rva, name)`.
    pub fn find(&self, rva: u32) -> Option<(u32, &str)> {
        let at = self.symbols.partition_point(|(start, _)| *start <= rva);
        let (start, name) = self.symbols.get(at.checked_sub(1)?)?;
        let same_section = self.sections.is_empty()
            || self
                .sections
                .iter()
                .any(|&(lo, hi)| lo <= *start && *start < hi && lo <= rva && rva < hi);
        same_section.then_some((*start, name.as_str()))
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}
