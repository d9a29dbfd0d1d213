//! A cheap hash for keys that are already numbers or tuples of numbers (heap
//! handles, (owner, heap) pairs, stack shapes, stack hashes, BackTrace IDs): a
//! multiply-fold per word, a few instructions where SipHash was most of the cost of
//! a lookup. The keys come from the input, but the maps only find sums and numbers:
//! no output depends on a hash or on a map's order.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The multiply-fold hasher ([`FoldMap`], [`FoldSet`]).
#[derive(Clone, Copy, Default)]
pub struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        let p = u128::from(self.0 ^ n) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (p as u64) ^ ((p >> 64) as u64).rotate_left(17);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map with [`FoldHasher`].
pub type FoldMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// A set with [`FoldHasher`].
pub type FoldSet<K> = HashSet<K, BuildHasherDefault<FoldHasher>>;
