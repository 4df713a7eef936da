//! The `branchscore.kpi.v1.KpiService` implementation: validate, authorise,
//! gather facts, call the rules and the store, map errors.
use crate::compute::{self, PeriodInputs};
use crate::plans::{self, Allocation, PlanRequest};
use crate::store::{self, ApprovalRefused, ComputedPeriod, PeriodKey, PeriodVersion};
use crate::upstream::Upstream;
use crate::{breakdown, convert};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::validate::{Violations, is_valid_id};
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::common::v1::{Date, EmployeeRole};
use branchscore_proto::convert::timestamp;
use branchscore_proto::kpi::v1::kpi_service_server::KpiService;
use branchscore_proto::kpi::v1::*;
use branchscore_scoring::kpi::{self as rules, PayoutTerms};
use chrono::{Datelike, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const HEAD_OFFICE: &[Role] = &[Role::Admin, Role::HqAnalyst];
const READERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::BranchStaff, Role::ErpIntegration];
const PAYROLL: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::ErpIntegration];
const WHAT_IF: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager];
/// Payroll CSV goes out in chunks of about this many bytes.
const CSV_CHUNK_BYTES: usize = 64 * 1024;

/// The KPI service.
#[derive(Debug, Clone)]
pub struct KpiApi {
    pool: sqlx::PgPool,
    company: CompanyConfig,
    upstream: Upstream,
}

fn period_key(from: Option<&Date>, to: Option<&Date>) -> AppResult<PeriodKey> {
    let mut v = Violations::new();
    let period = convert::period(&mut v, from, to);
    v.finish()?;
    let (from, to) = period.ok_or_else(|| AppError::invalid_field("from", "must be a real calendar date"))?;
    Ok(PeriodKey { from, to })
}

fn version_asked(version: i32) -> AppResult<Option<i32>> {
    match version {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v)),
        _ => Err(AppError::invalid_field("version", "must be positive (0 for the latest)")),
    }
}

fn not_computed(key: PeriodKey) -> AppError {
    AppError::not_found(format!("bonus period {} to {} (compute it first)", key.from, key.to))
}

impl KpiApi {
    pub fn new(pool: sqlx::PgPool, company: CompanyConfig, upstream: Upstream) -> Self {
        KpiApi { pool, company, upstream }
    }

    fn today(&self) -> AppResult<NaiveDate> {
        self.company.today().map_err(AppError::internal)
    }

    async fn version(&self, key: PeriodKey, version: Option<i32>) -> AppResult<PeriodVersion> {
        store::period_version(&self.pool, key, version).await?.ok_or_else(|| match version {
            Some(v) => AppError::not_found(format!("version {v} of bonus period {} to {}", key.from, key.to)),
            None => not_computed(key),
        })
    }

    /// The changes of a draft against the last approved version, within `branches`.
    async fn changes_of(
        &self,
        version: &PeriodVersion,
        lines: &[compute::BonusLine],
        branches: Option<&[String]>,
        branch_id: &str,
    ) -> AppResult<Option<(i32, Vec<compute::BonusChange>)>> {
        if version.status != store::PeriodStatus::Draft {
            return Ok(None);
        }
        let Some(approved) = store::approved_version(&self.pool, version.key).await? else {
            return Ok(None);
        };
        let before = store::bonus_lines(&self.pool, version.key, approved.version, branches, branch_id).await?;
        Ok(Some((approved.version, compute::changes(&before, lines))))
    }

    /// The accelerator and terms of the scorecard a line was computed with.
    async fn terms_of(&self, line: &compute::BonusLine) -> AppResult<PayoutTerms> {
        store::list_scorecards(&self.pool, Some(line.role))
            .await?
            .into_iter()
            .find(|s| s.scorecard.version == line.scorecard_version)
            .map(|s| s.scorecard.terms)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("scorecard version {} is gone", line.scorecard_version)))
    }
}

#[tonic::async_trait]
impl KpiService for KpiApi {
    async fn list_kpis(&self, request: Request<ListKpisRequest>) -> Result<Response<ListKpisResponse>, Status> {
        Principal::of(&request)?.require(READERS)?;
        Ok(Response::new(ListKpisResponse { kpis: rules::CATALOGUE.iter().map(convert::kpi).collect() }))
    }

    async fn create_scorecard_version(
        &self,
        request: Request<CreateScorecardVersionRequest>,
    ) -> Result<Response<CreateScorecardVersionResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(HEAD_OFFICE)?;
        let mut v = Violations::new();
        let scorecard = convert::scorecard(&mut v, request.get_ref().scorecard.as_ref(), &self.company.currency);
        v.finish()?;
        let mut scorecard = scorecard.ok_or_else(|| AppError::invalid_field("scorecard", "is required"))?;
        let now = Utc::now();
        scorecard.version =
            store::insert_scorecard(&self.pool, &scorecard, &self.company.currency, &principal.subject, now)
                .await
                .map_err(AppError::from)?;
        let stored = store::StoredScorecard {
            scorecard,
            currency: self.company.currency.clone(),
            created_at: now,
            created_by: principal.subject.clone(),
        };
        Ok(Response::new(CreateScorecardVersionResponse { scorecard: Some(convert::stored_scorecard(&stored)) }))
    }

    async fn list_scorecards(
        &self,
        request: Request<ListScorecardsRequest>,
    ) -> Result<Response<ListScorecardsResponse>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let role = Some(request.get_ref().role()).filter(|r| *r != EmployeeRole::Unspecified);
        let stored = store::list_scorecards(&self.pool, role).await.map_err(AppError::from)?;
        Ok(Response::new(ListScorecardsResponse { scorecards: stored.iter().map(convert::stored_scorecard).collect() }))
    }

    async fn create_sales_plan(
        &self,
        request: Request<CreateSalesPlanRequest>,
    ) -> Result<Response<CreateSalesPlanResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(HEAD_OFFICE)?;
        let credentials = CallCredentials::forwarded(&request);
        let body = request.get_ref();
        let currency = &self.company.currency;
        let mut v = Violations::new();
        v.check((2000..=2100).contains(&body.year), || "year".into(), "must be between 2000 and 2100");
        let target = body.annual_target.as_ref();
        v.check(
            target.is_some_and(|m| m.minor_units > 0 && &m.currency == currency),
            || "annual_target".into(),
            &format!("must be a positive amount in {currency}"),
        );
        let growth_factor = body.growth_factor.unwrap_or(1.0);
        v.check(growth_factor.is_finite() && growth_factor > 0.0, || "growth_factor".into(), "must be above zero");
        let history_years = if body.history_years == 0 { 3 } else { body.history_years };
        v.check((1..=3).contains(&history_years), || "history_years".into(), "must be 1, 2 or 3");
        let allocation = match body.allocation() {
            PlanAllocation::Unspecified | PlanAllocation::LastYearShare => {
                v.check(body.shares.is_empty(), || "shares".into(), "only for PLAN_ALLOCATION_EXPLICIT");
                Allocation::LastYearShare
            }
            PlanAllocation::Explicit => {
                let mut seen = BTreeSet::new();
                let mut total: i64 = 0;
                for (i, share) in body.shares.iter().enumerate() {
                    v.check(is_valid_id(&share.employee_id), || format!("shares[{i}].employee_id"), "not an id");
                    v.check(seen.insert(&share.employee_id), || format!("shares[{i}].employee_id"), "listed twice");
                    v.check(share.share_bp > 0, || format!("shares[{i}].share_bp"), "must be positive");
                    total += i64::from(share.share_bp);
                }
                if total != i64::from(branchscore_scoring::FULL_SHARE_BP) {
                    v.add("shares", format!("shares sum to {total} bp, not 10000 (100%)"));
                }
                Allocation::Explicit(
                    body.shares
                        .iter()
                        .map(|s| (s.employee_id.clone(), u32::try_from(s.share_bp).unwrap_or(0)))
                        .collect(),
                )
            }
        };
        v.finish()?;
        let year = body.year;
        let history_from = NaiveDate::from_ymd_opt(year - history_years, 1, 1);
        let history_to = NaiveDate::from_ymd_opt(year - 1, 12, 31);
        let (Some(history_from), Some(history_to)) = (history_from, history_to) else {
            return Err(AppError::invalid_field("year", "out of range").into());
        };
        let (roster, history) = tokio::try_join!(
            self.upstream.roster(&credentials),
            self.upstream.monthly_sales(&credentials, history_from, history_to)
        )?;
        if let Allocation::Explicit(shares) = &allocation {
            let mut v = Violations::new();
            for (i, (employee_id, _)) in shares.iter().enumerate() {
                let known = roster.iter().any(|e| &e.id == employee_id);
                v.check(known, || format!("shares[{i}].employee_id"), "no such employee");
            }
            v.finish()?;
        }
        let asked = PlanRequest {
            year,
            annual_target: target.map_or(0, |m| m.minor_units),
            currency: currency.clone(),
            growth_factor,
            history_years,
            allocation,
        };
        let plan = plans::build(&asked, &history, &roster, &principal.subject, Utc::now())
            .map_err(AppError::failed_precondition)?;
        store::replace_sales_plan(&self.pool, &plan).await.map_err(AppError::from)?;
        Ok(Response::new(CreateSalesPlanResponse { plan: Some(sales_plan(&plan)) }))
    }

    async fn get_plan_progress(
        &self,
        request: Request<GetPlanProgressRequest>,
    ) -> Result<Response<GetPlanProgressResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let credentials = CallCredentials::forwarded(&request);
        let body = request.get_ref();
        let as_of = match &body.as_of {
            None => self.today()?,
            Some(date) => date.to_naive().ok_or_else(|| AppError::invalid_field("as_of", "not a calendar date"))?,
        };
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let plan = store::sales_plan(&self.pool, as_of.year())
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found(format!("a sales plan for {}", as_of.year())))?;
        let year_start = as_of.with_ordinal(1).unwrap_or(as_of);
        let sales = self.upstream.monthly_sales(&credentials, year_start, as_of).await?;
        let mut fact: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
        for sale in &sales {
            let entry = fact.entry(&sale.employee_id).or_insert((0, &sale.branch_id));
            entry.0 += sale.amount;
        }
        let visible =
            |branch: &str| principal.can_access(branch) && (body.branch_id.is_empty() || branch == body.branch_id);
        let mut rows: BTreeMap<String, PlanProgress> = BTreeMap::new();
        let currency = &plan.currency;
        for employee in plan.employees.iter().filter(|e| visible(&e.branch_id)) {
            let plan_to_date = rules::plan_to_date(&employee.monthly, as_of);
            let fact_to_date = fact.get(employee.employee_id.as_str()).map_or(0, |f| f.0);
            rows.insert(
                employee.employee_id.clone(),
                PlanProgress {
                    employee_id: employee.employee_id.clone(),
                    branch_id: employee.branch_id.clone(),
                    plan_to_date: convert::money(plan_to_date, currency),
                    fact_to_date: convert::money(fact_to_date, currency),
                    attainment: (plan_to_date > 0).then(|| fact_to_date as f64 / plan_to_date as f64),
                    annual_plan: convert::money(employee.monthly.iter().sum(), currency),
                },
            );
        }
        // Sellers outside the plan still show what they sold.
        for (employee_id, (sum, branch_id)) in fact.into_iter().filter(|(id, (_, b))| !id.is_empty() && visible(b)) {
            rows.entry(employee_id.to_owned()).or_insert_with(|| PlanProgress {
                employee_id: employee_id.to_owned(),
                branch_id: branch_id.to_owned(),
                plan_to_date: convert::money(0, currency),
                fact_to_date: convert::money(sum, currency),
                attainment: None,
                annual_plan: convert::money(0, currency),
            });
        }
        let employees: Vec<PlanProgress> = rows.into_values().collect();
        let total = |pick: fn(&PlanProgress) -> i64| employees.iter().map(pick).sum::<i64>();
        let plan_total = total(|p| p.plan_to_date.as_ref().map_or(0, |m| m.minor_units));
        let fact_total = total(|p| p.fact_to_date.as_ref().map_or(0, |m| m.minor_units));
        Ok(Response::new(GetPlanProgressResponse {
            as_of: Some(as_of.into()),
            plan_to_date: convert::money(plan_total, currency),
            fact_to_date: convert::money(fact_total, currency),
            employees,
        }))
    }

    async fn compute_period(
        &self,
        request: Request<ComputePeriodRequest>,
    ) -> Result<Response<ComputePeriodResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(HEAD_OFFICE)?;
        let credentials = CallCredentials::forwarded(&request);
        let key = period_key(request.get_ref().from.as_ref(), request.get_ref().to.as_ref())?;
        let scorecards = store::scorecards_in_force(&self.pool, key.to).await.map_err(AppError::from)?;
        if scorecards.is_empty() {
            return Err(AppError::failed_precondition(format!(
                "no scorecard is in force on {}: create one with CreateScorecardVersion",
                key.to
            ))
            .into());
        }
        let months = convert::months(key.from, key.to);
        let (roster, facts) =
            tokio::try_join!(self.upstream.roster(&credentials), self.upstream.facts(&credentials, key.from, key.to))?;
        let sales_plans = store::period_sales_plans(&self.pool, &months).await.map_err(AppError::from)?;
        let inputs = PeriodInputs {
            roster: &roster,
            facts: &facts,
            scorecards: &scorecards,
            sales_plans: &sales_plans,
            months: u32::try_from(months.len()).unwrap_or(u32::MAX),
        };
        let lines = compute::bonus_lines(&inputs);
        let computed = ComputedPeriod {
            key,
            roster: &roster,
            facts: &facts,
            lines: &lines,
            currency: &self.company.currency,
            computed_by: &principal.subject,
            computed_at: Utc::now(),
        };
        let version = store::save_draft(&self.pool, &computed).await.map_err(AppError::from)?;
        tracing::info!(from = %key.from, to = %key.to, version = version.version, lines = lines.len(), "period computed");
        let changes = self.changes_of(&version, &lines, None, "").await?;
        let compared = changes.as_ref().map(|(v, c)| (*v, c.as_slice()));
        Ok(Response::new(ComputePeriodResponse { period: Some(convert::bonus_period(&version, &lines, compared)) }))
    }

    async fn get_period(&self, request: Request<GetPeriodRequest>) -> Result<Response<GetPeriodResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let body = request.get_ref();
        let key = period_key(body.from.as_ref(), body.to.as_ref())?;
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let version = self.version(key, version_asked(body.version)?).await?;
        let branches = principal.branch_filter();
        let lines = store::bonus_lines(&self.pool, key, version.version, branches.as_deref(), &body.branch_id)
            .await
            .map_err(AppError::from)?;
        let changes = self.changes_of(&version, &lines, branches.as_deref(), &body.branch_id).await?;
        let compared = changes.as_ref().map(|(v, c)| (*v, c.as_slice()));
        Ok(Response::new(GetPeriodResponse { period: Some(convert::bonus_period(&version, &lines, compared)) }))
    }

    async fn approve_period(
        &self,
        request: Request<ApprovePeriodRequest>,
    ) -> Result<Response<ApprovePeriodResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(HEAD_OFFICE)?;
        let body = request.get_ref();
        let key = period_key(body.from.as_ref(), body.to.as_ref())?;
        if body.version <= 0 {
            return Err(AppError::invalid_field("version", "must name the draft's version").into());
        }
        let approved = match store::approve(&self.pool, key, body.version, &principal.subject, Utc::now())
            .await
            .map_err(AppError::from)?
        {
            Ok(approved) => approved,
            Err(ApprovalRefused::NotComputed) => return Err(not_computed(key).into()),
            Err(ApprovalRefused::NotTheDraft(latest)) => {
                return Err(AppError::failed_precondition(format!(
                    "version {} is not the draft: the latest version is {} ({:?})",
                    body.version, latest.version, latest.status
                ))
                .into());
            }
        };
        let lines = store::bonus_lines(&self.pool, key, approved.version, None, "").await.map_err(AppError::from)?;
        Ok(Response::new(ApprovePeriodResponse { period: Some(convert::bonus_period(&approved, &lines, None)) }))
    }

    type ExportPayrollStream = ReceiverStream<Result<ExportPayrollResponse, Status>>;

    async fn export_payroll(
        &self,
        request: Request<ExportPayrollRequest>,
    ) -> Result<Response<Self::ExportPayrollStream>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(PAYROLL)?;
        let body = request.get_ref();
        let key = period_key(body.from.as_ref(), body.to.as_ref())?;
        let format = body.format();
        let approved = store::approved_version(&self.pool, key).await.map_err(AppError::from)?.ok_or_else(|| {
            AppError::failed_precondition(format!(
                "bonus period {} to {} has no approved version: approve the draft first",
                key.from, key.to
            ))
        })?;
        let branches = principal.branch_filter();
        let lines = store::bonus_lines(&self.pool, key, approved.version, branches.as_deref(), "")
            .await
            .map_err(AppError::from)?;
        let payroll: Vec<PayrollLine> = lines
            .iter()
            .map(|line| PayrollLine {
                employee_id: line.employee_id.clone(),
                full_name: line.full_name.clone(),
                branch_id: line.branch_id.clone(),
                period_from: Some(key.from.into()),
                period_to: Some(key.to.into()),
                version: approved.version,
                bonus: convert::money(line.bonus, &approved.currency),
                weighted_attainment: line.weighted_attainment,
            })
            .collect();
        let messages = match format {
            ExportFormat::Csv => csv_chunks(&payroll)?
                .into_iter()
                .map(|chunk| ExportPayrollResponse { content: Some(export_payroll_response::Content::CsvChunk(chunk)) })
                .collect(),
            ExportFormat::Unspecified | ExportFormat::Lines => payroll
                .into_iter()
                .map(|line| ExportPayrollResponse { content: Some(export_payroll_response::Content::Line(line)) })
                .collect::<Vec<_>>(),
        };
        let (sender, receiver) = mpsc::channel(16);
        let pool = self.pool.clone();
        // Only an export of the whole network marks the period exported.
        let whole_network = branches.is_none();
        tokio::spawn(async move {
            for message in messages {
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            if whole_network && let Err(err) = store::mark_exported(&pool, key, approved.version, Utc::now()).await {
                tracing::error!(error = %err, "could not mark the period exported");
                let _ = sender.send(Err(AppError::from(err).into())).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_bonus_breakdown(
        &self,
        request: Request<GetBonusBreakdownRequest>,
    ) -> Result<Response<GetBonusBreakdownResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let body = request.get_ref();
        let key = period_key(body.from.as_ref(), body.to.as_ref())?;
        if !is_valid_id(&body.employee_id) {
            return Err(AppError::invalid_field("employee_id", "must be an employee id").into());
        }
        let version = self.version(key, version_asked(body.version)?).await?;
        let line = store::bonus_lines(&self.pool, key, version.version, None, "")
            .await
            .map_err(AppError::from)?
            .into_iter()
            .find(|l| l.employee_id == body.employee_id)
            .ok_or_else(|| AppError::not_found(format!("a bonus line of {} in this period", body.employee_id)))?;
        principal.ensure_branch(&line.branch_id)?;
        let people: Vec<String> =
            std::iter::once(line.employee_id.clone()).chain(line.team_member_ids.clone()).collect();
        let (_, facts) =
            store::period_facts(&self.pool, key, version.version, &people).await.map_err(AppError::from)?;
        let terms = self.terms_of(&line).await?;
        Ok(Response::new(GetBonusBreakdownResponse {
            kpis: breakdown::kpis(&line, &terms, &people, &facts),
            formula: breakdown::line_formula(&line, terms.accelerator),
            line: Some(convert::bonus_line(&line, &version.currency)),
            period: Some(convert::bonus_period(&version, &[], None)),
        }))
    }

    async fn evaluate_what_if(
        &self,
        request: Request<EvaluateWhatIfRequest>,
    ) -> Result<Response<EvaluateWhatIfResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(WHAT_IF)?;
        let body = request.get_ref();
        let key = period_key(body.from.as_ref(), body.to.as_ref())?;
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let mut v = Violations::new();
        let mut card = body.scorecard.clone();
        if let Some(card) = card.as_mut() {
            // The what-if applies to the period whatever date it names.
            card.effective_from = Some(key.from.into());
        }
        let scorecard = convert::scorecard(&mut v, card.as_ref(), &self.company.currency);
        v.finish()?;
        let scorecard = scorecard.ok_or_else(|| AppError::invalid_field("scorecard", "is required"))?;
        let version = self.version(key, None).await?;
        let (roster, facts) =
            store::period_facts(&self.pool, key, version.version, &[]).await.map_err(AppError::from)?;
        let mut scorecards = store::scorecards_in_force(&self.pool, key.to).await.map_err(AppError::from)?;
        let role = scorecard.role;
        scorecards.insert(role as i32, scorecard);
        let months = convert::months(key.from, key.to);
        let sales_plans = store::period_sales_plans(&self.pool, &months).await.map_err(AppError::from)?;
        let inputs = PeriodInputs {
            roster: &roster,
            facts: &facts,
            scorecards: &scorecards,
            sales_plans: &sales_plans,
            months: u32::try_from(months.len()).unwrap_or(u32::MAX),
        };
        let visible = |l: &compute::BonusLine| {
            l.role == role
                && principal.can_access(&l.branch_id)
                && (body.branch_id.is_empty() || l.branch_id == body.branch_id)
        };
        let what_if: Vec<compute::BonusLine> = compute::bonus_lines(&inputs).into_iter().filter(visible).collect();
        let stored: BTreeMap<String, compute::BonusLine> =
            store::bonus_lines(&self.pool, key, version.version, None, "")
                .await
                .map_err(AppError::from)?
                .into_iter()
                .filter(visible)
                .map(|l| (l.employee_id.clone(), l))
                .collect();
        let currency = &version.currency;
        let stored_total = stored.values().map(|l| l.bonus).sum();
        let what_if_total = what_if.iter().map(|l| l.bonus).sum();
        let lines = what_if
            .iter()
            .map(|line| WhatIfLine {
                stored: stored.get(&line.employee_id).map(|l| convert::bonus_line(l, currency)),
                what_if: Some(convert::bonus_line(line, currency)),
            })
            .collect();
        Ok(Response::new(EvaluateWhatIfResponse {
            version: version.version,
            lines,
            stored_total: convert::money(stored_total, currency),
            what_if_total: convert::money(what_if_total, currency),
        }))
    }
}

fn sales_plan(plan: &store::SalesPlan) -> SalesPlan {
    let currency = &plan.currency;
    SalesPlan {
        year: plan.year,
        annual_target: convert::money(plan.annual_target, currency),
        growth_factor: plan.growth_factor,
        history_years: plan.history_years,
        allocation: PlanAllocation::from_str_name(&plan.allocation).unwrap_or_default() as i32,
        seasonal_coefficients: plan.seasonal_coefficients.to_vec(),
        monthly: plan.monthly.iter().map(|&m| convert::money(m, currency).unwrap_or_default()).collect(),
        employees: plan
            .employees
            .iter()
            .map(|e| EmployeePlan {
                employee_id: e.employee_id.clone(),
                branch_id: e.branch_id.clone(),
                share_bp: e.share_bp,
                monthly: e.monthly.iter().map(|&m| convert::money(m, currency).unwrap_or_default()).collect(),
            })
            .collect(),
        create_time: Some(timestamp(plan.created_at)),
        created_by: plan.created_by.clone(),
    }
}

/// The payroll as CSV with a header row, cut into chunks (the receiver
/// concatenates them; a chunk may end mid-line).
fn csv_chunks(payroll: &[PayrollLine]) -> AppResult<Vec<Vec<u8>>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "employee_id",
        "full_name",
        "branch_id",
        "period_from",
        "period_to",
        "version",
        "bonus_minor_units",
        "currency",
        "weighted_attainment",
    ];
    writer.write_record(header).map_err(AppError::internal)?;
    let date = |d: &Option<Date>| d.as_ref().and_then(Date::to_naive).map(|d| d.to_string()).unwrap_or_default();
    for line in payroll {
        let bonus = line.bonus.clone().unwrap_or_default();
        writer
            .write_record([
                line.employee_id.clone(),
                line.full_name.clone(),
                line.branch_id.clone(),
                date(&line.period_from),
                date(&line.period_to),
                line.version.to_string(),
                bonus.minor_units.to_string(),
                bonus.currency,
                format!("{:.4}", line.weighted_attainment),
            ])
            .map_err(AppError::internal)?;
    }
    let text = writer.into_inner().map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    Ok(text.chunks(CSV_CHUNK_BYTES).map(<[u8]>::to_vec).collect())
}
