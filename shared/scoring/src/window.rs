//! Time frames of a score computed *as of* a date D.
//!
//! * The **analysis window** is the N full calendar months before D's month
//!   (default 12): only complete months, so a score does not drift with the
//!   day of the month. D = 2026-11-23 gives 2025-11-01 ..= 2026-10-31.
//! * The **lifecycle periods** are C = (D - P, D] (current) and
//!   V = (D - 2P, D - P] (previous), P in calendar months (default 3). They end
//!   on D itself, because "bought in the last three months" includes today.
//!   D - P and D - 2P are both computed directly from D (chrono clamps the day
//!   to the month's length: 2026-05-31 - 3 months = 2026-02-28).

use std::fmt;

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::settings::MAX_MONTHS;

/// A window or period could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Length must be 1..=[`MAX_MONTHS`].
    #[error("length must be between 1 and {MAX_MONTHS} months, got {0}")]
    InvalidLength(u32),
    /// The date arithmetic left chrono's supported range.
    #[error("date out of range")]
    OutOfRange,
}

/// A calendar month, e.g. 2026-10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct YearMonth {
    /// Calendar year.
    pub year: i32,
    /// Month 1..=12.
    pub month: u32,
}

impl YearMonth {
    /// The month a date falls in.
    pub fn of(date: NaiveDate) -> Self {
        Self { year: date.year(), month: date.month() }
    }

    /// Months since year 0 (a linear index to subtract months cheaply).
    fn ordinal(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }

    fn from_ordinal(ordinal: i64) -> Option<Self> {
        let year = i32::try_from(ordinal.div_euclid(12)).ok()?;
        let month = u32::try_from(ordinal.rem_euclid(12) + 1).ok()?;
        Some(Self { year, month })
    }

    /// First day of the month.
    pub fn first_day(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The analysis window: full calendar months before the as-of month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisWindow {
    as_of: NaiveDate,
    first_month: YearMonth,
    months: u32,
    start: NaiveDate,
    end: NaiveDate,
}

impl AnalysisWindow {
    /// The `months` full calendar months before the month of `as_of`.
    pub fn as_of(as_of: NaiveDate, months: u32) -> Result<Self, WindowError> {
        if months == 0 || months > MAX_MONTHS {
            return Err(WindowError::InvalidLength(months));
        }
        let as_of_month = YearMonth::of(as_of);
        let first_month =
            YearMonth::from_ordinal(as_of_month.ordinal() - i64::from(months)).ok_or(WindowError::OutOfRange)?;
        let start = first_month.first_day().ok_or(WindowError::OutOfRange)?;
        let end = as_of_month.first_day().and_then(|d| d.pred_opt()).ok_or(WindowError::OutOfRange)?;
        Ok(Self { as_of, first_month, months, start, end })
    }

    /// The as-of date D.
    pub fn as_of_date(&self) -> NaiveDate {
        self.as_of
    }

    /// First day of the window (inclusive).
    pub fn start(&self) -> NaiveDate {
        self.start
    }

    /// Last day of the window (inclusive): the day before D's month starts.
    pub fn end(&self) -> NaiveDate {
        self.end
    }

    /// Number of months in the window.
    pub fn month_count(&self) -> usize {
        // u32 -> usize is lossless on every supported target.
        self.months as usize
    }

    /// Whether a business date falls inside the window.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end
    }

    /// Position (0 = oldest) of the month `date` falls in, if inside the window;
    /// used to bucket transactions into monthly revenue in O(1).
    pub fn month_index(&self, date: NaiveDate) -> Option<usize> {
        let offset = YearMonth::of(date).ordinal() - self.first_month.ordinal();
        if (0..i64::from(self.months)).contains(&offset) { usize::try_from(offset).ok() } else { None }
    }

    /// The window's months, oldest first.
    pub fn months(&self) -> Vec<YearMonth> {
        let first = self.first_month.ordinal();
        (0..i64::from(self.months)).filter_map(|i| YearMonth::from_ordinal(first + i)).collect()
    }
}

/// The lifecycle periods C = (D - P, D] and V = (D - 2P, D - P].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecyclePeriods {
    as_of: NaiveDate,
    current_after: NaiveDate,
    previous_after: NaiveDate,
}

impl LifecyclePeriods {
    /// Periods as of D with P = `period_months` calendar months.
    pub fn as_of(as_of: NaiveDate, period_months: u32) -> Result<Self, WindowError> {
        if period_months == 0 || period_months > MAX_MONTHS {
            return Err(WindowError::InvalidLength(period_months));
        }
        let current_after = as_of.checked_sub_months(Months::new(period_months)).ok_or(WindowError::OutOfRange)?;
        let previous_after = as_of.checked_sub_months(Months::new(period_months * 2)).ok_or(WindowError::OutOfRange)?;
        Ok(Self { as_of, current_after, previous_after })
    }

    /// D, the inclusive end of C.
    pub fn as_of_date(&self) -> NaiveDate {
        self.as_of
    }

    /// D - P: C starts the day after; it is the inclusive end of V.
    pub fn current_after(&self) -> NaiveDate {
        self.current_after
    }

    /// D - 2P: V starts the day after.
    pub fn previous_after(&self) -> NaiveDate {
        self.previous_after
    }

    /// `date` in C = (D - P, D].
    pub fn in_current(&self, date: NaiveDate) -> bool {
        self.current_after < date && date <= self.as_of
    }

    /// `date` in V = (D - 2P, D - P].
    pub fn in_previous(&self, date: NaiveDate) -> bool {
        self.previous_after < date && date <= self.current_after
    }

    /// `date` on or before D - 2P (before V).
    pub fn before_previous(&self, date: NaiveDate) -> bool {
        date <= self.previous_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn domain_example_window() {
        // D = 2026-11-23: D's month is 2026-11, the 12 months before are
        // 2025-11 .. 2026-10 -> 2025-11-01 ..= 2026-10-31.
        let w = AnalysisWindow::as_of(d(2026, 11, 23), 12).unwrap();
        assert_eq!(w.start(), d(2025, 11, 1));
        assert_eq!(w.end(), d(2026, 10, 31));
        assert_eq!(w.month_count(), 12);
        let months: Vec<String> = w.months().iter().map(|m| m.to_string()).collect();
        assert_eq!(months.first().map(String::as_str), Some("2025-11"));
        assert_eq!(months.last().map(String::as_str), Some("2026-10"));
        assert_eq!(months.len(), 12);
    }

    #[test]
    fn window_on_first_day_of_january_and_short_window() {
        // D = 2026-01-01: 12 months before January 2026 = calendar year 2025.
        let w = AnalysisWindow::as_of(d(2026, 1, 1), 12).unwrap();
        assert_eq!((w.start(), w.end()), (d(2025, 1, 1), d(2025, 12, 31)));
        // 3 months before 2026-03: 2025-12 ..= 2026-02 (non-leap February).
        let w = AnalysisWindow::as_of(d(2026, 3, 31), 3).unwrap();
        assert_eq!((w.start(), w.end()), (d(2025, 12, 1), d(2026, 2, 28)));
    }

    #[test]
    fn month_index_and_contains() {
        let w = AnalysisWindow::as_of(d(2026, 11, 23), 12).unwrap();
        assert_eq!(w.month_index(d(2025, 11, 1)), Some(0));
        assert_eq!(w.month_index(d(2026, 10, 31)), Some(11));
        assert_eq!(w.month_index(d(2025, 10, 31)), None);
        // The current partial month is outside the window.
        assert_eq!(w.month_index(d(2026, 11, 1)), None);
        assert!(!w.contains(d(2026, 11, 1)));
        assert!(w.contains(d(2026, 2, 14)));
    }

    #[test]
    fn invalid_length() {
        assert_eq!(AnalysisWindow::as_of(d(2026, 1, 1), 0), Err(WindowError::InvalidLength(0)));
        assert_eq!(LifecyclePeriods::as_of(d(2026, 1, 1), 0), Err(WindowError::InvalidLength(0)));
    }

    #[test]
    fn lifecycle_periods() {
        // D = 2026-11-23, P = 3: C = (2026-08-23, 2026-11-23],
        // V = (2026-05-23, 2026-08-23].
        let p = LifecyclePeriods::as_of(d(2026, 11, 23), 3).unwrap();
        assert_eq!(p.current_after(), d(2026, 8, 23));
        assert_eq!(p.previous_after(), d(2026, 5, 23));
        assert!(!p.in_current(d(2026, 8, 23)));
        assert!(p.in_current(d(2026, 8, 24)));
        assert!(p.in_current(d(2026, 11, 23)));
        assert!(!p.in_current(d(2026, 11, 24)));
        assert!(p.in_previous(d(2026, 8, 23)));
        assert!(!p.in_previous(d(2026, 5, 23)));
        assert!(p.before_previous(d(2026, 5, 23)));
    }

    #[test]
    fn lifecycle_periods_clamp_month_end_from_d() {
        // D = 2026-05-31, P = 3: D - 3 months = 2026-02-28 (clamped),
        // D - 6 months = 2025-11-30 (computed from D, not from 2026-02-28).
        let p = LifecyclePeriods::as_of(d(2026, 5, 31), 3).unwrap();
        assert_eq!(p.current_after(), d(2026, 2, 28));
        assert_eq!(p.previous_after(), d(2025, 11, 30));
    }
}
