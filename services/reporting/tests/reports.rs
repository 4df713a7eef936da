//! Report numbers over real gRPC against the hand-computed network of
//! `common` (lifecycle period P = 3 months: a client is lost once its last
//! purchase is more than 3 months old, restored when it buys again after a
//! 3-month gap).
use branchscore_proto::clients::v1::{ProductStateKind, clients_service_client::ClientsServiceClient};
use branchscore_proto::common::v1::{AbcClass, Granularity, LifecycleStatus, XyzClass};
use branchscore_proto::kpi::v1::PeriodStatus;
use branchscore_proto::reporting::v1::*;
use branchscore_testkit::authorized;

mod common;
use common::*;

/// Potential, primary count and sum, lost, restored, repeat sum, new direction sum.
type Table = (i64, i64, i64, i64, i64, i64, i64);

fn table(row: &PeriodReportRow) -> Table {
    (
        row.potential_clients,
        row.primary_sales_count,
        minor(&row.primary_sales_amount),
        row.lost_clients,
        row.restored_clients,
        minor(&row.repeat_sales_amount),
        minor(&row.new_direction_sales_amount),
    )
}

fn start(row: &PeriodReportRow) -> (i32, i32) {
    row.period_start.map_or((0, 0), |d| (d.month, d.day))
}

async fn period_report(
    world: &mut World,
    granularity: Granularity,
    from: Option<branchscore_proto::common::v1::Date>,
    to: Option<branchscore_proto::common::v1::Date>,
) -> GetPeriodReportResponse {
    let request = GetPeriodReportRequest { from, to, granularity: granularity as i32, branch_id: String::new() };
    world.reporting.get_period_report(authorized(&world.hq, request)).await.expect("period report").into_inner()
}

#[tokio::test]
async fn the_period_table_per_employee_with_branch_and_network_totals() {
    let mut world = World::seeded().await;
    let monthly = period_report(&mut world, Granularity::Month, Some(FROM), Some(TO)).await;
    let rows: Vec<((i32, i32), &str, &str, Table)> =
        monthly.rows.iter().map(|r| (start(r), r.employee_id.as_str(), r.employee_name.as_str(), table(r))).collect();
    // July: K1's C-K2 comes back after a year (restored) buying boxes, a line
    //   new to it (new direction 9 000); C-K1 and C-KP are still potential.
    //   S1 sells C-A flyers again (repeat 20 000); C-B and C-P are potential.
    //   S2 wins C-E: its first document FLY 4 000 + BOX 1 000 is one primary
    //   sale of 5 000, then boxes again on 07-20 (repeat 2 000); C-D's only
    //   purchase (04-10) leaves the 3 months on 07-10: lost; C-Q is not known yet.
    // August: K1 wins C-K1 (primary 40 000); S1 wins C-B (primary 30 000) and
    //   sells C-A boxes, new to it (5 000); C-Q, known from 08-15, is potential.
    // September: C-C, lost since March, buys flyers again: restored, repeat 12 000.
    assert_eq!(
        rows,
        [
            ((7, 1), "KRK-K1", "Jan Kowalski", (2, 0, 0, 0, 1, 0, 9_000)),
            ((7, 1), "WAW-S1", "Anna Nowak", (2, 0, 0, 0, 0, 20_000, 0)),
            ((7, 1), "WAW-S2", "Piotr Zieliński", (0, 1, 5_000, 1, 0, 2_000, 0)),
            ((8, 1), "KRK-K1", "Jan Kowalski", (1, 1, 40_000, 0, 0, 0, 0)),
            ((8, 1), "WAW-S1", "Anna Nowak", (1, 1, 30_000, 0, 0, 0, 5_000)),
            ((8, 1), "WAW-S2", "Piotr Zieliński", (1, 0, 0, 0, 0, 0, 0)),
            ((9, 1), "KRK-K1", "Jan Kowalski", (1, 0, 0, 0, 0, 0, 0)),
            ((9, 1), "WAW-S1", "Anna Nowak", (1, 0, 0, 0, 1, 12_000, 0)),
            ((9, 1), "WAW-S2", "Piotr Zieliński", (1, 0, 0, 0, 0, 0, 0)),
        ]
    );
    let branches: Vec<((i32, i32), &str, Table)> =
        monthly.branch_totals.iter().map(|r| (start(r), r.branch_id.as_str(), table(r))).collect();
    // WAW July = S1 + S2: potential 2 + 0, repeat 20 000 + 2 000.
    assert_eq!(
        branches,
        [
            ((7, 1), "KRK", (2, 0, 0, 0, 1, 0, 9_000)),
            ((7, 1), "WAW", (2, 1, 5_000, 1, 0, 22_000, 0)),
            ((8, 1), "KRK", (1, 1, 40_000, 0, 0, 0, 0)),
            ((8, 1), "WAW", (2, 1, 30_000, 0, 0, 0, 5_000)),
            ((9, 1), "KRK", (1, 0, 0, 0, 0, 0, 0)),
            ((9, 1), "WAW", (2, 0, 0, 0, 1, 12_000, 0)),
        ]
    );
    let network: Vec<Table> = monthly.network_totals.iter().map(table).collect();
    // July = KRK + WAW: potential 4, primary 1 / 5 000, lost 1, restored 1, repeat 22 000, new direction 9 000.
    assert_eq!(
        network,
        [(4, 1, 5_000, 1, 1, 22_000, 9_000), (3, 2, 70_000, 0, 0, 0, 5_000), (3, 0, 0, 0, 1, 12_000, 0)]
    );
    assert!(monthly.network_totals.iter().all(|r| r.branch_id.is_empty() && r.employee_id.is_empty()));

    // The quarter as one period: statuses on 30 June against 30 September,
    // sales summed. S1: C-C lost -> restored; repeat 20 000 + 12 000.
    let quarter = period_report(&mut world, Granularity::Unspecified, Some(FROM), Some(TO)).await;
    let rows: Vec<(&str, Table)> = quarter.rows.iter().map(|r| (r.employee_id.as_str(), table(r))).collect();
    assert_eq!(
        rows,
        [
            ("KRK-K1", (1, 1, 40_000, 0, 1, 0, 9_000)),
            ("WAW-S1", (1, 1, 30_000, 0, 1, 32_000, 5_000)),
            ("WAW-S2", (1, 1, 5_000, 1, 0, 2_000, 0)),
        ]
    );
    let network: Vec<Table> = quarter.network_totals.iter().map(table).collect();
    // Sales add up over the months (primary 75 000, repeat 34 000, new direction 14 000).
    assert_eq!(network, [(3, 3, 75_000, 1, 2, 34_000, 14_000)]);
    assert_eq!((quarter.network_totals[0].period_start, quarter.network_totals[0].period_end), (Some(FROM), Some(TO)));
}

#[tokio::test]
async fn weekly_and_daily_views_split_the_same_facts() {
    let mut world = World::seeded().await;
    // July 2026 by ISO week: 1-5 (from Wednesday), 6-12, 13-19, 20-26, 27-31.
    let weekly = period_report(&mut world, Granularity::Week, day(2026, 7, 1), day(2026, 7, 31)).await;
    let weeks: Vec<((i32, i32), Table)> = weekly.network_totals.iter().map(|r| (start(r), table(r))).collect();
    // Week 1: C-E's first document (5 000). Week 2: C-A's repeat (20 000) and
    // C-D lost on 07-10. Week 4: C-E's boxes (repeat 2 000), C-K2 restored
    // with boxes (new direction 9 000) on 07-25. Potential all month: C-B,
    // C-P, C-K1, C-KP. The weeks add up to July's row of the monthly table.
    assert_eq!(
        weeks,
        [
            ((7, 1), (4, 1, 5_000, 0, 0, 0, 0)),
            ((7, 6), (4, 0, 0, 1, 0, 20_000, 0)),
            ((7, 13), (4, 0, 0, 0, 0, 0, 0)),
            ((7, 20), (4, 0, 0, 0, 1, 2_000, 9_000)),
            ((7, 27), (4, 0, 0, 0, 0, 0, 0)),
        ]
    );
    let daily = period_report(&mut world, Granularity::Day, day(2026, 7, 24), day(2026, 7, 26)).await;
    let days: Vec<((i32, i32), Table)> = daily.network_totals.iter().map(|r| (start(r), table(r))).collect();
    assert_eq!(
        days,
        [((7, 24), (4, 0, 0, 0, 0, 0, 0)), ((7, 25), (4, 0, 0, 0, 1, 0, 9_000)), ((7, 26), (4, 0, 0, 0, 0, 0, 0))]
    );
    let krk: Vec<(&str, &str)> = daily
        .rows
        .iter()
        .filter(|r| start(r) == (7, 25))
        .map(|r| (r.branch_id.as_str(), r.employee_id.as_str()))
        .collect();
    assert!(krk.contains(&("KRK", "KRK-K1")), "{krk:?}");
}

/// Buyers, repeat buyers, sales, sales to existing clients.
type Loyalty = (i64, i64, i64, i64);

fn loyalty(row: &LoyaltyRow) -> Loyalty {
    (row.buying_clients, row.repeat_buyers, minor(&row.sales_amount), minor(&row.existing_client_sales_amount))
}

#[tokio::test]
async fn loyalty_is_the_share_of_repeat_buyers_and_of_revenue_from_existing_clients() {
    let world = World::seeded().await;
    let mut reporting = world.reporting.clone();
    let request = GetLoyaltyReportRequest {
        from: Some(FROM),
        to: Some(TO),
        granularity: Granularity::Month as i32,
        branch_id: String::new(),
    };
    let report = reporting.get_loyalty_report(authorized(&world.hq, request)).await.expect("loyalty").into_inner();
    // July: C-A (first bought in May), C-E (07-03, again 07-20) and C-K2 (first
    //   bought in 2025) all come back: 3 of 3. Sales 5 000 + 22 000 + 9 000 =
    //   36 000, of them 31 000 beyond first purchases.
    // August: C-A comes back, C-B and C-K1 make their first purchase: 1 of 3;
    //   75 000, of them C-A's 5 000.
    // September: C-C comes back: 1 of 1; 12 000, all from an existing client.
    let months: Vec<Loyalty> = report.periods.iter().map(loyalty).collect();
    assert_eq!(months, [(3, 3, 36_000, 31_000), (3, 1, 75_000, 5_000), (1, 1, 12_000, 12_000)]);
    let shares: Vec<Option<f64>> = report.periods.iter().map(|p| p.repeat_buyer_share).collect();
    assert_eq!(shares, [Some(1.0), Some(1.0 / 3.0), Some(1.0)]);
    let branches: Vec<(&str, Loyalty, Option<f64>)> =
        report.branches.iter().map(|r| (r.branch_id.as_str(), loyalty(r), r.repeat_buyer_share)).collect();
    assert_eq!(
        branches,
        [
            ("KRK", (1, 1, 9_000, 9_000), Some(1.0)),
            ("WAW", (2, 2, 27_000, 22_000), Some(1.0)),
            ("KRK", (1, 0, 40_000, 0), Some(0.0)),
            ("WAW", (2, 1, 35_000, 5_000), Some(0.5)),
            ("KRK", (0, 0, 0, 0), None),
            ("WAW", (1, 1, 12_000, 12_000), Some(1.0)),
        ]
    );
    // The quarter counts each buyer once: C-A, C-B, C-C, C-E, C-K1, C-K2 = 6,
    // of them C-A, C-C, C-E and C-K2 came back = 4 / 6. Revenue 123 000, from
    // existing clients 34 000 repeat + 14 000 new directions = 48 000.
    let total = report.total.expect("total");
    assert_eq!(loyalty(&total), (6, 4, 123_000, 48_000));
    assert_eq!(total.repeat_buyer_share, Some(4.0 / 6.0));
    assert_eq!(total.existing_client_revenue_share, Some(48_000.0 / 123_000.0));
    assert_eq!((total.period_start, total.period_end), (Some(FROM), Some(TO)));
}

#[tokio::test]
async fn a_client_with_its_products_by_state_history_and_score_and_the_abc_xyz_matrix() {
    let world = World::seeded().await;
    let mut reporting = world.reporting.clone();
    let request = GetClientReportRequest { client_id: "C-A".into(), history_limit: 0 };
    let report = reporting.get_client_report(authorized(&world.waw_staff, request)).await.expect("C-A").into_inner();
    assert_eq!(report.client.as_ref().map(|c| c.owner_employee_id.as_str()), Some("WAW-S1"));
    // As of 1 October C-A holds 35 000 of the window's 147 000 behind C-K1's
    // 40 000 (prior share 27%): A; May 10 000, June 0, July 20 000, August
    // 5 000, September 0 vary far more than 25%: Z; bought in the last 3 months
    // and the 3 before: regular. On 1 July it was new (first purchase 05-15), A, no XYZ.
    let score = report.score.as_ref().expect("scored");
    assert_eq!(
        (score.abc_class(), score.xyz_class(), score.lifecycle_status()),
        (AbcClass::A, XyzClass::Z, LifecycleStatus::Regular)
    );
    let history: Vec<(
        Option<branchscore_proto::common::v1::Date>,
        AbcClass,
        XyzClass,
        LifecycleStatus,
        LifecycleStatus,
    )> = report
        .history
        .iter()
        .map(|h| (h.as_of, h.abc_class(), h.xyz_class(), h.lifecycle_status(), h.previous_lifecycle_status()))
        .collect();
    assert_eq!(
        history,
        [
            (day(2026, 10, 1), AbcClass::A, XyzClass::Z, LifecycleStatus::Regular, LifecycleStatus::New),
            (day(2026, 7, 1), AbcClass::A, XyzClass::Unspecified, LifecycleStatus::New, LifecycleStatus::Unspecified),
        ]
    );
    // Four targeted products: flyers and boxes in use, cards offered, bags refused.
    assert_eq!((report.segment_id.as_str(), report.targeted, report.used, report.maturity), ("SEG-B2B", 4, 2, 0.5));
    let by_state: Vec<(ProductStateKind, i32)> =
        report.products_by_state.iter().map(|c| (c.state(), c.products)).collect();
    assert_eq!(
        by_state,
        [(ProductStateKind::Offered, 1), (ProductStateKind::Refused, 1), (ProductStateKind::Using, 2)]
    );
    let refused = report.products.iter().find(|p| p.product_id == "P-BAG").expect("bags");
    assert_eq!(refused.reason, "price");

    let other = GetClientReportRequest { client_id: "C-K1".into(), history_limit: 0 };
    let hidden = reporting.get_client_report(authorized(&world.waw_staff, other)).await.expect_err("another branch");
    assert_eq!(hidden.code(), tonic::Code::NotFound);

    // Window 2025-10..2026-09 revenue: C-K1 40 000, C-A 35 000, C-B 30 000,
    // C-C 20 000, C-K2 9 000, C-E 7 000, C-D 6 000 = 147 000. Prior shares
    // 0, 27.2% (A); 51.0%, 71.4% (B); 85.0%, 91.2%, 95.9% (C). New clients
    // (C-K1, C-B, C-E) have no XYZ; the others bought in too few months: Z.
    let matrix = reporting
        .get_abc_xyz_report(authorized(&world.hq, GetAbcXyzReportRequest::default()))
        .await
        .expect("matrix")
        .into_inner();
    assert_eq!(matrix.as_of, day(2026, 10, 1));
    let cells: Vec<(AbcClass, XyzClass, i64, i64)> =
        matrix.cells.iter().map(|c| (c.abc_class(), c.xyz_class(), c.clients, minor(&c.window_revenue))).collect();
    assert_eq!(
        cells,
        [
            (AbcClass::A, XyzClass::Z, 1, 35_000),
            (AbcClass::A, XyzClass::Unspecified, 1, 40_000),
            (AbcClass::B, XyzClass::Z, 1, 20_000),
            (AbcClass::B, XyzClass::Unspecified, 1, 30_000),
            (AbcClass::C, XyzClass::Z, 2, 15_000),
            (AbcClass::C, XyzClass::Unspecified, 1, 7_000),
            (AbcClass::Unspecified, XyzClass::Unspecified, 3, 0),
        ]
    );
    assert_eq!((matrix.clients, minor(&matrix.window_revenue)), (10, 147_000));
    let abc: Vec<(AbcClass, i64, i64, f64)> = matrix
        .abc_totals
        .iter()
        .map(|t| (t.abc_class(), t.clients, minor(&t.window_revenue), t.revenue_share))
        .collect();
    assert_eq!(
        abc,
        [
            (AbcClass::A, 2, 75_000, 75.0 / 147.0),
            (AbcClass::B, 2, 50_000, 50.0 / 147.0),
            (AbcClass::C, 3, 22_000, 22.0 / 147.0),
            (AbcClass::Unspecified, 3, 0, 0.0),
        ]
    );
    let xyz: Vec<(XyzClass, i64, f64)> =
        matrix.xyz_totals.iter().map(|t| (t.xyz_class(), t.clients, t.client_share)).collect();
    assert_eq!(xyz, [(XyzClass::Z, 4, 0.4), (XyzClass::Unspecified, 6, 0.6)]);

    // The clients service still knows C-A as the report shows it.
    let mut master = ClientsServiceClient::new(branchscore_testkit::channel(world.sources.clients).await);
    let client = master
        .get_client(authorized(&world.hq, branchscore_proto::clients::v1::GetClientRequest { id: "C-A".into() }))
        .await
        .expect("client")
        .into_inner()
        .client;
    assert_eq!(client, report.client);
}

#[tokio::test]
async fn the_funnel_with_loss_reasons_and_satisfaction_with_coverage_and_complaint_aging() {
    let world = World::seeded().await;
    let mut reporting = world.reporting.clone();
    let today = Some(world.today.into());
    let month_ago = Some((world.today - chrono::Days::new(30)).into());
    let request = GetFunnelReportRequest { from: month_ago, to: today, ..Default::default() };
    let funnel = reporting.get_funnel_report(authorized(&world.hq, request)).await.expect("funnel").into_inner();
    // Five deals opened at the first stage: one won, four lost (price twice,
    // timing, competitor). Win rate 1 / 5; no leads, so no lead conversion.
    assert_eq!((funnel.won, funnel.lost, funnel.win_rate, funnel.lead_conversion), (1, 4, Some(0.2), None));
    assert_eq!(funnel.stages.first().map(|s| (s.reached, s.lost_here)), Some((5, 4)));
    let reasons: Vec<(&str, i64, f64)> =
        funnel.loss_reasons.iter().map(|r| (r.reason.as_str(), r.deals, r.share)).collect();
    assert_eq!(reasons, [("price", 2, 0.5), ("competitor", 1, 0.25), ("timing", 1, 0.25)]);

    let request = GetSatisfactionReportRequest { from: month_ago, to: today, ..Default::default() };
    let report = reporting.get_satisfaction_report(authorized(&world.hq, request)).await.expect("satisfaction");
    let report = report.into_inner();
    // NPS 10, 7, 9: two promoters, one passive -> 66.7; CSAT 5, 3, 4: two of three satisfied, mean 4.
    let total = report.total.as_ref().expect("total");
    assert_eq!((total.responses, total.promoters, total.passives, total.detractors), (3, 2, 1, 0));
    assert!((total.nps.expect("nps") - 200.0 / 3.0).abs() < 1e-9);
    assert!((total.csat_percent.expect("csat") - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(total.csat_mean, Some(4.0));
    assert!((1..=2).contains(&report.trend.len()), "monthly by default");
    assert_eq!(report.trend.iter().map(|p| p.responses).sum::<i64>(), 3);
    // Coverage: of the seven clients who have bought, three answered; four invited.
    let latest = report.coverage_totals.last().expect("this month");
    assert_eq!((latest.clients, latest.responding_clients), (7, 3));
    assert_eq!(report.coverage_totals.iter().map(|r| r.invitations_answered).sum::<i64>(), 3);
    assert_eq!(report.coverage_target, 0.8);
    // C-B's 3 opened a complaint, C-K2 complained: two open today.
    let aging = report.complaint_aging.expect("aging");
    assert_eq!((aging.open, aging.overdue), (2, 0));
    assert_eq!(aging.buckets.iter().map(|b| b.complaints).sum::<i64>(), 2);
}

#[tokio::test]
async fn the_kpi_leaderboard_with_the_bonus_forecast() {
    let world = World::seeded().await;
    let mut reporting = world.reporting.clone();
    let request = GetKpiLeaderboardRequest { from: Some(FROM), to: Some(TO), ..Default::default() };
    let board = reporting.get_kpi_leaderboard(authorized(&world.hq, request)).await.expect("board").into_inner();
    assert_eq!((board.version, board.status()), (1, PeriodStatus::Draft));
    // Plans for the quarter: sales 60 000, new clients 3; base 300 000.
    // S1: sales 20 000 + 5 000 + 30 000 + 12 000 = 67 000 -> 1.1167; one new
    //     client (1 / 3, below the floor): W = 0.6 x 1.1167 = 0.67 -> 201 000.
    // K1: 49 000 -> 0.8167; one new client: W = 0.49 -> 147 000.
    // S2: 7 000 -> 0.117 and one new client, both below the floor: 0.
    // Computed after the quarter ended: the facts cover it, the forecast is the bonus.
    // Within their branches: S1 first and S2 second of WAW, K1 first of KRK.
    let lines: Vec<(i32, i32, &str, i64, i64)> = board
        .lines
        .iter()
        .map(|l| (l.rank, l.branch_rank, l.employee_id.as_str(), minor(&l.bonus), minor(&l.forecast_bonus)))
        .collect();
    assert_eq!(lines, [(1, 1, "WAW-S1", 201_000, 201_000), (2, 1, "KRK-K1", 147_000, 147_000), (3, 2, "WAW-S2", 0, 0)]);
    assert!((board.lines[0].weighted_attainment - 0.67).abs() < 1e-9);
    assert_eq!((board.facts_through, board.elapsed_share), (Some(TO), 1.0));
    assert_eq!((minor(&board.total_bonus), minor(&board.total_forecast_bonus)), (348_000, 348_000));
}
