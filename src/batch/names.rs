//! Names in the report folder: one folder per dump, one per vendor report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The run's own files in the report folder, which no dump folder may take.
pub const INDEX_FILES: [&str; 2] = ["index.html", "index.json"];

/// Folder names for the inputs' reports: the file stem, with `-2`, `-3`… for repeats
/// and for a stem that is one of `reserved` (the vendor folders, the index files),
/// compared without case, so that no two things of a run share a name.
pub fn report_dirs(inputs: &[PathBuf], reserved: &[String]) -> Vec<String> {
    let mut used: HashSet<String> = reserved
        .iter()
        .map(|r| r.to_ascii_lowercase())
        .chain(INDEX_FILES.iter().map(|f| f.to_string()))
        .collect();
    inputs
        .iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| sanitize(&s.to_string_lossy()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "dump".to_owned());
            let mut name = stem.clone();
            let mut n = 1;
            while !used.insert(name.to_ascii_lowercase()) {
                n += 1;
                name = format!("{stem}-{n}");
            }
            name
        })
        .collect()
}

/// Keeps a stem usable as a folder name on every system.
fn sanitize(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches(['.', ' '])
        .to_owned()
}

/// The folder of a module's vendor report.
pub fn vendor_dir(module: &str) -> String {
    format!("vendor-{}", sanitize(module))
}

/// The file name of `p`, for people.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_folders_never_take_a_vendor_folder_or_an_index_file() {
        let dirs = report_dirs(
            &[
                PathBuf::from("vendor-odbcvend.dll.dmp"),
                PathBuf::from("Index.html.dmp"),
                PathBuf::from("index.json.dmp"),
            ],
            &[vendor_dir("ODBCVEND.DLL")],
        );
        assert_eq!(
            dirs,
            vec!["vendor-odbcvend.dll-2", "Index.html-2", "index.json-2"]
        );
    }

    #[test]
    fn repeated_stems_get_distinct_folders() {
        let dirs = report_dirs(
            &[
                PathBuf::from("a/w3wp.dmp"),
                PathBuf::from("b/w3wp.dmp"),
                PathBuf::from("c/W3WP.dmp"),
                PathBuf::from("x/we:ird?.dmp"),
            ],
            &[],
        );
        assert_eq!(dirs, vec!["w3wp", "w3wp-2", "W3WP-3", "we_ird_"]);
    }
}
