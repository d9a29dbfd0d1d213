//! The distinct texts of already-resolved frames (`module!symbol+offset …`), each
//! kept once: a chunk interns the frames it reads (one entry per distinct text, not
//! per frame), and the merge maps each chunk's texts to the log's once per distinct
//! text. A realistic log prints hundreds of thousands of distinct frames a million
//! times over (docs/performance.md, case 6): a `String` per frame, or a per-frame
//! lookup in the merge (which is serial), was most of the reading time.

use super::sums::prefetch;

/// A map keyed by a number (a BackTrace ID's value).
pub(super) type IdMap<K> = crate::hash::FoldMap<K, u32>;

/// The hash texts are interned by.
#[inline]
pub(super) fn text_hash(text: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text)
}

/// A slot of [`Texts`]' table: a text's hash, where it is in the arena and its
/// number; `id` [`EMPTY`] for a free slot. The probe finds the text's place in the
/// same cache line as its hash: one memory access fewer per frame than a map from
/// hash to number, then to place (the tables of a chunk outgrow the caches).
#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    start: usize,
    end: usize,
    id: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE: Slot = Slot {
    hash: 0,
    start: 0,
    end: 0,
    id: EMPTY,
};

/// Distinct texts numbered in order of first interning, stored one after another,
/// found by hash in an open-addressing table (linear probing, at most half full).
pub(super) struct Texts {
    /// The texts, UTF-8 (they are read from checked lines).
    arena: Vec<u8>,
    /// Per text: its end in `arena` (its start is the previous one's end) and hash.
    ends: Vec<(usize, u64)>,
    slots: Vec<Slot>,
}

impl Default for Texts {
    fn default() -> Self {
        Texts {
            arena: Vec::new(),
            ends: Vec::new(),
            slots: vec![FREE; 16],
        }
    }
}

impl Texts {
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Text `i` and its hash.
    pub(super) fn get(&self, i: u32) -> (&[u8], u64) {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1].0 };
        let (end, hash) = self.ends[i];
        (&self.arena[start..end], hash)
    }

    /// The slot of `text` (hash `hash`), or the free slot where it would go.
    #[inline]
    fn probe(&self, text: &[u8], hash: u64) -> usize {
        let mask = self.slots.len() - 1;
        // The high bits: the low ones of xxh3 are as good, but a table grown by
        // doubling then keeps neighbours apart.
        let mut i = (hash >> 32) as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.id == EMPTY || (s.hash == hash && self.arena[s.start..s.end] == *text) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The number of `text` (whose hash is `hash`), if it is here.
    pub(super) fn find(&self, text: &[u8], hash: u64) -> Option<u32> {
        let s = self.slots[self.probe(text, hash)];
        (s.id != EMPTY).then_some(s.id)
    }

    /// The number of `text` (whose hash is `hash`), and whether it is new.
    pub(super) fn intern(&mut self, text: &[u8], hash: u64) -> (u32, bool) {
        let i = self.probe(text, hash);
        if self.slots[i].id != EMPTY {
            return (self.slots[i].id, false);
        }
        let next = self.ends.len() as u32;
        let start = self.arena.len();
        self.arena.extend_from_slice(text);
        self.ends.push((self.arena.len(), hash));
        self.slots[i] = Slot {
            hash,
            start,
            end: self.arena.len(),
            id: next,
        };
        if self.ends.len() * 2 > self.slots.len() {
            self.grow();
        }
        (next, true)
    }

    fn grow(&mut self) {
        let grown = vec![FREE; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, grown);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.id != EMPTY) {
            let mut i = (s.hash >> 32) as usize & mask;
            while self.slots[i].id != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Asks for the slot where `hash` starts its probe to be brought into the cache:
    /// a stack's resolved frames are interned when the stack ends, by when it is
    /// there.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        let i = (hash >> 32) as usize & (self.slots.len() - 1);
        prefetch(&self.slots[i]);
    }

    /// Asks for the text in the slot where `hash` starts its probe to be brought into
    /// the cache, when the slot holds that hash (the slot itself prefetched before).
    #[inline]
    pub(super) fn prefetch_text(&self, hash: u64) {
        let s = &self.slots[(hash >> 32) as usize & (self.slots.len() - 1)];
        if s.id != EMPTY && s.hash == hash {
            if let Some(b) = self.arena.get(s.start) {
                prefetch(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once_tells_collisions_apart_and_grows() {
        let mut t = Texts::default();
        assert_eq!(t.intern(b"a!f+1", text_hash(b"a!f+1")), (0, true));
        assert_eq!(t.intern(b"b!g+2", text_hash(b"b!g+2")), (1, true));
        assert_eq!(t.intern(b"a!f+1", text_hash(b"a!f+1")), (0, false));
        // A different text with the same hash is told apart.
        assert_eq!(t.intern(b"c!h+3", text_hash(b"a!f+1")), (2, true));
        assert_eq!(t.intern(b"c!h+3", text_hash(b"a!f+1")), (2, false));
        assert_eq!(t.get(1).0, b"b!g+2");
        assert_eq!(t.find(b"c!h+3", text_hash(b"a!f+1")), Some(2));
        assert_eq!(t.find(b"d!i+4", text_hash(b"a!f+1")), None);
        assert_eq!(t.find(b"d!i+4", text_hash(b"d!i+4")), None);

        let all: Vec<&[u8]> = (0..3).map(|i| t.get(i).0).collect();
        assert_eq!(all, [&b"a!f+1"[..], b"b!g+2", b"c!h+3"]);

        // Past the first tables (grown several times): every text found again.
        let mut u = Texts::default();
        for k in 0..1000u32 {
            let s = format!("m!f{k}+1");
            assert_eq!(u.intern(s.as_bytes(), text_hash(s.as_bytes())), (k, true));
        }
        for k in (0..1000u32).rev() {
            let s = format!("m!f{k}+1");
            assert_eq!(u.find(s.as_bytes(), text_hash(s.as_bytes())), Some(k));
            assert_eq!(u.intern(s.as_bytes(), text_hash(s.as_bytes())), (k, false));
        }
        assert_eq!(u.len(), 1000);
    }
}
