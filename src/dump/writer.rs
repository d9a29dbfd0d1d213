//! Writes allocation streams: the one implementation of the format's writing side,
//! shared by tests, the demo-incident generator, benchmarks and anything that wants to
//! produce tracker data from Rust.
//!
//! The builder deduplicates stacks the way a tracker does and lays out the sections in
//! the order header, frames, stacks, allocations, metadata, each 8-byte aligned.

use super::module_strings::{
    ModuleStringsStatus, MODULE_RECORD_SIZE, MODULE_STRINGS_HEADER_SIZE, MODULE_STRINGS_MINOR,
    MODULE_STRINGS_OFFSET_FIELD, MODULE_STRINGS_SIZE_FIELD, SECTION_HEADER_SIZE,
};
use super::stream::{
    field, AllocatorKind, TrackerRegionKind, ALLOCATION_RECORD_SIZE, FRAME_SIZE, HEADER_SIZE,
    MAGIC, NO_STACK, STACK_RECORD_SIZE, TRACKER_REGIONS_HEADER_SIZE, TRACKER_REGIONS_MINOR,
    TRACKER_REGION_SIZE, VERSION_MAJOR, VERSION_MINOR,
};
use crate::hash::FoldMap;
use rayon::prelude::*;
use std::collections::HashMap;

/// One module's record of the module-strings section (format 1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewModuleStrings {
    pub base: u64,
    pub image_size: u32,
    pub status: ModuleStringsStatus,
    /// company_name, product_name, file_description, file_version, product_version;
    /// written as given (the writer does not enforce the reader's length limit, so
    /// that tests can break it), each at most 65535 bytes.
    pub strings: [String; 5],
}

/// An allocation to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewAllocation {
    pub address: u64,
    pub size: u64,
    /// 100 ns ticks after tracking start.
    pub time: u64,
    pub heap: u64,
    /// Stack index from [`AllocationStreamBuilder::add_stack`], or [`NO_STACK`].
    pub stack: u32,
    pub allocator: AllocatorKind,
}

/// Builds the bytes of an allocation stream.
#[derive(Clone, Debug, Default)]
pub struct AllocationStreamBuilder {
    pub flags: u32,
    /// Written as is; a later minor version would set it.
    pub version_minor: u16,
    /// Header size to write, at least [`HEADER_SIZE`]; the bytes past the 1.0 fields
    /// are zero (a newer writer's fields this reader does not know).
    pub header_size: u32,
    pub tracking_start: u64,
    pub snapshot_time: u64,
    frames: Vec<u64>,
    stacks: Vec<(u64, u32)>,
    /// The first stack of each [`stack_hash`]; stacks whose hash an earlier,
    /// different stack has are in `collided` (practically never). Keyed by hash, not
    /// by a copy of the frames: a UMDH log's million stacks would be kept twice.
    stack_ids: FoldMap<u64, u32>,
    collided: HashMap<Vec<u64>, u32>,
    allocations: Vec<NewAllocation>,
    metadata: Vec<(String, String)>,
    /// The module-strings section; `None` writes none (and no 1.2 header fields).
    module_strings: Option<Vec<NewModuleStrings>>,
    /// The tracker-regions section, (base, size, kind) as written; `None` writes none
    /// (and no 1.3 header fields).
    tracker_regions: Option<Vec<(u64, u64, u32)>>,
}

/// A hash of a stack's frames for [`AllocationStreamBuilder::add_stack`]'s table
/// (equal hashes are checked against the frames).
fn stack_hash(frames: &[u64]) -> u64 {
    let h = frames.iter().fold(frames.len() as u64, |h, &f| {
        (h.rotate_left(26) ^ f).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    h ^ (h >> 31)
}

/// The stack added before that is identical to `frames` (whose hash is `hash`), or
/// `None` after recording `frames` as stack `next`; `frames_of` gives the frames of
/// a stack added before.
fn dedup<'a>(
    ids: &mut FoldMap<u64, u32>,
    collided: &mut HashMap<Vec<u64>, u32>,
    hash: u64,
    frames: &[u64],
    next: u32,
    frames_of: impl Fn(u32) -> &'a [u64],
) -> Option<u32> {
    match ids.get(&hash) {
        None => {
            ids.insert(hash, next);
            None
        }
        Some(&first) if frames_of(first) == frames => Some(first),
        Some(_) => match collided.get(frames) {
            Some(&other) => Some(other),
            None => {
                collided.insert(frames.to_vec(), next);
                None
            }
        },
    }
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl AllocationStreamBuilder {
    pub fn new(tracking_start: u64, snapshot_time: u64) -> Self {
        AllocationStreamBuilder {
            tracking_start,
            snapshot_time,
            version_minor: VERSION_MINOR,
            header_size: HEADER_SIZE as u32,
            ..Default::default()
        }
    }

    /// Adds a stack (innermost frame first) and returns its index; an identical stack
    /// added before gets the same index.
    pub fn add_stack(&mut self, frames: &[u64]) -> u32 {
        self.add_hashed(frames, stack_hash(frames))
    }

    /// Adds many stacks at once: `frames` holds them one after another (innermost
    /// frame first), `lens` their lengths. Returns each one's index, as
    /// [`add_stack`](Self::add_stack) one at a time would. The stacks are hashed in
    /// parallel, and a builder without stacks takes `frames` as they are unless two
    /// stacks are identical (a UMDH log's million stacks are 200 MB of frames).
    ///
    /// # Panics
    /// If the lengths do not add up to the number of frames.
    pub fn add_stacks(&mut self, frames: Vec<u64>, lens: &[u32]) -> Vec<u32> {
        let mut starts = Vec::with_capacity(lens.len());
        let mut end = 0usize;
        for &len in lens {
            starts.push(end);
            end += len as usize;
        }
        assert_eq!(
            end,
            frames.len(),
            "the stacks' lengths add up to the frames"
        );
        let stack = |i: usize| &frames[starts[i]..starts[i] + lens[i] as usize];
        let hashes: Vec<u64> = (0..lens.len())
            .into_par_iter()
            .map(|i| stack_hash(stack(i)))
            .collect();
        if !self.stacks.is_empty() {
            return (0..lens.len())
                .map(|i| self.add_hashed(stack(i), hashes[i]))
                .collect();
        }
        // The stacks stand where they are in `frames` until the end.
        let mut ids = Vec::with_capacity(lens.len());
        let mut kept = Vec::with_capacity(lens.len());
        self.stack_ids.reserve(lens.len());
        for (i, &hash) in hashes.iter().enumerate() {
            let id = self.stacks.len() as u32;
            let stacks = &self.stacks;
            let frames_of = |s: u32| {
                let (start, len) = stacks[s as usize];
                &frames[start as usize..start as usize + len as usize]
            };
            match dedup(
                &mut self.stack_ids,
                &mut self.collided,
                hash,
                stack(i),
                id,
                frames_of,
            ) {
                Some(first) => ids.push(first),
                None => {
                    self.stacks.push((starts[i] as u64, lens[i]));
                    kept.push(i);
                    ids.push(id);
                }
            }
        }
        if kept.len() == lens.len() {
            self.frames = frames;
        } else {
            // Identical stacks: the first of each is kept, in order.
            let mut out = Vec::with_capacity(kept.iter().map(|&i| lens[i] as usize).sum());
            for (s, &i) in self.stacks.iter_mut().zip(&kept) {
                *s = (out.len() as u64, lens[i]);
                out.extend_from_slice(stack(i));
            }
            self.frames = out;
        }
        ids
    }

    /// [`add_stack`](Self::add_stack) with the stack's hash.
    fn add_hashed(&mut self, frames: &[u64], hash: u64) -> u32 {
        let id = self.stacks.len() as u32;
        let (all, stacks) = (&self.frames, &self.stacks);
        let frames_of = |s: u32| {
            let (start, len) = stacks[s as usize];
            &all[start as usize..start as usize + len as usize]
        };
        if let Some(first) = dedup(
            &mut self.stack_ids,
            &mut self.collided,
            hash,
            frames,
            id,
            frames_of,
        ) {
            return first;
        }
        self.stacks
            .push((self.frames.len() as u64, frames.len() as u32));
        self.frames.extend_from_slice(frames);
        id
    }

    /// The frames of stack `id` (one added before).
    #[cfg(test)]
    fn stack_frames(&self, id: u32) -> &[u64] {
        let (start, len) = self.stacks[id as usize];
        &self.frames[start as usize..start as usize + len as usize]
    }

    pub fn add_allocation(&mut self, allocation: NewAllocation) -> &mut Self {
        self.allocations.push(allocation);
        self
    }

    /// Convenience: an allocation on a stack given by its frames.
    pub fn allocate(
        &mut self,
        address: u64,
        size: u64,
        time: u64,
        allocator: AllocatorKind,
        frames: &[u64],
    ) -> &mut Self {
        let stack = if frames.is_empty() {
            NO_STACK
        } else {
            self.add_stack(frames)
        };
        self.add_allocation(NewAllocation {
            address,
            size,
            time,
            heap: 0,
            stack,
            allocator,
        })
    }

    /// Rewrites the stack index of every allocation added so far, for a reader that
    /// learns its stacks after the allocations that use them (UMDH logs).
    pub fn remap_stacks(&mut self, map: impl Fn(u32) -> u32) {
        for a in &mut self.allocations {
            a.stack = map(a.stack);
        }
    }

    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a record to the module-strings section; the stream then has one, and is
    /// written as version 1.2 (at least) with a header of at least 112 bytes.
    pub fn module_strings(&mut self, record: NewModuleStrings) -> &mut Self {
        self.module_strings
            .get_or_insert_with(Vec::new)
            .push(record);
        self
    }

    /// Gives the stream a module-strings section with no records.
    pub fn empty_module_strings(&mut self) -> &mut Self {
        self.module_strings.get_or_insert_with(Vec::new);
        self
    }

    /// Declares a region of the tracker's own memory (format 1.3, spec § 14); the
    /// stream is then written as version 1.3 (at least) with a header of at least 128
    /// bytes and the section after the metadata (and module strings).
    pub fn tracker_region(&mut self, base: u64, size: u64, kind: TrackerRegionKind) -> &mut Self {
        self.tracker_region_raw(base, size, kind.to_u32())
    }

    /// [`Self::tracker_region`] with the record's `kind` as a raw value (and `base +
    /// size` as given, even if it overflows), for tests of what a reader tolerates.
    pub fn tracker_region_raw(&mut self, base: u64, size: u64, kind: u32) -> &mut Self {
        self.tracker_regions
            .get_or_insert_with(Vec::new)
            .push((base, size, kind));
        self
    }

    /// Declares that the tracker keeps no memory in the process: a 1.3 header with
    /// `tracker_region_count` 0.
    pub fn empty_tracker_regions(&mut self) -> &mut Self {
        self.tracker_regions.get_or_insert_with(Vec::new);
        self
    }

    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// The stream's bytes.
    pub fn build(&self) -> Vec<u8> {
        let meta: String = self
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let section = self.module_strings.as_deref().map(encode_module_strings);
        let mut header_size = (self.header_size as usize).max(HEADER_SIZE);
        let mut version_minor = self.version_minor;
        if section.is_some() {
            header_size = header_size.max(MODULE_STRINGS_HEADER_SIZE);
            version_minor = version_minor.max(MODULE_STRINGS_MINOR);
        }
        if self.tracker_regions.is_some() {
            header_size = header_size.max(TRACKER_REGIONS_HEADER_SIZE);
            version_minor = version_minor.max(TRACKER_REGIONS_MINOR);
        }
        let regions = self.tracker_regions.as_deref().unwrap_or_default();
        let frames_offset = align8(header_size);
        let stacks_offset = align8(frames_offset + self.frames.len() * FRAME_SIZE);
        let allocations_offset = align8(stacks_offset + self.stacks.len() * STACK_RECORD_SIZE);
        let metadata_offset =
            align8(allocations_offset + self.allocations.len() * ALLOCATION_RECORD_SIZE);
        let strings_offset = align8(metadata_offset + meta.len());
        let end = match &section {
            Some(b) => strings_offset + b.len(),
            None => metadata_offset + meta.len(),
        };
        let regions_offset = align8(end);
        let total = if self.tracker_regions.is_some() {
            regions_offset + regions.len() * TRACKER_REGION_SIZE
        } else {
            end
        };
        let mut out = vec![0u8; total];

        let put = |out: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes)
        };
        put(&mut out, field::MAGIC, &MAGIC.to_le_bytes());
        put(&mut out, field::VERSION_MAJOR, &VERSION_MAJOR.to_le_bytes());
        put(&mut out, field::VERSION_MINOR, &version_minor.to_le_bytes());
        put(
            &mut out,
            field::HEADER_SIZE,
            &(header_size as u32).to_le_bytes(),
        );
        put(&mut out, field::FLAGS, &self.flags.to_le_bytes());
        put(
            &mut out,
            field::TRACKING_START,
            &self.tracking_start.to_le_bytes(),
        );
        put(
            &mut out,
            field::SNAPSHOT_TIME,
            &self.snapshot_time.to_le_bytes(),
        );
        let header_u64s = [
            (field::FRAMES_OFFSET, frames_offset as u64),
            (field::FRAME_COUNT, self.frames.len() as u64),
            (field::STACKS_OFFSET, stacks_offset as u64),
            (field::STACK_COUNT, self.stacks.len() as u64),
            (field::ALLOCATIONS_OFFSET, allocations_offset as u64),
            (field::ALLOCATION_COUNT, self.allocations.len() as u64),
            (
                field::METADATA_OFFSET,
                if meta.is_empty() {
                    0
                } else {
                    metadata_offset as u64
                },
            ),
            (field::METADATA_SIZE, meta.len() as u64),
        ];
        for (at, v) in header_u64s {
            put(&mut out, at, &v.to_le_bytes());
        }
        // Frames and stacks in parallel, in blocks (a UMDH log's are 200 MB).
        const BLOCK: usize = 1 << 14;
        out[frames_offset..frames_offset + self.frames.len() * FRAME_SIZE]
            .par_chunks_mut(BLOCK * FRAME_SIZE)
            .zip(self.frames.par_chunks(BLOCK))
            .for_each(|(out, frames)| {
                for (o, f) in out.chunks_exact_mut(FRAME_SIZE).zip(frames) {
                    o[..8].copy_from_slice(&f.to_le_bytes());
                }
            });
        out[stacks_offset..stacks_offset + self.stacks.len() * STACK_RECORD_SIZE]
            .par_chunks_mut(BLOCK * STACK_RECORD_SIZE)
            .zip(self.stacks.par_chunks(BLOCK))
            .for_each(|(out, stacks)| {
                for (o, (first, count)) in out.chunks_exact_mut(STACK_RECORD_SIZE).zip(stacks) {
                    o[..8].copy_from_slice(&first.to_le_bytes());
                    o[8..12].copy_from_slice(&count.to_le_bytes());
                }
            });
        for (i, a) in self.allocations.iter().enumerate() {
            let at = allocations_offset + i * ALLOCATION_RECORD_SIZE;
            put(&mut out, at, &a.address.to_le_bytes());
            put(&mut out, at + 8, &a.size.to_le_bytes());
            put(&mut out, at + 16, &a.time.to_le_bytes());
            put(&mut out, at + 24, &a.heap.to_le_bytes());
            put(&mut out, at + 32, &a.stack.to_le_bytes());
            out[at + 36] = a.allocator.to_byte();
        }
        put(&mut out, metadata_offset, meta.as_bytes());
        if let Some(b) = &section {
            put(
                &mut out,
                MODULE_STRINGS_OFFSET_FIELD,
                &(strings_offset as u64).to_le_bytes(),
            );
            put(
                &mut out,
                MODULE_STRINGS_SIZE_FIELD,
                &(b.len() as u64).to_le_bytes(),
            );
            put(&mut out, strings_offset, b);
        }
        if self.tracker_regions.is_some() {
            let offset = if regions.is_empty() {
                0
            } else {
                regions_offset
            };
            put(
                &mut out,
                field::TRACKER_REGIONS_OFFSET,
                &(offset as u64).to_le_bytes(),
            );
            put(
                &mut out,
                field::TRACKER_REGION_COUNT,
                &(regions.len() as u64).to_le_bytes(),
            );
            for (i, (base, size, kind)) in regions.iter().enumerate() {
                let at = regions_offset + i * TRACKER_REGION_SIZE;
                put(&mut out, at, &base.to_le_bytes());
                put(&mut out, at + 8, &size.to_le_bytes());
                put(&mut out, at + 16, &kind.to_le_bytes());
            }
        }
        out
    }
}

/// The bytes of a module-strings section (§ 13 of the spec): `module_count`, reserved,
/// then each record padded to a multiple of 8 bytes.
pub fn encode_module_strings(records: &[NewModuleStrings]) -> Vec<u8> {
    let mut out = vec![0u8; SECTION_HEADER_SIZE];
    out[..4].copy_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        let mut head = [0u8; MODULE_RECORD_SIZE];
        head[..8].copy_from_slice(&r.base.to_le_bytes());
        head[8..12].copy_from_slice(&r.image_size.to_le_bytes());
        for (i, s) in r.strings.iter().enumerate() {
            let len = u16::try_from(s.len()).expect("a module string of at most 65535 bytes");
            head[12 + 2 * i..14 + 2 * i].copy_from_slice(&len.to_le_bytes());
        }
        head[22] = r.status.to_byte();
        out.extend_from_slice(&head);
        for s in &r.strings {
            out.extend_from_slice(s.as_bytes());
        }
        out.resize(align8(out.len()), 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::dump::stream::{AllocationStream, StreamFlags};

    #[test]
    fn stacks_are_deduplicated_by_their_frames_not_their_hash() {
        let mut b = AllocationStreamBuilder::new(0, 0);
        let ids: Vec<u32> = (0..1000u64).map(|i| b.add_stack(&[i, i + 1, 7])).collect();
        assert_eq!(ids, (0..1000).collect::<Vec<u32>>());
        for i in (0..1000u64).rev() {
            assert_eq!(b.add_stack(&[i, i + 1, 7]), i as u32);
        }
        // A different stack whose hash an earlier one has: told apart.
        b.stack_ids.insert(stack_hash(&[5, 5]), 3);
        assert_eq!(b.add_stack(&[5, 5]), 1000);
        assert_eq!(b.add_stack(&[5, 5]), 1000);
        assert_eq!(b.add_stack(&[3, 4, 7]), 3);
        assert_eq!(b.stack_frames(1000), [5, 5]);
    }

    /// Adding stacks at once gives the indices and the stream that adding them one
    /// at a time gives: with and without identical stacks, with two stacks of one
    /// hash, and into a builder that has stacks already.
    #[test]
    fn stacks_added_at_once_are_those_added_one_at_a_time() {
        let lists: Vec<Vec<Vec<u64>>> = vec![
            (0..500u64).map(|i| vec![i, i * 7, 3]).collect(),
            (0..500u64).map(|i| vec![i % 37, 1, 2, i % 5]).collect(),
            vec![vec![], vec![1], vec![], vec![1, 2], vec![1]],
        ];
        for (n, stacks) in lists.iter().enumerate() {
            for prefill in [false, true] {
                for collide in [false, true] {
                    let mut one = AllocationStreamBuilder::new(0, 0);
                    let mut all = AllocationStreamBuilder::new(0, 0);
                    if prefill {
                        for b in [&mut one, &mut all] {
                            b.add_stack(&[1, 2]);
                            b.add_stack(&[9]);
                        }
                    }
                    if collide {
                        // Stack 0's hash is another stack's: told apart by frames.
                        for b in [&mut one, &mut all] {
                            b.stack_ids.insert(stack_hash(&stacks[1]), 0);
                        }
                    }
                    let ids: Vec<u32> = stacks.iter().map(|s| one.add_stack(s)).collect();
                    let flat: Vec<u64> = stacks.iter().flatten().copied().collect();
                    let lens: Vec<u32> = stacks.iter().map(|s| s.len() as u32).collect();
                    let at_once = all.add_stacks(flat, &lens);
                    let case = (n, prefill, collide);
                    assert_eq!(at_once, ids, "{case:?}");
                    assert_eq!(all.build(), one.build(), "{case:?}");
                }
            }
        }
    }

    #[test]
    fn round_trip_every_field() {
        let mut b = AllocationStreamBuilder::new(1000, 2000);
        b.flags = StreamFlags::RETURN_ADDRESSES | StreamFlags::DROPPED;
        let s0 = b.add_stack(&[0x10, 0x20, 0x30]);
        assert_eq!(
            b.add_stack(&[0x10, 0x20, 0x30]),
            s0,
            "stacks are deduplicated"
        );
        b.add_allocation(NewAllocation {
            address: 0xAB00,
            size: 123,
            time: 55,
            heap: 0x77,
            stack: s0,
            allocator: AllocatorKind::Com,
        });
        b.allocate(0xCD00, 9, 66, AllocatorKind::Bstr, &[]);
        b.metadata("tracker", "test 1")
            .metadata("allocator_modules", "a.dll, b.dll");
        let bytes = b.build();
        let s = AllocationStream::parse(&bytes).unwrap();
        let h = s.header();
        assert_eq!((h.tracking_start, h.snapshot_time), (1000, 2000));
        assert!(s.flags().return_addresses() && s.flags().dropped());
        assert!(!s.flags().truncated_stacks());
        assert_eq!(s.frame_count(), 3);
        assert_eq!(s.stack_count(), 1);
        let frames: Vec<_> = s.stack_frames(0).unwrap().collect();
        assert_eq!(frames, vec![VirtAddr(0x10), VirtAddr(0x20), VirtAddr(0x30)]);
        let allocs: Vec<_> = s.allocations().collect();
        assert_eq!(allocs.len(), 2);
        assert_eq!(allocs[0].address, VirtAddr(0xAB00));
        assert_eq!(
            (allocs[0].size, allocs[0].time, allocs[0].heap),
            (123, 55, 0x77)
        );
        assert_eq!(allocs[0].allocator(), AllocatorKind::Com);
        assert_eq!(allocs[1].stack, NO_STACK);
        assert_eq!(s.metadata_value("tracker"), Some("test 1"));
        assert_eq!(s.allocator_modules(), vec!["a.dll", "b.dll"]);
    }
}
