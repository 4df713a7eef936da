//! KPI and motivation (domain.md section 4, seeds 000, 001, 003): the KPI
//! catalogue over an employee's facts, the scorecard formulas (attainment,
//! floor, cap, payout curve, weighted attainment, bonus with the over-plan
//! accelerator) and the plan split (seasonal coefficients, monthly plans,
//! plan to date).
//!
//! Every KPI value is `numerator / denominator x scale` over a [`FactSheet`]
//! of summable facts, never an average of averages: a team lead's KPI is the
//! same formula over the members' merged sheets, so the team's first-response
//! time is total seconds / total answered leads, and every number stays
//! traceable to the summed facts behind it.
//!
//! ```
//! use branchscore_scoring::kpi::{self, facts, Direction, FactSheet, KpiLine, PayoutTerms};
//!
//! let mut sheet = FactSheet::default();
//! sheet.add(facts::LEADS, 40.0);
//! sheet.add(facts::CONVERTED_LEADS, 12.0);
//! let conversion = kpi::definition("lead_conversion").unwrap().value(&sheet);
//! assert_eq!(conversion, Some(30.0)); // 12 / 40 x 100 %
//!
//! let terms = PayoutTerms::default();
//! let lines = [KpiLine {
//!     code: "lead_conversion".into(),
//!     weight_bp: 10_000,
//!     direction: Direction::HigherIsBetter,
//!     fact: conversion,
//!     plan: 25.0,
//! }];
//! let evaluation = kpi::evaluate(&lines, &terms);
//! // a = 30 / 25 = 1.2 -> W = 1.2 -> bonus = 1 000.00 x (1 + 1.2 x 0.2) = 1 240.00
//! assert_eq!(kpi::bonus(1_000_00, evaluation.weighted_attainment, terms.accelerator), 1_240_00);
//! ```
use crate::{BasisPoints, FULL_SHARE_BP, FieldViolation, Money};
use Direction::{HigherIsBetter as Higher, LowerIsBetter as Lower};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way a KPI improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    /// Response time, breaches, lost clients: attainment is plan / fact.
    LowerIsBetter,
}

/// What a KPI's value is measured in (for display and plan entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Count,
    /// Minor units, like [`Money`].
    Money,
    /// 0-100.
    Percent,
    Seconds,
    /// A score on its own scale (NPS -100..100, quality 0-100).
    Points,
}

/// The part of the system whose records the KPI's facts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Clients and their sales documents (domain.md section 1).
    Clients,
    /// Leads, deals and control points (section 2).
    Pipeline,
    /// Surveys and quality control (section 3).
    Feedback,
}

/// The fact keys of a [`FactSheet`]. Every fact is a sum over the period, so
/// sheets of several employees add up; averages are stored as their total and
/// their count (e.g. `response_seconds_total` = mean response x answered).
pub mod facts {
    // Clients (domain.md section 1).
    pub const NEW_CLIENTS: &str = "new_clients";
    pub const LOST_CLIENTS: &str = "lost_clients";
    pub const RESTORED_CLIENTS: &str = "restored_clients";
    /// Clients at the initial stage at the end of the period (a stock).
    pub const CLIENTS_AT_INITIAL_STAGE: &str = "clients_at_initial_stage";
    pub const PRIMARY_SALES_DOCUMENTS: &str = "primary_sales_documents";
    pub const PRIMARY_SALES_AMOUNT: &str = "primary_sales_amount";
    pub const REPEAT_SALES_DOCUMENTS: &str = "repeat_sales_documents";
    pub const REPEAT_SALES_AMOUNT: &str = "repeat_sales_amount";
    pub const NEW_DIRECTION_SALES_DOCUMENTS: &str = "new_direction_sales_documents";
    pub const NEW_DIRECTION_SALES_AMOUNT: &str = "new_direction_sales_amount";
    /// Owned clients whose ABC class moved up in the period's recomputes.
    pub const CLASS_UPGRADES: &str = "class_upgrades";
    /// Owned clients whose ABC class moved down (or out of the classes).
    pub const CLASS_DOWNGRADES: &str = "class_downgrades";
    /// Primary + repeat + new-direction amounts; the service fills it.
    pub const SALES_AMOUNT: &str = "sales_amount";
    // Pipeline (section 2).
    pub const LEADS: &str = "leads";
    pub const CONVERTED_LEADS: &str = "converted_leads";
    pub const ANSWERED_LEADS: &str = "answered_leads";
    /// Mean first-response time x answered leads.
    pub const RESPONSE_SECONDS_TOTAL: &str = "response_seconds_total";
    pub const SLA_BREACHES: &str = "sla_breaches";
    pub const OVERDUE_CONTROL_POINTS: &str = "overdue_control_points";
    pub const DEALS_WON: &str = "deals_won";
    pub const WON_AMOUNT: &str = "won_amount";
    // Feedback (section 3).
    pub const CLIENTS_WITH_PURCHASES: &str = "clients_with_purchases";
    pub const RESPONDING_CLIENTS: &str = "responding_clients";
    pub const NPS_ANSWERS: &str = "nps_answers";
    /// NPS x answers.
    pub const NPS_POINTS_TOTAL: &str = "nps_points_total";
    pub const CSAT_ANSWERS: &str = "csat_answers";
    /// CSAT % x answers.
    pub const CSAT_POINTS_TOTAL: &str = "csat_points_total";
    /// 1 when the employee has a quality score (teams: members scored).
    pub const QUALITY_SCORED: &str = "quality_scored";
    pub const QUALITY_POINTS_TOTAL: &str = "quality_points_total";

    /// Every fact key, for validating stored sheets.
    pub const ALL: &[&str] = &[
        NEW_CLIENTS,
        LOST_CLIENTS,
        RESTORED_CLIENTS,
        CLIENTS_AT_INITIAL_STAGE,
        PRIMARY_SALES_DOCUMENTS,
        PRIMARY_SALES_AMOUNT,
        REPEAT_SALES_DOCUMENTS,
        REPEAT_SALES_AMOUNT,
        NEW_DIRECTION_SALES_DOCUMENTS,
        NEW_DIRECTION_SALES_AMOUNT,
        CLASS_UPGRADES,
        CLASS_DOWNGRADES,
        SALES_AMOUNT,
        LEADS,
        CONVERTED_LEADS,
        ANSWERED_LEADS,
        RESPONSE_SECONDS_TOTAL,
        SLA_BREACHES,
        OVERDUE_CONTROL_POINTS,
        DEALS_WON,
        WON_AMOUNT,
        CLIENTS_WITH_PURCHASES,
        RESPONDING_CLIENTS,
        NPS_ANSWERS,
        NPS_POINTS_TOTAL,
        CSAT_ANSWERS,
        CSAT_POINTS_TOTAL,
        QUALITY_SCORED,
        QUALITY_POINTS_TOTAL,
    ];
}

/// Summable raw facts of one employee for one period, keyed by fact key
/// ([`facts`]). Teams add sheets ([`FactSheet::merge`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FactSheet(pub BTreeMap<String, f64>);

impl FactSheet {
    /// The fact, 0 when absent (no records is a real 0 for a sum).
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Adds `value` to the fact (creating it).
    pub fn add(&mut self, key: &str, value: f64) {
        *self.0.entry(key.to_owned()).or_insert(0.0) += value;
    }

    /// Adds every fact of `other`: the sheet of a team is the sum of its
    /// members' sheets.
    pub fn merge(&mut self, other: &FactSheet) {
        for (key, value) in &other.0 {
            self.add(key, *value);
        }
    }
}

/// A built-in KPI. Its value for an employee (or a team) is
/// `numerator / denominator x scale` over a [`FactSheet`]; `None` when the
/// denominator is 0 (not measured: no leads means no response time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KpiDefinition {
    pub code: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub source: Source,
    pub unit: Unit,
    pub direction: Direction,
    /// Fact key.
    pub numerator: &'static str,
    /// Fact key; `None` = the numerator itself, always measured (a count or
    /// an amount of 0 is a real 0).
    pub denominator: Option<&'static str>,
    pub scale: f64,
    /// Flows (sales, counts of events) add up over time: a monthly plan is
    /// multiplied by the months of the period. Stocks and ratios (clients at
    /// the initial stage, conversion %, NPS) are targets not scaled.
    pub additive: bool,
}

impl KpiDefinition {
    /// The KPI's value over `facts`; `None` when the denominator is not
    /// positive (0 = nothing to measure; negative or NaN = broken data,
    /// better unmeasured than a nonsense ratio).
    pub fn value(&self, facts: &FactSheet) -> Option<f64> {
        let numerator = facts.get(self.numerator);
        match self.denominator {
            None => Some(numerator * self.scale),
            Some(key) => {
                let denominator = facts.get(key);
                (denominator > 0.0).then(|| numerator / denominator * self.scale)
            }
        }
    }

    /// The plan of a period of `months` months from a monthly plan: flows are
    /// multiplied, stocks and ratios are not.
    pub fn period_plan(&self, monthly_plan: f64, months: u32) -> f64 {
        if self.additive { monthly_plan * f64::from(months) } else { monthly_plan }
    }
}

const fn count(
    code: &'static str,
    name: &'static str,
    description: &'static str,
    source: Source,
    direction: Direction,
    fact: &'static str,
) -> KpiDefinition {
    KpiDefinition {
        code,
        name,
        description,
        source,
        unit: Unit::Count,
        direction,
        numerator: fact,
        denominator: None,
        scale: 1.0,
        additive: true,
    }
}

const fn money(
    code: &'static str,
    name: &'static str,
    description: &'static str,
    source: Source,
    fact: &'static str,
) -> KpiDefinition {
    KpiDefinition { unit: Unit::Money, ..count(code, name, description, source, Direction::HigherIsBetter, fact) }
}

#[allow(clippy::too_many_arguments)]
const fn ratio(
    code: &'static str,
    name: &'static str,
    description: &'static str,
    source: Source,
    unit: Unit,
    direction: Direction,
    numerator: &'static str,
    denominator: &'static str,
    scale: f64,
) -> KpiDefinition {
    KpiDefinition {
        code,
        name,
        description,
        source,
        unit,
        direction,
        numerator,
        denominator: Some(denominator),
        scale,
        additive: false,
    }
}

/// The built-in KPIs (domain.md section 4), in the order of the seed's
/// catalogue. Codes are stable: scorecards and plans refer to them.
pub const CATALOGUE: &[KpiDefinition] = &[
    KpiDefinition {
        additive: false,
        ..count(
            "clients_at_initial_stage",
            "Clients at initial stage",
            "Clients at the initial lifecycle stage at the end of the period (a stock: the plan is not scaled by months).",
            Source::Clients,
            Higher,
            facts::CLIENTS_AT_INITIAL_STAGE,
        )
    },
    count(
        "new_clients",
        "New clients",
        "Clients whose first purchase falls in the period.",
        Source::Clients,
        Higher,
        facts::NEW_CLIENTS,
    ),
    count(
        "primary_sales_count",
        "Primary sales",
        "Sales documents of first purchases by new clients.",
        Source::Clients,
        Higher,
        facts::PRIMARY_SALES_DOCUMENTS,
    ),
    money(
        "primary_sales_amount",
        "Primary sales amount",
        "Amount of first purchases by new clients, net of returns.",
        Source::Clients,
        facts::PRIMARY_SALES_AMOUNT,
    ),
    ratio(
        "lead_conversion",
        "Lead conversion",
        "Converted leads / leads x 100 %.",
        Source::Pipeline,
        Unit::Percent,
        Higher,
        facts::CONVERTED_LEADS,
        facts::LEADS,
        100.0,
    ),
    count(
        "repeat_sales_count",
        "Repeat sales",
        "Sales documents of repeat purchases in a product line the client already buys.",
        Source::Clients,
        Higher,
        facts::REPEAT_SALES_DOCUMENTS,
    ),
    money(
        "repeat_sales_amount",
        "Repeat sales amount",
        "Amount of repeat purchases in a product line the client already buys, net of returns.",
        Source::Clients,
        facts::REPEAT_SALES_AMOUNT,
    ),
    count(
        "cross_sell_count",
        "Cross-sell sales",
        "Sales documents in product lines new to the client.",
        Source::Clients,
        Higher,
        facts::NEW_DIRECTION_SALES_DOCUMENTS,
    ),
    money(
        "cross_sell_amount",
        "Cross-sell amount",
        "Amount of sales in product lines new to the client, net of returns.",
        Source::Clients,
        facts::NEW_DIRECTION_SALES_AMOUNT,
    ),
    money(
        "sales_amount",
        "Sales amount",
        "Primary + repeat + cross-sell amounts, net of returns.",
        Source::Clients,
        facts::SALES_AMOUNT,
    ),
    count(
        "class_upgrades",
        "Class upgrades",
        "Own clients whose ABC class moved up (C to B, B to A, C to A) in the period's recomputes.",
        Source::Clients,
        Higher,
        facts::CLASS_UPGRADES,
    ),
    count(
        "class_downgrades",
        "Class downgrades",
        "Own clients whose ABC class moved down, or who left the classes (no revenue in the window), in the period's recomputes (fewer is better; none counts as the cap).",
        Source::Clients,
        Lower,
        facts::CLASS_DOWNGRADES,
    ),
    count(
        "lost_clients",
        "Lost clients",
        "Clients who became lost in the period (fewer is better; none counts as the cap).",
        Source::Clients,
        Lower,
        facts::LOST_CLIENTS,
    ),
    count(
        "restored_clients",
        "Restored clients",
        "Lost clients who bought again in the period.",
        Source::Clients,
        Higher,
        facts::RESTORED_CLIENTS,
    ),
    ratio(
        "first_response_time",
        "First-response time",
        "Mean seconds to the first answer of a lead (total seconds / answered leads; not measured without answered leads).",
        Source::Pipeline,
        Unit::Seconds,
        Lower,
        facts::RESPONSE_SECONDS_TOTAL,
        facts::ANSWERED_LEADS,
        1.0,
    ),
    count(
        "sla_breaches",
        "SLA breaches",
        "Leads answered (or still unanswered) later than the SLA in the period.",
        Source::Pipeline,
        Lower,
        facts::SLA_BREACHES,
    ),
    count(
        "overdue_control_points",
        "Overdue control points",
        "Control points of deals that became overdue in the period.",
        Source::Pipeline,
        Lower,
        facts::OVERDUE_CONTROL_POINTS,
    ),
    count("deals_won_count", "Deals won", "Deals won in the period.", Source::Pipeline, Higher, facts::DEALS_WON),
    money(
        "deals_won_amount",
        "Deals won amount",
        "Amount of the deals won in the period.",
        Source::Pipeline,
        facts::WON_AMOUNT,
    ),
    ratio(
        "feedback_coverage",
        "Feedback coverage",
        "Clients who answered a survey / clients with purchases x 100 %.",
        Source::Feedback,
        Unit::Percent,
        Higher,
        facts::RESPONDING_CLIENTS,
        facts::CLIENTS_WITH_PURCHASES,
        100.0,
    ),
    ratio(
        "nps",
        "NPS",
        "Net promoter score of own clients, -100..100 (weighted by answers).",
        Source::Feedback,
        Unit::Points,
        Higher,
        facts::NPS_POINTS_TOTAL,
        facts::NPS_ANSWERS,
        1.0,
    ),
    ratio(
        "csat",
        "CSAT",
        "Share of satisfied (4-5) CSAT answers of own clients, % (weighted by answers).",
        Source::Feedback,
        Unit::Percent,
        Higher,
        facts::CSAT_POINTS_TOTAL,
        facts::CSAT_ANSWERS,
        1.0,
    ),
    ratio(
        "quality_score",
        "Quality score",
        "BARS / quality-control score (for a team, the mean over scored members).",
        Source::Feedback,
        Unit::Points,
        Higher,
        facts::QUALITY_POINTS_TOTAL,
        facts::QUALITY_SCORED,
        1.0,
    ),
];

/// The built-in KPI with this code.
pub fn definition(code: &str) -> Option<&'static KpiDefinition> {
    CATALOGUE.iter().find(|d| d.code == code)
}

/// Floor, cap, accelerator and payout curve of a scorecard. `Default` is
/// domain.md: floor 80 %, cap 150 %, k = 1.2, no curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayoutTerms {
    /// Below this attainment a KPI credits nothing (default 8000 = 80 %).
    pub floor_bp: BasisPoints,
    /// No KPI credits more than this (default 15000 = 150 %).
    pub cap_bp: BasisPoints,
    /// Each point of weighted attainment over plan pays `accelerator` points
    /// (default 1.2: the seed pays 20 %+ extra for beating the plan).
    pub accelerator: f64,
    /// Optional payout curve: `(attainment_bp, credited_bp)` points,
    /// attainment strictly increasing, credited non-decreasing; credited is
    /// interpolated linearly between points, from (0, 0) before the first,
    /// with slope 1 after the last. Empty = credited equals attainment.
    pub curve: Vec<(BasisPoints, BasisPoints)>,
}

impl Default for PayoutTerms {
    fn default() -> Self {
        Self { floor_bp: 8_000, cap_bp: 15_000, accelerator: 1.2, curve: Vec::new() }
    }
}

/// Numerical slack on the floor: attainments are ratios of floats (e.g.
/// percent KPIs), and 0.8 computed as 64.00000000000001 / 80 must still
/// reach an 80 % floor. A billionth of plan is far below anything paid.
const FLOOR_TOLERANCE: f64 = 1e-9;

fn bp(value: BasisPoints) -> f64 {
    f64::from(value) / f64::from(FULL_SHARE_BP)
}

impl PayoutTerms {
    /// Every rule the terms break: floor <= 100 % <= cap (a floor above plan
    /// would pay nothing for meeting it, a cap below plan would never pay
    /// the plan), a finite non-negative accelerator (negative would pay less
    /// for beating the plan), and a monotone curve.
    pub fn validate(&self) -> Result<(), Vec<FieldViolation>> {
        let mut out = Vec::new();
        if self.floor_bp > FULL_SHARE_BP {
            out.push(FieldViolation::new(
                "",
                "floor_bp",
                format!("must be at most 10000 (100 %), got {}", self.floor_bp),
            ));
        }
        if self.cap_bp < FULL_SHARE_BP {
            out.push(FieldViolation::new("", "cap_bp", format!("must be at least 10000 (100 %), got {}", self.cap_bp)));
        }
        if !(self.accelerator.is_finite() && self.accelerator >= 0.0) {
            out.push(FieldViolation::new(
                "",
                "accelerator",
                format!("must be a finite number >= 0, got {}", self.accelerator),
            ));
        }
        for (i, pair) in self.curve.windows(2).enumerate() {
            let ((a0, c0), (a1, c1)) = (pair[0], pair[1]);
            if a1 <= a0 {
                out.push(FieldViolation::new(
                    "",
                    &format!("curve[{}]", i + 1),
                    format!("attainment must be strictly increasing, got {a1} after {a0}"),
                ));
            }
            if c1 < c0 {
                out.push(FieldViolation::new(
                    "",
                    &format!("curve[{}]", i + 1),
                    format!("credited must not decrease, got {c1} after {c0}"),
                ));
            }
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// The curve's credited value at attainment `a` (a ratio, 1.0 = plan),
    /// before floor and cap; never negative.
    pub fn curve_at(&self, a: f64) -> f64 {
        let mut previous = (0.0, 0.0);
        for &(x, y) in &self.curve {
            let (x, y) = (bp(x), bp(y));
            if a <= x {
                let value = if a == x || x <= previous.0 {
                    y
                } else {
                    // Clamped to the segment so that rounding cannot step over
                    // the next point (credited must stay monotone).
                    (previous.1 + (y - previous.1) * (a - previous.0) / (x - previous.0)).min(y.max(previous.1))
                };
                return value.max(0.0);
            }
            previous = (x, y);
        }
        (previous.1 + (a - previous.0)).max(0.0)
    }
}

/// Attainment as a ratio (1.0 = plan): fact / plan, or plan / fact for
/// lower-is-better KPIs, where a fact of 0 (no breaches, no lost clients)
/// counts as `cap` instead of infinity. Not clamped otherwise: the cap is
/// applied by [`credited`], and the raw value is what the report shows.
///
/// `plan` must be > 0 (callers validate plans). Should a non-positive plan
/// slip through for a higher-is-better KPI, a fact meeting it attains `cap`
/// and one below it 0, instead of an infinite or NaN ratio.
pub fn attainment(direction: Direction, fact: f64, plan: f64, cap: f64) -> f64 {
    match direction {
        Direction::HigherIsBetter if plan > 0.0 => fact / plan,
        Direction::HigherIsBetter => {
            if fact >= plan {
                cap
            } else {
                0.0
            }
        }
        Direction::LowerIsBetter if fact <= 0.0 => cap,
        Direction::LowerIsBetter => plan.max(0.0) / fact,
    }
}

/// How a KPI's credit came about (shown next to the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credit {
    /// Attainment under the floor: credits 0.
    BelowFloor,
    /// Credited as attained (through the curve, if any).
    Full,
    /// Cut to the cap.
    Capped,
}

/// The credited ratio of an attainment: 0 below the floor, else
/// min(curve(a), cap). A NaN attainment is below the floor.
pub fn credited(attainment: f64, terms: &PayoutTerms) -> (f64, Credit) {
    let (floor, cap) = (bp(terms.floor_bp), bp(terms.cap_bp));
    // NaN explicitly: `f64::min` would otherwise turn it into the cap.
    if attainment.is_nan() || attainment < floor - FLOOR_TOLERANCE {
        return (0.0, Credit::BelowFloor);
    }
    let curved = terms.curve_at(attainment);
    if curved > cap { (cap, Credit::Capped) } else { (curved, Credit::Full) }
}

/// One KPI of an employee's (or team's) scorecard for a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiLine {
    pub code: String,
    /// Weights of a scorecard sum to 10 000 (callers validate).
    pub weight_bp: BasisPoints,
    pub direction: Direction,
    /// `None` = not measured in the period (see [`KpiDefinition::value`]).
    pub fact: Option<f64>,
    /// > 0 (callers validate; see [`attainment`]).
    pub plan: f64,
}

/// A [`KpiLine`] evaluated; every number of the bonus is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiResult {
    pub code: String,
    pub weight_bp: BasisPoints,
    /// The weight after redistribution: sums to 1 over the measured KPIs, 0
    /// for unmeasured ones.
    pub effective_weight: f64,
    pub fact: Option<f64>,
    pub plan: f64,
    /// `None` when not measured.
    pub attainment: Option<f64>,
    pub credited: f64,
    /// `None` when not measured.
    pub credit: Option<Credit>,
    /// effective_weight x credited.
    pub contribution: f64,
}

/// A scorecard evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Same order as the input lines.
    pub results: Vec<KpiResult>,
    /// W = sum of the contributions.
    pub weighted_attainment: f64,
}

/// Evaluates a scorecard: attainment, credit and contribution of each line.
///
/// A KPI with no measurement (fact `None`, or not finite) is left out and
/// its weight redistributed proportionally over the measured ones (an
/// employee without leads is not punished for their response time); W = 0
/// when nothing with a positive weight is measured.
///
/// W is summed in ascending order of the contributions, so that the same
/// scorecard in another order pays to the same minor unit.
pub fn evaluate(lines: &[KpiLine], terms: &PayoutTerms) -> Evaluation {
    let cap = bp(terms.cap_bp);
    let measured = |line: &KpiLine| line.fact.filter(|f| f.is_finite());
    let total_weight: u64 = lines.iter().filter(|l| measured(l).is_some()).map(|l| u64::from(l.weight_bp)).sum();
    let results: Vec<KpiResult> = lines
        .iter()
        .map(|line| {
            let (effective_weight, attainment, credited, credit) = match measured(line) {
                Some(fact) => {
                    let a = attainment(line.direction, fact, line.plan, cap);
                    let (c, credit) = credited(a, terms);
                    let w = if total_weight == 0 { 0.0 } else { f64::from(line.weight_bp) / total_weight as f64 };
                    (w, Some(a), c, Some(credit))
                }
                None => (0.0, None, 0.0, None),
            };
            KpiResult {
                code: line.code.clone(),
                weight_bp: line.weight_bp,
                effective_weight,
                fact: line.fact,
                plan: line.plan,
                attainment,
                credited,
                credit,
                contribution: effective_weight * credited,
            }
        })
        .collect();
    let mut contributions: Vec<f64> = results.iter().map(|r| r.contribution).collect();
    contributions.sort_by(f64::total_cmp);
    Evaluation { results, weighted_attainment: contributions.iter().sum() }
}

/// Rounds half away from zero and saturates to [`Money`] (NaN = 0).
fn round_money(value: f64) -> Money {
    // `as` saturates at the bounds and maps NaN to 0.
    value.round() as Money
}

/// The bonus: base x (min(W, 1) + k x max(W - 1, 0)), rounded half away from
/// zero to minor units. A negative or NaN W pays nothing; at W <= 1 the
/// accelerator plays no part (so W = 1 pays exactly the base).
pub fn bonus(base: Money, weighted_attainment: f64, accelerator: f64) -> Money {
    let w = weighted_attainment.max(0.0);
    let factor = if w <= 1.0 { w } else { 1.0 + accelerator * (w - 1.0) };
    if factor == 1.0 {
        return base;
    }
    round_money(base as f64 * factor)
}

/// Seasonal coefficients (domain.md section 4, Plans): `history` = per
/// previous year, revenue of months 1..12. Coefficient of month m = mean
/// revenue of month m over the years / mean monthly revenue over those years
/// (= 12 x month total / grand total). Flat 1.0 for all months when there is
/// no history or it sums to zero or less. A month whose total is negative
/// (net returns) gets 0, not a negative plan, and the others are normalised
/// without it, so the coefficients always average to 1.
pub fn seasonal_coefficients(history: &[[Money; 12]]) -> [f64; 12] {
    let mut months = [0i128; 12];
    for year in history {
        for (total, revenue) in months.iter_mut().zip(year) {
            *total += i128::from(*revenue);
        }
    }
    if months.iter().sum::<i128>() <= 0 {
        return [1.0; 12];
    }
    let months = months.map(|m| m.max(0));
    let total = months.iter().sum::<i128>() as f64;
    months.map(|m| (12 * m) as f64 / total)
}

/// Splits `total` minor units in proportion to non-negative `weights` so that
/// the parts sum exactly to `total` (largest remainder; ties to the lower
/// index); equal parts when all weights are 0; empty input -> empty.
/// Negative and non-finite weights count as 0. A negative total is split as
/// its absolute value and negated, so parts keep the total's sign.
pub fn split_minor_units(total: Money, weights: &[f64]) -> Vec<Money> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let clean: Vec<f64> = weights.iter().map(|&w| if w.is_finite() && w > 0.0 { w } else { 0.0 }).collect();
    // Scaled by the largest so that the sum cannot overflow to infinity.
    let largest = clean.iter().copied().fold(0.0, f64::max);
    let clean: Vec<f64> = if largest > 0.0 { clean.iter().map(|w| w / largest).collect() } else { vec![1.0; n] };
    let sum: f64 = clean.iter().sum();
    let magnitude = i128::from(total).abs();
    let exact: Vec<f64> = clean.iter().map(|w| magnitude as f64 * (w / sum)).collect();
    let mut parts: Vec<i128> = exact.iter().map(|e| e.floor() as i128).collect();
    // Normally 0 <= remainder < n; the general form survives float noise.
    let remainder = magnitude - parts.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..n).collect();
    let fraction = |i: usize| exact[i] - parts[i] as f64;
    order.sort_by(|&a, &b| fraction(b).total_cmp(&fraction(a)).then(a.cmp(&b)));
    let n_parts = n as i128;
    let (each, extra) = (remainder.div_euclid(n_parts), remainder.rem_euclid(n_parts));
    for part in &mut parts {
        *part += each;
    }
    for &i in order.iter().take(extra as usize) {
        parts[i] += 1;
    }
    let sign = if total < 0 { -1 } else { 1 };
    parts
        .into_iter()
        .map(|p| Money::try_from(sign * p).unwrap_or(if sign < 0 { Money::MIN } else { Money::MAX }))
        .collect()
}

/// Monthly plan of a year: annual target x growth factor split by the
/// coefficients (annual x growth x coef / 12, rounded by
/// [`split_minor_units`] so that the months sum exactly to annual x growth,
/// itself rounded half away from zero). The coefficients are used as
/// proportions, so ones that do not average exactly 1 still split the whole
/// target.
pub fn monthly_plan(annual_target: Money, growth_factor: f64, coefficients: &[f64; 12]) -> [Money; 12] {
    // Growth 1.0 keeps targets above 2^53 exact.
    let target = if growth_factor == 1.0 { annual_target } else { round_money(annual_target as f64 * growth_factor) };
    let parts = split_minor_units(target, coefficients);
    std::array::from_fn(|i| parts[i])
}

fn days_in_month(date: NaiveDate) -> i64 {
    let first = date.with_day(1).unwrap_or(date);
    let next = first.checked_add_months(chrono::Months::new(1));
    next.map_or(31, |next| (next - first).num_days())
}

/// `numerator / denominator` rounded half away from zero (`denominator` > 0).
fn div_round(numerator: i128, denominator: i128) -> i128 {
    let (q, r) = (numerator / denominator, numerator % denominator);
    if 2 * r.abs() >= denominator { q + numerator.signum() } else { q }
}

/// Plan to date for the daily plan/fact view: the full months before
/// `as_of`'s month plus the current month prorated by calendar days elapsed
/// (`as_of` inclusive), rounded half away from zero. `monthly` is the year's
/// monthly plan; only `as_of`'s month and day are read (its year gives the
/// length of February).
pub fn plan_to_date(monthly: &[Money; 12], as_of: NaiveDate) -> Money {
    let month = as_of.month0() as usize;
    let before: i128 = monthly[..month].iter().map(|&m| i128::from(m)).sum();
    let current = div_round(i128::from(monthly[month]) * i128::from(as_of.day()), i128::from(days_in_month(as_of)));
    let total = before + current;
    Money::try_from(total).unwrap_or(if total < 0 { Money::MIN } else { Money::MAX })
}

/// Competition ranking ("1224") by weighted attainment: 1 for the best, equal
/// attainments share a rank and the ranks after them skip, so a rank is one
/// plus the number of strictly better attainments. The ranks come back in
/// the order of `attainments`.
pub fn competition_ranks(attainments: &[f64]) -> Vec<i32> {
    let mut best_first: Vec<usize> = (0..attainments.len()).collect();
    best_first.sort_by(|&a, &b| attainments[b].total_cmp(&attainments[a]));
    let mut ranks = vec![0; attainments.len()];
    let mut previous: Option<(f64, i32)> = None;
    for (position, &i) in best_first.iter().enumerate() {
        let rank = match previous {
            Some((attainment, rank)) if attainment == attainments[i] => rank,
            _ => i32::try_from(position + 1).unwrap_or(i32::MAX),
        };
        ranks[i] = rank;
        previous = Some((attainments[i], rank));
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranks_share_ties_and_skip_after_them() {
        // 1.1 twice shares 1, then 0.9 is third (not second), 0.5 fourth.
        assert_eq!(competition_ranks(&[0.9, 1.1, 1.1, 0.5]), [3, 1, 1, 4]);
        assert_eq!(competition_ranks(&[0.0]), [1]);
        assert_eq!(competition_ranks(&[]), Vec::<i32>::new());
        assert_eq!(competition_ranks(&[0.7, 0.7, 0.7]), [1, 1, 1]);
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn sheet(pairs: &[(&str, f64)]) -> FactSheet {
        let mut sheet = FactSheet::default();
        for (key, value) in pairs {
            sheet.add(key, *value);
        }
        sheet
    }

    fn line(code: &str, weight_bp: BasisPoints, direction: Direction, fact: Option<f64>, plan: f64) -> KpiLine {
        KpiLine { code: code.into(), weight_bp, direction, fact, plan }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_catalogue_has_unique_codes_and_known_fact_keys() {
        assert_eq!(CATALOGUE.len(), 23);
        for (i, kpi) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[..i].iter().all(|other| other.code != kpi.code), "duplicate {}", kpi.code);
            assert!(facts::ALL.contains(&kpi.numerator), "{}", kpi.code);
            assert!(kpi.denominator.is_none_or(|key| facts::ALL.contains(&key)), "{}", kpi.code);
            assert_eq!(definition(kpi.code), Some(kpi));
            // Ratios are never additive; counts and amounts are, except stocks.
            if kpi.denominator.is_some() {
                assert!(!kpi.additive, "{}", kpi.code);
            }
        }
        assert_eq!(definition("nope"), None);
        let lower: Vec<_> = CATALOGUE.iter().filter(|k| k.direction == Lower).map(|k| k.code).collect();
        assert_eq!(
            lower,
            ["class_downgrades", "lost_clients", "first_response_time", "sla_breaches", "overdue_control_points"]
        );
        let stock = definition("clients_at_initial_stage").unwrap();
        assert!(!stock.additive);
        assert_eq!(stock.period_plan(50.0, 3), 50.0);
        assert_eq!(definition("sales_amount").unwrap().period_plan(1_000.0, 3), 3_000.0);
        assert!(definition("lost_clients").unwrap().additive);
    }

    #[test]
    fn values_are_ratios_of_facts_and_unmeasured_without_a_denominator() {
        let empty = FactSheet::default();
        // Counts and amounts are always measured: 0 is a real 0.
        assert_eq!(definition("new_clients").unwrap().value(&empty), Some(0.0));
        assert_eq!(definition("lead_conversion").unwrap().value(&empty), None);
        assert_eq!(definition("first_response_time").unwrap().value(&empty), None);
        let facts = sheet(&[
            (facts::LEADS, 40.0),
            (facts::CONVERTED_LEADS, 10.0),
            (facts::ANSWERED_LEADS, 4.0),
            (facts::RESPONSE_SECONDS_TOTAL, 1_200.0),
            (facts::NPS_ANSWERS, 4.0),
            (facts::NPS_POINTS_TOTAL, 200.0),
            (facts::CLIENTS_WITH_PURCHASES, 80.0),
            (facts::RESPONDING_CLIENTS, 20.0),
            (facts::SALES_AMOUNT, 12_345.0),
        ]);
        assert_eq!(definition("lead_conversion").unwrap().value(&facts), Some(25.0)); // 10 / 40 x 100
        assert_eq!(definition("first_response_time").unwrap().value(&facts), Some(300.0)); // 1200 / 4
        assert_eq!(definition("nps").unwrap().value(&facts), Some(50.0)); // 200 / 4
        assert_eq!(definition("feedback_coverage").unwrap().value(&facts), Some(25.0)); // 20 / 80 x 100
        assert_eq!(definition("sales_amount").unwrap().value(&facts), Some(12_345.0));
        // A negative count is broken data: unmeasured, not a negative ratio.
        assert_eq!(definition("nps").unwrap().value(&sheet(&[(facts::NPS_ANSWERS, -1.0)])), None);
    }

    #[test]
    fn a_team_lead_s_kpis_are_the_formula_over_summed_facts() {
        // A: 10 leads, 3 converted, 8 answered in 300 s on average.
        let a = sheet(&[
            (facts::LEADS, 10.0),
            (facts::CONVERTED_LEADS, 3.0),
            (facts::ANSWERED_LEADS, 8.0),
            (facts::RESPONSE_SECONDS_TOTAL, 8.0 * 300.0),
            (facts::QUALITY_SCORED, 1.0),
            (facts::QUALITY_POINTS_TOTAL, 90.0),
        ]);
        // B: 30 leads, 9 converted, 2 answered in 1200 s on average; no quality score.
        let b = sheet(&[
            (facts::LEADS, 30.0),
            (facts::CONVERTED_LEADS, 9.0),
            (facts::ANSWERED_LEADS, 2.0),
            (facts::RESPONSE_SECONDS_TOTAL, 2.0 * 1_200.0),
        ]);
        let mut team = FactSheet::default();
        team.merge(&a);
        team.merge(&b);
        assert_eq!(team.get(facts::LEADS), 40.0);
        // Conversion 12 / 40 = 30 %.
        assert_eq!(definition("lead_conversion").unwrap().value(&team), Some(30.0));
        // Response (2400 + 2400) / (8 + 2) = 480 s, not the mean of means (750 s).
        assert_eq!(definition("first_response_time").unwrap().value(&team), Some(480.0));
        // Quality: the mean over scored members only (90 / 1).
        assert_eq!(definition("quality_score").unwrap().value(&team), Some(90.0));
    }

    #[test]
    fn the_default_terms_are_domain_md_and_valid() {
        let terms = PayoutTerms::default();
        assert_eq!((terms.floor_bp, terms.cap_bp, terms.accelerator), (8_000, 15_000, 1.2));
        assert_eq!(terms.validate(), Ok(()));
        let bad = PayoutTerms {
            floor_bp: 10_500,
            cap_bp: 9_000,
            accelerator: f64::NAN,
            curve: vec![(8_000, 8_000), (8_000, 9_000), (9_000, 7_000)],
        };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["floor_bp", "cap_bp", "accelerator", "curve[1]", "curve[2]"]);
        let negative = PayoutTerms { accelerator: -0.1, ..PayoutTerms::default() };
        assert!(negative.validate().is_err());
    }

    #[test]
    fn the_floor_credits_nothing_below_80_percent_and_all_from_it() {
        let terms = PayoutTerms::default();
        assert_eq!(credited(0.79, &terms), (0.0, Credit::BelowFloor));
        assert_eq!(credited(0.80, &terms), (0.80, Credit::Full));
        // 80 of a plan of 100 is exactly the floor.
        assert_eq!(credited(attainment(Higher, 80.0, 100.0, 1.5), &terms), (0.80, Credit::Full));
        // Float noise of a percent KPI just under the floor still reaches it.
        let noisy = 0.8 - 1e-12;
        assert_eq!(credited(noisy, &terms), (noisy, Credit::Full));
        assert_eq!(credited(f64::NAN, &terms), (0.0, Credit::BelowFloor));
        assert_eq!(credited(-1.0, &terms), (0.0, Credit::BelowFloor));
    }

    #[test]
    fn the_cap_cuts_credit_at_150_percent() {
        let terms = PayoutTerms::default();
        assert_eq!(credited(1.7, &terms), (1.5, Credit::Capped));
        assert_eq!(credited(1.5, &terms), (1.5, Credit::Full));
        assert_eq!(credited(1.0, &terms), (1.0, Credit::Full));
    }

    #[test]
    fn lower_is_better_inverts_and_zero_counts_as_the_cap() {
        let terms = PayoutTerms::default();
        // Plan 600 s, fact 300 s: a = 600 / 300 = 2.0 -> credited 1.5 (capped).
        let a = attainment(Lower, 300.0, 600.0, 1.5);
        assert_eq!(a, 2.0);
        assert_eq!(credited(a, &terms), (1.5, Credit::Capped));
        // Fact 0 (no breaches): the cap, not infinity.
        assert_eq!(attainment(Lower, 0.0, 600.0, 1.5), 1.5);
        // Plan 600 s, fact 750 s: a = 0.8, exactly the floor.
        assert_eq!(attainment(Lower, 750.0, 600.0, 1.5), 0.8);
        // Plan 600 s, fact 800 s: a = 0.75 -> nothing.
        assert_eq!(credited(attainment(Lower, 800.0, 600.0, 1.5), &terms).1, Credit::BelowFloor);
        // A zero plan that slipped through: met -> cap, missed -> 0.
        assert_eq!(attainment(Higher, 5.0, 0.0, 1.5), 1.5);
        assert_eq!(attainment(Higher, -5.0, 0.0, 1.5), 0.0);
    }

    #[test]
    fn the_curve_interpolates_between_points() {
        // 80 % -> 60 %, 100 % -> 100 %, 120 % -> 150 %.
        let terms =
            PayoutTerms { curve: vec![(8_000, 6_000), (10_000, 10_000), (12_000, 15_000)], ..PayoutTerms::default() };
        assert_eq!(terms.validate(), Ok(()));
        // Before the first point, from (0, 0): 0.5 x 0.6 / 0.8 = 0.375 (below the floor for credit).
        assert!(close(terms.curve_at(0.5), 0.375));
        assert_eq!(credited(0.5, &terms), (0.0, Credit::BelowFloor));
        // On a point.
        assert!(close(credited(0.8, &terms).0, 0.6));
        // 0.9: 0.6 + (1.0 - 0.6) x (0.9 - 0.8) / (1.0 - 0.8) = 0.8.
        assert!(close(credited(0.9, &terms).0, 0.8));
        // 1.1: 1.0 + (1.5 - 1.0) x 0.1 / 0.2 = 1.25.
        assert!(close(credited(1.1, &terms).0, 1.25));
        // 1.3: slope 1 after the last point: 1.5 + 0.1 = 1.6 -> capped at 1.5.
        assert!(close(terms.curve_at(1.3), 1.6));
        assert_eq!(credited(1.3, &terms), (1.5, Credit::Capped));
        let high_cap = PayoutTerms { cap_bp: 20_000, ..terms };
        let (c, credit) = credited(1.3, &high_cap);
        assert!(close(c, 1.6));
        assert_eq!(credit, Credit::Full);
        // No curve: credited = attainment.
        assert_eq!(PayoutTerms::default().curve_at(1.234), 1.234);
    }

    #[test]
    fn evaluate_redistributes_the_weight_of_an_unmeasured_kpi() {
        let terms = PayoutTerms::default();
        let lines = [
            line("sales_amount", 5_000, Higher, Some(1_000_000.0), 1_000_000.0), // a = 1.0
            line("lead_conversion", 3_000, Higher, Some(27.0), 30.0),            // a = 0.9
            line("first_response_time", 2_000, Lower, None, 600.0),              // no leads
        ];
        let e = evaluate(&lines, &terms);
        // 50 / 80 = 0.625 and 30 / 80 = 0.375; W = 0.625 x 1.0 + 0.375 x 0.9 = 0.9625.
        assert_eq!(e.results.iter().map(|r| r.effective_weight).collect::<Vec<_>>(), [0.625, 0.375, 0.0]);
        assert!(close(e.weighted_attainment, 0.9625));
        let missing = &e.results[2];
        assert_eq!((missing.attainment, missing.credit, missing.contribution), (None, None, 0.0));
        assert_eq!(e.results[1].credit, Some(Credit::Full));
        assert!(close(e.results[1].contribution, 0.3375));
        // Nothing measured: W = 0.
        let none = evaluate(&[line("nps", 10_000, Higher, None, 50.0)], &terms);
        assert_eq!(none.weighted_attainment, 0.0);
        assert!(evaluate(&[], &terms).results.is_empty());
    }

    #[test]
    fn evaluate_applies_floor_and_cap_per_kpi() {
        let terms = PayoutTerms::default();
        let lines = [
            line("new_clients", 4_000, Higher, Some(17.0), 10.0), // a = 1.7 -> 1.5
            line("sla_breaches", 3_000, Lower, Some(0.0), 5.0),   // no breaches -> cap 1.5
            line("nps", 3_000, Higher, Some(39.5), 50.0),         // a = 0.79 -> 0
        ];
        let e = evaluate(&lines, &terms);
        let credits: Vec<_> = e.results.iter().map(|r| r.credit).collect();
        assert_eq!(credits, [Some(Credit::Capped), Some(Credit::Full), Some(Credit::BelowFloor)]);
        // W = 0.4 x 1.5 + 0.3 x 1.5 + 0.3 x 0 = 1.05.
        assert!(close(e.weighted_attainment, 1.05));
    }

    #[test]
    fn bonus_is_linear_to_plan_and_accelerated_over_it() {
        // W = 1.1, k = 1.2: 10 000 x (1 + 1.2 x (1.1 - 1)) = 10 000 x 1.12 = 11 200.
        assert_eq!(bonus(10_000, 1.1, 1.2), 11_200);
        // W = 0.9: 10 000 x 0.9 = 9 000; the accelerator plays no part.
        assert_eq!(bonus(10_000, 0.9, 1.2), 9_000);
        // W = 1.5, k = 1.2: 10 000 x (1 + 0.6) = 16 000.
        assert_eq!(bonus(10_000, 1.5, 1.2), 16_000);
        assert_eq!(bonus(10_000, 1.0, 1.2), 10_000);
        assert_eq!(bonus(10_000, 0.0, 1.2), 0);
        assert_eq!(bonus(10_000, -0.5, 1.2), 0);
        assert_eq!(bonus(10_000, f64::NAN, 1.2), 0);
        // 333 x 0.5 = 166.5 -> 167 (half away from zero).
        assert_eq!(bonus(333, 0.5, 1.2), 167);
        assert_eq!(bonus(Money::MAX, 1.0, 1.2), Money::MAX);
    }

    #[test]
    fn seasonal_coefficients_of_two_years() {
        // Year 1: 80 a month, December 200 (1 080); year 2: 100 a month, December 220 (1 320).
        let mut y1 = [80; 12];
        y1[11] = 200;
        let mut y2 = [100; 12];
        y2[11] = 220;
        let c = seasonal_coefficients(&[y1, y2]);
        // Mean monthly revenue = 2 400 / 24 = 100; mean of January = (80 + 100) / 2 = 90 -> 0.9;
        // mean of December = (200 + 220) / 2 = 210 -> 2.1. 11 x 0.9 + 2.1 = 12.
        let mut expected = [0.9; 12];
        expected[11] = 2.1;
        assert_eq!(c, expected);
        assert_eq!(seasonal_coefficients(&[]), [1.0; 12]);
        assert_eq!(seasonal_coefficients(&[[0; 12]]), [1.0; 12]);
        assert_eq!(seasonal_coefficients(&[[-5; 12]]), [1.0; 12]);
        // A month of net returns gets 0, the rest normalised without it: 12 x 100 / 1 100.
        let mut returns = [100; 12];
        returns[0] = -50;
        let c = seasonal_coefficients(&[returns]);
        assert_eq!(c[0], 0.0);
        assert!(close(c[1], 1200.0 / 1100.0));
    }

    #[test]
    fn split_minor_units_hands_out_remainders_to_the_largest_fractions() {
        // 33.33 each: the one left-over unit goes to the lowest index.
        assert_eq!(split_minor_units(100, &[1.0, 1.0, 1.0]), [34, 33, 33]);
        // 66.67 and 33.33: floors 66 + 33, the unit to the larger fraction.
        assert_eq!(split_minor_units(100, &[2.0, 1.0]), [67, 33]);
        // 1.67 x 6: floors 6, four units to the first four.
        assert_eq!(split_minor_units(10, &[1.0; 6]), [2, 2, 2, 2, 1, 1]);
        // 2.5, 7.5 -> 2 + 7, fractions tie: the lower index.
        assert_eq!(split_minor_units(10, &[1.0, 3.0]), [3, 7]);
        assert_eq!(split_minor_units(10, &[0.5, 0.3, 0.2]), [5, 3, 2]);
        assert_eq!(split_minor_units(-100, &[1.0, 1.0, 1.0]), [-34, -33, -33]);
        assert_eq!(split_minor_units(5, &[0.0, 0.0]), [3, 2]);
        assert_eq!(split_minor_units(5, &[-1.0, f64::NAN, 1.0]), [0, 0, 5]);
        assert!(split_minor_units(5, &[]).is_empty());
    }

    #[test]
    fn monthly_plan_splits_the_grown_target_by_season() {
        let mut coefficients = [0.9; 12];
        coefficients[11] = 2.1;
        // 1 200 000 x 1.1 = 1 320 000; x 0.9 / 12 = 99 000; December x 2.1 / 12 = 231 000.
        let plan = monthly_plan(1_200_000, 1.1, &coefficients);
        let mut expected = [99_000; 12];
        expected[11] = 231_000;
        assert_eq!(plan, expected);
        // 1 000 flat: 83.33 a month, the four left-over units to January-April.
        let flat = monthly_plan(1_000, 1.0, &[1.0; 12]);
        assert_eq!(flat, [84, 84, 84, 84, 83, 83, 83, 83, 83, 83, 83, 83]);
        assert_eq!(flat.iter().sum::<Money>(), 1_000);
    }

    #[test]
    fn plan_to_date_prorates_the_current_month() {
        let mut monthly = [31_000; 12];
        monthly[1] = 28_000;
        monthly[2] = 10_000;
        // 15 March: January 31 000 + February 28 000 + 10 000 x 15 / 31 = 4 838.7 -> 4 839.
        assert_eq!(plan_to_date(&monthly, d(2026, 3, 15)), 31_000 + 28_000 + 4_839);
        // 10 February of a leap year: 31 000 + 28 000 x 10 / 29 = 9 655.17 -> 9 655.
        assert_eq!(plan_to_date(&monthly, d(2024, 2, 10)), 31_000 + 9_655);
        // 1 January: 31 000 / 31.
        assert_eq!(plan_to_date(&monthly, d(2026, 1, 1)), 1_000);
        // 31 December: the whole year.
        assert_eq!(plan_to_date(&monthly, d(2026, 12, 31)), monthly.iter().sum::<Money>());
        // Half a unit rounds away from zero: 1 x 15 / 30 = 0.5 -> 1.
        assert_eq!(plan_to_date(&[1; 12], d(2026, 4, 15)), 3 + 1);
        assert_eq!(plan_to_date(&[-1; 12], d(2026, 4, 15)), -3 - 1);
    }

    fn terms_strategy() -> impl Strategy<Value = PayoutTerms> {
        (0u32..=10_000, 10_000u32..=30_000, proptest::collection::vec((1u32..5_000, 0u32..5_000), 0..5)).prop_map(
            |(floor_bp, cap_bp, steps)| {
                // Cumulative steps make a valid curve.
                let mut curve = Vec::new();
                let (mut x, mut y) = (0, 0);
                for (dx, dy) in steps {
                    x += dx;
                    y += dy;
                    curve.push((x, y));
                }
                PayoutTerms { floor_bp, cap_bp, accelerator: 1.2, curve }
            },
        )
    }

    fn line_strategy() -> impl Strategy<Value = KpiLine> {
        ("[a-c]", 0u32..5_000, any::<bool>(), proptest::option::weighted(0.7, 0.0f64..1_000.0), 0.5f64..1_000.0)
            .prop_map(|(code, weight_bp, lower, fact, plan)| {
                line(&code, weight_bp, if lower { Lower } else { Higher }, fact, plan)
            })
    }

    proptest! {
        #[test]
        fn a_rank_is_one_plus_the_strictly_better(attainments in proptest::collection::vec(0u8..6, 0..30)) {
            let attainments: Vec<f64> = attainments.into_iter().map(|a| f64::from(a) / 4.0).collect();
            let ranks = competition_ranks(&attainments);
            for (i, &rank) in ranks.iter().enumerate() {
                let better = attainments.iter().filter(|&&a| a > attainments[i]).count();
                prop_assert_eq!(rank as usize, better + 1);
            }
        }

        #[test]
        fn split_sums_to_total_and_stays_within_one_of_the_exact_share(
            total in -1_000_000_000_000i64..1_000_000_000_000,
            weights in proptest::collection::vec(0.0f64..1_000.0, 1..20),
        ) {
            let parts = split_minor_units(total, &weights);
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().sum::<Money>(), total);
            let sum: f64 = weights.iter().sum();
            for (part, w) in parts.iter().zip(&weights) {
                let exact = if sum > 0.0 { total as f64 * w / sum } else { total as f64 / weights.len() as f64 };
                // 1 plus the float error of the shares themselves (about 1e-4 at 1e12).
                prop_assert!((*part as f64 - exact).abs() <= 1.0 + 1e-3, "part {} exact {}", part, exact);
            }
        }

        #[test]
        fn seasonal_coefficients_average_to_one_and_ignore_scale(
            history in proptest::collection::vec(proptest::array::uniform12(0i64..10_000_000), 1..5),
            scale in 1i64..1_000,
        ) {
            let c = seasonal_coefficients(&history);
            prop_assert!((c.iter().sum::<f64>() / 12.0 - 1.0).abs() < 1e-9);
            let scaled: Vec<[Money; 12]> = history.iter().map(|y| y.map(|m| m * scale)).collect();
            let s = seasonal_coefficients(&scaled);
            for (a, b) in c.iter().zip(&s) {
                prop_assert!((a - b).abs() < 1e-9, "{} vs {}", a, b);
            }
        }

        #[test]
        fn credited_is_monotone_and_never_above_the_cap(
            terms in terms_strategy(),
            a in -1.0f64..5.0,
            delta in 0.0f64..2.0,
        ) {
            let cap = bp(terms.cap_bp);
            let (low, _) = credited(a, &terms);
            let (high, _) = credited(a + delta, &terms);
            prop_assert!(low <= high, "{} -> {}, {} -> {}", a, low, a + delta, high);
            prop_assert!((0.0..=cap).contains(&low) && high <= cap);
        }

        #[test]
        fn bonus_is_monotone_in_w_and_the_base_at_plan(
            base in 0i64..1_000_000_000,
            w in 0.0f64..3.0,
            delta in 0.0f64..1.0,
            k in 0.0f64..3.0,
        ) {
            prop_assert!(bonus(base, w, k) <= bonus(base, w + delta, k));
            prop_assert_eq!(bonus(base, 1.0, k), base);
        }

        #[test]
        fn evaluate_weights_sum_to_one_and_order_does_not_matter(
            (lines, order) in proptest::collection::vec(line_strategy(), 1..8)
                .prop_flat_map(|lines| {
                    let n = lines.len();
                    (Just(lines), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
                }),
            terms in terms_strategy(),
        ) {
            let e = evaluate(&lines, &terms);
            let measured_weight: u32 = lines.iter().filter(|l| l.fact.is_some()).map(|l| l.weight_bp).sum();
            let sum: f64 = e.results.iter().map(|r| r.effective_weight).sum();
            if measured_weight > 0 {
                prop_assert!((sum - 1.0).abs() < 1e-9, "{}", sum);
            } else {
                prop_assert_eq!(sum, 0.0);
                prop_assert_eq!(e.weighted_attainment, 0.0);
            }
            let permuted: Vec<KpiLine> = order.iter().map(|&i| lines[i].clone()).collect();
            let p = evaluate(&permuted, &terms);
            prop_assert_eq!(p.weighted_attainment, e.weighted_attainment);
            for (j, &i) in order.iter().enumerate() {
                prop_assert_eq!(&p.results[j], &e.results[i]);
            }
        }
    }
}
