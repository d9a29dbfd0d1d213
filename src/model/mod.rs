//! The analysis model: every type the analysis produces and the reports read.
//!
//! Inputs (`dump`, `symbols`) fill these types; the analysis (`analysis`) computes
//! its sections, findings, series and vendor views as these types; reports
//! (`report`) only format them. The model is data: it depends on nothing above it
//! (a test checks this). The JSON reports are these types serialized, so a field
//! added here is a schema change (docs/report-schema.md).

mod finding;
mod handles;
mod index;
mod leak;
mod module;
mod modules;
mod process;
mod reachability;
mod report;
mod section;
mod series;
mod stack_id;
mod symbols;
mod time;
mod tracking;
mod umdh_growth;
mod vendor;
mod verdict;
mod virtual_memory;

pub use finding::*;
pub use handles::*;
pub use index::*;
pub use leak::*;
pub use module::*;
pub use modules::*;
pub use process::*;
pub use reachability::*;
pub use report::*;
pub use section::*;
pub use series::*;
pub use stack_id::*;
pub use symbols::*;
pub use time::*;
pub use tracking::*;
pub use umdh_growth::*;
pub use vendor::*;
pub use verdict::*;
pub use virtual_memory::*;

/// The schema tag of a dump's report.json.
pub const REPORT_SCHEMA: &str = "leakdiag-report/4";
/// The schema tag of a run's index.json.
pub const INDEX_SCHEMA: &str = "leakdiag-index/3";
/// The schema tag of a vendor report.
pub const VENDOR_SCHEMA: &str = "leakdiag-vendor-report/2";
