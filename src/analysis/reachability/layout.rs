//! What every captured address is, for the scan: the tracker's own memory, a
//! thread's live or dead stack, a thread environment block, a module's writable
//! data, a read-only part of an image — or, where none of these is, a tracked block
//! or untracked memory.
//!
//! Areas are painted by precedence, highest first: tracker memory (never a root,
//! even inside a block), stacks (a thread stack the tracker saw allocated is still a
//! stack: its live part a root, its dead part stale), then blocks (looked up apart),
//! then thread environment blocks, module images, and untracked memory.

use std::collections::BTreeMap;

/// What an address outside every tracked block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// The tracker's own bookkeeping: skipped.
    Tracker,
    /// Below a thread's stack pointer: stale frames, skipped.
    DeadStack,
    /// From a thread's stack pointer to its stack base: a root (thread index).
    LiveStack(u32),
    /// A thread environment block (TLS slots): a root (thread index).
    ThreadBlock(u32),
    /// A writable part of a module image: globals, a root (module index).
    ModuleData(u32),
    /// A read-only part of an image (code, constants, headers): skipped.
    ImageReadOnly,
}

impl Area {
    /// Areas that hide blocks under them (painted above blocks).
    pub fn above_blocks(self) -> bool {
        matches!(self, Area::Tracker | Area::DeadStack | Area::LiveStack(_))
    }
}

/// The painted areas: disjoint, sorted by address.
#[derive(Debug, Default)]
pub struct Layout {
    pub start: Vec<u64>,
    pub end: Vec<u64>,
    pub area: Vec<Area>,
}

/// Builds a [`Layout`] from areas given in any order with their precedence.
#[derive(Default)]
pub struct Painter {
    /// start → (end, area); disjoint.
    painted: BTreeMap<u64, (u64, Area)>,
}

impl Painter {
    /// Paints `area` over `[start, end)` wherever nothing of higher precedence is:
    /// callers paint in order of precedence, highest first.
    pub fn paint(&mut self, start: u64, end: u64, area: Area) {
        let mut at = start;
        while at < end {
            // The painted interval holding `at`, or the next one after it.
            let holding = self
                .painted
                .range(..=at)
                .next_back()
                .filter(|(_, &(e, _))| e > at)
                .map(|(_, &(e, _))| e);
            if let Some(e) = holding {
                at = e;
                continue;
            }
            let next = self
                .painted
                .range(at..)
                .next()
                .map(|(&s, _)| s)
                .unwrap_or(u64::MAX);
            let stop = next.min(end);
            self.painted.insert(at, (stop, area));
            at = stop;
        }
    }

    pub fn finish(self) -> Layout {
        let mut layout = Layout::default();
        for (s, (e, a)) in self.painted {
            layout.start.push(s);
            layout.end.push(e);
            layout.area.push(a);
        }
        layout
    }
}

impl Layout {
    /// The first area that ends after `address`.
    pub fn first_after(&self, address: u64) -> usize {
        self.end.partition_point(|&e| e <= address)
    }

    /// The area holding `address`.
    pub fn at(&self, address: u64) -> Option<Area> {
        let i = self.first_after(address);
        (i < self.start.len() && self.start[i] <= address).then(|| self.area[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_precedence_wins_and_gaps_are_filled() {
        let mut p = Painter::default();
        p.paint(100, 200, Area::Tracker);
        p.paint(50, 300, Area::ModuleData(0));
        p.paint(150, 160, Area::ImageReadOnly);
        let l = p.finish();
        assert_eq!(l.start, vec![50, 100, 200]);
        assert_eq!(l.end, vec![100, 200, 300]);
        assert_eq!(l.at(120), Some(Area::Tracker));
        assert_eq!(l.at(250), Some(Area::ModuleData(0)));
        assert_eq!(l.at(300), None);
        assert_eq!(l.at(10), None);
    }
}
