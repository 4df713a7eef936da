//! The `branchscore.reporting.v1.ReportingService` implementation: check
//! the request, authorise the caller and the branch, gather from the
//! sources (all or nothing), assemble, and for exports write the file and
//! its audit record before the first byte goes out.
use crate::delivery::{EXPORT_LEASE, ExportStream};
use crate::request::{self, Leaderboard, Periodic};
use crate::store::{self, NewExport};
use crate::upstream::{Slice, Upstream};
use crate::{export, tables};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::validate::{Violations, is_valid_id};
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::common::v1::Granularity;
use branchscore_proto::convert::to_datetime;
use branchscore_proto::pipeline::v1::GetFunnelRequest;
use branchscore_proto::reporting::v1::reporting_service_server::ReportingService;
use branchscore_proto::reporting::v1::*;
use branchscore_scoring::periods::Period;
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::fmt::Write;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// People read reports; the ERP integration takes payroll from the KPI service instead.
const READERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::BranchStaff];
/// Page sizes of ListExports.
const DEFAULT_PAGE: i32 = 100;
const MAX_PAGE: i32 = 1000;
/// The most history entries the clients service gives for one client.
const MAX_HISTORY: i32 = 1000;

/// The reporting service.
#[derive(Debug, Clone)]
pub struct ReportingApi {
    pool: sqlx::PgPool,
    company: CompanyConfig,
    upstream: Upstream,
}

/// The authenticated caller and the token to forward to the sources.
struct Caller {
    principal: Principal,
    credentials: CallCredentials,
}

impl Caller {
    fn of<T>(request: &Request<T>) -> AppResult<Self> {
        let principal = Principal::of(request)?.clone();
        principal.require(READERS)?;
        Ok(Caller { principal, credentials: CallCredentials::forwarded(request) })
    }

    /// PERMISSION_DENIED for a branch filter outside the caller's branches.
    fn may_see(&self, branch_id: &str) -> AppResult<()> {
        if branch_id.is_empty() { Ok(()) } else { self.principal.ensure_branch(branch_id) }
    }
}

/// INVALID_ARGUMENT with every violation, else the checked request.
fn checked<T>(v: Violations, asked: Option<T>) -> AppResult<T> {
    v.finish()?;
    asked.ok_or_else(|| AppError::internal(anyhow::anyhow!("a checked request lost its value")))
}

/// A report asked inside an export.
enum Asked {
    PeriodReport(Periodic),
    KpiLeaderboard(Leaderboard),
    LoyaltyReport(Periodic),
}

impl Asked {
    fn kind(&self) -> ReportKind {
        match self {
            Asked::PeriodReport(_) => ReportKind::PeriodReport,
            Asked::KpiLeaderboard(_) => ReportKind::KpiLeaderboard,
            Asked::LoyaltyReport(_) => ReportKind::LoyaltyReport,
        }
    }

    /// The filters the audit records.
    fn filters(&self) -> (&request::Range, &str) {
        match self {
            Asked::PeriodReport(p) | Asked::LoyaltyReport(p) => (&p.range, &p.branch_id),
            Asked::KpiLeaderboard(board) => (&board.range, &board.branch_id),
        }
    }
}

/// Lower-case hex, as `sha256sum` prints a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl ReportingApi {
    pub fn new(pool: sqlx::PgPool, company: CompanyConfig, upstream: Upstream) -> Self {
        ReportingApi { pool, company, upstream }
    }

    fn slice<'a>(asked: &'a Periodic) -> Slice<'a> {
        Slice {
            from: asked.range.from,
            to: asked.range.to,
            granularity: asked.range.granularity,
            branch_id: &asked.branch_id,
        }
    }

    async fn period_report(&self, caller: &Caller, asked: &Periodic) -> AppResult<GetPeriodReportResponse> {
        caller.may_see(&asked.branch_id)?;
        let credentials = &caller.credentials;
        let (facts, names) = tokio::try_join!(
            self.upstream.client_facts(credentials, Self::slice(asked)),
            self.upstream.employee_names(credentials)
        )?;
        Ok(tables::period_report(&asked.range.periods, &facts, &names, &self.company.currency))
    }

    async fn loyalty_report(&self, caller: &Caller, asked: &Periodic) -> AppResult<GetLoyaltyReportResponse> {
        caller.may_see(&asked.branch_id)?;
        let credentials = &caller.credentials;
        let slice = Self::slice(asked);
        // Distinct buyers do not add up over periods: the total is counted
        // over the whole range by its own call.
        let (facts, whole) = if asked.range.granularity == Granularity::Unspecified {
            let facts = self.upstream.client_facts(credentials, slice).await?;
            (facts.clone(), facts)
        } else {
            let whole = Slice { granularity: Granularity::Unspecified, ..slice };
            tokio::try_join!(
                self.upstream.client_facts(credentials, slice),
                self.upstream.client_facts(credentials, whole)
            )?
        };
        let range = Period { start: asked.range.from, end: asked.range.to };
        Ok(tables::loyalty_report(&asked.range.periods, &facts, range, &whole, &self.company.currency))
    }

    async fn leaderboard(&self, caller: &Caller, asked: &Leaderboard) -> AppResult<GetKpiLeaderboardResponse> {
        caller.may_see(&asked.branch_id)?;
        let credentials = &caller.credentials;
        let (from, to) = (asked.range.from, asked.range.to);
        let (period, scorecards) = tokio::try_join!(
            self.upstream.bonus_period(credentials, (from, to), asked.version, &asked.branch_id),
            self.upstream.scorecards(credentials)
        )?;
        let zone = self.company.zone().map_err(AppError::internal)?;
        // The facts of a period were gathered when it was computed.
        let computed_on =
            period.compute_time.as_ref().and_then(to_datetime).map_or(to, |at| at.with_timezone(&zone).date_naive());
        Ok(tables::leaderboard(&period, &scorecards, &tables::pace(from, to, computed_on)))
    }

    /// The asked report as a sheet.
    async fn sheet(&self, caller: &Caller, asked: &Asked) -> AppResult<export::Sheet> {
        let currency = &self.company.currency;
        Ok(match asked {
            Asked::PeriodReport(periodic) => {
                export::period_sheet(&self.period_report(caller, periodic).await?, currency)
            }
            Asked::KpiLeaderboard(board) => {
                export::leaderboard_sheet(&self.leaderboard(caller, board).await?, currency)
            }
            Asked::LoyaltyReport(periodic) => {
                export::loyalty_sheet(&self.loyalty_report(caller, periodic).await?, currency)
            }
        })
    }
}

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn get_period_report(
        &self,
        request: Request<GetPeriodReportRequest>,
    ) -> Result<Response<GetPeriodReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let range = (body.from.as_ref(), body.to.as_ref());
        let asked = request::periodic(&mut v, "", range, body.granularity, Granularity::Unspecified, &body.branch_id);
        let asked = checked(v, asked)?;
        Ok(Response::new(self.period_report(&caller, &asked).await?))
    }

    async fn get_client_report(
        &self,
        request: Request<GetClientReportRequest>,
    ) -> Result<Response<GetClientReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        v.id(|| "client_id".into(), &body.client_id);
        v.check(
            (0..=MAX_HISTORY).contains(&body.history_limit),
            || "history_limit".into(),
            "must be between 0 (default 100) and 1000",
        );
        v.finish()?;
        let (id, credentials) = (&body.client_id, &caller.credentials);
        // A client outside the caller's branches is NOT_FOUND at the source.
        let (client, score, products, history) = tokio::try_join!(
            self.upstream.client(credentials, id),
            self.upstream.score(credentials, id),
            self.upstream.products(credentials, id),
            self.upstream.history(credentials, id, body.history_limit)
        )?;
        Ok(Response::new(GetClientReportResponse {
            client: Some(client),
            score,
            segment_id: products.segment_id,
            targeted: products.targeted,
            used: products.used,
            maturity: products.maturity,
            products_by_state: tables::products_by_state(&products.products),
            products: products.products,
            history,
        }))
    }

    async fn get_abc_xyz_report(
        &self,
        request: Request<GetAbcXyzReportRequest>,
    ) -> Result<Response<GetAbcXyzReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let branch_id = &request.get_ref().branch_id;
        let mut v = Violations::new();
        request::branch(&mut v, "", "branch_id", branch_id);
        v.finish()?;
        caller.may_see(branch_id)?;
        let matrix = self.upstream.abc_xyz_matrix(&caller.credentials, branch_id).await?;
        Ok(Response::new(tables::abc_xyz_report(&matrix, &self.company.currency)))
    }

    async fn get_funnel_report(
        &self,
        request: Request<GetFunnelReportRequest>,
    ) -> Result<Response<GetFunnelReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let range = (body.from.as_ref(), body.to.as_ref());
        let asked = request::periodic(&mut v, "", range, 0, Granularity::Unspecified, &body.branch_id);
        v.check(
            body.employee_id.is_empty() || is_valid_id(&body.employee_id),
            || "employee_id".into(),
            "must be empty or an employee id",
        );
        let asked = checked(v, asked)?;
        caller.may_see(&asked.branch_id)?;
        let funnel = GetFunnelRequest {
            branch_id: asked.branch_id,
            employee_id: body.employee_id.clone(),
            from: Some(asked.range.from.into()),
            to: Some(asked.range.to.into()),
        };
        let funnel = self.upstream.funnel(&caller.credentials, funnel).await?;
        Ok(Response::new(tables::funnel_report(funnel)))
    }

    async fn get_satisfaction_report(
        &self,
        request: Request<GetSatisfactionReportRequest>,
    ) -> Result<Response<GetSatisfactionReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let range = (body.from.as_ref(), body.to.as_ref());
        let asked = request::periodic(&mut v, "", range, body.granularity, Granularity::Month, &body.branch_id);
        let asked = checked(v, asked)?;
        caller.may_see(&asked.branch_id)?;
        let (credentials, slice) = (&caller.credentials, Self::slice(&asked));
        let (trend, coverage, aging) = tokio::try_join!(
            self.upstream.satisfaction_trend(credentials, slice),
            self.upstream.coverage(credentials, slice),
            self.upstream.complaint_aging(credentials, &asked.branch_id)
        )?;
        Ok(Response::new(tables::satisfaction_report(trend, coverage, aging)))
    }

    async fn get_kpi_leaderboard(
        &self,
        request: Request<GetKpiLeaderboardRequest>,
    ) -> Result<Response<GetKpiLeaderboardResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut v = Violations::new();
        let asked = request::leaderboard(&mut v, "", request.get_ref());
        let asked = checked(v, asked)?;
        Ok(Response::new(self.leaderboard(&caller, &asked).await?))
    }

    async fn get_loyalty_report(
        &self,
        request: Request<GetLoyaltyReportRequest>,
    ) -> Result<Response<GetLoyaltyReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let range = (body.from.as_ref(), body.to.as_ref());
        let asked = request::periodic(&mut v, "", range, body.granularity, Granularity::Unspecified, &body.branch_id);
        let asked = checked(v, asked)?;
        Ok(Response::new(self.loyalty_report(&caller, &asked).await?))
    }

    type ExportReportStream = ExportStream;

    async fn export_report(
        &self,
        request: Request<ExportReportRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let format = FileFormat::try_from(body.format).ok().filter(|f| *f != FileFormat::Unspecified);
        v.check(format.is_some(), || "format".into(), "must be FILE_FORMAT_CSV or FILE_FORMAT_XLSX");
        let asked = match &body.report {
            Some(export_report_request::Report::PeriodReport(r)) => {
                let range = (r.from.as_ref(), r.to.as_ref());
                let prefix = "period_report.";
                request::periodic(&mut v, prefix, range, r.granularity, Granularity::Unspecified, &r.branch_id)
                    .map(Asked::PeriodReport)
            }
            Some(export_report_request::Report::KpiLeaderboard(r)) => {
                request::leaderboard(&mut v, "kpi_leaderboard.", r).map(Asked::KpiLeaderboard)
            }
            Some(export_report_request::Report::LoyaltyReport(r)) => {
                let range = (r.from.as_ref(), r.to.as_ref());
                let prefix = "loyalty_report.";
                request::periodic(&mut v, prefix, range, r.granularity, Granularity::Unspecified, &r.branch_id)
                    .map(Asked::LoyaltyReport)
            }
            None => {
                v.add("report", "name the report: period_report, kpi_leaderboard or loyalty_report");
                None
            }
        };
        let (format, asked) = checked(v, format.zip(asked))?;

        let sheet = self.sheet(&caller, &asked).await?;
        let file = sheet.write(format).map_err(AppError::internal)?;
        let (report, (range, branch_id)) = (asked.kind(), asked.filters());
        let sha256 = hex(&Sha256::digest(&file.bytes));
        let bytes = i64::try_from(file.bytes.len()).map_err(AppError::internal)?;
        let id = Uuid::now_v7();
        let principal = &caller.principal;
        let scope = principal.branch_filter();
        // Recorded before the first byte goes out: an export the audit does
        // not know of never reaches anyone.
        let record = NewExport {
            id,
            report,
            format,
            requested_by: &principal.subject,
            role: principal.role.as_str(),
            scope: scope.as_deref(),
            branch_id,
            from: range.from,
            to: range.to,
            granularity: range.granularity,
            rows: sheet.row_count(),
            bytes,
            sha256: &sha256,
            started_at: Utc::now(),
        };
        store::record_export(&self.pool, &record, EXPORT_LEASE).await.map_err(AppError::from)?;
        tracing::info!(export = %id, report = report.as_str_name(), bytes, "export streaming");
        let description = ExportFile {
            export_id: id.to_string(),
            file_name: format!("{}-{}-{}.{}", sheet.name, range.from, range.to, file.extension),
            content_type: file.content_type.to_owned(),
            rows: sheet.row_count(),
            bytes,
            sha256,
        };
        Ok(Response::new(ExportStream::new(description, file.bytes, self.pool.clone(), id, EXPORT_LEASE)))
    }

    async fn list_exports(
        &self,
        request: Request<ListExportsRequest>,
    ) -> Result<Response<ListExportsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        v.check((0..=MAX_PAGE).contains(&body.page_size), || "page_size".into(), "must be between 0 and 1000");
        let before = if body.page_token.is_empty() { None } else { Uuid::parse_str(&body.page_token).ok() };
        v.check(
            body.page_token.is_empty() || before.is_some(),
            || "page_token".into(),
            "must be a token from a previous page",
        );
        v.finish()?;
        let limit = if body.page_size == 0 { DEFAULT_PAGE } else { body.page_size };
        let principal = &caller.principal;
        // Head office audits everyone; others see what they exported themselves.
        let requested_by = (!principal.role.is_head_office()).then_some(principal.subject.as_str());
        let exports =
            store::list_exports(&self.pool, requested_by, before, i64::from(limit)).await.map_err(AppError::from)?;
        let full_page = exports.len() == usize::try_from(limit).unwrap_or(usize::MAX);
        let next_page_token = exports.last().filter(|_| full_page).map(|e| e.export_id.clone()).unwrap_or_default();
        Ok(Response::new(ListExportsResponse { exports, next_page_token }))
    }
}
