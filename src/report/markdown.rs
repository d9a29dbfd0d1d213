//! `summary.md`: a short Markdown text for a ticket: the incident, the top modules,
//! the findings with their recommendations, and the files of the report.

use crate::model::DumpReport;
use crate::text::{
    approx_bytes, duration, one_line, percent, probability, thousands, ControlFilter,
};
use std::io::{self, Write};
use std::path::Path;

/// Modules listed in the summary.
const TOP: usize = 5;

/// Text from a dump (or built from it) made inert for a ticket system: one line, no
/// control characters, HTML's `&`, `<` and `>` as entities, and the characters that
/// Markdown (CommonMark, GitHub, GitLab) reads as markup inside a line backslash-
/// escaped (`\`, `` ` ``, `*`, `_` at a word's edge, `[`, `]`, `|`, `~`, `$`), so that
/// no tag, link, image, code span, emphasis, math or table cell can start inside it.
/// (Parentheses and `!` need no escape once `[` and `]` have one; `#` and list
/// markers only act at a line's start, where no value is written.) The rendered text
/// reads as the original.
pub fn inline(s: &str) -> String {
    let s = one_line(s);
    let mut out = String::with_capacity(s.len() + 8);
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // `_` inside a word (`w3wp_4711`) cannot start emphasis: left as it is.
        let in_word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        if c == '_' && in_word(i.checked_sub(1)) && in_word(Some(i + 1)) {
            out.push(c);
            continue;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn cell(s: &str) -> String {
    inline(s)
}

/// Writes the summary of `report` (in folder `report_dir` of the run) to `w`.
pub fn render_summary<W: Write>(
    mut w: W,
    report: &DumpReport,
    report_dir: &str,
    vendor_dirs: &[String],
) -> io::Result<()> {
    let p = &report.process;
    writeln!(
        w,
        "# Memory leak analysis: {}",
        cell(&report.dump.file_name)
    )?;
    writeln!(w)?;
    let v = &report.verdict;
    let confidence = match v.confidence {
        crate::model::Confidence::High => "high",
        crate::model::Confidence::Medium => "medium",
        crate::model::Confidence::Low => "low",
    };
    writeln!(
        w,
        "**Verdict: {} ({confidence} confidence).** {}",
        v.status.label(),
        cell(&v.headline)
    )?;
    writeln!(w)?;
    if !v.modules.is_empty() {
        writeln!(
            w,
            "| Module | Vendor | Outstanding bytes | Share | Growth per hour | Leak probability |"
        )?;
        writeln!(w, "|---|---|---:|---:|---:|---:|")?;
        for m in &v.modules {
            writeln!(
                w,
                "| {} | {} | {} | {:.1}% | {} | {} |",
                cell(&m.name),
                cell(m.company.as_deref().unwrap_or("unknown")),
                thousands(m.bytes),
                m.share_percent,
                m.growth_per_hour
                    .map_or_else(|| "–".to_owned(), |g| thousands(g.max(0.0).round() as u64)),
                probability(m.leak_probability)
            )?;
        }
        writeln!(w)?;
    }
    writeln!(w, "Next step: {}", cell(&v.next_step))?;
    writeln!(w)?;
    let image = p
        .image
        .as_deref()
        .map(|i| crate::model::Module::file_name_of(i).to_owned())
        .unwrap_or_else(|| "unknown process".into());
    let pid = p.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    writeln!(w, "- Process: {}{pid}", inline(&image))?;
    if let Some(t) = &p.dump_time {
        writeln!(w, "- Dump written: {}", inline(t))?;
    }
    match &report.tracking {
        Some(t) if t.source == crate::model::TrackingSource::UmdhSnapshot => writeln!(
            w,
            "- Source: UMDH snapshot log, Logtime {} ({} outstanding allocations, {} bytes; no allocation times, so leak probability is not judged)",
            t.snapshot.as_deref().unwrap_or("unknown"),
            thousands(t.allocations),
            thousands(t.bytes)
        )?,
        Some(t) => writeln!(
            w,
            "- Tracking: {} from {} ({} outstanding allocations, {} bytes)",
            duration(t.duration_seconds),
            inline(t.start.as_deref().unwrap_or("?")),
            thousands(t.allocations),
            thousands(t.bytes)
        )?,
        None if report.umdh_growth().is_some() => writeln!(
            w,
            "- Source: UMDH comparison log: growth between two snapshots, not outstanding memory"
        )?,
        None => writeln!(w, "- Tracking: no tracker data in this dump")?,
    }
    writeln!(w)?;

    if let Some(g) = report.umdh_growth() {
        writeln!(w, "## Growth between the two snapshots, by module")?;
        writeln!(w)?;
        writeln!(
            w,
            "| Module | Old bytes | New bytes | Growth | Share of growth |"
        )?;
        writeln!(w, "|---|---:|---:|---:|---:|")?;
        for m in g.modules.iter().take(TOP) {
            let growth = m.totals.growth_bytes;
            writeln!(
                w,
                "| {} | {} | {} | {}{} | {:.1}% |",
                cell(&m.name),
                thousands(m.totals.old_bytes),
                thousands(m.totals.new_bytes),
                if growth < 0 { "−" } else { "+" },
                thousands(growth.unsigned_abs()),
                m.share_percent
            )?;
        }
        writeln!(w)?;
    }

    if let Some(leak) = report.leak() {
        writeln!(w, "## Top modules by outstanding bytes")?;
        writeln!(w)?;
        writeln!(
            w,
            "| Module | Allocations | Bytes | Share | Leak probability |"
        )?;
        writeln!(w, "|---|---:|---:|---:|---:|")?;
        for m in leak.modules.iter().take(TOP) {
            writeln!(
                w,
                "| {} | {} | {} ({}) | {} | {} |",
                cell(&m.name),
                thousands(m.allocations),
                thousands(m.bytes),
                approx_bytes(m.bytes),
                percent(m.bytes, leak.totals.bytes),
                probability(m.leak_probability)
            )?;
        }
        if leak.modules.len() > TOP {
            writeln!(w)?;
            writeln!(
                w,
                "{} more modules in the full report.",
                leak.modules.len() - TOP
            )?;
        }
        writeln!(w)?;
    }

    writeln!(w, "## Findings")?;
    writeln!(w)?;
    if report.summary.is_empty() {
        writeln!(w, "No findings.")?;
    }
    for f in &report.summary {
        writeln!(
            w,
            "- **{}: {}** {}",
            f.severity.label(),
            cell(&f.title),
            cell(&f.description)
        )?;
        if !f.recommendation.is_empty() {
            writeln!(w, "  - Recommendation: {}", cell(&f.recommendation))?;
        }
    }
    if !report.warnings.is_empty() {
        writeln!(w)?;
        writeln!(w, "## Warnings")?;
        writeln!(w)?;
        for warning in &report.warnings {
            writeln!(w, "- {}", cell(warning))?;
        }
    }
    writeln!(w)?;
    writeln!(w, "## Files (paths in the report folder)")?;
    writeln!(w)?;
    writeln!(
        w,
        "- `{report_dir}/report.html`: the full report (open in any browser)"
    )?;
    writeln!(w, "- `{report_dir}/report.json`: the same data as JSON")?;
    writeln!(
        w,
        "- `index.html`: every dump of the incident and the growth between them"
    )?;
    for v in vendor_dirs {
        writeln!(w, "- `{v}/report.html`: the report for the module's vendor")?;
    }
    Ok(())
}

/// Writes `summary.md`.
pub fn write_summary(
    path: &Path,
    report: &DumpReport,
    report_dir: &str,
    vendor_dirs: &[String],
) -> io::Result<()> {
    let mut w = io::BufWriter::new(ControlFilter::new(std::fs::File::create(path)?));
    render_summary(&mut w, report, report_dir, vendor_dirs)?;
    w.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .into_inner()?
        .flush()
}
