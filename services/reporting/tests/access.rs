//! Who sees what, what is refused, and what happens when a source is down,
//! over real gRPC (numbers from the network of `common`).
use branchscore_proto::common::v1::{Date, Granularity};
use branchscore_proto::reporting::v1::*;
use branchscore_testkit::authorized;
use tonic::Code;

mod common;
use common::*;

fn monthly(branch_id: &str) -> GetPeriodReportRequest {
    GetPeriodReportRequest {
        from: Some(FROM),
        to: Some(TO),
        granularity: Granularity::Month as i32,
        branch_id: branch_id.into(),
    }
}

fn quarter_board(branch_id: &str) -> GetKpiLeaderboardRequest {
    GetKpiLeaderboardRequest { from: Some(FROM), to: Some(TO), version: 0, branch_id: branch_id.into() }
}

/// The 30 days to today: deals and answers of the world were made today.
fn last_month(world: &World) -> (Option<Date>, Option<Date>) {
    (Some((world.today - chrono::Days::new(30)).into()), Some(world.today.into()))
}

#[tokio::test]
async fn a_branch_manager_sees_only_their_branch() {
    let world = World::seeded().await;
    let mut reporting = world.reporting.clone();
    let manager = &world.waw_manager;
    let report = reporting.get_period_report(authorized(manager, monthly(""))).await.expect("own").into_inner();
    assert!(report.rows.iter().chain(&report.branch_totals).all(|r| r.branch_id == "WAW"));
    assert_eq!(report.rows.len(), 6);
    // The totals over the manager's branches are WAW's: July primary 5 000, lost 1, repeat 22 000.
    let july = &report.network_totals[0];
    assert_eq!(
        (
            july.potential_clients,
            minor(&july.primary_sales_amount),
            july.lost_clients,
            minor(&july.repeat_sales_amount)
        ),
        (2, 5_000, 1, 22_000)
    );
    let refused = reporting.get_period_report(authorized(manager, monthly("KRK"))).await.expect_err("KRK");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Network ranks stay (K1 is second), only WAW's lines are shown, each with its rank in WAW.
    let board = reporting.get_kpi_leaderboard(authorized(manager, quarter_board(""))).await.expect("board");
    let board = board.into_inner();
    let lines: Vec<(i32, i32, &str)> =
        board.lines.iter().map(|l| (l.rank, l.branch_rank, l.employee_id.as_str())).collect();
    assert_eq!(lines, [(1, 1, "WAW-S1"), (3, 2, "WAW-S2")]);
    assert_eq!(minor(&board.total_bonus), 201_000);
    let refused = reporting.get_kpi_leaderboard(authorized(manager, quarter_board("KRK"))).await.expect_err("KRK");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // WAW's deals: one won, three lost (price twice, timing).
    let (month_ago, today) = last_month(&world);
    let funnel = GetFunnelReportRequest { from: month_ago, to: today, ..Default::default() };
    let funnel = reporting.get_funnel_report(authorized(manager, funnel)).await.expect("funnel").into_inner();
    assert_eq!((funnel.won, funnel.lost, funnel.win_rate), (1, 3, Some(0.25)));
    let loyalty = GetLoyaltyReportRequest { from: Some(FROM), to: Some(TO), granularity: 0, branch_id: "KRK".into() };
    let refused = reporting.get_loyalty_report(authorized(manager, loyalty)).await.expect_err("KRK");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let matrix = GetAbcXyzReportRequest { branch_id: "KRK".into() };
    let refused = reporting.get_abc_xyz_report(authorized(manager, matrix)).await.expect_err("KRK");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let satisfaction =
        GetSatisfactionReportRequest { from: month_ago, to: today, granularity: 0, branch_id: String::new() };
    let satisfaction = reporting.get_satisfaction_report(authorized(manager, satisfaction)).await.expect("own");
    // Answers of C-A (NPS 10) and C-B (NPS 7): one promoter, one passive -> 50.
    let total = satisfaction.into_inner().total.expect("total");
    assert_eq!((total.responses, total.nps), (2, Some(50.0)));

    // An export holds the same rows, and the refusal is the same.
    let export = ExportReportRequest {
        format: FileFormat::Csv as i32,
        report: Some(export_report_request::Report::PeriodReport(monthly("KRK"))),
    };
    let refused = reporting.export_report(authorized(manager, export)).await.expect_err("KRK");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(world.count("exports").await, 0);
}

#[tokio::test]
async fn bad_requests_are_refused_with_every_field_before_any_source_is_asked() {
    // Every source is down: a refusal proves the request never left.
    let (env, mut reporting, _) = start_reporting(Peers::down()).await;
    let hq = env.token(branchscore_platform::Role::HqAnalyst, &[]);
    let bad =
        GetPeriodReportRequest { from: day(2026, 2, 30), to: Some(TO), granularity: 7, branch_id: "no spaces".into() };
    let refused = reporting.get_period_report(authorized(&hq, bad)).await.expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["from", "granularity", "branch_id"]);
    let backwards = GetLoyaltyReportRequest { from: Some(TO), to: Some(FROM), ..Default::default() };
    let refused = reporting.get_loyalty_report(authorized(&hq, backwards)).await.expect_err("backwards");
    assert_eq!(violated_fields(&refused), ["to"]);
    let ragged =
        GetKpiLeaderboardRequest { from: day(2026, 7, 2), to: day(2026, 9, 29), version: -1, ..Default::default() };
    let refused = reporting.get_kpi_leaderboard(authorized(&hq, ragged)).await.expect_err("not whole months");
    assert_eq!(violated_fields(&refused), ["from", "to", "version"]);
    let refused = reporting
        .get_client_report(authorized(&hq, GetClientReportRequest { client_id: String::new(), history_limit: 5_000 }))
        .await
        .expect_err("no client");
    assert_eq!(violated_fields(&refused), ["client_id", "history_limit"]);
    let refused =
        reporting.export_report(authorized(&hq, ExportReportRequest::default())).await.expect_err("nothing asked");
    assert_eq!(violated_fields(&refused), ["format", "report"]);
    let nested = ExportReportRequest {
        format: FileFormat::Xlsx as i32,
        report: Some(export_report_request::Report::LoyaltyReport(GetLoyaltyReportRequest {
            from: Some(FROM),
            to: day(2031, 1, 1),
            ..Default::default()
        })),
    };
    let refused = reporting.export_report(authorized(&hq, nested)).await.expect_err("too long");
    assert_eq!(violated_fields(&refused), ["loyalty_report.to"]);
    let token = ListExportsRequest { page_size: 0, page_token: "not-a-token".into() };
    let refused = reporting.list_exports(authorized(&hq, token)).await.expect_err("bad token");
    assert_eq!(violated_fields(&refused), ["page_token"]);

    let anonymous = reporting.get_period_report(monthly("")).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let erp = env.token(branchscore_platform::Role::ErpIntegration, &["*"]);
    let refused = reporting.get_period_report(authorized(&erp, monthly(""))).await.expect_err("the ERP");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A valid request reaches for the clients service and finds it down.
    let down = reporting.get_period_report(authorized(&hq, monthly(""))).await.expect_err("clients down");
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(down.message().contains("clients"), "{}", down.message());
}

#[tokio::test]
async fn a_source_down_makes_its_reports_unavailable_and_exports_nothing() {
    let world = World::seeded().await;
    // A second reporting service that finds the pipeline and KPI services down.
    let mut peers = Peers::of(world.sources);
    peers.pipeline = nowhere();
    peers.kpi = nowhere();
    let (env, mut reporting, _) = start_reporting(peers).await;
    let (month_ago, today) = last_month(&world);
    let funnel = GetFunnelReportRequest { from: month_ago, to: today, ..Default::default() };
    let down = reporting.get_funnel_report(authorized(&world.hq, funnel)).await.expect_err("pipeline down");
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(down.message().contains("pipeline"), "{}", down.message());
    let down = reporting.get_kpi_leaderboard(authorized(&world.hq, quarter_board(""))).await.expect_err("kpi down");
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(down.message().contains("kpi"), "{}", down.message());
    let export = ExportReportRequest {
        format: FileFormat::Xlsx as i32,
        report: Some(export_report_request::Report::KpiLeaderboard(quarter_board(""))),
    };
    let down = reporting.export_report(authorized(&world.hq, export)).await.expect_err("kpi down");
    assert_eq!(down.code(), Code::Unavailable);
    assert_eq!(count(&env, "exports").await, 0, "nothing exported, nothing audited");
    // Reports of the sources that are up still answer, in full.
    let report = reporting.get_period_report(authorized(&world.hq, monthly(""))).await.expect("clients is up");
    assert_eq!(report.into_inner().rows.len(), 9);
}
