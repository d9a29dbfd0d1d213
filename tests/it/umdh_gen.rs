//! Writes UMDH logs in the formats of docs/umdh.md: snapshot logs (header, module
//! list, heaps, allocation lines, each stack printed once at its first reference;
//! 32- or 64-bit addresses; raw or already-resolved frames) and comparison logs
//! (hexadecimal or decimal, old or new total line). Shared by the tests and by
//! `examples/make-umdh-logs.rs` (the benchmark's generator); std only.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A module of the loaded-module list.
#[derive(Clone, Debug)]
pub struct GenModule {
    pub path: String,
    pub base: u64,
    pub size: u64,
}

impl GenModule {
    pub fn new(path: &str, base: u64, size: u64) -> Self {
        GenModule {
            path: path.to_owned(),
            base,
            size,
        }
    }

    pub fn name(&self) -> &str {
        self.path.rsplit(['\\', '/']).next().unwrap_or(&self.path)
    }
}

/// A frame as printed in a snapshot.
#[derive(Clone, Debug)]
pub enum GenFrame {
    Address(u64),
    Symbolic(String),
}

/// An allocation line.
#[derive(Clone, Copy, Debug)]
pub struct GenAlloc {
    pub size: u64,
    pub overhead: u64,
    pub address: u64,
    /// Index into [`SnapshotSpec::stacks`].
    pub stack: usize,
}

/// A snapshot log.
#[derive(Clone, Debug)]
pub struct SnapshotSpec {
    pub version: String,
    /// `YYYY-MM-DD HH:MM`.
    pub logtime: String,
    pub machine: String,
    pub pid: u32,
    pub modules: Vec<GenModule>,
    /// Heaps in order: (heap address, allocations).
    pub heaps: Vec<(u64, Vec<GenAlloc>)>,
    /// Stacks innermost first; a stack's ID is `BackTrace` + `ids[i]`.
    pub stacks: Vec<Vec<GenFrame>>,
    pub ids: Vec<String>,
    pub crlf: bool,
}

impl SnapshotSpec {
    pub fn new(pid: u32, logtime: &str, modules: Vec<GenModule>) -> Self {
        SnapshotSpec {
            version: "7.04.0001".into(),
            logtime: logtime.into(),
            machine: "BUILD01".into(),
            pid,
            modules,
            heaps: Vec::new(),
            stacks: Vec::new(),
            ids: Vec::new(),
            crlf: true,
        }
    }

    /// Adds an allocation of `size` bytes (8 bytes of overhead) on stack `stack` to
    /// heap `heap` (a new last heap when it is not the last one), at an address of
    /// its own.
    pub fn allocate(&mut self, heap: u64, stack: usize, size: u64) {
        let n: u64 = self.heaps.iter().map(|(_, a)| a.len() as u64).sum();
        let alloc = GenAlloc {
            size,
            overhead: 8,
            address: 0x1_0000_0000 + n * 0x40,
            stack,
        };
        match self.heaps.last_mut() {
            Some((h, allocs)) if *h == heap => allocs.push(alloc),
            _ => self.heaps.push((heap, vec![alloc])),
        }
    }

    /// Adds a stack and returns its index; IDs look like newer UMDH's (hex).
    pub fn stack(&mut self, frames: Vec<GenFrame>) -> usize {
        self.stacks.push(frames);
        let i = self.stacks.len() - 1;
        self.ids
            .push(format!("{:X}", 0x1A6A_0000 + i as u64 * 0x38));
        i
    }
}

/// The text of a snapshot log.
pub fn snapshot_text(s: &SnapshotSpec) -> String {
    let mut out = String::new();
    write_snapshot(s, &mut out);
    if s.crlf {
        out.replace('\n', "\r\n")
    } else {
        out
    }
}

/// Writes a snapshot log into `out` (with `\n` line ends).
pub fn write_snapshot(s: &SnapshotSpec, out: &mut String) {
    writeln!(out, "// Debug library initialized ...").unwrap();
    writeln!(out, "DBGHELP: app - private symbols & lines").unwrap();
    writeln!(
        out,
        "// UMDH: version {}: Logtime {} - Machine={} - PID={}",
        s.version, s.logtime, s.machine, s.pid
    )
    .unwrap();
    writeln!(out, "//\n// Symbol path: srv*C:\\symbols\n//\n").unwrap();
    writeln!(out, "// Loaded modules:\n//     Base Size Module").unwrap();
    for m in &s.modules {
        writeln!(out, "// {:>16X} {:>16X} {}", m.base, m.size, m.path).unwrap();
    }
    writeln!(out, "//\n// Process modules enumerated.\n").unwrap();
    let mut printed = vec![false; s.stacks.len()];
    for (heap, allocs) in &s.heaps {
        writeln!(
            out,
            "*- - - - - - - - - - Start of data for heap @ {heap:X} - - - - - - - - - -\n"
        )
        .unwrap();
        writeln!(out, "REQUESTED bytes + OVERHEAD at ADDRESS by BackTraceID\n     STACK if not already dumped.\n").unwrap();
        writeln!(
            out,
            "*- - - - - - - - - - Heap {heap:X} Hogs - - - - - - - - - -\n"
        )
        .unwrap();
        for a in allocs {
            writeln!(
                out,
                "{:X} bytes + {:X} at {:X} by BackTrace{}",
                a.size, a.overhead, a.address, s.ids[a.stack]
            )
            .unwrap();
            if !printed[a.stack] {
                printed[a.stack] = true;
                for f in &s.stacks[a.stack] {
                    match f {
                        GenFrame::Address(x) => writeln!(out, "\t{x:X}").unwrap(),
                        GenFrame::Symbolic(t) => writeln!(out, "\t{t}").unwrap(),
                    }
                }
                writeln!(out).unwrap();
            }
        }
        writeln!(
            out,
            "\n*- - - - - - - - - - End of data for heap @ {heap:X} - - - - - - - - - -\n"
        )
        .unwrap();
    }
}

/// UTF-16 LE with a byte-order mark, as PowerShell's `>` writes.
pub fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend(u.to_le_bytes());
    }
    out
}

/// UTF-16 BE with a byte-order mark.
pub fn utf16be(text: &str) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFF];
    for u in text.encode_utf16() {
        out.extend(u.to_be_bytes());
    }
    out
}

/// One stack of a comparison log.
#[derive(Clone, Debug)]
pub struct CompareEntry {
    pub id: String,
    pub old_bytes: u64,
    pub new_bytes: u64,
    pub old_count: u64,
    pub new_count: u64,
    /// Printed frames, innermost first (`module!symbol+offset (file, line)`).
    pub frames: Vec<String>,
}

/// The text of a comparison log: hexadecimal or decimal (`-d`), the newer total line
/// (`requested + overhead = total`) or the older one.
pub fn comparison_text(entries: &[CompareEntry], decimal: bool, new_total: bool) -> String {
    let n = |v: u64| {
        if decimal {
            format!("{v}")
        } else {
            format!("{v:x}")
        }
    };
    let mut out = String::new();
    out.push_str("// Debug library initialized ...\n");
    out.push_str("//                                                                          \n");
    out.push_str("// Each log entry has the following syntax:                                 \n");
    out.push_str("//                                                                          \n");
    out.push_str("// + BYTES_DELTA (NEW_BYTES - OLD_BYTES) NEW_COUNT allocs BackTrace TRACEID \n");
    out.push_str("// + COUNT_DELTA (NEW_COUNT - OLD_COUNT) BackTrace TRACEID allocations      \n");
    out.push_str("//     ... stack trace ...                                                  \n");
    out.push_str(
        "//                                                                          \n\n",
    );
    let mut total: i128 = 0;
    for e in entries {
        let d = i128::from(e.new_bytes) - i128::from(e.old_bytes);
        total += d;
        let sign = if d < 0 { '-' } else { '+' };
        writeln!(
            out,
            "{sign} {:>6} ( {:>6} - {:>6}) {:>5} allocs\tBackTrace{}",
            n(d.unsigned_abs() as u64),
            n(e.new_bytes),
            n(e.old_bytes),
            n(e.new_count),
            e.id
        )
        .unwrap();
        let c = i128::from(e.new_count) - i128::from(e.old_count);
        let csign = if c < 0 { '-' } else { '+' };
        writeln!(
            out,
            "{csign} {:>6} ( {:>6} - {:>6})\tBackTrace{}\tallocations\n",
            n(c.unsigned_abs() as u64),
            n(e.new_count),
            n(e.old_count),
            e.id
        )
        .unwrap();
        for f in &e.frames {
            writeln!(out, "\t{f}").unwrap();
        }
        out.push('\n');
    }
    let word = if total < 0 { "decrease" } else { "increase" };
    let t = n(total.unsigned_abs() as u64);
    if new_total {
        let overhead = 0x10 * entries.len() as u64;
        writeln!(
            out,
            "Total {word} == {t} requested + {} overhead = {}",
            n(overhead),
            n(total.unsigned_abs() as u64 + overhead)
        )
        .unwrap();
    } else {
        writeln!(out, "Total {word} == {t}").unwrap();
    }
    out.replace('\n', "\r\n")
}

/// The modules of the standard scenario at 64- or 32-bit addresses:
/// app.exe, leaky.dll, vendor.dll, and the system modules ntdll, kernelbase, ucrtbase.
pub fn scenario_modules(bits64: bool) -> Vec<GenModule> {
    if bits64 {
        vec![
            GenModule::new("C:\\App\\app.exe", 0x7FF6_A000_0000, 0x2_0000),
            GenModule::new("C:\\App\\leaky.dll", 0x7FFB_1000_0000, 0x4_0000),
            GenModule::new(
                "C:\\Program Files\\Vendor\\vendor.dll",
                0x7FFB_2000_0000,
                0x8_0000,
            ),
            GenModule::new(
                "C:\\Windows\\SYSTEM32\\ntdll.dll",
                0x7FFB_F000_0000,
                0x1F_0000,
            ),
            GenModule::new(
                "C:\\Windows\\System32\\KERNELBASE.dll",
                0x7FFB_E000_0000,
                0x2D_0000,
            ),
            GenModule::new(
                "C:\\Windows\\System32\\ucrtbase.dll",
                0x7FFB_D000_0000,
                0x10_0000,
            ),
        ]
    } else {
        vec![
            GenModule::new("C:\\App\\app.exe", 0x40_0000, 0x2_0000),
            GenModule::new("C:\\App\\leaky.dll", 0x1000_0000, 0x4_0000),
            GenModule::new(
                "C:\\Program Files\\Vendor\\vendor.dll",
                0x6A00_0000,
                0x8_0000,
            ),
            GenModule::new("C:\\Windows\\SYSTEM32\\ntdll.dll", 0x7700_0000, 0x1A_0000),
            GenModule::new(
                "C:\\Windows\\System32\\KERNELBASE.dll",
                0x7600_0000,
                0x20_0000,
            ),
            GenModule::new(
                "C:\\Windows\\System32\\ucrtbase.dll",
                0x7500_0000,
                0x10_0000,
            ),
        ]
    }
}

/// Outstanding allocations and bytes per module name: the truth a report must show.
pub type Truth = BTreeMap<String, (u64, u64)>;

/// The standard scenario's snapshot number `n` (0, 1, 2, …): leaky.dll gains
/// `leak_per_snapshot` allocations of 256 bytes per snapshot, vendor.dll and
/// app.exe stay flat, a stack outside every module is `(unknown)`, one stack is
/// printed already resolved. Returns the spec and its per-module truth.
pub fn scenario(bits64: bool, n: u32, leak_per_snapshot: u64) -> (SnapshotSpec, Truth) {
    let modules = scenario_modules(bits64);
    let base = |i: usize| modules[i].base;
    let minutes = 10 + n * 30;
    let mut s = SnapshotSpec::new(
        4242,
        &format!("2026-03-05 {:02}:{:02}", 9 + minutes / 60, minutes % 60),
        modules.clone(),
    );
    let ntdll = base(3) + 0x1A20;
    let crt = base(5) + 0x2E40;
    let leaky = s.stack(vec![
        GenFrame::Address(ntdll),
        GenFrame::Address(crt),
        GenFrame::Address(base(1) + 0x1366),
        GenFrame::Address(base(0) + 0x2101),
    ]);
    let vendor = s.stack(vec![
        GenFrame::Address(ntdll),
        GenFrame::Address(base(4) + 0x5510),
        GenFrame::Address(base(2) + 0x3F00),
        GenFrame::Address(base(1) + 0x2000),
        GenFrame::Address(base(0) + 0x2101),
    ]);
    let app = s.stack(vec![
        GenFrame::Address(ntdll),
        GenFrame::Address(crt),
        GenFrame::Address(base(0) + 0x1500),
    ]);
    let unknown = s.stack(vec![
        GenFrame::Address(ntdll),
        GenFrame::Address(if bits64 { 0x1D6_F0A8_0000 } else { 0x0300_1234 }),
    ]);
    let resolved = s.stack(vec![
        GenFrame::Symbolic("ntdll!RtlAllocateHeap+00000808".into()),
        GenFrame::Symbolic("vendor!CVendorCache::Grow+0000001E".into()),
        GenFrame::Symbolic("app!main+0000002C".into()),
    ]);
    let mut truth = Truth::new();
    let add = |t: &mut Truth, m: &str, size: u64| {
        let e = t.entry(m.to_owned()).or_default();
        e.0 += 1;
        e.1 += size;
    };
    let mut addr = if bits64 {
        0x1D6_F000_0000u64
    } else {
        0x0060_0000u64
    };
    let mut next = |size: u64| {
        let a = addr;
        addr += (size + 0x20 + 0xF) & !0xF;
        a
    };
    let mut heap1 = Vec::new();
    let mut heap2 = Vec::new();
    for i in 0..(20 + leak_per_snapshot * u64::from(n)) {
        let size = 0x100;
        heap1.push(GenAlloc {
            size,
            overhead: 0x20,
            address: next(size),
            stack: leaky,
        });
        add(&mut truth, "leaky.dll", size);
        if i % 5 == 0 {
            let size = 0x30;
            heap2.push(GenAlloc {
                size,
                overhead: 0x10,
                address: next(size),
                stack: app,
            });
            add(&mut truth, "app.exe", size);
        }
    }
    for i in 0..12u64 {
        let size = 0x1000 + i * 0x10;
        heap1.push(GenAlloc {
            size,
            overhead: 0x28,
            address: next(size),
            stack: vendor,
        });
        add(&mut truth, "vendor.dll", size);
    }
    for _ in 0..3 {
        heap2.push(GenAlloc {
            size: 0x44,
            overhead: 0x1C,
            address: next(0x44),
            stack: unknown,
        });
        add(&mut truth, "(unknown)", 0x44);
    }
    for _ in 0..2 {
        heap2.push(GenAlloc {
            size: 0x80,
            overhead: 0x10,
            address: next(0x80),
            stack: resolved,
        });
        add(&mut truth, "vendor.dll", 0x80);
    }
    let h1 = if bits64 { 0x1D6_EFE0_0000 } else { 0x0015_0000 };
    let h2 = if bits64 { 0x1D6_F100_0000 } else { 0x0250_0000 };
    s.heaps = vec![(h1, heap1), (h2, heap2)];
    (s, truth)
}

/// A comparison of the standard scenario: leaky.dll grew, vendor.dll shrank a
/// little, app.exe stayed; returns the entries and the growth per module.
pub fn comparison_scenario() -> (Vec<CompareEntry>, BTreeMap<String, i128>) {
    let entries = vec![
        CompareEntry {
            id: "00053".into(),
            old_bytes: 0x9DF0,
            new_bytes: 0xF110,
            old_count: 0x20,
            new_count: 0x3A,
            frames: vec![
                "ntdll!RtlAllocateHeap+00000808".into(),
                "ucrtbase!malloc+0000002E".into(),
                "leaky!CRowBuffer::Alloc+0000001E (d:\\src\\leaky\\rowbuf.cpp, 42)".into(),
                "app!main+0000002C (d:\\src\\app\\main.cpp, 17)".into(),
            ],
        },
        CompareEntry {
            id: "0007A".into(),
            old_bytes: 0x2000,
            new_bytes: 0x1F00,
            old_count: 2,
            new_count: 2,
            frames: vec![
                "ntdll!RtlAllocateHeap+00000808".into(),
                "vendor!CVendorCache::Grow+00000100".into(),
                "app!main+00000040".into(),
            ],
        },
        CompareEntry {
            id: "00081".into(),
            old_bytes: 0x100,
            new_bytes: 0x400,
            old_count: 1,
            new_count: 4,
            frames: vec![
                "ntdll!RtlAllocateHeap+00000808".into(),
                "app!operator new+0000000E".into(),
            ],
        },
    ];
    let mut growth = BTreeMap::new();
    growth.insert("leaky".to_owned(), 0xF110 - 0x9DF0);
    growth.insert("vendor".to_owned(), -0x100);
    growth.insert("app".to_owned(), 0x300);
    (entries, growth)
}
