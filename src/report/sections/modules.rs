//! The modules section: a table of every loaded and unloaded module.

use crate::model::{Modules, VersionSource};
use crate::report::RenderError;
use crate::text::thousands;
use askama::Template;

struct ModuleRow {
    name: String,
    state: &'static str,
    base: String,
    size: String,
    timestamp: String,
    file_version: String,
    product_version: String,
    company: String,
    product: String,
    description: String,
    debug: String,
    path: String,
}

#[derive(Template)]
#[template(path = "sections/modules.html")]
struct ModulesView {
    message: Option<String>,
    summary: String,
    rows: Vec<ModuleRow>,
}

fn dash(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "–".to_owned())
}

/// Renders the section into `out`.
pub fn render(s: &Modules, out: &mut String) -> Result<(), RenderError> {
    let rows = s
        .modules
        .iter()
        .map(|m| {
            let v = m.version_strings.as_ref();
            let from = match m.version_source {
                Some(VersionSource::ImageFile) => " (from the image file)",
                _ => "",
            };
            ModuleRow {
                name: m.name.clone(),
                state: if m.unloaded { "unloaded" } else { "loaded" },
                base: m.base.to_string(),
                size: thousands(m.size),
                timestamp: match &m.timestamp_rfc3339 {
                    Some(t) => format!("{t} (0x{:08x})", m.timestamp),
                    None => format!("0x{:08x}", m.timestamp),
                },
                file_version: dash(m.file_version.as_ref()),
                product_version: dash(m.product_version.as_ref()),
                company: v
                    .and_then(|v| v.company_name.as_ref())
                    .map(|c| format!("{c}{from}"))
                    .unwrap_or_else(|| "–".into()),
                product: dash(v.and_then(|v| v.product_name.as_ref())),
                description: dash(v.and_then(|v| v.file_description.as_ref())),
                debug: match (&m.debug_file, &m.debug_id) {
                    (Some(f), Some(id)) => format!("{f} {id}"),
                    (Some(f), None) => f.clone(),
                    (None, Some(id)) => id.clone(),
                    (None, None) => "–".to_owned(),
                },
                path: m.path.clone(),
            }
        })
        .collect();
    ModulesView {
        message: s.message.clone(),
        summary: format!(
            "{} loaded, {} unloaded; version resource read for {}.",
            thousands(s.loaded),
            thousands(s.unloaded),
            thousands(s.with_version_strings)
        ),
        rows,
    }
    .render_into(out)?;
    Ok(())
}
