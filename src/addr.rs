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

/// `0x` and the hexadecimal digits of `n` (lower case), at least `width` of them, in
/// `buf`: what `format!("0x{n:0width$x}")` writes, without the formatting machinery
/// (a report writes two such strings for each of tens of thousands of frames).
fn hex(n: u64, width: usize, buf: &mut [u8; 18]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = ((64 - n.leading_zeros() as usize).div_ceil(4))
        .max(width)
        .max(1);
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..digits {
        buf[1 + digits - i] = DIGITS[((n >> (4 * i)) & 0xf) as usize];
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[..2 + digits]).unwrap_or_default()
}

impl Serialize for VirtAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(hex(self.0, 16, &mut [0; 18]))
    }
}

impl Serialize for Rva {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(hex(self.0, 1, &mut [0; 18]))
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

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn serialized_as_displayed() {
        let mut values = vec![
            0u64,
            1,
            0xf,
            0x10,
            0x5f45,
            u64::MAX,
            1 << 63,
            0x7ff6_0100_5f45,
        ];
        for i in 0..64 {
            values.extend([1u64 << i, (1u64 << i) - 1, (1u64 << i) | 1]);
        }
        for v in values {
            assert_eq!(
                serde_json::to_string(&VirtAddr(v)).unwrap(),
                format!("\"{}\"", VirtAddr(v))
            );
            assert_eq!(
                serde_json::to_string(&Rva(v)).unwrap(),
                format!("\"{}\"", Rva(v))
            );
        }
    }
}
