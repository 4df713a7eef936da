//! Every number behind a bonus line, in figures and in words: per KPI the
//! facts of each person counted (with the records behind them), the plan,
//! attainment, credit and contribution; then W and the bonus.
use crate::compute::{BonusLine, CreditKind, KpiOutcome};
use crate::convert;
use crate::upstream::{self, EmployeeFacts};
use branchscore_proto::common::v1::FactSource;
use branchscore_proto::kpi::v1 as wire;
use branchscore_scoring::kpi::{self, Direction, PayoutTerms};
use std::collections::BTreeMap;

fn ratio(bp: u32) -> f64 {
    f64::from(bp) / f64::from(branchscore_scoring::FULL_SHARE_BP)
}

/// How one KPI's credit follows from its fact and plan.
fn kpi_formula(outcome: &KpiOutcome, definition: &kpi::KpiDefinition, terms: &PayoutTerms, people: usize) -> String {
    let team = if people > 1 { format!(" (summed over {people} people)") } else { String::new() };
    let value = match definition.denominator {
        Some(denominator) => {
            format!("{} = {} / {} x {}", definition.code, definition.numerator, denominator, definition.scale)
        }
        None if definition.numerator == definition.code => definition.code.to_owned(),
        None => format!("{} = {}", definition.code, definition.numerator),
    };
    let (Some(fact), Some(attainment)) = (outcome.fact, outcome.attainment) else {
        return format!("{value}{team}: not measured (nothing to divide by); its weight went to the other KPIs");
    };
    let division = match definition.direction {
        Direction::HigherIsBetter => format!("a = fact / plan = {fact:.2} / {:.2} = {attainment:.4}", outcome.plan),
        Direction::LowerIsBetter if fact == 0.0 => "a = cap (lower is better and the fact is 0)".to_owned(),
        Direction::LowerIsBetter => {
            format!("a = plan / fact = {:.2} / {fact:.2} = {attainment:.4} (lower is better)", outcome.plan)
        }
    };
    let credit = match outcome.credit {
        CreditKind::BelowFloor => format!("below the floor {:.2}: credited 0", ratio(terms.floor_bp)),
        CreditKind::Capped => format!("capped at {:.2}", ratio(terms.cap_bp)),
        CreditKind::Full | CreditKind::NotMeasured => format!("credited {:.4}", outcome.credited),
    };
    format!(
        "{value}{team} = {fact:.2}; {division}; {credit}; contribution = {:.4} x {:.4} = {:.4}",
        outcome.effective_weight, outcome.credited, outcome.contribution
    )
}

/// How W and the bonus follow from the KPIs.
pub fn line_formula(line: &BonusLine, accelerator: f64) -> String {
    let contributions: Vec<String> = line.results.iter().map(|r| format!("{:.4}", r.contribution)).collect();
    let w = line.weighted_attainment;
    format!(
        "W = {} = {w:.4}; bonus = base x (min(W, 1) + k x max(W - 1, 0)) = {} x ({:.4} + {accelerator} x {:.4}) = {} \
         (minor units)",
        contributions.join(" + "),
        line.base_bonus,
        w.min(1.0),
        (w - 1.0).max(0.0),
        line.bonus
    )
}

/// Per KPI of `line`: its result, formula and the facts of every person
/// counted (`people`: the employee first, then the team), with sources.
pub fn kpis(
    line: &BonusLine,
    terms: &PayoutTerms,
    people: &[String],
    facts: &BTreeMap<String, EmployeeFacts>,
) -> Vec<wire::KpiBreakdown> {
    let empty = EmployeeFacts::default();
    line.results
        .iter()
        .filter_map(|outcome| {
            let definition = kpi::definition(&outcome.kpi_code)?;
            let keys = std::iter::once(definition.numerator).chain(definition.denominator);
            let mut values = Vec::new();
            for key in keys {
                for person in people {
                    let theirs = facts.get(person).unwrap_or(&empty);
                    let fields = upstream::source_fields(key);
                    values.push(wire::FactValue {
                        employee_id: person.clone(),
                        fact: key.to_owned(),
                        value: theirs.sheet.get(key),
                        sources: theirs
                            .sources
                            .iter()
                            .filter(|s| fields.contains(&s.fact.as_str()))
                            .map(|s| FactSource { fact: s.fact.clone(), kind: s.kind.clone(), id: s.id.clone() })
                            .collect(),
                    });
                }
            }
            Some(wire::KpiBreakdown {
                result: Some(convert::outcome(outcome)),
                formula: kpi_formula(outcome, definition, terms, people.len()),
                facts: values,
            })
        })
        .collect()
}
