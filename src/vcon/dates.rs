//! Lenient dates (vcon.md §2.7): RFC 3339 and its common relaxations, naive timestamps (UTC),
//! bare dates, RFC 2822 with obsolete zone names, and Unix time in seconds or milliseconds.
//! Real vCons and the Python server's parser are this lenient, so conserver must be too.

use super::view::{Kind, Raw};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// A Unix time above this magnitude is read as milliseconds, as the Python server reads numbers.
const MILLISECONDS_ABOVE: f64 = 2e10;

/// Parse a date given as text: RFC 3339 / ISO 8601, RFC 2822, or Unix time as digits.
pub(crate) fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return None;
    }
    if let Some(seconds) = unix_number(text) {
        return from_unix(seconds);
    }
    if let Some(instant) = parse_iso(text.as_bytes()) {
        return Some(instant);
    }
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|instant| instant.with_timezone(&Utc))
}

/// Parse a date given as a JSON value: a string as [`parse_date`], a number as Unix time.
/// Anything else (`true`, an object, `null`) is not a date.
pub(crate) fn parse_date_value(raw: Raw<'_>) -> Option<DateTime<Utc>> {
    match raw.kind() {
        Kind::String => raw.string().and_then(|text| parse_date(&text)),
        Kind::Number => unix_number(raw.text()).and_then(from_unix),
        _ => None,
    }
}

/// As [`parse_date_value`], for a value already parsed (the run's document).
pub(crate) fn parse_date_json(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    match value {
        serde_json::Value::String(text) => parse_date(text),
        serde_json::Value::Number(number) => unix_number(&number.to_string()).and_then(from_unix),
        _ => None,
    }
}

/// Unix time written as a decimal number (an optional sign, digits, an optional fraction, an
/// optional exponent), as JSON numbers and the Python server's `float()` of a numeric string.
fn unix_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let numeric = digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !numeric {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn from_unix(value: f64) -> Option<DateTime<Utc>> {
    let (units_per_second, nanos_per_unit) = if value.abs() > MILLISECONDS_ABOVE {
        (1000, 1_000_000)
    } else {
        (1, 1_000_000_000)
    };
    // Whole units and the fraction apart, so milliseconds keep their precision (dividing by
    // 1000 in floating point would not).
    let whole = value.floor();
    if !(i64::MIN as f64..=i64::MAX as f64).contains(&whole) {
        return None;
    }
    let whole = whole as i64;
    let fraction_nanos = ((value - value.floor()) * nanos_per_unit as f64).round() as i64;
    let nanos = whole.rem_euclid(units_per_second) * nanos_per_unit + fraction_nanos;
    let seconds = whole
        .div_euclid(units_per_second)
        .checked_add(nanos / 1_000_000_000)?;
    DateTime::from_timestamp(seconds, u32::try_from(nanos % 1_000_000_000).ok()?)
}

/// `YYYY-MM-DD`, optionally followed by `T`/`t`/space and `HH:MM[:SS[.fraction]]`, optionally
/// followed by `Z`/`z`, `±HH:MM`, `±HHMM` or `±HH`. Without an offset the time is UTC.
fn parse_iso(text: &[u8]) -> Option<DateTime<Utc>> {
    let mut cursor = Cursor { text, pos: 0 };
    let year = cursor.digits(4)?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2)?;
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    if cursor.at_end() {
        return Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)));
    }
    if !matches!(cursor.next()?, b'T' | b't' | b' ') {
        return None;
    }
    let hour = cursor.digits(2)?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2)?;
    let (mut second, mut nanos) = (0, 0);
    if cursor.peek() == Some(b':') {
        cursor.pos += 1;
        second = cursor.digits(2)?;
        if matches!(cursor.peek(), Some(b'.' | b',')) {
            cursor.pos += 1;
            nanos = cursor.fraction_as_nanos()?;
        }
    }
    // A leap second (`:60`) is chrono's last nanosecond-second of the minute.
    if second == 60 {
        second = 59;
        nanos += 1_000_000_000;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let local = NaiveDateTime::new(date, time);
    let offset = cursor.offset()?;
    if !cursor.at_end() {
        return None;
    }
    let instant = offset.from_local_datetime(&local).single()?;
    Some(instant.with_timezone(&Utc))
}

struct Cursor<'t> {
    text: &'t [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn digits(&mut self, count: usize) -> Option<u32> {
        let mut value = 0;
        for _ in 0..count {
            let byte = self.next()?;
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        Some(value)
    }

    /// At least one digit; any number of them, keeping nanosecond precision.
    fn fraction_as_nanos(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut nanos = 0;
        let mut scale = 100_000_000;
        while let Some(byte @ b'0'..=b'9') = self.peek() {
            nanos += u32::from(byte - b'0') * scale;
            scale /= 10;
            self.pos += 1;
        }
        (self.pos > start).then_some(nanos)
    }

    /// The offset at the end of a timestamp; UTC when there is none.
    fn offset(&mut self) -> Option<FixedOffset> {
        let sign = match self.peek() {
            None => return FixedOffset::east_opt(0),
            Some(b'Z' | b'z') => {
                self.pos += 1;
                return FixedOffset::east_opt(0);
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return None,
        };
        self.pos += 1;
        let hours = self.digits(2)?;
        let minutes = match self.peek() {
            None => 0,
            Some(b':') => {
                self.pos += 1;
                self.digits(2)?
            }
            Some(_) => self.digits(2)?,
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        parse_date(text)
            .unwrap_or_else(|| panic!("{text:?} should parse"))
            .timestamp()
    }

    fn nanos(text: &str) -> u32 {
        parse_date(text).unwrap().timestamp_subsec_nanos()
    }

    const MAY_1_NOON: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z

    #[test]
    fn rfc3339_with_offsets() {
        assert_eq!(at("2024-05-01T12:00:00Z"), MAY_1_NOON);
        assert_eq!(at("2024-05-01t12:00:00z"), MAY_1_NOON);
        assert_eq!(at("2024-05-01T14:00:00+02:00"), MAY_1_NOON);
        assert_eq!(at("2024-05-01T14:00:00.123+02:00"), MAY_1_NOON);
        assert_eq!(nanos("2024-05-01T14:00:00.123+02:00"), 123_000_000);
        assert_eq!(at("2024-05-01 14:00:00+0200"), MAY_1_NOON);
        assert_eq!(at("2024-05-01 14:00:00+02"), MAY_1_NOON);
        assert_eq!(at("2024-05-01T07:00:00-05:00"), MAY_1_NOON);
        assert_eq!(at("2024-05-01T06:30:00-0530"), MAY_1_NOON);
        assert_eq!(at("2024-05-01T12:00:00-00:00"), MAY_1_NOON);
        assert_eq!(at("2024-05-01T12:00Z"), MAY_1_NOON);
    }

    #[test]
    fn fractions_of_any_length() {
        assert_eq!(nanos("2024-05-01T12:00:00.1Z"), 100_000_000);
        assert_eq!(nanos("2024-05-01T12:00:00,5Z"), 500_000_000);
        assert_eq!(nanos("2025-07-19T15:59:04.090841"), 90_841_000);
        assert_eq!(nanos("2024-05-01T12:00:00.123456789123Z"), 123_456_789);
        assert!(parse_date("2024-05-01T12:00:00.Z").is_none());
    }

    #[test]
    fn naive_is_utc_and_date_only_is_midnight() {
        assert_eq!(at("2024-05-01T12:00:00"), MAY_1_NOON);
        assert_eq!(at("2024-05-01 12:00:00"), MAY_1_NOON);
        assert_eq!(at("2024-01-01T00:00:00"), 1_704_067_200);
        assert_eq!(at("2024-01-01"), 1_704_067_200);
        assert_eq!(at("2025-07-19T15:59:04.090841"), 1_752_940_744);
    }

    #[test]
    fn rfc2822_with_obsolete_zones() {
        let expected = 1_652_915_105; // 2022-05-18T23:05:05Z
        assert_eq!(at("Wed, 18 May 2022 23:05:05 -0000"), expected);
        assert_eq!(at("Wed, 18 May 2022 23:05:05 +0000"), expected);
        assert_eq!(at("Wed, 18 May 2022 23:05:05 GMT"), expected);
        assert_eq!(at("Wed, 18 May 2022 23:05:05 UT"), expected);
        assert_eq!(at("18 May 2022 23:05 GMT"), expected - 5);
        assert_eq!(at("Wed, 18 May 2022 18:05:05 EST"), expected);
        assert_eq!(at("Wed, 18 May 2022 19:05:05 EDT"), expected);
        assert_eq!(at("Wed, 18 May 2022 16:05:05 PDT"), expected);
    }

    #[test]
    fn unix_seconds_and_milliseconds() {
        assert_eq!(at("1715000000"), 1_715_000_000);
        assert_eq!(at("1715000000.5"), 1_715_000_000);
        assert_eq!(nanos("1715000000.5"), 500_000_000);
        assert_eq!(at("1715000000123"), 1_715_000_000);
        assert_eq!(nanos("1715000000123"), 123_000_000);
        assert_eq!(at("-1.5"), -2, "the fraction is dropped toward the past");
        assert_eq!(at("0"), 0);
        assert_eq!(
            at("20000000000"),
            20_000_000_000,
            "2e10 itself is still seconds"
        );
        assert_eq!(at("20000000001"), 20_000_000, "above 2e10 is milliseconds");
        assert_eq!(at("-20000000001"), -20_000_001);
    }

    #[test]
    fn json_values() {
        let of = |text: &str| parse_date_value(Raw::new(text)).map(|d| d.timestamp());
        assert_eq!(of("1715000000"), Some(1_715_000_000));
        assert_eq!(of("1715000000.75"), Some(1_715_000_000));
        assert_eq!(of("1.715e9"), Some(1_715_000_000));
        assert_eq!(of("1715000000000"), Some(1_715_000_000));
        assert_eq!(of("\"1715000000\""), Some(1_715_000_000));
        assert_eq!(of("\"2024-05-01T12:00:00Z\""), Some(MAY_1_NOON));
        assert_eq!(of("\"2024-05-01T12:00:00\\u005a\""), Some(MAY_1_NOON));
        for bad in [
            "true",
            "false",
            "null",
            "{}",
            "[]",
            "\"\"",
            "\"NOT-A-DATE\"",
            "1e400",
        ] {
            assert_eq!(of(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "",
            "   ",
            "NOT-A-DATE",
            "2024-13-01",
            "2024-02-30",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00Q",
            "2024-05-01T12:00:00Zjunk",
            "2024-05-01X12:00:00",
            "24-05-01",
            "2024/05/01",
            "2024-5-1",
            "1715000000abc",
            "abc1715000000",
            "--1",
            "inf",
            "NaN",
        ] {
            assert_eq!(parse_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn surrounding_whitespace_and_leap_seconds_are_tolerated() {
        assert_eq!(at(" 2024-05-01T12:00:00Z\n"), MAY_1_NOON);
        assert_eq!(at("2016-12-31T23:59:60Z"), 1_483_228_799);
    }
}
