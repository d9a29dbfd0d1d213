//! One dump from file to [`DumpReport`]: open, build the model, run the analysis.

use crate::dump::stream::{AllocationStream, NO_STACK};
use crate::dump::{DumpError, DumpFile};
use crate::model::{
    filetime_to_rfc3339, DumpReport, MetadataItem, TrackingFlags, TrackingInfo, REPORT_SCHEMA,
};
use crate::report::format::thousands;
use crate::scripts::leak::LeakOptions;
use crate::scripts::{self, run_scripts, Script, ScriptContext, ScriptError};
use crate::symbols::{SymbolOptions, Symbolizer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

impl std::fmt::Debug for dyn Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a dump could not be analysed.
#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error("{path}: allocation stream: the sizes of the outstanding allocations add up to more than 2^64 bytes (at allocation {index}, size {size})")]
    TotalOverflow {
        path: PathBuf,
        index: u64,
        size: u64,
    },
}

/// The generator string written into reports.
pub fn generator() -> String {
    format!("leakdiag {}", env!("CARGO_PKG_VERSION"))
}

/// What one read of the allocation table tells before any script runs.
struct TableScan {
    allocations: u64,
    bytes: u64,
    /// Records whose stack index is neither `NO_STACK` nor in the stack table.
    invalid: u64,
    invalid_bytes: u64,
}

/// Reads the allocation table once: outstanding totals, refusing sums past 2^64 so
/// that every later sum is exact, and the records with an invalid stack index.
fn scan(stream: &AllocationStream<'_>, path: &Path) -> Result<TableScan, AnalyzeError> {
    let stacks = stream.stack_count();
    let (mut bytes, mut invalid, mut invalid_bytes) = (0u64, 0u64, 0u64);
    for (index, a) in stream.allocations().enumerate() {
        bytes = bytes
            .checked_add(a.size)
            .ok_or_else(|| AnalyzeError::TotalOverflow {
                path: path.to_owned(),
                index: index as u64,
                size: a.size,
            })?;
        if a.stack != NO_STACK && a.stack as usize >= stacks {
            invalid += 1;
            // Bounded by `bytes`, which did not overflow.
            invalid_bytes += a.size;
        }
    }
    Ok(TableScan {
        allocations: stream.allocation_count() as u64,
        bytes,
        invalid,
        invalid_bytes,
    })
}

fn tracking_info(stream: &AllocationStream<'_>, scan: &TableScan) -> TrackingInfo {
    let h = stream.header();
    let ticks = h.snapshot_time.saturating_sub(h.tracking_start);
    TrackingInfo {
        version: format!("{}.{}", h.version_major, h.version_minor),
        start: filetime_to_rfc3339(h.tracking_start),
        snapshot: filetime_to_rfc3339(h.snapshot_time),
        start_filetime: h.tracking_start,
        snapshot_filetime: h.snapshot_time,
        duration_seconds: ticks as f64 / 1e7,
        allocations: scan.allocations,
        bytes: scan.bytes,
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

/// Analyses the dump at `path`.
pub fn analyze_dump(path: &Path, options: &AnalyzeOptions) -> Result<DumpReport, AnalyzeError> {
    let dump = DumpFile::open(path)?;
    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let process = dump.process_info(&modules);
    let stream = dump.allocation_stream()?;

    let tracking = match &stream {
        None => {
            warnings.insert(
                0,
                "no tracker data: the dump has no allocation stream (0x4C440001), so outstanding allocations cannot be analysed; only the process and module information is shown".to_owned(),
            );
            None
        }
        Some(stream) => {
            let scan = scan(stream, path)?;
            let tracking = tracking_info(stream, &scan);
            stream_warnings(stream, &scan, modules.is_empty(), &mut warnings);
            Some(tracking)
        }
    };

    let ctx = ScriptContext {
        dump: &dump,
        modules: &modules,
        process: &process,
        stream: stream.as_ref(),
        options,
    };
    let sections = run_scripts(&options.scripts, &ctx);
    for s in &sections {
        if let Err(ScriptError::Failed(message)) = &s.result {
            warnings.push(format!("the {} script failed: {message}", s.script));
        }
    }
    let mut summary: Vec<_> = sections
        .iter()
        .filter_map(|s| s.result.as_ref().ok())
        .flat_map(|s| s.findings())
        .collect();
    // Stable: within a severity, findings keep the scripts' order.
    summary.sort_by_key(|f| f.severity);

    Ok(DumpReport {
        schema: REPORT_SCHEMA,
        generator: generator(),
        dump: dump.source(),
        process,
        tracking,
        summary,
        sections,
        warnings,
    })
}

/// What the reader must know about the tracker's data.
fn stream_warnings(
    stream: &AllocationStream<'_>,
    scan: &TableScan,
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
    if scan.invalid > 0 {
        warnings.push(format!(
            "{} allocation records ({} bytes) have a stack index outside the stack table: they are kept in the totals under \"(no stack)\"",
            thousands(scan.invalid),
            thousands(scan.invalid_bytes)
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
    if no_modules && scan.allocations > 0 {
        warnings.push(
            "the dump lists no modules: every allocation is charged to \"(unknown)\"".to_owned(),
        );
    }
}
