//! Between the wire (`branchscore.kpi.v1`) and the service's own types,
//! validating what comes in.
use crate::compute::{self, CreditKind, KpiOutcome, ScorecardLine};
use crate::store::{PeriodStatus, PeriodVersion, StoredScorecard};
use branchscore_platform::validate::Violations;
use branchscore_proto::common::v1::{Date, EmployeeRole, Money};
use branchscore_proto::convert::timestamp;
use branchscore_proto::kpi::v1 as wire;
use branchscore_scoring::FULL_SHARE_BP;
use branchscore_scoring::kpi::{self, Direction, KpiDefinition, PayoutTerms, Source, Unit};
use chrono::{Datelike, Months, NaiveDate};
use std::collections::BTreeSet;

pub fn money(minor_units: i64, currency: &str) -> Option<Money> {
    Some(Money { minor_units, currency: currency.to_owned() })
}

pub fn kpi(definition: &KpiDefinition) -> wire::Kpi {
    wire::Kpi {
        code: definition.code.into(),
        name: definition.name.into(),
        description: definition.description.into(),
        source: match definition.source {
            Source::Clients => wire::KpiSource::Clients,
            Source::Pipeline => wire::KpiSource::Pipeline,
            Source::Feedback => wire::KpiSource::Feedback,
        } as i32,
        unit: match definition.unit {
            Unit::Count => wire::KpiUnit::Count,
            Unit::Money => wire::KpiUnit::Money,
            Unit::Percent => wire::KpiUnit::Percent,
            Unit::Seconds => wire::KpiUnit::Seconds,
            Unit::Points => wire::KpiUnit::Points,
        } as i32,
        direction: match definition.direction {
            Direction::HigherIsBetter => wire::KpiDirection::HigherIsBetter,
            Direction::LowerIsBetter => wire::KpiDirection::LowerIsBetter,
        } as i32,
        additive: definition.additive,
    }
}

/// A required date; a violation when missing or not a real day.
pub fn date(v: &mut Violations, field: &str, date: Option<&Date>) -> Option<NaiveDate> {
    let parsed = date.and_then(Date::to_naive);
    v.check(parsed.is_some(), || field.to_owned(), "must be a real calendar date");
    parsed
}

/// A bonus period of whole months, at most a year long.
pub fn period(v: &mut Violations, from: Option<&Date>, to: Option<&Date>) -> Option<(NaiveDate, NaiveDate)> {
    let (from, to) = (date(v, "from", from), date(v, "to", to));
    let (from, to) = (from?, to?);
    v.check(from.day() == 1, || "from".into(), "must be the first day of a month");
    let last_of_month = to.checked_add_days(chrono::Days::new(1)).is_some_and(|next| next.day() == 1);
    v.check(last_of_month, || "to".into(), "must be the last day of a month");
    v.check(to > from, || "to".into(), "must be after from");
    let within_year = from.checked_add_months(Months::new(12)).is_some_and(|limit| to < limit);
    v.check(within_year, || "to".into(), "a period may span at most 12 months");
    Some((from, to))
}

/// Calendar months of a period (first days).
pub fn months(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    std::iter::successors(Some(from), |m| m.checked_add_months(Months::new(1))).take_while(|m| *m <= to).collect()
}

/// A scorecard from the wire, or the violations that keep it out.
pub fn scorecard(v: &mut Violations, wire: Option<&wire::Scorecard>, currency: &str) -> Option<compute::Scorecard> {
    let Some(card) = wire else {
        v.add("scorecard", "is required");
        return None;
    };
    let role = card.role();
    v.check(role != EmployeeRole::Unspecified, || "scorecard.role".into(), "must name a role");
    let effective_from = date(v, "scorecard.effective_from", card.effective_from.as_ref());
    v.check(!card.lines.is_empty(), || "scorecard.lines".into(), "must have at least one KPI");
    let mut seen = BTreeSet::new();
    let mut total_weight: i64 = 0;
    for (i, line) in card.lines.iter().enumerate() {
        v.check(kpi::definition(&line.kpi_code).is_some(), || format!("scorecard.lines[{i}].kpi_code"), "unknown KPI");
        v.check(seen.insert(&line.kpi_code), || format!("scorecard.lines[{i}].kpi_code"), "listed twice");
        v.check(line.weight_bp > 0, || format!("scorecard.lines[{i}].weight_bp"), "must be positive");
        v.check(
            line.plan.is_finite() && line.plan > 0.0,
            || format!("scorecard.lines[{i}].plan"),
            "must be a number above zero",
        );
        total_weight += i64::from(line.weight_bp);
    }
    if !card.lines.is_empty() && total_weight != i64::from(FULL_SHARE_BP) {
        v.add("scorecard.lines", format!("weights sum to {total_weight} bp, not {FULL_SHARE_BP} (100%)"));
    }
    let defaults = PayoutTerms::default();
    let basis_points = |v: &mut Violations, field: &str, value: Option<i32>, default: u32| -> u32 {
        match value.map(u32::try_from) {
            None => default,
            Some(Ok(bp)) => bp,
            Some(Err(_)) => {
                v.add(format!("scorecard.{field}"), "must not be negative");
                default
            }
        }
    };
    let mut curve = Vec::with_capacity(card.payout_curve.len());
    for (i, point) in card.payout_curve.iter().enumerate() {
        match (u32::try_from(point.attainment_bp), u32::try_from(point.credited_bp)) {
            (Ok(a), Ok(c)) => curve.push((a, c)),
            _ => v.add(format!("scorecard.payout_curve[{i}]"), "points must not be negative"),
        }
    }
    let terms = PayoutTerms {
        floor_bp: basis_points(v, "floor_bp", card.floor_bp, defaults.floor_bp),
        cap_bp: basis_points(v, "cap_bp", card.cap_bp, defaults.cap_bp),
        accelerator: card.accelerator.unwrap_or(defaults.accelerator),
        curve,
    };
    if let Err(problems) = terms.validate() {
        for problem in problems {
            v.add(format!("scorecard.{}", problem.field), problem.description);
        }
    }
    let base = card.monthly_base_bonus.as_ref();
    v.check(
        base.is_some_and(|m| m.minor_units >= 0 && m.currency == currency),
        || "scorecard.monthly_base_bonus".into(),
        &format!("must be a non-negative amount in {currency}"),
    );
    Some(compute::Scorecard {
        role,
        version: 0,
        effective_from: effective_from?,
        lines: card
            .lines
            .iter()
            .map(|l| ScorecardLine {
                kpi_code: l.kpi_code.clone(),
                weight_bp: u32::try_from(l.weight_bp).unwrap_or(0),
                plan: l.plan,
            })
            .collect(),
        terms,
        monthly_base_bonus: base.map_or(0, |m| m.minor_units),
    })
}

pub fn stored_scorecard(stored: &StoredScorecard) -> wire::Scorecard {
    let card = &stored.scorecard;
    let bp = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
    wire::Scorecard {
        role: card.role as i32,
        version: card.version,
        effective_from: Some(card.effective_from.into()),
        lines: card
            .lines
            .iter()
            .map(|l| wire::ScorecardLine { kpi_code: l.kpi_code.clone(), weight_bp: bp(l.weight_bp), plan: l.plan })
            .collect(),
        floor_bp: Some(bp(card.terms.floor_bp)),
        cap_bp: Some(bp(card.terms.cap_bp)),
        accelerator: Some(card.terms.accelerator),
        payout_curve: card
            .terms
            .curve
            .iter()
            .map(|&(a, c)| wire::PayoutPoint { attainment_bp: bp(a), credited_bp: bp(c) })
            .collect(),
        monthly_base_bonus: money(card.monthly_base_bonus, &stored.currency),
        create_time: Some(timestamp(stored.created_at)),
        created_by: stored.created_by.clone(),
    }
}

pub fn outcome(outcome: &KpiOutcome) -> wire::KpiResult {
    wire::KpiResult {
        kpi_code: outcome.kpi_code.clone(),
        weight_bp: i32::try_from(outcome.weight_bp).unwrap_or(i32::MAX),
        effective_weight: outcome.effective_weight,
        fact: outcome.fact,
        plan: outcome.plan,
        attainment: outcome.attainment,
        credited: outcome.credited,
        credit: match outcome.credit {
            CreditKind::NotMeasured => wire::Credit::NotMeasured,
            CreditKind::BelowFloor => wire::Credit::BelowFloor,
            CreditKind::Full => wire::Credit::Full,
            CreditKind::Capped => wire::Credit::Capped,
        } as i32,
        contribution: outcome.contribution,
    }
}

pub fn bonus_line(line: &compute::BonusLine, currency: &str) -> wire::BonusLine {
    wire::BonusLine {
        employee_id: line.employee_id.clone(),
        full_name: line.full_name.clone(),
        branch_id: line.branch_id.clone(),
        role: line.role as i32,
        scorecard_version: line.scorecard_version,
        team_member_ids: line.team_member_ids.clone(),
        results: line.results.iter().map(outcome).collect(),
        weighted_attainment: line.weighted_attainment,
        base_bonus: money(line.base_bonus, currency),
        bonus: money(line.bonus, currency),
        rank: line.rank,
    }
}

pub fn change(change: &compute::BonusChange, currency: &str) -> wire::BonusChange {
    wire::BonusChange {
        employee_id: change.employee_id.clone(),
        previous_bonus: money(change.previous.map_or(0, |p| p.0), currency),
        bonus: money(change.current.map_or(0, |c| c.0), currency),
        previous_weighted_attainment: change.previous.map_or(0.0, |p| p.1),
        weighted_attainment: change.current.map_or(0.0, |c| c.1),
    }
}

/// A period version with its lines (and the changes against `compared`).
pub fn bonus_period(
    version: &PeriodVersion,
    lines: &[compute::BonusLine],
    compared: Option<(i32, &[compute::BonusChange])>,
) -> wire::BonusPeriod {
    let currency = &version.currency;
    wire::BonusPeriod {
        from: Some(version.key.from.into()),
        to: Some(version.key.to.into()),
        version: version.version,
        status: match version.status {
            PeriodStatus::Draft => wire::PeriodStatus::Draft,
            PeriodStatus::Approved => wire::PeriodStatus::Approved,
            PeriodStatus::Exported => wire::PeriodStatus::Exported,
            PeriodStatus::Superseded => wire::PeriodStatus::Superseded,
        } as i32,
        compute_time: Some(timestamp(version.computed_at)),
        computed_by: version.computed_by.clone(),
        approve_time: version.approved_at.map(timestamp),
        approved_by: version.approved_by.clone().unwrap_or_default(),
        export_time: version.exported_at.map(timestamp),
        lines: lines.iter().map(|l| bonus_line(l, currency)).collect(),
        compared_with_version: compared.map_or(0, |(v, _)| v),
        changes: compared.map_or_else(Vec::new, |(_, changes)| changes.iter().map(|c| change(c, currency)).collect()),
        total_bonus: money(lines.iter().map(|l| l.bonus).sum(), currency),
    }
}
