//! The handles section: the total and a table of handle types.

use crate::model::Handles;
use crate::report::RenderError;
use crate::text::{percent, thousands};
use askama::Template;

/// Types shown in the table; the JSON has them all.
const TABLE_TYPES: usize = 20;

struct TypeRow {
    name: String,
    count: String,
    share: String,
}

#[derive(Template)]
#[template(path = "sections/handles.html")]
struct HandlesView {
    message: Option<String>,
    total: String,
    rows: Vec<TypeRow>,
    omitted: Option<String>,
}

/// Renders the section into `out`.
pub fn render(h: &Handles, out: &mut String) -> Result<(), RenderError> {
    let rows = h
        .types
        .iter()
        .take(TABLE_TYPES)
        .map(|t| TypeRow {
            name: t.type_name.clone(),
            count: thousands(t.count),
            share: percent(t.count, h.total),
        })
        .collect();
    let more = h.types.len().saturating_sub(TABLE_TYPES);
    HandlesView {
        message: h.message.clone(),
        total: thousands(h.total),
        rows,
        omitted: (more > 0).then(|| format!("{more} more types not shown.")),
    }
    .render_into(out)?;
    Ok(())
}
