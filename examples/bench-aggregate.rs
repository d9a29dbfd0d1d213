//! Benchmark helper (case 1 of docs/performance.md): maps a dump and runs only the
//! leak aggregation, `leakdiag::analysis::scripts::leak::analyze`, with no symbols and no
//! report, and prints the totals. This is the comparison `bench/run.sh` puts next to
//! the end-to-end time of `leakdiag analyze`.
//!
//! ```text
//! cargo run --release --example bench-aggregate -- DUMP
//! ```

use leakdiag::analysis::scripts::leak::{analyze, symbols::Symbols, LeakOptions};
use leakdiag::dump::DumpFile;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: bench-aggregate DUMP")?
        .into();
    let dump = DumpFile::open(&path)?;
    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let stream = dump.allocation_stream()?.ok_or("no allocation stream")?;
    let analysis = analyze(
        &stream,
        &modules,
        &LeakOptions::default(),
        &Symbols::default(),
    )?;
    println!(
        "{} allocations, {} bytes, {} modules",
        analysis.totals.allocations,
        analysis.totals.bytes,
        analysis.modules.len()
    );
    Ok(())
}
