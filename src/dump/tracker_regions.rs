//! The tracker's own memory as the allocation stream declares it (format 1.3,
//! docs/allocation-stream.md § 14): one type per record of that section, read by
//! [`super::stream::AllocationStream::tracker_regions`].

use super::stream::{u32_at, u64_at, TRACKER_REGION_SIZE};
use crate::addr::VirtAddr;
use serde::Serialize;

/// What a tracker-regions record says the memory is (its `kind` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerRegionKind {
    /// 0, and any value the spec does not name.
    Other,
    /// 1: the tracker's table of outstanding allocations.
    AllocationTable,
    /// 2: its stack table, frame pool or stack index.
    StackTable,
    /// 3: the buffer that holds the stream itself.
    SnapshotBuffer,
    /// 4: the buffer of the module-strings section.
    ModuleStrings,
    /// 5: the tracker's own image (its DLL).
    TrackerImage,
}

impl TrackerRegionKind {
    /// Decodes the record's kind; values the spec does not name are [`Self::Other`].
    pub fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::AllocationTable,
            2 => Self::StackTable,
            3 => Self::SnapshotBuffer,
            4 => Self::ModuleStrings,
            5 => Self::TrackerImage,
            _ => Self::Other,
        }
    }

    /// The value the stream uses for this kind.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::Other => 0,
            Self::AllocationTable => 1,
            Self::StackTable => 2,
            Self::SnapshotBuffer => 3,
            Self::ModuleStrings => 4,
            Self::TrackerImage => 5,
        }
    }

    /// A short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::AllocationTable => "allocation table",
            Self::StackTable => "stack table",
            Self::SnapshotBuffer => "snapshot buffer",
            Self::ModuleStrings => "module strings",
            Self::TrackerImage => "tracker image",
        }
    }
}

/// Memory the tracker itself keeps in the process (format 1.3, spec § 14): it holds
/// plain copies of block addresses, so a pointer scan must not take it for a root.
/// `base + size` never overflows ([`super::stream::AllocationStream::parse`] checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TrackerRegion {
    pub base: VirtAddr,
    pub size: u64,
    pub kind: TrackerRegionKind,
}

impl TrackerRegion {
    /// The first address after the region.
    pub fn end(&self) -> u64 {
        self.base.0 + self.size
    }

    /// Whether `addr` lies in `[base, base + size)`.
    pub fn contains(&self, addr: u64) -> bool {
        self.base.0 <= addr && addr < self.end()
    }

    pub(super) fn decode(r: &[u8; TRACKER_REGION_SIZE]) -> Self {
        TrackerRegion {
            base: VirtAddr(u64_at(r, 0)),
            size: u64_at(r, 8),
            kind: TrackerRegionKind::from_u32(u32_at(r, 16)),
        }
    }
}
