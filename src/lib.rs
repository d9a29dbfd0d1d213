//! leakdiag: native memory leak analysis of Windows minidumps annotated by an
//! allocation tracker.
//!
//! The modules form layers, and every dependency points down (a test reads the
//! `use crate::…` lines and fails on any other arrow):
//!
//! 1. [`addr`] (addresses in their spaces), [`text`] (numbers and text for
//!    people) and [`hash`] (a cheap hash for numeric keys): used by everything.
//! 2. [`model`]: every type the analysis produces and the reports read; data only.
//!    [`pe`]: PE images (headers, CodeView record, version resource) through the
//!    `object` crate, for the inputs.
//! 3. Inputs: [`dump`] reads minidumps and the allocation stream into the model;
//!    [`umdh`] reads UMDH snapshot and comparison logs; [`symbols`] finds PDBs and
//!    resolves addresses.
//! 4. [`analysis`]: one dump's model built and analysed by the memory-pressure
//!    scripts (one file each, one registry), then the views across dumps: series and
//!    vendor reports.
//! 5. [`report`]: JSON, HTML pages, SVG charts and Markdown, rendered from the model;
//!    it computes no analysis.
//! 6. [`batch`]: a run over many inputs: discovery, parallel analysis, output.
//!
//! `main.rs` only parses the command line and calls [`batch`].
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
pub mod analysis;
pub mod batch;
pub mod dump;
pub mod hash;
pub mod model;
pub mod pe;
pub mod report;
pub mod symbols;
pub mod text;
pub mod umdh;
