//! Names for roots: the global a pointer lies in (from the module's PDB, else its
//! PE section), the thread whose stack, registers or environment block hold it, or
//! the untracked memory range.

use super::layout::{Area, Layout};
use super::scan::{priority, root_address, root_priority, RootKey};
use crate::dump::memory::DumpMemory;
use crate::dump::ThreadInfo;
use crate::model::{ModuleMap, RootKind};
use crate::pe::PeSection;
use crate::symbols::{ModuleIdentity, ModuleSymbols, Symbolizer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A root as holders group it: one global, one thread, one range of untracked
/// memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootGroup {
    pub name: String,
    pub kind: RootKind,
}

/// Names roots; symbols are loaded for a module the first time one of its globals
/// is named.
pub struct RootNamer<'a> {
    pub modules: &'a ModuleMap,
    pub threads: &'a [ThreadInfo],
    pub layout: &'a Layout,
    pub memory: &'a DumpMemory<'a>,
    /// Writable sections of each module image, when the dump holds its headers.
    pub sections: &'a HashMap<u32, Vec<PeSection>>,
    pub symbolizer: &'a Symbolizer,
    pub reader: &'a (dyn Fn(u64, usize) -> Option<Vec<u8>> + Sync),
    pub loaded: Mutex<HashMap<u32, Arc<ModuleSymbols>>>,
}

impl RootNamer<'_> {
    fn symbols(&self, module: u32) -> Arc<ModuleSymbols> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded
            .entry(module)
            .or_insert_with(|| {
                self.symbolizer.load(
                    &ModuleIdentity::of(self.modules.get(module as usize)),
                    Some(self.reader),
                )
            })
            .clone()
    }

    /// The module and variable (or section) a global root lies in: `(group, exact)`.
    fn global(&self, module: u32, address: u64) -> (String, String) {
        let m = self.modules.get(module as usize);
        let rva = address.saturating_sub(m.base.0);
        if let Ok(rva32) = u32::try_from(rva) {
            if let Some((start, name)) = self.symbols(module).global_at(rva32) {
                let group = format!("{}!{name}", m.name);
                let exact = with_offset(&group, u64::from(rva32 - start));
                return (group, exact);
            }
            if let Some(section) = self
                .sections
                .get(&module)
                .and_then(|s| s.iter().find(|s| s.rva <= rva32 && rva32 < s.end))
            {
                let group = format!("{}!{}", m.name, section.name);
                let exact = with_offset(&group, u64::from(rva32 - section.rva));
                return (group, exact);
            }
        }
        (m.name.clone(), format!("{}+0x{rva:x}", m.name))
    }

    fn thread_id(&self, thread: u32) -> u32 {
        self.threads.get(thread as usize).map_or(0, |t| t.id)
    }

    /// The group a root belongs to, and the exact root (with its offset).
    pub fn name(&self, key: RootKey) -> (RootGroup, String) {
        let address = root_address(key);
        let kind = match root_priority(key) {
            priority::GLOBAL => RootKind::Global,
            priority::UNTRACKED => RootKind::Untracked,
            _ => RootKind::Stack,
        };
        let (group, exact) = match root_priority(key) {
            priority::REGISTER => {
                let (thread, register) = ((address / 64) as u32, (address % 64) as usize);
                let t = self.threads.get(thread as usize);
                let reg = t
                    .and_then(|t| t.registers.get(register))
                    .map_or("?", |r| r.0);
                let id = self.thread_id(thread);
                (
                    format!("thread {id}"),
                    format!("thread {id} register {reg}"),
                )
            }
            priority::UNTRACKED => {
                let i = self.memory.ranges.partition_point(|r| r.end() <= address);
                let group = match self.memory.ranges.get(i) {
                    Some(r) => format!("untracked memory 0x{:x}\u{2013}0x{:x}", r.base.0, r.end()),
                    None => "untracked memory".to_owned(),
                };
                (group, format!("untracked memory at 0x{address:x}"))
            }
            _ => match self.layout.at(address) {
                Some(Area::ModuleData(m)) => self.global(m, address),
                Some(Area::LiveStack(t)) => {
                    let id = self.thread_id(t);
                    let sp = self.threads[t as usize].stack_pointer.unwrap_or(address);
                    (
                        format!("thread {id}"),
                        format!(
                            "thread {id} stack at 0x{address:x} (sp+0x{:x})",
                            address.saturating_sub(sp)
                        ),
                    )
                }
                Some(Area::ThreadBlock(t)) => {
                    let id = self.thread_id(t);
                    let teb = self.threads[t as usize].teb;
                    (
                        format!("thread {id}"),
                        format!(
                            "thread {id} environment block (TEB+0x{:x})",
                            address.saturating_sub(teb)
                        ),
                    )
                }
                _ => (format!("0x{address:x}"), format!("0x{address:x}")),
            },
        };
        (RootGroup { name: group, kind }, exact)
    }
}

fn with_offset(name: &str, offset: u64) -> String {
    if offset == 0 {
        name.to_owned()
    } else {
        format!("{name}+0x{offset:x}")
    }
}
