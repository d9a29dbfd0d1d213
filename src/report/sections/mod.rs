//! HTML views of the scripts' sections, one file per script.

pub mod handles;
pub mod leak;
pub mod modules;
pub mod process;
pub mod virtual_memory;
