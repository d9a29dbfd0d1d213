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
    /// A loaded module known by its path, base and size only: named by the path's
    /// file name, with no timestamp, identity or version (readers add what they know
    /// with struct update syntax).
    pub fn at(path: &str, base: VirtAddr, size: u64) -> Module {
        Module {
            name: file_name_of(path).to_owned(),
            path: path.to_owned(),
            base,
            size,
            unloaded: false,
            timestamp: 0,
            debug_id: None,
            debug_file: None,
            version: None,
            pdb: None,
        }
    }

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
    loaded: Ranges,
    unloaded: Ranges,
}

/// Module ranges sorted by start, with a bucket index over the starts so that a lookup
/// binary-searches only the few ranges of one bucket: every frame of a dump is looked
/// up (millions of them for a server's leak), and a search of the whole list was a
/// large part of reading a dump with 100,000 stacks.
#[derive(Clone, Debug, Default)]
struct Ranges {
    ranges: Vec<(u64, u64, usize)>,
    /// The smallest start.
    low: u64,
    /// Bucket `b` covers starts in `[low + b << shift, low + (b + 1) << shift)`.
    shift: u32,
    /// `before[b]`: the number of ranges starting before bucket `b`; one entry more
    /// than there are buckets.
    before: Vec<usize>,
}

impl Ranges {
    fn new(mut ranges: Vec<(u64, u64, usize)>) -> Self {
        ranges.sort_unstable();
        let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
            return Ranges::default();
        };
        let (low, span) = (first.0, last.0 - first.0);
        // About four buckets a range.
        let wanted = (4 * ranges.len() as u64).max(1);
        let mut shift = 0;
        while shift < 63 && (span >> shift) >= wanted {
            shift += 1;
        }
        let buckets = (span >> shift) as usize + 1;
        let before = (0..=buckets)
            .map(|b| {
                // In 128 bits: the last buckets may start past 2^64.
                let start = u128::from(low) + ((b as u128) << shift);
                ranges.partition_point(|r| u128::from(r.0) < start)
            })
            .collect();
        Ranges {
            ranges,
            low,
            shift,
            before,
        }
    }

    /// The last range starting at or below `a`, if `a` lies in it; ranges do not
    /// overlap in a well-formed dump, and in a malformed one the choice is still
    /// stable (the same as a search of the whole list).
    #[inline]
    fn find(&self, a: u64) -> Option<usize> {
        if a < self.low || self.ranges.is_empty() {
            return None;
        }
        let last = self.before.len() - 1;
        let b = (((a - self.low) >> self.shift) as usize).min(last);
        let from = self.before[b];
        let to = self.before.get(b + 1).copied().unwrap_or(self.ranges.len());
        // Ranges before `from` start below `a`, those from `to` on above it.
        let i = from + self.ranges[from..to].partition_point(|r| r.0 <= a);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (a < r.1).then_some(r.2)
    }
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
        ModuleMap {
            modules,
            loaded: Ranges::new(loaded),
            unloaded: Ranges::new(unloaded),
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
        self.loaded
            .find(addr.0)
            .or_else(|| self.unloaded.find(addr.0))
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
            unloaded,
            ..Module::at(&format!("C:\\x\\{name}"), VirtAddr(base), size)
        }
    }

    #[test]
    fn the_bucket_index_finds_what_a_search_of_the_whole_list_finds() {
        fn whole(ranges: &[(u64, u64, usize)], a: u64) -> Option<usize> {
            let i = ranges.partition_point(|r| r.0 <= a);
            let r = ranges.get(i.checked_sub(1)?)?;
            (a < r.1).then_some(r.2)
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let count = (next() % 40) as usize;
            // Clustered, spread, overlapping, duplicated and extreme starts.
            let spread = [0x1000u64, 1 << 24, 1 << 40, u64::MAX][round % 4];
            let mut ranges: Vec<(u64, u64, usize)> = (0..count)
                .map(|i| {
                    let start = match next() % 10 {
                        0 => 0,
                        1 => u64::MAX - next() % 0x1000,
                        _ => 0x7ff0_0000_0000u64.wrapping_add(next() % spread),
                    };
                    (start, start.saturating_add(next() % 0x20_0000), i)
                })
                .collect();
            if count > 2 {
                ranges.push(ranges[1]);
            }
            let index = Ranges::new(ranges.clone());
            let mut sorted = ranges.clone();
            sorted.sort_unstable();
            let mut probes: Vec<u64> = vec![0, 1, u64::MAX, u64::MAX - 1];
            for r in &ranges {
                probes.extend([
                    r.0,
                    r.0.wrapping_sub(1),
                    r.1,
                    r.1.wrapping_sub(1),
                    r.0 / 2 + r.1 / 2,
                ]);
            }
            for _ in 0..200 {
                probes.push(0x7ff0_0000_0000u64.wrapping_add(next() % spread));
            }
            for a in probes {
                assert_eq!(
                    index.find(a),
                    whole(&sorted, a),
                    "round {round}, address {a:#x}"
                );
            }
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
