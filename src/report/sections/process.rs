//! The process section: identity, times, threads and memory counters.

use crate::model::{ProcessSection, NO_COMMAND_LINE};
use crate::report::view::{kv, opt, KeyValue};
use crate::report::RenderError;
use crate::text::{approx_bytes, duration, thousands};
use askama::Template;

#[derive(Template)]
#[template(path = "sections/process.html")]
struct ProcessView {
    facts: Vec<KeyValue>,
    counters: Vec<KeyValue>,
    notes: Vec<String>,
}

fn bytes(v: Option<u64>) -> Option<String> {
    v.map(|n| format!("{} bytes ({})", thousands(n), approx_bytes(n)))
}

fn seconds(v: Option<u32>) -> String {
    v.map(|s| duration(f64::from(s)))
        .unwrap_or_else(|| "–".into())
}

/// Renders the section into `out`.
pub fn render(p: &ProcessSection, out: &mut String) -> Result<(), RenderError> {
    let facts = vec![
        kv("Image", opt(&p.image)),
        kv(
            "Command line",
            p.command_line
                .clone()
                .unwrap_or_else(|| NO_COMMAND_LINE.into()),
        ),
        kv(
            "Process ID",
            p.pid.map(|p| p.to_string()).unwrap_or_else(|| "–".into()),
        ),
        kv("Process started", opt(&p.create_time)),
        kv("Dump written", opt(&p.dump_time)),
        kv(
            "Uptime",
            p.uptime_seconds
                .map(|s| duration(s as f64))
                .unwrap_or_else(|| "–".into()),
        ),
        kv("User CPU time", seconds(p.user_time_seconds)),
        kv("Kernel CPU time", seconds(p.kernel_time_seconds)),
        kv(
            "Threads",
            p.threads.map(thousands).unwrap_or_else(|| "–".into()),
        ),
    ];
    let mut counters = Vec::new();
    if let Some(c) = &p.vm_counters {
        for (key, v) in [
            ("Private bytes", c.private_usage),
            ("Working set", c.working_set_size),
            ("Peak working set", c.peak_working_set_size),
            ("Private working set", c.private_working_set_size),
            ("Page-file usage", c.pagefile_usage),
            ("Peak page-file usage", c.peak_pagefile_usage),
            ("Virtual size", c.virtual_size),
            ("Peak virtual size", c.peak_virtual_size),
            ("Paged pool", c.quota_paged_pool_usage),
            ("Non-paged pool", c.quota_non_paged_pool_usage),
            ("Job private commit", c.job_private_commit_usage),
            ("Job private commit limit", c.job_private_commit_limit),
        ] {
            if let Some(text) = bytes(v) {
                counters.push(kv(key, text));
            }
        }
        if let Some(n) = c.page_fault_count {
            counters.push(kv("Page faults", thousands(u64::from(n))));
        }
    }
    ProcessView {
        facts,
        counters,
        notes: p.notes.clone(),
    }
    .render_into(out)?;
    Ok(())
}
