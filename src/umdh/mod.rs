//! Reading UMDH logs (User-Mode Dump Heap, Debugging Tools for Windows): snapshot
//! logs (`umdh -p:PID -f:FILE`) and comparison logs (`umdh OLD NEW`, `-d` for
//! decimal). The formats as read here are described in docs/umdh.md.
//!
//! The kind of a log is recognised from its first lines, never from its name
//! ([`detect`]). Logs are read over the memory-mapped file, in UTF-8, the ANSI code
//! page or UTF-16: a comparison line by line ([`lines::Lines`]); a snapshot in
//! chunks read in parallel, its allocations summed per BackTrace as they are read
//! ([`snapshot::parse`]), so neither the text nor a list of allocations is ever
//! held. Every error and warning names the file and the line.

pub mod compare;
pub mod inspect;
pub mod lines;
pub mod snapshot;

use lines::{Lines, Source};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a file is, from its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// `umdh -p:PID -f:FILE`: every outstanding allocation with its stack.
    Snapshot,
    /// `umdh OLD NEW`: growth per stack between two snapshots.
    Comparison,
}

/// Why a log could not be read. Every variant names the file, and the line where
/// there is one.
#[derive(Debug, Error)]
pub enum UmdhError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a UMDH log: {reason}")]
    NotUmdh { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// How much of a file [`detect`] reads.
pub const DETECT_BYTES: usize = 16 * 1024;
/// How many lines [`detect`] looks at.
pub const DETECT_LINES: usize = 64;

/// The kind of a log from its first lines (at most [`DETECT_LINES`] lines in the
/// first [`DETECT_BYTES`] bytes), or `None` when they do not look like UMDH.
pub fn detect_bytes(prefix: &[u8]) -> Option<LogKind> {
    // A minidump is never a log, whatever text its first pages hold.
    if prefix.starts_with(b"MDMP") {
        return None;
    }
    let mut lines = Lines::new(Source::Bytes(prefix.to_vec()));
    let mut n = 0;
    while let Some((_, line)) = lines.next_line() {
        n += 1;
        if n > DETECT_LINES {
            break;
        }
        let t = line.trim();
        if t.starts_with("// UMDH:")
            || t.contains("Start of data for heap @")
            || matches!(snapshot::parse_allocation(t), Some(Ok(_)))
        {
            return Some(LogKind::Snapshot);
        }
        if t.contains("BYTES_DELTA")
            || t.starts_with("Total increase ==")
            || t.starts_with("Total decrease ==")
            || compare::looks_like_entry(t)
        {
            return Some(LogKind::Comparison);
        }
    }
    None
}

/// The kind of the log at `path` from its first lines; `Ok(None)` for a file that
/// does not look like UMDH.
pub fn detect(path: &Path) -> std::io::Result<Option<LogKind>> {
    use std::io::Read;
    // Only a regular file is opened: opening a named pipe or a device to look at
    // it would block, or consume it. Anything else is "not a log", and the dump
    // reader then says what it is.
    if !std::fs::metadata(path)?.is_file() {
        return Ok(None);
    }
    let mut prefix = Vec::with_capacity(DETECT_BYTES);
    File::open(path)?
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut prefix)?;
    Ok(detect_bytes(&prefix))
}

/// Maps the log at `path`; an empty file is not a log.
pub fn map(path: &Path) -> Result<Mmap, UmdhError> {
    let io = |source| UmdhError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size == 0 {
        return Err(UmdhError::NotUmdh {
            path: path.to_owned(),
            reason: "the file is empty".into(),
        });
    }
    // SAFETY: the mapping is read-only; as with dumps, a log truncated by another
    // process while we read it would fault, and logs are not written in place.
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// Maps `path` for reading line by line.
pub fn open(path: &Path) -> Result<Lines, UmdhError> {
    Ok(Lines::new(Source::Map(map(path)?)))
}

/// The warnings about the text's encoding, once per file.
pub fn encoding_warnings(path: &Path, lines: &Lines, warnings: &mut Vec<String>) {
    if let Some(l) = lines.first_ansi_line {
        warnings.push(format!(
            "{}:{l}: the text is not UTF-8 from this line on: read as the Windows ANSI code page (Windows-1252)",
            path.display()
        ));
    }
    if let Some(l) = lines.first_bad_utf16_line {
        warnings.push(format!(
            "{}:{l}: the UTF-16 text has an unpaired surrogate or a dangling byte: replaced by U+FFFD",
            path.display()
        ));
    }
}

/// At most this many warnings are kept per log, the first by line; the rest are
/// counted in one last warning. A log of millions of malformed
/// lines gives a readable report, not millions of lines of warnings.
pub const MAX_WARNINGS: usize = 200;

/// A line quoted in a message: at most this many characters of it.
pub const QUOTE_CHARS: usize = 120;

/// The longest BackTrace ID read (UMDH writes at most 16 hexadecimal digits); a
/// longer one makes its line malformed.
pub const MAX_ID_CHARS: usize = 64;

/// `line` quoted for a message: in double quotes, cut after [`QUOTE_CHARS`]
/// characters (saying how long it was).
pub fn quote(line: &str) -> String {
    match line.char_indices().nth(QUOTE_CHARS) {
        None => format!("\"{line}\""),
        Some((at, _)) => format!("\"{}…\" ({} characters)", &line[..at], line.chars().count()),
    }
}

/// Parses a hexadecimal number of UMDH (no `0x` needed, any case); `Err` for a
/// number with more than 64 bits, `None` for something that is not hexadecimal.
pub fn hex(s: &str) -> Option<Result<u64, ()>> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for b in s.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        overflow |= v >> 60 != 0;
        v = (v << 4) | u64::from(d);
    }
    Some(if overflow { Err(()) } else { Ok(v) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        assert_eq!(
            detect_bytes(b"// UMDH: version 7: Logtime 2026-01-01 10:00 - PID=1\r\n"),
            Some(LogKind::Snapshot)
        );
        assert_eq!(
            detect_bytes(b"\n+ 10 ( 30 - 20) 1 allocs\tBackTrace5\n"),
            Some(LogKind::Comparison)
        );
        // Text that merely mentions bytes is not a log.
        assert_eq!(detect_bytes(b"10 bytes were lost\nsee ticket\n"), None);
        assert_eq!(detect_bytes(b"MDMP\x93\xa7\0\0"), None);
    }

    #[test]
    fn hex_numbers() {
        assert_eq!(hex("7FF6A0001000"), Some(Ok(0x7FF6_A000_1000)));
        assert_eq!(hex("0000000000000000000001"), Some(Ok(1)));
        assert_eq!(hex("10000000000000000"), Some(Err(())));
        assert_eq!(hex("xyz"), None);
    }
}
