//! The shape of the code: the library's top-level modules form layers and every
//! dependency points down (src/lib.rs). This reads every `crate::…` path in `src/`
//! and fails on an arrow that points sideways or up, which also rules out cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may use only lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("addr", 0),
    ("text", 0),
    ("hash", 0),
    ("model", 1),
    ("pe", 1),
    ("dump", 2),
    ("symbols", 2),
    ("umdh", 2),
    ("analysis", 3),
    ("report", 3),
    ("batch", 4),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules that `text` names with `crate::NAME`, comments left out.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` names several.
            if name.is_empty() && after.starts_with('{') {
                let inner = &after[1..after.find('}').unwrap_or(after.len())];
                for part in inner.split(',') {
                    let n = part.trim().split("::").next().unwrap_or("").trim();
                    if !n.is_empty() {
                        found.insert(n.to_owned());
                    }
                }
            } else if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// `src/NAME.rs` and `src/NAME/**` belong to module NAME.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let entry = deps.entry(top.clone()).or_default();
        entry.extend(crate_paths(&text).into_iter().filter(|d| *d != top));
    }
    deps
}

#[test]
fn every_dependency_points_down() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let deps = dependencies();
    let mut wrong = Vec::new();
    for (module, uses) in &deps {
        let Some(&own) = layer.get(module.as_str()) else {
            wrong.push(format!("src/{module} is not in LAYERS: give it a layer"));
            continue;
        };
        for d in uses {
            match layer.get(d.as_str()) {
                Some(&l) if l < own => {}
                Some(&l) => wrong.push(format!(
                    "{module} (layer {own}) uses {d} (layer {l}): dependencies must point down"
                )),
                None => wrong.push(format!("{module} uses crate::{d}, which has no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The model is data: nothing but addresses and text below it.
    assert!(deps["model"].iter().all(|d| d == "addr" || d == "text"));
}

#[test]
fn the_reader_finds_every_form_of_crate_path() {
    let found = crate_paths(
        "use crate::model::{A, B};\nuse crate::{dump, symbols::X};\nlet x = crate::text::f(); // crate::batch\n",
    );
    let names: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(names, ["dump", "model", "symbols", "text"]);
}
