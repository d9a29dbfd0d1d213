//! JSON output: the model serialized as it is (the schema is docs/report-schema.md).

use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// Writes `value` as pretty JSON with a final newline.
pub fn write<W: Write, T: Serialize>(mut w: W, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut w, value)?;
    w.write_all(b"\n")
}

/// Writes `value` to a file.
pub fn write_file<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = io::BufWriter::new(file);
    write(&mut w, value)?;
    w.flush()
}
