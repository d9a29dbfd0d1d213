//! The reachability scan as verdict evidence (docs/verdict.md): blocks no pointer
//! reaches are proof of a leak, whatever their age; blocks that are all held by one
//! global are a cache or list, named by that global.

use super::{share, thousands, DOMINANT_SHARE_PERCENT};
use crate::model::{DumpReport, Evidence, EvidenceKind, ModuleLeak, RootKind, Totals};

/// A global holding at least this share (percent) of a module's reachable bytes
/// names the module's memory as that global's cache or list.
pub const HOLDER_SHARE_PERCENT: f64 = 90.0;

/// Whether the dump's scan can prove anything: a full-memory dump
/// (Memory64ListStream) that holds every block's memory. Elsewhere a root may lie
/// in memory the dump lacks, and "unreachable" would overstate.
pub fn complete(report: &DumpReport) -> bool {
    report.reachability().is_some_and(|s| {
        s.blocks_without_memory.allocations == 0
            && s.memory_streams.iter().any(|m| m == "Memory64ListStream")
    })
}

/// The module's unreachable blocks, when the dump was scanned.
pub fn unreachable(m: &ModuleLeak) -> Option<Totals> {
    m.reach.as_ref().map(|r| r.reachability.unreachable)
}

/// The global that holds nearly all of the module's reachable blocks, when the
/// module has no unreachable block.
pub fn held_by(m: &ModuleLeak) -> Option<String> {
    let r = m.reach.as_ref()?;
    let t = &r.reachability;
    if t.unreachable.allocations > 0 {
        return None;
    }
    let held = t.reachable.bytes + t.held_by_untracked.bytes;
    let top = r.holders.first().filter(|h| h.kind == RootKind::Global)?;
    (held > 0 && share(top.bytes, held) >= HOLDER_SHARE_PERCENT).then(|| top.root.clone())
}

/// The modules the scan proves leak: each holds a dominant share of the unreachable
/// bytes of the real modules. Also returns those bytes' total.
pub fn proven<'a>(
    modules: impl Iterator<Item = &'a ModuleLeak> + Clone,
) -> (Vec<&'a ModuleLeak>, Totals) {
    let mut total = Totals::default();
    for m in modules.clone() {
        if let Some(u) = unreachable(m) {
            total.merge(u);
        }
    }
    let proven = modules
        .filter(|m| {
            unreachable(m).is_some_and(|u| {
                u.bytes > 0 && share(u.bytes, total.bytes) >= DOMINANT_SHARE_PERCENT
            })
        })
        .collect();
    (proven, total)
}

/// The scan's evidence about one module the verdict names.
pub fn evidence(m: &ModuleLeak) -> Option<Evidence> {
    let r = m.reach.as_ref()?;
    let u = r.reachability.unreachable;
    if u.allocations > 0 {
        return Some(Evidence {
            kind: EvidenceKind::Unreachable,
            module: Some(m.name.clone()),
            text: format!(
                "{} holds {} blocks ({} bytes) that no pointer in the process's memory, stacks or registers reaches: it can never free them ({} of them unreferenced, the heads of leaked structures).",
                m.name,
                thousands(u.allocations),
                thousands(u.bytes),
                thousands(r.reachability.unreferenced.allocations),
            ),
        });
    }
    held_by(m).map(|root| Evidence {
        kind: EvidenceKind::HeldBy,
        module: Some(m.name.clone()),
        text: format!(
            "Every block of {} is still reachable, nearly all through {root}: a cache or list that keeps them, not memory the process lost; look at what adds to {root} and what should remove from it.",
            m.name
        ),
    })
}
