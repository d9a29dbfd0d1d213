//! Stack ids: a stack's identity across dumps ([`stack_id`], and [`StackIdEncoder`]
//! for many stacks at once), and a table's totals by id
//! ([`Table::totals_by_stack_id`], [`Table::totals_of_stack_ids`]), so that the dumps
//! of a series can be compared stack by stack.

use super::Table;
use crate::analysis::attribution::FrameModules;
use crate::dump::stream::AllocationStream;
use crate::model::{ModuleMap, StackId, Totals};
use rayon::prelude::*;
use std::collections::HashMap;

impl Table {
    /// Totals of every stack with outstanding allocations, by [`StackId`], so that
    /// the dumps of a series can be compared stack by stack.
    pub fn totals_by_stack_id(
        &self,
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
    ) -> HashMap<StackId, Totals> {
        // The ids (every frame located and hashed) in parallel, then one map.
        let encoder = StackIdEncoder::new(modules);
        let ids: Vec<(StackId, Totals)> = self
            .per_stack
            .par_iter()
            .with_min_len(1024)
            .enumerate()
            .filter(|(_, t)| t.allocations > 0)
            .map_init(Vec::new, |buf, (s, t)| {
                (encoder.id(stream, s as u32, modules, &self.frames, buf), *t)
            })
            .collect();
        let mut out: HashMap<StackId, Totals> = HashMap::with_capacity(ids.len());
        for (id, t) in ids {
            out.entry(id).or_default().merge(t);
        }
        out
    }
}

/// What every stack with the same [`StackId`] as another shares: its depth (up to
/// the id's frame limit) and its innermost frame as the id encodes it (the module by
/// its first index among the modules of the same lower-case name, and the offset; or
/// the address). Cheap to compute, and equal for equal ids (equal ids hash equal bytes,
/// and the encoding of a frame delimits itself), so only stacks of a wanted shape need
/// their id.
type StackShape = (usize, u32, u64);

impl Table {
    /// [`Table::totals_by_stack_id`] for the ids of `wanted` (stack indices) only: the
    /// same entries as the full map for these ids, and no others; only the stacks of
    /// a wanted stack's shape (depth and innermost frame, equal for equal ids) are hashed.
    pub fn totals_of_stack_ids(
        &self,
        stream: &AllocationStream<'_>,
        modules: &ModuleMap,
        wanted: impl IntoIterator<Item = u32>,
    ) -> HashMap<StackId, Totals> {
        let mut canonical: HashMap<String, u32> = HashMap::new();
        let canon: Vec<u32> = modules
            .modules()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                *canonical
                    .entry(m.name.to_ascii_lowercase())
                    .or_insert(i as u32)
            })
            .collect();
        let shape = |stack: u32| -> StackShape {
            let Some(r) = stream.stack(stack) else {
                return (0, u32::MAX, 0);
            };
            let depth = (r.frame_count as usize).min(crate::model::MAX_SAMPLE_FRAMES);
            let first = r.first_frame as usize;
            match stream.frame(first).filter(|_| depth > 0) {
                None => (depth, u32::MAX, 0),
                Some(addr) => match self.frames.locate_frame(first, addr, modules) {
                    Some((m, rva)) => (depth, canon[m], rva.0),
                    None => (depth, u32::MAX - 1, addr.0),
                },
            }
        };
        let encoder = StackIdEncoder::new(modules);
        let mut buf = Vec::new();
        let wanted: Vec<u32> = wanted.into_iter().collect();
        let shapes: crate::hash::FoldSet<StackShape> = wanted.iter().map(|&s| shape(s)).collect();
        let mut out: HashMap<StackId, Totals> = wanted
            .iter()
            .map(|&s| {
                let id = encoder.id(stream, s, modules, &self.frames, &mut buf);
                (id, Totals::default())
            })
            .collect();
        // The stacks of a wanted shape and id, found in parallel (a UMDH log's million
        // stacks mostly share their depth and innermost frame), summed in stack order.
        let found: Vec<(StackId, usize)> = self
            .per_stack
            .par_iter()
            .with_min_len(1 << 12)
            .enumerate()
            .filter(|(s, t)| t.allocations > 0 && shapes.contains(&shape(*s as u32)))
            .map_init(Vec::new, |buf, (s, _)| {
                (encoder.id(stream, s as u32, modules, &self.frames, buf), s)
            })
            // Stacks of the same shape but another id are not wanted.
            .filter(|(id, _)| out.contains_key(id))
            .collect();
        for (id, s) in found {
            if let Some(sum) = out.get_mut(&id) {
                sum.merge(self.per_stack[s]);
            }
        }
        // An id whose stacks have no outstanding allocations has no entry, as in the
        // full map.
        out.retain(|_, t| t.allocations > 0);
        out
    }
}

/// A stack's identity across dumps: its frames as (module name, offset), or the
/// address for a frame in no module (see [`StackId`]).
pub fn stack_id(stream: &AllocationStream<'_>, stack: u32, modules: &ModuleMap) -> StackId {
    use crate::model::IdFrame;
    // At most the innermost MAX_SAMPLE_FRAMES frames: the id of every stack costs
    // bounded work however deep the stream's stacks are.
    StackId::of(
        stream
            .stack_frames(stack)
            .into_iter()
            .flatten()
            .take(crate::model::MAX_SAMPLE_FRAMES)
            .map(|addr| match modules.locate(addr) {
                Some((m, rva)) => IdFrame::Module {
                    name: &modules.get(m).name,
                    offset: rva.0,
                },
                None => IdFrame::Address(addr.0),
            }),
    )
}

/// [`stack_id`] for many stacks: each module's part of the id's input (tag, name
/// length, lower-case name) is encoded once, and each stack's input is hashed in one
/// call into a reused buffer, instead of a streaming hasher fed field by field. The
/// bytes are exactly those [`StackId::of`] hashes (docs/report-schema.md, "Stack
/// ids"), and XXH3 of the same bytes is the same in one call or many; a test compares
/// the two on every kind of frame.
pub struct StackIdEncoder {
    prefixes: Vec<Vec<u8>>,
}

impl StackIdEncoder {
    pub fn new(modules: &ModuleMap) -> Self {
        let prefixes = modules
            .modules()
            .iter()
            .map(|m| {
                let name = m.name.as_bytes();
                let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
                let mut p = Vec::with_capacity(5 + name.len());
                p.push(0x01);
                p.extend_from_slice(&len.to_le_bytes());
                p.extend(name.iter().map(u8::to_ascii_lowercase));
                p
            })
            .collect();
        StackIdEncoder { prefixes }
    }

    /// The id of stack `stack`, as [`stack_id`] computes it (its innermost
    /// [`MAX_SAMPLE_FRAMES`](crate::model::MAX_SAMPLE_FRAMES) frames), with the frames'
    /// modules from `located`; `buf` is scratch space.
    pub fn id(
        &self,
        stream: &AllocationStream<'_>,
        stack: u32,
        modules: &ModuleMap,
        located: &FrameModules,
        buf: &mut Vec<u8>,
    ) -> StackId {
        buf.clear();
        let first = stream.stack(stack).map_or(0, |r| r.first_frame as usize);
        let frames = stream
            .stack_frames(stack)
            .into_iter()
            .flatten()
            .take(crate::model::MAX_SAMPLE_FRAMES);
        for (i, addr) in frames.enumerate() {
            match located.locate_frame(first + i, addr, modules) {
                Some((m, rva)) => {
                    buf.extend_from_slice(&self.prefixes[m]);
                    buf.extend_from_slice(&rva.0.to_le_bytes());
                }
                None => {
                    buf.push(0x02);
                    buf.extend_from_slice(&addr.0.to_le_bytes());
                }
            }
        }
        StackId(xxhash_rust::xxh3::xxh3_64(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::attribution::ModuleFilter;
    use crate::dump::stream::AllocatorKind;
    use crate::dump::writer::AllocationStreamBuilder;
    use crate::model::Module;

    /// A loaded module `name` of `size` bytes at `base`.
    fn module(name: &str, base: u64, size: u64) -> Module {
        Module::at(
            &format!("C:\\app\\{name}"),
            crate::addr::VirtAddr(base),
            size,
        )
    }

    #[test]
    fn the_stack_id_encoder_gives_stack_id() {
        let long = format!("{}.DLL", "VeryLong_Module-Name".repeat(9));
        let modules = ModuleMap::new(vec![
            module("App.EXE", 0x40_0000, 0x10_0000),
            module(&long, 0x7ff0_0000, 0x1000),
        ]);
        let mut b = AllocationStreamBuilder::new(0, 10);
        let stacks: Vec<Vec<u64>> = vec![
            vec![0x40_1234],
            vec![0x40_1234, 0x7ff0_0010, 0x1234, 0x40_0000],
            vec![0xdead_beef_0000, 0x7ff0_0fff],
            (0..200).map(|i| 0x40_0000 + i * 0x111).collect(),
            // Deeper than the id's frame limit: both take the same innermost frames.
            (0..(crate::model::MAX_SAMPLE_FRAMES as u64 + 40))
                .map(|i| 0x40_0000 + i * 0x10)
                .collect(),
        ];
        for s in &stacks {
            b.add_stack(s);
        }
        let bytes = b.build();
        let stream = AllocationStream::parse(&bytes).unwrap();
        let encoder = StackIdEncoder::new(&modules);
        let located = FrameModules::locate(&stream, &modules);
        let mut buf = Vec::new();
        for s in 0..stream.stack_count() as u32 {
            assert_eq!(
                encoder.id(&stream, s, &modules, &located, &mut buf),
                stack_id(&stream, s, &modules),
                "stack {s}"
            );
        }
    }

    #[test]
    fn totals_of_stack_ids_are_those_of_the_full_map() {
        // The same module name twice (loaded, unloaded, loaded again elsewhere): its
        // stacks at either base have the same id.
        let modules = ModuleMap::new(vec![
            module("App.EXE", 0x40_0000, 0x10_0000),
            module("app.exe", 0x80_0000, 0x10_0000),
            module("other.dll", 0xc0_0000, 0x10_0000),
        ]);
        let mut b = AllocationStreamBuilder::new(0, 10_000_000);
        let stacks: Vec<Vec<u64>> = vec![
            vec![0x40_1000, 0x40_2000],
            vec![0x80_1000, 0x80_2000],
            vec![0x40_1000, 0x40_3000],
            vec![0x40_1000],
            vec![0xc0_1000, 0x40_2000],
            vec![0xdead_0000, 0x40_2000],
            vec![0xdead_0000],
            (0..300).map(|i| 0x40_0000 + i * 0x10).collect(),
            (0..301).map(|i| 0x40_0000 + i * 0x10).collect(),
        ];
        for (i, s) in stacks.iter().enumerate() {
            for k in 0..=i as u64 {
                b.allocate(0x1000 * (k + 1), 10 + k, 5, AllocatorKind::CRuntime, s);
            }
        }
        let bytes = b.build();
        let stream = AllocationStream::parse(&bytes).unwrap();
        let table =
            Table::read(&stream, &modules, &ModuleFilter::new::<[&str; 0], &str>([])).unwrap();
        let full = table.totals_by_stack_id(&stream, &modules);
        assert!(full.len() < stacks.len(), "some stacks share an id");
        for s in 0..stream.stack_count() as u32 {
            let id = stack_id(&stream, s, &modules);
            let some = table.totals_of_stack_ids(&stream, &modules, [s]);
            assert_eq!(some.len(), 1, "stack {s}");
            assert_eq!(some.get(&id), full.get(&id), "stack {s}");
        }
        let all = table.totals_of_stack_ids(&stream, &modules, 0..stream.stack_count() as u32);
        assert_eq!(all, full);
    }
}
