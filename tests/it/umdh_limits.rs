//! UMDH logs at their edges: frames printed already resolved (shown as given,
//! grouped by function, past a module's room), a stack of more than 2^16
//! allocations, a stack of 100,000 frames, `inspect` on logs, and bounded warnings
//! for logs of many malformed lines.

use crate::umdh::{analyze, assert_warned, check_snapshot, leak_module, write};
use crate::umdh_gen::*;

#[test]
fn resolved_frames_are_in_the_function_table_and_stacks_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, truth) = scenario(true, 1, 10);
    let text = snapshot_text(&spec).replace(
        "vendor!CVendorCache::Grow+0000001E",
        "vendor!CVendorCache::Grow+0000001E (d:\\src\\vendor\\cache.cpp, 42)",
    );
    assert!(text.contains("cache.cpp, 42)"));
    let p = write(dir.path(), "given.txt", &text);
    let r = check_snapshot(&p, &truth);
    let vendor = leak_module(&r, "vendor.dll");
    let f = vendor
        .functions
        .iter()
        .find(|f| f.name == "vendor.dll!CVendorCache::Grow")
        .unwrap_or_else(|| panic!("{:?}", vendor.functions));
    assert!(f.allocations > 0);
    // The sample stack shows every resolved frame as printed.
    let frames: Vec<_> = vendor
        .stacks
        .iter()
        .flat_map(|s| &s.frames)
        .filter(|f| f.function.as_deref() == Some("CVendorCache::Grow"))
        .collect();
    assert!(!frames.is_empty(), "{:?}", vendor.stacks);
    let g = frames[0];
    assert_eq!(g.module.as_deref(), Some("vendor.dll"));
    assert_eq!(g.function_offset, Some(0x1E));
    assert_eq!(g.file.as_deref(), Some("d:\\src\\vendor\\cache.cpp"));
    assert_eq!(g.line, Some(42));
    assert!(g.responsible);
    let all: Vec<_> = vendor.stacks.iter().flat_map(|s| &s.frames).collect();
    assert!(all
        .iter()
        .any(|f| f.function.as_deref() == Some("RtlAllocateHeap")
            && f.module.as_deref() == Some("ntdll.dll")
            && f.function_offset == Some(0x808)));
    assert!(all
        .iter()
        .any(|f| f.function.as_deref() == Some("main") && f.module.as_deref() == Some("app.exe")));
    // In report.json too.
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("CVendorCache::Grow") && json.contains("cache.cpp"));
}

/// A module's function table groups its stacks by the function as printed (two
/// printed offsets of one function are one row) and by address where a frame is
/// raw; the rows' sums are exact, the unlisted module's frames are "(unknown)", and
/// past the module's room for printed frames they are charged without a function.
#[test]
fn printed_functions_are_grouped_by_name_with_exact_sums() {
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        GenModule::new("C:\\app\\vendor.dll", 0x1000_0000, 0x3000),
        GenModule::new("C:\\Windows\\SYSTEM32\\ntdll.dll", 0x7700_0000, 0x1A_0000),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    let sym = |t: &str| GenFrame::Symbolic(t.to_owned());
    let alloc = sym("ntdll!RtlAllocateHeap+00000808");
    let main = sym("app!main+00000010 (c:\\src\\main.cpp, 7)");
    let stacks = [
        s.stack(vec![
            alloc.clone(),
            sym("vendor!Cache::Grow+0000001E"),
            main.clone(),
        ]),
        s.stack(vec![
            alloc.clone(),
            sym("vendor!Cache::Grow+00000042"),
            main.clone(),
        ]),
        s.stack(vec![
            alloc.clone(),
            sym("vendor!Pool::Get+00000008"),
            main.clone(),
        ]),
        // Raw: charged by address, named by offset (no PDB).
        s.stack(vec![
            alloc.clone(),
            GenFrame::Address(0x1000_2345),
            main.clone(),
        ]),
        // A module the log does not list: its frame is unknown, and so is the owner.
        s.stack(vec![
            alloc.clone(),
            sym("other!Thing+00000001"),
            main.clone(),
        ]),
    ];
    let sizes = [
        (3u64, 0x100u64),
        (2, 0x40),
        (1, 0x1000),
        (4, 0x18),
        (5, 0x20),
    ];
    for (&stack, &(count, size)) in stacks.iter().zip(&sizes) {
        for _ in 0..count {
            s.allocate(0x2A0000, stack, size);
        }
    }
    let p = write(dir.path(), "grouped.txt", snapshot_text(&s));
    let r = analyze(&p);
    let vendor = leak_module(&r, "vendor.dll");
    let rows: Vec<(&str, u64, u64)> = vendor
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.allocations, f.bytes))
        .collect();
    assert_eq!(
        rows,
        // Ranked by bytes.
        [
            ("vendor.dll!Pool::Get", 1, 0x1000),
            ("vendor.dll!Cache::Grow", 5, 3 * 0x100 + 2 * 0x40),
            ("vendor.dll+0x2345", 4, 4 * 0x18),
        ]
    );
    assert_eq!(
        (vendor.allocations, vendor.bytes),
        (10, 0x300 + 0x80 + 0x1000 + 0x60)
    );
    let names: Vec<&str> = r
        .leak()
        .unwrap()
        .modules
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["vendor.dll", "(unknown)"]);
    let unknown = leak_module(&r, "(unknown)");
    assert_eq!((unknown.allocations, unknown.bytes), (5, 5 * 0x20));
    assert_warned(&r, "name a module the log does not list");
}

/// A module has room for as many printed frames as its first page (or its size)
/// has offsets: the frames past it are charged to the module without a function,
/// with a warning, and every allocation is still counted.
#[test]
fn printed_frames_past_the_module_room_are_charged_without_a_function() {
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        // Room for offsets 1..=15.
        GenModule::new("C:\\app\\tiny.dll", 0x1000_0000, 0x10),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    for i in 0..20u64 {
        let stack = s.stack(vec![
            GenFrame::Symbolic(format!("tiny!F{i}+00000001")),
            GenFrame::Symbolic("app!main+00000010".into()),
        ]);
        s.allocate(0x2A0000, stack, 0x10 + i);
    }
    let p = write(dir.path(), "tiny.txt", snapshot_text(&s));
    let r = analyze(&p);
    let tiny = leak_module(&r, "tiny.dll");
    assert_eq!(
        (tiny.allocations, tiny.bytes),
        (20, (0..20).map(|i| 0x10 + i).sum::<u64>())
    );
    let named: Vec<&str> = tiny
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| n.starts_with("tiny.dll!F"))
        .collect();
    // F0..F14 named (the table shows the first rows, the rest counted as omitted),
    // and one more row for the rest.
    assert_eq!(
        tiny.functions.len() as u64 + tiny.functions_omitted.count,
        16,
        "{named:?}"
    );
    assert_eq!(named.len(), tiny.functions.len() - 1);
    // The five past the room: at the module's base, one row by offset.
    let base = tiny
        .functions
        .iter()
        .find(|f| f.name == "tiny.dll+0x0")
        .unwrap_or_else(|| panic!("{:?}", tiny.functions));
    assert_eq!(
        (base.allocations, base.bytes),
        (5, (15..20).map(|i| 0x10 + i).sum::<u64>())
    );
    assert_warned(&r, "5 distinct resolved stack frames past");
}

/// One stack with more allocations than a 16-bit count holds (the table keeps
/// per-stack counts modulo 2^16 with a carry per wrap): its module, function and
/// sample stack count every one, and the incident's totals add up.
#[test]
fn a_stack_with_more_than_65536_allocations_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        GenModule::new("C:\\app\\vendor.dll", 0x1000_0000, 0x10_0000),
        GenModule::new("C:\\Windows\\SYSTEM32\\ntdll.dll", 0x7700_0000, 0x1A_0000),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    let hot = s.stack(vec![
        GenFrame::Symbolic("ntdll!RtlAllocateHeap+00000808".into()),
        GenFrame::Symbolic("vendor!Cache::Grow+0000001E".into()),
        GenFrame::Address(0x40_1234),
    ]);
    let other = s.stack(vec![GenFrame::Address(0x40_2000)]);
    const HOT: u64 = 3 * 65_536 + 17;
    // Two heaps, so that the stack's sums come from two places.
    for (heap, range) in [(0x2A_0000u64, 0..HOT / 2), (0x3B_0000, HOT / 2..HOT)] {
        for i in range {
            s.allocate(heap, hot, 0x20 + (i % 3));
        }
        s.allocate(heap, other, 0x100);
    }
    let hot_bytes: u64 = (0..HOT).map(|i| 0x20 + (i % 3)).sum();
    let p = write(dir.path(), "hot.txt", snapshot_text(&s));
    let r = analyze(&p);
    let vendor = leak_module(&r, "vendor.dll");
    assert_eq!((vendor.allocations, vendor.bytes), (HOT, hot_bytes));
    assert_eq!(
        (vendor.functions[0].allocations, vendor.functions[0].bytes),
        (HOT, hot_bytes)
    );
    assert_eq!(
        (vendor.stacks[0].allocations, vendor.stacks[0].bytes),
        (HOT, hot_bytes)
    );
    let app = leak_module(&r, "app.exe");
    assert_eq!((app.allocations, app.bytes), (2, 0x200));
    let leak = r.leak().unwrap();
    assert_eq!(
        (leak.totals.allocations, leak.totals.bytes),
        (HOT + 2, hot_bytes + 0x200)
    );
}

/// `leakdiag inspect` lists what a snapshot and a comparison log hold, with text
/// from the log on one line and without control characters; a log that cannot be
/// read is listed as far as known and exits 1.
#[test]
fn inspect_lists_what_a_log_holds() {
    use crate::helpers::{leakdiag, stdout};
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, _) = scenario(true, 1, 10);
    spec.modules[1].path = "C:\\app\\evil\u{1b}]0;pwned\u{7}.dll".into();
    let text = snapshot_text(&spec);
    write(dir.path(), "snap.log", &text);
    let o = leakdiag(dir.path(), &["inspect", "snap.log"]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::helpers::stderr(&o));
    let out = stdout(&o);
    for needle in [
        "UMDH snapshot log",
        "umdh version       7.04.0001",
        "pid                ",
        "C:\\Windows\\SYSTEM32\\ntdll.dll",
        "heaps: ",
        "backtraces: ",
        "largest backtraces (by bytes, top 10):",
        "warnings: 0",
        "evil\u{fffd}]0;pwned\u{fffd}.dll",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
    // The same text in UTF-16 lists the same, but for its encoding.
    write(dir.path(), "snap16.log", utf16le(&text));
    let o16 = leakdiag(dir.path(), &["inspect", "snap16.log"]);
    assert_eq!(o16.status.code(), Some(0));
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.contains("encoding") && !l.ends_with(".log"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&stdout(&o16)), strip(&out));

    let (entries, _) = comparison_scenario();
    write(dir.path(), "cmp.txt", comparison_text(&entries, true, true));
    let o = leakdiag(dir.path(), &["inspect", "cmp.txt"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for needle in [
        "UMDH comparison log",
        "numbers            decimal (umdh -d)",
        &format!("entries: {} (", entries.len()),
        "total line ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }

    // Sizes past 64 bits: the error, with the file and line, and exit 1.
    let mut first = true;
    let bad: String = text
        .split_inclusive('\n')
        .map(|l| match l.split_once(" bytes + ") {
            Some((n, rest)) if first && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
                first = false;
                format!("1FFFFFFFFFFFFFFFF bytes + {rest}")
            }
            _ => l.to_owned(),
        })
        .collect();
    assert!(!first);
    write(dir.path(), "bad.log", bad);
    let o = leakdiag(dir.path(), &["inspect", "bad.log"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("not read:") && out.contains("bad.log:"),
        "{out}"
    );
}

/// A log of thousands of malformed lines, one of them two megabytes long, and an ID
/// past any real one: the warnings are the first `MAX_WARNINGS` by line and one
/// that counts the rest, each quoting at most `QUOTE_CHARS` characters of its line,
/// the same for any cut; the well-formed lines are all counted.
#[test]
fn warnings_are_bounded_and_quote_lines_briefly() {
    use leakdiag::umdh::snapshot::parse;
    use leakdiag::umdh::{MAX_WARNINGS, QUOTE_CHARS};
    let dir = tempfile::tempdir().unwrap();
    let (spec, _) = scenario(true, 1, 10);
    let text = snapshot_text(&spec);
    let good = parse(&write(dir.path(), "good.txt", &text)).unwrap();
    // After the module list: 3,000 lines that are no allocation, one of 2 MB, and
    // an allocation with a 100-character ID.
    let at = text.find("*- - -").unwrap();
    let mut bad = String::new();
    for i in 0..3000 {
        bad.push_str(&format!("{i:X} bytes + zz at 10 by BackTrace1\r\n"));
    }
    bad.push_str(&format!(
        "10 bytes + zz{} at 10 by BackTrace1\r\n",
        "9".repeat(2 << 20)
    ));
    bad.push_str(&format!(
        "10 bytes + 1 at 10 by BackTrace{}\r\n",
        "A".repeat(100)
    ));
    let log = format!("{}{bad}{}", &text[..at], &text[at..]);
    let p = write(dir.path(), "noisy.txt", &log);
    let snap = parse(&p).unwrap();
    assert_eq!(
        (snap.allocations, snap.bytes),
        (good.allocations, good.bytes)
    );
    assert_eq!(
        snap.warnings.len(),
        MAX_WARNINGS + 1,
        "{:?}",
        &snap.warnings[..3]
    );
    let last = snap.warnings.last().unwrap();
    assert!(last.contains("2,802 more warnings"), "{last}");
    for w in &snap.warnings {
        assert!(w.chars().count() < QUOTE_CHARS + 200, "{}", &w[..300]);
    }
    for chunk in [1000, 1 << 16, 1 << 20] {
        let cut = crate::umdh_cuts::read_cut(&p, 3, chunk).unwrap();
        assert_eq!(cut.warnings, snap.warnings, "chunks of {chunk}");
    }
    // The two-megabyte line and the long ID, quoted briefly, when listed.
    let only = format!(
        "{}{}{}",
        &text[..at],
        bad.lines().skip(3000).collect::<Vec<_>>().join("\r\n") + "\r\n",
        &text[at..]
    );
    let snap = parse(&write(dir.path(), "two.txt", &only)).unwrap();
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.contains("(2097185 characters)")),
        "{:?}",
        snap.warnings
    );
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.contains("BackTrace ID longer than 64 characters")),
        "{:?}",
        snap.warnings
    );

    // A comparison log likewise: 500 lines that are no comparison line.
    let (entries, _) = comparison_scenario();
    let cmp = comparison_text(&entries, false, true);
    let junk: String = (0..500).map(|i| format!("junk line {i}\n")).collect();
    let p = write(dir.path(), "cmp-noisy.txt", format!("{junk}{cmp}"));
    let c = leakdiag::umdh::compare::parse(&p).unwrap();
    assert_eq!(c.entries.len(), entries.len());
    assert_eq!(c.warnings.len(), MAX_WARNINGS + 1, "{:?}", &c.warnings[..3]);
    assert!(
        c.warnings[MAX_WARNINGS].contains("300 more warnings"),
        "{:?}",
        c.warnings.last()
    );
}

/// A stack of 100,000 frames (a runaway recursion printed whole, a frame resolved
/// every thousand) is read the same in chunks, charged by the usual rule, and its
/// sample lists a bounded number of frames and counts the rest.
#[test]
fn a_stack_of_100000_frames_is_read_charged_and_sampled_within_bounds() {
    use leakdiag::model::MAX_SAMPLE_FRAMES;
    use leakdiag::umdh::snapshot::parse;
    const DEPTH: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let modules = vec![
        GenModule::new("C:\\app\\app.exe", 0x40_0000, 0x10_0000),
        GenModule::new("C:\\Windows\\SYSTEM32\\ntdll.dll", 0x7700_0000, 0x1A_0000),
    ];
    let mut s = SnapshotSpec::new(7, "2026-11-26 10:00", modules);
    let mut frames = vec![GenFrame::Symbolic("ntdll!RtlAllocateHeap+00000808".into())];
    frames.extend((1..DEPTH).map(|i| {
        if i % 1000 == 0 {
            GenFrame::Symbolic(format!("app!Recurse{}+00000010", i / 1000))
        } else {
            GenFrame::Address(0x40_1000 + (i as u64 % 0x800))
        }
    }));
    let deep = s.stack(frames);
    for _ in 0..3 {
        s.allocate(0x2A0000, deep, 0x40);
    }
    let p = write(dir.path(), "deep.txt", snapshot_text(&s));
    let whole = parse(&p).unwrap();
    assert_eq!(whole.frames_of(0).map(|f| f.len()), Some(DEPTH));
    for chunk in [4096, 1 << 16] {
        assert_eq!(crate::umdh_cuts::read_cut(&p, 3, chunk).unwrap(), whole);
    }
    let r = analyze(&p);
    let app = leak_module(&r, "app.exe");
    assert_eq!((app.allocations, app.bytes), (3, 0xC0));
    let sample = &app.stacks[0];
    assert!(
        sample.frames.len() <= MAX_SAMPLE_FRAMES + 1,
        "{}",
        sample.frames.len()
    );
    assert_eq!(
        sample.frames.len() as u64 + sample.frames_omitted,
        DEPTH as u64
    );
}
