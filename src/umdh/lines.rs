//! A UMDH log read line by line over the memory-mapped file, in the encoding it was
//! written in, without holding its text: one line is decoded at a time.
//!
//! * A byte-order mark `FF FE` or `FE FF` selects UTF-16 little or big endian (what
//!   PowerShell's `>` writes); `EF BB BF` is skipped.
//! * Otherwise each line is UTF-8 when it is valid UTF-8, else it is read as the
//!   Windows ANSI code page (`umdh > file` in `cmd.exe`): bytes below 0x80 as ASCII,
//!   the others as Windows-1252; the first such line is reported once.
//! * Line ends are `\r\n` or `\n`; the `\r` is dropped.

use memmap2::Mmap;

/// The encoding a log was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, or the ANSI code page for lines that are not valid UTF-8.
    Utf8OrAnsi,
    Utf16Le,
    Utf16Be,
}

impl Encoding {
    /// The encoding of `bytes` by its byte-order mark, and the mark's length.
    pub fn of(bytes: &[u8]) -> (Encoding, usize) {
        match bytes {
            [0xFF, 0xFE, ..] => (Encoding::Utf16Le, 2),
            [0xFE, 0xFF, ..] => (Encoding::Utf16Be, 2),
            [0xEF, 0xBB, 0xBF, ..] => (Encoding::Utf8OrAnsi, 3),
            _ => (Encoding::Utf8OrAnsi, 0),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8OrAnsi => "UTF-8/ANSI",
            Encoding::Utf16Le => "UTF-16 LE",
            Encoding::Utf16Be => "UTF-16 BE",
        }
    }
}

/// Windows-1252's characters for 0x80..=0x9F (0 where the code page has none).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

pub(crate) fn ansi_char(b: u8) -> char {
    match b {
        0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// The position of the first `\n` in `bytes`, sixteen bytes at a time (SSE2, part
/// of every x86-64 CPU), elsewhere eight at a time.
pub(crate) fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of x86-64; every load reads 16 bytes inside `bytes`.
        unsafe {
            let nl = _mm_set1_epi8(b'\n' as i8);
            while i + 16 <= bytes.len() {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                let m = _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
                if m != 0 {
                    return Some(i + m.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = ONES * b'\n' as u64;
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        let x = u64::from_le_bytes(word) ^ NL;
        // A zero byte in x is a newline (the classic has-zero-byte test).
        if (x.wrapping_sub(ONES) & !x & HIGHS) != 0 {
            break;
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// The bytes of a log: the whole mapped file, or a prefix of it for detection.
pub enum Source {
    Map(Mmap),
    Bytes(Vec<u8>),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Map(m) => m,
            Source::Bytes(b) => b,
        }
    }
}

/// Reads a log line by line.
pub struct Lines {
    source: Source,
    pub encoding: Encoding,
    pos: usize,
    /// The number of the line last returned, from 1.
    pub line: u64,
    /// The first line that was not valid UTF-8 (read as ANSI).
    pub first_ansi_line: Option<u64>,
    /// UTF-16 text with an odd number of bytes or unpaired surrogates (replaced).
    pub first_bad_utf16_line: Option<u64>,
    buf: String,
    /// The UTF-16 units of the current line, reused from line to line.
    units: Vec<u16>,
}

impl Lines {
    pub fn new(source: Source) -> Self {
        let (encoding, bom) = Encoding::of(source.bytes());
        Lines {
            source,
            encoding,
            pos: bom,
            line: 0,
            first_ansi_line: None,
            first_bad_utf16_line: None,
            buf: String::new(),
            units: Vec::new(),
        }
    }

    /// The next line's number (from 1) and text without its line end, or `None` at
    /// the end of the text.
    pub fn next_line(&mut self) -> Option<(u64, &str)> {
        let bytes = self.source.bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        self.line += 1;
        self.buf.clear();
        match self.encoding {
            Encoding::Utf8OrAnsi => {
                let rest = &bytes[self.pos..];
                let end = find_newline(rest);
                let mut raw = &rest[..end.unwrap_or(rest.len())];
                self.pos += end.map_or(rest.len(), |e| e + 1);
                if let [head @ .., b'\r'] = raw {
                    raw = head;
                }
                match std::str::from_utf8(raw) {
                    Ok(s) => self.buf.push_str(s),
                    Err(_) => {
                        self.first_ansi_line.get_or_insert(self.line);
                        self.buf.extend(raw.iter().map(|&b| ansi_char(b)));
                    }
                }
            }
            Encoding::Utf16Le | Encoding::Utf16Be => {
                let le = self.encoding == Encoding::Utf16Le;
                let rest = &bytes[self.pos..];
                let units = rest.chunks_exact(2).map(|c| {
                    if le {
                        u16::from_le_bytes([c[0], c[1]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                });
                let mut taken = 0usize;
                let line_units = &mut self.units;
                line_units.clear();
                for u in units {
                    taken += 2;
                    if u == 0x000A {
                        break;
                    }
                    line_units.push(u);
                }
                if rest.len() % 2 == 1 && self.pos + taken + 1 == bytes.len() {
                    // A dangling odd byte at the very end: a cut file.
                    self.first_bad_utf16_line.get_or_insert(self.line);
                    taken += 1;
                }
                self.pos += taken.max(1);
                if line_units.last() == Some(&0x000D) {
                    line_units.pop();
                }
                for c in char::decode_utf16(line_units.iter().copied()) {
                    match c {
                        Ok(c) => self.buf.push(c),
                        Err(_) => {
                            self.first_bad_utf16_line.get_or_insert(self.line);
                            self.buf.push(char::REPLACEMENT_CHARACTER);
                        }
                    }
                }
            }
        }
        Some((self.line, &self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: Vec<u8>) -> (Vec<String>, Lines) {
        let mut l = Lines::new(Source::Bytes(bytes));
        let mut out = Vec::new();
        while let Some((_, s)) = l.next_line() {
            out.push(s.to_owned());
        }
        (out, l)
    }

    #[test]
    fn utf8_crlf_and_ansi() {
        let (lines, l) = all(b"a\r\nb\xe9\nc".to_vec());
        assert_eq!(lines, ["a", "b\u{e9}", "c"]);
        assert_eq!(l.first_ansi_line, Some(2));
    }

    #[test]
    fn newlines_at_every_position() {
        for len in 0..40 {
            for at in 0..len {
                let mut v = vec![b'a'; len];
                v[at] = b'\n';
                assert_eq!(find_newline(&v), Some(at));
            }
            assert_eq!(find_newline(&vec![0xFFu8; len]), None);
        }
    }

    #[test]
    fn utf16_both_orders() {
        let text = "x\r\ny\u{e9}\r\n";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            le.extend(u.to_le_bytes());
            be.extend(u.to_be_bytes());
        }
        assert_eq!(all(le).0, ["x", "y\u{e9}"]);
        assert_eq!(all(be).0, ["x", "y\u{e9}"]);
    }
}
