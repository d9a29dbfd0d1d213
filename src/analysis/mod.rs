//! The analysis: one dump from file to [`DumpReport`] (open it, build its model, read
//! its allocation table once, run the memory-pressure scripts), and the views across
//! the dumps of a run: [`series`] and [`vendor`] reports.
//!
//! * [`attribution`]: the responsible-module rule;
//! * [`table`]: the one read of the allocation table;
//! * [`probability`]: leak probability from allocation times;
//! * [`scripts`]: one memory-pressure script per file, one registry.

pub mod attribution;
pub mod probability;
pub mod reachability;
pub mod scripts;
pub mod series;
pub mod table;
pub mod umdh;
pub mod vendor;
pub mod verdict;

use crate::dump::stream::AllocationStream;
use crate::dump::{DumpError, DumpFile};
use crate::model::{
    filetime_to_rfc3339, DumpReport, MetadataItem, SectionError, TrackingFlags, TrackingInfo,
    REPORT_SCHEMA,
};
use crate::symbols::{SymbolOptions, Symbolizer};
use crate::text::thousands;
use scripts::leak::LeakOptions;
use scripts::{run_scripts, Script, ScriptContext};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use table::Table;
use thiserror::Error;

/// Options of an analysis run.
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    pub leak: LeakOptions,
    /// The scripts to run, in registry order.
    pub scripts: Vec<&'static dyn Script>,
    /// Folders of module image files, or image files (`--images`), for the version
    /// resources of modules whose image the dump does not hold.
    pub images: Vec<PathBuf>,
    /// Finds and caches PDBs for every dump of the run.
    pub symbolizer: Arc<Symbolizer>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            leak: LeakOptions::default(),
            scripts: scripts::registry().to_vec(),
            images: Vec::new(),
            symbolizer: Arc::new(Symbolizer::new(SymbolOptions::default())),
        }
    }
}

/// Why a dump could not be analysed.
#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error(transparent)]
    Umdh(#[from] crate::umdh::UmdhError),
    #[error("{path}: {source}")]
    TotalOverflow {
        path: PathBuf,
        source: table::TotalOverflow,
    },
}

/// The generator string written into reports.
pub fn generator() -> String {
    format!("leakdiag {}", env!("CARGO_PKG_VERSION"))
}

fn tracking_info(stream: &AllocationStream<'_>, table: &Table) -> TrackingInfo {
    let h = stream.header();
    TrackingInfo {
        version: format!("{}.{}", h.version_major, h.version_minor),
        start: filetime_to_rfc3339(h.tracking_start),
        snapshot: filetime_to_rfc3339(h.snapshot_time),
        start_filetime: h.tracking_start,
        snapshot_filetime: h.snapshot_time,
        duration_seconds: h.window_seconds(),
        allocations: table.totals.allocations,
        bytes: table.totals.bytes,
        frames: stream.frame_count() as u64,
        stacks: stream.stack_count() as u64,
        flags: TrackingFlags {
            raw: h.flags.0,
            return_addresses: h.flags.return_addresses(),
            dropped: h.flags.dropped(),
            truncated_stacks: h.flags.truncated_stacks(),
        },
        metadata: stream
            .metadata()
            .map(|e| MetadataItem {
                key: e.key.to_owned(),
                value: e.value.map(str::to_owned),
            })
            .collect(),
        allocator_modules: stream
            .allocator_modules()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        source: crate::model::TrackingSource::Tracker,
    }
}

/// Analyses the input at `path`: a UMDH log when its first lines say so
/// ([`crate::umdh::detect`]), else a dump.
pub fn analyze_input(path: &Path, options: &AnalyzeOptions) -> Result<DumpReport, AnalyzeError> {
    // A file that cannot be read is left to the dump reader, which names the error.
    match crate::umdh::detect(path) {
        Ok(Some(kind)) => umdh::analyze_umdh(path, kind, options),
        _ => analyze_dump(path, options),
    }
}

/// Analyses the dump at `path`.
pub fn analyze_dump(path: &Path, options: &AnalyzeOptions) -> Result<DumpReport, AnalyzeError> {
    let dump = DumpFile::open(path)?;
    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let process = dump.process_info(&modules);
    let stream = dump.allocation_stream()?;

    let table = match &stream {
        None => None,
        Some(stream) => Some(
            Table::read(stream, &modules, &options.leak.system_modules).map_err(|source| {
                AnalyzeError::TotalOverflow {
                    path: path.to_owned(),
                    source,
                }
            })?,
        ),
    };
    let tracking = match (&stream, &table) {
        (Some(stream), Some(table)) => {
            stream_warnings(stream, table, modules.is_empty(), &mut warnings);
            clock_warning(
                dump.minidump().header.time_date_stamp,
                stream.header().snapshot_time,
                &mut warnings,
            );
            Some(tracking_info(stream, table))
        }
        _ => {
            warnings.insert(
                0,
                "no tracker data: the dump has no allocation stream (0x4C440001), so outstanding allocations cannot be analysed; only the process and module information is shown".to_owned(),
            );
            None
        }
    };

    // The scan runs once, before the scripts: the leak and reachability scripts
    // both read it.
    let reach = match (&stream, &table) {
        (Some(stream), Some(table))
            if options
                .scripts
                .iter()
                .any(|s| s.info().name == "reachability") =>
        {
            Some(reachability::compute(
                &dump, stream, table, &modules, options,
            ))
        }
        _ => None,
    };
    let ctx = ScriptContext {
        dump: &dump,
        modules: &modules,
        process: &process,
        stream: stream.as_ref(),
        table: table.as_ref(),
        reachability: reach.as_ref(),
        options,
    };
    let (sections, findings): (Vec<_>, Vec<_>) =
        run_scripts(&options.scripts, &ctx).into_iter().unzip();
    for s in &sections {
        if let Err(SectionError::Failed(message)) = &s.result {
            warnings.push(format!("the {} script failed: {message}", s.script));
        }
    }
    let mut summary: Vec<_> = findings.into_iter().flatten().collect();
    // Stable: within a severity, findings keep the scripts' order.
    summary.sort_by_key(|f| f.severity);

    let mut report = DumpReport {
        schema: REPORT_SCHEMA,
        generator: generator(),
        dump: dump.source(),
        process,
        tracking,
        verdict: verdict::no_tracker_data(),
        summary,
        sections,
        warnings,
    };
    // Alone, without the other dumps of a series; the batch weighs the series in.
    verdict::apply(
        &mut report,
        &verdict::VerdictContext {
            min_window_seconds: options.leak.min_window_seconds,
            ..Default::default()
        },
    );
    drop(reach);
    drop_later(Box::new((table, dump)));
    Ok(report)
}

/// Drops `garbage` on a thread of its own: freeing a large dump's table (tens of
/// megabytes for 100,000 stacks) and unmapping the dump are milliseconds of page-table
/// work that the report need not wait for. At most two values wait at once; past that
/// (or with no thread) the caller drops its own, so memory stays bounded in a batch of
/// any size.
fn drop_later(garbage: Box<dyn Send>) {
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::OnceLock;
    static QUEUE: OnceLock<Option<SyncSender<Box<dyn Send>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (send, receive) = sync_channel::<Box<dyn Send>>(2);
        std::thread::Builder::new()
            .name("leakdiag-free".into())
            .spawn(move || receive.into_iter().for_each(drop))
            .ok()
            .map(|_| send)
    });
    if let Some(queue) = queue {
        // Full or gone: dropped here, now.
        let _ = queue.try_send(garbage);
    }
}

/// Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// A dump written before the tracker's own snapshot means one of the two clocks is
/// wrong: every time in the report is then suspect, and the reader must know.
fn clock_warning(dump_unix: u32, snapshot_filetime: u64, warnings: &mut Vec<String>) {
    let snapshot_unix = (snapshot_filetime / 10_000_000).saturating_sub(FILETIME_UNIX_OFFSET);
    // The header has whole seconds; a second of slack for the rounding.
    if dump_unix != 0 && snapshot_unix > u64::from(dump_unix) + 1 {
        warnings.push(format!(
            "the dump's header says it was written at {}, {} before the tracker's snapshot at {}: one of the clocks is wrong, so times in this report may be off",
            crate::model::unix_to_rfc3339(u64::from(dump_unix)).unwrap_or_else(|| dump_unix.to_string()),
            crate::text::duration((snapshot_unix - u64::from(dump_unix)) as f64),
            crate::model::filetime_to_rfc3339(snapshot_filetime).unwrap_or_else(|| snapshot_filetime.to_string()),
        ));
    }
}

/// What the reader must know about the tracker's data.
fn stream_warnings(
    stream: &AllocationStream<'_>,
    table: &Table,
    no_modules: bool,
    warnings: &mut Vec<String>,
) {
    let flags = stream.flags();
    if flags.dropped() {
        warnings.push("the tracker dropped allocations because a table was full: the counts and bytes are a lower bound".to_owned());
    }
    if flags.truncated_stacks() {
        let depth = stream
            .metadata_value("max_depth")
            .map(|d| format!(" ({d} frames)"))
            .unwrap_or_default();
        warnings.push(format!("some stacks were cut at the tracker's depth limit{depth}: the responsible module of a cut stack may lie beyond its last frame"));
    }
    if table.invalid.allocations > 0 {
        warnings.push(format!(
            "{} allocation records ({} bytes) have a stack index outside the stack table: they are kept in the totals under \"(no stack)\"",
            thousands(table.invalid.allocations),
            thousands(table.invalid.bytes)
        ));
    }
    if stream.header().snapshot_time < stream.header().tracking_start {
        warnings.push("the snapshot time precedes the tracking start: the tracking window is shown as 0 seconds".to_owned());
    }
    let malformed = stream.metadata().filter(|e| e.value.is_none()).count();
    if malformed > 0 {
        warnings.push(format!(
            "{malformed} metadata lines have no '=' and are shown as they are"
        ));
    }
    if no_modules && table.totals.allocations > 0 {
        warnings.push(
            "the dump lists no modules: every allocation is charged to \"(unknown)\"".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::drop_later;
    use std::sync::mpsc::{channel, Sender};
    use std::time::Duration;

    struct Signal(Sender<usize>, usize);

    impl Drop for Signal {
        fn drop(&mut self) {
            let _ = self.0.send(self.1);
        }
    }

    #[test]
    fn every_value_given_to_drop_later_is_dropped() {
        // More than the queue holds, faster than one thread frees: some are dropped
        // by the caller, the rest by the thread, none kept.
        let (send, receive) = channel();
        for i in 0..50 {
            drop_later(Box::new(Signal(send.clone(), i)));
        }
        let mut seen: Vec<usize> = (0..50)
            .map(|_| receive.recv_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
}
