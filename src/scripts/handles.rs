//! The handles script: the process's open handles by type, from the dump's
//! handle-data stream. A very high count points at a handle leak.

use super::{Finding, Need, Script, ScriptContext, ScriptError, Section, SectionData, Severity};
use crate::report::format::thousands;
use crate::report::RenderError;
use minidump::MinidumpHandleDataStream;
use serde::Serialize;
use std::collections::HashMap;

/// At or above this many open handles the section reports a probable handle leak
/// (warning). Busy servers hold a few thousand; tens of thousands are rarely
/// intended.
pub const HANDLE_COUNT_WARNING: u64 = 10_000;

/// The type name shown for handles whose descriptor has none.
pub const NO_TYPE: &str = "(no type)";

/// The handles script.
pub struct HandlesScript;

/// Open handles of one type.
#[derive(Clone, Debug, Serialize)]
pub struct HandleType {
    pub type_name: String,
    pub count: u64,
}

/// The section.
#[derive(Clone, Debug, Serialize)]
pub struct Handles {
    /// Whether the dump has a handle-data stream; when false only `message` is set.
    pub present: bool,
    pub message: Option<String>,
    pub total: u64,
    /// Every type, most handles first (ties by name).
    pub types: Vec<HandleType>,
}

impl Handles {
    fn absent(message: impl Into<String>) -> Self {
        Handles {
            present: false,
            message: Some(message.into()),
            total: 0,
            types: Vec::new(),
        }
    }
}

/// Counts handles by type name (`None`: no type name).
pub fn count_types<'a>(names: impl IntoIterator<Item = Option<&'a str>>) -> Handles {
    let mut by_type: HashMap<&str, u64> = HashMap::new();
    let mut total = 0u64;
    for name in names {
        let name = name.filter(|n| !n.is_empty()).unwrap_or(NO_TYPE);
        *by_type.entry(name).or_default() += 1;
        total += 1;
    }
    let mut types: Vec<HandleType> = by_type
        .into_iter()
        .map(|(type_name, count)| HandleType {
            type_name: type_name.to_owned(),
            count,
        })
        .collect();
    types.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.type_name.cmp(&b.type_name))
    });
    Handles {
        present: true,
        message: None,
        total,
        types,
    }
}

impl Script for HandlesScript {
    fn name(&self) -> &'static str {
        "handles"
    }
    fn title(&self) -> &'static str {
        "Handles"
    }
    fn description(&self) -> &'static str {
        "open handles by type; flags a probable handle leak"
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::HandleData]
    }
    fn run(&self, ctx: &ScriptContext<'_>) -> Result<Box<dyn Section>, ScriptError> {
        let stream = match ctx.dump.minidump().get_stream::<MinidumpHandleDataStream>() {
            Ok(s) => s,
            Err(minidump::Error::StreamNotFound) => {
                return Ok(Box::new(Handles::absent(
                    "The dump has no handle data (HandleDataStream): write it with MiniDumpWithHandleData to see the open handles.",
                )))
            }
            Err(e) => {
                return Ok(Box::new(Handles::absent(format!(
                    "The dump's handle data cannot be read: {e}."
                ))))
            }
        };
        Ok(Box::new(count_types(
            stream.handles.iter().map(|h| h.type_name.as_deref()),
        )))
    }
}

impl SectionData for Handles {
    fn render_html(&self, out: &mut String) -> Result<(), RenderError> {
        crate::report::sections::handles::render(self, out)
    }

    fn findings(&self) -> Vec<Finding> {
        if !self.present || self.total < HANDLE_COUNT_WARNING {
            return Vec::new();
        }
        let top = self
            .types
            .first()
            .map(|t| {
                format!(
                    " The most frequent type is {} ({} handles).",
                    t.type_name,
                    thousands(t.count)
                )
            })
            .unwrap_or_default();
        vec![Finding {
            severity: Severity::Warning,
            script: "handles",
            title: format!("{} open handles: probable handle leak", thousands(self.total)),
            description: format!(
                "The process holds {} handles, at or above {}.{top}",
                thousands(self.total),
                thousands(HANDLE_COUNT_WARNING)
            ),
            recommendation: "Find the code that opens handles of the most frequent type without closing them (CloseHandle, RegCloseKey, …): compare two dumps taken some time apart, or trace handle operations with Application Verifier or !htrace.".to_owned(),
        }]
    }
}
