//! A dump's report: the source, the process, the tracking window, the analysis
//! summary and one section per script that ran.

use super::{
    Finding, Handles, LeakAnalysis, Modules, ProcessSection, Reachability, Section, SectionData,
    TrackingInfo, UmdhGrowth, Verdict, VirtualMemory,
};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::path::Path;

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

/// A dump's report: what report.json holds and report.html shows.
#[derive(Debug, Serialize)]
pub struct DumpReport {
    pub schema: &'static str,
    pub generator: String,
    pub dump: DumpSource,
    pub process: ProcessInfo,
    /// `None` when the dump carries no allocation stream.
    pub tracking: Option<TrackingInfo>,
    /// The answer, from all the evidence (docs/verdict.md).
    pub verdict: Verdict,
    /// The analysis summary: every script's findings, most severe first.
    pub summary: Vec<Finding>,
    /// One entry per script that ran, keyed by the script's name.
    #[serde(serialize_with = "serialize_sections")]
    pub sections: Vec<Section>,
    pub warnings: Vec<String>,
}

/// One typed accessor per section: a match on the closed [`SectionData`] enum.
macro_rules! accessors {
    ($($(#[$doc:meta])* $name:ident: $variant:ident -> $ty:ty,)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> Option<&$ty> {
            self.section_data().find_map(|d| match d {
                SectionData::$variant(s) => {
                    // Deref coercion: the leak variant is boxed.
                    let s: &$ty = s;
                    Some(s)
                }
                _ => None,
            })
        }
    )*};
}

impl DumpReport {
    /// The data of every section whose script succeeded, in report order.
    pub fn section_data(&self) -> impl Iterator<Item = &SectionData> {
        self.sections.iter().filter_map(|s| s.result.as_ref().ok())
    }

    accessors! {
        /// The leak analysis, if that script ran and succeeded.
        leak: Leak -> LeakAnalysis,
        /// The process section, if that script ran and succeeded.
        process_section: Process -> ProcessSection,
        /// The virtual-memory section, if that script ran and succeeded.
        virtual_memory: VirtualMemory -> VirtualMemory,
        /// The handles section, if that script ran and succeeded.
        handles: Handles -> Handles,
        /// The modules section, if that script ran and succeeded.
        modules: Modules -> Modules,
        /// The growth section of a UMDH comparison log.
        umdh_growth: UmdhGrowth -> UmdhGrowth,
        /// The reachability scan, if it ran.
        reachability: Reachability -> Reachability,
    }
}

/// Sections as a map from script name to the section, or to
/// `{"status": "skipped" | "error", "message": …}`.
fn serialize_sections<S: Serializer>(sections: &[Section], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(sections.len()))?;
    for section in sections {
        map.serialize_entry(section.script, &SectionValue(section))?;
    }
    map.end()
}

/// One section's value in the sections map (see [`DumpReport`]'s `sections`).
pub fn serialize_section<S: Serializer>(section: &Section, s: S) -> Result<S::Ok, S::Error> {
    SectionValue(section).serialize(s)
}

struct SectionValue<'a>(&'a Section);

impl Serialize for SectionValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Status<'a> {
            status: &'static str,
            message: &'a str,
        }
        match &self.0.result {
            Ok(data) => data.serialize(s),
            Err(e) => Status {
                status: e.status(),
                message: e.message(),
            }
            .serialize(s),
        }
    }
}
