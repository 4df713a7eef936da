//! Touchpoint weights (domain.md section 3; seed 002's QFD "beta weights"):
//! which touchpoints' satisfaction explains repeat purchases.
//!
//! One row per client: its mean 1-5 satisfaction with each touchpoint, and
//! whether it bought again (1) or not (0). The model is a linear probability
//! regression of the outcome on the touchpoint scores, every variable
//! standardised (mean 0, sample standard deviation 1), so each coefficient
//! is a *beta weight*: how many standard deviations the outcome moves per
//! standard deviation of that touchpoint's satisfaction, the others held
//! fixed. Standard errors are heteroskedasticity-robust (HC1: White's
//! sandwich scaled by n / (n - k - 1)), because a 0/1 outcome's variance
//! depends on the predictors; the 95% interval uses Student's t with
//! n - k - 1 degrees of freedom. *Importance* is each positive beta's share
//! of the positive betas (QFD-style relative weights).
//!
//! Touchpoints everyone rated the same explain nothing and are left out
//! with a note. A touchpoint that is an exact combination of others
//! (collinear) makes the weights undefined and is refused by name.
use serde::Serialize;

/// One touchpoint's weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TouchpointWeight {
    pub touchpoint: String,
    pub beta: f64,
    pub standard_error: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The 95% interval excludes zero.
    pub significant: bool,
    /// Share of the positive betas, 0-1.
    pub importance: f64,
    /// Mean 1-5 satisfaction over the rows.
    pub mean_score: f64,
}

/// The fitted model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    /// Highest beta first.
    pub weights: Vec<TouchpointWeight>,
    pub rows: usize,
    /// Share of rows that bought again.
    pub repeat_rate: f64,
    pub r_squared: f64,
    pub adjusted_r_squared: f64,
    /// Touchpoints left out, with why.
    pub notes: Vec<String>,
}

/// Why no weights can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegressionError {
    #[error("{rows} clients are too few to weigh {touchpoints} touchpoint(s): at least {needed} are needed")]
    TooFewRows { rows: usize, touchpoints: usize, needed: usize },
    #[error("every client {0}, so nothing can explain the difference")]
    NoOutcomeVariance(&'static str),
    #[error("no touchpoint varies between clients")]
    NoTouchpointVaries,
    #[error("touchpoint {0} is a combination of the others (collinear), so its weight is undefined")]
    Collinear(String),
    #[error("row {0} has {1} scores, expected one per touchpoint")]
    RowShape(usize, usize),
}

/// One client: a score per touchpoint (in `touchpoints` order) and the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub scores: Vec<f64>,
    pub bought_again: bool,
}

/// Fits the model; `min_rows` is the caller's floor (the model itself needs
/// at least touchpoints + 2 rows).
pub fn weigh(touchpoints: &[String], rows: &[Row], min_rows: usize) -> Result<Regression, RegressionError> {
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.scores.len() != touchpoints.len()) {
        return Err(RegressionError::RowShape(i, row.scores.len()));
    }
    let n = rows.len();
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    for (j, name) in touchpoints.iter().enumerate() {
        let column: Vec<f64> = rows.iter().map(|r| r.scores[j]).collect();
        if n > 1 && sample_sd(&column) > 1e-12 {
            kept.push((name.clone(), column));
        } else {
            notes.push(format!("{name}: every client rated it the same, so it explains nothing"));
        }
    }
    let needed = min_rows.max(kept.len() + 2);
    if n < needed {
        return Err(RegressionError::TooFewRows { rows: n, touchpoints: kept.len(), needed });
    }
    if kept.is_empty() {
        return Err(RegressionError::NoTouchpointVaries);
    }
    let y: Vec<f64> = rows.iter().map(|r| if r.bought_again { 1.0 } else { 0.0 }).collect();
    let repeat_rate = mean(&y);
    if repeat_rate == 0.0 {
        return Err(RegressionError::NoOutcomeVariance("did not buy again"));
    }
    if repeat_rate == 1.0 {
        return Err(RegressionError::NoOutcomeVariance("bought again"));
    }
    let k = kept.len();
    let z: Vec<Vec<f64>> = kept.iter().map(|(_, column)| standardised(column)).collect();
    let y = standardised(&y);
    // A = Z'Z and b = Z'y over the standardised columns (no intercept needed: all means are 0).
    let a: Vec<Vec<f64>> = (0..k).map(|i| (0..k).map(|j| dot(&z[i], &z[j])).collect()).collect();
    let b: Vec<f64> = (0..k).map(|i| dot(&z[i], &y)).collect();
    let factor = cholesky(&a).map_err(|j| RegressionError::Collinear(kept[j].0.clone()))?;
    let beta = solve(&factor, &b);
    let residuals: Vec<f64> = (0..n).map(|i| y[i] - (0..k).map(|j| z[j][i] * beta[j]).sum::<f64>()).collect();
    let rss: f64 = residuals.iter().map(|e| e * e).sum();
    let tss: f64 = y.iter().map(|v| v * v).sum();
    let df = n - k - 1;
    let r_squared = (1.0 - rss / tss).clamp(0.0, 1.0);
    let adjusted_r_squared = 1.0 - (1.0 - r_squared) * (n - 1) as f64 / df.max(1) as f64;
    // HC1: A^-1 (sum of e_i^2 z_i z_i') A^-1 x n / (n - k - 1).
    let inverse: Vec<Vec<f64>> = {
        let columns: Vec<Vec<f64>> =
            (0..k).map(|j| solve(&factor, &(0..k).map(|i| f64::from(u8::from(i == j))).collect::<Vec<_>>())).collect();
        (0..k).map(|i| (0..k).map(|j| columns[j][i]).collect()).collect()
    };
    let meat: Vec<Vec<f64>> = (0..k)
        .map(|p| (0..k).map(|q| (0..n).map(|i| residuals[i] * residuals[i] * z[p][i] * z[q][i]).sum()).collect())
        .collect();
    let sandwich = multiply(&multiply(&inverse, &meat), &inverse);
    let scale = n as f64 / df.max(1) as f64;
    let t = t_975(df.max(1));
    let positive: f64 = beta.iter().filter(|b| **b > 0.0).sum();
    let mut weights: Vec<TouchpointWeight> = kept
        .iter()
        .enumerate()
        .map(|(j, (name, column))| {
            let standard_error = (sandwich[j][j] * scale).max(0.0).sqrt();
            let (ci_low, ci_high) = (beta[j] - t * standard_error, beta[j] + t * standard_error);
            TouchpointWeight {
                touchpoint: name.clone(),
                beta: beta[j],
                standard_error,
                ci_low,
                ci_high,
                significant: ci_low > 0.0 || ci_high < 0.0,
                importance: if beta[j] > 0.0 && positive > 0.0 { beta[j] / positive } else { 0.0 },
                mean_score: mean(column),
            }
        })
        .collect();
    weights.sort_by(|a, b| b.beta.total_cmp(&a.beta).then_with(|| a.touchpoint.cmp(&b.touchpoint)));
    Ok(Regression { weights, rows: n, repeat_rate, r_squared, adjusted_r_squared, notes })
}

/// The model in words, for people reading the weights.
pub const METHOD: &str = "Linear probability regression of buying again (1/0) on each touchpoint's mean 1-5 \
satisfaction, all variables standardised (beta weights); HC1 robust standard errors; 95% intervals from \
Student's t with n - k - 1 degrees of freedom; importance = share of the positive betas.";

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn sample_sd(values: &[f64]) -> f64 {
    let m = mean(values);
    let squares: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    (squares / (values.len().max(2) - 1) as f64).sqrt()
}

fn standardised(values: &[f64]) -> Vec<f64> {
    let (m, sd) = (mean(values), sample_sd(values));
    values.iter().map(|v| (v - m) / sd).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn multiply(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let k = b.first().map_or(0, Vec::len);
    a.iter().map(|row| (0..k).map(|j| row.iter().zip(b).map(|(x, b_row)| x * b_row[j]).sum()).collect()).collect()
}

/// Lower-triangular L with A = L L'; `Err(j)` when column j depends on the earlier ones.
fn cholesky(a: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, usize> {
    let k = a.len();
    let mut l = vec![vec![0.0; k]; k];
    for j in 0..k {
        let pivot = a[j][j] - (0..j).map(|p| l[j][p] * l[j][p]).sum::<f64>();
        // Relative to the column's own size: the standardised columns have a[j][j] = n - 1.
        if pivot <= a[j][j] * 1e-10 {
            return Err(j);
        }
        l[j][j] = pivot.sqrt();
        for i in j + 1..k {
            l[i][j] = (a[i][j] - (0..j).map(|p| l[i][p] * l[j][p]).sum::<f64>()) / l[j][j];
        }
    }
    Ok(l)
}

/// Solves L L' x = b.
fn solve(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let k = l.len();
    let mut y = vec![0.0; k];
    for i in 0..k {
        y[i] = (b[i] - (0..i).map(|p| l[i][p] * y[p]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        x[i] = (y[i] - (i + 1..k).map(|p| l[p][i] * x[p]).sum::<f64>()) / l[i][i];
    }
    x
}

/// Student's t 97.5% quantile: exact to 6 decimals up to 30 degrees of
/// freedom, then the Cornish-Fisher expansion (error below 1e-7 there).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139, 2.200985,
        2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873,
        2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
    ];
    if let Some(t) = df.checked_sub(1).and_then(|i| TABLE.get(i)) {
        return *t;
    }
    let z = 1.959_963_984_540_054_f64;
    let v = df.max(1) as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v.powi(2))
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v.powi(3))
        + (79.0 * z.powi(9) + 776.0 * z.powi(7) + 1482.0 * z.powi(5) - 1920.0 * z.powi(3) - 945.0 * z)
            / (92160.0 * v.powi(4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn rows(x: &[[f64; 2]], y: &[u8]) -> Vec<Row> {
        x.iter().zip(y).map(|(x, y)| Row { scores: x.to_vec(), bought_again: *y == 1 }).collect()
    }

    /// Two touchpoints whose centred scores are orthogonal, so each beta is
    /// the plain correlation with the outcome:
    /// delivery centred -2 x4, +2 x4; payment alternates -2, +2;
    /// outcome 0 0 0 1 1 1 1 1 (mean 5/8, squares about the mean 15/8).
    /// r(delivery) = (4 x 2 - 1 x 2) / sqrt(32 x 15/8) = 6 / sqrt(60) = 0.774597;
    /// r(payment) = (3 x 2 - 2 x 2) / sqrt(60) = 2 / sqrt(60) = 0.258199;
    /// R^2 = (36 + 4) / 60 = 2/3; adjusted = 1 - (1/3) x 7/5 = 8/15.
    /// The robust errors below are the HC1 formula's (checked with numpy).
    fn orthogonal() -> (Vec<String>, Vec<Row>) {
        let x = [[1.0, 1.0], [1.0, 5.0], [1.0, 1.0], [1.0, 5.0], [5.0, 1.0], [5.0, 5.0], [5.0, 1.0], [5.0, 5.0]];
        (names(&["delivery", "payment"]), rows(&x, &[0, 0, 0, 1, 1, 1, 1, 1]))
    }

    #[test]
    fn orthogonal_touchpoints_weigh_their_correlation() {
        let (touchpoints, rows) = orthogonal();
        let fit = weigh(&touchpoints, &rows, 8).expect("fits");
        assert_eq!(fit.weights[0].touchpoint, "delivery");
        assert!((fit.weights[0].beta - 6.0 / 60f64.sqrt()).abs() < 1e-12);
        assert!((fit.weights[1].beta - 2.0 / 60f64.sqrt()).abs() < 1e-12);
        assert!((fit.r_squared - 2.0 / 3.0).abs() < 1e-12);
        assert!((fit.adjusted_r_squared - 8.0 / 15.0).abs() < 1e-12);
        assert_eq!(fit.repeat_rate, 0.625);
        // Importance: 6 / (6 + 2) and 2 / 8.
        assert!((fit.weights[0].importance - 0.75).abs() < 1e-12);
        assert!((fit.weights[1].importance - 0.25).abs() < 1e-12);
        assert_eq!(fit.weights[0].mean_score, 3.0);
        assert!((fit.weights[0].standard_error - 0.258_198_890).abs() < 1e-8, "{}", fit.weights[0].standard_error);
        assert!((fit.weights[1].standard_error - 0.258_198_890).abs() < 1e-8, "{}", fit.weights[1].standard_error);
        // t(0.975, 5) = 2.570582.
        let delivery = &fit.weights[0];
        assert!((delivery.ci_low - (delivery.beta - 2.570582 * delivery.standard_error)).abs() < 1e-12);
        assert!(delivery.significant);
        assert!(!fit.weights[1].significant);
    }

    #[test]
    fn refusals_say_why() {
        let (touchpoints, rows) = orthogonal();
        assert_eq!(
            weigh(&touchpoints, &rows, 30),
            Err(RegressionError::TooFewRows { rows: 8, touchpoints: 2, needed: 30 })
        );
        let everyone: Vec<Row> = rows.iter().map(|r| Row { bought_again: true, ..r.clone() }).collect();
        assert_eq!(weigh(&touchpoints, &everyone, 1), Err(RegressionError::NoOutcomeVariance("bought again")));
        let twin: Vec<Row> =
            rows.iter().map(|r| Row { scores: vec![r.scores[0], r.scores[0] * 0.5 + 1.0], ..r.clone() }).collect();
        assert_eq!(weigh(&touchpoints, &twin, 1), Err(RegressionError::Collinear("payment".into())));
        let flat: Vec<Row> = rows.iter().map(|r| Row { scores: vec![r.scores[0], 4.0], ..r.clone() }).collect();
        let fit = weigh(&touchpoints, &flat, 1).expect("fits without payment");
        assert_eq!(fit.weights.len(), 1);
        assert_eq!(fit.notes, ["payment: every client rated it the same, so it explains nothing"]);
        assert!(weigh(&touchpoints, &[Row { scores: vec![1.0], bought_again: true }], 1).is_err());
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        assert_eq!(t_975(1), 12.706205);
        assert_eq!(t_975(30), 2.042272);
        // scipy: t.ppf(0.975, 31) = 2.039513, 100 -> 1.983972, 1000 -> 1.962339.
        assert!((t_975(31) - 2.039513).abs() < 1e-6);
        assert!((t_975(100) - 1.983972).abs() < 1e-6);
        assert!((t_975(1000) - 1.962339).abs() < 1e-6);
    }

    fn dataset() -> impl Strategy<Value = Vec<(f64, f64, f64, bool)>> {
        proptest::collection::vec((1.0f64..=5.0, 1.0f64..=5.0, 1.0f64..=5.0, any::<bool>()), 20..60)
    }

    fn fit(data: &[(f64, f64, f64, bool)]) -> Result<Regression, RegressionError> {
        let rows: Vec<Row> = data.iter().map(|&(a, b, c, y)| Row { scores: vec![a, b, c], bought_again: y }).collect();
        weigh(&names(&["a", "b", "c"]), &rows, 10)
    }

    proptest! {
        #[test]
        fn weights_do_not_depend_on_row_order_or_on_each_scales_units(data in dataset(), shift in -2.0f64..2.0, stretch in 0.5f64..3.0) {
            let Ok(base) = fit(&data) else { return Ok(()) };
            prop_assert!((0.0..=1.0).contains(&base.r_squared));
            let mut reversed = data.clone();
            reversed.reverse();
            let rescaled: Vec<_> = data.iter().map(|&(a, b, c, y)| (a * stretch + shift, b, c, y)).collect();
            for other in [fit(&reversed).expect("fits"), fit(&rescaled).expect("fits")] {
                for w in &base.weights {
                    let same = other.weights.iter().find(|o| o.touchpoint == w.touchpoint).expect("same touchpoints");
                    prop_assert!((same.beta - w.beta).abs() < 1e-7);
                    prop_assert!((same.standard_error - w.standard_error).abs() < 1e-7);
                }
            }
            let shares: f64 = base.weights.iter().map(|w| w.importance).sum();
            prop_assert!(shares == 0.0 || (shares - 1.0).abs() < 1e-9);
            prop_assert!(base.weights.windows(2).all(|p| p[0].beta >= p[1].beta));
        }
    }
}
