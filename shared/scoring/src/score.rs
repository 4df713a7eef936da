//! The client score: one 0-100 number and a class label per client, with the
//! contribution of every component so a person at the counter can see why.
//!
//! total = Σ effective weight x component score, over the components present.
//! A component is *absent* when it does not apply (no XYZ for a new client,
//! no survey answers yet, ...); its weight is then redistributed over the
//! present components in proportion to their weights (effective weight =
//! weight / sum of present weights), so a missing fact neither punishes nor
//! rewards the client.
//!
//! # Component scores (defaults, configurable in [`ScoreSettings`])
//!
//! | component | input | default mapping | when absent |
//! |---|---|---|---|
//! | value (weight 30) | ABC class | A = 100, B = 60, C = 20, not classed (no revenue) = 0 | never: no revenue is a fact |
//! | stability (10) | XYZ class | X = 100, Y = 60, Z = 20 | no XYZ (new, < 3 months, ...) |
//! | rfm (25) | RFM code | (R + F + M - 3) / 12 x 100 (111 = 0, 555 = 100); no purchase in the window = 0 | never: no purchase is a fact |
//! | lifecycle (10) | status | regular 100, restored 70, new 60, potential 0, lost 0 | status unknown |
//! | maturity (15) | used / targeted | x 100 | segment has no targets |
//! | satisfaction (10) | 0-100 | as given (see [`satisfaction_from_csat`], [`satisfaction_from_nps`]) | no feedback |
//!
//! Bands (default): excellent >= 80, good >= 60, fair >= 40, weak >= 0. The
//! nearest threshold is the points missing to the next band up, plus the
//! revenue to the next ABC class when the caller provides it.

use serde::{Deserialize, Serialize};

use crate::abc::{AbcClass, NextAbcClass};
use crate::lifecycle::LifecycleStatus;
use crate::rfm::RfmCode;
use crate::settings::{FieldViolation, InvalidSettings, into_result};
use crate::xyz::XyzClass;

/// A score component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// ABC class.
    Value,
    /// XYZ class.
    Stability,
    /// RFM code.
    Rfm,
    /// Lifecycle status.
    Lifecycle,
    /// Share of the target products in use.
    Maturity,
    /// The client's own feedback.
    Satisfaction,
}

impl Component {
    /// All components, in report order.
    pub const ALL: [Component; 6] = [
        Component::Value,
        Component::Stability,
        Component::Rfm,
        Component::Lifecycle,
        Component::Maturity,
        Component::Satisfaction,
    ];

    /// snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Stability => "stability",
            Self::Rfm => "rfm",
            Self::Lifecycle => "lifecycle",
            Self::Maturity => "maturity",
            Self::Satisfaction => "satisfaction",
        }
    }
}

/// Relative weights of the components (any non-negative scale; defaults sum
/// to 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreWeights {
    /// Default 30.
    pub value: f64,
    /// Default 10.
    pub stability: f64,
    /// Default 25.
    pub rfm: f64,
    /// Default 10.
    pub lifecycle: f64,
    /// Default 15.
    pub maturity: f64,
    /// Default 10.
    pub satisfaction: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        Self { value: 30.0, stability: 10.0, rfm: 25.0, lifecycle: 10.0, maturity: 15.0, satisfaction: 10.0 }
    }
}

impl ScoreWeights {
    /// Weight of a component.
    pub fn of(&self, component: Component) -> f64 {
        match component {
            Component::Value => self.value,
            Component::Stability => self.stability,
            Component::Rfm => self.rfm,
            Component::Lifecycle => self.lifecycle,
            Component::Maturity => self.maturity,
            Component::Satisfaction => self.satisfaction,
        }
    }
}

/// Value component score per ABC class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValueScores {
    /// Default 100.
    pub a: f64,
    /// Default 60.
    pub b: f64,
    /// Default 20.
    pub c: f64,
    /// No positive revenue in the window; default 0.
    pub unclassed: f64,
}

impl Default for ValueScores {
    fn default() -> Self {
        Self { a: 100.0, b: 60.0, c: 20.0, unclassed: 0.0 }
    }
}

/// Stability component score per XYZ class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StabilityScores {
    /// Default 100.
    pub x: f64,
    /// Default 60.
    pub y: f64,
    /// Default 20.
    pub z: f64,
}

impl Default for StabilityScores {
    fn default() -> Self {
        Self { x: 100.0, y: 60.0, z: 20.0 }
    }
}

/// Lifecycle component score per status.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleScores {
    /// Default 0.
    pub potential: f64,
    /// Default 60.
    pub new: f64,
    /// Default 100.
    pub regular: f64,
    /// Default 70.
    pub restored: f64,
    /// Default 0.
    pub lost: f64,
}

impl Default for LifecycleScores {
    fn default() -> Self {
        Self { potential: 0.0, new: 60.0, regular: 100.0, restored: 70.0, lost: 0.0 }
    }
}

/// A class label for totals from `min_score` up to the next band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBand {
    /// Label shown to people.
    pub label: String,
    /// Lowest total in the band (inclusive).
    pub min_score: f64,
}

/// Weights, component mappings and bands of the client score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreSettings {
    /// Component weights.
    pub weights: ScoreWeights,
    /// ABC -> score.
    pub value_scores: ValueScores,
    /// XYZ -> score.
    pub stability_scores: StabilityScores,
    /// Lifecycle status -> score.
    pub lifecycle_scores: LifecycleScores,
    /// RFM score of a client without purchases in the window (default 0).
    pub rfm_unscored: f64,
    /// Bands, highest first; the last must start at 0.
    pub bands: Vec<ScoreBand>,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        let band = |label: &str, min_score: f64| ScoreBand { label: label.to_owned(), min_score };
        Self {
            weights: ScoreWeights::default(),
            value_scores: ValueScores::default(),
            stability_scores: StabilityScores::default(),
            lifecycle_scores: LifecycleScores::default(),
            rfm_unscored: 0.0,
            bands: vec![band("excellent", 80.0), band("good", 60.0), band("fair", 40.0), band("weak", 0.0)],
        }
    }
}

fn check_points(prefix: &str, field: &str, value: f64, out: &mut Vec<FieldViolation>) {
    if !(0.0..=100.0).contains(&value) {
        out.push(FieldViolation::new(prefix, field, format!("must be between 0 and 100, got {value}")));
    }
}

impl ScoreSettings {
    /// Field-level validation: weights finite and >= 0 with a positive sum;
    /// component scores in 0..=100; bands non-empty, labels unique and
    /// non-empty, minimums strictly decreasing within 0..=100, the last 0.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut out = Vec::new();
        self.collect_violations("", &mut out);
        into_result(out)
    }

    pub(crate) fn collect_violations(&self, prefix: &str, out: &mut Vec<FieldViolation>) {
        let w = FieldViolation::new(prefix, "weights", "");
        let mut sum = 0.0;
        for c in Component::ALL {
            let v = self.weights.of(c);
            if !(v.is_finite() && v >= 0.0) {
                out.push(FieldViolation::new(&w.field, c.name(), format!("must be a finite number >= 0, got {v}")));
            } else {
                sum += v;
            }
        }
        if sum <= 0.0 {
            out.push(FieldViolation::new(prefix, "weights", "at least one weight must be positive"));
        }
        let vs = FieldViolation::new(prefix, "value_scores", "").field;
        let v = &self.value_scores;
        for (f, x) in [("a", v.a), ("b", v.b), ("c", v.c), ("unclassed", v.unclassed)] {
            check_points(&vs, f, x, out);
        }
        let ss = FieldViolation::new(prefix, "stability_scores", "").field;
        let s = &self.stability_scores;
        for (f, x) in [("x", s.x), ("y", s.y), ("z", s.z)] {
            check_points(&ss, f, x, out);
        }
        let ls = FieldViolation::new(prefix, "lifecycle_scores", "").field;
        let l = &self.lifecycle_scores;
        for (f, x) in [
            ("potential", l.potential),
            ("new", l.new),
            ("regular", l.regular),
            ("restored", l.restored),
            ("lost", l.lost),
        ] {
            check_points(&ls, f, x, out);
        }
        check_points(prefix, "rfm_unscored", self.rfm_unscored, out);
        self.collect_band_violations(prefix, out);
    }

    fn collect_band_violations(&self, prefix: &str, out: &mut Vec<FieldViolation>) {
        if self.bands.is_empty() {
            out.push(FieldViolation::new(prefix, "bands", "at least one band is required"));
            return;
        }
        for (i, band) in self.bands.iter().enumerate() {
            let path = FieldViolation::new(prefix, &format!("bands[{i}]"), "").field;
            if band.label.trim().is_empty() {
                out.push(FieldViolation::new(&path, "label", "must not be empty"));
            } else if self.bands[..i].iter().any(|b| b.label == band.label) {
                out.push(FieldViolation::new(&path, "label", format!("duplicate label {:?}", band.label)));
            }
            let min = band.min_score;
            if !(0.0..=100.0).contains(&min) {
                check_points(&path, "min_score", min, out);
            } else if i > 0 && min >= self.bands[i - 1].min_score {
                out.push(FieldViolation::new(
                    &path,
                    "min_score",
                    "bands must be ordered by strictly decreasing min_score",
                ));
            } else if i + 1 == self.bands.len() && min != 0.0 {
                out.push(FieldViolation::new(
                    &path,
                    "min_score",
                    "the last band must start at 0 so every score has a band",
                ));
            }
        }
    }
}

/// One client's facts for the score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoreInput {
    /// ABC class; `None` = not classed (no positive revenue), scored
    /// `value_scores.unclassed`.
    pub abc: Option<AbcClass>,
    /// XYZ class; `None` = absent.
    pub xyz: Option<XyzClass>,
    /// RFM code; `None` = no purchase in the window, scored `rfm_unscored`.
    pub rfm: Option<RfmCode>,
    /// Lifecycle status; `None` = absent.
    pub lifecycle: Option<LifecycleStatus>,
    /// Maturity 0..=1 (clamped); `None` or NaN = absent.
    pub maturity: Option<f64>,
    /// Satisfaction 0..=100 (clamped); `None` or NaN = absent.
    pub satisfaction: Option<f64>,
    /// Revenue to the next ABC class, passed through to the nearest threshold.
    pub abc_next: Option<NextAbcClass>,
}

/// CSAT mean on the 1-5 scale as 0-100: (x - 1) / 4 x 100, clamped.
pub fn satisfaction_from_csat(mean: f64) -> f64 {
    ((mean - 1.0) / 4.0 * 100.0).clamp(0.0, 100.0)
}

/// NPS answer (0-10 "would you recommend") as 0-100: x x 10, clamped.
pub fn satisfaction_from_nps(answer: f64) -> f64 {
    (answer * 10.0).clamp(0.0, 100.0)
}

/// One component's part in the total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ComponentContribution {
    /// Which component.
    pub component: Component,
    /// Configured weight.
    pub weight: f64,
    /// Weight after redistribution (fraction of 1; 0 when absent).
    pub effective_weight: f64,
    /// Component score 0..=100; `None` when absent.
    pub score: Option<f64>,
    /// effective_weight x score (points of the total).
    pub contribution: f64,
}

/// What it takes to move up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NearestThreshold<'s> {
    /// Next band up; `None` in the top band.
    pub next_band: Option<&'s str>,
    /// Points missing to it.
    pub points_needed: Option<f64>,
    /// Revenue to the next ABC class, when provided.
    pub abc: Option<NextAbcClass>,
}

/// A client's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClientScore<'s> {
    /// 0..=100.
    pub total: f64,
    /// Band label.
    pub band: &'s str,
    /// Per component, in [`Component::ALL`] order.
    pub components: [ComponentContribution; 6],
    /// Distance to the next band (and ABC class).
    pub nearest: NearestThreshold<'s>,
}

/// Scores clients with validated settings.
#[derive(Debug, Clone, Copy)]
pub struct Scorer<'s> {
    settings: &'s ScoreSettings,
}

impl<'s> Scorer<'s> {
    /// Validates the settings once for many clients.
    pub fn new(settings: &'s ScoreSettings) -> Result<Self, InvalidSettings> {
        settings.validate()?;
        Ok(Self { settings })
    }

    fn component_score(&self, component: Component, input: &ScoreInput) -> Option<f64> {
        let s = self.settings;
        let present = |x: Option<f64>| x.filter(|v| !v.is_nan());
        match component {
            Component::Value => Some(match input.abc {
                Some(AbcClass::A) => s.value_scores.a,
                Some(AbcClass::B) => s.value_scores.b,
                Some(AbcClass::C) => s.value_scores.c,
                None => s.value_scores.unclassed,
            }),
            Component::Stability => input.xyz.map(|c| match c {
                XyzClass::X => s.stability_scores.x,
                XyzClass::Y => s.stability_scores.y,
                XyzClass::Z => s.stability_scores.z,
            }),
            Component::Rfm => Some(
                input.rfm.map_or(s.rfm_unscored, |code| f64::from(code.r() + code.f() + code.m() - 3) / 12.0 * 100.0),
            ),
            Component::Lifecycle => input.lifecycle.map(|st| {
                let l = &s.lifecycle_scores;
                match st {
                    LifecycleStatus::Potential => l.potential,
                    LifecycleStatus::New => l.new,
                    LifecycleStatus::Regular => l.regular,
                    LifecycleStatus::Restored => l.restored,
                    LifecycleStatus::Lost => l.lost,
                }
            }),
            Component::Maturity => present(input.maturity).map(|m| m.clamp(0.0, 1.0) * 100.0),
            Component::Satisfaction => present(input.satisfaction).map(|x| x.clamp(0.0, 100.0)),
        }
    }

    /// Score of one client (no allocation).
    pub fn score(&self, input: &ScoreInput) -> ClientScore<'s> {
        let weights = &self.settings.weights;
        let scores = Component::ALL.map(|c| self.component_score(c, input));
        let present_weight: f64 =
            Component::ALL.iter().zip(&scores).filter(|(_, s)| s.is_some()).map(|(c, _)| weights.of(*c)).sum();
        let components = std::array::from_fn(|i| {
            let component = Component::ALL[i];
            let weight = weights.of(component);
            let score = scores[i];
            let effective_weight = match score {
                Some(_) if present_weight > 0.0 => weight / present_weight,
                _ => 0.0,
            };
            ComponentContribution {
                component,
                weight,
                effective_weight,
                score,
                contribution: effective_weight * score.unwrap_or(0.0),
            }
        });
        let total = components.iter().map(|c: &ComponentContribution| c.contribution).sum::<f64>().clamp(0.0, 100.0);
        let bands = &self.settings.bands;
        let index = bands.iter().position(|b| total >= b.min_score).unwrap_or(bands.len().saturating_sub(1));
        let band = bands.get(index).map_or("", |b| b.label.as_str());
        let next = index.checked_sub(1).and_then(|i| bands.get(i));
        ClientScore {
            total,
            band,
            components,
            nearest: NearestThreshold {
                next_band: next.map(|b| b.label.as_str()),
                points_needed: next.map(|b| b.min_score - total),
                abc: input.abc_next,
            },
        }
    }

    /// Scores of every client, aligned with `inputs`.
    pub fn score_all(&self, inputs: &[ScoreInput]) -> Vec<ClientScore<'s>> {
        inputs.iter().map(|i| self.score(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn code(s: &str) -> Option<RfmCode> {
        s.parse().ok()
    }

    #[test]
    fn all_components_present() {
        // A=100, X=100, RFM 545 = (5+4+5-3)/12*100 = 91.667, regular 100,
        // maturity 0.5 -> 50, satisfaction 80. Weights 30/10/25/10/15/10
        // (sum 100, all present): 30 + 10 + 22.917 + 10 + 7.5 + 8 = 88.417
        // -> "excellent" (>= 80), top band.
        let settings = ScoreSettings::default();
        let scorer = Scorer::new(&settings).unwrap();
        let s = scorer.score(&ScoreInput {
            abc: Some(AbcClass::A),
            xyz: Some(XyzClass::X),
            rfm: code("545"),
            lifecycle: Some(LifecycleStatus::Regular),
            maturity: Some(0.5),
            satisfaction: Some(80.0),
            abc_next: None,
        });
        assert!(close(s.total, 30.0 + 10.0 + 0.25 * 1100.0 / 12.0 + 10.0 + 7.5 + 8.0));
        assert!(close(s.total, 88.416_666_666_666_67));
        assert_eq!(s.band, "excellent");
        assert_eq!((s.nearest.next_band, s.nearest.points_needed), (None, None));
        let rfm = s.components[2];
        assert_eq!((rfm.component, rfm.weight), (Component::Rfm, 25.0));
        assert!(close(rfm.effective_weight, 0.25) && close(rfm.contribution, 22.916_666_666_666_67));
    }

    #[test]
    fn new_client_weights_redistributed() {
        // B (60), no XYZ, RFM 511 = (5+1+1-3)/12*100 = 33.333, new (60),
        // no maturity, no satisfaction. Present weights 30 + 25 + 10 = 65:
        // effective 30/65, 25/65, 10/65.
        // total = (60*30 + 33.333*25 + 60*10) / 65 = 3233.333/65 = 49.744
        // -> "fair" (>= 40); next "good" at 60: 10.256 points missing.
        let settings = ScoreSettings::default();
        let scorer = Scorer::new(&settings).unwrap();
        let next = NextAbcClass { class: AbcClass::A, revenue: 31, gap: 1 };
        let s = scorer.score(&ScoreInput {
            abc: Some(AbcClass::B),
            rfm: code("511"),
            lifecycle: Some(LifecycleStatus::New),
            abc_next: Some(next),
            ..ScoreInput::default()
        });
        let expected = (1800.0 + 2500.0 / 3.0 + 600.0) / 65.0;
        assert!(close(s.total, expected), "{}", s.total);
        assert_eq!(s.band, "fair");
        assert_eq!(s.nearest.next_band, Some("good"));
        assert!(close(s.nearest.points_needed.unwrap(), 60.0 - expected));
        assert_eq!(s.nearest.abc, Some(next));
        let stability = s.components[1];
        assert_eq!((stability.score, stability.effective_weight, stability.contribution), (None, 0.0, 0.0));
        assert_eq!(stability.weight, 10.0);
        assert!(close(s.components[0].effective_weight, 30.0 / 65.0));
    }

    #[test]
    fn potential_client_scores_zero() {
        // Unclassed value 0, no RFM -> 0, potential 0: total 0 -> "weak".
        let settings = ScoreSettings::default();
        let scorer = Scorer::new(&settings).unwrap();
        let s = scorer.score(&ScoreInput { lifecycle: Some(LifecycleStatus::Potential), ..ScoreInput::default() });
        assert_eq!((s.total, s.band), (0.0, "weak"));
        assert_eq!(s.nearest.next_band, Some("fair"));
        assert_eq!(s.nearest.points_needed, Some(40.0));
    }

    #[test]
    fn exactly_on_band_threshold_and_clamped_inputs() {
        // Only satisfaction weighted: the total is the satisfaction itself.
        let settings = ScoreSettings {
            weights: ScoreWeights {
                value: 0.0,
                stability: 0.0,
                rfm: 0.0,
                lifecycle: 0.0,
                maturity: 0.0,
                satisfaction: 1.0,
            },
            ..ScoreSettings::default()
        };
        let scorer = Scorer::new(&settings).unwrap();
        let at = |x: f64| scorer.score(&ScoreInput { satisfaction: Some(x), ..ScoreInput::default() });
        assert_eq!(at(60.0).band, "good"); // 60 is in "good" (>= 60)
        assert_eq!(at(59.999).band, "fair");
        assert_eq!(at(250.0).total, 100.0); // clamped
        assert_eq!(at(-5.0).total, 0.0);
        // Satisfaction absent: nothing present carries weight -> total 0.
        let s = scorer.score(&ScoreInput::default());
        assert_eq!(s.total, 0.0);
        assert!(s.components.iter().all(|c| c.effective_weight == 0.0));
        let nan = at(f64::NAN);
        assert_eq!(nan.components[5].score, None);
    }

    #[test]
    fn satisfaction_helpers() {
        assert_eq!(satisfaction_from_csat(1.0), 0.0);
        assert_eq!(satisfaction_from_csat(4.0), 75.0); // (4-1)/4 = 0.75
        assert_eq!(satisfaction_from_csat(5.0), 100.0);
        assert_eq!(satisfaction_from_nps(9.0), 90.0);
        assert_eq!(satisfaction_from_nps(11.0), 100.0);
    }

    #[test]
    fn settings_validation_paths() {
        let mut s = ScoreSettings::default();
        s.weights.maturity = f64::INFINITY;
        s.value_scores.b = 120.0;
        s.bands = vec![
            ScoreBand { label: "x".into(), min_score: 50.0 },
            ScoreBand { label: "x".into(), min_score: 60.0 },
            ScoreBand { label: " ".into(), min_score: 10.0 },
        ];
        let err = s.validate().unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "weights.maturity",
                "value_scores.b",
                "bands[1].label",
                "bands[1].min_score",
                "bands[2].label",
                "bands[2].min_score",
            ]
        );
        let zero = ScoreSettings {
            weights: ScoreWeights {
                value: 0.0,
                stability: 0.0,
                rfm: 0.0,
                lifecycle: 0.0,
                maturity: 0.0,
                satisfaction: 0.0,
            },
            ..ScoreSettings::default()
        };
        assert_eq!(zero.validate().unwrap_err().0[0].field, "weights");
        assert!(Scorer::new(&zero).is_err());
    }

    fn inputs() -> impl Strategy<Value = ScoreInput> {
        let abc = prop::option::of(prop::sample::select(vec![AbcClass::A, AbcClass::B, AbcClass::C]));
        let xyz = prop::option::of(prop::sample::select(vec![XyzClass::X, XyzClass::Y, XyzClass::Z]));
        let rfm =
            prop::option::of((1u8..=5, 1u8..=5, 1u8..=5).prop_filter_map("code", |(r, f, m)| RfmCode::new(r, f, m)));
        let life = prop::option::of(prop::sample::select(vec![
            LifecycleStatus::Potential,
            LifecycleStatus::New,
            LifecycleStatus::Regular,
            LifecycleStatus::Restored,
            LifecycleStatus::Lost,
        ]));
        let maturity = prop::option::of(-0.5f64..1.5);
        let satisfaction = prop::option::of(-10.0f64..110.0);
        (abc, xyz, rfm, life, maturity, satisfaction).prop_map(|(abc, xyz, rfm, lifecycle, maturity, satisfaction)| {
            ScoreInput { abc, xyz, rfm, lifecycle, maturity, satisfaction, abc_next: None }
        })
    }

    fn weights() -> impl Strategy<Value = ScoreWeights> {
        prop::array::uniform6(0.0f64..1_000.0).prop_filter_map("positive sum", |w| {
            (w.iter().sum::<f64>() > 0.0).then_some(ScoreWeights {
                value: w[0],
                stability: w[1],
                rfm: w[2],
                lifecycle: w[3],
                maturity: w[4],
                satisfaction: w[5],
            })
        })
    }

    proptest! {
        #[test]
        fn total_in_range_and_contributions_sum_to_it(input in inputs(), weights in weights()) {
            let settings = ScoreSettings { weights, ..ScoreSettings::default() };
            let scorer = Scorer::new(&settings).unwrap();
            let s = scorer.score(&input);
            prop_assert!((0.0..=100.0).contains(&s.total));
            let sum: f64 = s.components.iter().map(|c| c.contribution).sum();
            prop_assert!((sum - s.total).abs() < 1e-9, "{} vs {}", sum, s.total);
            let eff: f64 = s.components.iter().map(|c| c.effective_weight).sum();
            let present_weight: f64 = s.components.iter().filter(|c| c.score.is_some()).map(|c| c.weight).sum();
            if present_weight > 0.0 {
                prop_assert!((eff - 1.0).abs() < 1e-9);
            }
            for c in &s.components {
                if c.score.is_none() { prop_assert_eq!(c.effective_weight, 0.0); }
                if let Some(x) = c.score { prop_assert!((0.0..=100.0).contains(&x)); }
            }
            if let Some(p) = s.nearest.points_needed { prop_assert!(p > 0.0); }
        }
    }
}
