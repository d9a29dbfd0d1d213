//! `leakdiag inspect`: a raw, human-readable listing of what a dump holds, for people
//! checking an input. It prints what is there, parsed as little as possible, and keeps
//! going past a broken part so the rest can still be seen.

use super::stream::{AllocationStream, StreamHeader, ALLOCATION_STREAM_TYPE};
use super::{DumpError, DumpFile};
use crate::model::filetime_to_rfc3339;
use crate::text::{one_line, ControlFilter};
use minidump::format::MINIDUMP_STREAM_TYPE;
use num_traits::FromPrimitive;
use std::io::{self, Write};

fn stream_name(stream_type: u32) -> String {
    if stream_type == ALLOCATION_STREAM_TYPE {
        return "leakdiag allocation stream".to_owned();
    }
    match MINIDUMP_STREAM_TYPE::from_u32(stream_type) {
        Some(t) => format!("{t:?}"),
        None => "unknown".to_owned(),
    }
}

fn print_header<W: Write>(w: &mut W, h: &StreamHeader) -> io::Result<()> {
    writeln!(
        w,
        "  version            {}.{}",
        h.version_major, h.version_minor
    )?;
    writeln!(w, "  header_size        {}", h.header_size)?;
    writeln!(
        w,
        "  flags              0x{:x} (return addresses: {}, dropped: {}, truncated stacks: {})",
        h.flags.0,
        h.flags.return_addresses(),
        h.flags.dropped(),
        h.flags.truncated_stacks()
    )?;
    let time = |t| filetime_to_rfc3339(t).unwrap_or_else(|| "(not a valid time)".into());
    writeln!(
        w,
        "  tracking_start     {} ({})",
        h.tracking_start,
        time(h.tracking_start)
    )?;
    writeln!(
        w,
        "  snapshot_time      {} ({})",
        h.snapshot_time,
        time(h.snapshot_time)
    )?;
    writeln!(
        w,
        "  frames             offset {} count {}",
        h.frames.offset, h.frames.count
    )?;
    writeln!(
        w,
        "  stacks             offset {} count {}",
        h.stacks.offset, h.stacks.count
    )?;
    writeln!(
        w,
        "  allocations        offset {} count {}",
        h.allocations.offset, h.allocations.count
    )?;
    match h.metadata {
        Some(m) => writeln!(
            w,
            "  metadata           offset {} size {}",
            m.offset, m.count
        )?,
        None => writeln!(w, "  metadata           none")?,
    }
    match h.tracker_regions {
        Some(r) => writeln!(
            w,
            "  tracker_regions    offset {} count {}",
            r.offset, r.count
        )?,
        None => writeln!(
            w,
            "  tracker_regions    not declared (before 1.3): the tracker's own memory may hide leaks from a pointer scan"
        )?,
    }
    Ok(())
}

/// At most this many tracker regions are listed one per line.
const MAX_REGIONS_LISTED: usize = 256;

fn print_regions<W: Write>(w: &mut W, s: &AllocationStream) -> io::Result<()> {
    let Some(regions) = s.tracker_regions() else {
        return Ok(());
    };
    let total: u128 = regions.iter().map(|r| u128::from(r.size)).sum();
    writeln!(
        w,
        "  tracker regions:   {} declared, {} bytes (overlaps counted twice)",
        regions.len(),
        total
    )?;
    for r in regions.iter().take(MAX_REGIONS_LISTED) {
        writeln!(
            w,
            "    {} .. 0x{:016x} {:>12} bytes  {}",
            r.base,
            r.end(),
            r.size,
            r.kind.name()
        )?;
    }
    if regions.len() > MAX_REGIONS_LISTED {
        writeln!(w, "    … {} more", regions.len() - MAX_REGIONS_LISTED)?;
    }
    Ok(())
}

/// Prints the listing of the dump at `path` to `w`. Returns the error that stopped the
/// allocation stream from being read, if any, after printing everything else.
///
/// Text from the dump (module names, metadata) never reaches `w` with its control
/// characters: an escape sequence in a dump cannot retitle or clear a terminal.
pub fn inspect<W: Write>(w: &mut W, dump: &DumpFile) -> io::Result<Option<DumpError>> {
    let mut filtered = ControlFilter::new(w);
    let r = listing(&mut filtered, dump);
    filtered.into_inner()?;
    r
}

fn listing<W: Write>(w: &mut W, dump: &DumpFile) -> io::Result<Option<DumpError>> {
    let md = dump.minidump();
    writeln!(w, "{}", dump.path().display())?;
    writeln!(w, "  size               {} bytes", dump.source().size)?;
    writeln!(w, "  streams            {}", md.header.stream_count)?;
    writeln!(w, "  flags              0x{:x}", md.header.flags)?;
    writeln!(w)?;
    writeln!(w, "Streams")?;
    writeln!(
        w,
        "  {:<10} {:<32} {:>12} {:>12}",
        "type", "name", "offset", "size"
    )?;
    // The directory as the file holds it: a duplicate entry is shown, not folded.
    let mut streams: Vec<_> = dump.directory().to_vec();
    streams.sort_by_key(|d| d.rva);
    for d in streams {
        writeln!(
            w,
            "  0x{:08x} {:<32} {:>12} {:>12}",
            d.stream_type,
            stream_name(d.stream_type),
            d.rva,
            d.size
        )?;
    }
    writeln!(w)?;

    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let process = dump.process_info(&modules);
    writeln!(w, "Process")?;
    let show = |v: &Option<String>| {
        v.as_deref()
            .map(|s| one_line(s).into_owned())
            .unwrap_or_else(|| "–".into())
    };
    writeln!(w, "  image              {}", show(&process.image))?;
    writeln!(
        w,
        "  pid                {}",
        process
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "–".into())
    )?;
    writeln!(
        w,
        "  arch / os          {} / {} {}",
        show(&process.arch),
        show(&process.os),
        show(&process.os_version)
    )?;
    writeln!(
        w,
        "  process started    {}",
        show(&process.process_create_time)
    )?;
    writeln!(w, "  dump written       {}", show(&process.dump_time))?;
    writeln!(w)?;

    writeln!(w, "Modules ({})", modules.len())?;
    writeln!(
        w,
        "  {:<18} {:>12} {:<9} {:<28} debug",
        "base", "size", "state", "name"
    )?;
    for m in modules.modules() {
        let debug = match (&m.debug_file, &m.debug_id) {
            (Some(f), Some(id)) => format!("{f} {id}"),
            (None, Some(id)) => id.clone(),
            (Some(f), None) => f.clone(),
            (None, None) => "–".into(),
        };
        writeln!(
            w,
            "  {} {:>12} {:<9} {:<28} {}",
            m.base,
            m.size,
            if m.unloaded { "unloaded" } else { "loaded" },
            one_line(&m.name),
            one_line(&debug)
        )?;
    }
    for warning in &warnings {
        writeln!(w, "  warning: {}", one_line(warning))?;
    }
    writeln!(w)?;

    writeln!(w, "Allocation stream (0x{ALLOCATION_STREAM_TYPE:08x})")?;
    match dump.allocation_stream() {
        Ok(None) => {
            writeln!(w, "  not present: this dump carries no tracker data")?;
            Ok(None)
        }
        Err(e) => {
            writeln!(w, "  error: {e}")?;
            Ok(Some(e))
        }
        Ok(Some(s)) => {
            print_header(w, s.header())?;
            // The same rule 8 as `analyze`: a sum past 2^64 − 1 refuses the stream.
            let bytes = match s.total_bytes() {
                Ok(b) => b,
                Err(source) => {
                    let e = DumpError::Stream {
                        path: dump.path().to_owned(),
                        source: Box::new(source),
                    };
                    writeln!(w, "  error: {e}")?;
                    return Ok(Some(e));
                }
            };
            writeln!(
                w,
                "  outstanding        {} allocations, {} bytes",
                s.allocation_count(),
                bytes
            )?;
            writeln!(w, "  metadata:")?;
            for e in s.metadata() {
                match e.value {
                    Some(v) => writeln!(w, "    {} = {}", one_line(e.key), one_line(v))?,
                    None => writeln!(w, "    {} (malformed: no '=')", one_line(e.key))?,
                }
            }
            print_regions(w, &s)?;
            Ok(None)
        }
    }
}
