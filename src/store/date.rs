//! Civil (calendar) dates for activity due dates: stored as `YYYY-MM-DD` text, which sorts in date
//! order, so "today and overdue" is a plain index range.

use std::fmt;
use std::str::FromStr;

/// A proleptic Gregorian calendar date, years 1 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    year: u16,
    month: u8,
    day: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("{0:?} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30")]
    Format(String),
    #[error("{0:?} is not a day of the calendar (check the month and day)")]
    OutOfRange(String),
}

const SECONDS_PER_DAY: i64 = 86_400;
/// Days from 0000-03-01 to 1970-01-01 in the shifted calendar used below.
const UNIX_EPOCH_SHIFT: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

impl CivilDate {
    /// 1970-01-01, where a clock out of range falls back to.
    pub const UNIX_EPOCH: CivilDate = CivilDate {
        year: 1970,
        month: 1,
        day: 1,
    };

    /// `None` unless the date exists (e.g. no February 30th) and the year is 1..=9999.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        valid.then_some(CivilDate { year, month, day })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(self) -> i64 {
        // Count years from March so the leap day is the last day of the shifted year.
        let month = i64::from(self.month);
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year.rem_euclid(400);
        let shifted_month = (month + 9) % 12;
        let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * DAYS_PER_ERA + day_of_era - UNIX_EPOCH_SHIFT
    }

    /// The date `days` after 1970-01-01; `None` outside years 1..=9999.
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        let shifted = days.checked_add(UNIX_EPOCH_SHIFT)?;
        let era = shifted.div_euclid(DAYS_PER_ERA);
        let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = era
            .checked_mul(400)?
            .checked_add(year_of_era)?
            .checked_add(i64::from(month <= 2))?;
        CivilDate::new(
            u16::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
        )
    }

    /// The local date of an instant, given the local offset from UTC in seconds (the caller owns
    /// the clock and the time zone).
    pub fn from_epoch_seconds(epoch_seconds: i64, utc_offset_seconds: i64) -> Option<Self> {
        let local = epoch_seconds.checked_add(utc_offset_seconds)?;
        Self::from_days_since_epoch(local.div_euclid(SECONDS_PER_DAY))
    }

    /// `None` if the result leaves years 1..=9999.
    pub fn add_days(self, days: i64) -> Option<Self> {
        Self::from_days_since_epoch(self.days_since_epoch().checked_add(days)?)
    }

    /// The next day (saturating at 9999-12-31).
    pub fn tomorrow(self) -> Self {
        self.add_days(1).unwrap_or(self)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for CivilDate {
    type Err = DateError;

    fn from_str(text: &str) -> Result<Self, DateError> {
        let trimmed = text.trim();
        let bytes = trimmed.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return Err(DateError::Format(text.to_string()));
        }
        let field = |range: std::ops::Range<usize>| {
            trimmed
                .get(range)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| DateError::Format(text.to_string()))
        };
        let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
        let month = u8::try_from(month).map_err(|_| DateError::OutOfRange(text.to_string()))?;
        let day = u8::try_from(day).map_err(|_| DateError::OutOfRange(text.to_string()))?;
        CivilDate::new(year, month, day).ok_or_else(|| DateError::OutOfRange(text.to_string()))
    }
}

impl rusqlite::types::ToSql for CivilDate {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.to_string().into())
    }
}

impl rusqlite::types::FromSql for CivilDate {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        text.parse()
            .map_err(|e: DateError| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> CivilDate {
        text.parse().expect("parse")
    }

    #[test]
    fn epoch_day_numbers_match_known_dates() {
        assert_eq!(date("1970-01-01").days_since_epoch(), 0);
        assert_eq!(date("2000-03-01").days_since_epoch(), 11_017);
        assert_eq!(date("2026-11-30").days_since_epoch(), 20_787);
        assert_eq!(date("1969-12-31").days_since_epoch(), -1);
        assert_eq!(date("0001-01-01").days_since_epoch(), -719_162);
        assert_eq!(
            CivilDate::from_days_since_epoch(20_787),
            Some(date("2026-11-30"))
        );
        assert_eq!(CivilDate::from_days_since_epoch(-719_163), None);
        assert_eq!(CivilDate::from_days_since_epoch(i64::MAX), None);
    }

    #[test]
    fn round_trip_over_four_centuries() {
        let start = date("1900-01-01").days_since_epoch();
        let mut previous =
            CivilDate::from_days_since_epoch(start - 1).expect("from_days_since_epoch");
        for day in start..start + 146_097 {
            let d = CivilDate::from_days_since_epoch(day).expect("from_days_since_epoch");
            assert_eq!(d.days_since_epoch(), day);
            assert!(d > previous);
            assert_eq!(d.to_string().parse::<CivilDate>().expect("parse"), d);
            previous = d;
        }
    }

    #[test]
    fn tomorrow_crosses_months_years_and_leap_days() {
        assert_eq!(date("2026-11-30").tomorrow(), date("2026-12-01"));
        assert_eq!(date("2026-12-31").tomorrow(), date("2027-01-01"));
        assert_eq!(date("2028-02-28").tomorrow(), date("2028-02-29"));
        assert_eq!(date("2100-02-28").tomorrow(), date("2100-03-01"));
        assert_eq!(date("9999-12-31").tomorrow(), date("9999-12-31"));
    }

    #[test]
    fn local_date_of_an_instant() {
        // 2026-11-30T23:30:00Z
        let instant = 1_796_081_400;
        assert_eq!(
            CivilDate::from_epoch_seconds(instant, 0),
            Some(date("2026-11-30"))
        );
        assert_eq!(
            CivilDate::from_epoch_seconds(instant, 3600),
            Some(date("2026-12-01"))
        );
        assert_eq!(
            CivilDate::from_epoch_seconds(-1, 0),
            Some(date("1969-12-31"))
        );
        assert_eq!(CivilDate::from_epoch_seconds(i64::MAX, 1), None);
    }

    #[test]
    fn parsing_rejects_bad_text() {
        assert_eq!(
            date(" 2026-02-03 "),
            CivilDate::new(2026, 2, 3).expect("new")
        );
        for bad in [
            "2026-2-3",
            "26-02-03",
            "2026/02/03",
            "2026-02-03T10",
            "",
            "２０２６-02-03",
        ] {
            assert!(
                matches!(bad.parse::<CivilDate>(), Err(DateError::Format(_))),
                "{bad}"
            );
        }
        for bad in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "0000-01-01",
        ] {
            assert!(
                matches!(bad.parse::<CivilDate>(), Err(DateError::OutOfRange(_))),
                "{bad}"
            );
        }
        assert!("2024-02-29".parse::<CivilDate>().is_ok());
        assert_eq!(
            "31/12/2026"
                .parse::<CivilDate>()
                .expect_err("must fail")
                .to_string(),
            "\"31/12/2026\" is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30"
        );
    }
}
