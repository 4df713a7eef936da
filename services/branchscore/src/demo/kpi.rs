//! The motivation loop of the demo: scorecards per role, a seasonal sales
//! plan, the last full quarter's bonuses computed from every service's
//! facts, approved and exported, and one bonus traced to its records.
use super::network::Network;
use branchscore_proto::clients::v1::TransactionLine;
use branchscore_proto::common::v1::{EmployeeRole, Money};
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::kpi::v1::*;
use chrono::{Datelike, Months, NaiveDate};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

type Kpi = KpiServiceClient<InterceptedService<Channel, branchscore_platform::client::CallCredentials>>;

/// What the KPI part of the demo produced.
#[derive(Debug)]
pub struct KpiReport {
    pub plan: SalesPlan,
    pub progress: GetPlanProgressResponse,
    pub period: BonusPeriod,
    pub breakdown: GetBonusBreakdownResponse,
    pub payroll_lines: usize,
    pub payroll_csv_bytes: usize,
}

fn money(minor_units: i64, currency: &str) -> Option<Money> {
    Some(Money { minor_units, currency: currency.to_owned() })
}

fn line(kpi_code: &str, weight_bp: i32, plan: f64) -> ScorecardLine {
    ScorecardLine { kpi_code: kpi_code.into(), weight_bp, plan }
}

/// The scorecards of the seeds' roles: sellers on sales, new clients,
/// cross-sell, speed and feedback; leads and managers on their team.
fn scorecards(effective_from: NaiveDate, currency: &str) -> Vec<Scorecard> {
    let card = |role: EmployeeRole, lines: Vec<ScorecardLine>, base: i64| Scorecard {
        role: role as i32,
        effective_from: Some(effective_from.into()),
        lines,
        monthly_base_bonus: money(base, currency),
        ..Scorecard::default()
    };
    vec![
        card(
            EmployeeRole::Sales,
            vec![
                line("sales_amount", 4_000, 1.0),
                line("new_clients", 1_500, 1.0),
                line("cross_sell_count", 1_500, 1.0),
                line("first_response_time", 1_000, 15.0 * 60.0),
                line("feedback_coverage", 1_000, 20.0),
                line("lost_clients", 1_000, 2.0),
            ],
            150_000,
        ),
        card(
            EmployeeRole::TeamLead,
            vec![
                line("sales_amount", 5_000, 1.0),
                line("new_clients", 2_000, 3.0),
                line("overdue_control_points", 1_500, 10.0),
                line("nps", 1_500, 40.0),
            ],
            250_000,
        ),
        card(
            EmployeeRole::BranchManager,
            vec![line("sales_amount", 6_000, 1.0), line("lost_clients", 2_000, 3.0), line("csat", 2_000, 80.0)],
            400_000,
        ),
    ]
}

/// The last full calendar quarter before `as_of`.
pub fn last_quarter(as_of: NaiveDate) -> (NaiveDate, NaiveDate) {
    let quarter_start_month = (as_of.month0() / 3) * 3 + 1;
    let this_quarter = NaiveDate::from_ymd_opt(as_of.year(), quarter_start_month, 1).unwrap_or(as_of);
    let from = this_quarter.checked_sub_months(Months::new(3)).unwrap_or(this_quarter);
    (from, this_quarter.pred_opt().unwrap_or(this_quarter))
}

/// Sales (returns left out) on the days `within` accepts.
fn sales(lines: &[TransactionLine], within: impl Fn(NaiveDate) -> bool) -> i64 {
    lines
        .iter()
        .filter(|l| l.business_date.as_ref().and_then(|d| d.to_naive()).is_some_and(&within))
        .filter_map(|l| l.amount.as_ref())
        .map(|m| m.minor_units)
        .filter(|&amount| amount > 0)
        .sum()
}

/// By last year's sales when there were any; else equal shares of the sellers
/// (a network with a short history).
fn allocation(network: &Network, year: i32) -> (PlanAllocation, Vec<EmployeeShare>) {
    if sales(&network.lines, |d| d.year() == year - 1) > 0 {
        return (PlanAllocation::LastYearShare, Vec::new());
    }
    let sellers: Vec<&str> =
        network.employees.iter().filter(|e| e.role == EmployeeRole::Sales as i32).map(|e| e.id.as_str()).collect();
    let count = i32::try_from(sellers.len()).unwrap_or(i32::MAX).max(1);
    // 10 000 bp in equal parts, the remainder one each to the first sellers.
    let shares = sellers
        .iter()
        .zip(0..)
        .map(|(id, i)| EmployeeShare {
            employee_id: (*id).to_owned(),
            share_bp: 10_000 / count + i32::from(i < 10_000 % count),
        })
        .collect();
    (PlanAllocation::Explicit, shares)
}

pub async fn run(kpi: &Kpi, network: &Network, as_of: NaiveDate, currency: &str) -> anyhow::Result<KpiReport> {
    let year_start = NaiveDate::from_ymd_opt(as_of.year() - 1, 1, 1).unwrap_or(as_of);
    for scorecard in scorecards(year_start, currency) {
        kpi.clone().create_scorecard_version(CreateScorecardVersionRequest { scorecard: Some(scorecard) }).await?;
    }
    // The last 12 months' sales plus 8%, shaped by last year's season and
    // shared by last year's sellers.
    let year_ago = as_of.checked_sub_months(Months::new(12)).unwrap_or(as_of);
    let last_twelve_months = sales(&network.lines, |d| d > year_ago && d <= as_of);
    let (allocation, shares) = allocation(network, as_of.year());
    let plan = kpi
        .clone()
        .create_sales_plan(CreateSalesPlanRequest {
            year: as_of.year(),
            annual_target: money(last_twelve_months.max(1), currency),
            growth_factor: Some(1.08),
            history_years: 1,
            allocation: allocation as i32,
            shares,
        })
        .await?
        .into_inner()
        .plan
        .ok_or_else(|| anyhow::anyhow!("no plan in the reply"))?;
    let progress = kpi
        .clone()
        .get_plan_progress(GetPlanProgressRequest { as_of: Some(as_of.into()), branch_id: String::new() })
        .await?
        .into_inner();

    let (from, to) = last_quarter(as_of);
    let (from, to) = (Some(from.into()), Some(to.into()));
    let computed = kpi.clone().compute_period(ComputePeriodRequest { from, to }).await?.into_inner();
    let version = computed.period.as_ref().map_or(0, |p| p.version);
    let period = kpi
        .clone()
        .approve_period(ApprovePeriodRequest { from, to, version })
        .await?
        .into_inner()
        .period
        .ok_or_else(|| anyhow::anyhow!("no period in the reply"))?;
    let best = period.lines.first().map(|l| l.employee_id.clone()).unwrap_or_default();
    let breakdown = kpi
        .clone()
        .get_bonus_breakdown(GetBonusBreakdownRequest { from, to, version, employee_id: best })
        .await?
        .into_inner();
    let mut payroll_lines = 0;
    let mut lines = kpi
        .clone()
        .export_payroll(ExportPayrollRequest { from, to, format: ExportFormat::Lines as i32 })
        .await?
        .into_inner();
    while lines.message().await?.is_some() {
        payroll_lines += 1;
    }
    let mut payroll_csv_bytes = 0;
    let mut csv = kpi
        .clone()
        .export_payroll(ExportPayrollRequest { from, to, format: ExportFormat::Csv as i32 })
        .await?
        .into_inner();
    while let Some(chunk) = csv.message().await? {
        if let Some(export_payroll_response::Content::CsvChunk(bytes)) = chunk.content {
            payroll_csv_bytes += bytes.len();
        }
    }
    Ok(KpiReport { plan, progress, period, breakdown, payroll_lines, payroll_csv_bytes })
}
