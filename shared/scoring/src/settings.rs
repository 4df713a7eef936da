//! All tunable numbers of the scoring rules in one place, with the defaults of
//! domain.md, so a company can change them without a code change and the
//! service can reject a bad configuration field by field (gRPC
//! `INVALID_ARGUMENT` with one field violation per problem).

use serde::{Deserialize, Serialize};

use crate::abc::AbcThresholds;
use crate::clustering::ClusteringSettings;
use crate::score::ScoreSettings;
use crate::xyz::XyzThresholds;

/// One problem with one settings field; maps 1:1 to a gRPC
/// `BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// Dotted path of the field, e.g. `score.bands[2].min_score`.
    pub field: String,
    /// Human readable reason.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field` (a path relative to `prefix`, joined with `.`).
    pub fn new(prefix: &str, field: &str, description: impl Into<String>) -> Self {
        let field = if prefix.is_empty() {
            field.to_owned()
        } else if field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{field}")
        };
        Self { field, description: description.into() }
    }
}

/// Settings were rejected; carries every field violation found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scoring settings: {}", summary(.0))]
pub struct InvalidSettings(pub Vec<FieldViolation>);

fn summary(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

/// Turns collected violations into a result.
pub(crate) fn into_result(violations: Vec<FieldViolation>) -> Result<(), InvalidSettings> {
    if violations.is_empty() { Ok(()) } else { Err(InvalidSettings(violations)) }
}

/// Longest analysis window / lifecycle period accepted, in months (ten
/// years); longer ones are almost certainly a unit mistake.
pub const MAX_MONTHS: u32 = 120;

/// Everything configurable in the scoring of clients. `Default` is domain.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSettings {
    /// Length of the analysis window in full calendar months before the
    /// month of the as-of date (default 12).
    pub window_months: u32,
    /// ABC thresholds on the prior share (default 50 % / 80 %).
    pub abc: AbcThresholds,
    /// XYZ thresholds on the coefficient of variation (default 10 % / 25 %).
    pub xyz: XyzThresholds,
    /// Lifecycle period P in calendar months (default 3).
    pub lifecycle_period_months: u32,
    /// Client score weights, component mappings and bands.
    pub score: ScoreSettings,
    /// Behavioural clusters (k-means).
    pub clustering: ClusteringSettings,
    /// Basket rules rarer than this share of baskets are noise (default 1%).
    pub basket_min_support: f64,
}

impl Default for ScoringSettings {
    fn default() -> Self {
        Self {
            window_months: 12,
            abc: AbcThresholds::default(),
            xyz: XyzThresholds::default(),
            lifecycle_period_months: 3,
            score: ScoreSettings::default(),
            clustering: ClusteringSettings::default(),
            basket_min_support: 0.01,
        }
    }
}

impl ScoringSettings {
    /// Checks every field; returns all violations at once (field paths are
    /// relative to this struct, e.g. `abc.b_prior_share_below_bp`).
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut out = Vec::new();
        validate_months("", "window_months", self.window_months, &mut out);
        validate_months("", "lifecycle_period_months", self.lifecycle_period_months, &mut out);
        self.abc.collect_violations("abc", &mut out);
        self.xyz.collect_violations("xyz", &mut out);
        self.score.collect_violations("score", &mut out);
        if !(self.basket_min_support > 0.0 && self.basket_min_support <= 1.0) {
            out.push(FieldViolation::new(
                "",
                "basket_min_support",
                format!("must be in (0, 1], got {}", self.basket_min_support),
            ));
        }
        if let Err(InvalidSettings(violations)) = self.clustering.validate() {
            out.extend(
                violations.into_iter().map(|v| FieldViolation { field: format!("clustering.{}", v.field), ..v }),
            );
        }
        into_result(out)
    }
}

pub(crate) fn validate_months(prefix: &str, field: &str, months: u32, out: &mut Vec<FieldViolation>) {
    if months == 0 || months > MAX_MONTHS {
        out.push(FieldViolation::new(
            prefix,
            field,
            format!("must be between 1 and {MAX_MONTHS} months, got {months}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_domain_md_and_valid() {
        let s = ScoringSettings::default();
        assert_eq!(s.window_months, 12);
        assert_eq!(s.lifecycle_period_months, 3);
        assert_eq!(s.abc.a_prior_share_below_bp, 5_000);
        assert_eq!(s.abc.b_prior_share_below_bp, 8_000);
        assert_eq!(s.xyz.x_max_cv_bp, 1_000);
        assert_eq!(s.xyz.y_max_cv_bp, 2_500);
        assert_eq!(s.xyz.min_months, 3);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn all_violations_reported_with_field_paths() {
        let mut s = ScoringSettings { window_months: 0, lifecycle_period_months: 500, ..ScoringSettings::default() };
        s.abc.a_prior_share_below_bp = 9_000; // above b (8 000)
        s.xyz.y_max_cv_bp = 500; // below x (1 000)
        s.score.weights.rfm = -1.0;
        s.score.bands.clear();
        let err = s.validate().unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "window_months",
                "lifecycle_period_months",
                "abc.b_prior_share_below_bp",
                "xyz.y_max_cv_bp",
                "score.weights.rfm",
                "score.bands",
            ]
        );
        assert!(err.to_string().contains("window_months: must be between 1 and 120"));
    }

    #[test]
    fn serde_round_trip_and_partial_config() {
        let s = ScoringSettings::default();
        let json = serde_json::to_string(&s).unwrap();
        let back: ScoringSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // A partial config keeps the defaults for everything else.
        let partial: ScoringSettings =
            serde_json::from_str(r#"{"window_months": 6, "abc": {"b_prior_share_below_bp": 9500}}"#).unwrap();
        assert_eq!(partial.window_months, 6);
        assert_eq!(partial.abc.a_prior_share_below_bp, 5_000);
        assert_eq!(partial.abc.b_prior_share_below_bp, 9_500);
        assert_eq!(partial.score, ScoreSettings::default());
    }

    #[test]
    fn unknown_field_is_rejected() {
        assert!(serde_json::from_str::<ScoringSettings>(r#"{"window_month": 6}"#).is_err());
    }
}
