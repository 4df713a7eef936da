//! A year's sales plan from the target and the sales history: seasonal
//! months first, then each employee's part (domain.md section 4, Plans).
use crate::store::{EmployeePlan, SalesPlan};
use crate::upstream::{Employee, MonthlySales};
use branchscore_scoring::kpi::{monthly_plan, seasonal_coefficients, split_minor_units};
use branchscore_scoring::{FULL_SHARE_BP, Money};
use chrono::{DateTime, Datelike, Utc};
use std::collections::BTreeMap;

/// How the target is shared between employees.
#[derive(Debug, Clone, PartialEq)]
pub enum Allocation {
    /// By each active employee's sales in the year before the plan's.
    LastYearShare,
    /// (employee id, basis points) summing to 100%.
    Explicit(Vec<(String, u32)>),
}

impl Allocation {
    fn name(&self) -> &'static str {
        match self {
            Allocation::LastYearShare => "PLAN_ALLOCATION_LAST_YEAR_SHARE",
            Allocation::Explicit(_) => "PLAN_ALLOCATION_EXPLICIT",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub year: i32,
    pub annual_target: Money,
    pub currency: String,
    pub growth_factor: f64,
    pub history_years: i32,
    pub allocation: Allocation,
}

/// Network revenue per previous year and month, oldest year first.
fn history_by_year(request: &PlanRequest, sales: &[MonthlySales]) -> Vec<[Money; 12]> {
    let first = request.year - request.history_years;
    let mut years = vec![[0; 12]; usize::try_from(request.history_years).unwrap_or(0)];
    for sale in sales {
        let index = usize::try_from(sale.month.year() - first).ok();
        if let Some(year) = index.and_then(|i| years.get_mut(i)) {
            year[sale.month.month0() as usize] += sale.amount;
        }
    }
    years
}

/// The plan, or why it cannot be shared out.
pub fn build(
    request: &PlanRequest,
    history: &[MonthlySales],
    roster: &[Employee],
    created_by: &str,
    created_at: DateTime<Utc>,
) -> Result<SalesPlan, String> {
    let coefficients = seasonal_coefficients(&history_by_year(request, history));
    let monthly = monthly_plan(request.annual_target, request.growth_factor, &coefficients);
    let branch_of: BTreeMap<&str, &str> = roster.iter().map(|e| (e.id.as_str(), e.branch_id.as_str())).collect();
    let shares: Vec<(String, f64)> = match &request.allocation {
        Allocation::Explicit(shares) => shares.iter().map(|(id, bp)| (id.clone(), f64::from(*bp))).collect(),
        Allocation::LastYearShare => {
            let mut last_year: BTreeMap<&str, Money> =
                roster.iter().filter(|e| e.active).map(|e| (e.id.as_str(), 0)).collect();
            for sale in history.iter().filter(|s| s.month.year() == request.year - 1) {
                if let Some(sum) = last_year.get_mut(sale.employee_id.as_str()) {
                    *sum += sale.amount;
                }
            }
            last_year.retain(|_, sum| *sum > 0);
            if last_year.is_empty() {
                return Err(format!(
                    "no active employee sold anything in {}: give the shares explicitly",
                    request.year - 1
                ));
            }
            last_year.into_iter().map(|(id, sum)| (id.to_owned(), sum as f64)).collect()
        }
    };
    let weights: Vec<f64> = shares.iter().map(|(_, w)| *w).collect();
    let share_bp = split_minor_units(i64::from(FULL_SHARE_BP), &weights);
    let per_month: Vec<Vec<Money>> = monthly.iter().map(|&month| split_minor_units(month, &weights)).collect();
    let employees = shares
        .iter()
        .enumerate()
        .map(|(i, (id, _))| EmployeePlan {
            employee_id: id.clone(),
            branch_id: branch_of.get(id.as_str()).copied().unwrap_or_default().to_owned(),
            share_bp: i32::try_from(share_bp[i]).unwrap_or(0),
            monthly: std::array::from_fn(|m| per_month[m][i]),
        })
        .collect();
    Ok(SalesPlan {
        year: request.year,
        annual_target: request.annual_target,
        currency: request.currency.clone(),
        growth_factor: request.growth_factor,
        history_years: request.history_years,
        allocation: request.allocation.name().to_owned(),
        seasonal_coefficients: coefficients,
        monthly,
        employees,
        created_at,
        created_by: created_by.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_proto::common::v1::EmployeeRole;
    use chrono::NaiveDate;

    fn employee(id: &str, active: bool) -> Employee {
        Employee {
            id: id.into(),
            branch_id: "WAW".into(),
            full_name: id.into(),
            role: EmployeeRole::Sales,
            team_lead_id: String::new(),
            active,
        }
    }

    fn sale(employee_id: &str, year: i32, month: u32, amount: Money) -> MonthlySales {
        MonthlySales {
            employee_id: employee_id.into(),
            branch_id: "WAW".into(),
            month: NaiveDate::from_ymd_opt(year, month, 1).expect("month"),
            amount,
        }
    }

    fn request(allocation: Allocation) -> PlanRequest {
        PlanRequest {
            year: 2026,
            annual_target: 1_200_000,
            currency: "PLN".into(),
            growth_factor: 1.0,
            history_years: 1,
            allocation,
        }
    }

    #[test]
    fn the_target_follows_last_years_season_and_sellers() {
        // 2025: A sold 300 in December, B 100 in December; nothing else.
        // December's coefficient is 400 / (400 / 12) = 12, every other month 0,
        // so the whole 1 200 000 falls in December, shared 3:1 between A and B.
        let history = [sale("A", 2025, 12, 300), sale("B", 2025, 12, 100), sale("GONE", 2025, 12, 600)];
        let roster = [employee("A", true), employee("B", true), employee("GONE", false)];
        let plan = build(&request(Allocation::LastYearShare), &history, &roster, "hq", Utc::now()).expect("plan");
        assert_eq!(plan.monthly[11], 1_200_000);
        assert_eq!(plan.monthly[..11].iter().sum::<Money>(), 0);
        let parts: Vec<(&str, i32, Money)> =
            plan.employees.iter().map(|e| (e.employee_id.as_str(), e.share_bp, e.monthly[11])).collect();
        // The employee who left takes no share: their sales are not a plan for anyone.
        assert_eq!(parts, [("A", 7_500, 900_000), ("B", 2_500, 300_000)]);
    }

    #[test]
    fn explicit_shares_are_exact_and_months_sum_to_the_grown_target() {
        let mut asked = request(Allocation::Explicit(vec![("A".into(), 3_333), ("B".into(), 6_667)]));
        asked.growth_factor = 1.1;
        let plan = build(&asked, &[], &[employee("A", true), employee("B", true)], "hq", Utc::now()).expect("plan");
        // No history: flat 1 320 000 / 12 = 110 000 a month.
        assert!(plan.monthly.iter().all(|&m| m == 110_000));
        for month in 0..12 {
            assert_eq!(plan.employees.iter().map(|e| e.monthly[month]).sum::<Money>(), 110_000);
        }
        assert_eq!(plan.employees[0].share_bp, 3_333);
    }

    #[test]
    fn without_last_year_sales_the_shares_must_be_given() {
        let refused = build(&request(Allocation::LastYearShare), &[], &[employee("A", true)], "hq", Utc::now());
        assert!(refused.expect_err("nothing to share by").contains("explicitly"));
    }
}
