//! The frames of a snapshot's printed stacks, 8 bytes each.
//!
//! A [`Frame`] as an enum takes 16 bytes (a `u64` and its tag), and a log of a
//! million stacks of 24 frames holds 24 million of them: the frames were the
//! largest part of a read snapshot. Here each frame is its `u64` alone (the
//! address, or the number of a resolved frame's text), and which frames are
//! resolved is one bit per frame beside them, so every address stays exact.

use super::Frame;
use std::ops::Range;

/// Frames, innermost first per stack: each an address or a resolved frame's number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frames {
    /// The address, or the number of the resolved frame's text.
    values: Vec<u64>,
    /// Bit `i % 64` of word `i / 64`: frame `i` is [`Frame::Symbolic`]. Always
    /// `values.len().div_ceil(64)` words, the bits past the last frame clear, so
    /// that equal frames compare equal.
    symbolic: Vec<u64>,
}

impl Frames {
    /// The number of frames.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Frame `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Frame> {
        let v = *self.values.get(i)?;
        let word = self.symbolic.get(i / 64).copied().unwrap_or(0);
        Some(if (word >> (i % 64)) & 1 == 1 {
            // Only a `u32` is ever stored for a resolved frame.
            Frame::Symbolic(u32::try_from(v).unwrap_or(u32::MAX))
        } else {
            Frame::Address(v)
        })
    }

    /// The frames in `r`, or `None` when `r` reaches past the last frame.
    pub fn range(&self, r: Range<usize>) -> Option<impl ExactSizeIterator<Item = Frame> + '_> {
        if r.start > r.end || r.end > self.len() {
            return None;
        }
        Some(r.map(|i| self.get(i).unwrap_or(Frame::Address(0))))
    }

    /// Every frame, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Frame> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or(Frame::Address(0)))
    }

    pub fn push(&mut self, f: Frame) {
        let i = self.values.len();
        if i.is_multiple_of(64) {
            self.symbolic.push(0);
        }
        match f {
            Frame::Address(a) => self.values.push(a),
            Frame::Symbolic(n) => {
                self.values.push(u64::from(n));
                if let Some(w) = self.symbolic.last_mut() {
                    *w |= 1 << (i % 64);
                }
            }
        }
    }

    /// Appends parts of `lens[i]` frames each, in order, part `i` written by
    /// `fill(i, writer)` on the current rayon pool (`writer` takes exactly
    /// `lens[i]` frames; fewer leave addresses 0). Returns the time spent in the
    /// serial steps (making room, joining the parts' bits).
    pub(super) fn extend_parallel(
        &mut self,
        lens: &[usize],
        fill: impl Fn(usize, &mut FrameWriter<'_>) + Sync,
    ) -> std::time::Duration {
        use rayon::prelude::*;
        let t0 = std::time::Instant::now();
        let base = self.values.len();
        let total: usize = lens.iter().sum();
        self.values.reserve(total);
        self.symbolic.resize((base + total).div_ceil(64), 0);
        let mut serial = t0.elapsed();
        // The room made in parallel too: its pages are first touched here (a
        // serial `resize` of a wave's frames was most of the serial time left).
        self.values.par_extend(rayon::iter::repeat_n(0, total));
        // Each part's slice of the values, and its first frame.
        let mut rest = &mut self.values[base..];
        let mut parts = Vec::with_capacity(lens.len());
        let mut start = base;
        for &n in lens {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            parts.push((start, head));
            rest = tail;
            start += n;
        }
        let bits: Vec<(usize, Vec<u64>)> = parts
            .into_par_iter()
            .enumerate()
            .map(|(i, (start, values))| {
                let mut w = FrameWriter {
                    values,
                    len: 0,
                    shift: start % 64,
                    bits: Vec::new(),
                };
                fill(i, &mut w);
                (start / 64, w.bits)
            })
            .collect();
        let t1 = std::time::Instant::now();
        for (first, words) in bits {
            for (w, word) in words.into_iter().enumerate() {
                if let Some(s) = self.symbolic.get_mut(first + w) {
                    *s |= word;
                }
            }
        }
        serial += t1.elapsed();
        serial
    }

    /// Gives each resolved frame the number `f` makes of its number, in frame order.
    pub(super) fn renumber_symbolic(&mut self, mut f: impl FnMut(u32) -> u32) {
        for (w, &word) in self.symbolic.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(v) = self.values.get_mut(i) {
                    *v = u64::from(f(u32::try_from(*v).unwrap_or(u32::MAX)));
                }
            }
        }
    }
}

/// Writes one part of the frames [`Frames::extend_parallel`] appends: their values
/// in place, which are resolved in bits of the part's own, aligned on the words of
/// the frames' (the parts' words are joined after).
pub(super) struct FrameWriter<'a> {
    values: &'a mut [u64],
    len: usize,
    /// The bit of the part's first frame in its first word.
    shift: usize,
    bits: Vec<u64>,
}

impl FrameWriter<'_> {
    /// Writes the next frame (none past the part's end).
    pub(super) fn push(&mut self, f: Frame) {
        let Some(v) = self.values.get_mut(self.len) else {
            return;
        };
        match f {
            Frame::Address(a) => *v = a,
            Frame::Symbolic(n) => {
                *v = u64::from(n);
                let bit = self.shift + self.len;
                if self.bits.len() <= bit / 64 {
                    self.bits.resize(bit / 64 + 1, 0);
                }
                self.bits[bit / 64] |= 1 << (bit % 64);
            }
        }
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{Frame, Frames};

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
    }

    #[test]
    fn frames_read_back_as_pushed_and_appended() {
        let mut want = Vec::new();
        let mut a = Frames::default();
        let mut b = Frames::default();
        for i in 0..200u32 {
            let f = match i % 3 {
                0 => Frame::Symbolic(i),
                1 => Frame::Address(u64::MAX - u64::from(i)),
                _ => Frame::Address(u64::from(i)),
            };
            want.push(f);
            if i < 70 {
                a.push(f);
            } else {
                b.push(f);
            }
        }
        // `b` appended in parts.
        let b: Vec<Frame> = b.iter().collect();
        pool().install(|| {
            a.extend_parallel(&[50, 0, 80], |i, w| {
                let from = [0, 50, 50][i];
                for &f in &b[from..from + [50, 0, 80][i]] {
                    w.push(f);
                }
            })
        });
        assert_eq!(a.iter().collect::<Vec<_>>(), want);
        let mut pushed = Frames::default();
        want.iter().for_each(|&f| pushed.push(f));
        assert_eq!(a, pushed);
        assert_eq!(a.range(3..5).unwrap().collect::<Vec<_>>(), want[3..5]);
        assert!(a.range(199..201).is_none());
        assert_eq!(a.get(200), None);
        // The same frames written in parallel, in parts of uneven lengths.
        let mut par = Frames::default();
        par.push(Frame::Symbolic(7));
        let lens = [0, 1, 62, 64, 3, 0, 70];
        let total: usize = lens.iter().sum();
        let from: Vec<usize> = (0..lens.len()).map(|i| lens[..i].iter().sum()).collect();
        pool().install(|| {
            par.extend_parallel(&lens, |i, w| {
                for k in from[i]..from[i] + lens[i] {
                    w.push(want[k % want.len()]);
                }
            })
        });
        let mut serial = Frames::default();
        serial.push(Frame::Symbolic(7));
        (0..total).for_each(|k| serial.push(want[k % want.len()]));
        assert_eq!(par, serial);
        a.renumber_symbolic(|n| n + 1);
        assert_eq!(a.get(0), Some(Frame::Symbolic(1)));
        assert_eq!(a.get(1), Some(Frame::Address(u64::MAX - 1)));
    }
}
