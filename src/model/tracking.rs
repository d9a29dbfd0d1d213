//! What the tracker says about its data: the tracking window, flags, metadata, and
//! the allocators it names.

use serde::Serialize;

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
    /// Where the data came from; omitted in JSON for the tracker's allocation
    /// stream, `"umdh_snapshot"` for a UMDH snapshot log (docs/umdh.md).
    #[serde(skip_serializing_if = "TrackingSource::is_tracker")]
    pub source: TrackingSource,
}

/// Where a report's allocation data came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackingSource {
    /// leakdiag's allocation stream in a dump: every allocation has its time.
    #[default]
    Tracker,
    /// A UMDH snapshot log: outstanding allocations and stacks, no allocation
    /// times, so no leak probability; start and snapshot are both its Logtime.
    UmdhSnapshot,
}

impl TrackingSource {
    pub fn is_tracker(&self) -> bool {
        *self == TrackingSource::Tracker
    }
}

/// Which allocator made a block (the stream's encoding is in `dump::stream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocatorKind {
    Unknown,
    Heap,
    CRuntime,
    Virtual,
    Com,
    Bstr,
    LocalGlobal,
}

impl AllocatorKind {
    /// Every kind, in the order of [`AllocatorKind::index`].
    pub const ALL: [AllocatorKind; 7] = [
        AllocatorKind::Unknown,
        AllocatorKind::Heap,
        AllocatorKind::CRuntime,
        AllocatorKind::Virtual,
        AllocatorKind::Com,
        AllocatorKind::Bstr,
        AllocatorKind::LocalGlobal,
    ];

    /// The kind's position in [`AllocatorKind::ALL`], for per-kind tables.
    pub fn index(self) -> usize {
        match self {
            Self::Unknown => 0,
            Self::Heap => 1,
            Self::CRuntime => 2,
            Self::Virtual => 3,
            Self::Com => 4,
            Self::Bstr => 5,
            Self::LocalGlobal => 6,
        }
    }

    /// A label for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Heap => "Win32 heap",
            Self::CRuntime => "C runtime",
            Self::Virtual => "virtual memory",
            Self::Com => "COM task memory",
            Self::Bstr => "BSTR",
            Self::LocalGlobal => "LocalAlloc/GlobalAlloc",
        }
    }

    /// The stable name used in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Heap => "heap",
            Self::CRuntime => "c_runtime",
            Self::Virtual => "virtual",
            Self::Com => "com",
            Self::Bstr => "bstr",
            Self::LocalGlobal => "local_global",
        }
    }
}
