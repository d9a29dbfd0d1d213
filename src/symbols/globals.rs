//! The PDB's global and static variables, to name the module data that holds a
//! pointer (`app.exe!g_cache+0x18`) in the reachability scan.
//!
//! Data symbols (`S_GDATA32`, `S_LDATA32`) come from the global symbol stream and
//! from every module's symbol stream (function-level statics and file statics are
//! only there). A symbol has an address but no size without type information, so
//! an address is named after the nearest variable at or before it in the same
//! section ([`NearestNames`]).

use super::nearest::{NearestNames, Streams};
use super::pdb::SharedBytes;
use pdb_addr2line::pdb::SymbolData;

/// Data symbols sorted by address.
#[derive(Debug, Default)]
pub struct GlobalData(NearestNames);

impl GlobalData {
    /// Reads the data symbols; damage makes the table shorter, never an error.
    pub fn read(bytes: &SharedBytes) -> Self {
        GlobalData(NearestNames::read(
            bytes,
            Streams::GlobalAndModules,
            |s| match s {
                SymbolData::Data(d) => Some((d.offset, d.name.to_string().into_owned())),
                _ => None,
            },
        ))
    }

    /// The variable at or before `rva` in the same section: `(its rva, name)`.
    pub fn find(&self, rva: u32) -> Option<(u32, &str)> {
        self.0.find(rva)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
