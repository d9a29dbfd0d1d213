//! One dump from file to [`DumpReport`]: open, build the model, run the analysis.

use crate::dump::stream::AllocationStream;
use crate::dump::{DumpError, DumpFile};
use crate::model::{
    filetime_to_rfc3339, DumpReport, MetadataItem, TrackingFlags, TrackingInfo, REPORT_SCHEMA,
};
use crate::scripts::leak::{self, LeakError, LeakOptions};
use std::path::Path;
use thiserror::Error;

/// Options of an analysis run.
#[derive(Clone, Debug, Default)]
pub struct AnalyzeOptions {
    pub leak: LeakOptions,
}

/// Why a dump could not be analysed.
#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error("{path}: {source}")]
    Leak {
        path: std::path::PathBuf,
        source: LeakError,
    },
}

/// The generator string written into reports.
pub fn generator() -> String {
    format!("leakdiag {}", env!("CARGO_PKG_VERSION"))
}

fn tracking_info(stream: &AllocationStream<'_>, totals: leak::Totals) -> TrackingInfo {
    let h = stream.header();
    let ticks = h.snapshot_time.saturating_sub(h.tracking_start);
    TrackingInfo {
        version: format!("{}.{}", h.version_major, h.version_minor),
        start: filetime_to_rfc3339(h.tracking_start),
        snapshot: filetime_to_rfc3339(h.snapshot_time),
        start_filetime: h.tracking_start,
        snapshot_filetime: h.snapshot_time,
        duration_seconds: ticks as f64 / 1e7,
        allocations: totals.allocations,
        bytes: totals.bytes,
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
    }
}

fn thousands(n: u64) -> String {
    crate::report::format::thousands(n)
}

/// Analyses the dump at `path`.
pub fn analyze_dump(path: &Path, options: &AnalyzeOptions) -> Result<DumpReport, AnalyzeError> {
    let dump = DumpFile::open(path)?;
    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let process = dump.process_info(&modules);
    let stream = dump.allocation_stream()?;

    let (tracking, leak) = match &stream {
        None => {
            warnings.insert(
                0,
                "no tracker data: the dump has no allocation stream (0x4C440001), so outstanding allocations cannot be analysed; only the process and module information is shown".to_owned(),
            );
            (None, None)
        }
        Some(stream) => {
            let analysis = leak::analyze(stream, &modules, &options.leak).map_err(|source| {
                AnalyzeError::Leak {
                    path: path.to_owned(),
                    source,
                }
            })?;
            let tracking = tracking_info(stream, analysis.totals);
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
            let invalid = analysis.invalid_stack_records;
            if invalid.allocations > 0 {
                warnings.push(format!(
                    "{} allocation records ({} bytes) have a stack index outside the stack table: they are kept in the totals under \"(no stack)\"",
                    thousands(invalid.allocations),
                    thousands(invalid.bytes)
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
            if modules.is_empty() && analysis.totals.allocations > 0 {
                warnings.push(
                    "the dump lists no modules: every allocation is charged to \"(unknown)\""
                        .to_owned(),
                );
            }
            (Some(tracking), Some(analysis))
        }
    };

    Ok(DumpReport {
        schema: REPORT_SCHEMA,
        generator: generator(),
        dump: dump.source(),
        process,
        tracking,
        leak,
        module_list: modules.modules().to_vec(),
        warnings,
    })
}
