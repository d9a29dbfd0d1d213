//! The one read of the allocation table (`Table::read`) splits the table into chunks
//! read in parallel and merges partial sums: the result must not depend on the chunk
//! size or the number of threads, and must equal plain per-record sums.

use leakdiag::addr::VirtAddr;
use leakdiag::analysis::attribution::{ModuleFilter, Owner};
use leakdiag::analysis::probability::{bin_of, TIME_BINS};
use leakdiag::analysis::scripts::leak::{build, symbols::Symbols, LeakOptions};
use leakdiag::analysis::table::{size_bucket, Table, CHUNK};
use leakdiag::dump::stream::{AllocationStream, AllocatorKind, NO_STACK};
use leakdiag::dump::writer::{AllocationStreamBuilder, NewAllocation};
use leakdiag::model::{Module, ModuleMap, Totals};
use std::collections::HashMap;

fn module(name: &str, base: u64) -> Module {
    Module::at(&format!("C:\\app\\{name}"), VirtAddr(base), 0x10_0000)
}

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const WINDOW: u64 = 3600 * 10_000_000;

/// 300 stacks over 12 modules (ntdll skipped, frames in no module, an empty stack),
/// 150,000 records: records without a stack and with invalid stack indices, every
/// allocator byte, 45 heaps, times past the window, and one stack with more than
/// 2^16 allocations in one time bin (the per-chunk counters' carry).
fn stream_bytes() -> (Vec<u8>, ModuleMap) {
    let names = [
        "ntdll.dll",
        "app.exe",
        "a.dll",
        "b.dll",
        "c.dll",
        "d.dll",
        "e.dll",
        "f.dll",
        "g.dll",
        "h.dll",
        "i.dll",
        "j.dll",
    ];
    let modules = ModuleMap::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| module(n, 0x1000_0000 + i as u64 * 0x100_0000))
            .collect(),
    );
    let mut rng = Lcg(42);
    let mut b = AllocationStreamBuilder::new(1_000, 1_000 + WINDOW);
    let mut ids = Vec::new();
    while ids.len() < 300 {
        let depth = 1 + rng.below(8) as usize;
        let frames: Vec<u64> = (0..depth)
            .map(|f| {
                let m = if f == 0 { 0 } else { rng.below(13) };
                // m == 12: an address in no module.
                0x1000_0000 + m * 0x100_0000 + 0x100 + rng.below(64) * 0x10
            })
            .collect();
        let id = b.add_stack(&frames);
        if id as usize == ids.len() {
            ids.push(id);
        }
    }
    let heaps = [0u64, 0x10_0000, 0x20_0000, u64::MAX, 7];
    for i in 0..150_000u64 {
        let (stack, time) = if i % 2 == 0 {
            // The hot stack: every other record, all in bin 3.
            (ids[5], WINDOW / TIME_BINS as u64 * 3 + rng.below(1000))
        } else {
            let stack = match rng.below(50) {
                0 => NO_STACK,
                1 => 300 + rng.below(10) as u32,
                _ => ids[rng.below(300) as usize],
            };
            (stack, rng.below(WINDOW + WINDOW / 10))
        };
        let magnitude = rng.below(22);
        b.add_allocation(NewAllocation {
            address: 0x1_0000_0000 + i * 0x40,
            size: 1 + rng.below(1 << magnitude),
            time,
            // Mostly a few heaps; now and then one of 40 more (past the partial
            // sums' small table of 16).
            heap: match rng.below(20) {
                0 => 0x5000_0000 + rng.below(40) * 0x1_0000,
                _ => heaps[rng.below(5) as usize],
            },
            stack,
            allocator: AllocatorKind::from_byte(rng.below(8) as u8),
        });
    }
    (b.build(), modules)
}

fn read_with(
    stream: &AllocationStream<'_>,
    modules: &ModuleMap,
    chunk: usize,
    threads: usize,
) -> Table {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        Table::read_chunked(
            stream,
            modules,
            &ModuleFilter::system_with::<&str>(&[]),
            chunk,
        )
        .unwrap()
    })
}

fn model_json(stream: &AllocationStream<'_>, modules: &ModuleMap, table: &Table) -> String {
    let leak = build(
        stream,
        table,
        modules,
        &LeakOptions::default(),
        &Symbols::default(),
        None,
    );
    let mut ids: Vec<_> = leak.stack_totals.iter().map(|(k, v)| (*k, *v)).collect();
    ids.sort_by_key(|(id, _)| *id);
    format!("{}\n{ids:?}", serde_json::to_string_pretty(&leak).unwrap())
}

#[test]
fn any_chunk_size_and_thread_count_gives_the_same_table_and_model() {
    let (bytes, modules) = stream_bytes();
    let stream = AllocationStream::parse(&bytes).unwrap();
    let reference = read_with(&stream, &modules, CHUNK, 1);
    let json = model_json(&stream, &modules, &reference);
    for (chunk, threads) in [
        (1, 3),
        (7, 2),
        (1000, 1),
        (1000, 4),
        (65_535, 2),
        (CHUNK, 4),
        (usize::MAX, 2),
    ] {
        let table = read_with(&stream, &modules, chunk, threads);
        assert!(table == reference, "chunk {chunk}, {threads} threads");
        assert_eq!(
            model_json(&stream, &modules, &table),
            json,
            "chunk {chunk}, {threads} threads"
        );
    }
}

/// Totals, by size bucket, by allocator, allocations by time bin.
type OwnerSums = (
    Totals,
    [Totals; 9],
    [Totals; AllocatorKind::ALL.len()],
    [u64; TIME_BINS],
);

#[test]
fn the_table_equals_plain_sums_of_the_records() {
    let (bytes, modules) = stream_bytes();
    let stream = AllocationStream::parse(&bytes).unwrap();
    let table = read_with(&stream, &modules, 1000, 2);
    let stacks = stream.stack_count();
    let mut per_stack = vec![Totals::default(); stacks];
    let mut times = vec![[0u64; TIME_BINS]; stacks];
    let mut owners: HashMap<Owner, OwnerSums> = HashMap::new();
    let mut heaps: HashMap<(Owner, u64), Totals> = HashMap::new();
    let mut totals = Totals::default();
    for a in stream.allocations() {
        totals.add(a.size);
        let bin = bin_of(a.time, table.window);
        let owner = match table.responsible.get(a.stack as usize) {
            Some(r) => {
                per_stack[a.stack as usize].add(a.size);
                times[a.stack as usize][bin] += 1;
                r.map_or(Owner::NoStack, |r| r.owner)
            }
            None => Owner::NoStack,
        };
        let o = owners.entry(owner).or_default();
        o.0.add(a.size);
        o.1[size_bucket(a.size)].add(a.size);
        o.2[a.allocator().index()].add(a.size);
        o.3[bin] += 1;
        heaps.entry((owner, a.heap)).or_default().add(a.size);
    }
    assert_eq!(table.totals, totals);
    assert_eq!(table.per_stack, per_stack);
    // The hot stack really exercises the 2^16 carry.
    assert!(times[5][3] > 1 << 16, "{}", times[5][3]);
    for (s, t) in times.iter().enumerate() {
        let mut h = Default::default();
        table.stack_times.merge_into(s, &mut h);
        assert_eq!(h.allocations, *t, "stack {s}");
    }
    assert_eq!(table.by_owner.len(), owners.len());
    for (owner, sums) in &table.by_owner {
        let o = &owners[owner];
        assert_eq!(sums.totals, o.0, "{owner:?}");
        assert_eq!(sums.sizes, o.1, "{owner:?}");
        assert_eq!(sums.allocators, o.2, "{owner:?}");
        assert_eq!(sums.time.allocations, o.3, "{owner:?}");
        assert_eq!(sums.time.count(), o.0.allocations, "{owner:?}");
        for (heap, t) in &sums.heaps {
            assert_eq!(heaps[&(*owner, *heap)], *t, "{owner:?} heap {heap:x}");
        }
        assert_eq!(
            sums.heaps.len(),
            heaps.keys().filter(|(o, _)| o == owner).count()
        );
    }
}
