//! leakdiag: native memory leak analysis of Windows minidumps annotated by an
//! allocation tracker.
//!
//! The pipeline reads in the order of its modules: [`dump`] reads the input files,
//! [`model`] is what they become, [`scripts`] analyse the model, [`report`] writes
//! JSON and HTML. [`analyze`] runs the pipeline for one dump and [`batch`] for a run
//! over many, in parallel.

pub mod addr;
pub mod analyze;
pub mod batch;
pub mod dump;
pub mod model;
pub mod report;
pub mod scripts;
