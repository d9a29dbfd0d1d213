//! Writing one dump's report folder: report.json, report.html and summary.md.
//!
//! Files are created only inside the run's fresh temporary folder, and only with
//! `create_new`, so nothing is ever written through a symbolic link. Every file passes
//! through [`ControlFilter`] (no control character from a dump reaches a page) and a
//! size limit: a dump whose report would be larger than [`MAX_FILE_BYTES`] gets an
//! error naming the file instead of the file.

use super::names::file_name;
use super::parallel::Outcome;
use super::OutputError;
use crate::model::{IndexEntry, TopModule};
use crate::report;
use crate::report::view::PageLinks;
use crate::text::ControlFilter;
use std::io::{self, Write};
use std::path::Path;

/// The most bytes one file of a report may hold (256 MiB): a page that size cannot be
/// opened anyway, and a dump that would need more is reported as such.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// A writer that fails once more than `left` bytes were asked of it.
pub(super) struct Limited<W: Write> {
    inner: W,
    left: u64,
    exceeded: bool,
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other("size limit"));
        }
        self.left -= data.len() as u64;
        self.inner.write_all(data)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a file's contents are written into: a buffer in front of the filter, the
/// limit and the file. A concrete type, not `dyn Write`, so that the serializers' many
/// tiny writes reach the buffer's inlined fast path instead of a call each.
pub(super) type FileWriter = io::BufWriter<ControlFilter<Limited<io::BufWriter<std::fs::File>>>>;

/// Why one file was not written.
pub(super) enum FileError {
    /// It would exceed [`MAX_FILE_BYTES`].
    TooLarge,
    Failed(OutputError),
}

/// Creates `path` (never an existing file, never through a link) and fills it through
/// `render`, filtered and limited.
pub(super) fn create_file<E>(
    path: &Path,
    render: impl FnOnce(&mut FileWriter) -> Result<(), E>,
    error: impl FnOnce(E) -> OutputError,
) -> Result<(), FileError> {
    create_file_limited(path, MAX_FILE_BYTES, render, error)
}

fn create_file_limited<E>(
    path: &Path,
    limit: u64,
    render: impl FnOnce(&mut FileWriter) -> Result<(), E>,
    error: impl FnOnce(E) -> OutputError,
) -> Result<(), FileError> {
    let io_error = |source| {
        FileError::Failed(OutputError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error)?;
    // Buffered before the filter: the serializers write many tiny pieces, and the
    // filter is cheapest on large ones.
    let mut w: FileWriter = io::BufWriter::with_capacity(
        1 << 16,
        ControlFilter::new(Limited {
            inner: io::BufWriter::new(file),
            left: limit,
            exceeded: false,
        }),
    );
    let rendered = render(&mut w);
    // Everything buffered is pushed down before the limit is judged; a write error
    // past the limit is the limit's, reported as such below.
    let flushed = w.flush();
    let (filter, _) = w.into_parts();
    let (mut limited, finished) = filter.finish();
    if limited.exceeded {
        drop(limited);
        let _ = std::fs::remove_file(path);
        return Err(FileError::TooLarge);
    }
    flushed.and(finished).map_err(io_error)?;
    rendered.map_err(|e| FileError::Failed(error(e)))?;
    limited.flush().map_err(io_error)
}

pub(super) fn write_one(
    path: &Path,
    dir: &str,
    outcome: &Outcome,
    out: &Path,
    vendor_dirs: &[String],
    links: &PageLinks,
) -> Result<IndexEntry, OutputError> {
    let report = match outcome {
        Outcome::Failed(message) => {
            return Ok(IndexEntry::failed(
                path.display().to_string(),
                file_name(path),
                message.clone(),
            ))
        }
        Outcome::Ok(r) => r,
    };
    let mut entry = IndexEntry::new(path.display().to_string(), file_name(path));
    entry.verdict = Some(report.verdict.status);
    entry.headline = Some(report.verdict.headline.clone());
    let folder = out.join(dir);
    std::fs::create_dir(&folder).map_err(|source| OutputError::Io {
        path: folder.clone(),
        source,
    })?;
    let json_path = folder.join("report.json");
    let html_path = folder.join("report.html");
    let md_path = folder.join("summary.md");
    // report.json on one side, report.html and summary.md on the other: for a single
    // large dump the two halves take about as long, and with many dumps in the pool
    // the join costs nothing. Each file is written as it would be alone.
    let (json, (html, md)) = rayon::join(
        || {
            create_file(
                &json_path,
                |w| report::json::write_report(w, report),
                |source| OutputError::Io {
                    path: json_path.clone(),
                    source,
                },
            )
        },
        || {
            let html = create_file(
                &html_path,
                |w| report::html::render_report(w, report, links),
                |source| OutputError::Render {
                    path: html_path.clone(),
                    source,
                },
            );
            let md = create_file(
                &md_path,
                |w| report::markdown::render_summary(w, report, dir, vendor_dirs),
                |source| OutputError::Io {
                    path: md_path.clone(),
                    source,
                },
            );
            (html, md)
        },
    );
    let files = [json, html, md];
    for (file, name) in files
        .into_iter()
        .zip(["report.json", "report.html", "summary.md"])
    {
        match file {
            Ok(()) => {}
            Err(FileError::Failed(e)) => return Err(e),
            Err(FileError::TooLarge) => {
                // The dump's folder is not kept: its report would not be usable.
                let _ = std::fs::remove_dir_all(&folder);
                entry.status = "error";
                entry.error = Some(format!(
                    "{}: its {name} would be larger than {} MiB; not written (a report that size cannot be read: run with fewer --stacks, or report the dump)",
                    path.display(),
                    MAX_FILE_BYTES >> 20
                ));
                return Ok(entry);
            }
        }
    }
    entry.report_dir = Some(dir.to_owned());
    entry.warnings = report.warnings.len();
    if let Some(t) = &report.tracking {
        entry.tracker_data = true;
        entry.allocations = Some(t.allocations);
        entry.bytes = Some(t.bytes);
    }
    if let Some(leak) = report.leak() {
        entry.top_module = leak.modules.first().map(|m| TopModule {
            name: m.name.clone(),
            allocations: m.allocations,
            bytes: m.bytes,
        });
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error(source: io::Error) -> OutputError {
        OutputError::Io {
            path: "x".into(),
            source,
        }
    }

    #[test]
    fn a_file_past_the_limit_is_not_left_behind_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let r = create_file_limited(&path, 100, |w| w.write_all(&[b'x'; 101]), io_error);
        assert!(matches!(r, Err(FileError::TooLarge)));
        assert!(!path.exists(), "the partial file is removed");

        let ok = dir.path().join("ok.json");
        let r = create_file_limited(&ok, 100, |w| w.write_all(b"a\x1b[2J\rb\n"), io_error);
        assert!(r.is_ok());
        assert_eq!(
            std::fs::read(&ok).unwrap(),
            b"a[2Jb\n",
            "control bytes filtered"
        );

        #[cfg(unix)]
        {
            let target = dir.path().join("target.txt");
            std::fs::write(&target, "keep").unwrap();
            let link = dir.path().join("link.json");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let r = create_file_limited(&link, 100, |w| w.write_all(b"x"), io_error);
            assert!(
                matches!(r, Err(FileError::Failed(_))),
                "never through a link"
            );
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        }
    }
}
