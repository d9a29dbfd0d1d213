//! Numbers and durations for people, as findings (analysis) and pages (report) write
//! them. Reports show exact integers with thousands separators; a rounded size (KiB, MiB) only ever appears next to the exact count.

/// `1234567` → `"1,234,567"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count and its bytes: `1,200 (48,000 bytes)`.
pub fn with_bytes(count: u64, bytes: u64) -> String {
    format!("{} ({} bytes)", thousands(count), thousands(bytes))
}

/// A count with its noun: `1 allocation`, `2,400 allocations`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// A leak probability as a percentage, or "not judged" when it could not be
/// (no allocations, a window of zero length, a UMDH snapshot without times).
pub fn probability(p: Option<u8>) -> String {
    p.map(|p| format!("{p}%"))
        .unwrap_or_else(|| "not judged".to_owned())
}

/// An approximate size for chart axes and headlines: `1536` → `"1.5 KiB"`.
pub fn approx_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A share as a percentage with one decimal, a dash when the whole is zero.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// A duration in seconds as `1h 02m 03s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{:.1}s", seconds.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(525_000), "525,000");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(count(1, "allocation"), "1 allocation");
        assert_eq!(count(2400, "allocation"), "2,400 allocations");
        assert_eq!(approx_bytes(1023), "1023 B");
        assert_eq!(approx_bytes(1536), "1.5 KiB");
        assert_eq!(approx_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(probability(Some(93)), "93%");
        assert_eq!(probability(None), "not judged");
        assert_eq!(percent(1, 0), "–");
        assert_eq!(duration(3723.0), "1h 02m 03s");
        assert_eq!(duration(61.0), "1m 01s");
        assert_eq!(duration(2.5), "2.5s");
    }
}

/// Whether `c` must not reach an output: a control character (C0 but tab and
/// newline, DEL, C1) or a bidirectional override that can make text read differently
/// from what it is.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character replaced: tab, newline and carriage return by a
/// space, the others (ESC, BEL, DEL, C1, bidirectional overrides) by U+FFFD. For text
/// from a dump shown on one line of a page, a table or a terminal.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || is_unsafe(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => ' ',
            c if is_unsafe(c) => '\u{fffd}',
            c => c,
        })
        .collect::<String>()
        .into()
}

/// `s` with the control characters that could act on a terminal or a viewer (all but
/// newline and tab) replaced by U+FFFD.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(s);
    }
    s.chars()
        .map(|c| if is_unsafe(c) { '\u{fffd}' } else { c })
        .collect::<String>()
        .into()
}

/// The bytes [`ControlFilter`] has to look at: the C0 controls but newline and tab,
/// DEL, and 0xC2 (which starts a C1 control when 0x80–0x9F follows).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b < 0x20 && b != b'\n' as usize && b != b'\t' as usize) || b == 0x7f || b == 0xc2;
        b += 1;
    }
    t
};

/// The first byte of `data` that [`SPECIAL`] marks. Sixteen bytes at a time with
/// SSE2 (part of the x86_64 baseline): a few compares and one mask per block, exact,
/// so a line break in a block (every line of a pretty-printed report has one) costs
/// nothing more. Elsewhere, and for the tail, byte by byte.
#[inline]
fn find_special(data: &[u8]) -> Option<usize> {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut blocks = data.chunks_exact(16);
        for block in &mut blocks {
            // SAFETY: `block` is 16 readable bytes (`chunks_exact`), and the unaligned
            // load reads exactly those; SSE2 is always present on x86_64.
            let mask = unsafe {
                let b = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
                let c0 = _mm_cmpeq_epi8(_mm_min_epu8(b, _mm_set1_epi8(0x1f)), b);
                let kept = _mm_or_si128(
                    _mm_cmpeq_epi8(b, _mm_set1_epi8(b'\n' as i8)),
                    _mm_cmpeq_epi8(b, _mm_set1_epi8(b'\t' as i8)),
                );
                let other = _mm_or_si128(
                    _mm_cmpeq_epi8(b, _mm_set1_epi8(0x7f)),
                    _mm_cmpeq_epi8(b, _mm_set1_epi8(0xc2_u8 as i8)),
                );
                _mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(kept, c0), other))
            };
            if mask != 0 {
                return Some(at + mask.trailing_zeros() as usize);
            }
            at += 16;
        }
    }
    data[at..]
        .iter()
        .position(|&b| SPECIAL[usize::from(b)])
        .map(|i| at + i)
}

/// A writer that passes UTF-8 text on without its control characters: every C0 byte
/// but newline and tab, DEL and the C1 controls (U+0080–U+009F) are dropped. The last
/// guard of every page, summary and terminal listing: whatever a dump holds, no escape
/// sequence reaches a file or a terminal.
pub struct ControlFilter<W: std::io::Write> {
    inner: W,
    /// A 0xC2 byte held back until the next byte shows whether it starts a C1 control.
    pending: bool,
}

impl<W: std::io::Write> ControlFilter<W> {
    pub fn new(inner: W) -> Self {
        ControlFilter {
            inner,
            pending: false,
        }
    }

    /// The inner writer, after anything held back is written.
    pub fn into_inner(self) -> std::io::Result<W> {
        let (inner, written) = self.finish();
        written.map(|()| inner)
    }

    /// Writes anything held back and gives the inner writer back whatever happened,
    /// with the outcome of that last write.
    pub fn finish(mut self) -> (W, std::io::Result<()>) {
        let written = if std::mem::take(&mut self.pending) {
            self.inner.write_all(&[0xc2])
        } else {
            Ok(())
        };
        (self.inner, written)
    }
}

impl<W: std::io::Write> std::io::Write for ControlFilter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        // Runs of ordinary bytes go straight through: the serializers write many small
        // pieces, and almost none holds a control byte.
        let mut rest = data;
        if self.pending {
            match rest.first() {
                None => return Ok(0),
                // 0xC2 0x80..0x9F is a C1 control: both bytes are dropped.
                Some(b) if (0x80..=0x9f).contains(b) => rest = &rest[1..],
                Some(_) => self.inner.write_all(&[0xc2])?,
            }
            self.pending = false;
        }
        while let Some(at) = find_special(rest) {
            self.inner.write_all(&rest[..at])?;
            let b = rest[at];
            rest = &rest[at + 1..];
            if b != 0xc2 {
                continue; // a C0 control or DEL: dropped
            }
            match rest.first() {
                None => self.pending = true,
                Some(n) if (0x80..=0x9f).contains(n) => rest = &rest[1..],
                Some(_) => self.inner.write_all(&[0xc2])?,
            }
        }
        self.inner.write_all(rest)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod clean_tests {
    use super::*;
    use std::io::Write;

    /// The filter's rule, one byte at a time over the whole input.
    fn reference(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match b {
                b'\n' | b'\t' => out.push(b),
                0..=0x1f | 0x7f => {}
                0xc2 if data.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) => i += 1,
                _ => out.push(b),
            }
            i += 1;
        }
        out
    }

    #[test]
    fn find_special_finds_the_first_special_byte() {
        for b in 0..=255u8 {
            for len in [1usize, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47] {
                for pos in 0..len {
                    let mut data = vec![b'a'; len];
                    data[pos] = b;
                    let want = SPECIAL[usize::from(b)].then_some(pos);
                    assert_eq!(find_special(&data), want, "byte {b:#x} at {pos} of {len}");
                    // Only the first special byte counts, in the same block or a later one.
                    if pos + 1 < len {
                        data[len - 1] = 0x1b;
                        let first = if SPECIAL[usize::from(b)] {
                            pos
                        } else {
                            len - 1
                        };
                        assert_eq!(find_special(&data), Some(first), "two specials");
                        data[len - 1] = b'a';
                    }
                    // A newline or tab before it is ordinary.
                    if pos > 0 {
                        data[pos - 1] = b'\n';
                        assert_eq!(find_special(&data), want, "after a newline");
                    }
                }
            }
        }
        assert_eq!(find_special(b""), None);
    }

    #[test]
    fn any_chunking_gives_the_same_bytes_as_the_rule() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = [
            b'a', b'\n', b'\t', 0x00, 0x1b, 0x7f, 0xc2, 0x80, 0x9f, 0xa9, b'x',
        ];
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut f = ControlFilter::new(Vec::new());
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 5) as usize;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                f.write_all(chunk).unwrap();
                rest = tail;
            }
            assert_eq!(f.into_inner().unwrap(), reference(&data), "{data:?}");
        }
    }

    #[test]
    fn control_characters_do_not_pass() {
        assert_eq!(
            one_line("a\r\nb\u{1b}]0;x\u{7}"),
            "a  b\u{fffd}]0;x\u{fffd}"
        );
        assert_eq!(printable("a\nb\u{9b}c\u{202e}"), "a\nb\u{fffd}c\u{fffd}");
        let mut f = ControlFilter::new(Vec::new());
        f.write_all("x\u{1b}[2J\r\n\u{9b}é\u{7f}".as_bytes())
            .unwrap();
        f.write_all(&[0xc2]).unwrap();
        f.write_all(&[0x9b, b'!', 0xc2]).unwrap();
        f.write_all(&[0xa9]).unwrap();
        assert_eq!(
            String::from_utf8(f.into_inner().unwrap()).unwrap(),
            "x[2J\né!©"
        );
    }
}
