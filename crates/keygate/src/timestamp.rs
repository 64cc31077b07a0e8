//! Time as keygate stores it (Unix seconds, `i64`) and shows it (RFC 3339 UTC
//! with `Z`, whole seconds).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};

/// The current time. Operations take `now` as a parameter instead of calling
/// this, so tests control the clock.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `2026-11-26T17:00:00Z`.
pub fn format_rfc3339(secs: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(format).ok())
        // Only timestamps keygate parsed or took from the clock are stored,
        // so this is unreachable in practice; an epoch is safer than a panic.
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants that have an
/// RFC 3339 form in UTC, so every accepted time can be shown back.
const FIRST: i64 = -62_167_219_200;
const LAST: i64 = 253_402_300_799;

/// RFC 3339 with any offset; fractional seconds are truncated (towards the past).
/// An offset that moves the instant outside years 0000–9999 in UTC (such as
/// `9999-12-31T23:59:59-23:59`) is refused: it could not be shown in UTC
/// (found by the `list_query` fuzz target's round trip).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
        .filter(|t| (FIRST..=LAST).contains(t))
}

/// Which end of a date a filter bound means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `*_from`, `unused_since`, audit `from`: 00:00:00 UTC of a date.
    Start,
    /// `*_to`, audit `to`: 23:59:59 UTC of a date, so the whole day is included.
    End,
}

/// A filter bound: a date (`2026-11-26`, taken in UTC) or an RFC 3339 timestamp.
pub fn parse_bound(s: &str, bound: Bound) -> Option<i64> {
    if s.len() == 10 {
        let date = Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
        let start = date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
        return Some(match bound {
            Bound::Start => start,
            Bound::End => start + 86_399,
        });
    }
    parse_rfc3339(s)
}

/// Serde helpers so model types serialise timestamps as RFC 3339.
pub(crate) mod serde_rfc3339 {
    use serde::Serializer;

    pub fn required<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*secs))
    }

    pub fn optional<S: Serializer>(secs: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match secs {
            Some(secs) => required(secs, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_z_and_whole_seconds() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_712_400), "2026-11-26T17:00:00Z");
    }

    #[test]
    fn parses_any_offset_and_round_trips() {
        assert_eq!(parse_rfc3339("2026-11-26T17:00:00Z"), Some(1_795_712_400));
        assert_eq!(
            parse_rfc3339("2026-11-26T18:00:00+01:00"),
            Some(1_795_712_400)
        );
        assert_eq!(
            parse_rfc3339("2026-11-26T12:30:00-04:30"),
            Some(1_795_712_400)
        );
        assert_eq!(
            parse_rfc3339("2026-11-26T17:00:00.999Z"),
            Some(1_795_712_400)
        );
        assert_eq!(
            parse_rfc3339(&format_rfc3339(1_795_712_400)),
            Some(1_795_712_400)
        );
        for bad in [
            "",
            "2026-11-26",
            "2026-11-26 17:00:00",
            "2026-13-01T00:00:00Z",
            "tomorrow",
            "9999-12-31T23:59:59-00:01",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for edge in ["9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z"] {
            assert_eq!(format_rfc3339(parse_rfc3339(edge).unwrap()), edge);
        }
    }

    #[test]
    fn dates_cover_the_whole_utc_day() {
        let start = parse_bound("2026-11-26", Bound::Start).unwrap();
        let end = parse_bound("2026-11-26", Bound::End).unwrap();
        assert_eq!(format_rfc3339(start), "2026-11-26T00:00:00Z");
        assert_eq!(format_rfc3339(end), "2026-11-26T23:59:59Z");
        assert_eq!(
            parse_bound("2026-11-26T10:00:00+02:00", Bound::End),
            parse_rfc3339("2026-11-26T08:00:00Z")
        );
        for bad in ["2026-02-30", "2026-1-26", "26-11-2026", "2026/11/26"] {
            assert_eq!(parse_bound(bad, Bound::Start), None, "{bad}");
        }
    }
}
