//! Vendor reports: what concerns one module, fit to send to the company that makes
//! it. The customer's own code stays private: frames in other modules keep their
//! module name and offset but lose function names and source paths (unless the user
//! asks for `--no-redact`).

use crate::model::{
    DumpReport, Frame, ModuleLeak, Series, StackSample, SymbolStatus, VendorDump, VendorReport,
    VendorSeries, Verdict, VENDOR_SCHEMA,
};
use crate::text::{count, duration, percent, thousands};

/// Frames as a vendor may see them: frames in `module` as they are; frames in other
/// modules with their module and offset only (their inlined frames, which would
/// name the customer's functions, collapse into the one frame of the address).
pub fn redact_frames(frames: &[Frame], module: &str) -> Vec<Frame> {
    frames
        .iter()
        .filter(|f| f.module.as_deref() == Some(module) || !f.inlined)
        .map(|f| {
            if f.module.as_deref() == Some(module) {
                f.clone()
            } else {
                Frame {
                    function: None,
                    function_offset: None,
                    file: None,
                    line: None,
                    inlined: false,
                    ..f.clone()
                }
            }
        })
        .collect()
}

/// Builds the vendor report of `module` from the run's reports (with their folders)
/// and series.
pub fn build(
    module: &str,
    reports: &[(&str, &DumpReport)],
    series: &[Series],
    redacted: bool,
    verdict: &Verdict,
) -> VendorReport {
    let matches = |name: &str| name.eq_ignore_ascii_case(module);
    let mut dumps = Vec::new();
    let mut module_info = None;
    let mut name = module.to_owned();
    let mut last = None;
    for (dir, r) in reports {
        if let Some(entry) = r
            .modules()
            .and_then(|m| m.modules.iter().find(|e| matches(&e.name)))
        {
            module_info = Some(entry.clone());
        }
        let Some(leak) = r.leak() else {
            continue;
        };
        let Some(m) = leak.modules.iter().find(|m| matches(&m.name)) else {
            continue;
        };
        name = m.name.clone();
        let stacks = m
            .stacks
            .iter()
            .map(|s| StackSample {
                frames: if redacted {
                    redact_frames(&s.frames, &m.name)
                } else {
                    s.frames.clone()
                },
                ..s.clone()
            })
            .collect();
        dumps.push(VendorDump {
            file_name: r.dump.file_name.clone(),
            report_dir: (*dir).to_owned(),
            snapshot: r.tracking.as_ref().and_then(|t| t.snapshot.clone()),
            tracking_seconds: r.tracking.as_ref().map_or(0.0, |t| t.duration_seconds),
            allocations: m.allocations,
            bytes: m.bytes,
            share_of_bytes: percent(m.bytes, leak.totals.bytes),
            leak_probability: m.leak_probability,
            functions: m.functions.clone(),
            stacks,
            timeline: m.timeline.clone(),
        });
        last = Some((*r, m));
    }
    let series: Vec<VendorSeries> = series
        .iter()
        .filter_map(|s| {
            let trend = s.modules.iter().find(|t| matches(&t.name))?.clone();
            Some(VendorSeries {
                series: s.id,
                dumps: s.dumps.iter().map(|d| d.file_name.clone()).collect(),
                hours: s.dumps.iter().map(|d| d.hours).collect(),
                trend,
            })
        })
        .collect();
    let company = module_info
        .as_ref()
        .and_then(|m: &crate::model::ModuleEntry| m.version_strings.as_ref())
        .and_then(|v| v.company_name.clone());
    let observed = observed(&name, company.as_deref(), last, &series);
    let pdb = last.and_then(|(r, _)| {
        let row = r.leak()?.symbols.iter().find(|s| matches(&s.module))?;
        let file = row.pdb.as_deref().map(crate::model::file_name_of)?;
        Some(match row.status {
            SymbolStatus::Loaded => format!("{file} (loaded: its GUID and age match the module)"),
            SymbolStatus::LoadedUnverified => format!(
                "{file} (loaded by name: the module's identity was unknown, so the match is not verified)"
            ),
            other => format!("{file} ({other})"),
        })
    });
    VendorReport {
        schema: VENDOR_SCHEMA,
        generator: super::generator(),
        module: name,
        redacted,
        observed,
        status: verdict
            .modules
            .iter()
            .any(|m| matches(&m.name))
            .then_some(verdict.status),
        module_info,
        pdb,
        tracker_modules: last
            .and_then(|(r, _)| r.tracking.as_ref())
            .map(|t| t.allocator_modules.clone())
            .unwrap_or_default(),
        dumps,
        series,
    }
}

/// What we observed of the module, in plain words for its vendor.
fn observed(
    name: &str,
    company: Option<&str>,
    last: Option<(&DumpReport, &ModuleLeak)>,
    series: &[VendorSeries],
) -> String {
    let Some((r, m)) = last else {
        return format!("{name} held no outstanding allocations in the dumps analysed.");
    };
    let who = match company {
        Some(c) => format!("{name} ({c})"),
        None => name.to_owned(),
    };
    let total = r.leak().map_or(0, |l| l.totals.bytes);
    let mut text = format!(
        "When {} was written, after {} of allocation tracking, {who} held {} that it had allocated and not freed: {} bytes, {} of all outstanding bytes of the process.",
        r.dump.file_name,
        duration(r.tracking.as_ref().map_or(0.0, |t| t.duration_seconds)),
        count(m.allocations, "allocation"),
        thousands(m.bytes),
        percent(m.bytes, total)
    );
    for s in series.iter().filter(|s| s.trend.bytes.len() >= 2) {
        let t = &s.trend;
        let first = t.bytes.first().copied().unwrap_or(0);
        let last = t.bytes.last().copied().unwrap_or(0);
        text.push_str(&format!(
            " Across {} dumps of the same process its outstanding memory went from {} to {} bytes ({}{}).",
            t.bytes.len(),
            thousands(first),
            thousands(last),
            t.verdict.label(),
            t.rate_per_hour
                .map(|r| format!(", {} bytes per hour", thousands(r.max(0.0).round() as u64)))
                .unwrap_or_default()
        ));
    }
    if let Some(f) = m.functions.first() {
        text.push_str(&format!(
            " The largest part was allocated in {} ({} bytes).",
            f.name,
            thousands(f.bytes)
        ));
    }
    if let Some(p) = m.leak_probability {
        text.push_str(&format!(
            " The times at which these blocks were allocated give a leak probability of {p}% (see below)."
        ));
    }
    text
}
