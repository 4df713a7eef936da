//! Conversions between wire types and chrono.
use crate::common::v1::Date;
use chrono::{Datelike, NaiveDate};

impl Date {
    /// The calendar date, or `None` when the fields do not name a real day.
    pub fn to_naive(&self) -> Option<NaiveDate> {
        let month = u32::try_from(self.month).ok()?;
        let day = u32::try_from(self.day).ok()?;
        NaiveDate::from_ymd_opt(self.year, month, day)
    }
}

impl From<NaiveDate> for Date {
    fn from(date: NaiveDate) -> Self {
        Date { year: date.year(), month: date.month() as i32, day: date.day() as i32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_round_trips_and_rejects_impossible_days() {
        let day = NaiveDate::from_ymd_opt(2026, 2, 28).expect("valid date");
        assert_eq!(Date::from(day).to_naive(), Some(day));
        let impossible = Date { year: 2026, month: 2, day: 30 };
        assert_eq!(impossible.to_naive(), None);
        let negative = Date { year: 2026, month: -1, day: 1 };
        assert_eq!(negative.to_naive(), None);
    }
}
