//! The modules script and the PE version-resource reader, on the fixture DLL
//! (tests/fixtures/pe, built by its build.sh) read from a file and from dump memory.

use crate::helpers::{analyze_synth, leakdiag, read_json, root, stderr};
use crate::synth::{SynthDump, SynthModule};
use leakdiag::analysis::scripts::modules::version_strings;
use leakdiag::analysis::scripts::ScriptContext;
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::dump::pe_version::{read_file, read_mapped, read_path, VersionStrings};
use leakdiag::dump::DumpFile;
use leakdiag::model::{ModuleEntry, Modules, VersionSource};

const BASE: u64 = 0x7ffa_4000_0000;
const DLL_PATH: &str = "C:\\Program Files\\Vendor\\odbcvend.dll";

fn fixtures() -> std::path::PathBuf {
    root().join("tests/fixtures/pe")
}

fn dll() -> Vec<u8> {
    std::fs::read(fixtures().join("odbcvend.dll")).unwrap()
}

fn expected() -> VersionStrings {
    VersionStrings {
        company_name: Some("Contoso Data Access Ltd.".into()),
        product_name: Some("Contoso ODBC Connect".into()),
        file_description: Some("Contoso ODBC Driver".into()),
        file_version: Some("7.3.1.42".into()),
        product_version: Some("7.3".into()),
    }
}

fn u16_at(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes([b[o], b[o + 1]]) as usize
}

fn u32_at(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}

/// The image as the loader maps it: headers, then each section at its RVA.
fn map_image(file: &[u8]) -> Vec<u8> {
    let nt = u32_at(file, 0x3c);
    let sections = u16_at(file, nt + 6);
    let optional = nt + 24;
    let table = optional + u16_at(file, nt + 20);
    let size_of_image = u32_at(file, optional + 56);
    let size_of_headers = u32_at(file, optional + 60);
    let mut image = vec![0u8; size_of_image];
    image[..size_of_headers].copy_from_slice(&file[..size_of_headers]);
    for i in 0..sections {
        let h = table + 40 * i;
        let (va, raw_size, raw) = (
            u32_at(file, h + 12),
            u32_at(file, h + 16),
            u32_at(file, h + 20),
        );
        image[va..va + raw_size].copy_from_slice(&file[raw..raw + raw_size]);
    }
    image
}

/// The file offset of `rva`, through the section table.
fn file_offset(file: &[u8], rva: usize) -> usize {
    let nt = u32_at(file, 0x3c);
    let table = nt + 24 + u16_at(file, nt + 20);
    (0..u16_at(file, nt + 6))
        .map(|i| table + 40 * i)
        .find_map(|h| {
            let (va, raw_size, raw) = (
                u32_at(file, h + 12),
                u32_at(file, h + 16),
                u32_at(file, h + 20),
            );
            (va..va + raw_size).contains(&rva).then(|| raw + rva - va)
        })
        .unwrap()
}

fn dll_module(name: &'static str, size: u32) -> SynthModule {
    SynthModule::new(name, BASE, size)
}

fn entry<'a>(m: &'a Modules, name: &str) -> &'a ModuleEntry {
    m.modules
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(name))
        .unwrap()
}

#[test]
fn the_fixture_dll_version_resource_is_read_from_the_file() {
    assert_eq!(
        read_path(&fixtures().join("odbcvend.dll")),
        Some(expected())
    );
    assert_eq!(read_file(&dll()), Some(expected()));
}

#[test]
fn the_version_resource_is_read_from_the_mapped_image() {
    let image = map_image(&dll());
    let read = |rva: u32, len: usize| {
        image
            .get(rva as usize..rva as usize + len)
            .map(<[u8]>::to_vec)
    };
    assert_eq!(read_mapped(read), Some(expected()));
}

#[test]
fn truncated_and_garbled_images_give_no_version_and_no_panic() {
    let file = dll();
    for n in (0..file.len()).step_by(7) {
        let v = read_file(&file[..n]);
        assert!(v.is_none() || n > 0x1000, "{n} bytes: {v:?}");
    }
    assert_eq!(read_file(&file[..0x1000]), None, "everything but .rsrc");
    // Every single byte of the headers and resources set to 0xff, one at a time.
    let mut garbled = file.clone();
    for i in (0..0x400).chain(0x1000..file.len()) {
        let old = garbled[i];
        garbled[i] = 0xff;
        let _ = read_file(&garbled);
        garbled[i] = old;
    }
    let mut lcg = 7u64;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            lcg = lcg.wrapping_mul(6364136223846793005).wrapping_add(1);
            (lcg >> 56) as u8
        })
        .collect();
    assert_eq!(read_file(&noise), None);
    let image = map_image(&file);
    for cut in [0, 2, 64, 0x200, 0x1000, 0x7010] {
        let read = |rva: u32, len: usize| {
            image
                .get(rva as usize..(rva as usize + len).min(cut))
                .filter(|b| b.len() == len)
                .map(<[u8]>::to_vec)
        };
        assert_eq!(read_mapped(read), None, "image cut at {cut:#x}");
    }
}

fn dll32() -> Vec<u8> {
    std::fs::read(fixtures().join("odbcvend32.dll")).unwrap()
}

fn mapped_reader(image: &[u8]) -> impl Fn(u32, usize) -> Option<Vec<u8>> + '_ {
    |rva: u32, len: usize| {
        image
            .get(rva as usize..(rva as usize).checked_add(len)?)
            .map(<[u8]>::to_vec)
    }
}

#[test]
fn the_version_resource_of_a_pe32_image_from_the_file_and_mapped() {
    let file = dll32();
    assert_eq!(&file[0x3c..0x40], &0x80u32.to_le_bytes(), "e_lfanew");
    assert_eq!(&file[0x98..0x9a], &0x10bu16.to_le_bytes(), "PE32 magic");
    assert_eq!(read_file(&file), Some(expected()));
    assert_eq!(
        read_mapped(mapped_reader(&map_image(&file))),
        Some(expected())
    );
    for n in (0..file.len()).step_by(3) {
        let _ = read_file(&file[..n]);
    }
    let mut garbled = file.clone();
    for i in 0..file.len() {
        for damage in [0x00, 0xff] {
            let old = garbled[i];
            garbled[i] = damage;
            let _ = read_file(&garbled);
            garbled[i] = old;
        }
    }
}

/// Resource directory fields set to hostile values, in a PE32+ and a PE32 image,
/// as a file and mapped: an answer after bounded reads (never the 4 GiB or the
/// 131070 entries a field asks for), with the version where the damage can be read
/// past.
#[test]
fn hostile_resource_directories_are_bounded() {
    // The data directories: after the signature, file header and the standard
    // optional header fields (112 bytes in PE32+, 96 in PE32).
    for (file, dirs) in [(dll(), 0x80 + 24 + 112), (dll32(), 0x80 + 24 + 96)] {
        let resources = dirs + 2 * 8;
        let image = map_image(&file);
        let root_rva = u32_at(&file, resources);
        let root_offset = file_offset(&file, root_rva);
        // (what, in the headers or else relative to the root table, value, found)
        type Damage = (&'static str, bool, usize, &'static [u8], bool);
        let cases: [Damage; 5] = [
            (
                "directory 4 GiB long",
                true,
                resources + 4,
                &[0xff; 4],
                true,
            ),
            (
                "directory at RVA 0xfffffff0",
                true,
                resources,
                &[0xf0, 0xff, 0xff, 0xff],
                false,
            ),
            ("65535 + 65535 root entries", false, 12, &[0xff; 4], false),
            (
                "the type entry points at the root",
                false,
                20,
                &[0, 0, 0, 0x80],
                false,
            ),
            (
                "the type entry points past the end",
                false,
                20,
                &[0xf0, 0xff, 0xff, 0xff],
                false,
            ),
        ];
        for (what, in_headers, at, value, found) in cases {
            let want = found.then(expected);
            let mut f = file.clone();
            let mut m = image.clone();
            let (in_file, mapped) = if in_headers {
                (at, at)
            } else {
                (root_offset + at, root_rva + at)
            };
            f[in_file..in_file + value.len()].copy_from_slice(value);
            m[mapped..mapped + value.len()].copy_from_slice(value);
            assert_eq!(read_file(&f), want, "{what} (file)");
            assert_eq!(read_mapped(mapped_reader(&m)), want, "{what} (mapped)");
        }
    }
}

#[test]
fn modules_read_the_version_resource_from_dump_memory() {
    let image = map_image(&dll());
    let bytes = SynthDump {
        modules: vec![
            SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000),
            dll_module(DLL_PATH, image.len() as u32),
        ],
        memory: vec![(BASE, image)],
        ..Default::default()
    }
    .build();
    let f = tempfile::Builder::new().suffix(".dmp").tempfile().unwrap();
    std::fs::write(f.path(), &bytes).unwrap();
    let r = leakdiag::analysis::analyze_dump(f.path(), &AnalyzeOptions::default()).unwrap();
    let m: &Modules = r.modules().unwrap();
    assert_eq!((m.loaded, m.unloaded, m.with_version_strings), (2, 0, 1));
    let e = entry(m, "odbcvend.dll");
    assert_eq!(e.version_strings, Some(expected()));
    assert_eq!(e.version_source, Some(VersionSource::DumpMemory));
    assert_eq!(e.image_file, None);
    assert_eq!(e.base.0, BASE);
    assert_eq!(
        e.file_version.as_deref(),
        Some("4369.4369.8738.8738"),
        "the module record's fixed info"
    );
    assert_eq!(e.timestamp, 0x5f00_0000);
    assert_eq!(e.timestamp_rfc3339.as_deref(), Some("2020-07-04T04:05:20Z"));
    assert_eq!(entry(m, "app.exe").version_strings, None);

    // The helper other scripts use to name a module's vendor.
    let dump = DumpFile::open(f.path()).unwrap();
    let modules = dump.modules(&mut Vec::new());
    let process = dump.process_info(&modules);
    let options = AnalyzeOptions::default();
    let ctx = ScriptContext {
        dump: &dump,
        modules: &modules,
        process: &process,
        stream: None,
        table: None,
        reachability: None,
        options: &options,
    };
    let vendor = modules
        .modules()
        .iter()
        .find(|m| m.name == "odbcvend.dll")
        .unwrap();
    assert_eq!(
        version_strings(&ctx, vendor)
            .and_then(|v| v.company_name)
            .as_deref(),
        Some("Contoso Data Access Ltd.")
    );
    let app = modules
        .modules()
        .iter()
        .find(|m| m.name == "app.exe")
        .unwrap();
    assert_eq!(version_strings(&ctx, app), None);
}

#[test]
fn a_partial_image_in_memory_gives_no_version_and_no_error() {
    let image = map_image(&dll());
    let bytes = SynthDump {
        modules: vec![dll_module(DLL_PATH, image.len() as u32)],
        memory: vec![(BASE, image[..0x400].to_vec())],
        ..Default::default()
    }
    .build();
    let r = analyze_synth(bytes, &AnalyzeOptions::default());
    let m: &Modules = r.modules().unwrap();
    assert_eq!(m.with_version_strings, 0);
    assert_eq!(entry(m, "odbcvend.dll").version_strings, None);
    assert!(r.warnings.is_empty() || !r.warnings.iter().any(|w| w.contains("modules")));
}

#[test]
fn modules_read_image_files_from_the_images_folders() {
    let bytes = SynthDump {
        modules: vec![
            dll_module("C:\\Vendor\\ODBCVEND.DLL", 0x8000),
            SynthModule {
                unloaded: true,
                ..SynthModule::new("C:\\Vendor\\odbcvend.dll", 0x7ffa_5000_0000, 0x8000)
            },
            SynthModule::new("C:\\a\\missing.dll", 0x40_0000, 0x1_0000),
        ],
        ..Default::default()
    }
    .build();
    let empty = tempfile::tempdir().unwrap();
    let options = AnalyzeOptions {
        images: vec![empty.path().to_owned(), fixtures()],
        ..Default::default()
    };
    let r = analyze_synth(bytes.clone(), &options);
    let m: &Modules = r.modules().unwrap();
    assert_eq!(m.with_version_strings, 2);
    // An --images entry may also be the image file itself.
    let options = AnalyzeOptions {
        images: vec![fixtures().join("odbcvend.dll")],
        ..Default::default()
    };
    let r = analyze_synth(bytes, &options);
    let m: &Modules = r.modules().unwrap();
    assert_eq!((m.loaded, m.unloaded, m.with_version_strings), (2, 1, 2));
    for e in m.modules.iter().filter(|e| e.name != "missing.dll") {
        assert_eq!(e.version_strings, Some(expected()), "{}", e.name);
        assert_eq!(e.version_source, Some(VersionSource::ImageFile));
        assert!(e.image_file.as_deref().unwrap().ends_with("odbcvend.dll"));
    }
    assert_eq!(entry(m, "missing.dll").version_strings, None);
}

#[test]
fn the_cli_takes_images_folders_and_shows_the_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = SynthDump {
        modules: vec![
            SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000),
            dll_module(DLL_PATH, 0x8000),
        ],
        ..Default::default()
    }
    .build();
    std::fs::write(dir.path().join("v.dmp"), bytes).unwrap();
    let images = fixtures();
    let o = leakdiag(
        dir.path(),
        &[
            "analyze",
            "v.dmp",
            "-o",
            "out",
            "--images",
            images.to_str().unwrap(),
            "--images",
            ".",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = read_json(&dir.path().join("out/v/report.json"));
    let vendor = &json["sections"]["modules"]["modules"][1];
    assert_eq!(vendor["name"], "odbcvend.dll");
    assert_eq!(vendor["version_source"], "image_file");
    assert_eq!(
        vendor["version_strings"]["company_name"],
        "Contoso Data Access Ltd."
    );
    assert_eq!(
        json["sections"]["modules"]["modules"][0]["version_strings"],
        serde_json::Value::Null
    );
    let html = std::fs::read_to_string(dir.path().join("out/v/report.html")).unwrap();
    let doc = scraper::Html::parse_document(&html);
    let rows = scraper::Selector::parse("#modules tbody tr").unwrap();
    assert_eq!(doc.select(&rows).count(), 2);
    assert!(html.contains("Contoso Data Access Ltd. (from the image file)"));
}

#[test]
fn the_leak_finding_names_the_vendor_from_the_version_resource() {
    use leakdiag::dump::stream::AllocatorKind;
    use leakdiag::dump::writer::AllocationStreamBuilder;
    let window = 3600 * 10_000_000u64;
    let mut b = AllocationStreamBuilder::new(0, window);
    for i in 0..100 {
        b.allocate(
            0x1000 + i * 64,
            500,
            i * window / 100,
            AllocatorKind::CRuntime,
            &[BASE + 0x1010],
        );
    }
    let bytes = SynthDump {
        modules: vec![dll_module(DLL_PATH, 0x8000)],
        stream: Some(b.build()),
        ..Default::default()
    }
    .build();
    let options = AnalyzeOptions {
        images: vec![fixtures()],
        ..Default::default()
    };
    let r = analyze_synth(bytes, &options);
    assert_eq!(
        r.verdict.modules[0].company.as_deref(),
        Some("Contoso Data Access Ltd.")
    );
    assert!(
        r.verdict
            .headline
            .contains("odbcvend.dll (Contoso Data Access Ltd.)"),
        "{}",
        r.verdict.headline
    );
    let leak = &r.summary[0];
    assert_eq!(leak.title, "odbcvend.dll is probably leaking");
    assert!(
        leak.recommendation
            .contains("every object odbcvend.dll (Contoso Data Access Ltd.) returns"),
        "{}",
        leak.recommendation
    );
}
