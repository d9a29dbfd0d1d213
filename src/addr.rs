//! Addresses in their different spaces.
//!
//! A frame in the allocation stream is a virtual address in the traced process; symbol
//! lookups want an offset relative to a module's base (an RVA); the dump file itself is
//! addressed by file offsets. Mixing them up is the classic bug of this field, so each
//! space has its own type and conversions are explicit and checked.

use serde::Serialize;
use std::fmt;

/// A virtual address in the address space of the process that was dumped.
///
/// Serialized as a `0x`-prefixed hex string: JSON numbers lose precision above 2^53.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(pub u64);

/// An offset relative to the base address of a module (relative virtual address).
///
/// Serialized as a `0x`-prefixed hex string, like [`VirtAddr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rva(pub u64);

/// A byte offset inside the allocation stream (counted from the stream's first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StreamOffset(pub u64);

impl VirtAddr {
    /// The offset of this address from `base`, if it lies at or above it.
    pub fn rva_from(self, base: VirtAddr) -> Option<Rva> {
        self.0.checked_sub(base.0).map(Rva)
    }
}

impl Serialize for VirtAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Rva {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

impl fmt::Display for Rva {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

impl fmt::Display for StreamOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rva_is_checked() {
        assert_eq!(VirtAddr(0x1010).rva_from(VirtAddr(0x1000)), Some(Rva(0x10)));
        assert_eq!(VirtAddr(0x0fff).rva_from(VirtAddr(0x1000)), None);
        assert_eq!(Rva(0x1366).to_string(), "0x1366");
    }
}
