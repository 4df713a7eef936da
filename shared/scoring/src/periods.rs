//! Reporting periods: a date range split into days, ISO weeks (from Monday)
//! or calendar months, clipped to the range.
use chrono::{Datelike, Days, Months, NaiveDate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Week,
    Month,
    /// The whole range as one period.
    Whole,
}

/// Inclusive first and last day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The periods covering `[from, to]` in order; empty when `from > to`.
pub fn split(from: NaiveDate, to: NaiveDate, granularity: Granularity) -> Vec<Period> {
    let mut periods = Vec::new();
    let mut start = from;
    while start <= to {
        let natural_end = match granularity {
            Granularity::Day => Some(start),
            Granularity::Week => {
                start.checked_add_days(Days::new(u64::from(6 - start.weekday().num_days_from_monday())))
            }
            Granularity::Month => start
                .with_day(1)
                .and_then(|first| first.checked_add_months(Months::new(1)))
                .and_then(|next| next.pred_opt()),
            Granularity::Whole => Some(to),
        };
        let end = natural_end.map_or(to, |end| end.min(to));
        periods.push(Period { start, end });
        match end.succ_opt() {
            Some(next) => start = next,
            None => break,
        }
    }
    periods
}

/// The index of the period holding `date` (periods as `split` returns them).
pub fn index_of(periods: &[Period], date: NaiveDate) -> Option<usize> {
    let i = periods.partition_point(|p| p.end < date);
    periods.get(i).filter(|p| p.start <= date).map(|_| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first_clipped_to_the_range() {
        // 2026-11-26 is a Thursday.
        let weeks = split(d(2026, 11, 26), d(2026, 12, 8), Granularity::Week);
        assert_eq!(
            weeks,
            [
                Period { start: d(2026, 11, 26), end: d(2026, 11, 29) },
                Period { start: d(2026, 11, 30), end: d(2026, 12, 6) },
                Period { start: d(2026, 12, 7), end: d(2026, 12, 8) },
            ]
        );
        let months = split(d(2026, 1, 15), d(2026, 3, 3), Granularity::Month);
        assert_eq!(
            months.iter().map(|p| (p.start, p.end)).collect::<Vec<_>>(),
            [(d(2026, 1, 15), d(2026, 1, 31)), (d(2026, 2, 1), d(2026, 2, 28)), (d(2026, 3, 1), d(2026, 3, 3)),]
        );
        assert_eq!(split(d(2026, 1, 1), d(2026, 1, 3), Granularity::Day).len(), 3);
        assert_eq!(split(d(2026, 1, 1), d(2026, 12, 31), Granularity::Whole).len(), 1);
        assert!(split(d(2026, 1, 2), d(2026, 1, 1), Granularity::Month).is_empty());
        assert_eq!(index_of(&months, d(2026, 2, 14)), Some(1));
        assert_eq!(index_of(&months, d(2026, 3, 4)), None);
        assert_eq!(index_of(&months, d(2026, 1, 14)), None);
    }

    proptest! {
        #[test]
        fn periods_tile_the_range(offset in 0u64..2000, length in 0u64..800, kind in 0usize..4) {
            let from = d(2024, 1, 1) + Days::new(offset);
            let to = from + Days::new(length);
            let granularity = [Granularity::Day, Granularity::Week, Granularity::Month, Granularity::Whole][kind];
            let periods = split(from, to, granularity);
            prop_assert_eq!(periods.first().map(|p| p.start), Some(from));
            prop_assert_eq!(periods.last().map(|p| p.end), Some(to));
            for pair in periods.windows(2) {
                prop_assert_eq!(pair[0].end.succ_opt(), Some(pair[1].start));
            }
            for p in &periods {
                prop_assert!(p.start <= p.end);
            }
        }
    }
}
