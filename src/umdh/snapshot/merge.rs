//! The merge of the chunks in file order: what a chunk cannot know alone (the
//! heap open at its start, whether a stack was printed before, its first line's
//! number, the log's numbers of its BackTraces and texts) settled chunk by chunk,
//! and the last renumbering once every chunk is merged ([`finish`]).

use super::chunk::{Chunk, INHERITED, NO_HEAP};
use super::parts::Parts;
use super::texts::{IdMap, Texts};
use super::warnings::LineWarnings;
use super::{Frame, Snapshot, Trace};
use crate::umdh::{UmdhError, MAX_WARNINGS};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The merge of the chunks, in file order.
pub(super) struct Merger<'p> {
    path: &'p Path,
    pub(super) snap: Snapshot,
    ids: IdMap<u64>,
    /// The IDs first referenced in the wave being merged, not yet in `ids` (a
    /// small table: the serial merge does not look up the log's, which outgrows
    /// the caches; they join `ids` after the wave, beside its parallel work).
    wave_ids: IdMap<u64>,
    text_ids: HashMap<String, u32>,
    /// First line and count of allocation lines without a stack, per trace whose
    /// stack is not printed yet.
    unresolved: HashMap<u32, (u64, u64)>,
    open: Option<usize>,
    saw_header: bool,
    /// Lines before the chunk being merged.
    offset: u64,
    pub(super) bytes: u128,
    warnings: LineWarnings,
    /// The sums by size and by heap of each trace, added after each wave.
    sums: Parts,
    /// Per trace: its stack is laid out (`frames` is set): checked for every
    /// trace a chunk references, here rather than in the traces (48 bytes each, a
    /// cache miss per trace of a million).
    defined: Vec<bool>,
    /// The distinct texts of resolved frames (numbered in order of first printing by
    /// `finish`).
    symbolic: Texts,
    /// The texts first printed in the wave being merged, numbered after those of
    /// `symbolic` (which they join after the wave, like `wave_ids`).
    wave_texts: Texts,
    /// The frames laid out so far (written into the log's frames after each wave).
    frames: usize,
    first_ansi_line: Option<u64>,
    first_bad_utf16_line: Option<u64>,
}

impl<'p> Merger<'p> {
    /// An empty merge of the log at `path`, whose encoding is `encoding`.
    pub(super) fn new(path: &'p Path, encoding: &'static str) -> Self {
        Merger {
            path,
            snap: Snapshot {
                encoding,
                ..Default::default()
            },
            ids: IdMap::default(),
            wave_ids: IdMap::default(),
            text_ids: HashMap::new(),
            unresolved: HashMap::new(),
            open: None,
            saw_header: false,
            offset: 0,
            bytes: 0,
            warnings: LineWarnings::default(),
            sums: Parts::new(),
            defined: Vec::new(),
            symbolic: Texts::default(),
            wave_texts: Texts::default(),
            frames: 0,
            first_ansi_line: None,
            first_bad_utf16_line: None,
        }
    }

    fn warn(&mut self, line: u64, message: impl std::fmt::Display) {
        self.warnings.push(line, message);
    }

    /// Finds the resolved-frame texts and the BackTrace IDs of chunk `c` that the
    /// log knows (from the waves merged before), so that the serial merge looks up
    /// only the others; run in parallel as the chunks are read.
    pub(super) fn find_known(&self, c: &mut Chunk) {
        c.known = (0..c.symbolic.len() as u32)
            .map(|i| {
                let (text, hash) = c.symbolic.get(i);
                self.symbolic.find(text, hash).unwrap_or(u32::MAX)
            })
            .collect();
        c.known_traces = c
            .traces
            .iter_mut()
            .map(|lt| {
                let known = lt.num.and_then(|n| self.ids.get(&n).copied());
                if known.is_none() {
                    lt.id_string = Some(lt.id.as_str().to_owned());
                }
                known.unwrap_or(u32::MAX)
            })
            .collect();
    }

    /// Completes a wave of merged chunks (file order), in parallel: adds their sums
    /// by size and by heap ([`Parts`]) and writes the frames of the stacks they
    /// print first into the log's frames, translated to the log's text numbers.
    /// Returns the time of the serial steps.
    pub(super) fn add_wave(&mut self, merged: &[Chunk]) -> Duration {
        let lens: Vec<usize> = merged
            .iter()
            .map(|c| c.layout.iter().map(|r| r.len()).sum())
            .collect();
        let frames = &mut self.snap.frames;
        let heaps = &self.snap.heaps;
        let sums = &mut self.sums;
        let (ids, wave_ids) = (&mut self.ids, &mut self.wave_ids);
        let (symbolic, wave_texts) = (&mut self.symbolic, &mut self.wave_texts);
        let (((), ()), serial) = rayon::join(
            || {
                rayon::join(
                    || sums.add_wave(merged, heaps),
                    || {
                        // The wave's new IDs and texts join the log's (the texts
                        // keep their numbers: none was there).
                        ids.extend(wave_ids.drain());
                        for i in 0..wave_texts.len() as u32 {
                            let (text, hash) = wave_texts.get(i);
                            symbolic.intern(text, hash);
                        }
                        *wave_texts = Texts::default();
                    },
                )
            },
            || {
                frames.extend_parallel(&lens, |i, w| {
                    let c = &merged[i];
                    for r in &c.layout {
                        for &f in &c.frames[r.clone()] {
                            w.push(match f {
                                Frame::Address(a) => Frame::Address(a),
                                Frame::Symbolic(i) => Frame::Symbolic(c.numbers[i as usize]),
                            });
                        }
                    }
                })
            },
        );
        serial
    }

    /// Merges chunk `c` (the next in file order); what is left of it is dropped by
    /// the caller, in parallel (freeing a chunk's many small buffers is not free).
    pub(super) fn merge(&mut self, c: &mut Chunk) -> Result<(), UmdhError> {
        let off = self.offset;
        if let Some((line, message)) = c.fatal.take() {
            return Err(UmdhError::Line {
                path: self.path.to_owned(),
                line: off + line,
                message,
            });
        }
        if let Some((line, h)) = c.header.take().filter(|_| !self.saw_header) {
            self.saw_header = true;
            if h.logtime.is_some() && h.logtime_filetime.is_none() {
                self.warn(off + line, "the Logtime is not a date and time YYYY-MM-DD HH:MM: the snapshot cannot be placed in time");
            }
            self.snap.header = h;
        }
        self.snap.modules.append(&mut c.modules);

        // Heaps.
        let inherited_heap = self.open.map_or(0, |g| self.snap.heaps[g].heap);
        if let Some(g) = self.open {
            self.snap.heaps[g].merge(&c.inherited);
            if let Some(line) = c.start_while_inherited {
                self.warn(
                    off + line,
                    format_args!("heap {inherited_heap:X} has no \"End of data\" line before the next heap starts"),
                );
            }
            if c.closes_inherited {
                self.snap.heaps[g].complete = true;
            }
        }
        let base = self.snap.heaps.len();
        self.snap.heaps.append(&mut c.heaps);
        self.open = match c.open {
            INHERITED => self.open,
            NO_HEAP => None,
            h => Some(base + h as usize),
        };

        // Traces.
        let mut global = Vec::with_capacity(c.traces.len());
        let mut defs: Vec<(u64, usize)> = Vec::new();
        for (l, lt) in c.traces.iter_mut().enumerate() {
            let next = self.snap.traces.len() as u32;
            let g = match (c.known_traces.get(l), lt.num) {
                (Some(&g), _) if g != u32::MAX => g,
                (_, Some(n)) => *self.wave_ids.entry(n).or_insert(next),
                (_, None) => *self
                    .text_ids
                    .entry(lt.id.as_str().to_owned())
                    .or_insert(next),
            };
            if g == next {
                self.snap.traces.push(Trace {
                    id: lt
                        .id_string
                        .take()
                        .unwrap_or_else(|| lt.id.as_str().to_owned()),
                    frames: None,
                });
                self.defined.push(false);
            }
            global.push(g);
            let gi = g as usize;
            let mut dups: Vec<u64> = std::mem::take(&mut lt.dups);
            if self.defined[gi] {
                if let Some((line, _)) = &lt.def {
                    dups.insert(0, *line);
                }
            } else if let Some((line, _)) = &lt.def {
                defs.push((*line, l));
            }
            for line in dups {
                let id = self.snap.traces[gi].id.clone();
                self.warn(
                    off + line,
                    format_args!(
                        "the stack of BackTrace{id} is printed a second time: the first one is kept"
                    ),
                );
            }
        }
        // References before a stack is printed, of stacks not printed before this
        // chunk.
        for &(l, line, count) in &c.pending {
            let g = global[l as usize];
            if !self.defined[g as usize] {
                self.unresolved.entry(g).or_insert((off + line, 0)).1 += count;
            }
        }
        // The stacks first printed here, in file order (so the frames are laid out
        // the same way whatever the chunks).
        defs.sort_unstable();
        // The log's number of each of the chunk's resolved-frame texts: those of
        // earlier waves found in parallel, the others numbered here. Provisional:
        // `finish` numbers them again in order of first printing.
        let mut numbers = std::mem::take(&mut c.known);
        numbers.resize(c.symbolic.len(), u32::MAX);
        let before = self.symbolic.len() as u32;
        for (i, n) in numbers.iter_mut().enumerate() {
            if *n == u32::MAX {
                let (text, hash) = c.symbolic.get(i as u32);
                *n = before + self.wave_texts.intern(text, hash).0;
            }
        }
        c.numbers = numbers;
        // Where the stacks go in the log's frames; the caller copies them there.
        for (line, l) in defs {
            let g = global[l];
            let gi = g as usize;
            let Some((_, range)) = &c.traces[l].def else {
                continue;
            };
            let start = self.frames;
            self.frames += range.len();
            c.layout.push(range.clone());
            self.snap.traces[gi].frames = Some(start..self.frames);
            self.defined[gi] = true;
            if self.unresolved.is_empty() {
                continue;
            }
            if let Some((first, count)) = self.unresolved.remove(&g) {
                let id = self.snap.traces[gi].id.clone();
                self.warn(
                    first,
                    format_args!("BackTrace{id} is referenced here ({count} allocation lines) before its stack is printed on line {}", off + line),
                );
            }
        }
        // The sums by size and by heap are added after the wave's merge, in
        // parallel ([`Merger::add_wave`]).
        c.global = global;
        c.heap_base = base;
        c.inherited_heap = inherited_heap;

        self.bytes += c.bytes;
        self.snap.allocations += c.allocations;
        self.snap.overhead = self.snap.overhead.saturating_add(c.overhead);
        self.snap.max_address = self.snap.max_address.max(c.max_address);
        self.warnings.append(std::mem::take(&mut c.warnings), off);
        if self.first_ansi_line.is_none() {
            self.first_ansi_line = c.first_ansi_line.map(|l| off + l);
        }
        if self.first_bad_utf16_line.is_none() {
            self.first_bad_utf16_line = c.first_bad_utf16_line.map(|l| off + l);
        }
        self.offset += c.lines;
        Ok(())
    }
}

/// The snapshot of the chunks merged: its sums put in one order, its texts
/// numbered in order of first printing, its warnings in line order.
pub(super) fn finish(mut m: Merger<'_>) -> Result<Snapshot, UmdhError> {
    let path = m.path;
    // The resolved-frame texts numbered in order of first printing (the order of
    // the frames), whatever the chunks; texts only in stacks printed a second time
    // are dropped.
    let texts = std::mem::take(&mut m.symbolic);
    let mut order = vec![u32::MAX; texts.len()];
    let symbolic = &mut m.snap.symbolic;
    m.snap.frames.renumber_symbolic(|i| {
        let o = &mut order[i as usize];
        if *o == u32::MAX {
            *o = symbolic.len() as u32;
            symbolic.push(String::from_utf8_lossy(texts.get(i).0).into_owned());
        }
        *o
    });
    // The tables that numbered the IDs and texts are freed before the sums are
    // put in order (which copies them: the peak of the read).
    drop(texts);
    drop(order);
    m.ids = IdMap::default();
    m.text_ids = HashMap::new();
    m.defined = Vec::new();
    // The sums by trace and key, one entry per pair.
    (m.snap.sizes, m.snap.by_heap) = std::mem::replace(&mut m.sums, Parts::empty()).finish();
    let last = m.offset;
    m.snap.bytes = m.bytes as u64;
    m.snap.lines = last;
    let mut warnings = std::mem::take(&mut m.warnings).finish();
    if let Some(open) = m.open {
        let h = m.snap.heaps[open].heap;
        warnings.push((last, format!("the log ends inside the data of heap {h:X} (no \"End of data\" line): it is truncated; what was read is reported")));
    }
    let mut unresolved: Vec<(u32, (u64, u64))> = m.unresolved.drain().collect();
    unresolved.sort_by_key(|(_, (line, _))| *line);
    for &(trace, (line, count)) in unresolved.iter().take(MAX_WARNINGS) {
        let id = &m.snap.traces[trace as usize].id;
        warnings.push((line, format!("BackTrace{id} is referenced here ({count} allocation lines) but its stack is never printed: its allocations are counted under \"(no stack)\"")));
    }
    if unresolved.len() > MAX_WARNINGS {
        let (line, _) = unresolved[MAX_WARNINGS].1;
        warnings.push((
            line,
            format!(
                "{} more BackTraces referenced but never printed are not listed (the first {MAX_WARNINGS} are); their allocations are counted under \"(no stack)\" too",
                crate::text::thousands((unresolved.len() - MAX_WARNINGS) as u64)
            ),
        ));
    }
    if !m.saw_header {
        warnings.push((
            1,
            "no \"// UMDH: version …\" header: the process id, machine and Logtime are unknown"
                .to_owned(),
        ));
    }
    if let Some(l) = m.first_ansi_line {
        warnings.push((l, "the text is not UTF-8 from this line on: read as the Windows ANSI code page (Windows-1252)".to_owned()));
    }
    if let Some(l) = m.first_bad_utf16_line {
        warnings.push((
            l,
            "the UTF-16 text has an unpaired surrogate or a dangling byte: replaced by U+FFFD"
                .to_owned(),
        ));
    }
    m.snap.warnings = warnings
        .into_iter()
        .map(|(line, message)| format!("{}:{line}: {message}", path.display()))
        .collect();
    Ok(m.snap)
}
