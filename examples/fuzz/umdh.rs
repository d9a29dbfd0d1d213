//! UMDH logs for the fuzzer (`--umdh`): valid snapshot and comparison logs written by
//! the tests' generator (`tests/it/umdh_gen.rs`, which follows docs/umdh.md), then
//! mutated where the formats have structure (lines, numbers, BackTrace IDs, heap
//! markers, stacks) and in their encoding (UTF-16 either way, the ANSI code page, a
//! dangling byte), as logs arrive from customer sites.

use crate::umdh_gen::{comparison_scenario, comparison_text, scenario, snapshot_text};
use crate::{hostile, Rng};

/// The largest log a mutation leaves (64 MiB).
const MAX_TEXT: usize = 64 << 20;

/// Numbers at the edges of what a field holds.
const NUMBERS: &[&str] = &[
    "0",
    "FFFFFFFF",
    "FFFFFFFFFFFFFFFF",
    "1FFFFFFFFFFFFFFFF",
    "100000000000000000000000000000000000000",
    "-1",
    "0x",
];

/// A fresh, valid log: a snapshot (64- or 32-bit, maybe a hostile module path) or a
/// comparison (hexadecimal or decimal, older or newer total line).
pub fn generate(rng: &mut Rng) -> String {
    if rng.chance(25) {
        let (entries, _) = comparison_scenario();
        return comparison_text(&entries, rng.chance(50), rng.chance(50));
    }
    let (mut spec, _) = scenario(rng.chance(70), rng.below(3) as u32, rng.below(50));
    if rng.chance(30) {
        let i = rng.below(spec.modules.len() as u64) as usize;
        spec.modules[i].path = hostile(rng).to_owned();
    }
    spec.crlf = rng.chance(50);
    snapshot_text(&spec)
}

/// A random line's index, if there is a line.
fn some_line(rng: &mut Rng, lines: &[String]) -> Option<usize> {
    (!lines.is_empty()).then(|| rng.below(lines.len() as u64) as usize)
}

/// One structural mutation of the text; returns its name.
pub fn mutate(rng: &mut Rng, text: &mut String) -> &'static str {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let name = match rng.below(11) {
        0 => {
            // Cut anywhere: mid-line, mid-stack, mid-heap.
            let mut at = rng.below(text.len() as u64 + 1) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.truncate(at);
            return "cut";
        }
        1 => {
            if let Some(i) = some_line(rng, &lines) {
                lines.remove(i);
            }
            "line dropped"
        }
        2 => {
            // Repeated: a stack printed twice, an allocation counted twice, or a
            // frame repeated into a deep stack.
            if let Some(i) = some_line(rng, &lines) {
                // Within MAX_TEXT: a long line is repeated fewer times (20,000
                // copies of a 1 MB line were 20 GB and took the harness down).
                let room = MAX_TEXT / (lines[i].len() + 1);
                let copies = (*rng.pick(&[1usize, 2, 100, 20_000])).min(room);
                let line = lines[i].clone();
                lines.splice(i..i, std::iter::repeat_n(line, copies));
            }
            "line repeated"
        }
        3 => {
            // A number at an edge, in place of a hexadecimal word.
            if let Some(i) = some_line(rng, &lines) {
                let words: Vec<&str> = lines[i].split(' ').collect();
                let hex: Vec<usize> = (0..words.len())
                    .filter(|&k| {
                        let w = words[k].trim();
                        !w.is_empty() && w.bytes().all(|b| b.is_ascii_hexdigit())
                    })
                    .collect();
                if !hex.is_empty() {
                    let k = *rng.pick(&hex);
                    let mut words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
                    words[k] = (*rng.pick(NUMBERS)).to_owned();
                    lines[i] = words.join(" ");
                }
            }
            "number at an edge"
        }
        4 => {
            // A BackTrace referenced but never printed, or an ID out of bounds.
            let refs: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains("by BackTrace"))
                .collect();
            if !refs.is_empty() {
                let i = *rng.pick(&refs);
                let id = *rng.pick(&["DEADBEEF", "", "FFFFFFFFFFFFFFFFFFFF", "xyz"]);
                if let Some((head, _)) = lines[i].split_once("by BackTrace") {
                    lines[i] = format!("{head}by BackTrace{id}");
                }
            }
            "backtrace id"
        }
        5 => {
            // Lines out of order: a stack before its reference, a heap's end first.
            if let (Some(a), Some(b)) = (some_line(rng, &lines), some_line(rng, &lines)) {
                lines.swap(a, b);
            }
            "lines swapped"
        }
        6 => {
            // Hostile text in a frame, a path, an ID or the header.
            if let Some(i) = some_line(rng, &lines) {
                let h = hostile(rng);
                if rng.chance(50) {
                    lines[i].push_str(h);
                } else {
                    lines[i] = format!("\t{h}");
                }
            }
            "hostile text"
        }
        7 => {
            // Heap markers lost or doubled.
            let marks: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains("of data for heap"))
                .collect();
            if !marks.is_empty() {
                let i = *rng.pick(&marks);
                if rng.chance(50) {
                    lines.remove(i);
                } else {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
            }
            "heap marker"
        }
        8 => {
            // One very long line.
            if let Some(i) = some_line(rng, &lines) {
                let n = *rng.pick(&[1_000usize, 100_000, 2_000_000]);
                lines[i].push_str(&"A".repeat(n));
            }
            "long line"
        }
        9 => {
            // The header's fields broken.
            for l in lines.iter_mut().filter(|l| l.starts_with("// UMDH")) {
                *l = rng
                    .pick(&[
                        "// UMDH: version : Logtime 9999-99-99 99:99 - Machine= - PID=99999999999",
                        "// UMDH: version 7: Logtime - PID=",
                        "// UMDH:",
                    ])
                    .to_string();
            }
            "header"
        }
        _ => {
            // A module line's numbers overlapping or wrapping.
            for l in lines
                .iter_mut()
                .filter(|l| l.contains(".dll") && l.starts_with("//"))
            {
                if rng.chance(50) {
                    *l = format!(
                        "// FFFFFFFFFFFFF000 FFFFFFFF {}",
                        l.rsplit(' ').next().unwrap_or("")
                    );
                }
            }
            "module line"
        }
    };
    *text = lines.join("\n");
    // A long line repeated 20,000 times is gigabytes: the input is cut (what a
    // gigabyte log costs is the benchmark's business, not the fuzzer's).
    if text.len() > MAX_TEXT {
        let mut at = MAX_TEXT;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    name
}

/// The log's bytes in a random encoding; returns them and its name.
pub fn encode(rng: &mut Rng, text: &str) -> (Vec<u8>, &'static str) {
    match rng.below(6) {
        0..=2 => (text.as_bytes().to_vec(), "UTF-8"),
        3 => {
            let mut b = vec![0xFF, 0xFE];
            b.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            if rng.chance(30) {
                // A dangling byte, or a lone surrogate.
                b.push(0x41);
                b.extend([0x00, 0xD8]);
            }
            (b, "UTF-16 LE")
        }
        4 => {
            let mut b = vec![0xFE, 0xFF];
            b.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            (b, "UTF-16 BE")
        }
        _ => {
            // The ANSI code page: bytes that are no UTF-8, here and there.
            let mut b = text.as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                if !b.is_empty() {
                    let at = rng.below(b.len() as u64) as usize;
                    b[at] = *rng.pick(&[0xE9u8, 0xFC, 0x80, 0xFF, 0x00]);
                }
            }
            (b, "ANSI bytes")
        }
    }
}
