//! The modules script: every loaded and unloaded module with its base, size, path,
//! timestamp, versions (the module record's `VS_FIXEDFILEINFO`), PDB, and — where
//! the image can be read — the company name, product name and file description of its
//! version resource. The strings come from the tracker when its allocation stream
//! carries them (the module-strings section, format 1.2: read in the process from
//! the module's file at snapshot time), else from the image: the dump's memory (full
//! dumps hold it) or, failing that, a file of the same name in an `--images` folder.
//! When the tracker's strings are not used, the entry's `version_note` says why.
//!
//! Other scripts name a module's vendor through [`version_strings`].

use super::{Need, Script, ScriptContext, ScriptInfo, ScriptOutput};
use crate::dump::module_strings::{module_strings, ModuleStrings, ModuleStringsStatus};
use crate::dump::pe_version;
use crate::model::{
    unix_to_rfc3339, Module, ModuleEntry, Modules, SectionData, SectionError, VersionSource,
    VersionStrings,
};
use minidump::{MinidumpModuleList, UnifiedMemoryList};
use std::collections::HashMap;
use std::path::PathBuf;

/// `VS_FIXEDFILEINFO.dwSignature`.
const FIXED_FILE_INFO_SIGNATURE: u32 = 0xfeef_04bd;

/// The modules script.
pub struct ModulesScript;

/// Finds and reads module images: the dump's memory first, then `--images` folders
/// and files.
pub struct ImageReader<'a> {
    memory: Option<UnifiedMemoryList<'a>>,
    /// The files of the `--images` folders by lower-case name; the first folder
    /// holding a name wins.
    files: HashMap<String, PathBuf>,
}

/// The files of the `--images` entries by lower-case name: an entry is a folder of
/// images or one image file; the first entry holding a name wins.
pub fn image_files(images: &[PathBuf]) -> HashMap<String, PathBuf> {
    let mut files = HashMap::new();
    for path in images {
        if path.is_file() {
            if let Some(name) = path.file_name() {
                let name = name.to_string_lossy().to_ascii_lowercase();
                files.entry(name).or_insert_with(|| path.clone());
            }
            continue;
        }
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_ascii_lowercase();
            files.entry(name).or_insert_with(|| e.path());
        }
    }
    files
}

impl<'a> ImageReader<'a> {
    pub fn new(dump: &'a crate::dump::MappedDump, images: &'a [PathBuf]) -> Self {
        ImageReader {
            memory: dump.get_memory(),
            files: image_files(images),
        }
    }

    /// The version strings of `m`'s image and where they were read.
    pub fn version(&self, m: &Module) -> Option<(VersionStrings, VersionSource, Option<PathBuf>)> {
        if !m.unloaded {
            if let Some(memory) = &self.memory {
                let base = m.base.0;
                let read = |rva: u32, len: usize| {
                    if u64::from(rva).checked_add(len as u64)? > m.size {
                        return None;
                    }
                    crate::dump::read_memory(memory, base.checked_add(u64::from(rva))?, len)
                };
                if let Some(v) = pe_version::read_mapped(read) {
                    return Some((v, VersionSource::DumpMemory, None));
                }
            }
        }
        let file = self.image_file(&m.name)?;
        let v = pe_version::read_path(&file)?;
        Some((v, VersionSource::ImageFile, Some(file)))
    }

    /// The first file named `name` (ASCII case ignored) among the `--images` entries.
    fn image_file(&self, name: &str) -> Option<PathBuf> {
        self.files
            .get(&name.to_ascii_lowercase())
            .filter(|p| p.is_file())
            .cloned()
    }
}

/// The version strings (company name, product name, …) of `module`'s image, from the
/// dump's memory or an `--images` folder; `None` when neither holds a readable image.
///
/// Each call lists the `--images` folders and the dump's memory list again: to look up
/// many modules, make one [`ImageReader`] and call [`ImageReader::version`].
pub fn version_strings(ctx: &ScriptContext<'_>, module: &Module) -> Option<VersionStrings> {
    let tracker = TrackerStrings::of(ctx);
    if let Ok(v) = tracker.version(module) {
        return Some(v);
    }
    ImageReader::new(ctx.dump.minidump(), &ctx.options.images)
        .version(module)
        .map(|(v, _, _)| v)
}

/// The tracker's module strings of a dump, as far as they could be read.
pub struct TrackerStrings<'a> {
    /// `None`: the dump has no allocation stream or its stream no module strings.
    strings: Option<ModuleStrings<'a>>,
    /// Why the section was left out, when it was.
    refused: Option<String>,
}

impl<'a> TrackerStrings<'a> {
    /// Reads the section of `ctx`'s allocation stream; a broken section is left out,
    /// with its error kept for the notes.
    pub fn of(ctx: &ScriptContext<'a>) -> Self {
        match ctx.stream.map(module_strings) {
            None | Some(Ok(None)) => TrackerStrings {
                strings: None,
                refused: None,
            },
            Some(Ok(Some(s))) => TrackerStrings {
                strings: Some(s),
                refused: None,
            },
            Some(Err(e)) => TrackerStrings {
                strings: None,
                refused: Some(format!(
                    "the tracker's module strings were left out, the section is malformed: {e}"
                )),
            },
        }
    }

    /// The tracker's version strings of `m`, or why there are none: `Err(None)` when
    /// the dump carries no module strings at all.
    pub fn version(&self, m: &Module) -> Result<VersionStrings, Option<String>> {
        if m.unloaded {
            return Err(None);
        }
        if let Some(e) = &self.refused {
            return Err(Some(e.clone()));
        }
        let Some(strings) = &self.strings else {
            return Err(None);
        };
        let Some(record) = strings.find(m.base) else {
            return Err(Some("the tracker's module strings have no record for this module (it was loaded after the tracker's snapshot)".into()));
        };
        match record.status {
            ModuleStringsStatus::Read => {
                let v = record.version_strings();
                if v == VersionStrings::default() {
                    Err(Some("the tracker read the module's version resource and found none of its strings".into()))
                } else {
                    Ok(v)
                }
            }
            ModuleStringsStatus::NoResource => Err(Some(
                "the tracker found no version resource in the module's file".into(),
            )),
            ModuleStringsStatus::NotRead | ModuleStringsStatus::Other(_) => Err(Some(
                "the tracker could not read the module's version resource (its file could not be read)".into(),
            )),
        }
    }
}

fn dotted(hi: u32, lo: u32) -> String {
    format!("{}.{}.{}.{}", hi >> 16, hi & 0xffff, lo >> 16, lo & 0xffff)
}

/// (file version, product version) of each loaded module's fixed file info, by base.
fn fixed_versions(dump: &crate::dump::MappedDump) -> HashMap<u64, (String, String)> {
    let Ok(list) = dump.get_stream::<MinidumpModuleList>() else {
        return HashMap::new();
    };
    list.iter()
        .filter(|m| m.raw.version_info.signature == FIXED_FILE_INFO_SIGNATURE)
        .map(|m| {
            let v = &m.raw.version_info;
            (
                m.raw.base_of_image,
                (
                    dotted(v.file_version_hi, v.file_version_lo),
                    dotted(v.product_version_hi, v.product_version_lo),
                ),
            )
        })
        .collect()
}

const INFO: ScriptInfo = ScriptInfo {
    name: "modules",
    title: "Modules",
    description: "loaded and unloaded modules with versions, PDB and vendor (from the image's version resource)",
    needs: &[Need::ModuleList, Need::ModuleImages],
};

impl Script for ModulesScript {
    fn info(&self) -> &'static ScriptInfo {
        &INFO
    }

    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        let dump = ctx.dump.minidump();
        let versions = fixed_versions(dump);
        let reader = ImageReader::new(dump, &ctx.options.images);
        let tracker = TrackerStrings::of(ctx);
        let mut section = Modules {
            loaded: 0,
            unloaded: 0,
            with_version_strings: 0,
            modules: Vec::new(),
            message: ctx
                .modules
                .is_empty()
                .then(|| "The dump lists no modules.".to_owned()),
        };
        for m in ctx.modules.modules() {
            if m.unloaded {
                section.unloaded += 1;
            } else {
                section.loaded += 1;
            }
            let fixed = (!m.unloaded).then(|| versions.get(&m.base.0)).flatten();
            let (found, version_note) = match tracker.version(m) {
                Ok(v) => (Some((v, VersionSource::Tracker, None)), None),
                Err(note) => (reader.version(m), note),
            };
            if found.is_some() {
                section.with_version_strings += 1;
            }
            let (version_strings, version_source, image_file) = match found {
                Some((v, s, f)) => (Some(v), Some(s), f.map(|f| f.display().to_string())),
                None => (None, None, None),
            };
            section.modules.push(ModuleEntry {
                name: m.name.clone(),
                path: m.path.clone(),
                base: m.base,
                size: m.size,
                unloaded: m.unloaded,
                timestamp: m.timestamp,
                timestamp_rfc3339: (m.timestamp != 0)
                    .then(|| unix_to_rfc3339(u64::from(m.timestamp)))
                    .flatten(),
                file_version: fixed.map(|f| f.0.clone()),
                product_version: fixed.map(|f| f.1.clone()),
                debug_file: m.debug_file.clone(),
                debug_id: m.debug_id.clone(),
                version_strings,
                version_source,
                image_file,
                version_note,
            });
        }
        Ok(output(section))
    }
}

/// The section with its findings.
fn output(section: Modules) -> ScriptOutput {
    let findings = Vec::new();
    ScriptOutput::new(SectionData::Modules(Box::new(section)), findings)
}
