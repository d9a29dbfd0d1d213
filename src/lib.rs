//! leakdiag: native memory leak analysis of Windows minidumps annotated by an
//! allocation tracker.
//!
//! The pipeline reads in the order of its modules: [`dump`] reads the input files,
//! [`model`] is what they become, [`scripts`] analyse the model, [`report`] writes
//! JSON and HTML. [`analyze`] runs the pipeline for one dump and [`batch`] for a run
//! over many, in parallel.
//!
//! Reading tracker data from bytes, with the library's own writer:
//!
//! ```
//! use leakdiag::dump::stream::{AllocationStream, AllocatorKind};
//! use leakdiag::dump::writer::AllocationStreamBuilder;
//!
//! let mut builder = AllocationStreamBuilder::new(0, 600_000_000);
//! builder.allocate(0x1000, 4096, 10_000, AllocatorKind::Heap, &[0x7ff6_0000_1366]);
//! builder.metadata("tracker", "example 1.0");
//! let bytes = builder.build();
//!
//! let stream = AllocationStream::parse(&bytes)?;
//! assert_eq!(stream.allocation_count(), 1);
//! assert_eq!(stream.allocations().map(|a| a.size).sum::<u64>(), 4096);
//! assert_eq!(stream.metadata_value("tracker"), Some("example 1.0"));
//! # Ok::<(), leakdiag::dump::stream::StreamError>(())
//! ```

pub mod addr;
pub mod analyze;
pub mod batch;
pub mod dump;
pub mod model;
pub mod report;
pub mod scripts;
pub mod series;
pub mod symbols;
pub mod vendor;
