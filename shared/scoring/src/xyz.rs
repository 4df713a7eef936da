//! XYZ class (stability of demand) by the coefficient of variation.
//!
//! The series is the client's monthly revenue over the window months from the
//! month of its first-ever purchase (or the window start, if later) to the
//! window end; months without purchases count as 0, because a gap is exactly
//! the instability this class measures. CV = population standard deviation /
//! mean. X if CV <= 10 %, Y if CV <= 25 %, else Z (configurable).
//!
//! No class when: the client is *new* (seed 003: a new client has ABC but no
//! XYZ), the series has fewer than 3 months, or the mean is not positive
//! (returns exceeding sales).
//!
//! The class decision is exact: with n months, s = Σx and q = Σx², CV <= t
//! is `(n·q − s²)·10 000² <= t_bp²·s²` in i128 (falls back to f64 only if
//! that overflows), so a CV exactly on a threshold is classed as the rule
//! says and the class is invariant to scaling the amounts.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::settings::{FieldViolation, InvalidSettings, into_result};
use crate::window::AnalysisWindow;
use crate::{BasisPoints, FULL_SHARE_BP, Money};

/// Stability class of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum XyzClass {
    /// Stable: CV <= 10 % (default).
    X,
    /// Fluctuating (e.g. seasonal): CV <= 25 % (default).
    Y,
    /// Irregular.
    Z,
}

/// XYZ thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XyzThresholds {
    /// X if CV <= this (default 1 000 bp = 10 %).
    pub x_max_cv_bp: BasisPoints,
    /// Y if CV <= this (default 2 500 bp = 25 %), else Z.
    pub y_max_cv_bp: BasisPoints,
    /// Minimum number of months in the series (default 3).
    pub min_months: u32,
}

impl Default for XyzThresholds {
    fn default() -> Self {
        Self { x_max_cv_bp: 1_000, y_max_cv_bp: 2_500, min_months: 3 }
    }
}

/// Largest CV threshold accepted (1 000 %).
const MAX_CV_BP: BasisPoints = 100 * FULL_SHARE_BP;

impl XyzThresholds {
    /// Requires 0 < X < Y <= 1 000 % and at least 2 months (a deviation
    /// needs two points).
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut out = Vec::new();
        self.collect_violations("", &mut out);
        into_result(out)
    }

    pub(crate) fn collect_violations(&self, prefix: &str, out: &mut Vec<FieldViolation>) {
        let (x, y) = (self.x_max_cv_bp, self.y_max_cv_bp);
        if x == 0 || x >= MAX_CV_BP {
            out.push(FieldViolation::new(
                prefix,
                "x_max_cv_bp",
                format!("must be between 1 and {} basis points, got {x}", MAX_CV_BP - 1),
            ));
        }
        if y > MAX_CV_BP {
            out.push(FieldViolation::new(
                prefix,
                "y_max_cv_bp",
                format!("must be at most {MAX_CV_BP} basis points, got {y}"),
            ));
        } else if y <= x {
            out.push(FieldViolation::new(
                prefix,
                "y_max_cv_bp",
                format!("must be greater than x_max_cv_bp ({x}), got {y}"),
            ));
        }
        if self.min_months < 2 || self.min_months > crate::settings::MAX_MONTHS {
            out.push(FieldViolation::new(
                prefix,
                "min_months",
                format!("must be between 2 and {} months, got {}", crate::settings::MAX_MONTHS, self.min_months),
            ));
        }
    }
}

/// What the XYZ rule needs to know about one client.
#[derive(Debug, Clone, Copy)]
pub struct XyzInput<'a> {
    /// Net revenue per window month, oldest first (see
    /// [`AnalysisWindow::month_index`]); its length must be the window's
    /// month count.
    pub monthly_revenue: &'a [Money],
    /// First-ever purchase (may lie before the window); `None` = never bought.
    pub first_purchase: Option<NaiveDate>,
    /// The client's lifecycle status as of D is *new*.
    pub is_new: bool,
}

/// A computed class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct XyzOutcome {
    /// The class.
    pub class: XyzClass,
    /// Coefficient of variation as a fraction (0.1 = 10 %), for display.
    pub cv: f64,
    /// Months in the series.
    pub months: u32,
}

/// Why a client has no XYZ class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NoXyz {
    /// Never bought (potential client).
    #[error("no purchase yet")]
    NoPurchase,
    /// New clients get no XYZ yet.
    #[error("new client")]
    NewClient,
    /// Fewer than `min_months` months since the first purchase in the window.
    #[error("only {months} month(s) of history")]
    TooFewMonths {
        /// Months available.
        months: u32,
    },
    /// Mean monthly revenue <= 0 (e.g. returns exceed sales).
    #[error("mean monthly revenue is not positive")]
    NonPositiveMean,
    /// `monthly_revenue` length differs from the window's month count.
    #[error("monthly series has {got} months, window has {expected}")]
    SeriesLength {
        /// Window months.
        expected: u32,
        /// Series months given.
        got: u32,
    },
}

/// Sums monthly revenue per window month from dated amounts (convenience for
/// callers that do not aggregate in the database). Amounts outside the
/// window are ignored.
pub fn monthly_revenue(window: &AnalysisWindow, sales: impl IntoIterator<Item = (NaiveDate, Money)>) -> Vec<Money> {
    let mut months: Vec<Money> = vec![0; window.month_count()];
    for (date, amount) in sales {
        if let Some(slot) = window.month_index(date).and_then(|i| months.get_mut(i)) {
            *slot = slot.saturating_add(amount);
        }
    }
    months
}

fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// XYZ of one client.
pub fn classify_one(
    window: &AnalysisWindow,
    input: &XyzInput<'_>,
    thresholds: &XyzThresholds,
) -> Result<XyzOutcome, NoXyz> {
    if input.monthly_revenue.len() != window.month_count() {
        return Err(NoXyz::SeriesLength {
            expected: u32_len(window.month_count()),
            got: u32_len(input.monthly_revenue.len()),
        });
    }
    let first = input.first_purchase.ok_or(NoXyz::NoPurchase)?;
    if input.is_new {
        return Err(NoXyz::NewClient);
    }
    let from = if first <= window.start() {
        0
    } else {
        // After the window end (bought only in D's partial month): no months.
        window.month_index(first).unwrap_or(window.month_count())
    };
    let series = &input.monthly_revenue[from..];
    let months = u32_len(series.len());
    if months < thresholds.min_months {
        return Err(NoXyz::TooFewMonths { months });
    }
    let n = i128::from(months);
    let sum: i128 = series.iter().map(|&x| i128::from(x)).sum();
    if sum <= 0 {
        return Err(NoXyz::NonPositiveMean);
    }
    match exact_moments(series, n, sum) {
        Some(spread) => {
            // spread = n·q − s² = n²·variance, so CV = sqrt(spread) / s.
            let cv = (spread as f64).sqrt() / sum as f64;
            let class = exact_class(spread, sum, thresholds).unwrap_or_else(|| float_class(cv, thresholds));
            Ok(XyzOutcome { class, cv, months })
        }
        None => {
            let cv = float_cv(series);
            Ok(XyzOutcome { class: float_class(cv, thresholds), cv, months })
        }
    }
}

/// XYZ of every client, aligned with `inputs` (O(n · months)).
pub fn classify(
    window: &AnalysisWindow,
    inputs: &[XyzInput<'_>],
    thresholds: &XyzThresholds,
) -> Result<Vec<Result<XyzOutcome, NoXyz>>, InvalidSettings> {
    thresholds.validate()?;
    Ok(inputs.iter().map(|input| classify_one(window, input, thresholds)).collect())
}

/// n·Σx² − (Σx)², exactly, or `None` on overflow.
fn exact_moments(series: &[Money], n: i128, sum: i128) -> Option<i128> {
    let mut squares: i128 = 0;
    for &x in series {
        squares = squares.checked_add(i128::from(x).checked_mul(i128::from(x))?)?;
    }
    n.checked_mul(squares)?.checked_sub(sum.checked_mul(sum)?)
}

/// CV <= t  <=>  spread·10 000² <= t²·s² (all terms non-negative).
fn exact_class(spread: i128, sum: i128, thresholds: &XyzThresholds) -> Option<XyzClass> {
    let lhs = spread.checked_mul(i128::from(FULL_SHARE_BP).pow(2))?;
    let s2 = sum.checked_mul(sum)?;
    let within = |bp: BasisPoints| -> Option<bool> { Some(lhs <= i128::from(bp).pow(2).checked_mul(s2)?) };
    Some(if within(thresholds.x_max_cv_bp)? {
        XyzClass::X
    } else if within(thresholds.y_max_cv_bp)? {
        XyzClass::Y
    } else {
        XyzClass::Z
    })
}

fn float_class(cv: f64, thresholds: &XyzThresholds) -> XyzClass {
    let full = f64::from(FULL_SHARE_BP);
    if cv <= f64::from(thresholds.x_max_cv_bp) / full {
        XyzClass::X
    } else if cv <= f64::from(thresholds.y_max_cv_bp) / full {
        XyzClass::Y
    } else {
        XyzClass::Z
    }
}

/// Welford's algorithm, for amounts too large for the exact path.
fn float_cv(series: &[Money]) -> f64 {
    let mut mean = 0.0;
    let mut m2 = 0.0;
    for (i, &x) in series.iter().enumerate() {
        let x = x as f64;
        let k = (i + 1) as f64;
        let delta = x - mean;
        mean += delta / k;
        m2 += delta * (x - mean);
    }
    let variance = m2 / series.len() as f64;
    variance.max(0.0).sqrt() / mean
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Window 2025-11 ..= 2026-10 (as of 2026-11-23).
    fn window() -> AnalysisWindow {
        AnalysisWindow::as_of(d(2026, 11, 23), 12).unwrap()
    }

    fn old_client(series: &[Money]) -> XyzInput<'_> {
        XyzInput { monthly_revenue: series, first_purchase: Some(d(2020, 1, 1)), is_new: false }
    }

    fn run(input: &XyzInput<'_>) -> Result<XyzOutcome, NoXyz> {
        classify_one(&window(), input, &XyzThresholds::default())
    }

    #[test]
    fn cv_exactly_10_percent_is_x() {
        // 90,110 repeated: mean 100, deviations ±10, population variance 100,
        // std 10, CV = 10/100 = 10 % -> X (X is CV <= 10 %).
        let series = [90, 110, 90, 110, 90, 110, 90, 110, 90, 110, 90, 110];
        let out = run(&old_client(&series)).unwrap();
        assert_eq!(out.class, XyzClass::X);
        assert!((out.cv - 0.10).abs() < 1e-12);
        assert_eq!(out.months, 12);
    }

    #[test]
    fn cv_exactly_25_percent_is_y_and_above_is_z() {
        // 75,125: mean 100, std 25, CV 25 % -> Y.
        let series = [75, 125, 75, 125, 75, 125, 75, 125, 75, 125, 75, 125];
        assert_eq!(run(&old_client(&series)).unwrap().class, XyzClass::Y);
        // 74,126: std 26 -> CV 26 % -> Z.
        let series = [74, 126, 74, 126, 74, 126, 74, 126, 74, 126, 74, 126];
        assert_eq!(run(&old_client(&series)).unwrap().class, XyzClass::Z);
    }

    #[test]
    fn all_months_equal_is_x() {
        // CV = 0 / 50 = 0.
        let out = run(&old_client(&[50; 12])).unwrap();
        assert_eq!((out.class, out.cv), (XyzClass::X, 0.0));
    }

    #[test]
    fn series_starts_at_first_purchase_and_gaps_count_as_zero() {
        // First purchase 2026-07-15: series = Jul..Oct = [100, 0, 100, 100],
        // n = 4, mean 75, deviations 25,-75,25,25, squares 625+5625+625+625
        // = 7500, variance 1875, std 43.30, CV 57.7 % -> Z.
        let mut series = [0; 12];
        series[8] = 100; // 2026-07
        series[10] = 100; // 2026-09
        series[11] = 100; // 2026-10
        let input = XyzInput { first_purchase: Some(d(2026, 7, 15)), ..old_client(&series) };
        let out = run(&input).unwrap();
        assert_eq!((out.class, out.months), (XyzClass::Z, 4));
        assert!((out.cv - 1875f64.sqrt() / 75.0).abs() < 1e-12);
    }

    #[test]
    fn fewer_than_three_months() {
        // First purchase in 2026-09: series Sep..Oct = 2 months -> no XYZ.
        let input = XyzInput { first_purchase: Some(d(2026, 9, 30)), ..old_client(&[10; 12]) };
        assert_eq!(run(&input), Err(NoXyz::TooFewMonths { months: 2 }));
        // Bought only in D's partial month: 0 months.
        let input = XyzInput { first_purchase: Some(d(2026, 11, 2)), ..old_client(&[0; 12]) };
        assert_eq!(run(&input), Err(NoXyz::TooFewMonths { months: 0 }));
        // From 2026-08: exactly 3 months -> classed (CV 0).
        let input = XyzInput { first_purchase: Some(d(2026, 8, 1)), ..old_client(&[10; 12]) };
        assert_eq!(run(&input).unwrap().months, 3);
    }

    #[test]
    fn new_client_and_potential_client_have_no_xyz() {
        let series = [10; 12];
        let new = XyzInput { is_new: true, ..old_client(&series) };
        assert_eq!(run(&new), Err(NoXyz::NewClient));
        let potential = XyzInput { first_purchase: None, ..old_client(&series) };
        assert_eq!(run(&potential), Err(NoXyz::NoPurchase));
    }

    #[test]
    fn negative_or_zero_net_revenue() {
        // Returns exceed sales: sum = -30 -> mean < 0 -> no XYZ.
        let mut series = [0; 12];
        series[0] = 50;
        series[1] = -80;
        assert_eq!(run(&old_client(&series)), Err(NoXyz::NonPositiveMean));
        assert_eq!(run(&old_client(&[0; 12])), Err(NoXyz::NonPositiveMean));
        // A return month inside a positive series still counts:
        // [-10, 110, 100 x10]: s = 1100, mean 91.67, squared deviations
        // 10336.1 + 336.1 + 10 x 69.4 = 11366.7, variance 947.2, std 30.78,
        // CV 33.6 % -> Z.
        let mut series = [100; 12];
        series[0] = -10;
        series[1] = 110;
        assert_eq!(run(&old_client(&series)).unwrap().class, XyzClass::Z);
    }

    #[test]
    fn wrong_series_length() {
        assert_eq!(run(&old_client(&[10; 3])), Err(NoXyz::SeriesLength { expected: 12, got: 3 }));
    }

    #[test]
    fn huge_amounts_use_float_fallback() {
        // Σx² overflows i128 for values near i64::MAX / 2: the float path
        // still gives CV 0 for a constant series.
        let big = i64::MAX / 2;
        let out = run(&old_client(&[big; 12])).unwrap();
        assert_eq!(out.class, XyzClass::X);
        assert!(out.cv.abs() < 1e-9);
    }

    #[test]
    fn monthly_revenue_buckets_by_month_and_ignores_outside() {
        let w = window();
        let months = monthly_revenue(
            &w,
            [
                (d(2025, 11, 3), 10),
                (d(2025, 11, 30), -4), // return in the same month
                (d(2026, 10, 31), 7),
                (d(2026, 11, 1), 1_000), // D's month: outside
                (d(2025, 10, 31), 1_000),
            ],
        );
        assert_eq!(months.len(), 12);
        assert_eq!((months[0], months[11]), (6, 7));
        assert_eq!(months.iter().sum::<Money>(), 13);
    }

    #[test]
    fn batch_is_aligned_and_validates() {
        let a = [10; 12];
        let b = [0; 12];
        let out = classify(&window(), &[old_client(&a), old_client(&b)], &XyzThresholds::default()).unwrap();
        assert_eq!(out[0].map(|o| o.class), Ok(XyzClass::X));
        assert_eq!(out[1], Err(NoXyz::NonPositiveMean));
        let bad = XyzThresholds { x_max_cv_bp: 3_000, ..XyzThresholds::default() };
        assert!(classify(&window(), &[], &bad).is_err());
    }

    proptest! {
        #[test]
        fn cv_is_scale_invariant(
            series in prop::collection::vec(-1_000i64..100_000, 12),
            factor in 1i64..10_000,
        ) {
            let scaled: Vec<Money> = series.iter().map(|x| x * factor).collect();
            let a = run(&old_client(&series));
            let b = run(&old_client(&scaled));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.class, b.class);
                    prop_assert!((a.cv - b.cv).abs() <= 1e-9 * a.cv.max(1.0));
                }
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }
}
