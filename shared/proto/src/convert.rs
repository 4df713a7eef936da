//! Conversions between wire types and chrono.
use crate::common::v1::Date;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// A UTC instant as a wire timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

/// The instant a wire timestamp names; `None` when it is out of range.
pub fn to_datetime(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).ok()?)
}

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

    #[test]
    fn timestamps_round_trip_and_refuse_negative_nanos() {
        let at = DateTime::from_timestamp(1_790_000_000, 123_456_789).expect("instant");
        assert_eq!(to_datetime(&timestamp(at)), Some(at));
        assert_eq!(to_datetime(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }
}
