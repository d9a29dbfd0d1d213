//! The fields of each kind of line as the general reader reads them: allocation,
//! header, loaded module, heap and stack frame lines, written any way UMDH or a
//! hand may write them.

use super::{Header, LogModule};
use crate::umdh::hex;

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
    let bad = |what: &str| {
        Some(Err(format!(
            "an allocation line {what}: {}",
            crate::umdh::quote(line)
        )))
    };
    let num = |tok: Option<&str>, name: &str| -> Result<u64, String> {
        match tok.and_then(hex) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(format!(
                "the {name} of an allocation line does not fit 64 bits: {}",
                crate::umdh::quote(line)
            )),
            None => Err(format!(
                "an allocation line cut short or malformed (no {name}): {}",
                crate::umdh::quote(line)
            )),
        }
    };
    let Ok(size) = size else {
        return Some(Err(format!(
            "the size of an allocation line does not fit 64 bits: {}",
            crate::umdh::quote(line)
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
        Some(id) if id.chars().count() > crate::umdh::MAX_ID_CHARS => bad(&format!(
            "with a BackTrace ID longer than {} characters",
            crate::umdh::MAX_ID_CHARS
        )),
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
pub(super) fn parse_header(line: &str) -> Option<Header> {
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
pub(super) fn parse_module(line: &str) -> Option<Result<LogModule, String>> {
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
            "a module's base or size does not fit 64 bits: {}",
            crate::umdh::quote(line)
        ))),
    }
}

/// The heap address of `Start of data for heap @ 150000 - - -` and the like.
pub(super) fn heap_of(line: &str) -> Option<Result<u64, ()>> {
    let after = &line[line.find('@')? + 1..];
    hex(after.split_whitespace().next()?)
}

/// A frame as the general reader sees it.
pub(super) enum ParsedFrame<'a> {
    Address(u64),
    Symbolic(&'a str),
}

/// A stack frame line (already trimmed).
pub(super) fn parse_frame(t: &str) -> Option<Result<ParsedFrame<'_>, ()>> {
    let first = t.split_ascii_whitespace().next()?;
    match hex(first) {
        Some(Ok(a)) => Some(Ok(ParsedFrame::Address(a))),
        Some(Err(())) => Some(Err(())),
        None if first.contains('!') || first.contains('+') => Some(Ok(ParsedFrame::Symbolic(t))),
        None => None,
    }
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
