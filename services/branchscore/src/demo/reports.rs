//! What head office reads at the end of the demo: the period table of
//! domain.md section 5, loyalty, the current quarter's bonus forecast, and
//! the exports a controller opens in a spreadsheet.
use branchscore_platform::client::CallCredentials;
use branchscore_proto::common::v1::{Date, Granularity};
use branchscore_proto::kpi::v1::ComputePeriodRequest;
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use branchscore_proto::reporting::v1::*;
use chrono::{Datelike, Months, NaiveDate};
use std::path::PathBuf;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

type Reporting = ReportingServiceClient<InterceptedService<Channel, CallCredentials>>;
type Kpi = KpiServiceClient<InterceptedService<Channel, CallCredentials>>;

/// An exported file as the demo saved it.
#[derive(Debug)]
pub struct SavedExport {
    pub path: PathBuf,
    pub file: ExportFile,
}

#[derive(Debug)]
pub struct ReportsReport {
    pub quarter: GetPeriodReportResponse,
    pub months: GetPeriodReportResponse,
    pub loyalty: GetLoyaltyReportResponse,
    pub forecast: GetKpiLeaderboardResponse,
    pub exports: Vec<SavedExport>,
}

fn range(from: NaiveDate, to: NaiveDate) -> (Option<Date>, Option<Date>) {
    (Some(from.into()), Some(to.into()))
}

/// Streams one export into `dir` and checks it arrived whole.
async fn export(
    reporting: &Reporting,
    request: ExportReportRequest,
    dir: &std::path::Path,
) -> anyhow::Result<SavedExport> {
    let mut stream = reporting.clone().export_report(request).await?.into_inner();
    let mut file = None;
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.content {
            Some(export_report_response::Content::File(described)) => file = Some(described),
            Some(export_report_response::Content::Chunk(chunk)) => bytes.extend(chunk),
            None => {}
        }
    }
    let file = file.ok_or_else(|| anyhow::anyhow!("the export did not describe its file"))?;
    anyhow::ensure!(bytes.len() as i64 == file.bytes, "{} of {} bytes arrived", bytes.len(), file.bytes);
    let path = dir.join(&file.file_name);
    std::fs::write(&path, &bytes)?;
    Ok(SavedExport { path, file })
}

/// `quarter` is the bonus period the KPI part approved.
pub async fn run(
    reporting: &Reporting,
    kpi: &Kpi,
    quarter: (NaiveDate, NaiveDate),
    as_of: NaiveDate,
) -> anyhow::Result<ReportsReport> {
    let (from, to) = range(quarter.0, quarter.1);
    let period = |granularity: Granularity| GetPeriodReportRequest {
        from,
        to,
        granularity: granularity as i32,
        branch_id: String::new(),
    };
    let quarter_table = reporting.clone().get_period_report(period(Granularity::Unspecified)).await?.into_inner();
    let months = reporting.clone().get_period_report(period(Granularity::Month)).await?.into_inner();
    let year_ago = as_of.checked_sub_months(Months::new(12)).and_then(|d| d.succ_opt()).unwrap_or(as_of);
    let (loyalty_from, loyalty_to) = range(year_ago, as_of);
    let loyalty = reporting
        .clone()
        .get_loyalty_report(GetLoyaltyReportRequest {
            from: loyalty_from,
            to: loyalty_to,
            granularity: Granularity::Unspecified as i32,
            branch_id: String::new(),
        })
        .await?
        .into_inner();

    // The quarter in progress: a draft from the facts so far, projected to its end.
    let current_start = NaiveDate::from_ymd_opt(as_of.year(), (as_of.month0() / 3) * 3 + 1, 1).unwrap_or(as_of);
    let current_end =
        current_start.checked_add_months(Months::new(3)).and_then(|d| d.pred_opt()).unwrap_or(current_start);
    let (current_from, current_to) = range(current_start, current_end);
    kpi.clone().compute_period(ComputePeriodRequest { from: current_from, to: current_to }).await?;
    let forecast = reporting
        .clone()
        .get_kpi_leaderboard(GetKpiLeaderboardRequest {
            from: current_from,
            to: current_to,
            version: 0,
            branch_id: String::new(),
        })
        .await?
        .into_inner();

    let dir = std::env::temp_dir().join("branchscore-demo");
    std::fs::create_dir_all(&dir)?;
    let period_csv = ExportReportRequest {
        format: FileFormat::Csv as i32,
        report: Some(export_report_request::Report::PeriodReport(period(Granularity::Month))),
    };
    let leaderboard_xlsx = ExportReportRequest {
        format: FileFormat::Xlsx as i32,
        report: Some(export_report_request::Report::KpiLeaderboard(GetKpiLeaderboardRequest {
            from,
            to,
            version: 0,
            branch_id: String::new(),
        })),
    };
    let exports = vec![export(reporting, period_csv, &dir).await?, export(reporting, leaderboard_xlsx, &dir).await?];
    Ok(ReportsReport { quarter: quarter_table, months, loyalty, forecast, exports })
}
