//! HTML views of the report's sections, one file per section.

pub mod handles;
pub mod leak;
pub mod modules;
pub mod process;
pub mod reachability;
pub mod umdh_growth;
pub mod virtual_memory;

use super::RenderError;
use crate::model::SectionData;

/// Writes the HTML fragment of `section` into `out`.
pub fn render(section: &SectionData, out: &mut String) -> Result<(), RenderError> {
    match section {
        SectionData::Leak(s) => leak::render(s, out),
        SectionData::Process(s) => process::render(s, out),
        SectionData::VirtualMemory(s) => virtual_memory::render(s, out),
        SectionData::Handles(s) => handles::render(s, out),
        SectionData::Modules(s) => modules::render(s, out),
        SectionData::UmdhGrowth(s) => umdh_growth::render(s, out),
        SectionData::Reachability(s) => reachability::render(s, out),
    }
}
