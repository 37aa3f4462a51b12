//! Event timestamps as the sources write them.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parse RFC 3339 (`2023-07-10T11:42:36Z`, with any fraction or offset), the space-separated
/// form some exports use (`2023-01-10 21:04:02[.fff]`, taken as UTC), and the compact form
/// of old CloudTrail session dates (`20131102T010628Z`).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let trimmed = s.trim_end_matches(['Z', 'z']);
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y%m%dT%H%M%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(trimmed, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// Where a record's timestamp came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The record's own event time.
    Event,
    /// The record had no usable event time; the time it was processed is used instead.
    Ingest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_seen_in_real_trails() {
        let want = "2023-01-10T21:04:02Z";
        for s in [
            "2023-01-10T21:04:02Z",
            "2023-01-10 21:04:02",
            "2023-01-10T22:04:02+01:00",
        ] {
            assert_eq!(
                parse_time(s)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                want,
                "{s}"
            );
        }
        assert_eq!(
            parse_time("20131102T010628Z")
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "2013-11-02T01:06:28Z"
        );
        assert_eq!(
            parse_time("2019-01-01 00:20:04.000Z")
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "2019-01-01T00:20:04.000Z"
        );
        assert!(parse_time("redacted").is_none());
    }
}
