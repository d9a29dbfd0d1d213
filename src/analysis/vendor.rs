//! Vendor reports: what concerns one module, fit to send to the company that makes
//! it. The customer's own code stays private: frames in other modules keep their
//! module name and offset but lose function names and source paths (unless the user
//! asks for `--no-redact`).

use crate::model::{
    DumpReport, Frame, Series, StackSample, VendorDump, VendorReport, VendorSeries, VENDOR_SCHEMA,
};
use crate::text::percent;

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
) -> VendorReport {
    let matches = |name: &str| name.eq_ignore_ascii_case(module);
    let mut dumps = Vec::new();
    let mut module_info = None;
    let mut name = module.to_owned();
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
            findings: r
                .summary
                .iter()
                .filter(|f| f.concerns_module(&m.name))
                .cloned()
                .collect(),
        });
    }
    let series = series
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
    VendorReport {
        schema: VENDOR_SCHEMA,
        generator: super::generator(),
        module: name,
        redacted,
        module_info,
        dumps,
        series,
    }
}
