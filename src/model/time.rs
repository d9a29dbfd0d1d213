//! Times as the reports write them.

/// Converts a Windows FILETIME (100 ns ticks since 1601-01-01 UTC) to RFC 3339.
pub fn filetime_to_rfc3339(filetime: u64) -> Option<String> {
    const TICKS_1601_TO_1970: i128 = 116_444_736_000_000_000;
    let nanos = (i128::from(filetime) - TICKS_1601_TO_1970) * 100;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Converts Unix seconds to RFC 3339.
pub fn unix_to_rfc3339(seconds: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        // 2020-01-01T00:00:00Z
        assert_eq!(
            filetime_to_rfc3339(132_223_104_000_000_000).as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(unix_to_rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
