//! Writes UMDH logs in the formats of docs/umdh.md, with the generator the tests use
//! (tests/it/umdh_gen.rs).
//!
//! ```sh
//! cargo run --example make-umdh-logs -- incident DIR     # 3 snapshots of one process + a comparison
//! cargo run --release --example make-umdh-logs -- large FILE N   # one snapshot of N allocations
//!
//! cargo run --release --example make-umdh-logs -- parse FILE [CHUNK_BYTES]  # time the reader alone
//! ```
//!
//! `parse` reads a snapshot log with `leakdiag::umdh::snapshot` only (no analysis,
//! no report) and prints the time, the allocations and the stacks on standard error
//! (`RAYON_NUM_THREADS` sets the threads).
//!
//! `large` streams the log to the file (N = 5,000,000 is 251 MB): 200 modules,
//! 20,000 stacks of 16 frames, allocations spread over 8 heaps, 64-bit addresses.

#[path = "../tests/it/umdh_gen.rs"]
mod umdh_gen;

use std::fmt::Write as _;
use std::io::Write as _;
use umdh_gen::*;

fn incident(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for n in 0..3 {
        let (spec, _) = scenario(true, n, 400);
        std::fs::write(dir.join(format!("snap{}.txt", n + 1)), snapshot_text(&spec))?;
    }
    let (entries, _) = comparison_scenario();
    std::fs::write(dir.join("cmp.txt"), comparison_text(&entries, false, true))?;
    Ok(())
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn large(path: &std::path::Path, allocations: u64) -> std::io::Result<()> {
    const MODULES: u64 = 200;
    const STACKS: usize = 20_000;
    const DEPTH: usize = 16;
    const HEAPS: u64 = 8;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let modules: Vec<GenModule> = (0..MODULES)
        .map(|i| {
            let name = match i {
                0 => "C:\\App\\bigapp.exe".to_owned(),
                1 => "C:\\Windows\\SYSTEM32\\ntdll.dll".to_owned(),
                2 => "C:\\Windows\\System32\\ucrtbase.dll".to_owned(),
                _ => format!("C:\\App\\plugins\\mod{i:03}.dll"),
            };
            GenModule::new(&name, 0x7FF8_0000_0000 + i * 0x100_0000, 0x80_0000)
        })
        .collect();
    let mut spec = SnapshotSpec::new(5150, "2026-03-05 10:00", modules.clone());
    for _ in 0..STACKS {
        let frames = (0..DEPTH)
            .map(|d| {
                let m = match d {
                    0 => 1,
                    1 => 2,
                    _ => 3 + rng.next() % (MODULES - 3),
                };
                GenFrame::Address(modules[m as usize].base + 0x1000 + rng.next() % 0x70_0000)
            })
            .collect();
        spec.stack(frames);
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    // Header and module list from the generator, then heaps written in a stream.
    let mut head = String::new();
    let header_only = SnapshotSpec {
        heaps: Vec::new(),
        ..spec.clone()
    };
    write_snapshot(&header_only, &mut head);
    out.write_all(head.replace('\n', "\r\n").as_bytes())?;
    let mut printed = vec![false; STACKS];
    let per_heap = allocations.div_ceil(HEAPS);
    let mut address = 0x1D6_0000_0000u64;
    let mut written = 0u64;
    let mut line = String::new();
    for h in 0..HEAPS {
        let heap = 0x1D5_0000_0000 + h * 0x100_0000;
        write!(
            out,
            "*- - - - - - - - - - Start of data for heap @ {heap:X} - - - - - - - - - -\r\n\r\n"
        )?;
        for _ in 0..per_heap.min(allocations - written) {
            let stack = (rng.next() % STACKS as u64) as usize;
            let size = 16 + rng.next() % 512;
            line.clear();
            write!(
                line,
                "{size:X} bytes + 20 at {address:X} by BackTrace{}\r\n",
                spec.ids[stack]
            )
            .unwrap();
            address += (size + 0x2F) & !0xF;
            if !printed[stack] {
                printed[stack] = true;
                for f in &spec.stacks[stack] {
                    if let GenFrame::Address(a) = f {
                        write!(line, "\t{a:X}\r\n").unwrap();
                    }
                }
                line.push_str("\r\n");
            }
            out.write_all(line.as_bytes())?;
            written += 1;
        }
        write!(
            out,
            "\r\n*- - - - - - - - - - End of data for heap @ {heap:X} - - - - - - - - - -\r\n\r\n"
        )?;
    }
    out.flush()
}

fn parse(path: &std::path::Path, chunk: usize) -> std::io::Result<()> {
    let t0 = std::time::Instant::now();
    let snap =
        leakdiag::umdh::snapshot::parse_chunked(path, chunk).map_err(std::io::Error::other)?;
    eprintln!(
        "parsed in {:.3} s: {} allocations, {} bytes, {} stacks, {} lines, {} warnings",
        t0.elapsed().as_secs_f64(),
        snap.allocations,
        snap.bytes,
        snap.traces.len(),
        snap.lines,
        snap.warnings.len()
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["incident", dir] => incident(dir.as_ref()),
        ["large", file, n] => large(file.as_ref(), n.parse().expect("N: a number")),
        ["parse", file] => parse(file.as_ref(), leakdiag::umdh::snapshot::CHUNK_BYTES),
        ["parse", file, chunk] => {
            parse(file.as_ref(), chunk.parse().expect("CHUNK_BYTES: a number"))
        }
        _ => {
            eprintln!(
                "usage: make-umdh-logs incident DIR | large FILE N | parse FILE [CHUNK_BYTES]"
            );
            std::process::exit(2);
        }
    }
}
