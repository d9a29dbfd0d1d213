//! The report folder: checked before anything is analysed, built in a fresh folder
//! beside it, then moved into place.
//!
//! * Nothing is written through a symbolic link: the output folder must not be one,
//!   an entry the run would replace must not be one, and every file is created new in
//!   the run's own temporary folder (`.<out>.leakdiag-<pid>-<n>`, beside the output
//!   folder, so the final renames stay on one file system).
//! * The run replaces only what leakdiag wrote: an entry of the output folder that the
//!   run would write is replaced only when the earlier run's `index.json` records it;
//!   otherwise the run stops before analysing anything. Folders an earlier run recorded
//!   and this run does not write again are removed; other entries are left alone and
//!   listed in the index (`foreign_entries`).
//! * Nothing is written in the output folder itself: everything is built in the
//!   staging folder, then each entry is moved into place by rename (an earlier
//!   version first renamed aside, then removed), the index last, so that a reader
//!   never sees a half-written file and a run that stops before the commit leaves the
//!   earlier report as it was. A new output folder is the staging folder renamed.

use super::names::INDEX_FILES;
use super::OutputError;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The output folder as it was before the run.
pub(super) struct Target {
    pub out: PathBuf,
    pub exists: bool,
    /// Whether it holds an earlier run's index.json.
    pub has_index: bool,
    /// Entries an earlier run recorded in its index.json (folders and index files).
    pub earlier: BTreeSet<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError {
    let path = path.to_owned();
    move |source| OutputError::Io { path, source }
}

/// Whether `name` is one plain entry name (no separator, not `.` or `..`).
fn plain_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(n)), None) if n == name)
}

/// The entries an earlier run's index.json records; none when it cannot be read.
fn recorded(index: &Path) -> BTreeSet<String> {
    let Ok(text) = std::fs::read_to_string(index) else {
        return BTreeSet::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return BTreeSet::new();
    };
    let dirs = |list: &str| -> Vec<String> {
        value[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["report_dir"].as_str())
            .filter(|d| plain_name(d) && !d.starts_with('.'))
            .map(str::to_owned)
            .collect()
    };
    let mut out: BTreeSet<String> = dirs("inputs").into_iter().collect();
    out.extend(dirs("vendor_reports"));
    out.extend(INDEX_FILES.iter().map(|f| f.to_string()));
    out
}

/// Checks the output folder before anything is analysed: absent, or a real folder
/// (not a file, not a symbolic link).
pub(super) fn check(out: &Path) -> Result<Target, OutputError> {
    let meta = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Target {
                out: out.to_owned(),
                exists: false,
                has_index: false,
                earlier: BTreeSet::new(),
            })
        }
        other => other.map_err(io(out))?,
    };
    if meta.file_type().is_symlink() {
        return Err(OutputError::OutIsSymlink {
            path: out.to_owned(),
        });
    }
    if !meta.is_dir() {
        return Err(OutputError::OutNotAFolder {
            path: out.to_owned(),
        });
    }
    let index = out.join("index.json");
    let has_index = std::fs::symlink_metadata(&index).is_ok_and(|m| m.is_file());
    Ok(Target {
        out: out.to_owned(),
        exists: true,
        has_index,
        earlier: if has_index {
            recorded(&index)
        } else {
            BTreeSet::new()
        },
    })
}

impl Target {
    /// Refuses to go on when an entry the run will write is a symbolic link, or exists
    /// and was not written by an earlier run (not in its index.json).
    pub fn check_names<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), OutputError> {
        if !self.exists {
            return Ok(());
        }
        for name in names.into_iter().chain(INDEX_FILES) {
            let path = self.out.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(OutputError::SymlinkInOutput { path })
                }
                Ok(_) if !self.earlier.contains(name) => {
                    return Err(OutputError::NotWrittenByLeakdiag { path })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Entries of the output folder that neither the earlier run recorded nor this run
    /// writes: left alone, and listed.
    pub fn foreign_entries(&self, written: &BTreeSet<String>) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.out) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !written.contains(n) && !self.earlier.contains(n))
            .collect();
        out.sort();
        out
    }
}

/// The run's temporary folder beside the output folder; removed on drop unless it was
/// moved into place.
pub(super) struct Staging {
    pub dir: PathBuf,
    done: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A new, empty folder beside `out` named `.<out name>.leakdiag-<tag>-<pid>-<n>`
/// (its parent folders made first when `out` does not exist yet).
fn sibling(out: &Path, tag: &str) -> Result<PathBuf, OutputError> {
    // `-o .` or `-o ..` has no name of its own: the folder's real path has one.
    let resolved;
    let out = if out.file_name().is_none() {
        resolved = out.canonicalize().map_err(io(out))?;
        resolved.as_path()
    } else {
        out
    };
    let name = out
        .file_name()
        .ok_or_else(|| OutputError::OutNotAFolder {
            path: out.to_owned(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let mut last = None;
    for n in 0..1000 {
        let dir = parent.join(format!(".{name}.leakdiag-{tag}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    Err(io(&parent)(last.unwrap_or_else(|| {
        std::io::Error::other("no free temporary folder name")
    })))
}

/// Makes the run's temporary folder.
pub(super) fn stage(out: &Path) -> Result<Staging, OutputError> {
    Ok(Staging {
        dir: sibling(out, "new")?,
        done: false,
    })
}

/// Moves the staged report into place: every written entry (the index files last)
/// replaces its earlier version (renamed aside into a trash folder beside the output
/// folder, then removed); folders the earlier run recorded and
/// this one did not write are removed. Returns the removed entries.
pub(super) fn commit(
    target: &Target,
    mut staging: Staging,
    written: &BTreeSet<String>,
) -> Result<Vec<String>, OutputError> {
    let out = &target.out;
    if !target.exists {
        std::fs::rename(&staging.dir, out).map_err(io(out))?;
        staging.done = true;
        return Ok(Vec::new());
    }
    let trash = Staging {
        dir: sibling(out, "old")?,
        done: false,
    };
    let order = written
        .iter()
        .filter(|n| !INDEX_FILES.contains(&n.as_str()))
        .chain(written.iter().filter(|n| INDEX_FILES.contains(&n.as_str())));
    for name in order {
        let dst = out.join(name);
        match std::fs::symlink_metadata(&dst) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(OutputError::SymlinkInOutput { path: dst })
            }
            Ok(_) => std::fs::rename(&dst, trash.dir.join(name)).map_err(io(&dst))?,
            Err(_) => {}
        }
        std::fs::rename(staging.dir.join(name), &dst).map_err(io(&dst))?;
    }
    let mut removed = Vec::new();
    for name in target.earlier.iter().filter(|n| !written.contains(*n)) {
        let path = out.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            // A link is moved as the link itself, never followed.
            std::fs::rename(&path, trash.dir.join(name)).map_err(io(&path))?;
            removed.push(name.clone());
        }
    }
    drop(trash);
    let _ = std::fs::remove_dir(&staging.dir);
    staging.done = true;
    Ok(removed)
}
