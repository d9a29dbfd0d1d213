//! Writes UMDH logs in the formats of docs/umdh.md, with the generator the tests use
//! (tests/it/umdh_gen.rs).
//!
//! ```sh
//! cargo run --example make-umdh-logs -- incident DIR     # 3 snapshots of one process + a comparison
//! cargo run --release --example make-umdh-logs -- large FILE N   # one snapshot of N allocations
//! cargo run --release --example make-umdh-logs -- realistic FILE N   # shaped like a real one
//!
//! cargo run --release --example make-umdh-logs -- parse FILE [CHUNK_BYTES]  # time the reader alone
//! ```
//!
//! `parse` reads a snapshot log with `leakdiag::umdh::snapshot` only (no analysis,
//! no report) and prints the time (and how much of it was serial: the merge), the
//! allocations and the stacks on standard error (`RAYON_NUM_THREADS` sets the
//! threads; CHUNK_BYTES defaults to `snapshot::chunk_bytes`, as `analyze` reads).
//!
//! `large` streams the log to the file (N = 5,000,000 is 251 MB): 200 modules,
//! 20,000 stacks of 16 frames, allocations spread over 8 heaps, 64-bit addresses.
//!
//! `realistic` writes a log shaped like a real one, about 230 bytes per allocation
//! (N = 5,000,000 is 1.16 GB): one distinct stack per 5 allocations (1,000,000),
//! each printed once at its first reference, 16 to 32 frames (heap and C runtime
//! innermost, the thread start outermost); 240 modules, whose frames are raw
//! return addresses (2 in 5 of the DLLs), `module!symbol+offset` (the system
//! modules, 2 in 5 DLLs) or `module!symbol+offset (file, line)` (the exe, 1 in 5
//! DLLs), the same call site always the same text; stacks reused with a heavy tail
//! (half of the reuses spread over all stacks, half on the first few); six heaps of
//! unequal size; sizes mostly small. CRLF, 64-bit, deterministic. It prints the
//! allocations and bytes charged to each module (the first frame outside ntdll,
//! KERNELBASE, KERNEL32 and ucrtbase), top 10.

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

/// The shape of the `realistic` log (see the module's documentation).
mod real {
    /// Modules: 0 the exe, 1..=4 the system (ntdll, KERNELBASE, KERNEL32, ucrtbase),
    /// the rest DLLs of the application.
    pub const MODULES: u64 = 240;
    pub const SYSTEM: [&str; 4] = ["ntdll", "KERNELBASE", "KERNEL32", "ucrtbase"];
    /// Heaps and their shares of the allocations (in 1/64ths: the process heap most).
    pub const HEAPS: [u64; 6] = [34, 12, 8, 5, 3, 2];
    /// Distinct stacks: one per this many allocations.
    pub const ALLOCATIONS_PER_STACK: u64 = 5;
}

/// The n-th module's name (without extension) and whether its frames are printed
/// resolved: 0 raw addresses, 1 `module!symbol+offset`, 2 with `(file, line)`.
fn real_module(i: u64) -> (String, u8) {
    match i {
        0 => ("bigapp".to_owned(), 2),
        1..=4 => (real::SYSTEM[i as usize - 1].to_owned(), 1),
        _ => (format!("mod{i:03}"), [0, 0, 1, 1, 2][i as usize % 5]),
    }
}

/// A call site of module `m`: the same (module, site) is always the same frame text.
fn real_frame(line: &mut String, modules: &[GenModule], m: u64, site: u64) {
    const SYSTEM_SYMBOLS: [[&str; 2]; 4] = [
        ["RtlpAllocateHeapInternal", "RtlUserThreadStart"],
        ["LocalAlloc", "HeapAlloc"],
        ["BaseThreadInitThunk", "HeapAlloc"],
        ["_malloc_base", "_calloc_base"],
    ];
    let (name, kind) = real_module(m);
    let offset = 0x10 + (site * 0x9D) % 0x3F0;
    match kind {
        0 => {
            let a = modules[m as usize].base + 0x1000 + site * 0x1F3 + offset;
            write!(line, "\t{a:X}\r\n").unwrap();
        }
        1 if (1..=4).contains(&m) => write!(
            line,
            "\t{name}!{}+{offset:08X}\r\n",
            SYSTEM_SYMBOLS[m as usize - 1][site as usize % 2]
        )
        .unwrap(),
        1 => write!(
            line,
            "\t{name}!CPart{}::Op{}+{offset:08X}\r\n",
            site / 8,
            site % 8
        )
        .unwrap(),
        _ => write!(
            line,
            "\t{name}!CPart{}::Op{}+{offset:08X} (d:\\src\\{name}\\part{}.cpp, {})\r\n",
            site / 8,
            site % 8,
            site / 8,
            40 + site * 7 % 900
        )
        .unwrap(),
    }
}

/// Writes stack `s` (its frames drawn from a generator seeded by `s`) and returns the
/// module charged for it: the first frame outside the system modules.
fn real_stack(line: &mut String, modules: &[GenModule], s: u64) -> u64 {
    let mut rng = Rng(s.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    rng.next();
    let depth = 16 + rng.next() % 17;
    // Innermost: the heap and the C runtime (or KERNELBASE's LocalAlloc).
    real_frame(line, modules, 1, rng.next() % 3 * 2);
    real_frame(
        line,
        modules,
        if rng.next().is_multiple_of(4) { 2 } else { 4 },
        rng.next() % 6,
    );
    // The application's frames: a few modules called into each other, each module
    // with its own number of call sites (the bigger modules more).
    let mut charged = None;
    let mut m = 0;
    for d in 2..depth - 3 {
        if d == 2 || rng.next().is_multiple_of(3) {
            let r = rng.next() % 1000;
            // Heavy tail: a few modules hold most frames.
            m = if r < 150 {
                0
            } else {
                5 + (r * r * r / 1_000_000) % (real::MODULES - 5)
            };
        }
        charged.get_or_insert(m);
        let sites = 200 + (m * 977) % 3000;
        real_frame(line, modules, m, rng.next() % sites);
    }
    // Outermost: the thread's start.
    real_frame(line, modules, 0, 4000 + rng.next() % 4);
    real_frame(line, modules, 3, 0);
    real_frame(line, modules, 1, 1);
    line.push_str("\r\n");
    charged.unwrap_or(0)
}

/// A log shaped like a real one (docs/performance.md, case 6).
fn realistic(path: &std::path::Path, allocations: u64) -> std::io::Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let modules: Vec<GenModule> = (0..real::MODULES)
        .map(|i| {
            let (name, _) = real_module(i);
            let path = match i {
                0 => format!("C:\\Program Files\\BigApp\\{name}.exe"),
                1..=4 => format!("C:\\Windows\\System32\\{name}.dll"),
                _ => format!("C:\\Program Files\\BigApp\\{name}.dll"),
            };
            GenModule::new(&path, 0x7FF8_0000_0000 + i * 0x100_0000, 0x80_0000)
        })
        .collect();
    let spec = SnapshotSpec::new(5150, "2026-03-05 10:00", modules.clone());
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut head = String::new();
    write_snapshot(&spec, &mut head);
    out.write_all(head.replace('\n', "\r\n").as_bytes())?;

    let stacks_total = allocations.div_ceil(real::ALLOCATIONS_PER_STACK).max(1);
    // Per stack: the module charged (the truth printed at the end).
    let mut charged: Vec<u16> = Vec::new();
    let mut truth = vec![(0u64, 0u64); real::MODULES as usize];
    let share: u64 = real::HEAPS.iter().sum();
    let mut written = 0u64;
    let mut line = String::new();
    let mut file_bytes = head.len() as u64;
    for (h, &part) in real::HEAPS.iter().enumerate() {
        let heap = 0x1D5_0000_0000 + h as u64 * 0x1000_0000;
        let mut address = heap + 0x1_0000;
        let count = if h + 1 == real::HEAPS.len() {
            allocations - written
        } else {
            (allocations * part / share).min(allocations - written)
        };
        write!(
            out,
            "*- - - - - - - - - - Start of data for heap @ {heap:X} - - - - - - - - - -\r\n\r\n"
        )?;
        for _ in 0..count {
            // A new stack at an even rate, so that there are `stacks_total` in all;
            // otherwise one seen before: half of them among all (most stacks have a
            // few allocations), half among the first ones (a few have very many).
            let due = (written + 1) * stacks_total / allocations.max(1);
            let s = if (charged.len() as u64) < due || charged.is_empty() {
                charged.len() as u64
            } else {
                let n = charged.len() as u64;
                let u = rng.next() % 1_000_000;
                if rng.next().is_multiple_of(2) {
                    rng.next() % n
                } else {
                    n * (u * u / 1_000_000) * (u * u / 1_000_000) / 1_000_000_000_000 % n
                }
            };
            let r = rng.next() % 1000;
            let size = match r {
                0..=899 => 16 + rng.next() % 240,
                900..=989 => 256 + rng.next() % 3840,
                _ => 4096 + rng.next() % 61440,
            };
            let id = 0x1A6A_0000 + s * 0x38;
            line.clear();
            write!(
                line,
                "{size:X} bytes + 20 at {address:X} by BackTrace{id:X}\r\n"
            )
            .unwrap();
            address += (size + 0x2F) & !0xF;
            let m = if s == charged.len() as u64 {
                let m = real_stack(&mut line, &modules, s);
                charged.push(m as u16);
                m
            } else {
                u64::from(charged[s as usize])
            };
            truth[m as usize].0 += 1;
            truth[m as usize].1 += size;
            out.write_all(line.as_bytes())?;
            file_bytes += line.len() as u64;
            written += 1;
        }
        write!(
            out,
            "\r\n*- - - - - - - - - - End of data for heap @ {heap:X} - - - - - - - - - -\r\n\r\n"
        )?;
    }
    out.flush()?;
    let mut ranked: Vec<(u64, (u64, u64))> = (0..real::MODULES).zip(truth).collect();
    ranked.sort_by_key(|&(m, (_, bytes))| (std::cmp::Reverse(bytes), m));
    eprintln!(
        "{written} allocations, {} stacks, about {} bytes ({} per allocation); bytes by the module charged (first frame outside the system modules), top 10:",
        charged.len(),
        file_bytes,
        file_bytes / written.max(1)
    );
    for (m, (count, bytes)) in ranked.iter().take(10) {
        eprintln!(
            "  {:<10} {count:>10} allocations {bytes:>14} bytes",
            real_module(*m).0
        );
    }
    Ok(())
}

fn parse(path: &std::path::Path, chunk: Option<usize>) -> std::io::Result<()> {
    use leakdiag::umdh::snapshot;
    let len = std::fs::metadata(path)?.len();
    let threads = rayon::current_num_threads();
    let chunk = chunk.unwrap_or_else(|| snapshot::chunk_bytes(len, threads));
    let mut times = snapshot::ReadTimes::default();
    let t0 = std::time::Instant::now();
    let snap = snapshot::parse_timed(path, chunk, &mut times).map_err(std::io::Error::other)?;
    eprintln!(
        "parsed in {:.3} s ({threads} threads, chunks of {chunk} bytes; parallel parts {:.3} s, serial parts {:.3} s): {} allocations, {} bytes, {} stacks, {} frames, {} distinct resolved frames, {} lines, {} warnings",
        t0.elapsed().as_secs_f64(),
        times.parallel.as_secs_f64(),
        times.serial.as_secs_f64(),
        snap.allocations,
        snap.bytes,
        snap.traces.len(),
        snap.frames.len(),
        snap.symbolic.len(),
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
        ["realistic", file, n] => realistic(file.as_ref(), n.parse().expect("N: a number")),
        ["parse", file] => parse(file.as_ref(), None),
        ["parse", file, chunk] => parse(
            file.as_ref(),
            Some(chunk.parse().expect("CHUNK_BYTES: a number")),
        ),
        _ => {
            eprintln!(
                "usage: make-umdh-logs incident DIR | large FILE N | realistic FILE N | parse FILE [CHUNK_BYTES]"
            );
            std::process::exit(2);
        }
    }
}
