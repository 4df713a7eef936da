//! A period's bonus lines from the roster, the facts, the scorecards in force
//! and the sales plans. The formulas live in `branchscore_scoring::kpi`; this
//! module decides who is measured on what: a person on their own facts, a team
//! lead on their team, a branch manager on their branch.
use crate::upstream::{Employee, EmployeeFacts};
use branchscore_proto::common::v1::EmployeeRole;
use branchscore_scoring::Money;
use branchscore_scoring::kpi::{self, Credit, FactSheet, KpiLine, PayoutTerms, competition_ranks};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One KPI of a scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorecardLine {
    pub kpi_code: String,
    pub weight_bp: u32,
    /// Per month for additive KPIs, the target for the others.
    pub plan: f64,
}

/// A version of a role's scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub role: EmployeeRole,
    pub version: i32,
    pub effective_from: NaiveDate,
    pub lines: Vec<ScorecardLine>,
    pub terms: PayoutTerms,
    pub monthly_base_bonus: Money,
}

/// How a KPI was credited (`None` of the formulas = not measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    NotMeasured,
    BelowFloor,
    Full,
    Capped,
}

/// One KPI of a bonus line, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiOutcome {
    pub kpi_code: String,
    pub weight_bp: u32,
    pub effective_weight: f64,
    pub fact: Option<f64>,
    pub plan: f64,
    pub attainment: Option<f64>,
    pub credited: f64,
    pub credit: CreditKind,
    pub contribution: f64,
}

/// One employee's bonus for the period.
#[derive(Debug, Clone, PartialEq)]
pub struct BonusLine {
    pub employee_id: String,
    pub full_name: String,
    pub branch_id: String,
    pub role: EmployeeRole,
    pub scorecard_version: i32,
    /// Besides the employee: whose facts and plans count (team leads, branch managers).
    pub team_member_ids: Vec<String>,
    pub results: Vec<KpiOutcome>,
    pub weighted_attainment: f64,
    pub base_bonus: Money,
    pub bonus: Money,
    pub rank: i32,
}

/// What a period is computed from.
#[derive(Debug)]
pub struct PeriodInputs<'a> {
    pub roster: &'a [Employee],
    pub facts: &'a BTreeMap<String, EmployeeFacts>,
    /// The version of each role's scorecard in force at the period's end.
    pub scorecards: &'a BTreeMap<i32, Scorecard>,
    /// Employees' sales plans for the whole period, where the years have one.
    pub sales_plans: &'a BTreeMap<String, Money>,
    /// Calendar months in the period.
    pub months: u32,
}

/// Whose facts count towards `employee`'s KPIs besides their own.
pub fn team_of<'a>(employee: &Employee, roster: &'a [Employee]) -> Vec<&'a Employee> {
    let member = |e: &&Employee| -> bool {
        e.id != employee.id
            && match employee.role {
                EmployeeRole::TeamLead => e.team_lead_id == employee.id,
                EmployeeRole::BranchManager => {
                    e.branch_id == employee.branch_id && matches!(e.role, EmployeeRole::Sales | EmployeeRole::TeamLead)
                }
                _ => false,
            }
    };
    roster.iter().filter(member).collect()
}

impl PeriodInputs<'_> {
    fn sheet(&self, employee_id: &str) -> Option<&FactSheet> {
        self.facts.get(employee_id).map(|f| &f.sheet)
    }

    /// The plan of one line for the period. A line's plan is the plan of
    /// whoever the line measures: the person, or for team leads and branch
    /// managers the team. Sales plans take its place where the year has
    /// them, summed over everyone measured.
    fn plan(&self, line: &ScorecardLine, definition: &kpi::KpiDefinition, measured: &[&Employee]) -> f64 {
        let sales_plan: Money = if line.kpi_code == kpi::facts::SALES_AMOUNT {
            measured.iter().filter_map(|p| self.sales_plans.get(&p.id)).sum()
        } else {
            0
        };
        if sales_plan > 0 { sales_plan as f64 } else { definition.period_plan(line.plan, self.months) }
    }

    fn line_for(&self, employee: &Employee, scorecard: &Scorecard) -> BonusLine {
        let team = team_of(employee, self.roster);
        let measured: Vec<&Employee> = std::iter::once(employee).chain(team.iter().copied()).collect();
        let mut sheet = self.sheet(&employee.id).cloned().unwrap_or_default();
        for member in &team {
            if let Some(theirs) = self.sheet(&member.id) {
                sheet.merge(theirs);
            }
        }
        let kpi_lines: Vec<KpiLine> = scorecard
            .lines
            .iter()
            .filter_map(|line| {
                let definition = kpi::definition(&line.kpi_code)?;
                Some(KpiLine {
                    code: line.kpi_code.clone(),
                    weight_bp: line.weight_bp,
                    direction: definition.direction,
                    fact: definition.value(&sheet),
                    plan: self.plan(line, definition, &measured),
                })
            })
            .collect();
        let evaluation = kpi::evaluate(&kpi_lines, &scorecard.terms);
        let base_bonus = scorecard.monthly_base_bonus.saturating_mul(i64::from(self.months));
        let bonus = kpi::bonus(base_bonus, evaluation.weighted_attainment, scorecard.terms.accelerator);
        BonusLine {
            employee_id: employee.id.clone(),
            full_name: employee.full_name.clone(),
            branch_id: employee.branch_id.clone(),
            role: employee.role,
            scorecard_version: scorecard.version,
            team_member_ids: team.iter().map(|m| m.id.clone()).collect(),
            results: evaluation.results.into_iter().map(outcome).collect(),
            weighted_attainment: evaluation.weighted_attainment,
            base_bonus,
            bonus,
            rank: 0,
        }
    }
}

fn outcome(result: kpi::KpiResult) -> KpiOutcome {
    KpiOutcome {
        credit: match result.credit {
            None => CreditKind::NotMeasured,
            Some(Credit::BelowFloor) => CreditKind::BelowFloor,
            Some(Credit::Full) => CreditKind::Full,
            Some(Credit::Capped) => CreditKind::Capped,
        },
        kpi_code: result.code,
        weight_bp: result.weight_bp,
        effective_weight: result.effective_weight,
        fact: result.fact,
        plan: result.plan,
        attainment: result.attainment,
        credited: result.credited,
        contribution: result.contribution,
    }
}

/// Every bonus line of the period, best weighted attainment first. An
/// employee gets a line when their role has a scorecard and they are active
/// or have facts in the period (someone who left mid-period is still paid).
pub fn bonus_lines(inputs: &PeriodInputs<'_>) -> Vec<BonusLine> {
    let mut lines: Vec<BonusLine> = inputs
        .roster
        .iter()
        .filter(|e| e.active || inputs.facts.contains_key(&e.id))
        .filter_map(|e| inputs.scorecards.get(&(e.role as i32)).map(|s| inputs.line_for(e, s)))
        .collect();
    rank(&mut lines);
    lines
}

/// Ranks the lines ([`competition_ranks`]) and sorts them best first, ties
/// in id order.
pub fn rank(lines: &mut [BonusLine]) {
    lines.sort_by(|a, b| {
        b.weighted_attainment.total_cmp(&a.weighted_attainment).then_with(|| a.employee_id.cmp(&b.employee_id))
    });
    let attainments: Vec<f64> = lines.iter().map(|line| line.weighted_attainment).collect();
    for (line, rank) in lines.iter_mut().zip(competition_ranks(&attainments)) {
        line.rank = rank;
    }
}

/// A bonus that differs between two versions of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct BonusChange {
    pub employee_id: String,
    pub previous: Option<(Money, f64)>,
    pub current: Option<(Money, f64)>,
}

/// The employees whose bonus or attainment changed, appeared or disappeared.
pub fn changes(previous: &[BonusLine], current: &[BonusLine]) -> Vec<BonusChange> {
    type Pair = (Option<(Money, f64)>, Option<(Money, f64)>);
    let mut by_employee: BTreeMap<&str, Pair> = BTreeMap::new();
    for line in previous {
        by_employee.entry(&line.employee_id).or_default().0 = Some((line.bonus, line.weighted_attainment));
    }
    for line in current {
        by_employee.entry(&line.employee_id).or_default().1 = Some((line.bonus, line.weighted_attainment));
    }
    by_employee
        .into_iter()
        .filter(|(_, (previous, current))| previous != current)
        .map(|(id, (previous, current))| BonusChange { employee_id: id.to_owned(), previous, current })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, branch: &str, role: EmployeeRole, lead: &str) -> Employee {
        Employee {
            id: id.into(),
            branch_id: branch.into(),
            full_name: id.into(),
            role,
            team_lead_id: lead.into(),
            active: true,
        }
    }

    fn sold(amount: f64, new_clients: f64) -> EmployeeFacts {
        let mut sheet = FactSheet::default();
        sheet.add(kpi::facts::SALES_AMOUNT, amount);
        sheet.add(kpi::facts::NEW_CLIENTS, new_clients);
        EmployeeFacts { sheet, sources: Vec::new() }
    }

    fn card(role: EmployeeRole, sales_plan: f64) -> Scorecard {
        Scorecard {
            role,
            version: 1,
            effective_from: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            lines: vec![
                ScorecardLine { kpi_code: "sales_amount".into(), weight_bp: 5_000, plan: sales_plan },
                ScorecardLine { kpi_code: "new_clients".into(), weight_bp: 5_000, plan: 1.0 },
            ],
            terms: PayoutTerms::default(),
            monthly_base_bonus: 1_000,
        }
    }

    fn roster() -> Vec<Employee> {
        vec![
            person("L", "WAW", EmployeeRole::TeamLead, ""),
            person("S1", "WAW", EmployeeRole::Sales, "L"),
            person("S2", "WAW", EmployeeRole::Sales, "L"),
            person("M", "WAW", EmployeeRole::BranchManager, ""),
            person("K", "KRK", EmployeeRole::Sales, ""),
        ]
    }

    #[test]
    fn teams_are_the_leads_reports_and_the_managers_branch() {
        let roster = roster();
        let ids = |e: &Employee| team_of(e, &roster).iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&roster[0]), ["S1", "S2"]);
        assert_eq!(ids(&roster[3]), ["L", "S1", "S2"]);
        assert!(ids(&roster[1]).is_empty());
    }

    #[test]
    fn sales_plans_replace_the_line_and_add_up_over_the_team() {
        let roster = roster();
        let facts: BTreeMap<String, EmployeeFacts> =
            [("S1", sold(300.0, 3.0)), ("S2", sold(100.0, 3.0))].map(|(id, f)| (id.to_owned(), f)).into();
        let scorecards: BTreeMap<i32, Scorecard> = [
            (EmployeeRole::Sales as i32, card(EmployeeRole::Sales, 100.0)),
            (EmployeeRole::TeamLead as i32, card(EmployeeRole::TeamLead, 1_000.0)),
        ]
        .into();
        // S1 has a sales plan of 200 for the quarter, S2 none (the line: 100 x 3 months).
        let sales_plans: BTreeMap<String, Money> = [("S1".to_owned(), 200)].into();
        let inputs = PeriodInputs {
            roster: &roster,
            facts: &facts,
            scorecards: &scorecards,
            sales_plans: &sales_plans,
            months: 3,
        };
        let lines = bonus_lines(&inputs);
        let plan_of = |id: &str| lines.iter().find(|l| l.employee_id == id).map(|l| l.results[0].plan);
        assert_eq!(plan_of("S1"), Some(200.0));
        assert_eq!(plan_of("S2"), Some(300.0));
        // The lead's team has S1's sales plan: it replaces the lead's line (1 000 x 3).
        assert_eq!(plan_of("L"), Some(200.0));
        // K is active without facts: measured and paid nothing; M's role has no scorecard.
        assert_eq!(lines.iter().find(|l| l.employee_id == "K").map(|l| l.bonus), Some(0));
        assert!(lines.iter().all(|l| l.employee_id != "M"));
    }

    fn ranked(id: &str, w: f64, bonus: Money) -> BonusLine {
        BonusLine {
            employee_id: id.into(),
            full_name: id.into(),
            branch_id: "WAW".into(),
            role: EmployeeRole::Sales,
            scorecard_version: 1,
            team_member_ids: Vec::new(),
            results: Vec::new(),
            weighted_attainment: w,
            base_bonus: 100,
            bonus,
            rank: 0,
        }
    }

    #[test]
    fn equal_attainment_shares_a_rank_and_the_next_one_skips() {
        let mut lines = vec![ranked("C", 0.9, 90), ranked("A", 1.1, 112), ranked("B", 1.1, 112), ranked("D", 0.5, 50)];
        rank(&mut lines);
        let order: Vec<(&str, i32)> = lines.iter().map(|l| (l.employee_id.as_str(), l.rank)).collect();
        assert_eq!(order, [("A", 1), ("B", 1), ("C", 3), ("D", 4)]);
    }

    #[test]
    fn changes_list_what_moved_appeared_or_left() {
        let before = [ranked("A", 1.0, 100), ranked("B", 0.9, 90), ranked("C", 0.8, 80)];
        let after = [ranked("A", 1.0, 100), ranked("B", 1.0, 100), ranked("D", 0.7, 70)];
        let changed: Vec<(String, Option<Money>, Option<Money>)> = changes(&before, &after)
            .into_iter()
            .map(|c| (c.employee_id, c.previous.map(|p| p.0), c.current.map(|p| p.0)))
            .collect();
        assert_eq!(
            changed,
            [("B".into(), Some(90), Some(100)), ("C".into(), Some(80), None), ("D".into(), None, Some(70))]
        );
    }
}
