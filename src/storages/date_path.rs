//! The `YYYY/MM/DD` of storage paths (modules.md §4): the calendar date of `created_at` as
//! written — in its own offset, not converted to UTC, so a vCon created at 00:30 in Paris is
//! filed under the day its creator saw — else the UTC date of the index instant.

use chrono::{DateTime, NaiveDate, Utc};

use super::Saved;

impl Saved {
    /// The date directory of this vCon: `YYYY/MM/DD` (modules.md §4).
    pub fn date_path(&self) -> String {
        let date = self
            .created_at
            .as_deref()
            .and_then(written_date)
            .unwrap_or_else(|| index_date(self.index_instant));
        date.format("%Y/%m/%d").to_string()
    }
}

/// The calendar date `created_at` states, or `None` when it is no readable date.
fn written_date(created_at: &str) -> Option<NaiveDate> {
    let text = created_at.trim_matches(|c: char| c.is_ascii_whitespace());
    // Readable at all first: `2024-05-01junk` must not lend its first ten characters.
    let instant = crate::vcon::parse_date(text)?;
    if let Some(date) = leading_iso_date(text) {
        return Some(date);
    }
    if let Ok(stamped) = DateTime::parse_from_rfc2822(text) {
        return Some(stamped.date_naive());
    }
    // Unix time carries no offset of its own: it is a UTC instant.
    Some(instant.date_naive())
}

/// The `YYYY-MM-DD` an ISO 8601 timestamp starts with: its date in its own offset, whatever
/// follows (a time, `Z`, `+02:00`, nothing).
fn leading_iso_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes().get(..10)?;
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

/// The UTC date of Unix seconds (the epoch for an instant chrono cannot represent).
fn index_date(seconds: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(created_at: Option<&str>, index_instant: i64) -> String {
        let mut saved = Saved::from_text(uuid::Uuid::nil(), "{}".to_owned()).unwrap();
        saved.created_at = created_at.map(str::to_owned);
        saved.index_instant = index_instant;
        saved.date_path()
    }

    /// 2024-05-01T12:00:00Z
    const MAY_1_NOON: i64 = 1_714_564_800;

    #[test]
    fn utc_and_offsets_keep_the_date_as_written() {
        assert_eq!(path_of(Some("2024-05-01T12:00:00Z"), 0), "2024/05/01");
        assert_eq!(path_of(Some("2024-05-01T12:00:00.123z"), 0), "2024/05/01");
        // 00:30 in UTC+2 is the previous day in UTC; the vCon's own date wins.
        assert_eq!(path_of(Some("2024-05-02T00:30:00+02:00"), 0), "2024/05/02");
        // 23:30 in UTC−5 is the next day in UTC.
        assert_eq!(path_of(Some("2024-05-01T23:30:00-05:00"), 0), "2024/05/01");
        assert_eq!(path_of(Some("2024-12-31 23:59:59-0800"), 0), "2024/12/31");
        assert_eq!(path_of(Some("2024-01-01T00:00:00+14"), 0), "2024/01/01");
    }

    #[test]
    fn naive_and_date_only_forms() {
        assert_eq!(path_of(Some("2024-05-01T23:59:59"), 0), "2024/05/01");
        assert_eq!(path_of(Some("2024-05-01 00:00"), 0), "2024/05/01");
        assert_eq!(path_of(Some("2024-02-29"), 0), "2024/02/29");
        assert_eq!(path_of(Some(" 2024-05-01T12:00:00Z\n"), 0), "2024/05/01");
    }

    #[test]
    fn rfc2822_keeps_its_own_date() {
        // 23:05 in UTC−4 is already the 19th in UTC.
        assert_eq!(
            path_of(Some("Wed, 18 May 2022 23:05:05 -0400"), 0),
            "2022/05/18"
        );
        assert_eq!(
            path_of(Some("Wed, 18 May 2022 23:05:05 GMT"), 0),
            "2022/05/18"
        );
    }

    #[test]
    fn unix_time_is_a_utc_date() {
        assert_eq!(path_of(Some("1714564800"), 0), "2024/05/01");
        assert_eq!(path_of(Some("1714607999.9"), 0), "2024/05/01");
        assert_eq!(path_of(Some("1714608000"), 0), "2024/05/02");
        assert_eq!(path_of(Some("1714564800000"), 0), "2024/05/01");
    }

    #[test]
    fn unreadable_or_missing_falls_back_to_the_index_instant() {
        assert_eq!(path_of(None, MAY_1_NOON), "2024/05/01");
        assert_eq!(path_of(Some(""), MAY_1_NOON), "2024/05/01");
        assert_eq!(path_of(Some("NOT-A-DATE"), MAY_1_NOON), "2024/05/01");
        assert_eq!(path_of(Some("2024-05-09junk"), MAY_1_NOON), "2024/05/01");
        assert_eq!(path_of(Some("2024-02-30"), MAY_1_NOON), "2024/05/01");
        // The index instant is read in UTC: 23:30 UTC stays that day.
        assert_eq!(path_of(None, MAY_1_NOON + 11 * 3600 + 1800), "2024/05/01");
        assert_eq!(path_of(None, i64::MAX), "1970/01/01");
    }
}
