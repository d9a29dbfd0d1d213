//! Generates the benchmark inputs of `bench/run.sh` (see docs/performance.md),
//! deterministically: the same bytes on every machine.
//!
//! ```text
//! bench-gen large OUT.dmp              case 1: 1,000,000 allocations, 20,000 stacks
//! bench-gen batch DIR                  case 3: 64 dumps of 100,000 allocations
//! bench-gen full OUT.dmp               case 4: 2 GiB Memory64List, 500,000 allocations
//! bench-gen huge OUT.dmp               case 5: 10,000,000 allocations, 100,000 stacks
//! bench-gen reach OUT.dmp              case 7: 2 GiB heap-like memory, 500,000 blocks in it
//! bench-gen scale N OUT.dmp            case 5's shape with N allocations (1M, 3M: scaling)
//! bench-gen csrc DIR [FUNCTIONS]       case 2: C sources (20,000 functions by default)
//! ```
//!
//! Dumps are written by a small streaming minidump writer (header, directory, system
//! info, misc info, module list, optional Memory64List, the allocation stream, then
//! the memory bytes), so that the 2 GiB dump is never held in memory. The allocation
//! stream itself comes from the library's [`AllocationStreamBuilder`].

use leakdiag::dump::stream::{AllocatorKind, ALLOCATION_STREAM_TYPE};
use leakdiag::dump::writer::{AllocationStreamBuilder, NewAllocation};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

/// A small deterministic generator (the same as the test fixtures').
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// FILETIME of a Unix time in seconds.
fn filetime(unix_seconds: u64) -> u64 {
    (unix_seconds + 11_644_473_600) * 10_000_000
}

const SECOND: u64 = 10_000_000;
/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600;

struct Module {
    name: String,
    base: u64,
    size: u32,
}

/// `count` modules (200 in cases 1, 3 and 4; 400 in case 5): the executable, three
/// system modules (skipped by the responsible-module rule) and the application DLLs,
/// 16 MiB apart.
fn modules(count: usize) -> Vec<Module> {
    (0..count)
        .map(|i| Module {
            name: match i {
                0 => "benchapp.exe".to_owned(),
                1 => "ntdll.dll".to_owned(),
                2 => "kernelbase.dll".to_owned(),
                3 => "ucrtbase.dll".to_owned(),
                _ => format!("app{i:03}.dll"),
            },
            base: 0x7ff6_0000_0000 + i as u64 * 0x100_0000,
            size: 0x80_0000,
        })
        .collect()
}

/// The stream of one dump: `allocations` records over `stacks` distinct stacks of
/// `depth` frames; each stack starts in ntdll and ucrtbase (plumbing) and continues
/// in application modules.
fn stream(
    seed: u64,
    modules: &[Module],
    stacks: usize,
    depth: usize,
    allocations: usize,
    window_seconds: u64,
) -> Vec<u8> {
    stream_depths(
        seed,
        modules,
        stacks,
        depth..=depth,
        allocations,
        window_seconds,
    )
}

/// [`stream`] with stacks of a depth drawn from `depths` (a fixed depth draws nothing,
/// so the fixed-depth cases keep their bytes).
fn stream_depths(
    seed: u64,
    modules: &[Module],
    stacks: usize,
    depths: std::ops::RangeInclusive<usize>,
    allocations: usize,
    window_seconds: u64,
) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let start = filetime(T0);
    let mut b = AllocationStreamBuilder::new(start, start + window_seconds * SECOND);
    // Stacks are the same for every seed of a batch (same program, same code paths);
    // only the allocations differ.
    let mut frames_rng = Lcg(0x5eed);
    let mut ids = Vec::with_capacity(stacks);
    let mut frames = Vec::with_capacity(*depths.end());
    while ids.len() < stacks {
        frames.clear();
        let depth = if depths.start() == depths.end() {
            *depths.start()
        } else {
            depths.start() + frames_rng.below((depths.end() - depths.start() + 1) as u64) as usize
        };
        for f in 0..depth {
            let m = match f {
                0 => 1,
                1 => 3,
                _ => 4 + frames_rng.below(modules.len() as u64 - 4) as usize,
            };
            // Application modules: 4,096 "call sites" each, so functions repeat.
            let rva = 0x1000 + frames_rng.below(4096) * 0x40 + 5;
            frames.push(modules[m].base + rva);
        }
        let id = b.add_stack(&frames);
        if id as usize == ids.len() {
            ids.push(id);
        }
    }
    let heaps = [0x1f0_0000u64, 0x2a0_0000, 0x3c0_0000, 0];
    for i in 0..allocations {
        // Skewed: low stack indices are hot.
        let s = (rng.below(stacks as u64) * rng.below(stacks as u64)) / stacks as u64;
        let size = (16u64 << rng.below(12)) + rng.below(64);
        b.add_allocation(NewAllocation {
            address: 0x1_0000_0000 + i as u64 * 0x100,
            size,
            time: rng.below(window_seconds * SECOND),
            heap: heaps[rng.below(4) as usize],
            stack: ids[s as usize],
            allocator: if rng.below(3) == 0 {
                AllocatorKind::Heap
            } else {
                AllocatorKind::CRuntime
            },
        });
    }
    b.metadata("tracker", "bench-gen 1.0")
        .metadata("max_depth", &depths.end().to_string());
    b.build()
}

/// Memory of a full dump: `ranges` ranges of `range_size` bytes.
/// Writes the bytes of one memory range (its index, its buffer).
type Fill<'a> = dyn Fn(u64, &mut [u8]) + 'a;

struct FullMemory<'a> {
    ranges: u64,
    range_size: u64,
    /// Fills range `i`'s bytes; `None`: a fixed pseudo-random pattern.
    fill: Option<&'a Fill<'a>>,
}

/// Where range `i` of a [`FullMemory`] lies: 1 MiB ranges 2 MiB apart.
fn range_base(i: u64, range_size: u64) -> u64 {
    0x2_0000_0000 + i * 2 * range_size
}

/// Case 7 (reachability): 500,000 blocks of 64 B – 4 KiB laid out inside the 2,048
/// captured ranges of 1 MiB with gaps between them (untracked memory), and memory
/// whose words are, like a heap's, mostly zeros and small numbers, with one in
/// eight a pointer into a block (anywhere inside it) and one in 32 a pointer-like
/// value that points nowhere. Returns the stream and the block table.
fn reach_blocks(modules: &[Module]) -> (Vec<u8>, Vec<(u64, u64)>) {
    const RANGES: u64 = 2048;
    const RANGE: u64 = 1 << 20;
    const BLOCKS: usize = 500_000;
    let mut rng = Lcg(0x7eac);
    let mut blocks = Vec::with_capacity(BLOCKS);
    let per_range = BLOCKS as u64 / RANGES + 1;
    'ranges: for r in 0..RANGES {
        let mut at = range_base(r, RANGE) + 16;
        for _ in 0..per_range {
            if blocks.len() == BLOCKS {
                break 'ranges;
            }
            let size = 64 + 16 * rng.below(252);
            let gap = 16 + 16 * rng.below(4);
            if at + size + gap > range_base(r, RANGE) + RANGE {
                break;
            }
            blocks.push((at, size));
            at += size + gap;
        }
    }
    // The stacks of case 4, then one allocation per block.
    let start = filetime(T0);
    let window = 2 * 3600;
    let mut b = AllocationStreamBuilder::new(start, start + window * SECOND);
    let mut frames_rng = Lcg(0x5eed);
    let mut ids = Vec::new();
    while ids.len() < 20_000 {
        let frames: Vec<u64> = (0..32)
            .map(|f| {
                let m = match f {
                    0 => 1,
                    1 => 3,
                    _ => 4 + frames_rng.below(modules.len() as u64 - 4) as usize,
                };
                modules[m].base + 0x1000 + frames_rng.below(4096) * 0x40 + 5
            })
            .collect();
        let id = b.add_stack(&frames);
        if id as usize == ids.len() {
            ids.push(id);
        }
    }
    for &(address, size) in &blocks {
        let s = (rng.below(ids.len() as u64) * rng.below(ids.len() as u64)) / ids.len() as u64;
        b.add_allocation(NewAllocation {
            address,
            size,
            time: rng.below(window * SECOND),
            heap: 0x1f0_0000,
            stack: ids[s as usize],
            allocator: AllocatorKind::CRuntime,
        });
    }
    b.metadata("tracker", "bench-gen 1.0");
    (b.build(), blocks)
}

/// Heap-like words for range `i`: see [`reach_blocks`].
fn reach_fill(blocks: &[(u64, u64)], i: u64, buf: &mut [u8]) {
    let mut rng = Lcg(0xfee1 ^ i);
    for chunk in buf.chunks_exact_mut(8) {
        let v = match rng.below(32) {
            0..=3 => {
                let (a, size) = blocks[rng.below(blocks.len() as u64) as usize];
                a + rng.below(size) / 8 * 8
            }
            4 => 0x7ff0_0000_0000 + rng.below(1 << 30) * 8,
            5..=9 => rng.below(1 << 16),
            _ => 0,
        };
        chunk.copy_from_slice(&v.to_le_bytes());
    }
}

fn minidump_string(s: &str) -> Vec<u8> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = Vec::new();
    out.extend_from_slice(&((units.len() * 2) as u32).to_le_bytes());
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// Writes a minidump in one pass.
fn write_dump(
    path: &Path,
    modules: &[Module],
    pid: u32,
    dump_time: u32,
    stream: &[u8],
    memory: Option<&FullMemory>,
) -> std::io::Result<()> {
    const SYSTEM_INFO: u32 = 7;
    const MISC_INFO: u32 = 15;
    const MODULE_LIST: u32 = 4;
    const MEMORY64_LIST: u32 = 9;
    let align8 = |n: usize| n.div_ceil(8) * 8;

    // Everything before the memory bytes is built in `head`.
    let stream_count = 4 + usize::from(memory.is_some());
    let mut head = vec![0u8; 32 + 12 * stream_count];
    let mut directory: Vec<(u32, u32, u32)> = Vec::new();

    // System info + its (empty) CSD version string.
    let csd_rva = head.len() + 56;
    let mut si = Vec::new();
    si.extend_from_slice(&9u16.to_le_bytes()); // AMD64
    si.extend_from_slice(&6u16.to_le_bytes());
    si.extend_from_slice(&0u16.to_le_bytes());
    si.push(16); // processors
    si.push(1); // workstation
    for v in [10u32, 0, 20348, 2, csd_rva as u32] {
        si.extend_from_slice(&v.to_le_bytes());
    }
    si.extend_from_slice(&[0u8; 4 + 24]);
    directory.push((SYSTEM_INFO, si.len() as u32, head.len() as u32));
    head.extend_from_slice(&si);
    head.extend_from_slice(&minidump_string(""));
    head.resize(align8(head.len()), 0);

    // Misc info: process id and creation time.
    let mut misc = Vec::new();
    for v in [24u32, 0x3, pid, dump_time - 3600, 10, 5] {
        misc.extend_from_slice(&v.to_le_bytes());
    }
    directory.push((MISC_INFO, misc.len() as u32, head.len() as u32));
    head.extend_from_slice(&misc);

    // Module list, then the names.
    let list_rva = head.len();
    let list_size = 4 + 108 * modules.len();
    let mut names_rva = list_rva + list_size;
    let mut list = Vec::with_capacity(list_size);
    let mut names = Vec::new();
    list.extend_from_slice(&(modules.len() as u32).to_le_bytes());
    for m in modules {
        let name = minidump_string(&format!("C:\\bench\\{}", m.name));
        list.extend_from_slice(&m.base.to_le_bytes());
        list.extend_from_slice(&m.size.to_le_bytes());
        list.extend_from_slice(&0u32.to_le_bytes()); // checksum
        list.extend_from_slice(&0x5f00_0000u32.to_le_bytes()); // timestamp
        list.extend_from_slice(&(names_rva as u32).to_le_bytes());
        list.extend_from_slice(&[0u8; 52 + 8 + 8 + 16]); // version, cv, misc, reserved
        names_rva += name.len();
        names.extend_from_slice(&name);
    }
    directory.push((MODULE_LIST, list.len() as u32, list_rva as u32));
    head.extend_from_slice(&list);
    head.extend_from_slice(&names);
    head.resize(align8(head.len()), 0);

    // Memory64 list: descriptors now, bytes after the allocation stream.
    let mut memory_list_at = None;
    if let Some(mem) = memory {
        let size = 16 + 16 * mem.ranges as usize;
        directory.push((MEMORY64_LIST, size as u32, head.len() as u32));
        memory_list_at = Some(head.len());
        head.resize(head.len() + size, 0);
    }

    // The allocation stream, 8-byte aligned.
    directory.push((
        ALLOCATION_STREAM_TYPE,
        stream.len() as u32,
        head.len() as u32,
    ));
    head.extend_from_slice(stream);
    head.resize(align8(head.len()), 0);

    if let (Some(mem), Some(at)) = (memory, memory_list_at) {
        let base_rva = head.len() as u64;
        head[at..at + 8].copy_from_slice(&mem.ranges.to_le_bytes());
        head[at + 8..at + 16].copy_from_slice(&base_rva.to_le_bytes());
        for i in 0..mem.ranges {
            let d = at + 16 + 16 * i as usize;
            let start = range_base(i, mem.range_size);
            head[d..d + 8].copy_from_slice(&start.to_le_bytes());
            head[d + 8..d + 16].copy_from_slice(&mem.range_size.to_le_bytes());
        }
    }

    // Header and directory.
    head[0..4].copy_from_slice(b"MDMP");
    head[4..8].copy_from_slice(&0xa793u32.to_le_bytes());
    head[8..12].copy_from_slice(&(directory.len() as u32).to_le_bytes());
    head[12..16].copy_from_slice(&32u32.to_le_bytes());
    head[20..24].copy_from_slice(&dump_time.to_le_bytes());
    head[24..32].copy_from_slice(&0x2u64.to_le_bytes()); // MiniDumpWithFullMemory
    for (i, (ty, size, rva)) in directory.iter().enumerate() {
        let d = 32 + 12 * i;
        head[d..d + 4].copy_from_slice(&ty.to_le_bytes());
        head[d + 4..d + 8].copy_from_slice(&size.to_le_bytes());
        head[d + 8..d + 12].copy_from_slice(&rva.to_le_bytes());
    }

    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&head)?;
    if let Some(mem) = memory {
        // One range at a time from one reused buffer.
        let mut buf = vec![0u8; mem.range_size as usize];
        for i in 0..mem.ranges {
            match mem.fill {
                Some(fill) => fill(i, &mut buf),
                None => {
                    for (j, chunk) in buf.chunks_exact_mut(8).enumerate() {
                        let v = (i << 32 | j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        chunk.copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            out.write_all(&buf)?;
        }
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.flush()?;
    let len = file.stream_position()?;
    eprintln!("wrote {} ({len} bytes)", path.display());
    Ok(())
}

/// C sources for the symbols case: `functions` functions in translation units of
/// 1,000, each calling static inline helpers (always inlined, several lines each, so
/// that addresses resolve to inline chains), and a main that references them all.
fn csrc(dir: &Path, functions: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    const PER_TU: usize = 1000;
    const HELPERS: usize = 64;
    let units = functions.div_ceil(PER_TU);
    let mut rng = Lcg(0xc0de);
    for u in 0..units {
        let mut s = String::new();
        s.push_str("/* generated by bench-gen csrc */\n");
        s.push_str("typedef unsigned (*fn_t)(unsigned);\n\n");
        for h in 0..HELPERS {
            let (a, b, c) = (
                1 + rng.below(13),
                rng.below(1 << 20),
                3 + 2 * rng.below(1 << 20),
            );
            s.push_str(&format!(
                "static inline __attribute__((always_inline)) unsigned\nh{u}_{h}(unsigned x)\n{{\n    x ^= x << {a};\n    x += {b}u;\n    x *= {c}u;\n    return x ^ (x >> 7);\n}}\n\n"
            ));
        }
        let first = u * PER_TU;
        let last = functions.min(first + PER_TU);
        for f in first..last {
            let (h1, h2) = (rng.below(HELPERS as u64), rng.below(HELPERS as u64));
            let m = rng.below(1 << 16);
            s.push_str(&format!(
                "__attribute__((noinline)) unsigned\nf{f}(unsigned x)\n{{\n    unsigned y = x + {f}u;\n    y = h{u}_{h1}(y);\n    if (y & 1)\n        y = h{u}_{h2}(y ^ {m}u);\n    return y;\n}}\n\n"
            ));
        }
        s.push_str(&format!("fn_t table{u}[] = {{\n"));
        for f in first..last {
            s.push_str(&format!("    f{f},\n"));
        }
        s.push_str("};\n");
        std::fs::write(dir.join(format!("tu{u:02}.c")), s)?;
    }
    let mut m =
        String::from("/* generated by bench-gen csrc */\ntypedef unsigned (*fn_t)(unsigned);\n");
    for u in 0..units {
        m.push_str(&format!("extern fn_t table{u}[];\n"));
    }
    m.push_str("\nint main(int argc, char **argv)\n{\n    unsigned s = 0;\n    (void)argv;\n");
    for u in 0..units {
        let n = functions.min((u + 1) * PER_TU) - u * PER_TU;
        m.push_str(&format!(
            "    for (int i = 0; i < {n}; i++)\n        s += table{u}[i]((unsigned)argc);\n"
        ));
    }
    m.push_str("    return (int)(s & 1);\n}\n");
    std::fs::write(dir.join("main.c"), m)?;
    eprintln!(
        "wrote {units} translation units + main.c to {}",
        dir.display()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> Result<&str, Box<dyn std::error::Error>> {
        args.get(i).map(String::as_str).ok_or_else(|| {
            "usage: bench-gen large|batch|full|reach|huge|csrc OUT, or bench-gen scale N OUT".into()
        })
    };
    let mods = modules(200);
    match arg(0)? {
        "large" => {
            let s = stream(1, &mods, 20_000, 32, 1_000_000, 2 * 3600);
            write_dump(Path::new(arg(1)?), &mods, 4242, T0 as u32 + 7200, &s, None)?;
        }
        "batch" => {
            let dir = Path::new(arg(1)?);
            std::fs::create_dir_all(dir)?;
            for i in 0..64u64 {
                // One process, dumped every 10 minutes: the window grows.
                let window = 3600 + i * 600;
                let s = stream(100 + i, &mods, 5_000, 32, 100_000, window);
                let path = dir.join(format!("batch_{i:02}.dmp"));
                write_dump(&path, &mods, 4343, (T0 + window) as u32, &s, None)?;
            }
        }
        "full" => {
            let s = stream(7, &mods, 20_000, 32, 500_000, 2 * 3600);
            let memory = FullMemory {
                ranges: 2048,
                range_size: 1 << 20,
                fill: None,
            };
            write_dump(
                Path::new(arg(1)?),
                &mods,
                4444,
                T0 as u32 + 7200,
                &s,
                Some(&memory),
            )?;
        }
        "reach" => {
            let (s, blocks) = reach_blocks(&mods);
            let fill = |i: u64, buf: &mut [u8]| reach_fill(&blocks, i, buf);
            let memory = FullMemory {
                ranges: 2048,
                range_size: 1 << 20,
                fill: Some(&fill),
            };
            write_dump(
                Path::new(arg(1)?),
                &mods,
                4646,
                T0 as u32 + 7200,
                &s,
                Some(&memory),
            )?;
        }
        // Case 5: a leaking server's ten million blocks: 100,000 stacks of 8 to 32
        // frames over 400 modules, 1 hour window; `scale N` writes the same shape with
        // N allocations (the same stacks, so the cost per allocation can be compared).
        "huge" | "scale" => {
            let (n, out) = match arg(0)? {
                "huge" => (10_000_000, arg(1)?),
                _ => (arg(1)?.parse()?, arg(2)?),
            };
            let mods = modules(400);
            let s = stream_depths(11, &mods, 100_000, 8..=32, n, 3600);
            write_dump(Path::new(out), &mods, 4545, T0 as u32 + 3600, &s, None)?;
        }
        "csrc" => {
            let n = match args.get(2) {
                Some(n) => n.parse()?,
                None => 20_000,
            };
            csrc(Path::new(arg(1)?), n)?;
        }
        other => return Err(format!("unknown case {other}").into()),
    }
    Ok(())
}
