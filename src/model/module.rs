//! Modules of a dump, looked up by address, and the PDB identity each names.

use crate::addr::{Rva, VirtAddr};
use debugid::DebugId;
use serde::Serialize;

/// The file name part of a Windows or POSIX path.
pub fn file_name_of(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// A GUID as 32 upper-case hex digits in textual order, from its Windows in-memory
/// layout (first three fields little-endian), as symbol stores name it.
pub fn guid_hex(g: &[u8; 16]) -> String {
    format!("{:X}", debug_id(g, 0).uuid().simple())
}

/// The [`DebugId`] of a GUID in its Windows in-memory layout and an age.
fn debug_id(guid: &[u8; 16], age: u32) -> DebugId {
    // `from_guid_age` fails only for a GUID that is not 16 bytes long.
    DebugId::from_guid_age(guid, age).unwrap_or_default()
}

/// The identity of a PDB as an image's CodeView (RSDS) record states it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PdbIdentity {
    /// File name only, e.g. `odbcvend.pdb`.
    pub pdb_name: String,
    /// GUID in its Windows in-memory layout, as in the RSDS record.
    pub guid: [u8; 16],
    /// Age, as in the RSDS record.
    pub age: u32,
}

impl PdbIdentity {
    /// The identity of `pdb_name` with the GUID and age of `id`, as `minidump` and
    /// the `object` crate's CodeView record hand them out.
    pub fn from_debug_id(pdb_name: impl Into<String>, id: DebugId) -> Self {
        Self {
            pdb_name: pdb_name.into(),
            guid: id.uuid().to_bytes_le(),
            age: id.appendix(),
        }
    }

    /// GUID and age as a [`DebugId`].
    pub fn debug_id(&self) -> DebugId {
        debug_id(&self.guid, self.age)
    }

    /// `GUID` (32 hex digits, textual order) and age, e.g. `F7883FB8…2E/1`.
    pub fn signature_text(&self) -> String {
        format!("{}/{}", guid_hex(&self.guid), self.age)
    }
}

/// A module of the dump: loaded, or listed as unloaded.
#[derive(Clone, Debug, Serialize)]
pub struct Module {
    /// File name, as the responsible-module rule and users name modules.
    pub name: String,
    /// Full path as recorded in the dump.
    pub path: String,
    pub base: VirtAddr,
    pub size: u64,
    pub unloaded: bool,
    /// PE timestamp from the module record.
    pub timestamp: u32,
    /// Breakpad-style debug identifier (GUID + age) from the CodeView record, if any.
    pub debug_id: Option<String>,
    /// PDB file name from the CodeView record, if any.
    pub debug_file: Option<String>,
    /// File version from the module's fixed version info, if present.
    pub version: Option<String>,
    /// The PDB 7.0 identity from the CodeView record, for symbol lookup.
    #[serde(skip)]
    pub pdb: Option<PdbIdentity>,
}

impl Module {
    /// The file name part of a Windows or POSIX path.
    pub fn file_name_of(path: &str) -> &str {
        file_name_of(path)
    }

    pub fn end(&self) -> u64 {
        self.base.0.saturating_add(self.size)
    }
}

/// A module picked by address: loaded modules win over unloaded ones that overlap.
#[derive(Clone, Debug, Default)]
pub struct ModuleMap {
    modules: Vec<Module>,
    /// (start, end, index into `modules`), sorted by start; loaded and unloaded kept
    /// apart so that a reused range resolves to the module loaded at dump time.
    loaded: Vec<(u64, u64, usize)>,
    unloaded: Vec<(u64, u64, usize)>,
}

impl ModuleMap {
    pub fn new(modules: Vec<Module>) -> Self {
        let mut loaded = Vec::new();
        let mut unloaded = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            if m.size == 0 {
                continue;
            }
            let entry = (m.base.0, m.end(), i);
            if m.unloaded {
                unloaded.push(entry);
            } else {
                loaded.push(entry);
            }
        }
        loaded.sort_unstable();
        unloaded.sort_unstable();
        ModuleMap {
            modules,
            loaded,
            unloaded,
        }
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    pub fn get(&self, index: usize) -> &Module {
        &self.modules[index]
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The index of the module holding `addr`.
    pub fn find(&self, addr: VirtAddr) -> Option<usize> {
        fn search(ranges: &[(u64, u64, usize)], a: u64) -> Option<usize> {
            // The last range starting at or below `a`; ranges do not overlap in a
            // well-formed dump, and in a malformed one the choice is still stable.
            let i = ranges.partition_point(|r| r.0 <= a);
            let r = ranges.get(i.checked_sub(1)?)?;
            (a < r.1).then_some(r.2)
        }
        search(&self.loaded, addr.0).or_else(|| search(&self.unloaded, addr.0))
    }

    /// The module holding `addr` and the address's offset in it.
    pub fn locate(&self, addr: VirtAddr) -> Option<(usize, Rva)> {
        let i = self.find(addr)?;
        Some((i, addr.rva_from(self.modules[i].base)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, base: u64, size: u64, unloaded: bool) -> Module {
        Module {
            name: name.into(),
            path: format!("C:\\x\\{name}"),
            base: VirtAddr(base),
            size,
            unloaded,
            timestamp: 0,
            debug_id: None,
            debug_file: None,
            version: None,
            pdb: None,
        }
    }

    #[test]
    fn lookup_prefers_loaded_modules() {
        let map = ModuleMap::new(vec![
            m("a.dll", 0x1000, 0x1000, false),
            m("old.dll", 0x2000, 0x2000, true),
            m("b.dll", 0x3000, 0x1000, false),
        ]);
        assert_eq!(map.find(VirtAddr(0x0fff)), None);
        assert_eq!(map.find(VirtAddr(0x1000)), Some(0));
        assert_eq!(map.find(VirtAddr(0x1fff)), Some(0));
        assert_eq!(map.find(VirtAddr(0x2000)), Some(1));
        assert_eq!(map.find(VirtAddr(0x3000)), Some(2));
        assert_eq!(map.find(VirtAddr(0x4000)), None);
        assert_eq!(map.locate(VirtAddr(0x3366)), Some((2, Rva(0x366))));
    }

    #[test]
    fn file_names() {
        assert_eq!(
            Module::file_name_of("C:\\a\\b\\odbcvend.dll"),
            "odbcvend.dll"
        );
        assert_eq!(Module::file_name_of("/usr/lib/x.so"), "x.so");
        assert_eq!(Module::file_name_of("plain.dll"), "plain.dll");
    }
}
