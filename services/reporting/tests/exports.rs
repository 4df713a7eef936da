//! Exports over real gRPC: the streamed file is the report (CSV parsed
//! back, the workbook read back with calamine), described before its
//! bytes, and audited.
use branchscore_proto::common::v1::Granularity;
use branchscore_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use branchscore_proto::reporting::v1::*;
use branchscore_reporting::delivery::ExportStream;
use branchscore_reporting::store::{NewExport, record_export};
use branchscore_testkit::{authorized, eventually};
use calamine::{Data, Reader, Xlsx};
use chrono::{NaiveDate, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::io::Cursor;
use std::time::Duration;
use tonic::transport::Channel;
use uuid::Uuid;

mod common;
use common::*;

/// A streamed export: its description, the concatenated chunks and how many there were.
struct Streamed {
    description: ExportFile,
    file: Vec<u8>,
    chunks: usize,
}

async fn export(world: &World, token: &str, request: ExportReportRequest) -> Result<Streamed, tonic::Status> {
    let mut reporting = world.reporting.clone();
    let mut stream = reporting.export_report(authorized(token, request)).await?.into_inner();
    let (mut description, mut file, mut chunks) = (None, Vec::new(), 0);
    while let Some(message) = stream.message().await? {
        match message.content {
            Some(export_report_response::Content::File(f)) => description = Some(f),
            Some(export_report_response::Content::Chunk(chunk)) => {
                file.extend(chunk);
                chunks += 1;
            }
            None => {}
        }
    }
    Ok(Streamed { description: description.expect("the file is described first"), file, chunks })
}

fn sha256(file: &[u8]) -> String {
    Sha256::digest(file).iter().map(|b| format!("{b:02x}")).collect()
}

fn period_export(format: FileFormat, branch_id: &str) -> ExportReportRequest {
    ExportReportRequest {
        format: format as i32,
        report: Some(export_report_request::Report::PeriodReport(GetPeriodReportRequest {
            from: Some(FROM),
            to: Some(TO),
            granularity: Granularity::Month as i32,
            branch_id: branch_id.into(),
        })),
    }
}

fn leaderboard_export(format: FileFormat) -> ExportReportRequest {
    ExportReportRequest {
        format: format as i32,
        report: Some(export_report_request::Report::KpiLeaderboard(GetKpiLeaderboardRequest {
            from: Some(FROM),
            to: Some(TO),
            ..Default::default()
        })),
    }
}

/// The audit as `token` sees it, once the exports have finished streaming.
async fn audit(world: &World, token: &str, expected: usize) -> Vec<ExportRecord> {
    let mut reporting = world.reporting.clone();
    let finished = eventually(Duration::from_secs(2), async || {
        let listed = reporting.list_exports(authorized(token, ListExportsRequest::default())).await;
        let exports = listed.expect("exports").into_inner().exports;
        (exports.len() == expected && exports.iter().all(|e| e.status() != ExportStatus::Streaming)).then_some(exports)
    });
    finished.await.unwrap_or_else(|| panic!("the audit does not show {expected} finished exports"))
}

#[tokio::test]
async fn the_period_table_as_csv_and_the_leaderboard_as_xlsx_stream_parse_and_are_audited() {
    let world = World::seeded().await;
    let csv_export = export(&world, &world.hq, period_export(FileFormat::Csv, "")).await.expect("csv");
    let (csv_file, text) = (&csv_export.description, &csv_export.file);
    assert_eq!(csv_file.file_name, "period-report-2026-07-01-2026-09-30.csv");
    assert_eq!((csv_file.bytes, csv_file.content_type.as_str()), (text.len() as i64, "text/csv; charset=utf-8"));
    assert_eq!(csv_file.sha256, sha256(text));
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(header[..6], ["level", "period_start", "period_end", "branch_id", "employee_id", "employee_name"]);
    assert_eq!(header[12], "new_direction_sales_amount");
    let rows: Vec<Vec<String>> =
        reader.records().map(|r| r.expect("row").iter().map(str::to_owned).collect()).collect();
    // Nine employee rows, six branch totals, three network totals (see the period report test).
    assert_eq!((rows.len(), csv_file.rows), (18, 18));
    let s2_july = rows.iter().find(|r| r[0] == "employee" && r[1] == "2026-07-01" && r[4] == "WAW-S2").expect("S2");
    // Potential 0, primary 1 of 50.00 PLN, lost 1, restored 0, repeat 20.00, new direction 0.00.
    assert_eq!(s2_july[5..], ["Piotr Zieliński", "0", "1", "50.00", "1", "0", "20.00", "0.00"]);
    let network_august = rows.iter().find(|r| r[0] == "network" && r[1] == "2026-08-01").expect("August");
    assert_eq!((network_august[3].as_str(), network_august[8].as_str()), ("", "700.00"));

    let xlsx_export = export(&world, &world.hq, leaderboard_export(FileFormat::Xlsx)).await.expect("xlsx");
    let (xlsx_file, book) = (&xlsx_export.description, xlsx_export.file.clone());
    assert_eq!(xlsx_file.file_name, "kpi-leaderboard-2026-07-01-2026-09-30.xlsx");
    assert_eq!((xlsx_file.rows, xlsx_file.bytes), (3, book.len() as i64));
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(book)).expect("a real workbook");
    let sheet = workbook.worksheet_range("kpi-leaderboard").expect("the sheet");
    let header: Vec<&Data> = sheet.rows().next().expect("header").iter().collect();
    assert_eq!(header[0], &Data::String("Rank".into()));
    assert_eq!(header[9], &Data::String("Bonus (PLN)".into()));
    assert_eq!(header[12], &Data::String("Rank in branch".into()));
    let first = sheet.rows().nth(1).expect("the best line");
    // Rank 1, the period as dates, S1's 201 000 grosze as 2 010.00 PLN, W 0.67.
    assert_eq!((&first[0], &first[4]), (&Data::Float(1.0), &Data::String("WAW-S1".into())));
    let Data::DateTime(from) = &first[1] else { panic!("period_from is a date: {:?}", first[1]) };
    assert_eq!(from.as_datetime().map(|t| t.date()), NaiveDate::from_ymd_opt(2026, 7, 1));
    assert_eq!(
        (&first[7], &first[9], &first[11]),
        (&Data::String("EMPLOYEE_ROLE_SALES".into()), &Data::Float(2010.0), &Data::Float(2010.0))
    );
    assert_eq!(first[12], Data::Float(1.0), "S1 is first in WAW too");
    let Data::Float(attainment) = first[8] else { panic!("W is a number: {:?}", first[8]) };
    assert!((attainment - 0.67).abs() < 1e-9);
    let styles = workbook.worksheet_style("kpi-leaderboard").expect("styles");
    assert!(styles.get((0, 0)).and_then(|s| s.font.as_ref()).is_some_and(|f| f.is_bold()), "bold header");
    let money = styles.get((1, 9)).and_then(|s| s.number_format.as_ref()).map(|n| n.format_code.clone());
    assert_eq!(money.as_deref(), Some("#,##0.00"));

    // The audit, newest first: who, what, how big, delivered.
    let exports = audit(&world, &world.hq, 2).await;
    let seen: Vec<(ReportKind, FileFormat, i64, i64, ExportStatus, &str)> = exports
        .iter()
        .map(|e| (e.report(), e.format(), e.rows, e.bytes, e.status(), e.requested_by.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                ReportKind::KpiLeaderboard,
                FileFormat::Xlsx,
                3,
                xlsx_file.bytes,
                ExportStatus::Delivered,
                "test-hq_analyst"
            ),
            (ReportKind::PeriodReport, FileFormat::Csv, 18, csv_file.bytes, ExportStatus::Delivered, "test-hq_analyst"),
        ]
    );
    let csv_record = &exports[1];
    assert_eq!(
        (csv_record.export_id.as_str(), csv_record.sha256.as_str()),
        (csv_file.export_id.as_str(), csv_file.sha256.as_str())
    );
    assert_eq!((csv_record.from, csv_record.to, csv_record.granularity()), (Some(FROM), Some(TO), Granularity::Month));
    assert!(csv_record.scope_branch_ids.is_empty() && csv_record.finish_time.is_some());
    // Others see only what they exported themselves; pages follow the token.
    assert!(audit(&world, &world.waw_staff, 0).await.is_empty());
    let mut reporting = world.reporting.clone();
    let page = reporting
        .list_exports(authorized(&world.hq, ListExportsRequest { page_size: 1, page_token: String::new() }))
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.exports.len(), 1);
    let next = ListExportsRequest { page_size: 1, page_token: page.next_page_token };
    let next = reporting.list_exports(authorized(&world.hq, next)).await.expect("next").into_inner();
    assert_eq!(next.exports.first().map(|e| e.export_id.as_str()), Some(csv_file.export_id.as_str()));
}

#[tokio::test]
async fn a_loyalty_export_and_an_export_cut_off_by_the_caller() {
    let world = World::seeded().await;
    let request = ExportReportRequest {
        format: FileFormat::Xlsx as i32,
        report: Some(export_report_request::Report::LoyaltyReport(GetLoyaltyReportRequest {
            from: Some(FROM),
            to: Some(TO),
            granularity: Granularity::Month as i32,
            branch_id: String::new(),
        })),
    };
    let loyalty = export(&world, &world.hq, request).await.expect("loyalty");
    // Six branch rows, three months, one total.
    assert_eq!(loyalty.description.rows, 10);
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(loyalty.file)).expect("a real workbook");
    let sheet = workbook.worksheet_range("loyalty-report").expect("the sheet");
    let total = sheet.rows().next_back().expect("the total");
    // 6 buyers, 4 came back (a share, 0.667); 1 230.00 PLN of which 480.00 from existing clients.
    assert_eq!(
        (&total[0], &total[4], &total[5]),
        (&Data::String("total".into()), &Data::Float(6.0), &Data::Float(4.0))
    );
    assert_eq!((&total[7], &total[8]), (&Data::Float(1230.0), &Data::Float(480.0)));
    let Data::Float(share) = total[6] else { panic!("a share: {:?}", total[6]) };
    assert!((share - 4.0 / 6.0).abs() < 1e-9);
    // KRK bought nothing in September: no share, an empty cell.
    let krk_september = sheet.rows().nth(5).expect("KRK September");
    assert_eq!((&krk_september[3], &krk_september[6]), (&Data::String("KRK".into()), &Data::Empty));

    // Three years day by day: about half a megabyte in 64 KiB chunks that
    // concatenate to the described file.
    let daily = ExportReportRequest {
        format: FileFormat::Csv as i32,
        report: Some(export_report_request::Report::PeriodReport(GetPeriodReportRequest {
            from: day(2023, 10, 1),
            to: Some(TO),
            granularity: Granularity::Day as i32,
            branch_id: String::new(),
        })),
    };
    let whole = export(&world, &world.hq, daily.clone()).await.expect("daily");
    assert!(whole.chunks > 2, "{} chunks", whole.chunks);
    assert_eq!(whole.description.bytes, whole.file.len() as i64);
    assert_eq!(whole.description.sha256, sha256(&whole.file));
    let lines = csv::Reader::from_reader(whole.file.as_slice()).records().count();
    assert_eq!(lines as i64, whole.description.rows);

    // A caller that takes the description and goes away is recorded as
    // such: the file cannot pass a 64 KiB flow-control window before the
    // caller reads it, and it never does.
    let narrow = Channel::from_shared(format!("http://{}", world.reporting_addr))
        .expect("uri")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let mut reporting = ReportingServiceClient::new(narrow);
    let mut stream = reporting.export_report(authorized(&world.hq, daily)).await.expect("export").into_inner();
    stream.message().await.expect("description").expect("a message");
    drop(stream);
    let exports = audit(&world, &world.hq, 3).await;
    let statuses: Vec<ExportStatus> = exports.iter().map(ExportRecord::status).collect();
    assert_eq!(statuses, [ExportStatus::Interrupted, ExportStatus::Delivered, ExportStatus::Delivered]);
}

/// An export as the service records it before streaming, for `hq`'s audit.
fn recorded(id: Uuid) -> NewExport<'static> {
    NewExport {
        id,
        report: ReportKind::PeriodReport,
        format: FileFormat::Csv,
        requested_by: "hq-analyst",
        role: "hq_analyst",
        scope: None,
        branch_id: "",
        from: NaiveDate::from_ymd_opt(2026, 7, 1).expect("day"),
        to: NaiveDate::from_ymd_opt(2026, 9, 30).expect("day"),
        granularity: Granularity::Month,
        rows: 3,
        bytes: 10,
        sha256: "0",
        started_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_live_export_renews_its_lease_and_one_whose_process_stopped_reads_as_interrupted() {
    let world = World::seeded().await;
    let pool = PgPool::connect(&world.reporting_env.database.url).await.expect("pool");
    let lease = Duration::from_millis(600);
    // The process streaming this one stopped: nothing renews its lease.
    let (orphan, live) = (Uuid::now_v7(), Uuid::now_v7());
    record_export(&pool, &recorded(orphan), lease).await.expect("orphan");
    // This one's stream lives (its caller is slow) and renews its lease.
    record_export(&pool, &recorded(live), lease).await.expect("live");
    let description = ExportFile { export_id: live.to_string(), ..Default::default() };
    let stream = ExportStream::new(description, vec![0; 10], pool.clone(), live, lease);

    let listed = |exports: &[ExportRecord], id: Uuid| {
        let record = exports.iter().find(|e| e.export_id == id.to_string()).expect("listed").clone();
        (record.status(), record.finish_time)
    };
    let mut reporting = world.reporting.clone();
    let mut list = async || {
        let request = authorized(&world.hq, ListExportsRequest::default());
        reporting.list_exports(request).await.expect("exports").into_inner().exports
    };
    let exports = list().await;
    assert_eq!(listed(&exports, orphan).0, ExportStatus::Streaming, "within its lease");
    assert_eq!(listed(&exports, live).0, ExportStatus::Streaming);

    // Wait until the live lease has been renewed past twice its first end:
    // by then the orphan's lease, as long and as old, has run out.
    let renewed_twice = "SELECT lease_until > started_at + make_interval(secs => $2) FROM exports WHERE id = $1";
    let renewed = eventually(Duration::from_secs(5), async || {
        let query = sqlx::query_scalar(renewed_twice).bind(live).bind((lease * 2).as_secs_f64());
        let renewed: bool = query.fetch_one(&pool).await.expect("lease");
        renewed.then_some(())
    });
    assert!(renewed.await.is_some(), "the live export's lease was not renewed");
    let exports = list().await;
    let (status, finished) = listed(&exports, orphan);
    assert_eq!(status, ExportStatus::Interrupted, "its lease ran out");
    let started = exports.iter().find(|e| e.export_id == orphan.to_string()).and_then(|e| e.start_time);
    let (started, finished) = (started.expect("started").seconds, finished.expect("ended with its lease").seconds);
    assert!((0..=2).contains(&(finished - started)), "ended when its lease did: {started} .. {finished}");
    assert_eq!(listed(&exports, live), (ExportStatus::Streaming, None), "past its first lease, still renewed");

    // Dropped before its bytes went out: interrupted, now, by the stream itself.
    drop(stream);
    let interrupted = eventually(Duration::from_secs(2), async || {
        (listed(&list().await, live).0 == ExportStatus::Interrupted).then_some(())
    });
    assert!(interrupted.await.is_some(), "the dropped stream was not recorded as interrupted");
}
