//! The PDB's public symbols, for addresses no procedure covers.
//!
//! Code without debug info (CRT objects, import thunks, hand-written assembly)
//! has no procedure record, only public symbols. Like WinDbg (`module!sym+0x40`)
//! and llvm-symbolizer, such an address is attributed to the nearest public
//! symbol at or before it in the same section. Among several publics at one
//! address (aliases such as `_fpreset`/`fpreset`) the last in (address, name)
//! order is used, which is what llvm-symbolizer reports.

use super::pdb::SharedBytes;
use pdb_addr2line::pdb::{FallibleIterator, SymbolData, PDB};
use std::io::Cursor;

/// Public symbols sorted by address, plus the sections' RVA ranges.
#[derive(Debug, Default)]
pub struct PublicSymbols {
    /// `(rva, name)` sorted by rva then name.
    symbols: Vec<(u32, String)>,
    /// `(start rva, end rva)` of each section.
    sections: Vec<(u32, u32)>,
}

impl PublicSymbols {
    /// Reads the public symbols. Damage makes the table shorter, never an error:
    /// this is a fallback on top of the procedure records.
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
        let table = pdb.global_symbols()?;
        let mut iter = table.iter();
        let mut symbols = Vec::new();
        loop {
            let symbol = match iter.next() {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(_) => break,
            };
            if let Ok(SymbolData::Public(p)) = symbol.parse() {
                if let Some(rva) = p.offset.to_rva(&address_map) {
                    symbols.push((rva.0, p.name.to_string().into_owned()));
                }
            }
        }
        symbols.sort();
        Ok(Self { symbols, sections })
    }

    /// The public symbol covering `rva`: `(symbol start rva, name)`.
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
}
