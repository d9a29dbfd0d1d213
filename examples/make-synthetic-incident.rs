//! Writes the synthetic incident under `tests/fixtures/synthetic-incident/`, used by the
//! golden and report tests: three synthetic dumps of
//! one IIS worker process taken one, two and three hours after tracking began. A
//! third-party ODBC driver (odbcvend.dll) leaks row buffers steadily; the customer's
//! orders.dll keeps a start-up cache; httpmod.dll has requests in flight.
//!
//! Run: `cargo run --example make-synthetic-incident [OUT_DIR]`

#[path = "../tests/it/synth.rs"]
mod synth;

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthetic-incident")
        });
    std::fs::create_dir_all(&out)?;
    for hour in 1..=3 {
        let path = out.join(format!("w3wp_4711_{hour}h.dmp"));
        std::fs::write(&path, synth::demo_dump(hour))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
