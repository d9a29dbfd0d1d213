//! Comparison logs (`umdh OLD NEW`, `umdh -d OLD NEW` for decimal): the growth of
//! each stack between two snapshots, not a table of outstanding allocations.
//!
//! ```text
//! + 5320 ( f110 - 9df0) 3a allocs BackTrace00053
//! + 3a ( 3a - 0) BackTrace00053 allocations
//!
//!     ntdll!RtlAllocateHeap+00000808
//!     MyApp!LeakyFunc+0000001E (d:\src\leaky.cpp, 42)
//!
//! Total increase == 5320 requested + 1d0 overhead = 54f0
//! ```
//!
//! Numbers are hexadecimal unless the log was written with `-d`: [`parse`] keeps the
//! numbers as written and decides the base once the whole log is read (see
//! docs/umdh.md).

use super::{encoding_warnings, open, UmdhError};
use std::collections::HashMap;
use std::path::Path;

/// The growth of one stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrowthEntry {
    /// The BackTrace ID as written.
    pub trace: String,
    /// Requested bytes in the new and the old snapshot.
    pub new_bytes: u64,
    pub old_bytes: u64,
    /// Allocation counts: the new count of the bytes line, the old one from the
    /// count line when there is one.
    pub new_count: Option<u64>,
    pub old_count: Option<u64>,
    /// The stack as printed, innermost first: `module!symbol+offset (file, line)`,
    /// `module+offset` or an address.
    pub frames: Vec<String>,
    /// The line of its bytes line (or count line).
    pub line: u64,
}

impl GrowthEntry {
    pub fn bytes_delta(&self) -> i128 {
        i128::from(self.new_bytes) - i128::from(self.old_bytes)
    }
}

/// The closing `Total increase == …` (or `decrease`) line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotalLine {
    pub requested: i128,
    pub overhead: Option<i128>,
    pub total: Option<i128>,
    pub line: u64,
}

/// A comparison log.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub entries: Vec<GrowthEntry>,
    pub total: Option<TotalLine>,
    /// The numbers were read as decimal (`umdh -d`).
    pub decimal: bool,
    pub encoding: &'static str,
    pub lines: u64,
    pub warnings: Vec<String>,
}

/// Whether a line looks like `+ N ( N - N) …BackTrace…`.
pub fn looks_like_entry(t: &str) -> bool {
    (t.starts_with('+') || t.starts_with('-')) && t.contains('(') && t.contains("BackTrace")
}

/// Numbers as written, parsed once the base is known.
struct RawEntry {
    sign: bool,
    delta: String,
    new: String,
    old: String,
    count: Option<String>,
    trace: String,
    /// A count line (`BackTraceX allocations`) rather than a bytes line.
    is_count: bool,
    line: u64,
}

fn raw_entry(t: &str, line: u64) -> Option<Result<RawEntry, String>> {
    if !looks_like_entry(t) {
        return None;
    }
    let cleaned = t.replace(['(', ')'], " ");
    let tok: Vec<&str> = cleaned.split_whitespace().collect();
    let bad = || {
        Some(Err(format!(
            "a comparison line cut short or malformed: {}",
            crate::umdh::quote(t)
        )))
    };
    // sign delta new - old …
    if tok.len() < 6 || tok[3] != "-" {
        return bad();
    }
    let sign = tok[0] == "-";
    let (count, trace, is_count) = match &tok[5..] {
        [count, "allocs", bt] => (Some(count.to_string()), *bt, false),
        [bt, "allocations"] => (None, *bt, true),
        _ => return bad(),
    };
    let Some(trace) = trace
        .strip_prefix("BackTrace")
        .filter(|s| !s.is_empty() && s.chars().count() <= super::MAX_ID_CHARS)
    else {
        return bad();
    };
    Some(Ok(RawEntry {
        sign,
        delta: tok[1].to_owned(),
        new: tok[2].to_owned(),
        old: tok[4].to_owned(),
        count,
        trace: trace.to_owned(),
        is_count,
        line,
    }))
}

fn number(s: &str, radix: u32) -> Option<Result<u64, ()>> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.is_empty() || !s.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(u64::from_str_radix(s, radix).map_err(|_| ()))
}

fn consistent(e: &RawEntry, radix: u32) -> bool {
    match (
        number(&e.delta, radix),
        number(&e.new, radix),
        number(&e.old, radix),
    ) {
        (Some(Ok(d)), Some(Ok(n)), Some(Ok(o))) => {
            let d = if e.sign {
                -i128::from(d)
            } else {
                i128::from(d)
            };
            d == i128::from(n) - i128::from(o)
        }
        _ => false,
    }
}

/// `Total increase == 5320` or `Total increase == 5320 requested + 1d0 overhead = 54f0`.
fn raw_total(t: &str) -> Option<(bool, Vec<String>)> {
    let (neg, rest) = if let Some(r) = t.strip_prefix("Total increase ==") {
        (false, r)
    } else {
        (true, t.strip_prefix("Total decrease ==")?)
    };
    let nums = rest
        .split_whitespace()
        .filter(|w| !matches!(*w, "requested" | "overhead" | "+" | "="))
        .map(str::to_owned)
        .collect();
    Some((neg, nums))
}

/// Reads the comparison log at `path`.
pub fn parse(path: &Path) -> Result<Comparison, UmdhError> {
    let mut lines = open(path)?;
    let mut out = Comparison {
        encoding: lines.encoding.label(),
        ..Default::default()
    };
    // At most MAX_WARNINGS are kept, in the order found; the rest are counted.
    let mut dropped = 0u64;
    let mut push = |warnings: &mut Vec<String>, w: String| {
        if warnings.len() < super::MAX_WARNINGS {
            warnings.push(w);
        } else {
            dropped += 1;
        }
    };
    let mut raws: Vec<RawEntry> = Vec::new();
    let mut stacks: HashMap<String, Vec<String>> = HashMap::new();
    let mut current: Option<String> = None;
    let mut total: Option<(bool, Vec<String>, u64)> = None;
    while let Some((n, raw)) = lines.next_line() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with("//") || t.starts_with("DBGHELP:") {
            continue;
        }
        if let Some(e) = raw_entry(t, n) {
            match e {
                Ok(e) => {
                    current = Some(e.trace.clone());
                    raws.push(e);
                }
                Err(m) => {
                    push(
                        &mut out.warnings,
                        format!("{}:{n}: {m}: skipped", path.display()),
                    );
                    current = None;
                }
            }
            continue;
        }
        if let Some((neg, nums)) = raw_total(t) {
            total = Some((neg, nums, n));
            current = None;
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let Some(trace) = &current {
                let frames = stacks.entry(trace.clone()).or_default();
                frames.push(t.to_owned());
                continue;
            }
        }
        push(
            &mut out.warnings,
            format!(
                "{}:{n}: not a line of a UMDH comparison: {}: skipped",
                path.display(),
                crate::umdh::quote(t)
            ),
        );
    }
    out.lines = lines.line;

    // The base: hexadecimal unless a number has no hex reading or only the decimal
    // reading makes DELTA = NEW − OLD hold (umdh -d).
    let words = raws.iter().flat_map(|e| {
        [&e.delta, &e.new, &e.old]
            .into_iter()
            .chain(e.count.as_ref())
    });
    let has_hex_letters = words
        .clone()
        .any(|w| w.chars().any(|c| c.is_ascii_alphabetic()));
    let decimal = !has_hex_letters
        && raws.iter().all(|e| consistent(e, 10))
        && raws.iter().any(|e| !consistent(e, 16));
    if !has_hex_letters && !decimal && !raws.is_empty() {
        out.warnings.push(format!(
            "{}: the numbers read the same in hexadecimal and decimal: read as hexadecimal (UMDH's default; -d writes decimal)",
            path.display()
        ));
    }
    out.decimal = decimal;
    let radix = if decimal { 10 } else { 16 };
    let parse_num = |s: &str, line: u64| -> Result<u64, UmdhError> {
        match number(s, radix) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(UmdhError::Line {
                path: path.to_owned(),
                line,
                message: format!("the number {s} does not fit 64 bits"),
            }),
            None => Err(UmdhError::Line {
                path: path.to_owned(),
                line,
                message: format!(
                    "\"{s}\" is not a {} number",
                    if decimal { "decimal" } else { "hexadecimal" }
                ),
            }),
        }
    };

    let mut by_trace: HashMap<String, usize> = HashMap::new();
    for e in &raws {
        let new = parse_num(&e.new, e.line)?;
        let old = parse_num(&e.old, e.line)?;
        let delta = parse_num(&e.delta, e.line)?;
        let signed = if e.sign {
            -i128::from(delta)
        } else {
            i128::from(delta)
        };
        if signed != i128::from(new) - i128::from(old) {
            push(
                &mut out.warnings,
                format!(
                    "{}:{}: the change {} is not NEW − OLD ({} − {}): NEW and OLD are used",
                    path.display(),
                    e.line,
                    if e.sign {
                        format!("-{}", e.delta)
                    } else {
                        format!("+{}", e.delta)
                    },
                    e.new,
                    e.old
                ),
            );
        }
        let slot = *by_trace.entry(e.trace.clone()).or_insert_with(|| {
            out.entries.push(GrowthEntry {
                trace: e.trace.clone(),
                line: e.line,
                ..Default::default()
            });
            out.entries.len() - 1
        });
        let entry = &mut out.entries[slot];
        if e.is_count {
            entry.new_count = Some(new);
            entry.old_count = Some(old);
        } else {
            entry.new_bytes = new;
            entry.old_bytes = old;
            if let Some(c) = &e.count {
                entry.new_count = Some(parse_num(c, e.line)?);
            }
            entry.line = e.line;
        }
    }
    for entry in &mut out.entries {
        entry.frames = stacks.remove(&entry.trace).unwrap_or_default();
        if entry.frames.is_empty() {
            push(&mut out.warnings, format!(
                "{}:{}: BackTrace{} has no stack in the log: its growth is counted under \"(no stack)\"",
                path.display(),
                entry.line,
                entry.trace
            ));
        }
    }
    if let Some((neg, nums, line)) = total {
        let mut values = Vec::new();
        for s in &nums {
            let v = i128::from(parse_num(s, line)?);
            values.push(if neg { -v } else { v });
        }
        out.total = values.first().map(|&requested| TotalLine {
            requested,
            overhead: values.get(1).copied(),
            total: values.get(2).copied(),
            line,
        });
    } else {
        out.warnings.push(format!(
            "{}:{}: the log has no closing \"Total increase ==\" line: it may be truncated",
            path.display(),
            out.lines
        ));
    }
    encoding_warnings(path, &lines, &mut out.warnings);
    if dropped > 0 {
        out.warnings.push(format!(
            "{}: {} more warnings are not listed (the first {} are)",
            path.display(),
            crate::text::thousands(dropped),
            super::MAX_WARNINGS
        ));
    }
    Ok(out)
}

/// A printed frame without its `(file, line)` suffix.
fn frame_text(frame: &str) -> &str {
    let f = frame.trim();
    match f.rfind(" (") {
        Some(i) if f.ends_with(')') => f[..i].trim_end(),
        _ => f,
    }
}

/// The module of a printed frame: the text before `!` (or before `+` without a
/// symbol); `None` for a bare address or a frame without a module.
pub fn frame_module(frame: &str) -> Option<&str> {
    let f = frame_text(frame);
    let end = f.find('!').or_else(|| f.find('+'))?;
    let m = f[..end].trim();
    (!m.is_empty() && !m.contains(' ')).then_some(m)
}

/// The function of a printed frame, `module!symbol` without the offset; `None`
/// without a symbol.
pub fn frame_function(frame: &str) -> Option<&str> {
    let f = frame_text(frame);
    f.find('!')?;
    Some(match f.rsplit_once('+') {
        Some((func, off))
            if !off.is_empty() && off.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x') =>
        {
            func
        }
        _ => f,
    })
}

/// The `(file, line)` of a printed frame.
pub fn frame_source(frame: &str) -> Option<(&str, u32)> {
    let f = frame.trim();
    let inner = f.strip_suffix(')')?;
    let (_, inner) = inner.rsplit_once(" (")?;
    let (file, line) = inner.rsplit_once(',')?;
    Some((file.trim(), line.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let f = "MyApp!LeakyFunc+0000001E (d:\\src\\leaky.cpp, 42)";
        assert_eq!(frame_module(f), Some("MyApp"));
        assert_eq!(frame_function(f), Some("MyApp!LeakyFunc"));
        assert_eq!(frame_module("7FF6A0011234"), None);
        assert_eq!(frame_function("odbcvend+1234"), None);
        assert_eq!(frame_module("odbcvend+1234"), Some("odbcvend"));
        assert_eq!(
            frame_function("MyApp!operator new+0000000E"),
            Some("MyApp!operator new")
        );
        assert_eq!(frame_source(f), Some(("d:\\src\\leaky.cpp", 42)));
    }

    #[test]
    fn entries() {
        let e = raw_entry("+ 5320 ( f110 - 9df0) 3a allocs\tBackTrace00053", 7)
            .unwrap()
            .unwrap();
        assert!(consistent(&e, 16) && !consistent(&e, 10));
        let c = raw_entry("+ 3a ( 3a - 0)\tBackTrace00053\tallocations", 8)
            .unwrap()
            .unwrap();
        assert!(c.is_count);
    }
}
