//! The fast reader: allocation and frame lines exactly as UMDH writes them, read
//! straight from the bytes. Whatever they do not match goes to the general reader
//! ([`super::general`]), which reads these lines the same way.

use std::ops::Range;

/// The value of each byte as a hexadecimal digit, 0xFF for the others.
pub(super) const HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 1 to 16 hexadecimal digits at `pos`: the value and the position after them;
/// `None` otherwise (the general reader then decides).
#[inline(always)]
fn fast_hex(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let start = pos;
    let mut v = 0u64;
    while let Some(&b) = buf.get(pos) {
        let d = HEX[usize::from(b)];
        if d == 0xFF {
            break;
        }
        v = (v << 4) | u64::from(d);
        pos += 1;
    }
    (pos > start && pos - start <= 16).then_some((v, pos))
}

#[inline(always)]
fn expect(buf: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    (buf.get(pos..pos + word.len())? == word).then_some(pos + word.len())
}

/// The start of the next line when the line ends at `pos`, `None` when it does not.
#[inline(always)]
fn line_end(buf: &[u8], pos: usize) -> Option<usize> {
    match buf.get(pos..)? {
        [] => Some(pos),
        [b'\n', ..] => Some(pos + 1),
        [b'\r', b'\n', ..] => Some(pos + 2),
        [b'\r'] => Some(pos + 1),
        _ => None,
    }
}

/// An allocation line exactly as UMDH writes it (`SIZE bytes + OVERHEAD at ADDRESS
/// by BackTraceID`, single spaces, a hexadecimal ID of at most 16 digits, nothing
/// after it): its numbers, the ID's range and the next line's start. Anything else
/// goes to the general reader, which reads these lines the same way.
#[inline(always)]
pub(super) fn fast_allocation(buf: &[u8], pos: usize) -> Option<([u64; 4], Range<usize>, usize)> {
    let (size, p) = fast_hex(buf, pos)?;
    let p = expect(buf, p, b" bytes + ")?;
    let (overhead, p) = fast_hex(buf, p)?;
    let p = expect(buf, p, b" at ")?;
    let (address, p) = fast_hex(buf, p)?;
    let id_start = expect(buf, p, b" by BackTrace")?;
    let (id, p) = fast_hex(buf, id_start)?;
    let next = line_end(buf, p)?;
    Some(([size, overhead, address, id], id_start..p, next))
}

/// A frame line that is an indented address and nothing else: the address and the
/// next line's start.
#[inline(always)]
pub(super) fn fast_frame(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    while matches!(buf.get(pos), Some(b'\t' | b' ')) {
        pos += 1;
    }
    let (a, p) = fast_hex(buf, pos)?;
    Some((a, line_end(buf, p)?))
}
