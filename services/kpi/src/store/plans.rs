//! Sales plans: one per year, split into months and employees.
use branchscore_scoring::Money;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;

/// One employee's part of a year's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct EmployeePlan {
    pub employee_id: String,
    pub branch_id: String,
    pub share_bp: i32,
    /// January to December.
    pub monthly: [Money; 12],
}

/// A year's sales plan as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesPlan {
    pub year: i32,
    pub annual_target: Money,
    pub currency: String,
    pub growth_factor: f64,
    pub history_years: i32,
    /// The proto name of the allocation.
    pub allocation: String,
    pub seasonal_coefficients: [f64; 12],
    pub monthly: [Money; 12],
    pub employees: Vec<EmployeePlan>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Stores `plan`, replacing the year's earlier plan in the same transaction.
pub async fn replace_sales_plan(pool: &PgPool, plan: &SalesPlan) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM sales_plans WHERE year = $1").bind(plan.year).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO sales_plans (year, annual_target, currency, growth_factor, history_years, allocation, \
         seasonal_coefficients, monthly, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(plan.year)
    .bind(plan.annual_target)
    .bind(&plan.currency)
    .bind(plan.growth_factor)
    .bind(plan.history_years)
    .bind(&plan.allocation)
    .bind(plan.seasonal_coefficients.as_slice())
    .bind(plan.monthly.as_slice())
    .bind(plan.created_at)
    .bind(&plan.created_by)
    .execute(&mut *tx)
    .await?;
    for employee in &plan.employees {
        sqlx::query(
            "INSERT INTO sales_plan_employees (year, employee_id, branch_id, share_bp, monthly) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(plan.year)
        .bind(&employee.employee_id)
        .bind(&employee.branch_id)
        .bind(employee.share_bp)
        .bind(employee.monthly.as_slice())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

fn twelve<T: Copy + Default>(values: Vec<T>) -> sqlx::Result<[T; 12]> {
    <[T; 12]>::try_from(values).map_err(|v| sqlx::Error::Decode(format!("{} months instead of 12", v.len()).into()))
}

/// The year's plan, employees in id order.
pub async fn sales_plan(pool: &PgPool, year: i32) -> sqlx::Result<Option<SalesPlan>> {
    let Some(row) = sqlx::query("SELECT * FROM sales_plans WHERE year = $1").bind(year).fetch_optional(pool).await?
    else {
        return Ok(None);
    };
    let employees = sqlx::query("SELECT * FROM sales_plan_employees WHERE year = $1 ORDER BY employee_id")
        .bind(year)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|e| {
            Ok(EmployeePlan {
                employee_id: e.try_get("employee_id")?,
                branch_id: e.try_get("branch_id")?,
                share_bp: e.try_get("share_bp")?,
                monthly: twelve(e.try_get("monthly")?)?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Some(SalesPlan {
        year,
        annual_target: row.try_get("annual_target")?,
        currency: row.try_get("currency")?,
        growth_factor: row.try_get("growth_factor")?,
        history_years: row.try_get("history_years")?,
        allocation: row.try_get("allocation")?,
        seasonal_coefficients: twelve(row.try_get("seasonal_coefficients")?)?,
        monthly: twelve(row.try_get("monthly")?)?,
        employees,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    }))
}

/// Per employee, the plan summed over `months` (first days), but only for
/// employees every one of whose months lies in a year with a plan naming them.
pub async fn period_sales_plans(pool: &PgPool, months: &[chrono::NaiveDate]) -> sqlx::Result<BTreeMap<String, Money>> {
    use chrono::Datelike;
    let mut years: Vec<i32> = months.iter().map(|m| m.year()).collect();
    years.dedup();
    let mut per_year = Vec::new();
    for year in &years {
        match sales_plan(pool, *year).await? {
            Some(plan) => per_year.push(plan),
            None => return Ok(BTreeMap::new()),
        }
    }
    let mut sums: BTreeMap<String, (Money, usize)> = BTreeMap::new();
    for plan in &per_year {
        let in_year: Vec<usize> =
            months.iter().filter(|m| m.year() == plan.year).map(|m| m.month0() as usize).collect();
        for employee in &plan.employees {
            let entry = sums.entry(employee.employee_id.clone()).or_default();
            entry.0 += in_year.iter().map(|&m| employee.monthly[m]).sum::<Money>();
            entry.1 += 1;
        }
    }
    Ok(sums
        .into_iter()
        .filter(|(_, (_, years_named))| *years_named == per_year.len())
        .map(|(id, (sum, _))| (id, sum))
        .collect())
}
