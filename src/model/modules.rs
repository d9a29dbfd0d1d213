//! The modules section: every module with its versions, PDB and vendor.

use crate::addr::VirtAddr;
use serde::Serialize;

/// Where a module's version resource was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// The image as mapped in the process, from the dump's memory.
    DumpMemory,
    /// An image file found in an `--images` folder.
    ImageFile,
    /// The tracker, which read the module's file in the process at snapshot time
    /// (the allocation stream's module-strings section, format 1.2).
    Tracker,
}

/// One module of the section.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleEntry {
    pub name: String,
    pub path: String,
    pub base: VirtAddr,
    pub size: u64,
    pub unloaded: bool,
    /// PE timestamp (raw) and as RFC 3339; the latter null for 0.
    pub timestamp: u32,
    pub timestamp_rfc3339: Option<String>,
    /// From the module record's `VS_FIXEDFILEINFO`, `"a.b.c.d"`; null without one.
    pub file_version: Option<String>,
    pub product_version: Option<String>,
    pub debug_file: Option<String>,
    pub debug_id: Option<String>,
    /// The version resource's strings; null when the image could not be read.
    pub version_strings: Option<VersionStrings>,
    pub version_source: Option<VersionSource>,
    /// The image file read, for `image_file`.
    pub image_file: Option<String>,
    /// What the tracker's module strings said about this module when they were not
    /// used (no version resource, no record, a refused section); absent from the
    /// JSON when the dump has no module strings or they were used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_note: Option<String>,
}

/// The section.
#[derive(Clone, Debug, Serialize)]
pub struct Modules {
    pub loaded: u64,
    pub unloaded: u64,
    /// Modules whose version resource was read.
    pub with_version_strings: u64,
    /// Loaded modules in dump order, then unloaded ones.
    pub modules: Vec<ModuleEntry>,
    /// Null, or why there are no modules.
    pub message: Option<String>,
}
/// The strings of a module's version resource; a string the resource lacks is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VersionStrings {
    pub company_name: Option<String>,
    pub product_name: Option<String>,
    pub file_description: Option<String>,
    pub file_version: Option<String>,
    pub product_version: Option<String>,
}
