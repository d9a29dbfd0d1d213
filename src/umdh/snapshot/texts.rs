//! The distinct texts of already-resolved frames (`module!symbol+offset …`), each
//! kept once: a chunk interns the frames it reads (one entry per distinct text, not
//! per frame), and the merge maps each chunk's texts to the log's once per distinct
//! text. A realistic log prints hundreds of thousands of distinct frames a million
//! times over (docs/performance.md, case 6): a `String` per frame, or a per-frame
//! lookup in the merge (which is serial), was most of the reading time.

use std::collections::HashMap;

/// A cheap hasher for keys that are already numbers: BackTrace IDs, and text hashes
/// (SipHash would be most of the cost of a lookup).
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// A map keyed by a number, with [`IdHasher`].
pub(super) type IdMap<K> = HashMap<K, u32, std::hash::BuildHasherDefault<IdHasher>>;

/// The hash texts are interned by.
#[inline]
pub(super) fn text_hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// Distinct texts numbered in order of first interning, stored one after another.
#[derive(Default)]
pub(super) struct Texts {
    arena: String,
    /// Per text: its end in `arena` (its start is the previous one's end) and hash.
    ends: Vec<(usize, u64)>,
    /// The first text of each hash.
    by_hash: IdMap<u64>,
    /// Texts whose hash an earlier, different text has (practically never).
    collided: HashMap<String, u32>,
}

impl Texts {
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Text `i` and its hash.
    pub(super) fn get(&self, i: u32) -> (&str, u64) {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1].0 };
        let (end, hash) = self.ends[i];
        (&self.arena[start..end], hash)
    }

    /// The number of `text` (whose hash is `hash`), if it is here.
    pub(super) fn find(&self, text: &str, hash: u64) -> Option<u32> {
        match self.by_hash.get(&hash) {
            None => None,
            Some(&i) if self.get(i).0 == text => Some(i),
            Some(_) => self.collided.get(text).copied(),
        }
    }

    /// The number of `text` (whose hash is `hash`), and whether it is new.
    pub(super) fn intern(&mut self, text: &str, hash: u64) -> (u32, bool) {
        let next = self.ends.len() as u32;
        match self.by_hash.get(&hash) {
            None => {
                self.by_hash.insert(hash, next);
            }
            Some(&i) if self.get(i).0 == text => return (i, false),
            Some(_) => match self.collided.get(text) {
                Some(&i) => return (i, false),
                None => {
                    self.collided.insert(text.to_owned(), next);
                }
            },
        }
        self.arena.push_str(text);
        self.ends.push((self.arena.len(), hash));
        (next, true)
    }

    /// The texts, in order.
    pub(super) fn into_strings(self) -> Vec<String> {
        (0..self.len() as u32)
            .map(|i| self.get(i).0.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once_and_survives_a_collision() {
        let mut t = Texts::default();
        assert_eq!(t.intern("a!f+1", text_hash("a!f+1")), (0, true));
        assert_eq!(t.intern("b!g+2", text_hash("b!g+2")), (1, true));
        assert_eq!(t.intern("a!f+1", text_hash("a!f+1")), (0, false));
        // A different text with the same hash is told apart.
        assert_eq!(t.intern("c!h+3", text_hash("a!f+1")), (2, true));
        assert_eq!(t.intern("c!h+3", text_hash("a!f+1")), (2, false));
        assert_eq!(t.get(1).0, "b!g+2");
        assert_eq!(t.find("c!h+3", text_hash("a!f+1")), Some(2));
        assert_eq!(t.find("d!i+4", text_hash("a!f+1")), None);
        assert_eq!(t.find("d!i+4", text_hash("d!i+4")), None);
        assert_eq!(t.into_strings(), ["a!f+1", "b!g+2", "c!h+3"]);
    }
}
