//! The PDB's public symbols, for addresses no procedure covers.
//!
//! Code without debug info (CRT objects, import thunks, hand-written assembly)
//! has no procedure record, only public symbols. Like WinDbg (`module!sym+0x40`)
//! and llvm-symbolizer, such an address is attributed to the nearest public
//! symbol at or before it in the same section ([`NearestNames`]).

use super::nearest::{NearestNames, Streams};
use super::pdb::SharedBytes;
use pdb_addr2line::pdb::SymbolData;

/// Public symbols sorted by address.
#[derive(Debug, Default)]
pub struct PublicSymbols(NearestNames);

impl PublicSymbols {
    /// Reads the public symbols. Damage makes the table shorter, never an error:
    /// this is a fallback on top of the procedure records.
    pub fn read(bytes: &SharedBytes) -> Self {
        PublicSymbols(NearestNames::read(bytes, Streams::Global, |s| match s {
            SymbolData::Public(p) => Some((p.offset, p.name.to_string().into_owned())),
            _ => None,
        }))
    }

    /// The public symbol covering `rva`: `(symbol start rva, name)`.
    pub fn find(&self, rva: u32) -> Option<(u32, &str)> {
        self.0.find(rva)
    }
}
