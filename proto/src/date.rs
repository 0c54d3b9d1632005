//! Civil dates (`YYYY-MM-DD`), months (`YYYY-MM`) and conversions from Unix time.
//!
//! The protocol carries dates as strings; this module parses them strictly (zero-padded, real
//! calendar days) and does the little arithmetic the domain needs (ordering, today, ages), using
//! Howard Hinnant's days-from-civil algorithm instead of a date-time dependency.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Earliest year accepted anywhere in the protocol.
pub const MIN_YEAR: i32 = 1900;
/// Latest year accepted anywhere in the protocol.
pub const MAX_YEAR: i32 = 2199;

/// A proleptic Gregorian calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, between [`MIN_YEAR`] and [`MAX_YEAR`].
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 28–31.
    pub day: u8,
}

/// A calendar month, the period of an indicator report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// Year, between [`MIN_YEAR`] and [`MAX_YEAR`].
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u8,
}

/// Why a date string was refused; the validation layer turns it into a field error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateError(pub &'static str);

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

fn parse_digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_year_month(s: &str) -> Result<(i32, u8), DateError> {
    let (y, m) = s.split_once('-').ok_or(DateError("expected YYYY-MM"))?;
    if y.len() != 4 || m.len() != 2 {
        return Err(DateError("expected YYYY-MM"));
    }
    let year = parse_digits(y).ok_or(DateError("expected YYYY-MM"))? as i32;
    let month = parse_digits(m).ok_or(DateError("expected YYYY-MM"))? as u8;
    if !(1..=12).contains(&month) {
        return Err(DateError("month must be 01 to 12"));
    }
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(DateError("year must be 1900 to 2199"));
    }
    Ok((year, month))
}

impl Date {
    /// Parses a strict `YYYY-MM-DD` string naming a real calendar day.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        if s.len() != 10 || s.as_bytes()[7] != b'-' {
            return Err(DateError("expected a date YYYY-MM-DD"));
        }
        let (year, month) = parse_year_month(&s[..7]).map_err(|_| DateError("expected a date YYYY-MM-DD"))?;
        let day = parse_digits(&s[8..]).ok_or(DateError("expected a date YYYY-MM-DD"))? as u8;
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError("no such day in the calendar"));
        }
        Ok(Self { year, month, day })
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The day `days` days after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }

    /// The UTC calendar day of an instant given in milliseconds since the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> Self {
        Self::from_days_since_epoch(ms.div_euclid(86_400_000))
    }

    /// Today's UTC date, from the system clock.
    pub fn today() -> Self {
        Self::from_unix_ms(now_unix_ms())
    }

    /// The month this day belongs to.
    pub fn month_of(self) -> Month {
        Month { year: self.year, month: self.month }
    }

    /// The first day of this day's month.
    pub fn first_of_month(self) -> Self {
        Self { day: 1, ..self }
    }

    /// Whole years between `self` (a birth date) and `on`.
    pub fn age_on(self, on: Date) -> i32 {
        let mut age = on.year - self.year;
        if (on.month, on.day) < (self.month, self.day) {
            age -= 1;
        }
        age
    }
}

impl Month {
    /// Parses a strict `YYYY-MM` string.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let (year, month) = parse_year_month(s)?;
        Ok(Self { year, month })
    }

    /// A dense, order-preserving number for the month (`year * 12 + month - 1`), used as a key.
    pub fn ordinal(self) -> u32 {
        (self.year as u32) * 12 + u32::from(self.month) - 1
    }

    /// The inverse of [`Month::ordinal`].
    pub fn from_ordinal(ordinal: u32) -> Self {
        Self { year: (ordinal / 12) as i32, month: (ordinal % 12 + 1) as u8 }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats an instant as RFC 3339 in UTC with second precision, e.g. `2026-11-22T11:43:17Z`.
pub fn format_unix_ms(ms: i64) -> String {
    let date = Date::from_unix_ms(ms);
    let secs_of_day = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{date}T{:02}:{:02}:{:02}Z", secs_of_day / 3600, (secs_of_day / 60) % 60, secs_of_day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_accepted_day() {
        let start = Date::parse("1900-01-01").map(Date::days_since_epoch).expect("valid");
        let end = Date::parse("2199-12-31").map(Date::days_since_epoch).expect("valid");
        for d in start..=end {
            let date = Date::from_days_since_epoch(d);
            assert_eq!(date.days_since_epoch(), d);
            assert_eq!(Date::parse(&date.to_string()), Ok(date));
        }
    }

    #[test]
    fn rejects_impossible_and_sloppy_dates() {
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-04-31",
            "",
            "2026-01-01 ",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert!(Date::parse("2024-02-29").is_ok());
        assert!(Month::parse("2026-7").is_err());
        assert_eq!(Month::parse("2026-07").map(|m| m.to_string()), Ok("2026-07".into()));
    }

    #[test]
    fn ages_turn_on_the_birthday() {
        let birth = Date { year: 2000, month: 6, day: 15 };
        assert_eq!(birth.age_on(Date { year: 2026, month: 6, day: 14 }), 25);
        assert_eq!(birth.age_on(Date { year: 2026, month: 6, day: 15 }), 26);
    }

    #[test]
    fn formats_instants_in_utc() {
        assert_eq!(format_unix_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix_ms(1_795_348_997_000), "2026-11-22T12:03:17Z");
    }

    #[test]
    fn month_ordinals_round_trip_and_order() {
        let a = Month::parse("2025-12").expect("valid");
        let b = Month::parse("2026-01").expect("valid");
        assert_eq!(a.ordinal() + 1, b.ordinal());
        assert_eq!(Month::from_ordinal(b.ordinal()), b);
    }
}
