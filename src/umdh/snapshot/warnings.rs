//! A snapshot log's warnings about its lines: at most [`MAX_WARNINGS`] listed, the
//! first by line, and the others counted, whatever the chunks: each chunk keeps its
//! first, the merge keeps the first of those, and [`LineWarnings::finish`] says how
//! many were left out. A log of millions of malformed lines gives a report of a few
//! hundred lines of warnings, and a message is made only for a warning that may be
//! listed.

use crate::umdh::MAX_WARNINGS;
use std::fmt::Display;

/// Warnings as (line, message), the first [`MAX_WARNINGS`] by line kept.
#[derive(Debug, Default)]
pub(super) struct LineWarnings {
    /// At most twice [`MAX_WARNINGS`] between compactions, in the order added.
    kept: Vec<(u64, String)>,
    /// The last line among `kept`.
    last: u64,
    /// Warnings left out, never to be listed.
    dropped: u64,
}

impl LineWarnings {
    /// Adds a warning about `line`.
    pub(super) fn push(&mut self, line: u64, message: impl Display) {
        // With MAX_WARNINGS kept before it, a warning about a later line is never
        // listed: counted, its message never made.
        if self.kept.len() >= MAX_WARNINGS && line > self.last {
            self.dropped += 1;
            return;
        }
        self.kept.push((line, message.to_string()));
        self.last = self.last.max(line);
        if self.kept.len() > 2 * MAX_WARNINGS {
            self.compact();
        }
    }

    /// Adds `other`'s warnings, its lines `offset` lines further on.
    pub(super) fn append(&mut self, other: LineWarnings, offset: u64) {
        self.dropped += other.dropped;
        for (line, message) in other.kept {
            self.push(offset + line, message);
        }
    }

    /// Keeps the first [`MAX_WARNINGS`] by line (the order added among one line's).
    fn compact(&mut self) {
        self.kept.sort_by_key(|(line, _)| *line);
        self.dropped += self.kept.len().saturating_sub(MAX_WARNINGS) as u64;
        self.kept.truncate(MAX_WARNINGS);
        self.last = self.kept.last().map_or(0, |(line, _)| *line);
    }

    /// The warnings listed, in line order, and one that counts those left out.
    pub(super) fn finish(mut self) -> Vec<(u64, String)> {
        self.compact();
        if self.dropped > 0 {
            self.kept.push((
                self.last,
                format!(
                    "{} more warnings about later lines are not listed (the first {MAX_WARNINGS} are)",
                    crate::text::thousands(self.dropped)
                ),
            ));
        }
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Warnings added in any order, or split over parts appended with offsets, list
    /// the same first ones by line and count the same rest.
    #[test]
    fn the_first_by_line_are_kept_whatever_the_order_and_the_parts() {
        let lines: Vec<u64> = (0..1000).map(|i| (i * 7919) % 1000 + 1).collect();
        let mut shuffled = LineWarnings::default();
        for &l in &lines {
            shuffled.push(l, format!("w{l}"));
        }
        let mut parts = LineWarnings::default();
        for start in (0..1000u64).step_by(300) {
            let mut part = LineWarnings::default();
            for l in start..(start + 300).min(1000) {
                part.push(l + 1 - start, format!("w{}", l + 1));
            }
            parts.append(part, start);
        }
        let want: Vec<(u64, String)> = (1..=MAX_WARNINGS as u64)
            .map(|l| (l, format!("w{l}")))
            .chain([(
                MAX_WARNINGS as u64,
                format!("800 more warnings about later lines are not listed (the first {MAX_WARNINGS} are)"),
            )])
            .collect();
        assert_eq!(shuffled.finish(), want);
        assert_eq!(parts.finish(), want);
        let mut few = LineWarnings::default();
        few.push(9, "b");
        few.push(3, "a");
        assert_eq!(few.finish(), [(3, "a".to_owned()), (9, "b".to_owned())]);
    }
}
