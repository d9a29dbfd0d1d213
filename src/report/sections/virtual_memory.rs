//! The virtual-memory section: totals by state, the largest free block,
//! fragmentation, and charts of the address space and of committed memory by type.

use crate::model::{Amount, VirtualMemory};
use crate::report::charts::{bar_chart, Unit};
use crate::report::view::{kv, KeyValue};
use crate::report::RenderError;
use crate::text::{approx_bytes, thousands};
use askama::Template;

#[derive(Template)]
#[template(path = "sections/virtual_memory.html")]
struct VirtualMemoryView {
    message: Option<String>,
    summary: Vec<KeyValue>,
    chart_states: String,
    chart_types: String,
}

fn amount(a: &Amount) -> String {
    let share = a
        .percent
        .map(|p| format!(", {p:.1}% of the address space"))
        .unwrap_or_default();
    format!(
        "{} bytes ({}) in {} regions{share}",
        thousands(a.bytes),
        approx_bytes(a.bytes),
        thousands(a.regions)
    )
}

/// Renders the section into `out`.
pub fn render(v: &VirtualMemory, out: &mut String) -> Result<(), RenderError> {
    if !v.present {
        return VirtualMemoryView {
            message: v.message.clone(),
            summary: Vec::new(),
            chart_states: String::new(),
            chart_types: String::new(),
        }
        .render_into(out)
        .map_err(Into::into);
    }
    let mut summary = Vec::new();
    if let Some(space) = &v.address_space {
        let basis = match space.basis {
            "user_32bit_2gib" => "user address space of a 32-bit process",
            "user_32bit_4gib" => "user address space of a large-address-aware 32-bit process",
            "user_64bit" => "user address space of a 64-bit process",
            _ => "sum of the listed regions",
        };
        summary.push(kv(
            "Address space",
            format!(
                "{} bytes ({}), {basis}",
                thousands(space.size),
                approx_bytes(space.size)
            ),
        ));
    }
    summary.push(kv("Free", amount(&v.free)));
    summary.push(kv("Reserved", amount(&v.reserved)));
    summary.push(kv("Committed", amount(&v.committed)));
    summary.push(kv(
        "Largest free block",
        v.largest_free
            .map(|l| {
                format!(
                    "{} bytes ({}) at {}",
                    thousands(l.size),
                    approx_bytes(l.size),
                    l.address
                )
            })
            .unwrap_or_else(|| "–".into()),
    ));
    summary.push(kv(
        "Free memory outside the largest block",
        v.fragmentation_percent
            .map(|p| format!("{p:.1}%"))
            .unwrap_or_else(|| "–".into()),
    ));
    let t = &v.committed_by_type;
    for (key, n) in [
        ("Committed image", t.image),
        ("Committed mapped", t.mapped),
        ("Committed private", t.private),
    ] {
        summary.push(kv(
            key,
            format!("{} bytes ({})", thousands(n), approx_bytes(n)),
        ));
    }
    let chart_states = bar_chart(
        "Address space by state",
        &[
            ("Free".into(), v.free.bytes),
            ("Reserved".into(), v.reserved.bytes),
            ("Committed".into(), v.committed.bytes),
        ],
        Unit::Bytes,
    )?;
    let mut types = vec![
        ("Image".into(), t.image),
        ("Mapped".into(), t.mapped),
        ("Private".into(), t.private),
    ];
    if t.other > 0 {
        types.push(("Other".into(), t.other));
    }
    let chart_types = bar_chart("Committed memory by type", &types, Unit::Bytes)?;
    VirtualMemoryView {
        message: None,
        summary,
        chart_states,
        chart_types,
    }
    .render_into(out)?;
    Ok(())
}
