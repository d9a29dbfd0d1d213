//! The reachability scan on synthetic dumps: chains, cycles, interior pointers,
//! stacks (live and dead), untracked memory, overlapping blocks, bad memory lists.

use crate::helpers::analyze_synth;
use crate::synth::{filetime, SynthDump, SynthModule};
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::dump::stream::AllocatorKind;
use leakdiag::dump::writer::AllocationStreamBuilder;
use leakdiag::model::{Confidence, DumpReport, EvidenceKind, RootKind, Totals, VerdictStatus};

const APP: u64 = 0x40_0000;
const HEAP: u64 = 0x2000_0000;
const STACK: u64 = 0x3000_0000;

/// A dump with app.exe (its image captured: 0x100 bytes of "globals"), a heap
/// range holding the blocks, one thread whose stack is `stack` with the stack
/// pointer at `sp`, and an untracked range.
pub(crate) struct Case {
    blocks: Vec<(u64, u64, u64)>, // (address, size, return address in app.exe)
    heap: Vec<u8>,
    globals: Vec<u8>,
    stack: Vec<u8>,
    sp: u64,
    untracked: Vec<u8>,
    /// Allocation times spread evenly over the hour (leak probability high), else
    /// all at the start.
    steadily: bool,
}

fn put(buf: &mut Vec<u8>, offset: usize, value: u64) {
    if buf.len() < offset + 8 {
        buf.resize(offset + 8, 0);
    }
    buf[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

impl Case {
    pub(crate) fn new() -> Self {
        Case {
            blocks: Vec::new(),
            heap: vec![0; 0x1000],
            globals: vec![0; 0x100],
            stack: vec![0; 0x100],
            sp: STACK + 0x80,
            untracked: vec![0; 0x100],
            steadily: false,
        }
    }

    /// A block of `size` bytes at heap offset `offset`, allocated by function `f`.
    pub(crate) fn block(&mut self, offset: u64, size: u64, f: u64) -> u64 {
        self.blocks
            .push((HEAP + offset, size, APP + 0x1000 + f * 0x10));
        HEAP + offset
    }

    /// Writes pointer `value` at `at` (absolute, in one of the ranges).
    pub(crate) fn pointer(&mut self, at: u64, value: u64) {
        let (buf, base) = if (HEAP..HEAP + 0x10_0000).contains(&at) {
            (&mut self.heap, HEAP)
        } else if (STACK..STACK + 0x1000).contains(&at) {
            (&mut self.stack, STACK)
        } else if (APP..APP + 0x1000).contains(&at) {
            (&mut self.globals, APP)
        } else {
            (&mut self.untracked, 0x5000_0000)
        };
        put(buf, (at - base) as usize, value);
    }

    fn report(&self, memory64: bool) -> DumpReport {
        analyze_synth(self.bytes(memory64), &AnalyzeOptions::default())
    }

    /// The allocation stream of the case's blocks (return addresses in app.exe).
    pub(crate) fn stream(&self) -> Vec<u8> {
        let start = filetime(1_700_000_000);
        let mut b = AllocationStreamBuilder::new(start, start + 3600 * 10_000_000);
        b.flags = 1;
        let n = self.blocks.len() as u64;
        for (i, &(address, size, ret)) in self.blocks.iter().enumerate() {
            let time = if self.steadily {
                (i as u64 + 1) * 3600 * 10_000_000 / (n + 1)
            } else {
                10
            };
            b.allocate(
                address,
                size,
                time,
                AllocatorKind::CRuntime,
                &[ret, APP + 0x2000],
            );
        }
        b.build()
    }

    /// The dump's bytes.
    pub(crate) fn bytes(&self, memory64: bool) -> Vec<u8> {
        let stream = self.stream();
        let dump = SynthDump {
            modules: vec![SynthModule::new(r"C:\app\app.exe", APP, 0x10000)],
            stream: Some(stream),
            system_info: true,
            memory: vec![
                (APP, self.globals.clone()),
                (HEAP, self.heap.clone()),
                (0x5000_0000, self.untracked.clone()),
            ],
            thread_stacks: vec![(77, STACK, self.stack.clone(), self.sp)],
            memory64,
            ..Default::default()
        };
        dump.build()
    }
}

fn t(allocations: u64, bytes: u64) -> Totals {
    Totals { allocations, bytes }
}

/// The classes of function `app.exe+0x…` (as the leak section names it without
/// symbols) by its index in [`Case::block`].
fn function(r: &DumpReport, f: u64) -> leakdiag::model::ReachabilityTotals {
    let name = format!("app.exe+0x{:x}", 0x1000 + f * 0x10);
    let leak = r.leak().unwrap();
    leak.modules
        .iter()
        .flat_map(|m| &m.functions)
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no function {name}"))
        .reachability
        .expect("reachability per function")
}

#[test]
fn chains_cycles_interior_pointers_stacks_and_untracked_memory() {
    let mut c = Case::new();
    // f0: global → A → B → C.
    let a = c.block(0x000, 32, 0);
    let bb = c.block(0x040, 32, 0);
    let cc = c.block(0x080, 32, 0);
    c.pointer(APP + 0x10, a);
    c.pointer(a + 8, bb);
    c.pointer(bb + 16, cc);
    // f1: an unreachable cycle D ↔ E.
    let d = c.block(0x100, 48, 1);
    let e = c.block(0x140, 48, 1);
    c.pointer(d, e);
    c.pointer(e, d);
    // f2: F held by an interior pointer from a global.
    let f = c.block(0x200, 64, 2);
    c.pointer(APP + 0x18, f + 40);
    // f3: G on the live stack, H only below the stack pointer (dead).
    let g = c.block(0x300, 16, 3);
    let h = c.block(0x340, 16, 4);
    c.pointer(STACK + 0x90, g);
    c.pointer(STACK + 0x20, h);
    // f5: I only in untracked memory.
    let i = c.block(0x400, 24, 5);
    c.pointer(0x5000_0010, i);
    // f6: a leaked list J → K → L: J unreferenced, K and L referenced.
    let j = c.block(0x500, 32, 6);
    let k = c.block(0x540, 32, 6);
    let l = c.block(0x580, 32, 6);
    c.pointer(j, k);
    c.pointer(k, l);

    for memory64 in [false, true] {
        let r = c.report(memory64);
        let f0 = function(&r, 0);
        assert_eq!(f0.reachable, t(3, 96), "{f0:?}");
        assert_eq!(f0.unreachable, t(0, 0));
        let f1 = function(&r, 1);
        assert_eq!(f1.unreachable, t(2, 96), "a cycle is unreachable");
        assert_eq!(
            f1.unreferenced,
            t(0, 0),
            "each block of a cycle is referenced"
        );
        assert_eq!(function(&r, 2).reachable, t(1, 64), "interior pointer");
        assert_eq!(function(&r, 3).reachable, t(1, 16), "live stack");
        let f4 = function(&r, 4);
        assert_eq!(f4.unreachable, t(1, 16), "below the stack pointer is dead");
        assert_eq!(f4.unreferenced, t(1, 16));
        let f5 = function(&r, 5);
        assert_eq!(f5.held_by_untracked, t(1, 24));
        assert_eq!(f5.reachable, t(0, 0));
        let f6 = function(&r, 6);
        assert_eq!(f6.unreachable, t(3, 96));
        assert_eq!(f6.unreferenced, t(1, 32), "only the list's head");

        let section = r.reachability().expect("the reachability section");
        assert_eq!(section.totals.total(), section.blocks, "classes add up");
        assert_eq!(section.totals.unreachable, t(6, 208));
        assert_eq!(section.totals.unreferenced, t(2, 48));
        assert_eq!(section.totals.reachable, t(5, 176));
        assert_eq!(section.totals.held_by_untracked, t(1, 24));
        // Holders: the module's data (no PDB, no PE headers: module+offset), the
        // thread, untracked memory.
        let global = section
            .holders
            .iter()
            .find(|h| h.kind == RootKind::Global)
            .expect("a global holder");
        assert_eq!(global.root, "app.exe");
        assert_eq!(global.allocations, 4);
        assert_eq!(global.chain.root, "app.exe+0x10");
        assert_eq!(global.chain.links.len(), 1);
        let thread = section
            .holders
            .iter()
            .find(|h| h.kind == RootKind::Stack)
            .unwrap();
        assert_eq!(thread.root, "thread 77");
        assert!(
            thread
                .chain
                .root
                .starts_with("thread 77 stack at 0x30000090"),
            "{}",
            thread.chain.root
        );
        let untracked = section
            .holders
            .iter()
            .find(|h| h.kind == RootKind::Untracked)
            .unwrap();
        assert_eq!(untracked.allocations, 1);
        assert_eq!(untracked.chain.root, "untracked memory at 0x50000010");
        // The chain to C runs global → A → B → C, each link naming where the next
        // pointer lies.
        let m = &r.leak().unwrap().modules[0];
        let view = m.reach.as_ref().expect("module view");
        assert_eq!(view.reachability.total().allocations, 12);
        assert!(section
            .warnings
            .iter()
            .any(|w| w.contains("does not declare the tracker's own memory")));
    }
}

#[test]
fn a_long_chain_keeps_its_ends_and_names_every_pointer_offset() {
    let mut c = Case::new();
    // A global → block 11 → block 10 → … → block 0: the holder's chain goes to the
    // first block by address, twelve links, of which the middle five are left out.
    let addrs: Vec<u64> = (0..12u64).map(|n| c.block(0x40 * n, 32, 0)).collect();
    c.pointer(APP + 0x8, addrs[11]);
    for n in (1..12).rev() {
        c.pointer(addrs[n] + 24, addrs[n - 1]);
    }
    let r = c.report(true);
    let s = r.reachability().unwrap();
    assert_eq!(s.totals.reachable, t(12, 384));
    let h = &s.holders[0];
    assert_eq!(h.allocations, 12);
    assert_eq!(h.chain.root, "app.exe+0x8");
    assert_eq!(h.chain.links_omitted, 5);
    let kept: Vec<u64> = h.chain.links.iter().map(|l| l.address.0).collect();
    assert_eq!(
        kept,
        vec![addrs[11], addrs[10], addrs[9], addrs[8], addrs[2], addrs[1], addrs[0]]
    );
    assert!(h.chain.links[..6].iter().all(|l| l.next_at == Some(24)));
    assert_eq!(h.chain.links[6].next_at, None);
    assert!(h
        .chain
        .links
        .iter()
        .all(|l| l.stack.is_some() && l.size == 32));
}

#[test]
fn a_dump_without_memory_says_why_there_is_no_scan() {
    let start = filetime(1_700_000_000);
    let mut b = AllocationStreamBuilder::new(start, start + 10_000_000);
    b.allocate(HEAP, 32, 1, AllocatorKind::CRuntime, &[APP + 0x1010]);
    let dump = SynthDump {
        modules: vec![SynthModule::new(r"C:\app\app.exe", APP, 0x10000)],
        stream: Some(b.build()),
        system_info: true,
        ..Default::default()
    };
    let r = analyze_synth(dump.build(), &AnalyzeOptions::default());
    let s = r
        .sections
        .iter()
        .find(|s| s.script == "reachability")
        .unwrap();
    let e = s.result.as_ref().unwrap_err();
    assert!(e.message().contains("full-memory dump"), "{}", e.message());
    assert!(r.leak().unwrap().modules[0].reach.is_none());
}

#[test]
fn overlapping_blocks_are_not_judged_and_named() {
    let mut c = Case::new();
    let a = c.block(0x000, 64, 0);
    c.block(0x020, 64, 1); // overlaps A
    c.pointer(APP + 0x10, a);
    let r = c.report(false);
    let s = r.reachability().unwrap();
    assert_eq!(s.totals.not_judged, t(1, 64));
    assert_eq!(s.totals.reachable, t(1, 64));
    assert_eq!(s.totals.total(), s.blocks);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("overlaps an earlier block")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn unreachable_blocks_in_a_full_dump_prove_a_leak() {
    let mut c = Case::new();
    // A leaked list, and a block the global still holds.
    let j = c.block(0x500, 32, 6);
    let k = c.block(0x540, 32, 6);
    c.pointer(j, k);
    let a = c.block(0x000, 64, 0);
    c.pointer(APP + 0x10, a);
    let r = c.report(true);
    assert_eq!(
        r.verdict.status,
        VerdictStatus::Leak,
        "{}",
        r.verdict.headline
    );
    assert_eq!(r.verdict.confidence, Confidence::High);
    assert_eq!(r.verdict.modules[0].name, "app.exe");
    assert_eq!(r.verdict.modules[0].unreachable, Some(t(2, 64)));
    verdict_says(
        &r,
        "64 bytes in blocks that no pointer",
        EvidenceKind::Unreachable,
    );

    // Without a full-memory dump the same blocks prove nothing: a root may lie in
    // memory the dump lacks.
    let r = c.report(false);
    assert_ne!(
        r.verdict.status,
        VerdictStatus::Leak,
        "{}",
        r.verdict.headline
    );
    crate::verdict::consistent(&r);
}

#[test]
fn blocks_all_held_by_one_global_are_named_as_its_cache() {
    let mut c = Case::new();
    c.steadily = true;
    for n in 0..24u64 {
        let b = c.block(0x40 * n, 48, 0);
        c.pointer(APP + 0x20 + 8 * n, b);
    }
    let r = c.report(true);
    assert_eq!(
        r.verdict.status,
        VerdictStatus::PossibleLeak,
        "{}",
        r.verdict.headline
    );
    let m = &r.verdict.modules[0];
    assert_eq!(m.held_by.as_deref(), Some("app.exe"));
    assert_eq!(m.unreachable, Some(t(0, 0)));
    verdict_says(
        &r,
        "app.exe is held by app.exe: a cache or list",
        EvidenceKind::HeldBy,
    );
}

/// The verdict's headline says `text`, its evidence has one of `kind`, and it does
/// not contradict itself.
fn verdict_says(r: &DumpReport, text: &str, kind: EvidenceKind) {
    assert!(r.verdict.headline.contains(text), "{}", r.verdict.headline);
    assert!(r.verdict.evidence.iter().any(|e| e.kind == kind));
    crate::verdict::consistent(r);
}

/// The directory entry `(size, rva)` of stream `ty` in a dump's bytes.
fn stream_entry(bytes: &[u8], ty: u32) -> (usize, usize) {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let (count, dir) = (u32_at(8) as usize, u32_at(12) as usize);
    (0..count)
        .map(|i| dir + 12 * i)
        .find(|&e| u32_at(e) == ty)
        .map(|e| (u32_at(e + 4) as usize, u32_at(e + 8) as usize))
        .expect("stream present")
}

#[test]
fn absurd_blocks_and_broken_memory_lists_are_named_not_fatal() {
    let mut c = Case::new();
    let a = c.block(0x000, 32, 0);
    c.pointer(APP + 0x10, a);
    for n in 1..4 {
        c.block(0x100 * n, 16, 1);
    }
    // A block of a terabyte, and one whose end passes the top of the address space.
    c.blocks.push((0x10_0000_0000, 1 << 40, APP + 0x1000));
    c.blocks.push((u64::MAX - 8, 64, APP + 0x1000));
    let dump = SynthDump {
        modules: vec![SynthModule::new(r"C:\app\app.exe", APP, 0x10000)],
        stream: Some(c.stream()),
        system_info: true,
        memory: vec![(APP, c.globals.clone()), (HEAP, c.heap.clone())],
        ..Default::default()
    };
    let mut bytes = dump.build();
    // The heap range's descriptor (the second) claims 4 GiB: past the end of the file.
    let (_, list) = stream_entry(&bytes, 5);
    let d = list + 4 + 16;
    bytes[d + 8..d + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    let s = r.reachability().expect("the scan still runs");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("MemoryListStream descriptor 1")
                && w.contains("past the end of the file")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("passes the top of the address space")),
        "{:?}",
        s.warnings
    );
    assert_eq!(s.totals.total(), s.blocks, "classes add up");
    assert_eq!(s.blocks.allocations, 6);
    assert_eq!(s.blocks_without_memory.allocations, 2);
    // The heap block is still found (its range is read up to the end of the file).
    assert_eq!(s.totals.reachable, t(1, 32));
    assert!(r.leak().is_some(), "the other sections are unharmed");
}

/// A small full dump with every class, holders and a long chain: the pages'
/// reachability views, for the browser test.
pub(crate) fn showcase() -> Vec<u8> {
    let mut c = Case::new();
    c.steadily = true;
    for n in 0..12u64 {
        let b = c.block(0x40 * n, 48, 0);
        c.pointer(APP + 0x20 + 8 * n, b);
    }
    let addrs: Vec<u64> = (0..12u64)
        .map(|n| c.block(0x400 + 0x40 * n, 32, 1))
        .collect();
    c.pointer(STACK + 0x90, addrs[11]);
    for n in (1..12).rev() {
        c.pointer(addrs[n] + 24, addrs[n - 1]);
    }
    let j = c.block(0x800, 32, 2);
    let k = c.block(0x840, 32, 2);
    c.pointer(j, k);
    let i = c.block(0x900, 24, 3);
    c.pointer(0x5000_0010, i);
    c.bytes(true)
}

#[test]
fn results_are_identical_at_any_thread_count() {
    // 3,000 blocks over 192 KiB of heap, one in sixteen words a pointer to a random
    // place in a random block, a few roots: many levels, many blocks reached from
    // several parents in one level.
    let mut c = Case::new();
    c.heap = vec![0; 0x3_0000];
    let mut state = 0x1234_5678_u64;
    let mut rand = move |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let blocks: Vec<(u64, u64)> = (0..3000u64)
        .map(|i| (c.block(0x40 * i, 32 + 8 * rand(3), i % 7), 0))
        .collect();
    for &(a, _) in &blocks {
        for w in 0..4 {
            if rand(4) == 0 {
                let (t, _) = blocks[rand(blocks.len() as u64) as usize];
                c.pointer(a + 8 * w, t + 8 * rand(4));
            }
        }
    }
    for g in 0..8 {
        let (t, _) = blocks[rand(blocks.len() as u64) as usize];
        c.pointer(APP + 0x40 + 8 * g, t);
    }
    c.pointer(STACK + 0x88, blocks[7].0);
    c.pointer(0x5000_0020, blocks[11].0);
    let bytes = c.bytes(true);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let r = pool.install(|| analyze_synth(bytes.clone(), &AnalyzeOptions::default()));
        (
            serde_json::to_string(r.reachability().unwrap()).unwrap(),
            serde_json::to_string(r.leak().unwrap()).unwrap(),
        )
    };
    let one = run(1);
    assert!(one.0.contains("\"links\""));
    for threads in [2, 3, 8] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn a_32_bit_dump_is_scanned_with_4_byte_pointers() {
    // app.exe at 0x400000 with one global pointing (with a 4-byte value) to A, which
    // points to B at a 4-byte aligned offset; C is leaked. An 8-byte read would see
    // none of these pointers.
    const APP32: u64 = 0x40_0000;
    const HEAP32: u64 = 0x20_0000;
    let put32 =
        |buf: &mut Vec<u8>, at: usize, v: u32| buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let mut globals = vec![0u8; 0x40];
    let mut heap = vec![0u8; 0x100];
    put32(&mut globals, 0x0c, HEAP32 as u32); // A, at an offset no 8-byte read aligns to
    put32(&mut heap, 0x04, (HEAP32 + 0x40) as u32); // A → B
    put32(&mut heap, 0x84, 0xdead_beef);
    let mut c = Case::new();
    for (offset, f) in [(0x00u64, 0u64), (0x40, 1), (0x80, 2)] {
        c.blocks
            .push((HEAP32 + offset, 16, APP32 + 0x1000 + 0x10 * f));
    }
    let dump = SynthDump {
        modules: vec![SynthModule::new(r"C:\app\app.exe", APP32, 0x10000)],
        stream: Some(c.stream()),
        system_info: true,
        processor_architecture: Some(0), // x86
        memory: vec![(APP32, globals), (HEAP32, heap)],
        memory64: true,
        ..Default::default()
    };
    let r = analyze_synth(dump.build(), &AnalyzeOptions::default());
    let s = r.reachability().expect("scanned");
    assert_eq!(s.pointer_size, 4);
    assert_eq!(s.totals.reachable, t(2, 32));
    assert_eq!(s.totals.unreachable, t(1, 16));
    assert_eq!(s.totals.unreferenced, t(1, 16));
    let h = &s.holders[0];
    assert_eq!(h.chain.root, "app.exe+0xc");
    assert_eq!(h.allocations, 2);
}
