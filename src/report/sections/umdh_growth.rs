//! The growth section of a UMDH comparison log: what grew between two snapshots per
//! module, function and stack (differences, never outstanding totals).

use crate::model::{GrowthTotals, UmdhGrowth};
use crate::report::RenderError;
use crate::text::thousands;
use askama::Template;

struct Row {
    name: String,
    note: String,
    old_bytes: String,
    new_bytes: String,
    growth: String,
    counts: String,
}

struct FrameRow {
    text: String,
    responsible: bool,
}

struct StackRow {
    trace: String,
    title: String,
    growth: String,
    counts: String,
    frames: Vec<FrameRow>,
}

#[derive(Template)]
#[template(path = "sections/umdh_growth.html")]
struct GrowthView {
    base: &'static str,
    growth: String,
    old_bytes: String,
    new_bytes: String,
    total_line: Option<String>,
    modules: Vec<Row>,
    functions: Vec<Row>,
    functions_omitted: Option<String>,
    stacks: Vec<StackRow>,
    stacks_omitted: Option<String>,
}

/// `+1,234` or `−1,234`.
fn signed(n: i64) -> String {
    let m = thousands(n.unsigned_abs());
    if n < 0 {
        format!("−{m}")
    } else {
        format!("+{m}")
    }
}

fn counts(t: &GrowthTotals) -> String {
    match (t.old_count, t.new_count) {
        (Some(o), Some(n)) => format!("{} → {}", thousands(o), thousands(n)),
        (None, Some(n)) => thousands(n),
        _ => "—".into(),
    }
}

fn row(name: String, note: String, t: &GrowthTotals) -> Row {
    Row {
        name,
        note,
        old_bytes: thousands(t.old_bytes),
        new_bytes: thousands(t.new_bytes),
        growth: signed(t.growth_bytes),
        counts: counts(t),
    }
}

/// Renders the section into `out`.
pub fn render(g: &UmdhGrowth, out: &mut String) -> Result<(), RenderError> {
    let omitted = |n: u64, what: &str| {
        (n > 0).then(|| {
            format!(
                "{} more {what} not shown; the log lists them all.",
                thousands(n)
            )
        })
    };
    GrowthView {
        base: if g.decimal {
            "decimal (umdh -d)"
        } else {
            "hexadecimal"
        },
        growth: signed(g.totals.growth_bytes),
        old_bytes: thousands(g.totals.old_bytes),
        new_bytes: thousands(g.totals.new_bytes),
        total_line: g.total_line.map(|t| {
            let mut s = format!("{} bytes requested", signed(t.requested));
            if let Some(o) = t.overhead {
                s.push_str(&format!(", {} overhead", signed(o)));
            }
            if let Some(all) = t.total {
                s.push_str(&format!(", {} in all", signed(all)));
            }
            s
        }),
        modules: g
            .modules
            .iter()
            .map(|m| {
                let note = if m.system {
                    "system".to_owned()
                } else if m.totals.growth_bytes > 0 {
                    format!("{:.1}% of the growth", m.share_percent)
                } else {
                    String::new()
                };
                row(m.name.clone(), note, &m.totals)
            })
            .collect(),
        functions: g
            .functions
            .iter()
            .map(|f| row(f.name.clone(), f.module.clone(), &f.totals))
            .collect(),
        functions_omitted: omitted(g.functions_omitted, "functions"),
        stacks: g
            .stacks
            .iter()
            .map(|s| StackRow {
                trace: s.trace.clone(),
                title: s.function.clone().unwrap_or_else(|| s.module.clone()),
                growth: signed(s.totals.growth_bytes),
                counts: counts(&s.totals),
                frames: s
                    .frames
                    .iter()
                    .map(|f| FrameRow {
                        text: f.text.clone(),
                        responsible: f.responsible,
                    })
                    .collect(),
            })
            .collect(),
        stacks_omitted: omitted(g.stacks_omitted, "stacks"),
    }
    .render_into(out)?;
    Ok(())
}
