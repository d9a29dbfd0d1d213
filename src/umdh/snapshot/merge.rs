//! The merge of the chunks in file order: what a chunk cannot know alone (the
//! heap open at its start, whether a stack was printed before, its first line's
//! number, the log's numbers of its BackTraces and texts) settled chunk by chunk,
//! and the last renumbering once every chunk is merged ([`finish`]).

use super::chunk::{Chunk, INHERITED, NO_HEAP};
use super::texts::{IdMap, Texts};
use super::{Snapshot, Trace, BUCKETS};
use crate::model::Totals;
use crate::umdh::UmdhError;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// The merge of the chunks, in file order.
pub(super) struct Merger<'p> {
    path: &'p Path,
    pub(super) snap: Snapshot,
    pub(super) ids: IdMap<u64>,
    text_ids: HashMap<String, u32>,
    /// First line and count of allocation lines without a stack, per trace whose
    /// stack is not printed yet.
    unresolved: HashMap<u32, (u64, u64)>,
    open: Option<usize>,
    saw_header: bool,
    /// Lines before the chunk being merged.
    offset: u64,
    pub(super) bytes: u128,
    warnings: Vec<(u64, String)>,
    /// Per trace: the heap of the sums not yet flushed into `by_heap`.
    cur_heap: Vec<(u64, Totals)>,
    /// Per trace: its stack is laid out (`frames` is set): checked for every
    /// trace a chunk references, here rather than in the traces (48 bytes each, a
    /// cache miss per trace of a million).
    defined: Vec<bool>,
    /// The distinct texts of resolved frames (numbered in order of first printing by
    /// `finish`).
    pub(super) symbolic: Texts,
    /// The entries of `snap.sizes` after their last [`sum_by_key`].
    sizes_summed: usize,
    /// The frames laid out so far (copied into the log's frames after each wave).
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
            text_ids: HashMap::new(),
            unresolved: HashMap::new(),
            open: None,
            saw_header: false,
            offset: 0,
            bytes: 0,
            warnings: Vec::new(),
            cur_heap: Vec::new(),
            defined: Vec::new(),
            symbolic: Texts::default(),
            sizes_summed: 0,
            frames: 0,
            first_ansi_line: None,
            first_bad_utf16_line: None,
        }
    }

    fn warn(&mut self, line: u64, message: impl std::fmt::Display) {
        self.warnings.push((line, message.to_string()));
    }

    /// Sums the size entries of one pair once they take more than dense rows
    /// would (a log of few stacks and many allocations repeats its pairs in every
    /// chunk), or twice as many as at the last sum: the entries stay within about
    /// twice the larger of the two. `end`: the last time, whatever their number.
    fn sum_sizes(&mut self, end: bool) {
        let traces = self.snap.traces.len();
        // The entries that take as much memory as a dense row per trace.
        let dense = traces.saturating_mul(BUCKETS * 16 / 24);
        let limit = dense
            .max(self.sizes_summed.saturating_mul(2))
            .saturating_add(1 << 16);
        let sizes = &mut self.snap.sizes;
        if sizes.len() > dense {
            // Summed in dense rows, which take less than the entries already do:
            // one pass, no sort.
            if !end && sizes.len() <= limit {
                return;
            }
            let mut rows = vec![[Totals::default(); BUCKETS]; traces];
            for &(t, b, s) in sizes.iter() {
                if let Some(r) = rows
                    .get_mut(t as usize)
                    .and_then(|r| r.get_mut(usize::from(b)))
                {
                    r.allocations += s.allocations;
                    r.bytes = r.bytes.wrapping_add(s.bytes);
                }
            }
            sizes.clear();
            for (t, row) in rows.iter().enumerate() {
                for (b, s) in row.iter().enumerate() {
                    if s.allocations > 0 {
                        // t < traces (a u32) and b < BUCKETS (9): exact casts.
                        sizes.push((t as u32, b as u8, *s));
                    }
                }
            }
        } else if end {
            sum_by_key(sizes);
        } else {
            return;
        }
        self.sizes_summed = sizes.len();
    }

    /// Adds the sums of a wave of merged chunks (file order) by size and by heap,
    /// in parallel: the size entries of each chunk (in any order: `sum_sizes` sums
    /// each pair), and the heap sums by slices of the traces, each slice going
    /// through the wave's heap entries in file order (a trace's sums in one heap
    /// are flushed when the heap changes; the entries are put in one order by
    /// `finish`).
    /// The time of the serial part (appending the entries) is added to `serial`.
    pub(super) fn add_wave_sums(&mut self, merged: &[Chunk], serial: &mut std::time::Duration) {
        let heaps = &self.snap.heaps;
        let slice = self
            .cur_heap
            .len()
            .div_ceil(rayon::current_num_threads() * 4)
            .max(1 << 12);
        let (sizes, by_heap): (Vec<_>, Vec<_>) = rayon::join(
            || {
                merged
                    .par_iter()
                    .map(|c| {
                        let mut out = Vec::new();
                        for (&g, h) in c.global.iter().zip(&c.hot) {
                            for (b, t) in h.sizes.iter().enumerate() {
                                if t.allocations > 0 {
                                    // b < BUCKETS (9): the cast is exact.
                                    out.push((g, b as u8, *t));
                                }
                            }
                        }
                        out
                    })
                    .collect()
            },
            || {
                self.cur_heap
                    .par_chunks_mut(slice)
                    .enumerate()
                    .map(|(i, cur)| {
                        let lo = i * slice;
                        let mut out = Vec::new();
                        for c in merged {
                            for &(t, h, sums) in &c.heap_entries {
                                let g = c.global[t as usize];
                                let Some(cur) =
                                    (g as usize).checked_sub(lo).and_then(|k| cur.get_mut(k))
                                else {
                                    continue;
                                };
                                let heap = match h {
                                    INHERITED => c.inherited_heap,
                                    NO_HEAP => 0,
                                    h => heaps[c.heap_base + h as usize].heap,
                                };
                                if cur.0 != heap || cur.1.allocations == 0 {
                                    if cur.1.allocations > 0 {
                                        out.push((g, cur.0, cur.1));
                                    }
                                    *cur = (heap, Totals::default());
                                }
                                cur.1.allocations += sums.allocations;
                                cur.1.bytes = cur.1.bytes.wrapping_add(sums.bytes);
                            }
                        }
                        out
                    })
                    .collect()
            },
        );
        let t0 = std::time::Instant::now();
        for s in sizes {
            self.snap.sizes.extend_from_slice(&s);
        }
        for h in by_heap {
            self.snap.by_heap.extend_from_slice(&h);
        }
        self.sum_sizes(false);
        *serial += t0.elapsed();
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
                (_, Some(n)) => *self.ids.entry(n).or_insert(next),
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
                self.cur_heap.push((0, Totals::default()));
                self.defined.push(false);
            }
            global.push(g);
            let gi = g as usize;
            let mut dups: Vec<u64> = std::mem::take(&mut lt.dups);
            if self.defined[gi] {
                if let Some((line, _)) = &lt.def {
                    dups.insert(0, *line);
                }
            } else {
                let h = &c.hot[l];
                if h.pending > 0 {
                    self.unresolved
                        .entry(g)
                        .or_insert((off + h.pending_line, 0))
                        .1 += h.pending;
                }
                if let Some((line, _)) = &lt.def {
                    defs.push((*line, l));
                }
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
        // The stacks first printed here, in file order (so the frames are laid out
        // the same way whatever the chunks).
        defs.sort_unstable();
        // The log's number of each of the chunk's resolved-frame texts: those of
        // earlier waves found in parallel, the others numbered here. Provisional:
        // `finish` numbers them again in order of first printing.
        let mut numbers = std::mem::take(&mut c.known);
        numbers.resize(c.symbolic.len(), u32::MAX);
        for (i, n) in numbers.iter_mut().enumerate() {
            if *n == u32::MAX {
                let (text, hash) = c.symbolic.get(i as u32);
                *n = self.symbolic.intern(text, hash).0;
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
        // parallel ([`Merger::add_wave_sums`]).
        c.global = global;
        c.heap_base = base;
        c.inherited_heap = inherited_heap;

        self.bytes += c.bytes;
        self.snap.allocations += c.allocations;
        self.snap.overhead = self.snap.overhead.saturating_add(c.overhead);
        self.snap.max_address = self.snap.max_address.max(c.max_address);
        self.warnings
            .extend(c.warnings.drain(..).map(|(l, m)| (off + l, m)));
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

/// Sorts (trace, key, sums) entries by trace and key and sums those of one pair
/// into one entry.
fn sum_by_key<K: Ord + Copy + Send>(entries: &mut Vec<(u32, K, Totals)>) {
    entries.par_sort_unstable_by_key(|&(trace, key, _)| (trace, key));
    entries.dedup_by(|next, kept| {
        let same = (next.0, next.1) == (kept.0, kept.1);
        if same {
            kept.2.allocations += next.2.allocations;
            kept.2.bytes = kept.2.bytes.wrapping_add(next.2.bytes);
        }
        same
    });
}

/// The snapshot of the chunks merged: its sums put in one order, its texts
/// numbered in order of first printing, its warnings in line order.
pub(super) fn finish(mut m: Merger<'_>) -> Result<Snapshot, UmdhError> {
    let path = m.path;
    for (g, (heap, sums)) in m.cur_heap.drain(..).enumerate() {
        if sums.allocations > 0 {
            m.snap.by_heap.push((g as u32, heap, sums));
        }
    }
    // The heap sums in one order whatever the cut (each chunk flushes them when it
    // meets another heap, so their order and splitting follow the chunks): by
    // trace and heap, one entry per pair.
    sum_by_key(&mut m.snap.by_heap);
    // The size sums likewise: by trace and bucket, one entry per pair.
    m.sum_sizes(true);
    m.snap.sizes.shrink_to_fit();
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
    let last = m.offset;
    m.snap.bytes = m.bytes as u64;
    m.snap.lines = last;
    let mut warnings = std::mem::take(&mut m.warnings);
    warnings.sort_by_key(|(line, _)| *line);
    if let Some(open) = m.open {
        let h = m.snap.heaps[open].heap;
        warnings.push((last, format!("the log ends inside the data of heap {h:X} (no \"End of data\" line): it is truncated; what was read is reported")));
    }
    let mut unresolved: Vec<(u32, (u64, u64))> = m.unresolved.drain().collect();
    unresolved.sort_by_key(|(_, (line, _))| *line);
    for (trace, (line, count)) in unresolved {
        let id = &m.snap.traces[trace as usize].id;
        warnings.push((line, format!("BackTrace{id} is referenced here ({count} allocation lines) but its stack is never printed: its allocations are counted under \"(no stack)\"")));
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
