//! A structure-aware fuzzer for leakdiag's inputs, on stable Rust (no nightly, no
//! `cargo fuzz`): it builds tracker-annotated minidumps, mutates them where the
//! format has structure (the allocation stream's header fields, stack and allocation
//! records, the metadata text, the minidump's stream directory) and checks that every
//! input is read without a panic, in bounded time, into bounded output that is safe to
//! paste (no control characters, no HTML from the dump in `summary.md`).
//!
//! With `--umdh` it does the same for UMDH snapshot and comparison logs
//! (`fuzz/umdh.rs`): logs from the tests' generator, mutated line by line and in
//! their encoding.
//!
//! ```text
//! cargo run --release --example fuzz -- [--seconds N] [--seed S] [--out DIR] [--big] [--umdh]
//! ```
//!
//! Findings (the input and a line saying what broke) go to `DIR` (default
//! `target/fuzz`), with `stats.json` summing up the run; `docs/robustness.md` records
//! the runs and what they found.

#[path = "../tests/it/synth.rs"]
mod synth;
#[path = "../tests/it/umdh_gen.rs"]
mod umdh_gen;
#[path = "fuzz/umdh.rs"]
mod umdh_logs;

use leakdiag::analysis::{analyze_input, AnalyzeOptions};
use leakdiag::dump::stream::{field, AllocatorKind, ALLOCATION_STREAM_TYPE, HEADER_SIZE};
use leakdiag::dump::writer::AllocationStreamBuilder;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synth::{SynthDump, SynthModule};

/// An input slower than this is recorded as a finding (the run goes on).
const SLOW: Duration = Duration::from_secs(5);
/// Output larger than this many bytes per input byte (plus a floor) is a finding.
const OUTPUT_PER_INPUT_BYTE: usize = 64;
const OUTPUT_FLOOR: usize = 32 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Strings a hostile dump may carry in module names and metadata.
const HOSTILE: &[&str] = &[
    "<img src=x onerror=alert(1)>.dll",
    "<svg onload=alert(1)>.dll",
    "[x](javascript:alert(1)).dll",
    "`code`|pipe|.dll",
    "&amp;&lt;.dll",
    "line\nbreak\n# heading.dll",
    "cr\rreturn.dll",
    "\u{1b}]0;pwned\u{7}\u{1b}[2J.dll",
    "tab\tnul\u{0}.dll",
    "C:\\very\\long\\path\\that\\goes\\on\\and\\on\\vendor.dll",
    "ünïcödé\u{202e}txt.exe.dll",
    "*bold* _em_ ~~strike~~ <b>.dll",
];

fn hostile(rng: &mut Rng) -> &'static str {
    HOSTILE[rng.below(HOSTILE.len() as u64) as usize]
}

const APP: u64 = 0x40_0000;
const VENDOR: u64 = 0x1000_0000;
const NTDLL: u64 = 0x7ff0_0000_0000;

/// A fresh, valid dump: a few modules, some stacks (some deep), allocations, metadata.
fn generate(rng: &mut Rng, big: bool) -> Vec<u8> {
    let hostile_name = rng.chance(30);
    let vendor_path: &'static str = if hostile_name {
        hostile(rng)
    } else {
        "C:\\v\\vendor.dll"
    };
    let modules = vec![
        SynthModule::new("C:\\app\\app.exe", APP, 0x10_0000),
        SynthModule::new(vendor_path, VENDOR, 0x10_0000),
        SynthModule::new("C:\\Windows\\System32\\ntdll.dll", NTDLL, 0x20_0000),
    ];
    let start = 133_497_936_000_000_000u64;
    let mut b = AllocationStreamBuilder::new(start, start + rng.below(72_000_000_000));
    let stacks = 1 + rng.below(if big { 200 } else { 20 });
    let max_depth = if big && rng.chance(20) {
        20_000
    } else if rng.chance(10) {
        2_000
    } else {
        64
    };
    let mut stack_frames = Vec::new();
    for _ in 0..stacks {
        let depth = rng.below(max_depth) as usize;
        let frames: Vec<u64> = (0..depth)
            .map(|_| match rng.below(4) {
                0 => NTDLL + rng.below(0x20_0000),
                1 => VENDOR + rng.below(0x10_0000),
                2 => APP + rng.below(0x10_0000),
                _ => rng.next(),
            })
            .collect();
        stack_frames.push(frames);
    }
    let allocations = rng.below(if big { 5_000 } else { 200 });
    for i in 0..allocations {
        let frames = rng.pick(&stack_frames).clone();
        let size = if rng.chance(2) {
            u64::MAX / 2
        } else {
            rng.below(1 << 20)
        };
        let time = rng.below(72_000_000_000);
        b.allocate(0x1000 + i * 64, size, time, AllocatorKind::Heap, &frames);
    }
    b.metadata(
        "tracker",
        if hostile_name {
            hostile(rng)
        } else {
            "fuzz 1.0"
        },
    );
    b.metadata("allocator_modules", "ldtrack.dll");
    b.metadata("max_depth", &max_depth.to_string());
    if rng.chance(30) {
        b.metadata(hostile(rng), hostile(rng));
    }
    SynthDump {
        modules,
        stream: Some(b.build()),
        pid: Some(rng.below(100_000) as u32),
        system_info: true,
        ..Default::default()
    }
    .build()
}

/// Where the minidump's directory and the allocation stream lie in `bytes`.
struct Layout {
    /// (offset of the directory entry, stream type, rva, size)
    entries: Vec<(usize, u32, u32, u32)>,
    stream: Option<(usize, usize)>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = at.checked_add(4).and_then(|end| b.get_mut(at..end)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if let Some(s) = at.checked_add(8).and_then(|end| b.get_mut(at..end)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn layout(b: &[u8]) -> Layout {
    let mut entries = Vec::new();
    let count = u32_at(b, 8).unwrap_or(0).min(1000) as usize;
    let dir = u32_at(b, 12).unwrap_or(0) as usize;
    for i in 0..count {
        let at = dir + 12 * i;
        let (Some(t), Some(size), Some(rva)) =
            (u32_at(b, at), u32_at(b, at + 4), u32_at(b, at + 8))
        else {
            break;
        };
        entries.push((at, t, rva, size));
    }
    let stream = entries
        .iter()
        .find(|e| e.1 == ALLOCATION_STREAM_TYPE)
        .map(|e| (e.2 as usize, e.3 as usize))
        .filter(|&(rva, size)| rva.checked_add(size).is_some_and(|end| end <= b.len()));
    Layout { entries, stream }
}

const HEADER_FIELDS: &[usize] = &[
    field::HEADER_SIZE,
    field::FLAGS,
    field::TRACKING_START,
    field::SNAPSHOT_TIME,
    field::FRAMES_OFFSET,
    field::FRAME_COUNT,
    field::STACKS_OFFSET,
    field::STACK_COUNT,
    field::ALLOCATIONS_OFFSET,
    field::ALLOCATION_COUNT,
    field::METADATA_OFFSET,
    field::METADATA_SIZE,
];

fn interesting(rng: &mut Rng, stream: &[u8], len: u64) -> u64 {
    let other = u64_at(stream, *rng.pick(HEADER_FIELDS)).unwrap_or(0);
    let random = rng.next();
    let below = rng.below(len.saturating_add(1));
    *rng.pick(&[
        0,
        1,
        8,
        16,
        40,
        HEADER_SIZE as u64,
        256,
        len,
        len.saturating_sub(8),
        (len / 2) & !7,
        other,
        other.wrapping_add(8),
        u64::from(u32::MAX),
        u64::MAX,
        u64::MAX / 8,
        1 << 32,
        random,
        below,
    ])
}

/// One structure-aware mutation; returns its name.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) -> &'static str {
    let l = layout(b);
    let choice = rng.below(10);
    if let (Some((rva, size)), true) = (l.stream, choice < 6) {
        let stream = b[rva..rva + size].to_vec();
        let len = size as u64;
        let s = &mut b[rva..rva + size];
        match choice {
            0 | 1 => {
                let f = *rng.pick(HEADER_FIELDS);
                let v = interesting(rng, &stream, len);
                if f == field::HEADER_SIZE || f == field::FLAGS {
                    put_u32(s, f, v as u32);
                } else {
                    put_u64(s, f, v);
                }
                "header field"
            }
            2 => {
                // A stack record made to cover much of the frame table.
                let off = u64_at(&stream, field::STACKS_OFFSET).unwrap_or(0) as usize;
                let n = u64_at(&stream, field::STACK_COUNT).unwrap_or(0);
                let frames = u64_at(&stream, field::FRAME_COUNT).unwrap_or(0);
                if n == 0 {
                    return "stack record (none)";
                }
                for _ in 0..=rng.below(n.min(64)) {
                    let at = off.wrapping_add(rng.below(n).wrapping_mul(16) as usize);
                    let first = rng.below(frames.max(1) / 4 + 1);
                    put_u64(s, at, if rng.chance(5) { u64::MAX } else { first });
                    let count = if rng.chance(5) {
                        rng.below(u64::from(u32::MAX)) as u32
                    } else {
                        frames.saturating_sub(first) as u32
                    };
                    put_u32(s, at.wrapping_add(8), count);
                }
                "stack records"
            }
            3 => {
                let off = u64_at(&stream, field::ALLOCATIONS_OFFSET).unwrap_or(0) as usize;
                let n = u64_at(&stream, field::ALLOCATION_COUNT).unwrap_or(0);
                if n == 0 {
                    return "allocation record (none)";
                }
                let at = off.wrapping_add(rng.below(n).wrapping_mul(40) as usize);
                match rng.below(4) {
                    0 => put_u64(s, at.wrapping_add(8), interesting(rng, &stream, u64::MAX)),
                    1 => put_u64(s, at.wrapping_add(16), rng.next()),
                    2 => put_u32(s, at.wrapping_add(32), rng.next() as u32),
                    _ => {
                        if let Some(x) = s.get_mut(at.wrapping_add(36)) {
                            *x = rng.next() as u8
                        }
                    }
                }
                "allocation record"
            }
            4 => {
                // Hostile text over the metadata, kept valid UTF-8 most of the time.
                let off = u64_at(&stream, field::METADATA_OFFSET).unwrap_or(0) as usize;
                let n = u64_at(&stream, field::METADATA_SIZE).unwrap_or(0) as usize;
                let text = format!("k={}\n", hostile(rng));
                let end = off.saturating_add(n).min(s.len());
                if off < end {
                    let region = &mut s[off..end];
                    let t = text.as_bytes();
                    let k = t.len().min(region.len());
                    region[..k].copy_from_slice(&t[..k]);
                }
                "metadata text"
            }
            _ => {
                for _ in 0..=rng.below(8) {
                    let at = rng.below(len) as usize;
                    if let Some(x) = s.get_mut(at) {
                        *x ^= 1 << rng.below(8);
                    }
                }
                "stream bit flips"
            }
        }
    } else {
        match rng.below(5) {
            0 if !l.entries.is_empty() => {
                // A second directory entry of the allocation stream's type, or another
                // stream turned into one.
                let e = rng.pick(&l.entries);
                put_u32(b, e.0, ALLOCATION_STREAM_TYPE);
                "directory: duplicate stream type"
            }
            1 if !l.entries.is_empty() => {
                let e = *rng.pick(&l.entries);
                let len = b.len() as u64;
                let other = *rng.pick(&l.entries);
                match rng.below(3) {
                    0 => put_u32(b, e.0 + 8, interesting(rng, &[], len) as u32),
                    1 => put_u32(b, e.0 + 4, interesting(rng, &[], len) as u32),
                    _ => {
                        // Two entries over the same bytes.
                        put_u32(b, e.0 + 8, other.2);
                        put_u32(b, e.0 + 4, other.3);
                    }
                }
                "directory: location"
            }
            2 => {
                put_u32(b, 8, rng.pick(&[0, 1, 1000, u32::MAX]).to_owned());
                "directory: stream count"
            }
            3 => {
                let keep = rng.below(b.len() as u64 + 1) as usize;
                b.truncate(keep);
                "truncate"
            }
            _ => {
                for _ in 0..=rng.below(16) {
                    let at = rng.below(b.len() as u64) as usize;
                    if let Some(x) = b.get_mut(at) {
                        *x = rng.next() as u8;
                    }
                }
                "random bytes"
            }
        }
    }
}

thread_local! {
    /// Set while an input is checked: its panics are findings, not noise.
    static IN_CHECK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What broke on one input, if anything.
fn check(path: &Path, input_len: usize, options: &AnalyzeOptions) -> Result<(), String> {
    let bound = OUTPUT_FLOOR + OUTPUT_PER_INPUT_BYTE * input_len;
    IN_CHECK.with(|c| c.set(true));
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
            // inspect: bounded, no control characters but newlines.
            let mut out = Vec::new();
            let listed = match leakdiag::umdh::detect(path).ok().flatten() {
                Some(kind) => {
                    let _ = leakdiag::umdh::inspect::inspect(&mut out, path, kind);
                    true
                }
                None => match leakdiag::dump::DumpFile::open(path) {
                    Ok(file) => {
                        let _ = leakdiag::dump::inspect::inspect(&mut out, &file);
                        true
                    }
                    Err(_) => false,
                },
            };
            if listed {
                if out.len() > bound {
                    return Err(format!("inspect wrote {} bytes", out.len()));
                }
                if let Some(c) = out
                    .iter()
                    .find(|&&c| (c < 0x20 && c != b'\n' && c != b'\t') || c == 0x7f)
                {
                    return Err(format!("inspect printed control byte 0x{c:02x}"));
                }
            }
            let report = match analyze_input(path, options) {
                Ok(r) => r,
                Err(_) => return Ok(()),
            };
            // Files are written through the same filter as `analyze` writes them.
            let mut filter = leakdiag::text::ControlFilter::new(Vec::new());
            leakdiag::report::json::write(&mut filter, &report).map_err(|e| e.to_string())?;
            let json = filter.into_inner().map_err(|e| e.to_string())?;
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&json) {
                return Err(format!("report.json does not parse back: {e}"));
            }
            let mut filter = leakdiag::text::ControlFilter::new(Vec::new());
            leakdiag::report::html::render_report(&mut filter, &report, &Default::default())
                .map_err(|e| e.to_string())?;
            let html = filter.into_inner().map_err(|e| e.to_string())?;
            if let Some(bad) = ["<img src", "<svg onload", "<script"]
                .iter()
                .find(|b| String::from_utf8_lossy(&html).contains(*b))
            {
                return Err(format!("report.html holds {bad:?}"));
            }
            let mut md = Vec::new();
            leakdiag::report::markdown::render_summary(&mut md, &report, "dump", &[])
                .map_err(|e| e.to_string())?;
            for (name, out) in [
                ("report.json", &json),
                ("report.html", &html),
                ("summary.md", &md),
            ] {
                if out.len() > bound {
                    return Err(format!(
                        "{name} is {} bytes for a {input_len}-byte dump",
                        out.len()
                    ));
                }
                if let Some(c) = out
                    .iter()
                    .find(|&&c| (c < 0x20 && c != b'\n' && c != b'\t') || c == 0x7f)
                {
                    return Err(format!("{name} holds control byte 0x{c:02x}"));
                }
            }
            let md = String::from_utf8_lossy(&md);
            if md
                .match_indices("](")
                .any(|(i, _)| !md[..i].ends_with('\\'))
            {
                return Err("summary.md holds a link".into());
            }
            for bad in ["<img", "<svg", "\n# heading"] {
                if md.contains(bad) {
                    return Err(format!("summary.md holds {bad:?}"));
                }
            }
            for line in md.lines().filter(|l| l.starts_with('|')) {
                if !line.ends_with('|') {
                    return Err(format!("summary.md table row broken: {line:?}"));
                }
            }
            Ok(())
        }));
    IN_CHECK.with(|c| c.set(false));
    match outcome {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

fn main() -> std::io::Result<()> {
    let mut seconds = 60u64;
    let mut seed = 0x1ea4_d1a9u64;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz");
    let mut big = false;
    let mut umdh = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(60),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            "--big" => big = true,
            "--umdh" => umdh = true,
            other => {
                eprintln!("fuzz: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    std::fs::create_dir_all(out.join("findings"))?;
    // Panics are findings, reported once each below; the default hook's backtraces
    // would only be noise.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_CHECK.with(|c| c.get()) {
            default_hook(info);
        }
    }));
    let options = AnalyzeOptions::default();
    let mut rng = Rng(seed | 1);
    let seeds: Vec<Vec<u8>> = ["w3wp_4711_1h.dmp", "w3wp_4711_2h.dmp"]
        .iter()
        .filter_map(|n| {
            std::fs::read(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/synthetic-incident")
                    .join(n),
            )
            .ok()
        })
        .collect();
    let ext = if umdh { "log" } else { "dmp" };
    let input = out.join(format!("input-{}.{ext}", std::process::id()));
    let started = Instant::now();
    let mut runs = 0u64;
    let mut by_mutation: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut findings: BTreeMap<String, u64> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(seconds) {
        let mut names = Vec::new();
        let mut bytes = if umdh {
            let mut text = umdh_logs::generate(&mut rng);
            for _ in 0..=rng.below(3) {
                IN_CHECK.with(|c| c.set(true));
                let m = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    umdh_logs::mutate(&mut rng, &mut text)
                }))
                .unwrap_or("mutator panicked");
                IN_CHECK.with(|c| c.set(false));
                *by_mutation.entry(m).or_default() += 1;
                names.push(m);
            }
            let (bytes, encoding) = umdh_logs::encode(&mut rng, &text);
            *by_mutation.entry(encoding).or_default() += 1;
            names.push(encoding);
            bytes
        } else if !seeds.is_empty() && rng.chance(10) {
            rng.pick(&seeds).clone()
        } else {
            generate(&mut rng, big)
        };
        // A log has had its mutations; a dump gets them here.
        let dump_mutations = if umdh { 0 } else { 1 + rng.below(4) };
        for _ in 0..dump_mutations {
            // A mutator bug must not end the run: the input is kept as it was.
            IN_CHECK.with(|c| c.set(true));
            let m = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                mutate(&mut rng, &mut bytes)
            }))
            .unwrap_or("mutator panicked");
            IN_CHECK.with(|c| c.set(false));
            *by_mutation.entry(m).or_default() += 1;
            names.push(m);
        }
        std::fs::write(&input, &bytes)?;
        let t = Instant::now();
        let mut result = check(&input, bytes.len(), &options);
        let took = t.elapsed();
        slowest = slowest.max(took);
        if result.is_ok() && took > SLOW {
            result = Err(format!("slow: {:.1} s", took.as_secs_f64()));
        }
        runs += 1;
        if let Err(what) = result {
            // One saved input per kind of finding (the message up to its first digit).
            let kind: String = what
                .chars()
                .take_while(|c| !c.is_ascii_digit())
                .collect::<String>()
                .trim()
                .to_owned();
            let n = findings.entry(kind.clone()).or_default();
            *n += 1;
            if *n == 1 {
                let name = format!("finding-{}", findings.len());
                std::fs::write(out.join("findings").join(format!("{name}.{ext}")), &bytes)?;
                std::fs::write(
                    out.join("findings").join(format!("{name}.txt")),
                    format!("{what}\nmutations: {}\n", names.join(", ")),
                )?;
                eprintln!("fuzz: {name}: {what} (mutations: {})", names.join(", "));
            }
        }
    }
    let _ = std::fs::remove_file(&input);
    let stats = serde_json::json!({
        "seed": seed,
        "seconds": started.elapsed().as_secs(),
        "inputs": runs,
        "slowest_seconds": slowest.as_secs_f64(),
        "mutations": by_mutation,
        "findings": findings,
    });
    let mut f = std::fs::File::create(out.join(format!("stats-{seed}.json")))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    )?;
    println!(
        "{}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    );
    Ok(())
}
