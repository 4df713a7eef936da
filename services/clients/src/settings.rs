//! Scoring settings between the API's messages and the scoring crate. Pure.
//!
//! A settings message may leave parts out: an absent sub-message or a zero
//! month count keeps the default of domain.md; a present sub-message is taken
//! whole (a weight of 0 switches its component off). Whatever results is
//! validated by the crate, and its complaints come back with the request's
//! field paths.
use crate::store::settings::StoredSettings;
use branchscore_platform::error::FieldViolation;
use branchscore_proto::clients::v1 as pb;
use branchscore_proto::common::v1::Date;
use branchscore_scoring::ScoringSettings;
use branchscore_scoring::abc::AbcThresholds;
use branchscore_scoring::clustering::ClusterCount;
use branchscore_scoring::score::{ScoreBand, ScoreWeights};
use branchscore_scoring::xyz::XyzThresholds;

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// The crate's settings from a request (defaults for what is left out).
pub fn from_proto(message: &pb::ScoringSettings) -> ScoringSettings {
    let mut settings = ScoringSettings::default();
    if message.window_months != 0 {
        settings.window_months = count(message.window_months);
    }
    if message.lifecycle_period_months != 0 {
        settings.lifecycle_period_months = count(message.lifecycle_period_months);
    }
    if let Some(abc) = &message.abc {
        settings.abc = AbcThresholds {
            a_prior_share_below_bp: count(abc.a_prior_share_below_bp),
            b_prior_share_below_bp: count(abc.b_prior_share_below_bp),
        };
    }
    if let Some(xyz) = &message.xyz {
        settings.xyz = XyzThresholds {
            x_max_cv_bp: count(xyz.x_max_cv_bp),
            y_max_cv_bp: count(xyz.y_max_cv_bp),
            min_months: count(xyz.min_months),
        };
    }
    if let Some(w) = &message.weights {
        settings.score.weights = ScoreWeights {
            value: w.value,
            stability: w.stability,
            rfm: w.rfm,
            lifecycle: w.lifecycle,
            maturity: w.maturity,
            satisfaction: w.satisfaction,
        };
    }
    if !message.bands.is_empty() {
        settings.score.bands =
            message.bands.iter().map(|b| ScoreBand { label: b.label.clone(), min_score: b.min_score }).collect();
    }
    if let Some(clustering) = &message.clustering {
        use pb::clustering_settings::Clusters;
        match &clustering.clusters {
            Some(Clusters::FixedK(k)) => {
                settings.clustering.clusters = ClusterCount::Fixed { k: usize::try_from(*k).unwrap_or(0) }
            }
            Some(Clusters::SilhouetteRange(range)) => {
                settings.clustering.clusters = ClusterCount::BySilhouette {
                    min_k: usize::try_from(range.min_k).unwrap_or(0),
                    max_k: usize::try_from(range.max_k).unwrap_or(0),
                }
            }
            None => {}
        }
        settings.clustering.seed = clustering.seed;
    }
    if message.basket_min_support != 0.0 {
        settings.basket_min_support = message.basket_min_support;
    }
    settings
}

fn signed(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub fn to_proto(settings: &ScoringSettings) -> pb::ScoringSettings {
    use pb::clustering_settings::Clusters;
    let w = &settings.score.weights;
    pb::ScoringSettings {
        window_months: signed(settings.window_months),
        lifecycle_period_months: signed(settings.lifecycle_period_months),
        abc: Some(pb::AbcThresholds {
            a_prior_share_below_bp: signed(settings.abc.a_prior_share_below_bp),
            b_prior_share_below_bp: signed(settings.abc.b_prior_share_below_bp),
        }),
        xyz: Some(pb::XyzThresholds {
            x_max_cv_bp: signed(settings.xyz.x_max_cv_bp),
            y_max_cv_bp: signed(settings.xyz.y_max_cv_bp),
            min_months: signed(settings.xyz.min_months),
        }),
        weights: Some(pb::ScoreWeights {
            value: w.value,
            stability: w.stability,
            rfm: w.rfm,
            lifecycle: w.lifecycle,
            maturity: w.maturity,
            satisfaction: w.satisfaction,
        }),
        bands: settings
            .score
            .bands
            .iter()
            .map(|b| pb::ScoreBand { label: b.label.clone(), min_score: b.min_score })
            .collect(),
        clustering: Some(pb::ClusteringSettings {
            clusters: Some(match settings.clustering.clusters {
                ClusterCount::Fixed { k } => Clusters::FixedK(i32::try_from(k).unwrap_or(i32::MAX)),
                ClusterCount::BySilhouette { min_k, max_k } => Clusters::SilhouetteRange(pb::ClusterRange {
                    min_k: i32::try_from(min_k).unwrap_or(i32::MAX),
                    max_k: i32::try_from(max_k).unwrap_or(i32::MAX),
                }),
            }),
            seed: settings.clustering.seed,
        }),
        basket_min_support: settings.basket_min_support,
    }
}

pub fn version_to_proto(stored: &StoredSettings) -> pb::ScoringSettingsVersion {
    pb::ScoringSettingsVersion {
        version: stored.version,
        effective_from: (stored.version > 0).then(|| Date::from(stored.effective_from)),
        settings: Some(to_proto(&stored.settings)),
        created_by: stored.created_by.clone(),
        create_time: stored.created_at.map(branchscore_proto::convert::timestamp),
        comment: stored.comment.clone(),
    }
}

/// The crate's field path as the request names it (under `settings.`).
pub fn request_field(crate_path: &str) -> String {
    let path = crate_path
        .strip_prefix("score.")
        .filter(|rest| rest.starts_with("weights") || rest.starts_with("bands"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            crate_path
                .replace("clustering.clusters.k", "clustering.fixed_k")
                .replace("clustering.clusters.", "clustering.silhouette_range.")
        });
    format!("settings.{path}")
}

/// Settings from a request, or every problem with them.
pub fn validated(message: &pb::ScoringSettings) -> Result<ScoringSettings, Vec<FieldViolation>> {
    let settings = from_proto(message);
    settings.validate().map(|()| settings).map_err(|invalid| {
        invalid
            .0
            .into_iter()
            .map(|v| FieldViolation { field: request_field(&v.field), description: v.description })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_the_message() {
        let defaults = ScoringSettings::default();
        assert_eq!(from_proto(&to_proto(&defaults)), defaults);
        assert_eq!(from_proto(&pb::ScoringSettings::default()), defaults);
    }

    #[test]
    fn present_parts_replace_defaults_and_bad_values_name_request_fields() {
        let message = pb::ScoringSettings {
            window_months: 6,
            abc: Some(pb::AbcThresholds { a_prior_share_below_bp: 8_000, b_prior_share_below_bp: 9_500 }),
            ..pb::ScoringSettings::default()
        };
        let settings = validated(&message).expect("valid");
        assert_eq!(settings.window_months, 6);
        assert_eq!(settings.abc.b_prior_share_below_bp, 9_500);
        assert_eq!(settings.xyz, XyzThresholds::default());

        let bad = pb::ScoringSettings {
            window_months: 500,
            weights: Some(pb::ScoreWeights { rfm: -1.0, ..pb::ScoreWeights::default() }),
            clustering: Some(pb::ClusteringSettings {
                clusters: Some(pb::clustering_settings::Clusters::FixedK(0)),
                seed: 1,
            }),
            ..pb::ScoringSettings::default()
        };
        let fields: Vec<String> = validated(&bad).expect_err("invalid").into_iter().map(|v| v.field).collect();
        assert!(fields.contains(&"settings.window_months".to_owned()), "{fields:?}");
        assert!(fields.contains(&"settings.weights.rfm".to_owned()), "{fields:?}");
        assert!(fields.contains(&"settings.clustering.fixed_k".to_owned()), "{fields:?}");
    }
}
