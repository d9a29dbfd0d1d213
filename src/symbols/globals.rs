//! The PDB's global and static variables, to name the module data that holds a
//! pointer (`app.exe!g_cache+0x18`) in the reachability scan.
//!
//! Data symbols (`S_GDATA32`, `S_LDATA32`) come from the global symbol stream and
//! from every module's symbol stream (function-level statics and file statics are
//! only there). A symbol has an address but no size without type information, so
//! an address is named after the nearest variable at or before it in the same
//! section, as WinDbg's `ln` does.

use super::pdb::SharedBytes;
use pdb_addr2line::pdb::{FallibleIterator, SymbolData, SymbolIter, PDB};
use std::io::Cursor;

/// Data symbols sorted by address, plus the sections' RVA ranges.
#[derive(Debug, Default)]
pub struct GlobalData {
    /// `(rva, name)` sorted by rva then name, without duplicates.
    symbols: Vec<(u32, String)>,
    /// `(start rva, end rva)` of each section.
    sections: Vec<(u32, u32)>,
}

impl GlobalData {
    /// Reads the data symbols. Damage makes the table shorter, never an error: a
    /// name is a convenience on top of the module and offset.
    pub fn read(bytes: &SharedBytes) -> Self {
        Self::try_read(bytes).unwrap_or_default()
    }

    fn try_read(bytes: &SharedBytes) -> Result<Self, pdb_addr2line::pdb::Error> {
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
                if let Ok(SymbolData::Data(d)) = symbol.parse() {
                    if let Some(rva) = d.offset.to_rva(&address_map) {
                        symbols.push((rva.0, d.name.to_string().into_owned()));
                    }
                }
            }
        };
        let globals = pdb.global_symbols()?;
        collect(globals.iter());
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
        symbols.sort();
        symbols.dedup();
        Ok(Self { symbols, sections })
    }

    /// The variable at or before `rva` in the same section: `(its rva, name)`.
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
