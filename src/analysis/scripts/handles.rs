//! The handles script: the process's open handles by type, from the dump's
//! handle-data stream. A very high count points at a handle leak.

use super::{Need, Script, ScriptContext, ScriptInfo, ScriptOutput};
use crate::model::{
    Finding, FindingKind, HandleType, Handles, SectionData, SectionError, Severity, NO_TYPE,
};
use crate::text::thousands;
use minidump::MinidumpHandleDataStream;
use std::collections::HashMap;

/// At or above this many open handles the section reports a probable handle leak
/// (warning). Busy servers hold a few thousand; tens of thousands are rarely
/// intended.
pub const HANDLE_COUNT_WARNING: u64 = 10_000;

/// The handles script.
pub struct HandlesScript;

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

const INFO: ScriptInfo = ScriptInfo {
    name: "handles",
    title: "Handles",
    description: "open handles by type; flags a probable handle leak",
    needs: &[Need::HandleData],
};

impl Script for HandlesScript {
    fn info(&self) -> &'static ScriptInfo {
        &INFO
    }

    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        let stream = match ctx.dump.minidump().get_stream::<MinidumpHandleDataStream>() {
            Ok(s) => s,
            Err(minidump::Error::StreamNotFound) => {
                return Ok(output(Handles::absent(
                    "The dump has no handle data (HandleDataStream): write it with MiniDumpWithHandleData to see the open handles.",
                )))
            }
            Err(e) => {
                return Ok(output(Handles::absent(format!(
                    "The dump's handle data cannot be read: {e}."
                ))))
            }
        };
        Ok(output(count_types(
            stream.handles.iter().map(|h| h.type_name.as_deref()),
        )))
    }
}

/// The findings the section supports.
pub fn findings(section: &Handles) -> Vec<Finding> {
    if !section.present || section.total < HANDLE_COUNT_WARNING {
        return Vec::new();
    }
    let top = section
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
        kind: FindingKind::HandleCount,
        script: "handles",
        module: None,
        stack: None,
        title: format!("{} open handles: probable handle leak", thousands(section.total)),
        description: format!(
            "The process holds {} handles, at or above {}.{top}",
            thousands(section.total),
            thousands(HANDLE_COUNT_WARNING)
        ),
        recommendation: "Find the code that opens handles of the most frequent type without closing them (CloseHandle, RegCloseKey, …): compare two dumps taken some time apart, or trace handle operations with Application Verifier or !htrace.".to_owned(),
    }]
}

/// The section with its findings.
fn output(section: Handles) -> ScriptOutput {
    let findings = findings(&section);
    ScriptOutput::new(SectionData::Handles(Box::new(section)), findings)
}
