//! Memory-pressure scripts: analyses computed from the model of one dump.
//!
//! `attribution` holds the responsible-module rule shared by every script that charges
//! allocations to modules; `leak` is the leak analysis.

pub mod attribution;
pub mod leak;
