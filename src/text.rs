//! Numbers and durations for people, as findings (analysis) and pages (report) write
//! them. Reports show exact integers with thousands separators; a rounded size (KiB, MiB) only ever appears next to the exact count.

/// `1234567` → `"1,234,567"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with its noun: `1 allocation`, `2,400 allocations`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// A leak probability as a percentage, or "not judged" when it could not be
/// (no allocations, a window of zero length, a UMDH snapshot without times).
pub fn probability(p: Option<u8>) -> String {
    p.map(|p| format!("{p}%"))
        .unwrap_or_else(|| "not judged".to_owned())
}

/// An approximate size for chart axes and headlines: `1536` → `"1.5 KiB"`.
pub fn approx_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A share as a percentage with one decimal, a dash when the whole is zero.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// A duration in seconds as `1h 02m 03s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{:.1}s", seconds.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(525_000), "525,000");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(count(1, "allocation"), "1 allocation");
        assert_eq!(count(2400, "allocation"), "2,400 allocations");
        assert_eq!(approx_bytes(1023), "1023 B");
        assert_eq!(approx_bytes(1536), "1.5 KiB");
        assert_eq!(approx_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(probability(Some(93)), "93%");
        assert_eq!(probability(None), "not judged");
        assert_eq!(percent(1, 0), "–");
        assert_eq!(duration(3723.0), "1h 02m 03s");
        assert_eq!(duration(61.0), "1m 01s");
        assert_eq!(duration(2.5), "2.5s");
    }
}
