//! The leakdiag allocation stream (user stream `0x4C440001`), read in place.
//!
//! This is the contract of `docs/allocation-stream.md`. [`AllocationStream::parse`]
//! checks the header and every section against the stream's length with checked
//! arithmetic before anything else touches them, then keeps borrowed slices of the
//! mapped dump: the tables are never copied. Records are decoded on access.
//!
//! Every error names the field that broke the contract and carries its value, so that a
//! user (or a tracker author) can see what is wrong with a dump without a hex editor.

use crate::addr::{StreamOffset, VirtAddr};
use serde::Serialize;
use thiserror::Error;

/// The minidump stream type of the allocation stream ("LD" vendor tag, stream 1).
pub const ALLOCATION_STREAM_TYPE: u32 = 0x4C44_0001;
/// The stream's magic, the bytes `LEAK`.
pub const MAGIC: u32 = 0x4B41_454C;
/// The only major version this reader understands.
pub const VERSION_MAJOR: u16 = 1;
/// The newest minor version this reader knows (any minor version is accepted).
pub const VERSION_MINOR: u16 = 0;
/// Size of the 1.0 header; later minor versions may write a larger one.
pub const HEADER_SIZE: usize = 96;
/// Size of one frame-table entry.
pub const FRAME_SIZE: usize = 8;
/// Size of one stack-table record.
pub const STACK_RECORD_SIZE: usize = 16;
/// Size of one allocation-table record.
pub const ALLOCATION_RECORD_SIZE: usize = 40;
/// The stack index that means "no stack captured".
pub const NO_STACK: u32 = 0xFFFF_FFFF;
/// The smallest header that carries the tracker-regions fields (format 1.3).
pub const TRACKER_REGIONS_HEADER_SIZE: usize = 128;
/// The minor version that introduced the tracker-regions section.
pub const TRACKER_REGIONS_MINOR: u16 = 3;
/// Size of one tracker-regions record.
pub const TRACKER_REGION_SIZE: usize = 24;

/// Byte offsets of the header fields, shared by the reader, the writer and tests that
/// corrupt single fields.
pub mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION_MAJOR: usize = 4;
    pub const VERSION_MINOR: usize = 6;
    pub const HEADER_SIZE: usize = 8;
    pub const FLAGS: usize = 12;
    pub const TRACKING_START: usize = 16;
    pub const SNAPSHOT_TIME: usize = 24;
    pub const FRAMES_OFFSET: usize = 32;
    pub const FRAME_COUNT: usize = 40;
    pub const STACKS_OFFSET: usize = 48;
    pub const STACK_COUNT: usize = 56;
    pub const ALLOCATIONS_OFFSET: usize = 64;
    pub const ALLOCATION_COUNT: usize = 72;
    pub const METADATA_OFFSET: usize = 80;
    pub const METADATA_SIZE: usize = 88;
    /// Since 1.3, in a header of at least 128 bytes.
    pub const TRACKER_REGIONS_OFFSET: usize = 112;
    pub const TRACKER_REGION_COUNT: usize = 120;
}

/// Why an allocation stream was refused. Each variant names the spec's field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    #[error("allocation stream is {len} bytes, shorter than the {need}-byte header")]
    TooShort { len: u64, need: u64 },
    #[error("allocation stream magic is 0x{found:08x}, expected 0x{MAGIC:08x} (\"LEAK\")")]
    BadMagic { found: u32 },
    #[error(
        "allocation stream version_major is {major} (version {major}.{minor}); this reader understands only version 1.x"
    )]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("allocation stream header_size is {header_size}: it must be at least {HEADER_SIZE} and within the stream's {len} bytes")]
    BadHeaderSize { header_size: u32, len: u64 },
    #[error("allocation stream {count_field} = {count} records of {record_size} bytes overflows a 64-bit size")]
    CountOverflow {
        count_field: &'static str,
        count: u64,
        record_size: u64,
    },
    #[error("allocation stream {offset_field} = {offset} is not 8-byte aligned")]
    Misaligned {
        offset_field: &'static str,
        offset: u64,
    },
    #[error(
        "allocation stream section outside the stream: {offset_field} = {offset} + {count_field} = {count} × {record_size} bytes ends at {end}, but the stream is {len} bytes"
    )]
    SectionOutOfBounds {
        offset_field: &'static str,
        count_field: &'static str,
        offset: u64,
        count: u64,
        record_size: u64,
        end: u128,
        len: u64,
    },
    #[error(
        "allocation stream stack {index}: first_frame = {first_frame}, frame_count = {frame_count} reaches past the frame table's {frames} frames"
    )]
    StackOutOfRange {
        index: u64,
        first_frame: u64,
        frame_count: u32,
        frames: u64,
    },
    #[error("allocation stream metadata is not UTF-8 (invalid byte at metadata offset {at})")]
    MetadataNotUtf8 { at: usize },
    #[error(
        "allocation stream {offset_field} = {offset} lies inside the {header_size}-byte header (header_size = {header_size}): the header would be read as records"
    )]
    SectionOverlapsHeader {
        offset_field: &'static str,
        offset: u64,
        header_size: u32,
    },
    #[error(
        "allocation stream sections overlap: {first_field} = {first_offset} ({first_len} bytes) and {second_field} = {second_offset} ({second_len} bytes)"
    )]
    SectionsOverlap {
        first_field: &'static str,
        first_offset: u64,
        first_len: u64,
        second_field: &'static str,
        second_offset: u64,
        second_len: u64,
    },
    #[error("allocation stream: the sizes of the outstanding allocations add up to more than 2^64 bytes (at allocation {index}, size {size})")]
    TotalOverflow { index: u64, size: u64 },
    #[error("allocation stream tracker region {index}: base = 0x{base:x} + size = {size} overflows a 64-bit address")]
    RegionOverflow { index: u64, base: u64, size: u64 },
}

/// The stream's flags word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StreamFlags(pub u32);

impl StreamFlags {
    pub const RETURN_ADDRESSES: u32 = 1;
    pub const DROPPED: u32 = 2;
    pub const TRUNCATED_STACKS: u32 = 4;

    /// Every frame is a return address (symbolize at address − 1).
    pub fn return_addresses(self) -> bool {
        self.0 & Self::RETURN_ADDRESSES != 0
    }
    /// The tracker dropped allocations: counts are a lower bound.
    pub fn dropped(self) -> bool {
        self.0 & Self::DROPPED != 0
    }
    /// Some stacks were cut at the tracker's depth limit.
    pub fn truncated_stacks(self) -> bool {
        self.0 & Self::TRUNCATED_STACKS != 0
    }
}

/// Where one table lies in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SectionLocation {
    pub offset: StreamOffset,
    /// Number of records (bytes, for the metadata).
    pub count: u64,
}

pub use super::tracker_regions::{TrackerRegion, TrackerRegionKind};

/// The decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StreamHeader {
    pub version_major: u16,
    pub version_minor: u16,
    pub header_size: u32,
    pub flags: StreamFlags,
    /// FILETIME (100 ns ticks since 1601-01-01 UTC) when tracking began.
    pub tracking_start: u64,
    /// FILETIME when the table was copied into the dump.
    pub snapshot_time: u64,
    pub frames: SectionLocation,
    pub stacks: SectionLocation,
    pub allocations: SectionLocation,
    /// `None` when metadata_offset is 0.
    pub metadata: Option<SectionLocation>,
    /// The tracker-regions section (count = records); `None` when the stream does not
    /// declare the tracker's memory (version before 1.3 or a header under 128 bytes).
    /// `Some` with count 0: the tracker keeps no memory in the process.
    pub tracker_regions: Option<SectionLocation>,
}

impl StreamHeader {
    /// The tracking window in 100 ns ticks: snapshot time − tracking start, 0 when
    /// the snapshot precedes the start. Every use of the window starts here.
    pub fn window_ticks(&self) -> u64 {
        self.snapshot_time.saturating_sub(self.tracking_start)
    }

    /// The tracking window in seconds.
    pub fn window_seconds(&self) -> f64 {
        self.window_ticks() as f64 / 1e7
    }
}

pub use crate::model::AllocatorKind;

/// The stream's encoding of [`AllocatorKind`] (the record's allocator byte).
impl AllocatorKind {
    /// Decodes the record's allocator byte; values the spec does not name are unknown.
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Heap,
            2 => Self::CRuntime,
            3 => Self::Virtual,
            4 => Self::Com,
            5 => Self::Bstr,
            6 => Self::LocalGlobal,
            _ => Self::Unknown,
        }
    }

    /// The byte the stream uses for this kind.
    pub fn to_byte(self) -> u8 {
        // The stream's byte is the kind's position in `AllocatorKind::ALL`.
        self.index() as u8
    }
}

/// One stack-table record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRecord {
    pub first_frame: u64,
    pub frame_count: u32,
}

/// One allocation-table record, decoded from the mapped bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocationRecord {
    pub address: VirtAddr,
    pub size: u64,
    /// 100 ns ticks after tracking_start.
    pub time: u64,
    pub heap: u64,
    /// Raw stack index: [`NO_STACK`], an index below stack_count, or invalid.
    pub stack: u32,
    pub allocator_byte: u8,
    pub flags: u8,
}

impl AllocationRecord {
    /// Decodes one record of [`AllocationStream::allocation_table`] (the same
    /// decoding as [`AllocationStream::allocations`]).
    #[inline]
    pub fn decode(r: &[u8; ALLOCATION_RECORD_SIZE]) -> Self {
        AllocationRecord {
            address: VirtAddr(u64_at(r, 0)),
            size: u64_at(r, 8),
            time: u64_at(r, 16),
            heap: u64_at(r, 24),
            stack: u32_at(r, 32),
            allocator_byte: r[36],
            flags: r[37],
        }
    }

    pub fn allocator(&self) -> AllocatorKind {
        AllocatorKind::from_byte(self.allocator_byte)
    }
}

/// One `key=value` line of the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataEntry<'a> {
    pub key: &'a str,
    /// `None` for a line without `=`, which the report shows as malformed.
    pub value: Option<&'a str>,
}

/// The allocation stream, borrowed from the dump's bytes.
#[derive(Clone, Debug)]
pub struct AllocationStream<'a> {
    header: StreamHeader,
    frames: &'a [[u8; FRAME_SIZE]],
    stacks: &'a [[u8; STACK_RECORD_SIZE]],
    allocations: &'a [[u8; ALLOCATION_RECORD_SIZE]],
    metadata: &'a str,
    /// `None`: the stream does not declare the tracker's memory.
    tracker_regions: Option<&'a [[u8; TRACKER_REGION_SIZE]]>,
    /// The whole stream, for optional sections of later minor versions
    /// (`super::module_strings`).
    bytes: &'a [u8],
}

/// Little-endian readers for offsets already checked against the slice (shared by
/// the stream's sections).
pub(super) fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
pub(super) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks one section against the stream and returns its bytes.
fn section<'a>(
    stream: &'a [u8],
    offset_field: &'static str,
    count_field: &'static str,
    offset: u64,
    count: u64,
    record_size: u64,
) -> Result<&'a [u8], StreamError> {
    let len = stream.len() as u64;
    let size = count
        .checked_mul(record_size)
        .ok_or(StreamError::CountOverflow {
            count_field,
            count,
            record_size,
        })?;
    if count == 0 {
        return Ok(&[]);
    }
    if !offset.is_multiple_of(8) {
        return Err(StreamError::Misaligned {
            offset_field,
            offset,
        });
    }
    let end = offset.checked_add(size).filter(|&end| end <= len);
    match end {
        // Both fit in the stream's length, which is a usize.
        Some(end) => Ok(&stream[offset as usize..end as usize]),
        None => Err(StreamError::SectionOutOfBounds {
            offset_field,
            count_field,
            offset,
            count,
            record_size,
            end: offset as u128 + size as u128,
            len,
        }),
    }
}

/// § 9 rule 5.4: no non-empty section starts inside the header or overlaps another
/// one. `sections` are (offset field, offset, length in bytes), already checked to
/// lie in the stream; empty ones are not checked (rule 5.2).
fn check_layout(
    header_size: u32,
    sections: &[(&'static str, u64, u64)],
) -> Result<(), StreamError> {
    let used: Vec<_> = sections.iter().filter(|s| s.2 > 0).collect();
    for &&(offset_field, offset, _) in &used {
        if offset < u64::from(header_size) {
            return Err(StreamError::SectionOverlapsHeader {
                offset_field,
                offset,
                header_size,
            });
        }
    }
    for (i, a) in used.iter().enumerate() {
        for b in &used[i + 1..] {
            // Both end within the stream, so neither sum overflows.
            if a.1 < b.1 + b.2 && b.1 < a.1 + a.2 {
                return Err(StreamError::SectionsOverlap {
                    first_field: a.0,
                    first_offset: a.1,
                    first_len: a.2,
                    second_field: b.0,
                    second_offset: b.1,
                    second_len: b.2,
                });
            }
        }
    }
    Ok(())
}

impl<'a> AllocationStream<'a> {
    /// The sum of every allocation's size (§ 9 rule 8), or the record at which it
    /// passes 2^64 − 1.
    pub fn total_bytes(&self) -> Result<u64, StreamError> {
        let mut total = 0u64;
        for (index, a) in self.allocations().enumerate() {
            total = total
                .checked_add(a.size)
                .ok_or(StreamError::TotalOverflow {
                    index: index as u64,
                    size: a.size,
                })?;
        }
        Ok(total)
    }

    /// Checks and decodes the stream header and locates every table. Nothing is copied:
    /// the result borrows `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, StreamError> {
        let len = bytes.len() as u64;
        if bytes.len() < HEADER_SIZE {
            return Err(StreamError::TooShort {
                len,
                need: HEADER_SIZE as u64,
            });
        }
        let magic = u32_at(bytes, field::MAGIC);
        if magic != MAGIC {
            return Err(StreamError::BadMagic { found: magic });
        }
        let version_major = u16_at(bytes, field::VERSION_MAJOR);
        let version_minor = u16_at(bytes, field::VERSION_MINOR);
        if version_major != VERSION_MAJOR {
            return Err(StreamError::UnsupportedVersion {
                major: version_major,
                minor: version_minor,
            });
        }
        let header_size = u32_at(bytes, field::HEADER_SIZE);
        if (header_size as usize) < HEADER_SIZE || u64::from(header_size) > len {
            return Err(StreamError::BadHeaderSize { header_size, len });
        }
        let loc = |o, c| SectionLocation {
            offset: StreamOffset(u64_at(bytes, o)),
            count: u64_at(bytes, c),
        };
        let frames_loc = loc(field::FRAMES_OFFSET, field::FRAME_COUNT);
        let stacks_loc = loc(field::STACKS_OFFSET, field::STACK_COUNT);
        let allocations_loc = loc(field::ALLOCATIONS_OFFSET, field::ALLOCATION_COUNT);
        let metadata_loc = loc(field::METADATA_OFFSET, field::METADATA_SIZE);

        let frames = section(
            bytes,
            "frames_offset",
            "frame_count",
            frames_loc.offset.0,
            frames_loc.count,
            FRAME_SIZE as u64,
        )?;
        let stacks = section(
            bytes,
            "stacks_offset",
            "stack_count",
            stacks_loc.offset.0,
            stacks_loc.count,
            STACK_RECORD_SIZE as u64,
        )?;
        let allocations = section(
            bytes,
            "allocations_offset",
            "allocation_count",
            allocations_loc.offset.0,
            allocations_loc.count,
            ALLOCATION_RECORD_SIZE as u64,
        )?;
        let (metadata_bytes, metadata) = if metadata_loc.offset.0 == 0 {
            (&[][..], None)
        } else {
            let b = section(
                bytes,
                "metadata_offset",
                "metadata_size",
                metadata_loc.offset.0,
                metadata_loc.count,
                1,
            )?;
            (b, Some(metadata_loc))
        };
        // § 14: declared by a 1.3 (or later) header of at least 128 bytes.
        let regions_loc = (version_minor >= TRACKER_REGIONS_MINOR
            && header_size as usize >= TRACKER_REGIONS_HEADER_SIZE)
            .then(|| loc(field::TRACKER_REGIONS_OFFSET, field::TRACKER_REGION_COUNT));
        let regions = match regions_loc {
            Some(l) => Some(section(
                bytes,
                "tracker_regions_offset",
                "tracker_region_count",
                l.offset.0,
                l.count,
                TRACKER_REGION_SIZE as u64,
            )?),
            None => None,
        };
        check_layout(
            header_size,
            &[
                ("frames_offset", frames_loc.offset.0, frames.len() as u64),
                ("stacks_offset", stacks_loc.offset.0, stacks.len() as u64),
                (
                    "allocations_offset",
                    allocations_loc.offset.0,
                    allocations.len() as u64,
                ),
                (
                    "metadata_offset",
                    metadata_loc.offset.0,
                    metadata_bytes.len() as u64,
                ),
                (
                    "tracker_regions_offset",
                    regions_loc.map_or(0, |l| l.offset.0),
                    regions.map_or(0, |r| r.len() as u64),
                ),
            ],
        )?;
        let metadata_text =
            std::str::from_utf8(metadata_bytes).map_err(|e| StreamError::MetadataNotUtf8 {
                at: e.valid_up_to(),
            })?;

        let (frames, _) = frames.as_chunks::<FRAME_SIZE>();
        let (stacks, _) = stacks.as_chunks::<STACK_RECORD_SIZE>();
        let (allocations, _) = allocations.as_chunks::<ALLOCATION_RECORD_SIZE>();
        let tracker_regions = regions.map(|r| r.as_chunks::<TRACKER_REGION_SIZE>().0);

        let stream = AllocationStream {
            header: StreamHeader {
                version_major,
                version_minor,
                header_size,
                flags: StreamFlags(u32_at(bytes, field::FLAGS)),
                tracking_start: u64_at(bytes, field::TRACKING_START),
                snapshot_time: u64_at(bytes, field::SNAPSHOT_TIME),
                frames: frames_loc,
                stacks: stacks_loc,
                allocations: allocations_loc,
                metadata,
                tracker_regions: regions_loc,
            },
            frames,
            stacks,
            allocations,
            metadata: metadata_text,
            tracker_regions,
            bytes,
        };
        stream.check_stacks()?;
        stream.check_regions()?;
        Ok(stream)
    }

    /// Every stack's frame range must lie in the frame table, so that later lookups
    /// cannot fail. The loop is bounded by stack_count, already checked against the
    /// stream's length.
    fn check_stacks(&self) -> Result<(), StreamError> {
        let frames = self.frames.len() as u64;
        for (index, _) in self.stacks.iter().enumerate() {
            let s = self.stack_record(index as u32);
            let in_range = s
                .first_frame
                .checked_add(u64::from(s.frame_count))
                .is_some_and(|end| end <= frames);
            if !in_range {
                return Err(StreamError::StackOutOfRange {
                    index: index as u64,
                    first_frame: s.first_frame,
                    frame_count: s.frame_count,
                    frames,
                });
            }
        }
        Ok(())
    }

    /// § 9 rule 9: no tracker region's `base + size` overflows 64 bits. Bounded by
    /// tracker_region_count, already checked against the stream's length.
    fn check_regions(&self) -> Result<(), StreamError> {
        for (index, r) in self.tracker_regions.unwrap_or_default().iter().enumerate() {
            let (base, size) = (u64_at(r, 0), u64_at(r, 8));
            if base.checked_add(size).is_none() {
                return Err(StreamError::RegionOverflow {
                    index: index as u64,
                    base,
                    size,
                });
            }
        }
        Ok(())
    }

    /// The memory the tracker declares as its own (format 1.3, spec § 14), in stream
    /// order (regions may overlap or touch: readers take the union). `None` when the
    /// stream does not declare it (an older version or a shorter header): the
    /// tracker's tables may then hide leaks from a pointer scan, and a reader must say
    /// so. `Some(vec![])`: the tracker keeps no memory in the process.
    pub fn tracker_regions(&self) -> Option<Vec<TrackerRegion>> {
        self.tracker_regions
            .map(|r| r.iter().map(TrackerRegion::decode).collect())
    }

    /// The number of declared tracker regions (`None`: not declared).
    pub fn tracker_region_count(&self) -> Option<usize> {
        self.tracker_regions.map(<[_]>::len)
    }

    /// The stream's bytes as given to [`AllocationStream::parse`].
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    pub fn flags(&self) -> StreamFlags {
        self.header.flags
    }

    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    pub fn stack_count(&self) -> usize {
        self.stacks.len()
    }

    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    fn stack_record(&self, index: u32) -> StackRecord {
        let r = &self.stacks[index as usize];
        StackRecord {
            first_frame: u64_at(r, 0),
            frame_count: u32_at(r, 8),
        }
    }

    /// The stack record at `index`, or `None` when the index is out of range.
    pub fn stack(&self, index: u32) -> Option<StackRecord> {
        ((index as usize) < self.stacks.len()).then(|| self.stack_record(index))
    }

    /// The frames of stack `index`, innermost first; `None` for an index out of range.
    pub fn stack_frames(&self, index: u32) -> Option<impl ExactSizeIterator<Item = VirtAddr> + 'a> {
        let s = self.stack(index)?;
        // Ranges were checked in `parse`.
        let start = s.first_frame as usize;
        let frames: &'a [[u8; FRAME_SIZE]] = self.frames;
        Some(
            frames[start..start + s.frame_count as usize]
                .iter()
                .map(|f| VirtAddr(u64::from_le_bytes(*f))),
        )
    }

    /// The frame table, in order.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = VirtAddr> + 'a {
        let frames: &'a [[u8; FRAME_SIZE]] = self.frames;
        frames.iter().map(|f| VirtAddr(u64::from_le_bytes(*f)))
    }

    /// Frame `index` of the frame table.
    pub fn frame(&self, index: usize) -> Option<VirtAddr> {
        self.frames
            .get(index)
            .map(|f| VirtAddr(u64::from_le_bytes(*f)))
    }

    /// All allocation records, in table order.
    pub fn allocations(&self) -> impl ExactSizeIterator<Item = AllocationRecord> + 'a {
        let table: &'a [[u8; ALLOCATION_RECORD_SIZE]] = self.allocations;
        table.iter().map(AllocationRecord::decode)
    }

    /// The allocation table's raw records, in table order, for readers that split the
    /// table into chunks; [`AllocationRecord::decode`] decodes one.
    pub fn allocation_table(&self) -> &'a [[u8; ALLOCATION_RECORD_SIZE]] {
        self.allocations
    }

    /// The metadata text as written by the tracker.
    pub fn metadata_text(&self) -> &'a str {
        self.metadata
    }

    /// The metadata's `key=value` lines in order; blank lines are skipped.
    pub fn metadata(&self) -> impl Iterator<Item = MetadataEntry<'a>> + 'a {
        let text: &'a str = self.metadata;
        text.split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.split_once('=') {
                Some((k, v)) => MetadataEntry {
                    key: k.trim(),
                    value: Some(v.trim()),
                },
                None => MetadataEntry {
                    key: l.trim(),
                    value: None,
                },
            })
    }

    /// The value of the first metadata line with this key.
    pub fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.metadata().find(|e| e.key == key).and_then(|e| e.value)
    }

    /// The module file names the tracker declared as allocation plumbing.
    pub fn allocator_modules(&self) -> Vec<&'a str> {
        self.metadata_value("allocator_modules")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}
