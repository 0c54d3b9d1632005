//! When a month's indicator reports are due, in Europe/Paris time: the pure calendar part of
//! reporting periods, shared by hubs (which close months) and nodes (which say which of their
//! months are overdue), so neither depends on the other.
//!
//! A month's reports are due on `deadline_day` of the following month; the due *instant* is the
//! end of that day (midnight at its close, Paris time). Paris is UTC+1, or UTC+2 from the last
//! Sunday of March to the last Sunday of October (the switch happens at 01:00 UTC, so a local
//! midnight is never ambiguous): computed here, no time-zone database.

use crate::date::{Date, Month};

/// A day, in milliseconds.
pub const DAY_MS: i64 = 24 * 3600 * 1000;
/// An hour, in milliseconds.
pub const HOUR_MS: i64 = 3600 * 1000;

/// The month after `month`.
pub fn next_month(month: Month) -> Month {
    Month::from_ordinal(month.ordinal() + 1)
}

/// The month before `month`.
pub fn previous_month(month: Month) -> Month {
    Month::from_ordinal(month.ordinal() - 1)
}

/// The last Sunday of a month, as days since the Unix epoch.
fn last_sunday(year: i32, month: u8) -> i64 {
    let next = next_month(Month { year, month });
    let last = Date { year: next.year, month: next.month, day: 1 }.days_since_epoch() - 1;
    // 1970-01-01 was a Thursday: (days + 4) mod 7 is 0 on Sundays.
    last - (last + 4).rem_euclid(7)
}

/// The instant (ms since the Unix epoch) of midnight at the start of `date`, Europe/Paris.
pub fn paris_midnight_ms(date: Date) -> i64 {
    let days = date.days_since_epoch();
    // Summer time from the last Sunday of March 01:00 UTC to the last Sunday of October 01:00
    // UTC: at local midnight, the switch day itself is still on the old offset.
    let summer = days > last_sunday(date.year, 3) && days <= last_sunday(date.year, 10);
    days * DAY_MS - if summer { 2 * HOUR_MS } else { HOUR_MS }
}

/// The due date of `month`: `deadline_day` of the following month.
pub fn due_date(month: Month, deadline_day: u8) -> Date {
    let next = next_month(month);
    Date { year: next.year, month: next.month, day: deadline_day }
}

/// The due instant of `month`: the end of its due date, Europe/Paris.
pub fn due_instant_ms(month: Month, deadline_day: u8) -> i64 {
    let due = due_date(month, deadline_day);
    paris_midnight_ms(Date::from_days_since_epoch(due.days_since_epoch() + 1))
}

/// When `month` ends (midnight of the 1st of the following month, Europe/Paris).
pub fn month_end_ms(month: Month) -> i64 {
    let next = next_month(month);
    paris_midnight_ms(Date { year: next.year, month: next.month, day: 1 })
}

/// The month (Europe/Paris) an instant falls in.
pub fn month_at(ms: i64) -> Month {
    // Paris is at most two hours ahead: try the later month first.
    let month = Date::from_unix_ms(ms + 2 * HOUR_MS).month_of();
    if ms >= paris_midnight_ms(Date { year: month.year, month: month.month, day: 1 }) {
        month
    } else {
        previous_month(month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    fn instant(s: &str) -> i64 {
        // `YYYY-MM-DDTHH:MM` in UTC.
        let (date, time) = s.split_once('T').expect("T");
        let (h, m) = time.split_once(':').expect(":");
        Date::parse(date).expect("date").days_since_epoch() * DAY_MS
            + h.parse::<i64>().expect("h") * HOUR_MS
            + m.parse::<i64>().expect("m") * 60_000
    }

    #[test]
    fn due_dates_fall_in_the_following_month() {
        assert_eq!(due_date(month("2026-11"), 15).to_string(), "2026-12-15");
        assert_eq!(due_date(month("2026-12"), 15).to_string(), "2027-01-15");
        assert_eq!(due_date(month("2026-01"), 28).to_string(), "2026-02-28");
        assert_eq!(due_date(month("2028-01"), 1).to_string(), "2028-02-01");
    }

    #[test]
    fn due_instants_are_the_end_of_the_due_day_in_paris() {
        // Winter (UTC+1): the end of 15 December is 23:00 UTC that day.
        assert_eq!(due_instant_ms(month("2026-11"), 15), instant("2026-12-15T23:00"));
        // December → January, winter.
        assert_eq!(due_instant_ms(month("2026-12"), 15), instant("2027-01-15T23:00"));
        // Summer (UTC+2).
        assert_eq!(due_instant_ms(month("2026-06"), 15), instant("2026-07-15T22:00"));
        // deadline_day 28 of February.
        assert_eq!(due_instant_ms(month("2027-01"), 28), instant("2027-02-28T23:00"));
    }

    #[test]
    fn paris_offset_switches_on_the_last_sundays_of_march_and_october() {
        // 2026: summer time from Sunday 29 March to Sunday 25 October.
        assert_eq!(last_sunday(2026, 3), Date::parse("2026-03-29").expect("d").days_since_epoch());
        assert_eq!(last_sunday(2026, 10), Date::parse("2026-10-25").expect("d").days_since_epoch());
        let midnight = |d: &str| paris_midnight_ms(Date::parse(d).expect("d"));
        assert_eq!(midnight("2026-03-29"), instant("2026-03-28T23:00"));
        assert_eq!(midnight("2026-03-30"), instant("2026-03-29T22:00"));
        assert_eq!(midnight("2026-10-25"), instant("2026-10-24T22:00"));
        assert_eq!(midnight("2026-10-26"), instant("2026-10-25T23:00"));
    }

    #[test]
    fn months_end_at_paris_midnight() {
        assert_eq!(month_end_ms(month("2026-12")), instant("2026-12-31T23:00"));
        assert_eq!(month_at(instant("2026-12-31T22:59")), month("2026-12"));
        assert_eq!(month_at(instant("2026-12-31T23:00")), month("2027-01"));
        assert_eq!(month_at(instant("2026-06-30T22:00")), month("2026-07"));
        assert_eq!(month_at(instant("2026-06-30T21:59")), month("2026-06"));
        assert_eq!(previous_month(month("2027-01")), month("2026-12"));
    }
}
