//! The analysis model: what every input is turned into and every report reads.
//!
//! Inputs (`dump`) fill these types; scripts (`scripts`) compute their sections from
//! them; reports (`report`) only format them. The JSON report is these types
//! serialized, so a field added here is a schema change (docs/report-schema.md).

use crate::addr::{Rva, VirtAddr};
use crate::scripts::{Finding, SectionOutcome};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::path::Path;

/// The schema tag of a dump's report.json.
pub const REPORT_SCHEMA: &str = "leakdiag-report/2";
/// The schema tag of a run's index.json.
pub const INDEX_SCHEMA: &str = "leakdiag-index/2";

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
    pub pdb: Option<crate::symbols::PdbIdentity>,
}

impl Module {
    /// What the symbolizer needs to find this module's PDB.
    pub fn identity(&self) -> crate::symbols::ModuleIdentity {
        crate::symbols::ModuleIdentity {
            file_name: self.name.clone(),
            code_path: self.path.clone(),
            base: self.base.0,
            size: self.size,
            pdb: self.pdb.clone(),
        }
    }

    /// The file name part of a Windows or POSIX path.
    pub fn file_name_of(path: &str) -> &str {
        crate::symbols::pe::file_name_of(path)
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

/// The dump file a report is about.
#[derive(Clone, Debug, Serialize)]
pub struct DumpSource {
    pub path: String,
    pub file_name: String,
    pub size: u64,
}

impl DumpSource {
    pub fn new(path: &Path, size: u64) -> Self {
        DumpSource {
            path: path.display().to_string(),
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size,
        }
    }
}

/// What the dump tells about the process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessInfo {
    /// Path of the main module.
    pub image: Option<String>,
    pub pid: Option<u32>,
    pub arch: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    /// When the dump was written (RFC 3339, UTC).
    pub dump_time: Option<String>,
    /// When the process started (RFC 3339, UTC), from the misc-info stream.
    pub process_create_time: Option<String>,
}

/// Converts a Windows FILETIME (100 ns ticks since 1601-01-01 UTC) to RFC 3339.
pub fn filetime_to_rfc3339(filetime: u64) -> Option<String> {
    const TICKS_1601_TO_1970: i128 = 116_444_736_000_000_000;
    let nanos = (i128::from(filetime) - TICKS_1601_TO_1970) * 100;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Converts Unix seconds to RFC 3339.
pub fn unix_to_rfc3339(seconds: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// One line of tracker metadata.
#[derive(Clone, Debug, Serialize)]
pub struct MetadataItem {
    pub key: String,
    /// `None` for a line without `=`.
    pub value: Option<String>,
}

/// The stream's flags, spelled out.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TrackingFlags {
    pub raw: u32,
    pub return_addresses: bool,
    pub dropped: bool,
    pub truncated_stacks: bool,
}

/// The tracking window and the tracker's own description of its data.
#[derive(Clone, Debug, Serialize)]
pub struct TrackingInfo {
    /// Stream version, "major.minor".
    pub version: String,
    pub start: Option<String>,
    pub snapshot: Option<String>,
    pub start_filetime: u64,
    pub snapshot_filetime: u64,
    /// snapshot − start in seconds (0 when the snapshot precedes the start).
    pub duration_seconds: f64,
    pub allocations: u64,
    pub bytes: u64,
    pub frames: u64,
    pub stacks: u64,
    pub flags: TrackingFlags,
    pub metadata: Vec<MetadataItem>,
    pub allocator_modules: Vec<String>,
}

/// A dump's report: what report.json holds and report.html shows.
#[derive(Debug, Serialize)]
pub struct DumpReport {
    pub schema: &'static str,
    pub generator: String,
    pub dump: DumpSource,
    pub process: ProcessInfo,
    /// `None` when the dump carries no allocation stream.
    pub tracking: Option<TrackingInfo>,
    /// The analysis summary: every script's findings, most severe first.
    pub summary: Vec<Finding>,
    /// One entry per script that ran, keyed by the script's name.
    #[serde(serialize_with = "serialize_sections")]
    pub sections: Vec<SectionOutcome>,
    pub warnings: Vec<String>,
}

impl DumpReport {
    /// The section of script `name` as `T`, if that script ran and succeeded.
    pub fn section<T: 'static>(&self, name: &str) -> Option<&T> {
        self.sections
            .iter()
            .find(|s| s.script == name)
            .and_then(|s| s.data())
    }
}

/// Sections as a map from script name to the section, or to
/// `{"status": "skipped" | "error", "message": …}`.
fn serialize_sections<S: Serializer>(sections: &[SectionOutcome], s: S) -> Result<S::Ok, S::Error> {
    use crate::scripts::ScriptError;
    let mut map = s.serialize_map(Some(sections.len()))?;
    for section in sections {
        match &section.result {
            Ok(data) => {
                let value = data.to_json().map_err(serde::ser::Error::custom)?;
                map.serialize_entry(section.script, &value)?;
            }
            Err(e) => {
                let status = match e {
                    ScriptError::NotApplicable(_) => "skipped",
                    ScriptError::Failed(_) => "error",
                };
                let value = serde_json::json!({ "status": status, "message": e.to_string() });
                map.serialize_entry(section.script, &value)?;
            }
        }
    }
    map.end()
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
    fn file_names_and_times() {
        assert_eq!(
            Module::file_name_of("C:\\a\\b\\odbcvend.dll"),
            "odbcvend.dll"
        );
        assert_eq!(Module::file_name_of("/usr/lib/x.so"), "x.so");
        assert_eq!(Module::file_name_of("plain.dll"), "plain.dll");
        // 2020-01-01T00:00:00Z
        assert_eq!(
            filetime_to_rfc3339(132_223_104_000_000_000).as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(unix_to_rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
