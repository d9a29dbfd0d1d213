//! Memory-pressure scripts: independent analyses of one dump, each producing one
//! section of the report and the findings it supports.
//!
//! A script implements [`Script`] and produces one variant of [`SectionData`]. [`registry`] lists every script:
//! adding a script is one file here, its variant in the model, its view in
//! `report::sections`, and one line in [`registry`]. [`run_scripts`] runs the
//! selected scripts in parallel; a script that fails (or panics) becomes an error
//! entry and the others still run.

pub mod handles;
pub mod leak;
pub mod modules;
pub mod process;
pub mod reachability;
pub mod virtual_memory;

use super::table::Table;
use super::AnalyzeOptions;
use crate::dump::stream::AllocationStream;
use crate::dump::DumpFile;
use crate::model::{Finding, ModuleMap, ProcessInfo, Section, SectionData, SectionError};
use rayon::prelude::*;
use serde::Serialize;

/// Every script, in report order.
pub fn registry() -> &'static [&'static dyn Script] {
    &[
        &leak::LeakScript,
        &reachability::ReachabilityScript,
        &process::ProcessScript,
        &virtual_memory::VirtualMemoryScript,
        &handles::HandlesScript,
        &modules::ModulesScript,
    ]
}

/// Looks a script up by name.
pub fn find(name: &str) -> Option<&'static dyn Script> {
    registry().iter().copied().find(|s| s.info().name == name)
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
    /// The process's memory (MemoryListStream, Memory64ListStream).
    Memory,
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
            Need::Memory => "process memory (full-memory dump)",
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
    /// The one read of the stream's allocation table; `None` without a stream.
    pub table: Option<&'a Table>,
    /// The reachability scan; `None` when the reachability script is not selected.
    pub reachability: Option<&'a crate::analysis::reachability::Outcome<'a>>,
    pub options: &'a AnalyzeOptions,
}

impl<'a> ScriptContext<'a> {
    /// The allocation stream and its table, for the scripts that read the tracker's
    /// data; a dump without them makes such a script not applicable.
    pub fn tracked(&self) -> Result<(&'a AllocationStream<'a>, &'a Table), SectionError> {
        match (self.stream, self.table) {
            (Some(stream), Some(table)) => Ok((stream, table)),
            _ => Err(SectionError::NotApplicable(
                "the dump has no allocation stream (no tracker data)".into(),
            )),
        }
    }
}

/// What a script is, for the registry, `--scripts` and `leakdiag scripts`.
#[derive(Debug)]
pub struct ScriptInfo {
    /// Stable name: the section's key in report.json and the `--scripts` value.
    pub name: &'static str,
    /// The section's title in the report.
    pub title: &'static str,
    /// One line for `leakdiag scripts`.
    pub description: &'static str,
    /// What the script reads from the dump.
    pub needs: &'static [Need],
}

/// A script's result: its section and the findings for the analysis summary.
pub struct ScriptOutput {
    pub data: SectionData,
    pub findings: Vec<Finding>,
}

impl ScriptOutput {
    pub fn new(data: SectionData, findings: Vec<Finding>) -> Self {
        ScriptOutput { data, findings }
    }
}

/// A memory-pressure script.
pub trait Script: Sync {
    fn info(&self) -> &'static ScriptInfo;
    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError>;
}

impl std::fmt::Debug for dyn Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.info().name)
    }
}

/// Runs `scripts` over one dump in parallel; results are in the given order, each
/// section with its findings.
pub fn run_scripts(
    scripts: &[&'static dyn Script],
    ctx: &ScriptContext<'_>,
) -> Vec<(Section, Vec<Finding>)> {
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
                Err(SectionError::Failed(format!(
                    "the script stopped on an internal error (please report it): {what}"
                )))
            });
            let info = script.info();
            let (result, findings) = match result {
                Ok(out) => (Ok(out.data), out.findings),
                Err(e) => (Err(e), Vec::new()),
            };
            let section = Section {
                script: info.name,
                title: info.title,
                result,
            };
            (section, findings)
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
            let known: Vec<&str> = registry().iter().map(|s| s.info().name).collect();
            return Err(format!(
                "unknown script \"{n}\" (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(registry()
        .iter()
        .copied()
        .filter(|s| names.iter().any(|n| n == s.info().name))
        .collect())
}
