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

    /// Makes room for `n` more frames, exactly (a chunk's frames are copied once,
    /// their number known).
    pub(super) fn reserve_exact(&mut self, n: usize) {
        self.values.reserve_exact(n);
        let words = self.values.len().saturating_add(n).div_ceil(64);
        self.symbolic
            .reserve_exact(words.saturating_sub(self.symbolic.len()));
    }

    /// Appends `other`'s frames.
    pub(super) fn append(&mut self, other: &Frames) {
        let base = self.values.len();
        self.values.extend_from_slice(&other.values);
        self.symbolic.resize(self.values.len().div_ceil(64), 0);
        for (w, &word) in other.symbolic.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let i = base + w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.symbolic[i / 64] |= 1 << (i % 64);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::{Frame, Frames};

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
        a.append(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), want);
        let mut pushed = Frames::default();
        want.iter().for_each(|&f| pushed.push(f));
        assert_eq!(a, pushed);
        assert_eq!(a.range(3..5).unwrap().collect::<Vec<_>>(), want[3..5]);
        assert!(a.range(199..201).is_none());
        assert_eq!(a.get(200), None);
        a.renumber_symbolic(|n| n + 1);
        assert_eq!(a.get(0), Some(Frame::Symbolic(1)));
        assert_eq!(a.get(1), Some(Frame::Address(u64::MAX - 1)));
    }
}
