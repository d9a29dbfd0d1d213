//! UMDH snapshot logs read the same for any cut: the reader's chunks and waves
//! (irregular logs, resolved frames shared across chunks, thousands of stacks over
//! many waves, few stacks over many chunks) against the log read whole, at 1 to 5
//! threads.

use crate::umdh::write;
use crate::umdh_gen::*;
use leakdiag::umdh::snapshot::{parse_chunked, Snapshot};
use leakdiag::umdh::UmdhError;
use std::path::Path;

/// The log at `path` read by `threads` threads in chunks of about `chunk` bytes.
pub(crate) fn read_cut(path: &Path, threads: usize, chunk: usize) -> Result<Snapshot, UmdhError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| parse_chunked(path, chunk))
}

/// A snapshot log with every irregularity the reader settles across chunks: stacks
/// referenced before they are printed, never printed and printed twice, a cut line,
/// a heap without its end, allocation lines outside any heap, a second header, an
/// ANSI line and already-resolved frames.
fn irregular_snapshot() -> String {
    let (spec, _) = scenario(true, 1, 300);
    let text = snapshot_text(&spec).replace("\r\n", "\n");
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    let find = |v: &[String], needle: &str| v.iter().position(|l| l.contains(needle)).unwrap();
    // Stack 0 printed only at its second reference.
    let id0 = format!("by BackTrace{}", spec.ids[0]);
    let first = find(&v, &id0);
    let stack: Vec<String> = v.drain(first + 1..first + 5).collect();
    let second = first + 1 + find(&v[first + 1..], &id0);
    for (k, f) in stack.iter().enumerate() {
        v.insert(second + 1 + k, f.clone());
    }
    // Stack 1 never printed; stack 2 printed twice.
    let id1 = format!("by BackTrace{}", spec.ids[1]);
    let at = find(&v, &id1);
    let mut end = at + 1;
    while v[end].starts_with('\t') {
        end += 1;
    }
    v.drain(at + 1..end);
    let id2 = format!("by BackTrace{}", spec.ids[2]);
    let at = find(&v, &id2);
    let mut end = at + 1;
    while v[end].starts_with('\t') {
        end += 1;
    }
    let printed: Vec<String> = v[at + 1..end].to_vec();
    let last2 = v.iter().rposition(|l| l.contains(&id2)).unwrap();
    for (k, f) in printed.iter().enumerate() {
        v.insert(last2 + 1 + k, f.clone());
    }
    // A cut line, a second header, lines outside any heap, a heap left open.
    let mid = v.len() / 2;
    v.insert(mid, "100 bytes + 20 at".into());
    v.insert(
        mid + 1,
        "// UMDH: version 9: Logtime 2030-01-01 00:00 - PID=1".into(),
    );
    let start2 = v
        .iter()
        .rposition(|l| l.contains("Start of data for heap"))
        .unwrap();
    v.insert(
        start2,
        format!("40 bytes + 10 at 5000 by BackTrace{}", spec.ids[3]),
    );
    let end_first = find(&v, "End of data for heap");
    v.remove(end_first);
    v.push("*- - - - - - - - - - Start of data for heap @ ABC0000 - - - - - - - - - -".into());
    v.push(format!("30 bytes + 8 at 6000 by BackTrace{}", spec.ids[4]));
    v.push("\tleaky!CRow::Grow+0x1E (d:\\src\\row.cpp, 42)".into());
    v.push("\tapp!main+2C".into());
    let mut text = v.join("\r\n");
    text.push_str("\r\n");
    text
}

#[test]
fn snapshot_reading_is_the_same_for_any_chunk_size_and_thread_count() {
    use leakdiag::umdh::snapshot::parse;
    let dir = tempfile::tempdir().unwrap();
    let text = irregular_snapshot();
    let mut bytes = text.clone().into_bytes();
    // One ANSI (Windows-1252) line in the middle.
    let at = bytes.len() / 3;
    let nl = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.splice(nl..nl, b"// caf\xe9\r\n".iter().copied());
    let utf8 = write(dir.path(), "chunks.txt", &bytes);
    let utf16 = write(dir.path(), "chunks16.txt", utf16le(&text));
    for path in [&utf8, &utf16] {
        let whole = parse(path).unwrap();
        assert!(
            whole.allocations > 100 && whole.warnings.len() >= 6,
            "{:?}",
            whole.warnings
        );
        for threads in [1, 3] {
            for chunk in [1, 7, 100, 1000, 4096, 1 << 20] {
                let snap = read_cut(path, threads, chunk).unwrap();
                assert_eq!(snap, whole, "{} threads, chunks of {chunk}", threads);
            }
        }
    }
    // The UTF-16 text is the same log (less the ANSI line).
    let a = parse(&utf16).unwrap();
    let plain = write(dir.path(), "plain.txt", &text);
    let b = parse(&plain).unwrap();
    assert_eq!(
        (a.allocations, a.bytes, a.traces.len()),
        (b.allocations, b.bytes, b.traces.len())
    );
    assert_eq!(a.sizes, b.sizes);

    // Sizes passing 2^64: the same line is named whatever the chunks.
    let mut v: Vec<&str> = text.split("\r\n").collect();
    let late = v.len() - 10;
    let big = "8000000000000000 bytes + 0 at 1 by BackTrace1";
    v.insert(late, big);
    v.insert(late / 2, big);
    let over = write(dir.path(), "over.txt", v.join("\r\n"));
    let want = parse(&over).unwrap_err().to_string();
    assert!(
        want.contains(&format!("over.txt:{}:", late + 2)) && want.contains("2^64"),
        "{want}"
    );
    for chunk in [1, 50, 1000] {
        assert_eq!(read_cut(&over, 2, chunk).unwrap_err().to_string(), want);
    }
}

/// Many stacks sharing resolved frames, printed across many chunks and waves: the
/// texts are interned per chunk and numbered once across chunks
/// (`snapshot::texts`), in order of first printing whatever the cut.
#[test]
fn resolved_frames_shared_across_chunks_are_numbered_the_same_for_any_cut() {
    use leakdiag::umdh::snapshot::{chunk_bytes, parse, Frame};
    let dir = tempfile::tempdir().unwrap();
    let modules = scenario_modules(true);
    let mut spec = SnapshotSpec::new(7, "2026-03-05 10:00", modules.clone());
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let frames = (0..12)
            .map(|_| match next() % 3 {
                0 => GenFrame::Address(modules[0].base + 0x1000 + next() % 0x100),
                1 => GenFrame::Symbolic(format!("app!f{}+{:X}", next() % 40, next() % 4)),
                _ => GenFrame::Symbolic(format!("vendor!g{}+1 (d:\\v.cpp, 7)", next() % 20)),
            })
            .collect();
        spec.stack(frames);
    }
    for h in 0..3u64 {
        let allocs = (0..400u64)
            .map(|i| GenAlloc {
                size: 16 + next() % 300,
                overhead: 0x20,
                address: 0x1_0000_0000 + h * 0x100_0000 + i * 0x100,
                stack: (next() % 300) as usize,
            })
            .collect();
        spec.heaps.push((0x5_0000 + h * 0x1000, allocs));
    }
    // One resolved frame in Windows-1252 (read as ANSI, interned at once rather than
    // when its stack ends): the same numbering.
    let mut text = snapshot_text(&spec).replacen("app!f7+", "app!caf\u{1}7+", 3);
    // A stack printed a second time, with a text found nowhere else: the first
    // printing is kept, and the text is not among the log's.
    let id = format!("by BackTrace{}\r\n", spec.ids[0]);
    let second = text
        .match_indices(&id)
        .nth(1)
        .expect("stack 0 referenced twice")
        .0;
    text.insert_str(second + id.len(), "\tdup!only+1\r\n");
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect();
    let path = write(dir.path(), "shared.txt", bytes);
    let whole = parse(&path).unwrap();
    assert!(whole.symbolic.len() >= 40, "{}", whole.symbolic.len());
    assert!(whole.symbolic.iter().any(|t| t.starts_with("app!café7+")));
    assert!(!whole.symbolic.iter().any(|t| t == "dup!only+1"));
    assert!(whole
        .warnings
        .iter()
        .any(|w| w.contains("printed a second time")));
    assert!(whole.frames.iter().any(|f| matches!(f, Frame::Symbolic(_))));
    let len = std::fs::metadata(&path).unwrap().len();
    for threads in [1, 2, 3] {
        for chunk in [1, 300, 2000, 9000, chunk_bytes(len, threads)] {
            let snap = read_cut(&path, threads, chunk).unwrap();
            assert_eq!(snap, whole, "{threads} threads, chunks of {chunk}");
        }
    }
}

/// Thousands of stacks (the reader keeps its sums per BackTrace in blocks of 1,024,
/// updated by parts in parallel, as many parts as the threads make) referenced in
/// four heaps, in small chunks: many more waves than threads, stacks first
/// referenced in a later wave and again in the same wave. The sums by size and by
/// heap are those of the allocations, in order, whatever the cut.
#[test]
fn sums_of_thousands_of_stacks_over_many_waves_are_exact_for_any_cut() {
    use leakdiag::umdh::snapshot::{parse, size_bucket};
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let modules = scenario_modules(true);
    let mut spec = SnapshotSpec::new(11, "2026-03-05 10:00", modules.clone());
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const STACKS: u64 = 4_500;
    for s in 0..STACKS {
        spec.stack(vec![
            GenFrame::Address(modules[0].base + 0x1000 + s),
            GenFrame::Symbolic(format!("app!f{}+1", s % 700)),
        ]);
    }
    for h in 0..4u64 {
        let allocs = (0..6_000u64)
            .map(|i| {
                // Later heaps reach further: stacks first referenced late.
                let reach = STACKS * (h + 1) / 4;
                GenAlloc {
                    size: 1 + next() % 5_000,
                    overhead: 0x20,
                    address: 0x1_0000_0000 + h * 0x100_0000 + i * 0x100,
                    stack: (next() % reach) as usize,
                }
            })
            .collect();
        spec.heaps.push((0x5_0000 + h * 0x1000, allocs));
    }
    // The sums the allocations make, by BackTrace ID.
    let mut by_heap: BTreeMap<(&str, u64), (u64, u64)> = BTreeMap::new();
    let mut sizes: BTreeMap<(&str, u8), (u64, u64)> = BTreeMap::new();
    for (heap, allocs) in &spec.heaps {
        for a in allocs {
            let id = spec.ids[a.stack].as_str();
            let e = by_heap.entry((id, *heap)).or_default();
            *e = (e.0 + 1, e.1 + a.size);
            let bucket = u8::try_from(size_bucket(a.size)).unwrap();
            let e = sizes.entry((id, bucket)).or_default();
            *e = (e.0 + 1, e.1 + a.size);
        }
    }
    let path = write(dir.path(), "many.txt", snapshot_text(&spec));
    let whole = parse(&path).unwrap();
    assert!(whole.traces.len() > 4_000, "{}", whole.traces.len());
    let id = |t: u32| whole.traces[t as usize].id.as_str();
    let got: BTreeMap<(&str, u64), (u64, u64)> = whole
        .by_heap
        .iter()
        .map(|&(t, h, s)| ((id(t), h), (s.allocations, s.bytes)))
        .collect();
    assert_eq!(got, by_heap);
    let got: BTreeMap<(&str, u8), (u64, u64)> = whole
        .sizes
        .iter()
        .map(|&(t, b, s)| ((id(t), b), (s.allocations, s.bytes)))
        .collect();
    assert_eq!(got, sizes);
    // In order, one entry per pair.
    assert!(whole
        .by_heap
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    assert!(whole
        .sizes
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    for threads in [1, 2, 3, 5] {
        for chunk in [700, 20_000, 150_000] {
            let snap = read_cut(&path, threads, chunk).unwrap();
            assert_eq!(snap, whole, "{threads} threads, chunks of {chunk}");
        }
    }
}

#[test]
fn chunk_size_gives_each_thread_several_chunks_within_bounds() {
    use leakdiag::umdh::snapshot::{chunk_bytes, CHUNK_BYTES, MIN_CHUNK_BYTES};
    assert_eq!(chunk_bytes(0, 16), MIN_CHUNK_BYTES);
    assert_eq!(chunk_bytes(1 << 40, 2), CHUNK_BYTES);
    assert_eq!(chunk_bytes(u64::MAX, 0), CHUNK_BYTES);
    // A 1 GiB log on 16 threads: 64 chunks of 16 MiB.
    assert_eq!(chunk_bytes(1 << 30, 16), 16 << 20);
    // 256 MiB on 16 threads: the floor.
    assert_eq!(chunk_bytes(256 << 20, 16), MIN_CHUNK_BYTES);
}

/// A log of few stacks and many allocations, read in small chunks: each chunk
/// repeats the stacks' (BackTrace, size bucket) pairs, which the reader sums while
/// merging once they outgrow dense rows; the sums are the same as read whole.
#[test]
fn size_sums_of_few_stacks_over_many_chunks_are_the_same_for_any_cut() {
    use leakdiag::umdh::snapshot::parse;
    let dir = tempfile::tempdir().unwrap();
    let modules = scenario_modules(true);
    let mut spec = SnapshotSpec::new(9, "2026-03-05 10:00", modules.clone());
    for s in 0..7u64 {
        spec.stack(vec![GenFrame::Address(modules[0].base + 0x1000 + s)]);
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let allocs = (0..200_000u64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            GenAlloc {
                size: 1 + x % 70_000,
                overhead: 0x20,
                address: 0x1_0000_0000 + i * 0x100,
                stack: (x >> 32) as usize % 7,
            }
        })
        .collect();
    spec.heaps.push((0x5_0000, allocs));
    let path = write(dir.path(), "few.txt", snapshot_text(&spec));
    let whole = parse(&path).unwrap();
    assert_eq!(whole.allocations, 200_000);
    assert!(whole.sizes.len() > 7 * 5, "{}", whole.sizes.len());
    // Chunks of about 40 lines: some 5,000 chunks of up to 7 × 9 pairs each,
    // more entries than the reader keeps before summing them.
    let snap = read_cut(&path, 2, 2000).unwrap();
    assert_eq!(snap, whole);
}
