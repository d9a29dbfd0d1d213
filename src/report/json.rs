//! JSON output: the model serialized as it is (the schema is docs/report-schema.md).
//!
//! [`write()`] serializes any value; [`write_report`] writes a dump's report.json, the
//! same bytes, with the leak section's modules (almost all of a large report)
//! serialized in parallel.

use crate::model::{DumpReport, LeakAnalysis, SectionData};
use rayon::prelude::*;
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// Writes `value` as pretty JSON with a final newline.
pub fn write<W: Write, T: Serialize>(mut w: W, value: &T) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(&mut w, Pretty::default());
    value.serialize(&mut ser)?;
    w.write_all(b"\n")
}

/// Writes `value` to a file.
pub fn write_file<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = io::BufWriter::new(file);
    write(&mut w, value)?;
    w.flush()
}

/// Writes a dump's report: the bytes of [`write()`]`(w, report)`, with the leak section's
/// modules serialized in parallel, a few dozen at a time (so that memory holds a
/// window of them, not the whole file). The document around them is written here
/// member by member, in the order and layout of the model's `Serialize`
/// (`tests/it/json.rs` compares the two on reports with every kind of section).
pub fn write_report<W: Write>(mut w: W, report: &DumpReport) -> io::Result<()> {
    if report.leak().is_none_or(|l| l.modules.len() < 2) {
        return write(w, report);
    }
    let mut top = Members::open(&mut w, 1)?;
    top.value("schema", &report.schema)?;
    top.value("generator", &report.generator)?;
    top.value("dump", &report.dump)?;
    top.value("process", &report.process)?;
    top.value("tracking", &report.tracking)?;
    top.value("verdict", &report.verdict)?;
    top.value("summary", &report.summary)?;
    top.key("sections")?;
    let mut sections = Members::open(top.w, 2)?;
    for section in &report.sections {
        sections.key(section.script)?;
        match &section.result {
            Ok(SectionData::Leak(leak)) => write_leak(sections.w, leak, 3)?,
            // One member of the map, as the model's `Serialize` writes it.
            _ => {
                let mut ser =
                    serde_json::Serializer::with_formatter(&mut *sections.w, Pretty::at(2));
                crate::model::serialize_section(section, &mut ser)?;
            }
        }
    }
    sections.close()?;
    top.value("warnings", &report.warnings)?;
    top.close()?;
    w.write_all(b"\n")
}

/// The leak section, an object whose members are at `level`.
fn write_leak<W: Write>(w: &mut W, leak: &LeakAnalysis, level: usize) -> io::Result<()> {
    /// Modules serialized at once: enough for every thread, few enough to bound memory.
    const WINDOW: usize = 64;
    let mut m = Members::open(w, level)?;
    m.value("totals", &leak.totals)?;
    m.value("no_stack", &leak.no_stack)?;
    m.value("invalid_stack_records", &leak.invalid_stack_records)?;
    m.key("modules")?;
    let inner = level + 1;
    m.w.write_all(b"[")?;
    // One buffer per module of a window, reused by the next window (growing fresh
    // buffers for every module was a tenth of the writing's time).
    let mut texts: Vec<Vec<u8>> = vec![Vec::new(); leak.modules.len().min(WINDOW)];
    for (i, window) in leak.modules.chunks(WINDOW).enumerate() {
        let texts = &mut texts[..window.len()];
        texts
            .par_iter_mut()
            .zip(window)
            .try_for_each(|(text, module)| {
                text.clear();
                let mut ser = serde_json::Serializer::with_formatter(&mut *text, Pretty::at(inner));
                module.serialize(&mut ser)
            })?;
        for (j, text) in texts.iter().enumerate() {
            Pretty::at(inner).line_break(m.w, i == 0 && j == 0)?;
            m.w.write_all(text)?;
        }
    }
    if !leak.modules.is_empty() {
        Pretty::at(level).line_break(m.w, true)?;
    }
    m.w.write_all(b"]")?;
    m.value("modules_by_count", &leak.modules_by_count)?;
    m.value("symbols", &leak.symbols)?;
    m.close()
}

/// An object written member by member in [`Pretty`]'s layout, its members at `level`.
struct Members<'w, W: Write> {
    w: &'w mut W,
    level: usize,
    first: bool,
}

impl<'w, W: Write> Members<'w, W> {
    fn open(w: &'w mut W, level: usize) -> io::Result<Self> {
        w.write_all(b"{")?;
        Ok(Members {
            w,
            level,
            first: true,
        })
    }

    /// The next member's key and the separator before its value.
    fn key(&mut self, key: &str) -> io::Result<()> {
        Pretty::at(self.level).line_break(self.w, std::mem::take(&mut self.first))?;
        serde_json::to_writer(&mut *self.w, key)?;
        self.w.write_all(b": ")
    }

    fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> io::Result<()> {
        self.key(key)?;
        let mut ser = serde_json::Serializer::with_formatter(&mut *self.w, Pretty::at(self.level));
        Ok(value.serialize(&mut ser)?)
    }

    fn close(self) -> io::Result<()> {
        if !self.first {
            Pretty::at(self.level - 1).line_break(self.w, true)?;
        }
        self.w.write_all(b"}")
    }
}

/// A comma, a newline and the indentation of [`MAX_LEVEL`] levels.
const BREAK: &[u8; 2 + 2 * MAX_LEVEL] = &{
    let mut b = [b' '; 2 + 2 * MAX_LEVEL];
    b[0] = b',';
    b[1] = b'\n';
    b
};
const MAX_LEVEL: usize = 64;

/// `serde_json`'s `PrettyFormatter` with its default two-space indent, byte for byte
/// (a test compares the two), but a line break and its indentation are one write
/// instead of one per level: a 13 MB report has half a million lines, mostly eight or
/// more levels deep.
#[derive(Default)]
struct Pretty {
    level: usize,
    has_value: bool,
}

impl Pretty {
    /// A formatter for a value written at nesting `level` of an enclosing document.
    fn at(level: usize) -> Self {
        Pretty {
            level,
            has_value: false,
        }
    }

    /// `,\n` (or `\n` for the first item) and the current indentation.
    #[inline]
    fn line_break<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        let start = usize::from(first);
        if self.level <= MAX_LEVEL {
            w.write_all(&BREAK[start..2 + 2 * self.level])
        } else {
            w.write_all(&BREAK[start..2])?;
            for _ in 0..self.level {
                w.write_all(b"  ")?;
            }
            Ok(())
        }
    }

    #[inline]
    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.line_break(w, true)?;
        }
        w.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Pretty {
    #[inline]
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"[")
    }

    #[inline]
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    #[inline]
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line_break(w, first)
    }

    #[inline]
    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    #[inline]
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"{")
    }

    #[inline]
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    #[inline]
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line_break(w, first)
    }

    #[inline]
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    #[inline]
    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested `depth` levels: objects in arrays in objects, empty ones, scalars.
    fn nested(depth: usize) -> serde_json::Value {
        let mut v = serde_json::json!({"a": 1, "b": [], "c": {}, "d": "x\u{7f}\"\n", "e": [1.5, null, true]});
        for i in 0..depth {
            v = serde_json::json!({ "level": i, "items": [[], {}, [v]], "after": "s" });
        }
        v
    }

    #[test]
    fn the_same_bytes_as_serde_json_pretty() {
        for depth in [0, 1, 3, 40] {
            let v = nested(depth);
            let mut ours = Vec::new();
            write(&mut ours, &v).unwrap();
            let mut theirs = serde_json::to_vec_pretty(&v).unwrap();
            theirs.push(b'\n');
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }
}
