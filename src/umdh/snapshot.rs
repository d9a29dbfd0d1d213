//! Snapshot logs (`umdh -p:PID -f:FILE`): header, loaded modules, per-heap
//! allocations, and each stack printed the first time its BackTrace ID appears.
//!
//! [`parse`] reads the log once, hands every allocation line to the caller as it is
//! read, and returns what is small: the header, the modules, per-heap sums and the
//! stacks by BackTrace ID (see docs/umdh.md).

use super::{encoding_warnings, hex, open, UmdhError};
use std::collections::HashMap;
use std::path::Path;

/// The header line `// UMDH: version V: Logtime DATE TIME - Machine=M - PID=N`.
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub version: Option<String>,
    /// The Logtime as written (the logging machine's local time).
    pub logtime: Option<String>,
    /// The Logtime as a FILETIME, taking the local time as UTC.
    pub logtime_filetime: Option<u64>,
    pub machine: Option<String>,
    pub pid: Option<u32>,
}

/// A line of the loaded-module list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogModule {
    pub base: u64,
    pub size: u64,
    pub path: String,
}

/// The sums of one heap's allocation lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapSums {
    pub heap: u64,
    pub allocations: u64,
    /// Requested bytes (the first column).
    pub bytes: u64,
    /// UMDH's overhead column: heap headers and padding, not requested memory.
    pub overhead: u64,
    /// The heap's `End of data` line was read.
    pub complete: bool,
}

/// One frame of a stack as printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A return address (`7FF6A0011234`).
    Address(u64),
    /// A frame UMDH already resolved: `module!symbol+offset`, maybe with
    /// `(file, line)`, or `module+offset`; kept as given.
    Symbolic(String),
}

/// A BackTrace ID and its stack, once printed.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The ID as written after `BackTrace`.
    pub id: String,
    /// `None` until the stack is printed.
    pub frames: Option<Vec<Frame>>,
}

/// One allocation line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub size: u64,
    pub overhead: u64,
    pub address: u64,
    /// The heap whose data the line is in (0 outside any heap).
    pub heap: u64,
    /// Index into [`Snapshot::traces`].
    pub trace: u32,
    /// The line it was read from.
    pub line: u64,
}

/// What a snapshot log holds besides its allocation lines.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub header: Header,
    pub modules: Vec<LogModule>,
    pub heaps: Vec<HeapSums>,
    pub traces: Vec<Trace>,
    pub allocations: u64,
    pub bytes: u64,
    pub overhead: u64,
    /// The largest address seen (allocations, frames, modules): above 2^32 it is a
    /// 64-bit process.
    pub max_address: u64,
    pub encoding: &'static str,
    pub lines: u64,
    /// Each names the file and the line.
    pub warnings: Vec<String>,
}

/// The fields of an allocation line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocationLine<'a> {
    pub size: u64,
    pub overhead: u64,
    pub address: u64,
    /// The BackTrace ID as written.
    pub id: &'a str,
}

/// `SIZE bytes + OVERHEAD at ADDRESS by BackTraceID`, all hexadecimal: `None` when
/// the line is not an allocation line, `Some(Err)` when it starts like one but is
/// cut or holds a number that does not fit 64 bits.
pub fn parse_allocation(line: &str) -> Option<Result<AllocationLine<'_>, String>> {
    let mut t = line.split_ascii_whitespace();
    let size = t.next()?;
    if t.next()? != "bytes" {
        return None;
    }
    let size = hex(size)?;
    let bad = |what: &str| Some(Err(format!("an allocation line {what}: \"{line}\"")));
    let num = |tok: Option<&str>, name: &str| -> Result<u64, String> {
        match tok.and_then(hex) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(format!(
                "the {name} of an allocation line does not fit 64 bits: \"{line}\""
            )),
            None => Err(format!(
                "an allocation line cut short or malformed (no {name}): \"{line}\""
            )),
        }
    };
    let Ok(size) = size else {
        return Some(Err(format!(
            "the size of an allocation line does not fit 64 bits: \"{line}\""
        )));
    };
    if t.next() != Some("+") {
        return bad("cut short or malformed (no \"+ OVERHEAD\")");
    }
    let overhead = match num(t.next(), "overhead") {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if t.next() != Some("at") {
        return bad("cut short or malformed (no \"at ADDRESS\")");
    }
    let address = match num(t.next(), "address") {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if t.next() != Some("by") {
        return bad("cut short or malformed (no \"by BackTraceID\")");
    }
    match t.next().and_then(|b| b.strip_prefix("BackTrace")) {
        Some(id) if !id.is_empty() => Some(Ok(AllocationLine {
            size,
            overhead,
            address,
            id,
        })),
        _ => bad("cut short or malformed (no BackTrace ID)"),
    }
}

/// The header's fields; `None` when the line is not the header.
fn parse_header(line: &str) -> Option<Header> {
    let rest = line.trim_start_matches('/').trim().strip_prefix("UMDH:")?;
    let mut h = Header::default();
    if let Some(v) = rest.trim().strip_prefix("version") {
        let v = v.trim_start();
        let end = v.find([':', ' ']).unwrap_or(v.len());
        h.version = Some(v[..end].to_owned()).filter(|v| !v.is_empty());
    }
    for part in rest.split(" - ") {
        let part = part.trim();
        if let Some(i) = part.find("Logtime") {
            let t = part[i + "Logtime".len()..].trim();
            h.logtime_filetime = logtime_filetime(t);
            h.logtime = Some(t.to_owned());
        } else if let Some(m) = part.strip_prefix("Machine=") {
            h.machine = Some(m.trim().to_owned());
        } else if let Some(p) = part.strip_prefix("PID=") {
            h.pid = p.trim().parse().ok();
        }
    }
    Some(h)
}

/// `YYYY-MM-DD HH:MM[:SS]` as a FILETIME.
pub fn logtime_filetime(t: &str) -> Option<u64> {
    let (date, time) = t.split_once(' ')?;
    let d: Vec<u32> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let c: Vec<u32> = time
        .trim()
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [y, mo, da] = d[..] else { return None };
    let (h, mi, s) = match c[..] {
        [h, m] => (h, m, 0),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(da).ok()?)
            .ok()?;
    let at = date
        .with_hms(
            u8::try_from(h).ok()?,
            u8::try_from(mi).ok()?,
            u8::try_from(s).ok()?,
        )
        .ok()?
        .assume_utc();
    let unix = u64::try_from(at.unix_timestamp()).ok()?;
    Some((unix + 11_644_473_600) * 10_000_000)
}

/// A module-list line `//  BASE  SIZE  PATH`.
fn parse_module(line: &str) -> Option<Result<LogModule, String>> {
    let rest = line.strip_prefix("//")?.trim_start();
    let (base, rest) = rest.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (size, path) = rest.split_once(char::is_whitespace)?;
    let (base, size) = (hex(base)?, hex(size)?);
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    match (base, size) {
        (Ok(base), Ok(size)) => Some(Ok(LogModule {
            base,
            size,
            path: path.to_owned(),
        })),
        _ => Some(Err(format!(
            "a module's base or size does not fit 64 bits: \"{line}\""
        ))),
    }
}

/// A stack frame line (already trimmed).
fn parse_frame(t: &str) -> Option<Result<Frame, ()>> {
    let first = t.split_ascii_whitespace().next()?;
    match hex(first) {
        Some(Ok(a)) => Some(Ok(Frame::Address(a))),
        Some(Err(())) => Some(Err(())),
        None if first.contains('!') || first.contains('+') => {
            Some(Ok(Frame::Symbolic(t.to_owned())))
        }
        None => None,
    }
}

/// The heap address of `Start of data for heap @ 150000 - - -` and the like.
fn heap_of(line: &str) -> Option<Result<u64, ()>> {
    let after = &line[line.find('@')? + 1..];
    hex(after.split_whitespace().next()?)
}

/// A cheap hasher for BackTrace IDs read as numbers (SipHash is most of the cost
/// of a map lookup per allocation line).
#[derive(Default)]
struct IdHasher(u64);

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

type IdMap<K> = HashMap<K, u32, std::hash::BuildHasherDefault<IdHasher>>;

struct Parser<'p> {
    path: &'p Path,
    snap: Snapshot,
    /// Trace index by ID: hexadecimal IDs by value, any other by text.
    ids: IdMap<u64>,
    text_ids: HashMap<String, u32>,
    /// Whether each trace's stack was printed: compact, for the check per
    /// allocation line.
    defined: Vec<bool>,
    /// First line an ID was referenced on without its stack, by trace index.
    unresolved: HashMap<u32, (u64, u64)>,
    heap: Option<usize>,
    /// The trace whose stack is being read, the line it started on, its frames.
    stack: Option<(u32, u64, Vec<Frame>)>,
}

impl Parser<'_> {
    fn err(&self, line: u64, message: String) -> UmdhError {
        UmdhError::Line {
            path: self.path.to_owned(),
            line,
            message,
        }
    }

    fn warn(&mut self, line: u64, message: impl std::fmt::Display) {
        self.snap
            .warnings
            .push(format!("{}:{line}: {message}", self.path.display()));
    }

    fn trace(&mut self, id: &str) -> u32 {
        let next = self.snap.traces.len() as u32;
        let i = match hex(id) {
            Some(Ok(n)) => *self.ids.entry(n).or_insert(next),
            _ => *self.text_ids.entry(id.to_owned()).or_insert(next),
        };
        if i == next {
            self.defined.push(false);
            self.snap.traces.push(Trace {
                id: id.to_owned(),
                frames: None,
            });
        }
        i
    }

    /// Ends the stack being read: defines its trace, or notes it unresolved.
    fn end_stack(&mut self) {
        let Some((trace, line, frames)) = self.stack.take() else {
            return;
        };
        let t = trace as usize;
        if frames.is_empty() {
            if !self.defined[t] {
                self.unresolved.entry(trace).or_insert((line, 0)).1 += 1;
            }
            return;
        }
        if self.snap.traces[t].frames.is_some() {
            let id = self.snap.traces[t].id.clone();
            self.warn(
                line,
                format_args!(
                    "the stack of BackTrace{id} is printed a second time: the first one is kept"
                ),
            );
            return;
        }
        if let Some((first, count)) = self.unresolved.remove(&trace) {
            let id = self.snap.traces[t].id.clone();
            self.warn(
                first,
                format_args!("BackTrace{id} is referenced here ({count} allocation lines) before its stack is printed on line {line}"),
            );
        }
        self.defined[t] = true;
        self.snap.traces[t].frames = Some(frames);
    }
}

/// Reads the snapshot log at `path`, calling `on_allocation` for every allocation
/// line in file order.
pub fn parse(
    path: &Path,
    mut on_allocation: impl FnMut(&Allocation),
) -> Result<Snapshot, UmdhError> {
    let mut lines = open(path)?;
    let mut p = Parser {
        path,
        snap: Snapshot {
            encoding: lines.encoding.label(),
            ..Default::default()
        },
        ids: IdMap::default(),
        text_ids: HashMap::new(),
        defined: Vec::new(),
        unresolved: HashMap::new(),
        heap: None,
        stack: None,
    };
    let mut in_modules = false;
    let mut saw_header = false;
    while let Some((n, raw)) = lines.next_line() {
        let indented = raw.starts_with([' ', '\t']);
        let t = raw.trim();

        // Stack frames: indented lines right after an allocation line.
        if p.stack.is_some() {
            if t.is_empty() || !indented {
                p.end_stack();
            } else {
                match parse_frame(t) {
                    Some(Ok(f)) => {
                        if let Frame::Address(a) = f {
                            p.snap.max_address = p.snap.max_address.max(a);
                        }
                        if let Some((_, _, frames)) = &mut p.stack {
                            frames.push(f);
                        }
                        continue;
                    }
                    Some(Err(())) => {
                        return Err(p.err(
                            n,
                            format!("a stack frame's address does not fit 64 bits: \"{t}\""),
                        ))
                    }
                    None => {
                        p.warn(
                            n,
                            format_args!("not a stack frame, the stack ends before it: \"{t}\""),
                        );
                        p.end_stack();
                        continue;
                    }
                }
            }
        }
        if t.is_empty() {
            continue;
        }

        if in_modules {
            if t.contains("Process modules enumerated") || !t.starts_with("//") {
                in_modules = false;
            } else {
                match parse_module(t) {
                    Some(Ok(m)) => {
                        p.snap.max_address = p.snap.max_address.max(m.base.saturating_add(m.size));
                        p.snap.modules.push(m);
                    }
                    Some(Err(e)) => return Err(p.err(n, e)),
                    None => {}
                }
                continue;
            }
        }
        if t.starts_with("//") {
            if t.contains("Loaded modules") {
                in_modules = true;
            } else if !saw_header {
                if let Some(h) = parse_header(t) {
                    saw_header = true;
                    if h.logtime.is_some() && h.logtime_filetime.is_none() {
                        p.warn(n, "the Logtime is not a date and time YYYY-MM-DD HH:MM: the snapshot cannot be placed in time");
                    }
                    p.snap.header = h;
                }
            }
            continue;
        }
        // Allocation lines start with a hex digit; heap lines with `*-`.
        let heap_line = !t.as_bytes()[0].is_ascii_hexdigit();
        if heap_line && t.contains("Start of data for heap") {
            match heap_of(t) {
                Some(Ok(heap)) => {
                    if let Some(open) = p.heap {
                        let h = p.snap.heaps[open].heap;
                        p.warn(n, format_args!("heap {h:X} has no \"End of data\" line before the next heap starts"));
                    }
                    p.snap.heaps.push(HeapSums {
                        heap,
                        ..Default::default()
                    });
                    p.heap = Some(p.snap.heaps.len() - 1);
                }
                Some(Err(())) => {
                    return Err(p.err(n, format!("the heap address does not fit 64 bits: \"{t}\"")))
                }
                None => p.warn(
                    n,
                    format_args!("a heap line without a heap address: \"{t}\""),
                ),
            }
            continue;
        }
        if heap_line && t.contains("End of data for heap") {
            if let Some(open) = p.heap.take() {
                p.snap.heaps[open].complete = true;
            }
            continue;
        }
        match parse_allocation(t) {
            Some(Ok(AllocationLine {
                size,
                overhead,
                address,
                id,
            })) => {
                let trace = p.trace(id);
                let heap = p.heap.map_or(0, |h| p.snap.heaps[h].heap);
                let s = &mut p.snap;
                s.bytes = s.bytes.checked_add(size).ok_or_else(|| UmdhError::Line {
                    path: path.to_owned(),
                    line: n,
                    message: "the allocation sizes add up to more than 2^64 bytes".into(),
                })?;
                s.overhead = s.overhead.saturating_add(overhead);
                s.allocations += 1;
                s.max_address = s.max_address.max(address);
                if let Some(h) = p.heap {
                    let h = &mut s.heaps[h];
                    h.allocations += 1;
                    h.bytes = h.bytes.saturating_add(size);
                    h.overhead = h.overhead.saturating_add(overhead);
                }
                on_allocation(&Allocation {
                    size,
                    overhead,
                    address,
                    heap,
                    trace,
                    line: n,
                });
                p.stack = Some((trace, n, Vec::new()));
            }
            Some(Err(e)) if e.contains("64 bits") => return Err(p.err(n, e)),
            Some(Err(e)) => p.warn(n, format_args!("{e}: skipped")),
            None => {}
        }
    }
    p.end_stack();
    let last = lines.line;
    if let Some(open) = p.heap {
        let h = p.snap.heaps[open].heap;
        p.warn(last, format_args!("the log ends inside the data of heap {h:X} (no \"End of data\" line): it is truncated; what was read is reported"));
    }
    let mut unresolved: Vec<(u32, (u64, u64))> = p.unresolved.drain().collect();
    unresolved.sort_by_key(|(_, (line, _))| *line);
    for (trace, (line, count)) in unresolved {
        let id = p.snap.traces[trace as usize].id.clone();
        p.warn(line, format_args!("BackTrace{id} is referenced here ({count} allocation lines) but its stack is never printed: its allocations are counted under \"(no stack)\""));
    }
    if !saw_header {
        p.warn(
            1,
            "no \"// UMDH: version …\" header: the process id, machine and Logtime are unknown",
        );
    }
    encoding_warnings(path, &lines, &mut p.snap.warnings);
    p.snap.lines = last;
    Ok(p.snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_lines() {
        assert_eq!(
            parse_allocation("D5C bytes + 1C at 163B28 by BackTrace00004"),
            Some(Ok(AllocationLine {
                size: 0xD5C,
                overhead: 0x1C,
                address: 0x163B28,
                id: "00004"
            }))
        );
        assert!(parse_allocation("D5C bytes + 1C at").unwrap().is_err());
        assert!(parse_allocation("hello world").is_none());
    }

    #[test]
    fn header() {
        let h = parse_header(
            "// UMDH: version 7.04.0001: Logtime 2024-03-05 14:17 - Machine=BUILD01 - PID=2644",
        )
        .unwrap();
        assert_eq!(h.version.as_deref(), Some("7.04.0001"));
        assert_eq!(h.machine.as_deref(), Some("BUILD01"));
        assert_eq!(h.pid, Some(2644));
        assert_eq!(h.logtime.as_deref(), Some("2024-03-05 14:17"));
        assert!(h.logtime_filetime.is_some());
    }
}
