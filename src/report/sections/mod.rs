//! HTML views of the scripts' sections, one file per script.

pub mod leak;
