//! Application times as instants.
//!
//! Applications write times in several forms, often more than one in one table:
//! `2026-12-03T10:04:51Z`, `2026-12-03T10:04:51.777868` (no zone), an offset, a date alone,
//! epoch seconds or milliseconds. Text order is not time order across those forms, so every
//! comparison or ordering of application times goes through [`parse`]; what the worker writes
//! keeps the application's text. A time without a zone is taken as UTC.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Longer text is not a time (and is not worth parsing).
const LONGEST: usize = 64;

/// Epoch numbers at or above this are milliseconds (as seconds it would be the year 5138).
const MILLISECONDS_FROM: i64 = 100_000_000_000;

/// `text` as an instant: ISO 8601 / RFC 3339 with `Z`, an offset (`+02:00` or `+0200`) or no
/// zone (UTC), 0 to 9 fractional digits, `T` or a space between date and time, seconds
/// optional; a date alone (its midnight, UTC); or epoch seconds or milliseconds (a fraction
/// allowed). None for anything else.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text.len() > LONGEST {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return epoch(text);
    }
    let zoned = || {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .or_else(|| {
                ZONED
                    .iter()
                    .find_map(|f| DateTime::parse_from_str(text, f).ok())
            })
            .map(|at| at.with_timezone(&Utc))
    };
    // Without a zone (a `Z` the formats above did not take is dropped): UTC.
    let local = || {
        let text = text.strip_suffix(['Z', 'z']).unwrap_or(text);
        LOCAL
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .or_else(|| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|date| date.and_hms_opt(0, 0, 0))
            })
            .map(|at| at.and_utc())
    };
    zoned().or_else(local)
}

/// Forms with an offset (`+02:00` or `+0200`) beside RFC 3339's.
const ZONED: [&str; 3] = [
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%z",
];

/// Forms without a zone.
const LOCAL: [&str; 3] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
];

fn epoch(text: &str) -> Option<DateTime<Utc>> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = whole.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Nanoseconds of the fraction, of a second or of a millisecond.
    let nanos_of = |digits: usize| -> i64 {
        let mut padded: String = fraction.chars().take(digits).collect();
        while padded.len() < digits {
            padded.push('0');
        }
        padded.parse().unwrap_or(0)
    };
    if whole >= MILLISECONDS_FROM {
        let seconds = whole / 1000;
        let nanos = (whole % 1000) * 1_000_000 + nanos_of(6);
        DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)
    } else {
        DateTime::from_timestamp(whole, u32::try_from(nanos_of(9)).ok()?)
    }
}

/// The order of two application times: by instant; a text that is no time sorts before every
/// time, and among themselves such texts (and equal instants) sort as text, so the order is
/// total and the same on every run.
pub fn compare(a: &str, b: &str) -> Ordering {
    parse(a).cmp(&parse(b)).then_with(|| a.cmp(b))
}

/// The later of two optional times (by [`compare`]); a time is later than none.
pub fn later(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if compare(&a, &b) == Ordering::Less {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// The earlier of two times (by [`compare`]).
pub fn earlier(a: String, b: String) -> String {
    if compare(&b, &a) == Ordering::Less {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> String {
        parse(text)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn reads_the_forms_applications_write() {
        let cases = [
            ("2026-12-03T10:04:51Z", "2026-12-03T10:04:51.000000000Z"),
            (
                "2026-12-03T10:04:51.777868",
                "2026-12-03T10:04:51.777868000Z",
            ),
            (
                "2026-12-03T10:04:51.777868Z",
                "2026-12-03T10:04:51.777868000Z",
            ),
            (
                "2026-12-03T12:04:51+02:00",
                "2026-12-03T10:04:51.000000000Z",
            ),
            ("2026-12-03T12:04:51+0200", "2026-12-03T10:04:51.000000000Z"),
            ("2026-12-03 10:04:51", "2026-12-03T10:04:51.000000000Z"),
            (
                "2026-12-03T10:04:51.123456789Z",
                "2026-12-03T10:04:51.123456789Z",
            ),
            ("2026-12-03T10:04", "2026-12-03T10:04:00.000000000Z"),
            ("2026-12-03", "2026-12-03T00:00:00.000000000Z"),
            ("1796292287", "2026-12-03T10:04:47.000000000Z"),
            ("1796292287864", "2026-12-03T10:04:47.864000000Z"),
            ("1796292287.5", "2026-12-03T10:04:47.500000000Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(at(text), expected, "{text}");
        }
        for text in [
            "",
            "soon",
            "10:30",
            "2026-13-40",
            "12-03-2026",
            &"9".repeat(80),
        ] {
            assert_eq!(at(text), "none", "{text}");
        }
    }

    #[test]
    fn the_later_message_wins_whatever_its_form() {
        // As text the first is later ('Z' sorts after '.'), as a time the second is.
        let zoned = "2026-12-03T10:04:51Z".to_string();
        let micro = "2026-12-03T10:04:51.777868".to_string();
        assert_eq!(
            later(Some(zoned.clone()), Some(micro.clone())),
            Some(micro.clone())
        );
        assert_eq!(
            later(Some(micro.clone()), Some(zoned.clone())),
            Some(micro.clone())
        );
        assert_eq!(earlier(micro.clone(), zoned.clone()), zoned);
        assert_eq!(later(None, Some("x".into())), Some("x".into()));
        // A text that is no time sorts before every time.
        assert_eq!(compare("garbage", "2020-01-01"), Ordering::Less);
    }
}
