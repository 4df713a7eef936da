//! Staff evaluation (domain.md section 3): BARS ratings, dialog checklists
//! and the quality score of an employee in a period.
//!
//! * **BARS**: a competency is rated 1-5, each level anchored by a described
//!   behaviour. A source's BARS score is the mean level of its ratings as
//!   0-100: (mean - 1) / 4 x 100.
//! * **Dialog checklist**: criteria with weights; a reviewed dialog meets,
//!   misses or gives no occasion for each. Script compliance = weight met /
//!   weight applicable x 100 (not-applicable criteria count on neither side).
//!   The dialogs' score is the mean compliance of the period's reviews.
//! * **Quality score**: the weighted mean of the sources present (manager,
//!   quality control, mystery shopper, dialogs; default weights 25, 25, 20,
//!   30). An absent source passes its weight on to the others, so the
//!   score is always 0-100 and every contribution is shown.
use serde::{Deserialize, Serialize};

/// Levels of a BARS scale.
pub const BARS_LEVELS: u8 = 5;

/// Where a quality judgement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualitySource {
    Manager,
    QualityControl,
    MysteryShopper,
    Dialogs,
}

impl QualitySource {
    pub const ALL: [QualitySource; 4] =
        [QualitySource::Manager, QualitySource::QualityControl, QualitySource::MysteryShopper, QualitySource::Dialogs];

    pub fn name(self) -> &'static str {
        match self {
            QualitySource::Manager => "manager",
            QualitySource::QualityControl => "quality_control",
            QualitySource::MysteryShopper => "mystery_shopper",
            QualitySource::Dialogs => "dialogs",
        }
    }
}

/// Relative weights of the sources (any non-negative scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityWeights {
    pub manager: f64,
    pub quality_control: f64,
    pub mystery_shopper: f64,
    pub dialogs: f64,
}

impl Default for QualityWeights {
    fn default() -> Self {
        QualityWeights { manager: 25.0, quality_control: 25.0, mystery_shopper: 20.0, dialogs: 30.0 }
    }
}

impl QualityWeights {
    pub fn of(&self, source: QualitySource) -> f64 {
        match source {
            QualitySource::Manager => self.manager,
            QualitySource::QualityControl => self.quality_control,
            QualitySource::MysteryShopper => self.mystery_shopper,
            QualitySource::Dialogs => self.dialogs,
        }
    }

    /// Every weight finite and non-negative, and at least one positive.
    pub fn is_valid(&self) -> bool {
        let weights = QualitySource::ALL.map(|s| self.of(s));
        weights.iter().all(|w| w.is_finite() && *w >= 0.0) && weights.iter().any(|w| *w > 0.0)
    }
}

/// The mean of BARS levels (1-5) as 0-100; `None` without ratings.
pub fn bars_score(levels: &[u8]) -> Option<f64> {
    if levels.is_empty() {
        return None;
    }
    let mean = levels.iter().map(|&l| f64::from(l)).sum::<f64>() / levels.len() as f64;
    Some(((mean - 1.0) / f64::from(BARS_LEVELS - 1) * 100.0).clamp(0.0, 100.0))
}

/// How one checklist criterion went in a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionOutcome {
    Met,
    Missed,
    NotApplicable,
}

/// Weight met / weight applicable x 100; `None` when nothing applied.
pub fn script_compliance(results: &[(u32, CriterionOutcome)]) -> Option<f64> {
    let (met, applicable) = results.iter().fold((0u64, 0u64), |(met, applicable), &(weight, outcome)| {
        let weight = u64::from(weight);
        match outcome {
            CriterionOutcome::Met => (met + weight, applicable + weight),
            CriterionOutcome::Missed => (met, applicable + weight),
            CriterionOutcome::NotApplicable => (met, applicable),
        }
    });
    (applicable > 0).then(|| met as f64 / applicable as f64 * 100.0)
}

/// One source's part in the quality score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityComponent {
    pub source: QualitySource,
    pub weight: f64,
    /// Share of the total weight of the present sources (0 when absent).
    pub effective_weight: f64,
    /// 0-100; `None` when the source has nothing in the period.
    pub score: Option<f64>,
    /// effective_weight x score.
    pub contribution: f64,
}

/// The quality score and how it is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityScore {
    /// 0-100; `None` when no source is present (or all present ones weigh 0).
    pub total: Option<f64>,
    pub components: Vec<QualityComponent>,
}

/// Combines the sources' 0-100 scores (`None` = absent) by `weights`.
pub fn quality_score(weights: &QualityWeights, scores: impl Fn(QualitySource) -> Option<f64>) -> QualityScore {
    let present_weight: f64 = QualitySource::ALL.iter().filter(|s| scores(**s).is_some()).map(|s| weights.of(*s)).sum();
    let components: Vec<QualityComponent> = QualitySource::ALL
        .iter()
        .map(|&source| {
            let score = scores(source).map(|s| s.clamp(0.0, 100.0));
            let effective_weight =
                if score.is_some() && present_weight > 0.0 { weights.of(source) / present_weight } else { 0.0 };
            QualityComponent {
                source,
                weight: weights.of(source),
                effective_weight,
                score,
                contribution: effective_weight * score.unwrap_or(0.0),
            }
        })
        .collect();
    let total = (present_weight > 0.0).then(|| components.iter().map(|c| c.contribution).sum());
    QualityScore { total, components }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bars_levels_map_onto_0_to_100() {
        assert_eq!(bars_score(&[1]), Some(0.0));
        assert_eq!(bars_score(&[5]), Some(100.0));
        // Mean 3.5 -> 2.5 / 4 = 62.5.
        assert_eq!(bars_score(&[3, 4, 4, 3]), Some(62.5));
        assert_eq!(bars_score(&[]), None);
    }

    #[test]
    fn script_compliance_weighs_criteria_and_leaves_out_what_did_not_apply() {
        use CriterionOutcome::*;
        // Greeting 10 met, needs 30 met, objections 20 n/a, close 40 missed: 40 / 80 = 50%.
        let results = [(10, Met), (30, Met), (20, NotApplicable), (40, Missed)];
        assert_eq!(script_compliance(&results), Some(50.0));
        assert_eq!(script_compliance(&[(5, NotApplicable)]), None);
        assert_eq!(script_compliance(&[(5, Met), (5, Met)]), Some(100.0));
    }

    #[test]
    fn absent_sources_pass_their_weight_on() {
        let weights = QualityWeights::default();
        // Manager 80 and dialogs 50 present: weights 25 and 30 of 55.
        let score = quality_score(&weights, |source| match source {
            QualitySource::Manager => Some(80.0),
            QualitySource::Dialogs => Some(50.0),
            _ => None,
        });
        let expected = 80.0 * 25.0 / 55.0 + 50.0 * 30.0 / 55.0;
        assert!((score.total.expect("present") - expected).abs() < 1e-9);
        assert_eq!(score.components[1].effective_weight, 0.0);
        assert_eq!(score.components[1].score, None);
        assert!((score.components[0].effective_weight - 25.0 / 55.0).abs() < 1e-12);
        assert_eq!(quality_score(&weights, |_| None).total, None);
        // All four present at the default weights.
        let all = quality_score(&weights, |source| match source {
            QualitySource::Manager => Some(100.0),
            QualitySource::QualityControl => Some(50.0),
            QualitySource::MysteryShopper => Some(0.0),
            QualitySource::Dialogs => Some(80.0),
        });
        assert!((all.total.expect("present") - (25.0 + 12.5 + 0.0 + 24.0)).abs() < 1e-9);
    }

    #[test]
    fn weights_must_be_usable() {
        assert!(QualityWeights::default().is_valid());
        assert!(!QualityWeights { manager: 0.0, quality_control: 0.0, mystery_shopper: 0.0, dialogs: 0.0 }.is_valid());
        assert!(!QualityWeights { manager: -1.0, ..QualityWeights::default() }.is_valid());
        assert!(!QualityWeights { dialogs: f64::NAN, ..QualityWeights::default() }.is_valid());
    }

    proptest! {
        #[test]
        fn the_score_lies_between_its_lowest_and_highest_present_source(
            scores in proptest::collection::vec(proptest::option::of(0.0f64..=100.0), 4),
            weights in proptest::collection::vec(0.0f64..50.0, 4),
        ) {
            let weights = QualityWeights {
                manager: weights[0], quality_control: weights[1], mystery_shopper: weights[2], dialogs: weights[3],
            };
            let of = |source: QualitySource| scores[source as usize];
            let score = quality_score(&weights, of);
            let present: Vec<f64> = QualitySource::ALL
                .iter()
                .filter(|s| of(**s).is_some() && weights.of(**s) > 0.0)
                .filter_map(|s| of(*s))
                .collect();
            match score.total {
                Some(total) => {
                    let lo = present.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    prop_assert!(total >= lo - 1e-9 && total <= hi + 1e-9);
                    let shares: f64 = score.components.iter().map(|c| c.effective_weight).sum();
                    prop_assert!((shares - 1.0).abs() < 1e-9);
                }
                None => prop_assert!(present.is_empty()),
            }
        }

        #[test]
        fn compliance_is_a_percentage(
            results in proptest::collection::vec((1u32..100, 0u8..3), 1..20)
        ) {
            let results: Vec<(u32, CriterionOutcome)> = results
                .into_iter()
                .map(|(w, o)| (w, [CriterionOutcome::Met, CriterionOutcome::Missed, CriterionOutcome::NotApplicable][o as usize]))
                .collect();
            if let Some(c) = script_compliance(&results) {
                prop_assert!((0.0..=100.0).contains(&c));
            }
        }
    }
}
