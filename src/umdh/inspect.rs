//! `leakdiag inspect` for UMDH logs: what a snapshot or comparison log holds as the
//! reader sees it (header, modules, heaps, BackTraces, frames, the growth entries
//! and the closing total line, every warning with its line), for people checking an
//! input before or instead of a report.
//!
//! Text from the log (paths, IDs, frames, the header's fields) reaches the terminal
//! on one line and without its control characters: a log is as untrusted as a dump.

use super::compare::{self, Comparison};
use super::snapshot::{self, Frame, Snapshot};
use super::{LogKind, UmdhError};
use crate::model::{filetime_to_rfc3339, Totals};
use crate::text::{one_line, thousands};
use std::io::{self, Write};
use std::path::Path;

/// At most this many modules, heaps, entries and warnings are listed one per line;
/// the rest are counted.
pub const MAX_LISTED: usize = 256;

/// The BackTraces listed with their sums.
pub const TOP_TRACES: usize = 10;

/// Prints the listing of the log at `path`, of `kind`, to `w`. Returns the error
/// that stopped the log from being read, if any, after printing what was known.
pub fn inspect<W: Write>(w: &mut W, path: &Path, kind: LogKind) -> io::Result<Option<UmdhError>> {
    writeln!(w, "{}", one_line(&path.display().to_string()))?;
    match kind {
        LogKind::Snapshot => match snapshot::parse(path) {
            Ok(s) => print_snapshot(w, &s).map(|()| None),
            Err(e) => failed(w, "UMDH snapshot log (umdh -p:PID -f:FILE)", e),
        },
        LogKind::Comparison => match compare::parse(path) {
            Ok(c) => print_comparison(w, &c).map(|()| None),
            Err(e) => failed(w, "UMDH comparison log (umdh OLD NEW)", e),
        },
    }
}

fn failed<W: Write>(w: &mut W, kind: &str, e: UmdhError) -> io::Result<Option<UmdhError>> {
    writeln!(w, "  kind               {kind}")?;
    writeln!(w, "  not read:          {}", one_line(&e.to_string()))?;
    Ok(Some(e))
}

/// `… N more` after a list cut at [`MAX_LISTED`].
fn more<W: Write>(w: &mut W, total: usize) -> io::Result<()> {
    if total > MAX_LISTED {
        writeln!(w, "    … {} more", thousands((total - MAX_LISTED) as u64))?;
    }
    Ok(())
}

fn field<W: Write>(w: &mut W, name: &str, value: Option<&str>) -> io::Result<()> {
    writeln!(
        w,
        "  {name:<18} {}",
        value.map_or("(not in the log)".into(), one_line)
    )
}

fn print_snapshot<W: Write>(w: &mut W, s: &Snapshot) -> io::Result<()> {
    writeln!(
        w,
        "  kind               UMDH snapshot log (umdh -p:PID -f:FILE)"
    )?;
    writeln!(w, "  encoding           {}", s.encoding)?;
    writeln!(w, "  lines              {}", thousands(s.lines))?;
    let h = &s.header;
    field(w, "umdh version", h.version.as_deref())?;
    let logtime = h.logtime.as_deref().map(|t| match h.logtime_filetime {
        Some(ft) => format!(
            "{t} (taken as UTC: {})",
            filetime_to_rfc3339(ft).unwrap_or_default()
        ),
        None => format!("{t} (not a date and time: the snapshot has no time)"),
    });
    field(w, "logtime", logtime.as_deref())?;
    field(w, "machine", h.machine.as_deref())?;
    field(w, "pid", h.pid.map(|p| p.to_string()).as_deref())?;
    let bits = if s.max_address > u64::from(u32::MAX) {
        "64-bit"
    } else {
        "32-bit (no address above 4 GiB)"
    };
    writeln!(
        w,
        "  process            {bits}; largest address 0x{:X}",
        s.max_address
    )?;

    writeln!(w, "modules: {}", thousands(s.modules.len() as u64))?;
    for m in s.modules.iter().take(MAX_LISTED) {
        writeln!(
            w,
            "  0x{:016X} size 0x{:08X}  {}",
            m.base,
            m.size,
            one_line(&m.path)
        )?;
    }
    more(w, s.modules.len())?;

    writeln!(w, "heaps: {}", thousands(s.heaps.len() as u64))?;
    for h in s.heaps.iter().take(MAX_LISTED) {
        writeln!(
            w,
            "  heap {:X}: {} allocations, {} bytes + {} overhead{}",
            h.heap,
            thousands(h.allocations),
            thousands(h.bytes),
            thousands(h.overhead),
            if h.complete {
                ""
            } else {
                " (no \"End of data\" line)"
            }
        )?;
    }
    more(w, s.heaps.len())?;

    writeln!(
        w,
        "allocations: {}, {} bytes requested + {} overhead (UMDH's column: not in a report's totals)",
        thousands(s.allocations),
        thousands(s.bytes),
        thousands(s.overhead)
    )?;
    let printed = s.traces.iter().filter(|t| t.frames.is_some()).count();
    writeln!(
        w,
        "backtraces: {} referenced, {} with a printed stack",
        thousands(s.traces.len() as u64),
        thousands(printed as u64)
    )?;
    let resolved = s
        .frames
        .iter()
        .filter(|f| matches!(f, Frame::Symbolic(_)))
        .count();
    writeln!(
        w,
        "frames: {} printed in those stacks ({} return addresses, {} already resolved: {} distinct texts)",
        thousands(s.frames.len() as u64),
        thousands((s.frames.len() - resolved) as u64),
        thousands(resolved as u64),
        thousands(s.symbolic.len() as u64)
    )?;
    // The BackTraces holding the most bytes, as UMDH's own "Hogs" order would.
    let mut per_trace = vec![Totals::default(); s.traces.len()];
    for &(t, _, sums) in &s.sizes {
        if let Some(p) = per_trace.get_mut(t as usize) {
            p.allocations += sums.allocations;
            p.bytes = p.bytes.saturating_add(sums.bytes);
        }
    }
    let mut top: Vec<usize> = (0..per_trace.len()).collect();
    let order = |a: &usize, b: &usize| per_trace[*a].rank(&per_trace[*b]).then(a.cmp(b));
    if top.len() > TOP_TRACES {
        top.select_nth_unstable_by(TOP_TRACES, order);
        top.truncate(TOP_TRACES);
    }
    top.sort_by(order);
    writeln!(w, "largest backtraces (by bytes, top {TOP_TRACES}):")?;
    for t in top {
        let stack = match s.frames_of(t) {
            Some(frames) => {
                let n = frames.len();
                let first = s.frames_of(t).into_iter().flatten().next();
                let innermost = match first {
                    Some(Frame::Address(a)) => format!(", innermost {a:X}"),
                    Some(Frame::Symbolic(i)) => {
                        s.symbolic.get(i as usize).map_or(String::new(), |text| {
                            format!(", innermost {}", one_line(text))
                        })
                    }
                    None => String::new(),
                };
                format!("{n} frames{innermost}")
            }
            None => "stack never printed".to_owned(),
        };
        writeln!(
            w,
            "  BackTrace{}: {} allocations, {} bytes; {stack}",
            one_line(&s.traces[t].id),
            thousands(per_trace[t].allocations),
            thousands(per_trace[t].bytes)
        )?;
    }
    warnings(w, &s.warnings)
}

fn print_comparison<W: Write>(w: &mut W, c: &Comparison) -> io::Result<()> {
    writeln!(w, "  kind               UMDH comparison log (umdh OLD NEW)")?;
    writeln!(w, "  encoding           {}", c.encoding)?;
    writeln!(w, "  lines              {}", thousands(c.lines))?;
    writeln!(
        w,
        "  numbers            {}",
        if c.decimal {
            "decimal (umdh -d)"
        } else {
            "hexadecimal"
        }
    )?;
    let grew = c.entries.iter().filter(|e| e.bytes_delta() > 0).count();
    let shrank = c.entries.iter().filter(|e| e.bytes_delta() < 0).count();
    let delta: i128 = c.entries.iter().map(|e| e.bytes_delta()).sum();
    writeln!(
        w,
        "entries: {} ({} grew, {} shrank), {delta:+} bytes in all",
        thousands(c.entries.len() as u64),
        thousands(grew as u64),
        thousands(shrank as u64)
    )?;
    for e in c.entries.iter().take(MAX_LISTED) {
        let count = |n: Option<u64>| n.map_or("?".into(), |n| n.to_string());
        writeln!(
            w,
            "  line {}: BackTrace{} {:+} bytes ({} - {}), {} → {} allocations, {} frames{}",
            e.line,
            one_line(&e.trace),
            e.bytes_delta(),
            e.new_bytes,
            e.old_bytes,
            count(e.old_count),
            count(e.new_count),
            e.frames.len(),
            e.frames
                .first()
                .map_or(String::new(), |f| format!(", innermost {}", one_line(f)))
        )?;
    }
    more(w, c.entries.len())?;
    match &c.total {
        Some(t) => writeln!(
            w,
            "total line {}: requested {:+}, overhead {}, total {}",
            t.line,
            t.requested,
            t.overhead
                .map_or("(not given)".into(), |o| format!("{o:+}")),
            t.total.map_or("(not given)".into(), |o| format!("{o:+}"))
        )?,
        None => writeln!(w, "total line: none (\"Total increase == …\" was not read)")?,
    }
    warnings(w, &c.warnings)
}

fn warnings<W: Write>(w: &mut W, warnings: &[String]) -> io::Result<()> {
    writeln!(w, "warnings: {}", thousands(warnings.len() as u64))?;
    for m in warnings.iter().take(MAX_LISTED) {
        writeln!(w, "  {}", one_line(m))?;
    }
    more(w, warnings.len())
}
