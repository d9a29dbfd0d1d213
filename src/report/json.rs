//! JSON output: the model serialized as it is (the schema is docs/report-schema.md).

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
