//! Reachability: which outstanding blocks the process can still reach, which it can
//! never free, and what holds the rest (docs/reachability.md).
//!
//! A scan of a full-memory dump follows pointers from the roots (module data, live
//! thread stacks, registers, thread environment blocks, untracked memory) through
//! the tracked blocks. Every block falls into exactly one of `unreachable`,
//! `reachable`, `held_by_untracked` or `not_judged`, which add up to the blocks
//! scanned; `unreferenced` is the part of `unreachable` that no other block points
//! to: the heads of leaked structures.

use super::{Omitted, StackId, Totals};
use crate::addr::VirtAddr;
use serde::Serialize;

/// The blocks of a module, function or stack by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReachabilityTotals {
    /// No path from any root: the process can never free these (leaked).
    pub unreachable: Totals,
    /// Unreachable and not pointed to by any other block: a leaked structure's head,
    /// what to fix first. A part of `unreachable`, not added to it.
    pub unreferenced: Totals,
    /// Reachable from module data, a live stack, a register or a thread block.
    pub reachable: Totals,
    /// Reachable only through untracked memory (heap memory the tracker did not see
    /// allocated, possibly freed memory with stale pointers): weaker evidence.
    pub held_by_untracked: Totals,
    /// Blocks that could not be judged (they overlap another block, see the
    /// section's warnings). Absent when none.
    #[serde(skip_serializing_if = "Totals::is_zero")]
    pub not_judged: Totals,
}

impl ReachabilityTotals {
    pub fn merge(&mut self, other: &ReachabilityTotals) {
        self.unreachable.merge(other.unreachable);
        self.unreferenced.merge(other.unreferenced);
        self.reachable.merge(other.reachable);
        self.held_by_untracked.merge(other.held_by_untracked);
        self.not_judged.merge(other.not_judged);
    }

    /// Every block counted once (`unreferenced` is inside `unreachable`).
    pub fn total(&self) -> Totals {
        let mut t = self.unreachable;
        t.merge(self.reachable);
        t.merge(self.held_by_untracked);
        t.merge(self.not_judged);
        t
    }
}

/// What kind of root holds a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    /// A module's data: a global or static variable.
    Global,
    /// A thread: its live stack, its registers or its environment block (TLS slots).
    Stack,
    /// Memory outside every tracked block, module and stack.
    Untracked,
}

impl RootKind {
    pub fn label(self) -> &'static str {
        match self {
            RootKind::Global => "global",
            RootKind::Stack => "thread",
            RootKind::Untracked => "untracked memory",
        }
    }
}

/// One block on a chain from a root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    /// The block's address.
    pub address: VirtAddr,
    pub size: u64,
    /// The stack that allocated it (absent for records without a stack).
    pub stack: Option<StackId>,
    /// Offset inside this block of the pointer to the next link; absent on the last.
    pub next_at: Option<u64>,
}

/// The shortest reference chain from a root to a block: root → link → … → block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// The exact root: `app.exe!g_cache+0x18`, `thread 1234 stack (rsp+0x40)`,
    /// `untracked memory at 0x…`.
    pub root: String,
    /// Where the root's pointer lies (absent for a register).
    pub root_address: Option<VirtAddr>,
    /// The blocks, nearest the root first; the last is the block held.
    pub links: Vec<ChainLink>,
    /// Links left out of the middle of a long chain.
    #[serde(skip_serializing_if = "is_zero")]
    pub links_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A root that holds blocks of a module or stack, with the blocks it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// `app.exe!g_cache`, `thread 1234`, `untracked memory 0x…–0x…`.
    pub root: String,
    pub kind: RootKind,
    pub allocations: u64,
    pub bytes: u64,
    /// The chain to one of the blocks (the first, by address).
    pub chain: Chain,
}

/// Holders kept per module and per stack.
pub const TOP_HOLDERS: usize = 5;

/// What a module's or stack's reachability says, when the scan ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReachabilityView {
    pub reachability: ReachabilityTotals,
    /// The roots that hold the most bytes, most first.
    pub holders: Vec<Holder>,
    pub holders_omitted: Omitted,
}

/// Bytes of memory scanned, by what they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScannedMemory {
    /// Every captured byte.
    pub captured: u64,
    /// Inside tracked blocks (followed from the roots).
    pub blocks: u64,
    /// Module images (globals).
    pub modules: u64,
    /// Live stack parts, from the stack pointer up.
    pub live_stacks: u64,
    /// Stack below the stack pointer: dead frames, not scanned.
    pub dead_stacks: u64,
    /// Thread environment blocks.
    pub thread_blocks: u64,
    /// The tracker's own bookkeeping, declared in the stream: not scanned.
    pub tracker: u64,
    /// Everything else: untracked memory, scanned as weak roots.
    pub untracked: u64,
}

/// A block at the head of a leaked structure, summed per stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnreachableStack {
    pub stack: Option<StackId>,
    /// The module charged for the stack.
    pub module: String,
    /// The responsible function, when known.
    pub function: Option<String>,
    pub unreachable: Totals,
    pub unreferenced: Totals,
    /// Every outstanding block of the stack.
    pub total: Totals,
}

/// The reachability section of one dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reachability {
    /// 8 in a 64-bit process, 4 in a 32-bit one.
    pub pointer_size: u8,
    /// The memory streams read.
    pub memory_streams: Vec<String>,
    pub memory_ranges: u64,
    pub scanned: ScannedMemory,
    /// Outstanding blocks, and those whose own memory the dump does not hold (their
    /// pointers cannot be followed).
    pub blocks: Totals,
    pub blocks_without_memory: Totals,
    /// Whether the stream declares the tracker's own memory (format 1.3).
    pub tracker_regions_declared: bool,
    pub totals: ReachabilityTotals,
    /// The roots holding the most bytes over the whole dump.
    pub holders: Vec<Holder>,
    pub holders_omitted: Omitted,
    /// The stacks with the most unreachable bytes.
    pub unreachable_stacks: Vec<UnreachableStack>,
    pub unreachable_stacks_omitted: Omitted,
    /// What limits the result (missing memory, undeclared tracker memory, cut or
    /// overlapping ranges, overlapping blocks).
    pub warnings: Vec<String>,
}
