//! The reachability section: what the scan read, the blocks by class, the roots
//! that hold the most, with their chains, and the stacks with the most unreachable
//! bytes. Chains are shared with the leak section's module cards.

use crate::model::{Chain, Holder, Reachability, ReachabilityTotals};
use crate::report::view::{kv, omitted_text, KeyValue};
use crate::report::RenderError;
use crate::text::{approx_bytes, percent, thousands, with_bytes};
use askama::Template;

/// One link of a chain, for the page.
pub struct LinkView {
    pub address: String,
    pub size: String,
    /// The stack's id (not a link: only sampled stacks have an anchor).
    pub stack: Option<String>,
    pub next_at: Option<String>,
}

/// A holder row: the root, what it holds, and its chain.
pub struct HolderView {
    pub root: String,
    pub kind: &'static str,
    pub allocations: String,
    pub bytes: String,
    pub chain_root: String,
    pub links: Vec<LinkView>,
    pub links_omitted: Option<String>,
}

pub fn holder_views(holders: &[Holder]) -> Vec<HolderView> {
    holders
        .iter()
        .map(|h| {
            let Chain {
                root,
                links,
                links_omitted,
                ..
            } = &h.chain;
            HolderView {
                root: h.root.clone(),
                kind: h.kind.label(),
                allocations: thousands(h.allocations),
                bytes: thousands(h.bytes),
                chain_root: root.clone(),
                links: links
                    .iter()
                    .map(|l| LinkView {
                        address: format!("0x{:x}", l.address.0),
                        size: thousands(l.size),
                        stack: l.stack.map(|s| s.to_string()),
                        next_at: l.next_at.map(|o| format!("+0x{o:x}")),
                    })
                    .collect(),
                links_omitted: (*links_omitted > 0)
                    .then(|| format!("… {links_omitted} more blocks …")),
            }
        })
        .collect()
}

/// The classes as rows: name, allocations, bytes, share of bytes.
pub struct ClassRow {
    pub class: &'static str,
    pub meaning: &'static str,
    pub allocations: String,
    pub bytes: String,
    pub share: String,
    /// Width of the bar, 0–100.
    pub bar: u64,
    pub css: &'static str,
}

pub fn class_rows(t: &ReachabilityTotals) -> Vec<ClassRow> {
    let whole = t.total().bytes;
    let bar = |b: u64| (b * 100).checked_div(whole).unwrap_or(0);
    let mut rows = vec![
        (
            "unreachable",
            "no pointer leads to it: leaked",
            t.unreachable,
            "unreachable",
        ),
        (
            "of which unreferenced",
            "head of a leaked structure: fix first",
            t.unreferenced,
            "unreferenced",
        ),
        (
            "reachable",
            "held by a global, a stack or a register",
            t.reachable,
            "reachable",
        ),
        (
            "held by untracked memory",
            "weaker: may be a stale pointer",
            t.held_by_untracked,
            "untracked",
        ),
    ];
    if !t.not_judged.is_zero() {
        rows.push((
            "not judged",
            "overlaps another block",
            t.not_judged,
            "notjudged",
        ));
    }
    rows.into_iter()
        .map(|(class, meaning, x, css)| ClassRow {
            class,
            meaning,
            allocations: thousands(x.allocations),
            bytes: thousands(x.bytes),
            share: percent(x.bytes, whole),
            bar: bar(x.bytes),
            css,
        })
        .collect()
}

struct StackRow {
    stack: Option<String>,
    module: String,
    function: String,
    unreachable: String,
    unreferenced: String,
    of_total: String,
}

#[derive(Template)]
#[template(path = "sections/reachability.html")]
struct ReachabilityPage {
    summary: Vec<KeyValue>,
    classes: Vec<ClassRow>,
    warnings: Vec<String>,
    holders: Vec<HolderView>,
    holders_omitted: Option<String>,
    stacks: Vec<StackRow>,
    stacks_omitted: Option<String>,
}

/// Renders the section into `out`.
pub fn render(r: &Reachability, out: &mut String) -> Result<(), RenderError> {
    let s = &r.scanned;
    let summary = vec![
        kv(
            "Blocks scanned",
            with_bytes(r.blocks.allocations, r.blocks.bytes),
        ),
        kv(
            "Memory read",
            format!(
                "{} in {} ranges ({}), {}-byte pointers",
                approx_bytes(s.captured),
                thousands(r.memory_ranges),
                r.memory_streams.join(", "),
                r.pointer_size
            ),
        ),
        kv(
            "Roots",
            format!(
                "module data {}, live stacks {}, thread blocks {}, untracked memory {}",
                approx_bytes(s.modules),
                approx_bytes(s.live_stacks),
                approx_bytes(s.thread_blocks),
                approx_bytes(s.untracked)
            ),
        ),
        kv(
            "Not roots",
            format!(
                "dead stack frames {}, tracker memory {}",
                approx_bytes(s.dead_stacks),
                if r.tracker_regions_declared {
                    approx_bytes(s.tracker)
                } else {
                    "not declared by the tracker".to_owned()
                }
            ),
        ),
    ];
    let stacks = r
        .unreachable_stacks
        .iter()
        .map(|u| StackRow {
            stack: u.stack.map(|s| s.to_string()),
            module: u.module.clone(),
            function: u.function.clone().unwrap_or_default(),
            unreachable: with_bytes(u.unreachable.allocations, u.unreachable.bytes),
            unreferenced: thousands(u.unreferenced.allocations),
            of_total: format!(
                "{} of {}",
                thousands(u.unreachable.allocations),
                thousands(u.total.allocations)
            ),
        })
        .collect();
    ReachabilityPage {
        summary,
        classes: class_rows(&r.totals),
        warnings: r.warnings.clone(),
        holders: holder_views(&r.holders),
        holders_omitted: omitted_text(&r.holders_omitted, "roots"),
        stacks,
        stacks_omitted: omitted_text(&r.unreachable_stacks_omitted, "stacks"),
    }
    .render_into(out)?;
    Ok(())
}
