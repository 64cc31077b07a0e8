//! Time as keygate stores it (Unix seconds, `i64`) and shows it (RFC 3339 UTC
//! with `Z`, whole seconds).

use std::borrow::Cow;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};

/// The current time. Operations take `now` as a parameter instead of calling
/// this, so tests control the clock. From `std`'s clock (on wasm32-wasip2,
/// `wasi:clocks`), not chrono's `clock` feature, which only adds local time
/// zones keygate never uses.
pub fn now() -> i64 {
    DateTime::<Utc>::from(SystemTime::now()).timestamp()
}

/// Years -9999 to 9999: what is shown; anything else is shown as the epoch.
const SHOWN_YEARS: std::ops::RangeInclusive<i32> = -9999..=9999;

/// `2026-11-26T17:00:00Z`.
pub fn format_rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .filter(|t| SHOWN_YEARS.contains(&t.year()))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
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
///
/// Beyond chrono's parser, and as keygate accepted before it used chrono:
/// ASCII only (no U+2212 minus sign in the offset); any ASCII character
/// between date and time, not only `T`, `t` or a space; a leap second
/// (`:60`) only where one can be, 23:59:60 UTC on a month's last day, read
/// as 23:59:59.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    if !s.is_ascii() {
        return None;
    }
    let s = match s.as_bytes().get(10) {
        Some(b'T' | b't' | b' ') | None => Cow::Borrowed(s),
        Some(_) => {
            let mut with_t = s.to_owned();
            with_t.replace_range(10..11, "T");
            Cow::Owned(with_t)
        }
    };
    let secs = DateTime::parse_from_rfc3339(&s).ok()?.timestamp();
    if s.get(17..19) == Some("60") {
        // chrono reads `:60` at any minute; keep it to the end of a UTC month.
        let next = DateTime::from_timestamp(secs + 1, 0)?;
        if next.day() != 1 || next.num_seconds_from_midnight() != 0 {
            return None;
        }
    }
    Some(secs).filter(|t| (FIRST..=LAST).contains(t))
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
        let start = parse_date(s)?.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
        return Some(match bound {
            Bound::Start => start,
            Bound::End => start + 86_399,
        });
    }
    parse_rfc3339(s)
}

/// Exactly `YYYY-MM-DD`, a real date. chrono's `%Y-%m-%d` would also take
/// one-digit months and days, signs and padding spaces.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, &c)| {
            if i == 4 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'))
    };
    NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))
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

    /// What keygate accepted before chrono (with `time`), where chrono's own
    /// parser is wider or narrower.
    #[test]
    fn parses_as_before_chrono() {
        let at = Some(1_795_712_400);
        for same in [
            "2026-11-26t17:00:00z",
            "2026-11-26 17:00:00Z",
            "2026-11-26_17:00:00Z",
            "2026-11-26T17:00:00-00:00",
            "2026-11-26T17:00:00.123456789123Z",
        ] {
            assert_eq!(parse_rfc3339(same), at, "{same}");
        }
        // A leap second only at the end of a UTC month, read as its :59.
        let last = parse_rfc3339("2026-11-30T23:59:59Z");
        assert_eq!(parse_rfc3339("2026-11-30T23:59:60Z"), last);
        assert_eq!(parse_rfc3339("2026-12-01T00:59:60+01:00"), last);
        assert_eq!(parse_rfc3339("2026-11-30T23:59:60.5Z"), last);
        for bad in [
            "2026-11-26T17:00:60Z",
            "2026-11-29T23:59:60Z",
            "2026-11-30T23:59:60+01:00",
            "2026-11-26T17:00:00\u{2212}01:00",
            "2026-11-26\u{e9}17:00:00Z",
            "2026-11-26T17:00:00.Z",
            "2026-11-26T17:00:00+24:00",
            "2026-11-26T17:00:00+01:60",
            "2026-11-26T17:00:00+0100",
            "2026-11-26T17:00:00Z ",
            " 2026-11-26T17:00:00Z",
            "+2026-11-26T17:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_out_of_range_as_before_chrono() {
        assert_eq!(format_rfc3339(-62_167_219_201), "-0001-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(-377_705_116_800), "-9999-01-01T00:00:00Z");
        for never in [-377_705_116_801, 253_402_300_800, i64::MIN, i64::MAX] {
            assert_eq!(format_rfc3339(never), "1970-01-01T00:00:00Z", "{never}");
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
        assert_eq!(
            parse_bound("0000-01-01", Bound::Start),
            parse_rfc3339("0000-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_bound("9999-12-31", Bound::End),
            parse_rfc3339("9999-12-31T23:59:59Z")
        );
        for bad in [
            "2026-02-30",
            "2026-1-26",
            "26-11-2026",
            "2026/11/26",
            "02026-1-26",
            "2026- 1-26",
            "2026-01- 1",
            "+202-11-26",
            "2026-00-10",
            "2026-11-00",
        ] {
            assert_eq!(parse_bound(bad, Bound::Start), None, "{bad}");
        }
    }
}
