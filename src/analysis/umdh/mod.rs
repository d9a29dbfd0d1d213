//! UMDH logs analysed into the same reports as dumps (docs/umdh.md).
//!
//! * A snapshot log becomes the model of a dump: its module list a [`ModuleMap`],
//!   its allocation lines an allocation stream built in memory with the library's
//!   own writer, so the one table read ([`Table::read`]) and the leak script's
//!   [`build`](super::scripts::leak::build) give the same leak section as for a
//!   dump. A snapshot has no allocation times: leak probability is not judged;
//!   growth across the snapshots of one process (a series by PID and machine,
//!   ordered by Logtime) is the evidence.
//! * A comparison log becomes a growth section ([`UmdhGrowth`]): what grew between
//!   two snapshots per module, function and stack.

use super::attribution::ModuleFilter;
use super::scripts::leak::{self, findings, symbols::Symbols};
use super::table::{SummedRecords, Table};
use super::{generator, verdict, AnalyzeError, AnalyzeOptions};
use crate::dump::stream::{AllocationStream, AllocatorKind, StreamFlags, NO_STACK};
use crate::dump::writer::AllocationStreamBuilder;
use crate::model::{
    file_name_of, filetime_to_rfc3339, DumpReport, DumpSource, Finding, FindingKind,
    FunctionGrowth, GrowthFrame, GrowthTotalLine, GrowthTotals, MetadataItem, Module, ModuleGrowth,
    ModuleMap, PdbIdentity, ProcessInfo, Section, SectionData, SectionError, Severity, StackGrowth,
    TrackingFlags, TrackingInfo, TrackingSource, UmdhGrowth, NO_STACK_MODULE, REPORT_SCHEMA,
    UNKNOWN_MODULE,
};
use crate::text::thousands;
use crate::umdh::compare::{self, frame_function, frame_module, frame_source, Comparison};
use crate::umdh::snapshot::{self, Frame, LogModule, Snapshot};
use crate::umdh::{LogKind, UmdhError};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod given;

/// Stacks listed in a growth section.
pub const GROWTH_STACKS: usize = 25;

/// The report of a UMDH log of `kind`.
pub fn analyze_umdh(
    path: &Path,
    kind: LogKind,
    options: &AnalyzeOptions,
) -> Result<DumpReport, AnalyzeError> {
    let size = std::fs::metadata(path)
        .map_err(|source| UmdhError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut report = match kind {
        LogKind::Snapshot => snapshot_report(path, options)?,
        LogKind::Comparison => comparison_report(path, options)?,
    };
    report.dump = DumpSource::new(path, size);
    verdict::apply(
        &mut report,
        &verdict::VerdictContext {
            min_window_seconds: options.leak.min_window_seconds,
            ..Default::default()
        },
    );
    Ok(report)
}

/// One section per selected script: `data` under the script `primary`, the others
/// not applicable to a UMDH log (`what`).
fn sections(
    options: &AnalyzeOptions,
    primary: &str,
    data: SectionData,
    what: &str,
) -> Vec<Section> {
    let mut data = Some(data);
    let mut out: Vec<Section> = options
        .scripts
        .iter()
        .map(|s| {
            let info = s.info();
            let result = match data.take_if(|_| info.name == primary) {
                Some(d) => Ok(d),
                None if info.name == "leak" => Err(SectionError::NotApplicable(format!(
                    "{what} holds growth between two snapshots, not outstanding allocations: see the growth section"
                ))),
                None => Err(SectionError::NotApplicable(format!(
                    "{what} holds no {}: this section needs a dump",
                    info.title.to_lowercase()
                ))),
            };
            Section {
                script: info.name,
                title: info.title,
                result,
            }
        })
        .collect();
    // The growth section is no registry script: it comes first.
    if let Some(d) = data.filter(|_| primary == GROWTH_SECTION) {
        out.insert(
            0,
            Section {
                script: GROWTH_SECTION,
                title: "Growth between two UMDH snapshots",
                result: Ok(d),
            },
        );
    }
    out
}

/// The key of the growth section in report.json.
pub const GROWTH_SECTION: &str = "umdh_growth";

fn empty_report(path: &Path) -> DumpReport {
    DumpReport {
        schema: REPORT_SCHEMA,
        generator: generator(),
        dump: DumpSource::new(path, 0),
        process: ProcessInfo::default(),
        tracking: None,
        verdict: verdict::no_tracker_data(),
        summary: Vec::new(),
        sections: Vec::new(),
        warnings: Vec::new(),
    }
}

/// The PDB identity of `m` from its image in `--images`, when the image's size
/// matches the module's; a log has none of its own.
fn image_identity(
    m: &LogModule,
    name: &str,
    files: &HashMap<String, PathBuf>,
    warnings: &mut Vec<String>,
) -> Option<(PdbIdentity, u32)> {
    let file = files.get(&name.to_ascii_lowercase())?;
    let bytes = std::fs::read(file).ok()?;
    let image = crate::pe::ImageBytes::file(&bytes);
    let parsed = image.parse().ok()?;
    if u64::from(parsed.size_of_image()) != m.size {
        warnings.push(format!(
            "{}: its SizeOfImage 0x{:X} differs from the module's size 0x{:X} in the log: not the same build, its PDB identity is not used",
            file.display(),
            parsed.size_of_image(),
            m.size
        ));
        return None;
    }
    let cv = parsed.codeview().ok()?;
    let pdb_name = file_name_of(&cv.pdb_path).to_owned();
    Some((
        PdbIdentity::from_debug_id(pdb_name, cv.debug_id),
        parsed.timestamp(),
    ))
}

fn module_map(snap: &Snapshot, images: &[PathBuf], warnings: &mut Vec<String>) -> ModuleMap {
    let files = super::scripts::modules::image_files(images);
    ModuleMap::new(
        snap.modules
            .iter()
            .map(|m| {
                let module = Module::at(&m.path, crate::addr::VirtAddr(m.base), m.size);
                let identity = image_identity(m, &module.name, &files, warnings);
                Module {
                    timestamp: identity.as_ref().map_or(0, |(_, t)| *t),
                    debug_id: identity
                        .as_ref()
                        .map(|(p, _)| p.debug_id().breakpad().to_string()),
                    debug_file: identity.as_ref().map(|(p, _)| p.pdb_name.clone()),
                    pdb: identity.map(|(p, _)| p),
                    ..module
                }
            })
            .collect(),
    )
}

/// Adds the stacks of `snap`'s traces to `builder`, their resolved frames at the
/// addresses `given` places them at, and returns each trace's stack index
/// ([`NO_STACK`] for a trace whose stack is not printed). The addresses are laid
/// out in parallel, in blocks of traces, straight into the builder's frames.
fn stream_stacks(
    snap: &Snapshot,
    given: &given::GivenFrames,
    builder: &mut AllocationStreamBuilder,
) -> Vec<u32> {
    let printed: Vec<(usize, u32)> = (0..snap.traces.len())
        .filter_map(|t| Some((t, snap.frames_of(t)?.len() as u32)))
        .collect();
    let total: usize = printed.iter().map(|&(_, n)| n as usize).sum();
    let mut frames = vec![0u64; total];
    let mut blocks = Vec::new();
    let mut rest = frames.as_mut_slice();
    for block in printed.chunks(4096) {
        let n = block.iter().map(|&(_, n)| n as usize).sum();
        let (out, more) = rest.split_at_mut(n);
        blocks.push((block, out));
        rest = more;
    }
    blocks.into_par_iter().for_each(|(block, out)| {
        let mut at = out.iter_mut();
        for &(t, _) in block {
            for (f, slot) in snap.frames_of(t).into_iter().flatten().zip(&mut at) {
                *slot = match f {
                    Frame::Address(a) => a,
                    Frame::Symbolic(i) => given.address[i as usize],
                };
            }
        }
    });
    let lens: Vec<u32> = printed.iter().map(|&(_, n)| n).collect();
    let ids = builder.add_stacks(frames, &lens);
    let mut stack_of = vec![NO_STACK; snap.traces.len()];
    for (&(t, _), id) in printed.iter().zip(ids) {
        stack_of[t] = id;
    }
    stack_of
}

fn snapshot_report(path: &Path, options: &AnalyzeOptions) -> Result<DumpReport, AnalyzeError> {
    let mut snap = snapshot::parse(path)?;
    let mut warnings = std::mem::take(&mut snap.warnings);
    let modules = module_map(&snap, &options.images, &mut warnings);

    // Stacks by trace index; resolved frames at their module's made-up addresses.
    let given = given::given_frames(&snap.symbolic, &modules);
    let mut builder = AllocationStreamBuilder::new(0, 0);
    builder.flags = StreamFlags::RETURN_ADDRESSES;
    let stack_of = stream_stacks(&snap, &given, &mut builder);
    // The frames are in the builder now: the snapshot's go before the stream is
    // laid out (a third copy of every frame at the peak otherwise).
    drop(std::mem::take(&mut snap.frames));
    drop(std::mem::take(&mut snap.symbolic));
    if given.unlisted > 0 {
        warnings.push(format!(
            "{}: {} distinct resolved stack frames name a module the log does not list: they are \"(unknown)\"",
            path.display(),
            thousands(given.unlisted)
        ));
    }
    if given.crowded > 0 {
        warnings.push(format!(
            "{}: {} distinct resolved stack frames past the first {} of their module (fewer in a module smaller than a page) are charged to it without their function",
            path.display(),
            thousands(given.crowded),
            given::GIVEN_OFFSETS - 1
        ));
    }
    // The allocations are summed per stack, not laid out one by one: the stream
    // holds only the stacks.
    let records = SummedRecords {
        time: 0,
        allocator: AllocatorKind::Heap,
        by_size: snap
            .sizes
            .par_iter()
            .map(|&(t, b, s)| (stack_of[t as usize], usize::from(b), s))
            .collect(),
        by_heap: snap
            .by_heap
            .par_iter()
            .map(|&(t, heap, s)| (stack_of[t as usize], heap, s))
            .collect(),
    };
    // The per-trace parts are in the records now: what follows needs only the
    // snapshot's header, modules, heaps and totals. Freed on another thread (a
    // million IDs are a million frees).
    super::drop_later(Box::new((
        std::mem::take(&mut snap.sizes),
        std::mem::take(&mut snap.by_heap),
        std::mem::take(&mut snap.traces),
        stack_of,
    )));
    let filetime = snap.header.logtime_filetime.unwrap_or(0);
    builder.tracking_start = filetime;
    builder.snapshot_time = filetime;
    let bytes = builder.build();
    drop(builder);
    let stream = AllocationStream::parse(&bytes).map_err(|e| UmdhError::NotUmdh {
        path: path.to_owned(),
        reason: format!("the stacks could not be laid out: {e}"),
    })?;

    // The reader has checked that the sizes add up to less than 2^64.
    let table = Table::from_summed(&stream, &modules, &options.leak.system_modules, &records);
    drop(records);
    let wanted = super::attribution::modules_in_stacks(&stream, &table.frames, modules.len());
    let no_memory = |_: u64, _: usize| None;
    let symbols = Symbols::load(&options.symbolizer, &modules, &wanted, &no_memory, true);
    let mut analysis = leak::build(&stream, &table, &modules, &options.leak, &symbols, None);
    given::show_given(
        &mut analysis,
        &table,
        &modules,
        &symbols,
        &given,
        options.leak.top_functions,
    );
    // No allocation times: a timeline would put everything in one bin.
    for m in &mut analysis.modules {
        m.timeline.clear();
    }
    let mut summary = findings::findings(
        &analysis,
        &findings::FindingInputs {
            // No window to be short: UMDH has no allocation times at all.
            window_seconds: 0.0,
            min_window_seconds: 0,
            flags: stream.flags(),
            max_depth: None,
            tracking_began: None,
        },
    );
    summary.push(Finding::new(
        Severity::Information,
        FindingKind::NoAllocationTimes,
        "leak",
        "A UMDH snapshot has no allocation times: leak probability is not judged".into(),
        "UMDH records each outstanding allocation and its stack but not when it was made, so leak probability by age is not available; growth across snapshots of the same process is.".into(),
        "Take snapshots of the same process over time (umdh -p:PID -f:FILE, three or more) and analyse them together: what grows in every interval is a leak.".into(),
    ));
    summary.sort_by_key(|f| f.severity);

    let mut metadata = vec![
        ("source", Some("UMDH snapshot log".to_owned())),
        ("umdh_version", snap.header.version.clone()),
        ("logtime", snap.header.logtime.clone()),
        ("machine", snap.header.machine.clone()),
        (
            "overhead_bytes",
            Some(format!(
                "{} (UMDH's overhead column: heap headers and padding, not in the totals)",
                thousands(snap.overhead)
            )),
        ),
        ("heaps", Some(snap.heaps.len().to_string())),
        ("encoding", Some(snap.encoding.to_owned())),
        ("lines", Some(thousands(snap.lines))),
    ];
    for h in &snap.heaps {
        metadata.push((
            "heap",
            Some(format!(
                "{:X}: {} allocations, {} bytes + {} overhead{}",
                h.heap,
                thousands(h.allocations),
                thousands(h.bytes),
                thousands(h.overhead),
                if h.complete { "" } else { " (incomplete)" }
            )),
        ));
    }
    // Without a Logtime the snapshot has no time (not 1601-01-01).
    let when = filetime_to_rfc3339(filetime).filter(|_| filetime != 0);
    let tracking = TrackingInfo {
        version: "UMDH".into(),
        start: when.clone(),
        snapshot: when.clone(),
        start_filetime: filetime,
        snapshot_filetime: filetime,
        duration_seconds: 0.0,
        allocations: table.totals.allocations,
        bytes: table.totals.bytes,
        frames: stream.frame_count() as u64,
        stacks: stream.stack_count() as u64,
        flags: TrackingFlags {
            raw: stream.flags().0,
            return_addresses: true,
            dropped: false,
            truncated_stacks: false,
        },
        metadata: metadata
            .into_iter()
            .filter_map(|(k, v)| {
                v.map(|v| MetadataItem {
                    key: k.to_owned(),
                    value: Some(v),
                })
            })
            .collect(),
        allocator_modules: Vec::new(),
        source: TrackingSource::UmdhSnapshot,
    };
    if modules.is_empty() && table.totals.allocations > 0 {
        warnings.push(
            "the log lists no modules: every allocation is charged to \"(unknown)\"".to_owned(),
        );
    }
    let image = snap
        .modules
        .iter()
        .find(|m| m.path.to_ascii_lowercase().ends_with(".exe"))
        .or(snap.modules.first())
        .map(|m| m.path.clone());
    let process = ProcessInfo {
        image,
        pid: snap.header.pid,
        arch: Some(if snap.max_address > u64::from(u32::MAX) {
            "64-bit".into()
        } else {
            "32-bit".into()
        }),
        os: None,
        os_version: None,
        dump_time: when,
        process_create_time: None,
    };
    let what = "a UMDH snapshot log";
    let mut report = empty_report(path);
    report.process = process;
    report.tracking = Some(tracking);
    report.summary = summary;
    report.sections = sections(options, "leak", SectionData::Leak(Box::new(analysis)), what);
    report.warnings = warnings;
    // The table and the stream of a million stacks are hundreds of megabytes of
    // frees and unmapping that the report need not wait for.
    super::drop_later(Box::new((table, bytes, given)));
    Ok(report)
}

fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn frame_of(text: &str, responsible: bool) -> GrowthFrame {
    GrowthFrame {
        text: text.to_owned(),
        module: frame_module(text).map(str::to_owned),
        function: frame_function(text).map(str::to_owned),
        file: frame_source(text).map(|(f, _)| f.to_owned()),
        line: frame_source(text).map(|(_, l)| l),
        responsible,
    }
}

/// The growth section of a comparison log.
pub fn growth(cmp: &Comparison, system: &ModuleFilter, top_functions: usize) -> UmdhGrowth {
    let mut totals = GrowthTotals::default();
    let mut modules: HashMap<String, (GrowthTotals, u64, bool)> = HashMap::new();
    let mut functions: HashMap<(String, String), GrowthTotals> = HashMap::new();
    let mut stacks = Vec::new();
    for e in &cmp.entries {
        let t = GrowthTotals {
            old_bytes: e.old_bytes,
            new_bytes: e.new_bytes,
            growth_bytes: to_i64(e.bytes_delta()),
            old_count: e.old_count,
            new_count: e.new_count,
        };
        totals.add(&t);
        // The first frame, innermost first, outside the system modules.
        let responsible = e
            .frames
            .iter()
            .position(|f| frame_module(f).is_some_and(|m| !system.matches(m)));
        let module = match responsible {
            Some(i) => frame_module(&e.frames[i])
                .unwrap_or(UNKNOWN_MODULE)
                .to_owned(),
            None if e.frames.is_empty() => NO_STACK_MODULE.to_owned(),
            None => UNKNOWN_MODULE.to_owned(),
        };
        let function = responsible.map(|i| {
            frame_function(&e.frames[i]).map_or_else(
                || {
                    let f = e.frames[i].split_whitespace().next().unwrap_or("");
                    f.to_owned()
                },
                str::to_owned,
            )
        });
        let slot = modules
            .entry(module.clone())
            .or_insert_with(|| (GrowthTotals::default(), 0, false));
        slot.0.add(&t);
        slot.1 += 1;
        if let Some(f) = &function {
            functions
                .entry((module.clone(), f.clone()))
                .or_default()
                .add(&t);
        }
        stacks.push(StackGrowth {
            trace: e.trace.clone(),
            module,
            function,
            totals: t,
            frames: e
                .frames
                .iter()
                .enumerate()
                .map(|(i, f)| frame_of(f, Some(i) == responsible))
                .collect(),
        });
    }
    let positive: i64 = modules.values().map(|m| m.0.growth_bytes.max(0)).sum();
    let mut module_rows: Vec<ModuleGrowth> = modules
        .into_iter()
        .map(|(name, (t, n, _))| ModuleGrowth {
            system: system.matches(&name),
            share_percent: if positive > 0 {
                t.growth_bytes.max(0) as f64 * 100.0 / positive as f64
            } else {
                0.0
            },
            name,
            totals: t,
            stacks: n,
        })
        .collect();
    // Most growth first; shrinking groups last, the most shrinking at the end.
    let order = |a: &GrowthTotals, b: &GrowthTotals| b.growth_bytes.cmp(&a.growth_bytes);
    module_rows.sort_by(|a, b| order(&a.totals, &b.totals).then_with(|| a.name.cmp(&b.name)));
    let mut function_rows: Vec<FunctionGrowth> = functions
        .into_iter()
        .map(|((module, name), t)| FunctionGrowth {
            name,
            module,
            totals: t,
        })
        .collect();
    function_rows.sort_by(|a, b| order(&a.totals, &b.totals).then_with(|| a.name.cmp(&b.name)));
    let function_limit = top_functions.saturating_mul(module_rows.len().max(1));
    let functions_omitted = function_rows.len().saturating_sub(function_limit) as u64;
    function_rows.truncate(function_limit);
    stacks.sort_by(|a, b| order(&a.totals, &b.totals).then_with(|| a.trace.cmp(&b.trace)));
    let stacks_omitted = stacks.len().saturating_sub(GROWTH_STACKS) as u64;
    stacks.truncate(GROWTH_STACKS);
    UmdhGrowth {
        decimal: cmp.decimal,
        totals,
        total_line: cmp.total.map(|t| GrowthTotalLine {
            requested: to_i64(t.requested),
            overhead: t.overhead.map(to_i64),
            total: t.total.map(to_i64),
        }),
        modules: module_rows,
        functions: function_rows,
        functions_omitted,
        stacks,
        stacks_omitted,
    }
}

fn comparison_report(path: &Path, options: &AnalyzeOptions) -> Result<DumpReport, AnalyzeError> {
    let cmp = compare::parse(path)?;
    let mut warnings = cmp.warnings.clone();
    let g = growth(
        &cmp,
        &options.leak.system_modules,
        options.leak.top_functions,
    );
    if let Some(t) = &g.total_line {
        if t.requested != g.totals.growth_bytes {
            warnings.push(format!(
                "{}: UMDH's total line says {} bytes requested, the stacks listed add up to {}: the log may be cut or filtered",
                path.display(),
                t.requested,
                g.totals.growth_bytes
            ));
        }
    }
    let mut report = empty_report(path);
    report.summary = vec![Finding::new(
        Severity::Information,
        FindingKind::NoAllocationTimes,
        GROWTH_SECTION,
        "A UMDH comparison shows growth between two snapshots, not outstanding memory".into(),
        "The log lists, per stack, how much more (or less) memory was outstanding in the second snapshot than in the first; it holds no allocation times and no full table of outstanding allocations.".into(),
        "Analyse the snapshot logs themselves (three or more of one process) for outstanding memory, ranked modules and growth in every interval.".into(),
    )];
    report.sections = sections(
        options,
        GROWTH_SECTION,
        SectionData::UmdhGrowth(Box::new(g)),
        "a UMDH comparison log",
    );
    report.warnings = warnings;
    Ok(report)
}
