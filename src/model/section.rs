//! Report sections: the closed set of what scripts produce.
//!
//! Every script's output is one variant of [`SectionData`]; consumers match on it,
//! so renaming a script cannot silently turn a section into "absent", and a new
//! section is a compile error wherever it must be handled.

use super::{
    Handles, LeakAnalysis, Modules, ProcessSection, Reachability, UmdhGrowth, VirtualMemory,
};
use serde::Serialize;
use thiserror::Error;

/// One script's output. Variants are boxed: sections differ much in size and a
/// report holds only a few.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum SectionData {
    Leak(Box<LeakAnalysis>),
    Process(Box<ProcessSection>),
    VirtualMemory(Box<VirtualMemory>),
    Handles(Box<Handles>),
    Modules(Box<Modules>),
    /// Which blocks are unreachable, and what holds the others.
    Reachability(Box<Reachability>),
    /// Growth between two snapshots, from a UMDH comparison log.
    UmdhGrowth(Box<UmdhGrowth>),
}

/// Why a script produced no section.
#[derive(Debug, Clone, Error)]
pub enum SectionError {
    /// The dump lacks what the script reads; not a failure of the input.
    #[error("{0}")]
    NotApplicable(String),
    #[error("{0}")]
    Failed(String),
}

impl SectionError {
    /// `skipped` or `error`, as report.json writes it.
    pub fn status(&self) -> &'static str {
        match self {
            SectionError::NotApplicable(_) => "skipped",
            SectionError::Failed(_) => "error",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            SectionError::NotApplicable(m) | SectionError::Failed(m) => m,
        }
    }
}

/// A script's result in a report.
#[derive(Clone, Debug)]
pub struct Section {
    /// The script's name: the section's key in report.json.
    pub script: &'static str,
    /// The section's title in the pages.
    pub title: &'static str,
    pub result: Result<SectionData, SectionError>,
}
