//! Benchmark helper (cases 1 and 5 of docs/performance.md): maps a dump and runs only the
//! leak aggregation — the one read of the allocation table
//! (`leakdiag::analysis::table::Table::read`) and the leak model built from it
//! (`leakdiag::analysis::scripts::leak::build`) — with no symbols and no report, and
//! prints the totals, and the time of each phase on standard error. This is the
//! comparison `bench/run.sh` puts next to the end-to-end time of `leakdiag analyze`.
//!
//! ```text
//! cargo run --release --example bench-aggregate -- DUMP [CHUNK]
//! ```
//!
//! `CHUNK` (records per chunk of the parallel read) defaults to the library's
//! `leakdiag::analysis::table::CHUNK`; `RAYON_NUM_THREADS` sets the threads.

use leakdiag::analysis::scripts::leak::{build, symbols::Symbols, LeakOptions};
use leakdiag::analysis::table::{Table, CHUNK};
use leakdiag::dump::DumpFile;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let path: PathBuf = args
        .next()
        .ok_or("usage: bench-aggregate DUMP [CHUNK]")?
        .into();
    let chunk = match args.next() {
        Some(c) => c.to_str().ok_or("CHUNK: a number")?.parse()?,
        None => CHUNK,
    };
    let t0 = Instant::now();
    let dump = DumpFile::open(&path)?;
    let mut warnings = Vec::new();
    let modules = dump.modules(&mut warnings);
    let stream = dump.allocation_stream()?.ok_or("no allocation stream")?;
    let options = LeakOptions::default();
    let t1 = Instant::now();
    let table = Table::read_chunked(&stream, &modules, &options.system_modules, chunk)?;
    let t2 = Instant::now();
    let analysis = build(
        &stream,
        &table,
        &modules,
        &options,
        &Symbols::default(),
        None,
    );
    let t3 = Instant::now();
    println!(
        "{} allocations, {} bytes, {} modules",
        analysis.totals.allocations,
        analysis.totals.bytes,
        analysis.modules.len()
    );
    eprintln!(
        "open {:.3} s, Table::read {:.3} s, build {:.3} s ({} threads, chunk {chunk})",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        rayon::current_num_threads()
    );
    Ok(())
}
