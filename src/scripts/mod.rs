//! Memory-pressure scripts: independent analyses of one dump, each producing one
//! section of the report.
//!
//! A script implements [`Script`]; its output implements [`SectionData`] (serde for
//! the JSON, an HTML view in `report::sections`, and its findings). [`registry`] lists
//! every script: adding a script is one file here, its view, and one line there.
//! [`run_scripts`] runs the selected scripts in parallel; a script that fails (or
//! panics) becomes an error entry and the others still run.

pub mod attribution;
pub mod handles;
pub mod leak;
pub mod modules;
pub mod process;
pub mod virtual_memory;

use crate::analyze::AnalyzeOptions;
use crate::dump::stream::AllocationStream;
use crate::dump::DumpFile;
use crate::model::{ModuleMap, ProcessInfo};
use crate::report::RenderError;
use rayon::prelude::*;
use serde::Serialize;
use std::any::Any;
use thiserror::Error;

/// Every script, in report order.
pub fn registry() -> &'static [&'static dyn Script] {
    &[
        &leak::LeakScript,
        &process::ProcessScript,
        &virtual_memory::VirtualMemoryScript,
        &handles::HandlesScript,
        &modules::ModulesScript,
    ]
}

/// Looks a script up by name.
pub fn find(name: &str) -> Option<&'static dyn Script> {
    registry().iter().copied().find(|s| s.name() == name)
}

/// What a script reads from the dump, for `leakdiag scripts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// leakdiag's allocation stream (tracker data).
    AllocationStream,
    ModuleList,
    MemoryInfoList,
    MiscInfo,
    ProcessVmCounters,
    ThreadList,
    HandleData,
    /// Module images, from dump memory or `--images`.
    ModuleImages,
    /// PDB files, through the symbol path.
    Symbols,
}

impl Need {
    pub fn label(self) -> &'static str {
        match self {
            Need::AllocationStream => "allocation stream",
            Need::ModuleList => "module list",
            Need::MemoryInfoList => "memory-info list",
            Need::MiscInfo => "misc info",
            Need::ProcessVmCounters => "process VM counters",
            Need::ThreadList => "thread list",
            Need::HandleData => "handle data",
            Need::ModuleImages => "module images",
            Need::Symbols => "symbols",
        }
    }
}

/// Everything a script may read about one dump.
pub struct ScriptContext<'a> {
    pub dump: &'a DumpFile,
    pub modules: &'a ModuleMap,
    pub process: &'a ProcessInfo,
    /// `None` when the dump has no allocation stream.
    pub stream: Option<&'a AllocationStream<'a>>,
    pub options: &'a AnalyzeOptions,
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// A conclusion for the analysis summary.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The script that made it.
    pub script: &'static str,
    pub title: String,
    pub description: String,
    pub recommendation: String,
}

/// A script's output: serializable, rendered to HTML by `report::sections`, and
/// carrying the findings it supports.
pub trait SectionData: Serialize + Send + Sync + 'static {
    /// Writes the section's HTML fragment.
    fn render_html(&self, out: &mut String) -> Result<(), RenderError>;
    /// The findings for the analysis summary.
    fn findings(&self) -> Vec<Finding> {
        Vec::new()
    }
}

/// Object-safe face of [`SectionData`].
pub trait Section: Send + Sync {
    fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    fn render_html(&self, out: &mut String) -> Result<(), RenderError>;
    fn findings(&self) -> Vec<Finding>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: SectionData> Section for T {
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
    fn render_html(&self, out: &mut String) -> Result<(), RenderError> {
        SectionData::render_html(self, out)
    }
    fn findings(&self) -> Vec<Finding> {
        SectionData::findings(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Why a script produced no section.
#[derive(Debug, Clone, Error)]
pub enum ScriptError {
    /// The dump lacks what the script reads; not a failure of the input.
    #[error("{0}")]
    NotApplicable(String),
    #[error("{0}")]
    Failed(String),
}

/// A memory-pressure script.
pub trait Script: Sync {
    /// Stable name: the section's key in report.json and the `--scripts` value.
    fn name(&self) -> &'static str;
    /// The section's title in the report.
    fn title(&self) -> &'static str;
    /// One line for `leakdiag scripts`.
    fn description(&self) -> &'static str;
    /// What the script reads from the dump.
    fn needs(&self) -> &'static [Need];
    fn run(&self, ctx: &ScriptContext<'_>) -> Result<Box<dyn Section>, ScriptError>;
}

/// A script's result in a report.
pub struct SectionOutcome {
    pub script: &'static str,
    pub title: &'static str,
    pub result: Result<Box<dyn Section>, ScriptError>,
}

impl std::fmt::Debug for SectionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let result = match &self.result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{e:?}"),
        };
        write!(f, "SectionOutcome({}: {result})", self.script)
    }
}

impl SectionOutcome {
    /// The section as `T`, if the script succeeded and produces `T`.
    pub fn data<T: 'static>(&self) -> Option<&T> {
        self.result.as_ref().ok()?.as_any().downcast_ref()
    }
}

/// Runs `scripts` over one dump in parallel; results are in the given order.
pub fn run_scripts(
    scripts: &[&'static dyn Script],
    ctx: &ScriptContext<'_>,
) -> Vec<SectionOutcome> {
    scripts
        .par_iter()
        .map(|script| {
            let run = std::panic::AssertUnwindSafe(|| script.run(ctx));
            let result = std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(ScriptError::Failed(format!(
                    "the script stopped on an internal error (please report it): {what}"
                )))
            });
            SectionOutcome {
                script: script.name(),
                title: script.title(),
                result,
            }
        })
        .collect()
}

/// Resolves `--scripts a,b` against the registry, keeping registry order.
pub fn select(names: Option<&[String]>) -> Result<Vec<&'static dyn Script>, String> {
    let Some(names) = names else {
        return Ok(registry().to_vec());
    };
    for n in names {
        if find(n).is_none() {
            let known: Vec<&str> = registry().iter().map(|s| s.name()).collect();
            return Err(format!(
                "unknown script \"{n}\" (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(registry()
        .iter()
        .copied()
        .filter(|s| names.iter().any(|n| n == s.name()))
        .collect())
}
