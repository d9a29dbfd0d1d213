//! Names for roots: the global a pointer lies in (from the module's PDB, else its
//! PE section), the thread whose stack, registers or environment block hold it, or
//! the untracked memory range.
//!
//! Holders group roots ([`GroupKey`]: one variable, one thread, one memory range)
//! without formatting anything per block: a dump can have hundreds of thousands of
//! distinct root words. Names are formatted once per group, and the exact root
//! (with its offset) only for the chains a report shows.

use super::layout::{Area, Layout};
use super::scan::{priority, root_address, root_priority, RootKey};
use crate::dump::memory::DumpMemory;
use crate::dump::ThreadInfo;
use crate::model::{ModuleMap, RootKind};
use crate::pe::PeSection;
use crate::symbols::ModuleSymbols;
use std::collections::HashMap;
use std::sync::Arc;

/// A root as holders group it: one global, one thread, one range of untracked
/// memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootGroup {
    pub name: String,
    pub kind: RootKind,
}

/// What a global root lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GlobalAt {
    /// The variable starting at this RVA (from the PDB).
    Variable(u32),
    /// The section starting at this RVA (no PDB name).
    Section(u32),
    /// Somewhere in the module (no PDB, no section headers).
    Module,
}

/// The group of a root, cheap to compute and compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKey {
    Global(u32, GlobalAt),
    Thread(u32),
    /// A captured memory range, by index.
    Untracked(usize),
    /// An address none of the above holds (not expected: a root lies in one).
    Other(u64),
}

/// Names roots from what the scan knew about the dump.
pub struct RootNamer<'a> {
    pub modules: &'a ModuleMap,
    pub threads: &'a [ThreadInfo],
    pub layout: &'a Layout,
    pub memory: &'a DumpMemory<'a>,
    /// Writable sections of each module image, when the dump holds its headers.
    pub sections: &'a HashMap<u32, Vec<PeSection>>,
    /// Symbols of the modules that hold global roots.
    pub symbols: &'a HashMap<u32, Arc<ModuleSymbols>>,
    /// Symbols of the modules whose code return addresses on the stacks point into.
    pub frame_symbols: &'a HashMap<u32, Arc<ModuleSymbols>>,
    pub pointer_size: u64,
}

impl RootNamer<'_> {
    /// The modules whose data holds one of `keys` (their symbols name globals).
    pub fn modules_of(layout: &Layout, keys: &[RootKey]) -> Vec<u32> {
        let mut out: Vec<u32> = keys
            .iter()
            .filter(|&&k| root_priority(k) == priority::GLOBAL)
            .filter_map(|&k| match layout.at(root_address(k)) {
                Some(Area::ModuleData(m)) => Some(m),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn thread_id(&self, thread: u32) -> u32 {
        self.threads.get(thread as usize).map_or(0, |t| t.id)
    }

    fn global_at(&self, module: u32, address: u64) -> (GlobalAt, u64) {
        let m = self.modules.get(module as usize);
        let rva = address.saturating_sub(m.base.0);
        let Ok(rva32) = u32::try_from(rva) else {
            return (GlobalAt::Module, rva);
        };
        if let Some((start, _)) = self.symbols.get(&module).and_then(|s| s.global_at(rva32)) {
            return (GlobalAt::Variable(start), u64::from(rva32 - start));
        }
        if let Some(section) = self
            .sections
            .get(&module)
            .and_then(|s| s.iter().find(|s| s.rva <= rva32 && rva32 < s.end))
        {
            return (
                GlobalAt::Section(section.rva),
                u64::from(rva32 - section.rva),
            );
        }
        (GlobalAt::Module, rva)
    }

    /// The group of a root.
    pub fn group_key(&self, key: RootKey) -> GroupKey {
        let address = root_address(key);
        match root_priority(key) {
            priority::REGISTER => GroupKey::Thread((address / 64) as u32),
            priority::UNTRACKED => {
                GroupKey::Untracked(self.memory.ranges.partition_point(|r| r.end() <= address))
            }
            _ => match self.layout.at(address) {
                Some(Area::ModuleData(m)) => GroupKey::Global(m, self.global_at(m, address).0),
                Some(Area::LiveStack(t)) | Some(Area::ThreadBlock(t)) => GroupKey::Thread(t),
                _ => GroupKey::Other(address),
            },
        }
    }

    /// The name of a group.
    pub fn group(&self, g: GroupKey) -> RootGroup {
        let (name, kind) = match g {
            GroupKey::Global(m, at) => (self.global_name(m, at), RootKind::Global),
            GroupKey::Thread(t) => (format!("thread {}", self.thread_id(t)), RootKind::Stack),
            GroupKey::Untracked(i) => (
                match self.memory.ranges.get(i) {
                    Some(r) => format!("untracked memory 0x{:x}\u{2013}0x{:x}", r.base.0, r.end()),
                    None => "untracked memory".to_owned(),
                },
                RootKind::Untracked,
            ),
            GroupKey::Other(a) => (format!("0x{a:x}"), RootKind::Untracked),
        };
        RootGroup { name, kind }
    }

    fn global_name(&self, module: u32, at: GlobalAt) -> String {
        let m = &self.modules.get(module as usize).name;
        match at {
            GlobalAt::Variable(start) => {
                let name = self
                    .symbols
                    .get(&module)
                    .and_then(|s| s.global_at(start))
                    .map(|(_, n)| n)
                    .unwrap_or_default();
                format!("{m}!{name}")
            }
            GlobalAt::Section(start) => {
                let name = self
                    .sections
                    .get(&module)
                    .and_then(|s| s.iter().find(|s| s.rva == start))
                    .map(|s| s.name.as_str())
                    .unwrap_or_default();
                format!("{m}!{name}")
            }
            GlobalAt::Module => m.clone(),
        }
    }

    /// The function whose stack frame holds `address`, when it can be told: the
    /// nearest word below it (towards the stack pointer) that is a return address
    /// into a function the module's PDB names. A function's locals lie above the
    /// return addresses of the calls it makes, so that word points into it. A stale
    /// return address left in an uninitialised local can mislead; without symbols
    /// nothing is said.
    fn frame_of(&self, sp: u64, address: u64) -> Option<String> {
        let ps = self.pointer_size;
        let mut at = address.checked_sub(ps)?;
        // A frame is rarely larger than this; looking further would only find
        // another function's return address.
        let lowest = sp.max(address.saturating_sub(64 * 1024));
        while at >= lowest {
            let bytes = self.memory.slice(at, ps)?;
            let value = if ps == 8 {
                u64::from_le_bytes(bytes.try_into().ok()?)
            } else {
                u64::from(u32::from_le_bytes(bytes.try_into().ok()?))
            };
            if let Some(m) = self.modules.find(crate::addr::VirtAddr(value)) {
                let module = self.modules.get(m);
                if let (false, Some(symbols)) =
                    (module.unloaded, self.frame_symbols.get(&(m as u32)))
                {
                    let rva = u32::try_from(value - module.base.0).ok()?;
                    // A return address: the call instruction lies just before it.
                    if let Some(outer) = symbols
                        .lookup(rva.checked_sub(1)?)
                        .and_then(|f| f.last().cloned())
                    {
                        return Some(format!("{}!{}", module.name, outer.function));
                    }
                }
            }
            at = at.checked_sub(ps)?;
        }
        None
    }

    /// The modules whose code a word of a stack between its pointer and a root
    /// points into: their symbols may name the frame that holds a root.
    pub fn code_modules_on_stacks(
        modules: &ModuleMap,
        threads: &[ThreadInfo],
        memory: &DumpMemory<'_>,
        ps: u64,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        for t in threads {
            let Some(sp) = t.stack_pointer else { continue };
            let end = t.stack_start.saturating_add(t.stack_size);
            let mut at = sp;
            while at < end && at < sp.saturating_add(1 << 20) {
                let Some(b) = memory.slice(at, ps) else { break };
                let v = if ps == 8 {
                    u64::from_le_bytes(b.try_into().unwrap_or_default())
                } else {
                    u64::from(u32::from_le_bytes(b.try_into().unwrap_or_default()))
                };
                if let Some(m) = modules.find(crate::addr::VirtAddr(v)) {
                    out.push(m as u32);
                }
                at += ps;
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The exact root, with its offset: `app.exe!g_cache+0x18`, `thread 12 stack at
    /// 0x… (sp+0x40)`, `thread 12 register rbx`, `untracked memory at 0x…`.
    pub fn exact(&self, key: RootKey) -> String {
        let address = root_address(key);
        match root_priority(key) {
            priority::REGISTER => {
                let (thread, register) = ((address / 64) as u32, (address % 64) as usize);
                let reg = self
                    .threads
                    .get(thread as usize)
                    .and_then(|t| t.registers.get(register))
                    .map_or("?", |r| r.0);
                format!("thread {} register {reg}", self.thread_id(thread))
            }
            priority::UNTRACKED => format!("untracked memory at 0x{address:x}"),
            _ => match self.layout.at(address) {
                Some(Area::ModuleData(m)) => {
                    let (at, offset) = self.global_at(m, address);
                    let name = self.global_name(m, at);
                    match (at, offset) {
                        (GlobalAt::Module, _) => format!("{name}+0x{offset:x}"),
                        (_, 0) => name,
                        _ => format!("{name}+0x{offset:x}"),
                    }
                }
                Some(Area::LiveStack(t)) => {
                    let sp = self.threads[t as usize].stack_pointer.unwrap_or(address);
                    let frame = self
                        .frame_of(sp, address)
                        .map(|f| format!(", in the frame of {f}"))
                        .unwrap_or_default();
                    format!(
                        "thread {} stack at 0x{address:x} (sp+0x{:x}){frame}",
                        self.thread_id(t),
                        address.saturating_sub(sp)
                    )
                }
                Some(Area::ThreadBlock(t)) => format!(
                    "thread {} environment block (TEB+0x{:x})",
                    self.thread_id(t),
                    address.saturating_sub(self.threads[t as usize].teb)
                ),
                _ => format!("0x{address:x}"),
            },
        }
    }
}
