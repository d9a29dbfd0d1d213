//! Which module is responsible for an allocation (the spec's "Responsible module").
//!
//! Frames in system and runtime modules, and in the tracker's declared
//! `allocator_modules`, are allocation plumbing: the module responsible is the first
//! frame, innermost first, outside them. This module holds the list of names and the
//! rule; the leak script applies it once per distinct stack.

use crate::addr::{Rva, VirtAddr};
use crate::dump::stream::AllocationStream;
use crate::model::ModuleMap;
use std::collections::BTreeSet;

/// Modules skipped by default: Windows' loader, heap and COM plumbing, the
/// Microsoft C/C++ runtimes and the MinGW/LLVM C++ runtimes (so that `operator new`
/// of libstdc++-6, libgcc_s_*, libc++ is charged to its caller). A trailing `*`
/// matches any suffix of the stem.
pub const DEFAULT_SYSTEM_MODULES: &[&str] = &[
    "ntdll",
    "kernel32",
    "kernelbase",
    "msvcrt",
    "ucrtbase",
    "ucrtbased",
    "vcruntime*",
    "msvcp*",
    "msvcr*",
    "libstdc++*",
    "libgcc_s*",
    "libc++",
    "ole32",
    "combase",
    "oleaut32",
    "rpcrt4",
    "api-ms-win-*",
    "sechost",
];

/// A set of module name patterns, matched case-insensitively against a module's file
/// name. A pattern with an extension (`foo.dll`) must match the whole name; one without
/// (`foo`, `msvcp*`) matches the name without its extension.
#[derive(Clone, Debug, Default)]
pub struct ModuleFilter {
    patterns: Vec<String>,
}

impl ModuleFilter {
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ModuleFilter {
            patterns: patterns
                .into_iter()
                .map(|p| p.as_ref().trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// The default system list plus `extra`.
    pub fn system_with<S: AsRef<str>>(extra: &[S]) -> Self {
        Self::new(
            DEFAULT_SYSTEM_MODULES
                .iter()
                .map(|s| s.to_string())
                .chain(extra.iter().map(|s| s.as_ref().to_owned())),
        )
    }

    pub fn extend<S: AsRef<str>>(&mut self, more: &[S]) {
        self.patterns
            .extend(Self::new(more.iter().map(|s| s.as_ref())).patterns);
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn matches(&self, file_name: &str) -> bool {
        // Patterns are ASCII lower case already; the name is compared without ASCII
        // case in place (this runs for frames of every stack: no copy per call).
        let name = file_name.as_bytes();
        let stem = match file_name.rsplit_once('.') {
            Some((stem, _)) => stem.as_bytes(),
            None => name,
        };
        let starts_with =
            |s: &[u8], p: &[u8]| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p);
        self.patterns.iter().any(|p| {
            let (pat, wildcard) = match p.strip_suffix('*') {
                Some(prefix) => (prefix, true),
                None => (p.as_str(), false),
            };
            let pat = pat.as_bytes();
            let target = if pat.contains(&b'.') && !wildcard {
                name
            } else {
                stem
            };
            if wildcard {
                starts_with(target, pat) || starts_with(name, pat)
            } else {
                target.eq_ignore_ascii_case(pat)
            }
        })
    }
}

/// Who an allocation is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A module of the dump, by index in the [`ModuleMap`].
    Module(usize),
    /// The responsible frame lies in no known module.
    Unknown,
    /// No stack: none captured, an empty stack, or an invalid stack index.
    NoStack,
}

/// The frame an allocation is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Responsible {
    pub owner: Owner,
    /// The responsible frame's position in the stack, innermost = 0.
    pub frame: usize,
    pub address: VirtAddr,
    /// Offset in the owning module, when it is a module.
    pub rva: Option<Rva>,
}

/// Applies the spec's rule to one stack (innermost frame first).
pub fn responsible_frame<I>(
    frames: I,
    modules: &ModuleMap,
    skip: &ModuleFilter,
) -> Option<Responsible>
where
    I: IntoIterator<Item = VirtAddr>,
{
    responsible_frame_by(frames, modules, |m| skip.matches(&modules.get(m).name))
}

/// [`responsible_frame`] with the skipped modules given by index (`skipped(m)`), for
/// callers that match the filter against each module once rather than per frame.
pub fn responsible_frame_by<I>(
    frames: I,
    modules: &ModuleMap,
    skipped: impl Fn(usize) -> bool,
) -> Option<Responsible>
where
    I: IntoIterator<Item = VirtAddr>,
{
    let mut innermost = None;
    for (i, addr) in frames.into_iter().enumerate() {
        let located = modules.locate(addr);
        let candidate = match located {
            Some((m, rva)) => Responsible {
                owner: Owner::Module(m),
                frame: i,
                address: addr,
                rva: Some(rva),
            },
            None => Responsible {
                owner: Owner::Unknown,
                frame: i,
                address: addr,
                rva: None,
            },
        };
        if innermost.is_none() {
            innermost = Some(candidate);
        }
        let skipped = located.is_some_and(|(m, _)| skipped(m));
        if !skipped {
            return Some(candidate);
        }
    }
    innermost
}

/// The module of every entry of the stream's frame table, found once: the walks over
/// frames (responsible frames, modules in stacks, stack ids) share it instead of each
/// searching the module map for every frame again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameModules {
    /// Index into the [`ModuleMap`] per frame, `u32::MAX` for none.
    module: Vec<u32>,
}

impl FrameModules {
    const NONE: u32 = u32::MAX;

    /// Locates every frame of `stream` in `modules`, in parallel.
    pub fn locate(stream: &AllocationStream<'_>, modules: &ModuleMap) -> Self {
        use rayon::prelude::*;
        let module = (0..stream.frame_count())
            .into_par_iter()
            .with_min_len(1 << 12)
            .map(|i| {
                stream
                    .frame(i)
                    .and_then(|a| modules.find(a))
                    .map_or(Self::NONE, |m| m as u32)
            })
            .collect();
        FrameModules { module }
    }

    /// The module of frame-table entry `frame`.
    pub fn get(&self, frame: usize) -> Option<usize> {
        match self.module.get(frame).copied() {
            Some(Self::NONE) | None => None,
            Some(m) => Some(m as usize),
        }
    }

    /// The module and the offset in it of frame-table entry `frame` at `address`.
    pub fn locate_frame(
        &self,
        frame: usize,
        address: VirtAddr,
        modules: &ModuleMap,
    ) -> Option<(usize, Rva)> {
        let m = self.get(frame)?;
        Some((m, address.rva_from(modules.get(m).base)?))
    }
}

/// The responsible frame of every stack of `stream`, by stack index, in
/// O(frames + stacks): the rule of [`responsible_frame`] without walking each stack.
///
/// Stacks are ranges of one frame table and may overlap (a valid stream can hold a
/// thousand stacks that each cover a 300,000-frame table), so walking every stack costs
/// frames × stacks. Instead every frame of the table is located once, and one pass
/// from the end records, for each frame, the nearest frame at or after it that is not
/// skipped; a stack's responsible frame is then that of its first frame, when it lies
/// within the stack, else its innermost frame.
pub fn responsible_frames(
    stream: &AllocationStream<'_>,
    modules: &ModuleMap,
    located: &FrameModules,
    skip: &ModuleFilter,
) -> Vec<Option<Responsible>> {
    let n = stream.frame_count();
    // Where the stacks cover the frame table about once (the tracker writes each
    // stack's frames once), each stack is walked from its first frame to its first
    // kept one: no table as large as the frame table. Where they overlap more, the
    // table of the nearest kept frame keeps the work in O(frames + stacks).
    let covered: u64 = (0..stream.stack_count() as u32)
        .filter_map(|s| stream.stack(s))
        .map(|r| u64::from(r.frame_count))
        .sum();
    responsible_frames_with(stream, modules, located, skip, covered > 2 * n as u64)
}

/// [`responsible_frames`] with the table of the nearest kept frame (`table`) or a walk
/// of each stack; the two give the same answer (a test checks it).
fn responsible_frames_with(
    stream: &AllocationStream<'_>,
    modules: &ModuleMap,
    located: &FrameModules,
    skip: &ModuleFilter,
    table: bool,
) -> Vec<Option<Responsible>> {
    let n = stream.frame_count();
    // Whether each module is plumbing, decided once per module, not once per frame.
    let skipped_module: Vec<bool> = modules
        .modules()
        .iter()
        .map(|m| skip.matches(&m.name))
        .collect();
    let skipped = |i: usize| located.get(i).is_some_and(|m| skipped_module[m]);
    let next_kept: Vec<usize> = if !table {
        Vec::new()
    } else {
        let mut next_kept = vec![n; n + 1];
        for i in (0..n).rev() {
            next_kept[i] = if skipped(i) { next_kept[i + 1] } else { i };
        }
        next_kept
    };
    let first_kept = |first: usize, end: usize| -> usize {
        if next_kept.is_empty() {
            (first..end).find(|&i| !skipped(i)).unwrap_or(n)
        } else {
            next_kept[first]
        }
    };
    let candidate = |i: usize, first: usize| -> Option<Responsible> {
        let address = stream.frame(i)?;
        Some(match located.locate_frame(i, address, modules) {
            Some((m, rva)) => Responsible {
                owner: Owner::Module(m),
                frame: i - first,
                address,
                rva: Some(rva),
            },
            None => Responsible {
                owner: Owner::Unknown,
                frame: i - first,
                address,
                rva: None,
            },
        })
    };
    // Stacks are independent: in parallel, collected in stack order.
    use rayon::prelude::*;
    (0..stream.stack_count() as u32)
        .into_par_iter()
        .with_min_len(1 << 12)
        .map(|s| {
            let r = stream.stack(s)?;
            if r.frame_count == 0 {
                return None;
            }
            // Ranges were checked when the stream was parsed.
            let first = r.first_frame as usize;
            let end = first + r.frame_count as usize;
            let kept = first_kept(first, end);
            candidate(if kept < end { kept } else { first }, first)
        })
        .collect()
}

/// The modules that any frame of any stack lies in, in O(frames + stacks log stacks):
/// the stacks' frame ranges in order, each frame some stack covers visited once and
/// its module (located once, in `located`) flagged.
pub fn modules_in_stacks(
    stream: &AllocationStream<'_>,
    located: &FrameModules,
    module_count: usize,
) -> BTreeSet<usize> {
    let n = stream.frame_count();
    // The stacks' frame ranges in order, merged where they overlap or touch: every
    // frame some stack covers is visited once, with no table as large as the frame
    // table (the ranges come from the stack table, mostly in order already).
    let mut ranges: Vec<(usize, usize)> = (0..stream.stack_count() as u32)
        .filter_map(|s| stream.stack(s))
        .filter(|r| r.frame_count > 0)
        .map(|r| {
            let first = r.first_frame as usize;
            (first, (first + r.frame_count as usize).min(n))
        })
        .collect();
    if !ranges.is_sorted() {
        ranges.sort_unstable();
    }
    // Disjoint pieces, then a flag per module for each share of them, in parallel (a
    // set insertion per frame would cost more than the lookup).
    let mut pieces: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    let mut done = 0;
    for (first, end) in ranges {
        if end > first.max(done) {
            pieces.push((first.max(done), end));
        }
        done = done.max(end);
    }
    use rayon::prelude::*;
    let found = pieces
        .par_iter()
        .with_min_len(1 << 10)
        .fold(
            || vec![false; module_count],
            |mut found, &(first, end)| {
                for i in first..end {
                    if let Some(m) = located.get(i) {
                        found[m] = true;
                    }
                }
                found
            },
        )
        .reduce_with(|mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                *x |= y;
            }
            a
        })
        .unwrap_or_default();
    found
        .into_iter()
        .enumerate()
        .filter_map(|(m, f)| f.then_some(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Module;

    #[test]
    fn responsible_frames_and_modules_in_stacks_follow_the_rule_either_way() {
        use crate::dump::stream::AllocationStream;
        use crate::dump::writer::AllocationStreamBuilder;
        let module = |name: &str, base: u64| Module::at(name, VirtAddr(base), 0x1000);
        let modules = ModuleMap::new(vec![
            module("ntdll.dll", 0x1000),
            module("app.exe", 0x3000),
            module("lib.dll", 0x5000),
            module("unused.dll", 0x7000),
        ]);
        let skip = ModuleFilter::system_with::<&str>(&[]);
        let mut b = AllocationStreamBuilder::new(0, 10);
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) % n
        };
        // Frames in ntdll (skipped), app, lib and in no module, in every mix.
        let places = [0x1010, 0x1020, 0x3010, 0x3020, 0x5010, 0x9010];
        let mut stacks = vec![vec![0x1010], vec![0x9010], vec![0x1010, 0x1020]];
        for _ in 0..200 {
            let depth = 1 + next(6) as usize;
            stacks.push((0..depth).map(|_| places[next(6) as usize]).collect());
        }
        for s in &stacks {
            b.add_stack(s);
        }
        let bytes = b.build();
        let stream = AllocationStream::parse(&bytes).unwrap();
        let located = FrameModules::locate(&stream, &modules);
        let want: Vec<Option<Responsible>> = (0..stream.stack_count() as u32)
            .map(|s| responsible_frame(stream.stack_frames(s)?, &modules, &skip))
            .collect();
        for table in [false, true] {
            assert_eq!(
                responsible_frames_with(&stream, &modules, &located, &skip, table),
                want,
                "table: {table}"
            );
        }
        assert_eq!(responsible_frames(&stream, &modules, &located, &skip), want);
        let mut used = BTreeSet::new();
        for s in 0..stream.stack_count() as u32 {
            used.extend(
                stream
                    .stack_frames(s)
                    .unwrap()
                    .filter_map(|a| modules.find(a)),
            );
        }
        assert_eq!(modules_in_stacks(&stream, &located, 4), used);
        assert!(!used.contains(&3));
    }

    #[test]
    fn default_list_matches_runtime_names() {
        let f = ModuleFilter::system_with::<&str>(&[]);
        for n in [
            "ntdll.dll",
            "KERNEL32.DLL",
            "KernelBase.dll",
            "msvcrt.dll",
            "ucrtbase.dll",
            "vcruntime140.dll",
            "vcruntime140_1.dll",
            "msvcp140.dll",
            "msvcr120.dll",
            "ucrtbased.dll",
            "libstdc++-6.dll",
            "libgcc_s_seh-1.dll",
            "libgcc_s_dw2-1.dll",
            "libc++.dll",
            "ole32.dll",
            "combase.dll",
            "oleaut32.dll",
            "rpcrt4.dll",
        ] {
            assert!(f.matches(n), "{n}");
        }
        for n in [
            "odbcvend.dll",
            "leakyapp.exe",
            "ntdllx.dll",
            "kernel32x.dll",
            "libcurl.dll",
        ] {
            assert!(!f.matches(n), "{n}");
        }
    }

    #[test]
    fn patterns_with_extension_match_whole_name() {
        let f = ModuleFilter::new(["ldtrack.dll", "MyAlloc"]);
        assert!(f.matches("LDTRACK.DLL"));
        assert!(!f.matches("ldtrack.exe"));
        assert!(f.matches("myalloc.dll"));
    }

    fn module(name: &str, base: u64) -> Module {
        Module::at(name, VirtAddr(base), 0x1000)
    }

    #[test]
    fn rule_skips_system_and_allocator_modules() {
        let map = ModuleMap::new(vec![
            module("ntdll.dll", 0x1000),
            module("ldtrack.dll", 0x2000),
            module("odbcvend.dll", 0x3000),
            module("app.exe", 0x4000),
        ]);
        let mut skip = ModuleFilter::system_with::<&str>(&[]);
        skip.extend(&["ldtrack.dll"]);
        let r =
            responsible_frame([0x1010, 0x2020, 0x3366, 0x4040].map(VirtAddr), &map, &skip).unwrap();
        assert_eq!(r.owner, Owner::Module(2));
        assert_eq!((r.frame, r.rva), (2, Some(Rva(0x366))));

        // Every frame skipped: the innermost frame's module.
        let r = responsible_frame([0x2020, 0x1010].map(VirtAddr), &map, &skip).unwrap();
        assert_eq!((r.owner, r.frame), (Owner::Module(1), 0));

        // A frame outside every module is not skipped: it is charged to "unknown".
        let r = responsible_frame([0x1010, 0x9999, 0x3366].map(VirtAddr), &map, &skip).unwrap();
        assert_eq!((r.owner, r.frame, r.rva), (Owner::Unknown, 1, None));

        assert_eq!(responsible_frame([], &map, &skip), None);
    }
}
