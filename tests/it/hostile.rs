//! The exact inputs of issue 14 (extreme but valid dumps, hostile names, file-system
//! traps), generated here so that every test of `harden.rs` builds what it runs on,
//! and a harness that runs leakdiag on them with a hang bound and a record of the
//! file system around the run.

#![allow(dead_code)]

use crate::synth::{SynthDump, SynthModule};
use leakdiag::dump::stream::{field, ALLOCATION_STREAM_TYPE, HEADER_SIZE, MAGIC};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one leakdiag run may take before the test calls it a hang. Generous:
/// the bound is about hangs (a FIFO, frames × stacks), not about speed.
pub const HANG_BOUND: Duration = Duration::from_secs(180);

pub const APP: u64 = 0x40_0000;
pub const VENDOR: u64 = 0x1000_0000;
pub const NTDLL: u64 = 0x7ffa_0000_0000;

/// The modules of every generated dump: an application, a vendor DLL and ntdll.
pub fn modules() -> Vec<SynthModule> {
    vec![
        SynthModule::new("C:\\app\\app.exe", APP, 0x10_0000),
        SynthModule::new("C:\\v\\vendor.dll", VENDOR, 0x10_0000),
        SynthModule::new("C:\\Windows\\System32\\ntdll.dll", NTDLL, 0x20_0000),
    ]
}

/// An allocation stream laid out by hand: `frames`, `stacks` (first frame, frame
/// count), allocations (size, stack index) and metadata, each section directly after
/// the previous one.
pub fn raw_stream(
    frames: &[u64],
    stacks: &[(u64, u32)],
    allocations: &[(u64, u32)],
    metadata: &str,
) -> Vec<u8> {
    let frames_at = HEADER_SIZE;
    let stacks_at = frames_at + 8 * frames.len();
    let allocations_at = stacks_at + 16 * stacks.len();
    let metadata_at = allocations_at + 40 * allocations.len();
    let mut b = vec![0u8; metadata_at + metadata.len()];
    let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(field::MAGIC, &MAGIC.to_le_bytes());
    put(field::VERSION_MAJOR, &1u16.to_le_bytes());
    put(field::HEADER_SIZE, &(HEADER_SIZE as u32).to_le_bytes());
    put(field::FLAGS, &1u32.to_le_bytes());
    let start = 133_497_936_000_000_000u64;
    put(field::TRACKING_START, &start.to_le_bytes());
    put(
        field::SNAPSHOT_TIME,
        &(start + 36_000_000_000).to_le_bytes(),
    );
    for (f, at, n) in [
        (field::FRAMES_OFFSET, frames_at, frames.len()),
        (field::STACKS_OFFSET, stacks_at, stacks.len()),
        (field::ALLOCATIONS_OFFSET, allocations_at, allocations.len()),
        (field::METADATA_OFFSET, metadata_at, metadata.len()),
    ] {
        put(f, &(at as u64).to_le_bytes());
        put(f + 8, &(n as u64).to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        put(frames_at + 8 * i, &f.to_le_bytes());
    }
    for (i, &(first, count)) in stacks.iter().enumerate() {
        put(stacks_at + 16 * i, &first.to_le_bytes());
        put(stacks_at + 16 * i + 8, &count.to_le_bytes());
    }
    for (i, &(size, stack)) in allocations.iter().enumerate() {
        let at = allocations_at + 40 * i;
        put(at, &(0x1000_0000u64 + 64 * i as u64).to_le_bytes());
        put(at + 8, &size.to_le_bytes());
        put(at + 32, &stack.to_le_bytes());
        put(at + 36, &[1]);
    }
    put(metadata_at, metadata.as_bytes());
    b
}

/// A dump of `modules()` carrying `stream`.
pub fn dump_with(stream: Vec<u8>) -> Vec<u8> {
    SynthDump {
        modules: modules(),
        stream: Some(stream),
        pid: Some(4242),
        system_info: true,
        ..Default::default()
    }
    .build()
}

/// Item 1: one stack of `depth` frames (the issue's: 1,000,000, an 8 MB dump), the
/// innermost in ntdll, then vendor.dll, then app.exe, one allocation on it.
pub fn deep_stack_dump(depth: usize) -> Vec<u8> {
    let frames: Vec<u64> = (0..depth)
        .map(|i| match i {
            0 => NTDLL + 0x100,
            i if i < depth / 2 => VENDOR + 0x10 * (i as u64 % 0x1000),
            i => APP + 0x10 * (i as u64 % 0x1000),
        })
        .collect();
    dump_with(raw_stream(
        &frames,
        &[(0, depth as u32)],
        &[(4096, 0)],
        "tracker=hostile\nmax_depth=62\n",
    ))
}

/// Item 2: `stacks` stacks that each cover (nearly) all of a `frames`-frame table
/// (the issue's: 1,000 × 300,000 in a 2.4 MB file), every frame plumbing (ntdll) but
/// the last, each stack with an allocation.
pub fn overlapping_stacks_dump(frames: usize, stacks: usize) -> Vec<u8> {
    let mut table: Vec<u64> = (0..frames)
        .map(|i| NTDLL + 0x10 * (i as u64 % 0x1000))
        .collect();
    if let Some(last) = table.last_mut() {
        *last = VENDOR + 0x40;
    }
    let stack_table: Vec<(u64, u32)> = (0..stacks)
        .map(|i| (i as u64, (frames - i) as u32))
        .collect();
    let allocations: Vec<(u64, u32)> = (0..stacks).map(|i| (64, i as u32)).collect();
    dump_with(raw_stream(
        &table,
        &stack_table,
        &allocations,
        "tracker=hostile\n",
    ))
}

/// Module names (and an image path) that are HTML, Markdown, links and terminal
/// escape sequences (item 6).
pub const HOSTILE_NAMES: &[&str] = &[
    "C:\\x\\<img src=x onerror=alert(1)>.dll",
    "C:\\x\\<svg onload=alert(1)>.dll",
    "C:\\x\\[x](javascript:alert(1)).dll",
    "C:\\x\\`tick`&amp;.dll",
    "C:\\x\\esc\u{1b}]0;pwned\u{7}\u{1b}[2J.dll",
];

/// Item 6: a dump whose modules carry [`HOSTILE_NAMES`], each leaking, and whose
/// process image path holds a newline, a `\r`, a table row and a heading.
pub fn hostile_names_dump() -> Vec<u8> {
    let mut modules = vec![SynthModule::new(
        "C:\\app\\app.exe\r\n| injected | row |\n# heading",
        APP,
        0x10_0000,
    )];
    let mut frames = Vec::new();
    let mut stacks = Vec::new();
    let mut allocations = Vec::new();
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        let base = 0x2000_0000 + 0x100_0000 * i as u64;
        modules.push(SynthModule::new(name, base, 0x10_0000));
        stacks.push((frames.len() as u64, 1));
        frames.push(base + 0x10);
        allocations.push((1000 * (i as u64 + 1), i as u32));
    }
    SynthDump {
        modules,
        stream: Some(raw_stream(
            &frames,
            &stacks,
            &allocations,
            // NUL, DEL and the C1 CSI pass serde_json unescaped: found by the fuzzer.
            "tracker=<script>alert(1)</script>\u{1b}[31m\u{0}\u{7f}\u{9b}2J\nallocator_modules=\r\n",
        )),
        pid: Some(4242),
        system_info: true,
        ..Default::default()
    }
    .build()
}

/// A small valid dump (one leaking stack in vendor.dll).
pub fn small_dump() -> Vec<u8> {
    dump_with(raw_stream(
        &[NTDLL + 0x10, VENDOR + 0x20, APP + 0x30],
        &[(0, 3)],
        &[(100, 0), (200, 0)],
        "tracker=hostile\n",
    ))
}

/// Item 9: `dump` with the system-info stream's directory entry retyped as a second
/// allocation stream.
pub fn duplicate_stream(mut dump: Vec<u8>) -> Vec<u8> {
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let count = u32_at(&dump, 8) as usize;
    let dir = u32_at(&dump, 12) as usize;
    let entry = (0..count)
        .map(|i| dir + 12 * i)
        .find(|&at| u32_at(&dump, at) == 7) // SystemInfoStream
        .expect("a system-info stream");
    dump[entry..entry + 4].copy_from_slice(&ALLOCATION_STREAM_TYPE.to_le_bytes());
    dump
}

/// Item 9: the small dump's stream (more than 256 bytes long) with one header field
/// set to `value`.
pub fn stream_with(at: usize, value: u64, width: usize) -> Vec<u8> {
    let metadata = format!("tracker=hostile\npad={}\n", "x".repeat(100));
    let mut s = raw_stream(
        &[NTDLL + 0x10, VENDOR + 0x20, APP + 0x30],
        &[(0, 3)],
        &[(100, 0), (200, 0)],
        &metadata,
    );
    s[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
    s
}

/// What one run did.
pub struct Run {
    pub output: Output,
    pub took: Duration,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

/// Runs leakdiag in `cwd`, killed and failed after [`HANG_BOUND`].
pub fn run(cwd: &Path, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_leakdiag"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run leakdiag");
    // Drain the pipes while waiting, so a large output cannot block the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("leakdiag {args:?} ran past {HANG_BOUND:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        output: Output {
            status,
            stdout: out_reader.join().unwrap(),
            stderr: err_reader.join().unwrap(),
        },
        took: started.elapsed(),
    }
}

/// Every entry under `root` (links not followed) with its kind, size and content
/// hash, except those under `except`: the file system around a run, to compare.
pub fn snapshot(root: &Path, except: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(dir: &Path, except: &[&Path], out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if except.iter().any(|x| p.starts_with(x)) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let what = if t.is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if t.is_dir() {
                walk(&p, except, out);
                "dir".into()
            } else if t.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                format!(
                    "file {} {:016x}",
                    bytes.len(),
                    xxhash_rust::xxh3::xxh3_64(&bytes)
                )
            } else {
                "other".into()
            };
            out.insert(p, what);
        }
    }
    walk(root, except, &mut out);
    out
}

/// Total bytes of the regular files under `dir`.
pub fn size_of(dir: &Path) -> u64 {
    snapshot(dir, &[])
        .keys()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Whether `text` holds a control character other than newline and tab.
pub fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}
