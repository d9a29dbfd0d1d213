//! Synthetic tracker-annotated dumps, built with `minidump-synth` and leakdiag's own
//! allocation-stream writer. Shared by the integration tests and the demo-incident
//! example (`examples/make-demo.rs` includes this file).

#![allow(dead_code)]

use leakdiag::dump::stream::{AllocatorKind, ALLOCATION_STREAM_TYPE};
use leakdiag::dump::writer::AllocationStreamBuilder;
use minidump_synth::{
    amd64_context, DumpString, HandleDescriptor, Memory, MemoryInfo, MiscFieldsProcessTimes,
    MiscStream, Module, SimpleStream, SynthMinidump, SystemInfo, Thread, UnloadedModule,
};
use test_assembler::{Endian, Section};

/// A module to put in a synthetic dump's module list.
#[derive(Clone, Debug)]
pub struct SynthModule {
    pub path: &'static str,
    pub base: u64,
    pub size: u32,
    /// (pdb file name, GUID bytes, age) for a PDB 7.0 CodeView record.
    pub pdb: Option<(&'static str, [u8; 16], u32)>,
    pub unloaded: bool,
}

impl SynthModule {
    pub const fn new(path: &'static str, base: u64, size: u32) -> Self {
        SynthModule {
            path,
            base,
            size,
            pdb: None,
            unloaded: false,
        }
    }
}

/// What to put in a synthetic dump besides the modules.
#[derive(Clone, Debug, Default)]
pub struct SynthDump {
    pub modules: Vec<SynthModule>,
    /// The allocation stream's bytes, if any.
    pub stream: Option<Vec<u8>>,
    pub pid: Option<u32>,
    /// Process creation, Unix seconds.
    pub process_create_time: Option<u32>,
    /// Dump time, Unix seconds (minidump header).
    pub dump_time: Option<u32>,
    pub system_info: bool,
    /// `processor_architecture` of the system-info stream (default 9, AMD64; 0 is x86).
    pub processor_architecture: Option<u16>,
    /// Memory-info list entries: (base, size, state, protection, type).
    pub memory_info: Vec<(u64, u64, u32, u32, u32)>,
    /// One handle descriptor per entry, with this type name.
    pub handles: Vec<Option<&'static str>>,
    /// Raw bytes of a ProcessVmCountersStream (type 22).
    pub vm_counters: Option<Vec<u8>>,
    /// Threads (their IDs), each with a small stack and an AMD64 context.
    pub threads: Vec<u32>,
    /// Memory regions: (address, bytes).
    pub memory: Vec<(u64, Vec<u8>)>,
    /// Threads with a stack of their own: (id, stack address, stack bytes, stack
    /// pointer).
    pub thread_stacks: Vec<(u32, u64, Vec<u8>, u64)>,
    /// The memory lists as a Memory64ListStream (a full-memory dump) instead of a
    /// MemoryListStream.
    pub memory64: bool,
}

/// Memory-info states and types.
pub mod mem {
    pub const COMMIT: u32 = 0x1000;
    pub const RESERVE: u32 = 0x2000;
    pub const FREE: u32 = 0x1_0000;
    pub const PRIVATE: u32 = 0x2_0000;
    pub const MAPPED: u32 = 0x4_0000;
    pub const IMAGE: u32 = 0x100_0000;
}

fn cv_record(pdb: &str, guid: [u8; 16], age: u32) -> Section {
    Section::with_endian(Endian::Little)
        .append_bytes(b"RSDS")
        .append_bytes(&guid)
        .D32(age)
        .append_bytes(pdb.as_bytes())
        .D8(0)
}

impl SynthDump {
    /// The dump's bytes.
    pub fn build(&self) -> Vec<u8> {
        let le = Endian::Little;
        let mut dump = SynthMinidump::with_endian(le);
        if self.system_info {
            let mut si = SystemInfo::new(le);
            si.processor_architecture = self.processor_architecture.unwrap_or(9); // AMD64
            si.platform_id = 2; // Windows NT
            si.major_version = 10;
            si.minor_version = 0;
            si.build_number = 20348;
            si.number_of_processors = 4;
            dump = dump.add_system_info(si);
        }
        if self.pid.is_some() || self.process_create_time.is_some() {
            let mut misc = MiscStream::new(le);
            misc.process_id = self.pid;
            misc.process_times = self.process_create_time.map(|t| MiscFieldsProcessTimes {
                process_create_time: t,
                process_user_time: 10,
                process_kernel_time: 5,
            });
            dump = dump.add_stream(misc);
        }
        for m in &self.modules {
            let name = DumpString::new(m.path, le);
            if m.unloaded {
                let module = UnloadedModule::new(le, m.base, m.size, &name, 0x5f00_0000, 0);
                dump = dump.add_unloaded_module(module).add(name);
                continue;
            }
            let mut module = Module::new(le, m.base, m.size, &name, 0x5f00_0000, 0, None);
            if let Some((pdb, guid, age)) = m.pdb {
                let cv = cv_record(pdb, guid, age);
                module = module.cv_record(&cv);
                dump = dump.add(cv);
            }
            dump = dump.add_module(module).add(name);
        }
        if let Some(stream) = &self.stream {
            // User streams start 8-byte aligned, as MiniDumpWriteDump lays them out.
            let section = Section::with_endian(le).append_bytes(stream);
            dump = dump
                .add(Section::with_endian(le).align(8))
                .add_stream(SimpleStream {
                    stream_type: ALLOCATION_STREAM_TYPE,
                    section,
                });
        }
        for &(base, size, state, protection, ty) in &self.memory_info {
            let info = MemoryInfo::new(le, base, base, protection, size, state, protection, ty);
            dump = dump.add_memory_info(info);
        }
        for (i, ty) in self.handles.iter().enumerate() {
            let name = ty.map(|t| DumpString::new(t, le));
            let handle =
                HandleDescriptor::new(le, 4 * (i as u64 + 1), name.as_ref(), None, 0, 0, 1, 1);
            dump = dump.add_handle_descriptor(handle);
            if let Some(name) = name {
                dump = dump.add(name);
            }
        }
        if let Some(counters) = &self.vm_counters {
            dump = dump.add_stream(SimpleStream {
                stream_type: 22,
                section: Section::with_endian(le).append_bytes(counters),
            });
        }
        for (i, &id) in self.threads.iter().enumerate() {
            let address = 0x1_0000_0000 + 0x1_0000 * i as u64;
            let stack =
                Memory::with_section(Section::with_endian(le).append_repeated(0, 64), address);
            let context = amd64_context(le, 0x40_1000, address);
            let thread = Thread::new(le, id, &stack, &context);
            dump = dump.add_thread(thread).add(context).add_memory(stack);
        }
        for (id, address, bytes, sp) in &self.thread_stacks {
            let stack =
                Memory::with_section(Section::with_endian(le).append_bytes(bytes), *address);
            let context = amd64_context(le, 0x40_1000, *sp);
            let thread = Thread::new(le, *id, &stack, &context);
            dump = dump.add_thread(thread).add(context).add_memory(stack);
        }
        for (address, bytes) in &self.memory {
            let memory =
                Memory::with_section(Section::with_endian(le).append_bytes(bytes), *address);
            dump = if self.memory64 {
                dump.add_memory64(memory)
            } else {
                dump.add_memory(memory)
            };
        }
        let mut bytes = dump.finish().expect("synthetic dump");
        if let Some(t) = self.dump_time {
            bytes[20..24].copy_from_slice(&t.to_le_bytes());
        }
        bytes
    }
}

/// FILETIME of a Unix time in seconds.
pub fn filetime(unix_seconds: u64) -> u64 {
    (unix_seconds + 11_644_473_600) * 10_000_000
}

/// Ticks (100 ns) in a second.
pub const SECOND: u64 = 10_000_000;

/// A small deterministic generator, so fixtures are the same on every machine.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The modules of the demo incident: an IIS-like worker with a third-party ODBC
/// driver that leaks, the customer's own DLL with a start-up cache, and the tracker.
pub fn demo_modules() -> Vec<SynthModule> {
    let pdb = |name, seed: u8| Some((name, [seed; 16], 1));
    vec![
        SynthModule {
            pdb: pdb("w3wp.pdb", 1),
            ..SynthModule::new(
                "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                0x7ff6_1000_0000,
                0x8000,
            )
        },
        SynthModule::new(
            "C:\\Windows\\System32\\ntdll.dll",
            0x7ffa_0000_0000,
            0x1f_0000,
        ),
        SynthModule::new(
            "C:\\Windows\\System32\\KERNEL32.DLL",
            0x7ffa_1000_0000,
            0xc_0000,
        ),
        SynthModule::new(
            "C:\\Windows\\System32\\ucrtbase.dll",
            0x7ffa_2000_0000,
            0x10_0000,
        ),
        SynthModule {
            pdb: pdb("ldtrack.pdb", 2),
            ..SynthModule::new(
                "C:\\Tools\\leakdiag\\ldtrack.dll",
                0x7ffa_3000_0000,
                0x2_0000,
            )
        },
        SynthModule {
            pdb: pdb("odbcvend.pdb", 3),
            ..SynthModule::new(
                "C:\\Program Files\\Vendor\\odbcvend.dll",
                0x7ffa_4000_0000,
                0x4_0000,
            )
        },
        SynthModule {
            pdb: pdb("orders.pdb", 4),
            ..SynthModule::new(
                "C:\\inetpub\\app\\bin\\orders.dll",
                0x7ffa_5000_0000,
                0x3_0000,
            )
        },
        SynthModule {
            pdb: pdb("httpmod.pdb", 5),
            ..SynthModule::new(
                "C:\\inetpub\\app\\bin\\httpmod.dll",
                0x7ffa_6000_0000,
                0x2_0000,
            )
        },
        SynthModule {
            unloaded: true,
            ..SynthModule::new(
                "C:\\inetpub\\app\\bin\\oldplugin.dll",
                0x7ffa_7000_0000,
                0x1_0000,
            )
        },
    ]
}

/// Frames for the demo's call paths, innermost first.
pub mod frames {
    pub const NTDLL_ALLOC: u64 = 0x7ffa_0000_1a20;
    pub const KERNEL32_HEAPALLOC: u64 = 0x7ffa_1000_4410;
    pub const UCRT_MALLOC: u64 = 0x7ffa_2000_2210;
    pub const LDTRACK_HOOK: u64 = 0x7ffa_3000_1010;
    pub const VEND_ROW_BUFFER: u64 = 0x7ffa_4000_1366;
    pub const VEND_FETCH: u64 = 0x7ffa_4000_2a10;
    pub const VEND_BIND: u64 = 0x7ffa_4000_3100;
    pub const ORDERS_CACHE: u64 = 0x7ffa_5000_0840;
    pub const ORDERS_QUERY: u64 = 0x7ffa_5000_1c20;
    pub const HTTPMOD_REQUEST: u64 = 0x7ffa_6000_0990;
    pub const W3WP_MAIN: u64 = 0x7ff6_1000_1200;
    pub const OLDPLUGIN: u64 = 0x7ffa_7000_0100;
    pub const JIT: u64 = 0x0000_0200_0000_1000;
}

/// The allocation stream of the demo incident at `hour` hours of tracking (1, 2, 3…):
/// odbcvend.dll leaks row buffers steadily over the whole window, orders.dll fills a
/// start-up cache in its first minutes, httpmod.dll has requests in flight at dump time.
pub fn demo_stream(hour: u64, start_unix: u64) -> Vec<u8> {
    use frames::*;
    let window = hour * 3600 * SECOND;
    let mut b = AllocationStreamBuilder::new(filetime(start_unix), filetime(start_unix) + window);
    b.flags = 1; // return addresses
    b.metadata("tracker", "ldtrack 0.1 (synthetic demo)")
        .metadata("allocator_modules", "ldtrack.dll")
        .metadata(
            "hooks",
            "HeapAlloc,HeapReAlloc,HeapFree,malloc,calloc,realloc,free",
        )
        .metadata("max_depth", "32");
    let crt = [LDTRACK_HOOK, UCRT_MALLOC, NTDLL_ALLOC];
    let heap = [LDTRACK_HOOK, KERNEL32_HEAPALLOC, NTDLL_ALLOC];
    let with =
        |prefix: &[u64], rest: &[u64]| -> Vec<u64> { prefix.iter().chain(rest).copied().collect() };
    let leak_a = with(
        &crt,
        &[
            VEND_ROW_BUFFER,
            VEND_FETCH,
            ORDERS_QUERY,
            HTTPMOD_REQUEST,
            W3WP_MAIN,
        ],
    );
    let leak_b = with(
        &crt,
        &[
            VEND_ROW_BUFFER,
            VEND_BIND,
            ORDERS_QUERY,
            HTTPMOD_REQUEST,
            W3WP_MAIN,
        ],
    );
    let cache = with(&heap, &[ORDERS_CACHE, W3WP_MAIN]);
    let in_flight = with(&heap, &[HTTPMOD_REQUEST, W3WP_MAIN]);
    let jit = with(&crt, &[JIT, ORDERS_QUERY, W3WP_MAIN]);
    let plugin = with(&crt, &[OLDPLUGIN, W3WP_MAIN]);
    let plumbing = crt.to_vec();

    let mut rng = Lcg(42);
    let mut address = 0x0000_01d0_0000_0000u64;
    let mut next = |size: u64| {
        address += size.div_ceil(16) * 16 + 16;
        address
    };
    // The leak: 40 row buffers a minute, 1,000 bytes each on path A, 250 on path B.
    for i in 0..hour * 60 * 40 {
        let time = i * (window / (hour * 60 * 40));
        let (stack, size) = if i % 4 == 3 {
            (&leak_b, 250)
        } else {
            (&leak_a, 1000)
        };
        b.allocate(next(size), size, time, AllocatorKind::CRuntime, stack);
    }
    // The start-up cache: 200 entries in the first two minutes.
    for i in 0..200 {
        let size = 512 + rng.below(4) * 512;
        b.allocate(
            next(size),
            size,
            i * (120 * SECOND / 200),
            AllocatorKind::Heap,
            &cache,
        );
    }
    // Requests in flight: 30 buffers in the last 20 seconds.
    for i in 0..30 {
        let size = 16384;
        let time = window - 20 * SECOND + i * (20 * SECOND / 30);
        b.allocate(next(size), size, time, AllocatorKind::Heap, &in_flight);
    }
    // A few oddities a real dump has: JIT frames, an unloaded plugin, pure plumbing,
    // and records without a stack.
    for i in 0..12 {
        b.allocate(
            next(64),
            64,
            i * (window / 12),
            AllocatorKind::CRuntime,
            &jit,
        );
    }
    b.allocate(
        next(4096),
        4096,
        window / 3,
        AllocatorKind::Virtual,
        &plugin,
    );
    b.allocate(next(48), 48, SECOND, AllocatorKind::CRuntime, &plumbing);
    for i in 0..5 {
        b.allocate(next(32), 32, i * SECOND, AllocatorKind::Bstr, &[]);
    }
    b.build()
}

/// A demo dump at `hour` hours of tracking.
pub fn demo_dump(hour: u64) -> Vec<u8> {
    let start = 1_764_000_000; // 2025-11-24T16:00:00Z
    SynthDump {
        modules: demo_modules(),
        stream: Some(demo_stream(hour, start)),
        pid: Some(4711),
        process_create_time: Some(start as u32 - 60),
        dump_time: Some((start + hour * 3600) as u32),
        system_info: true,
        ..Default::default()
    }
    .build()
}
