//! The KPI service over real gRPC on 127.0.0.1 with the clients, pipeline
//! and feedback services it takes facts from, each on its own real Postgres
//! database. The expected bonuses are computed by hand in the comments.
use branchscore_platform::Role;
use branchscore_platform::client::ClientConfig;
use branchscore_platform::service::PlatformConfig;
use branchscore_proto::clients::v1 as clients;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Money, SizeBand};
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::kpi::v1::*;
use branchscore_proto::pipeline::v1 as pipeline;
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_testkit::{TestEnv, authorized};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Q3 2026.
const FROM: Date = Date { year: 2026, month: 7, day: 1 };
const TO: Date = Date { year: 2026, month: 9, day: 30 };

struct World {
    kpi_env: TestEnv,
    _clients_env: TestEnv,
    _pipeline_env: TestEnv,
    _feedback_env: TestEnv,
    kpi: KpiServiceClient<Channel>,
    clients: ClientsServiceClient<Channel>,
    admin: String,
    hq: String,
    erp: String,
    waw_manager: String,
    waw_staff: String,
}

fn pln(minor_units: i64) -> Option<Money> {
    Some(Money { minor_units, currency: "PLN".into() })
}

fn day(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn at(year: i32, month: u32, day: u32, seconds: i64) -> Option<prost_types::Timestamp> {
    let midnight = chrono::NaiveDate::from_ymd_opt(year, month, day).expect("day").and_hms_opt(10, 0, 0).expect("time");
    Some(prost_types::Timestamp { seconds: midnight.and_utc().timestamp() + seconds, nanos: 0 })
}

fn platform(env: &TestEnv) -> PlatformConfig {
    let mut platform = env.platform.clone();
    platform.peers.client = ClientConfig {
        connect_timeout_ms: Duration::from_millis(500),
        request_timeout_ms: Duration::from_secs(20),
        max_attempts: 2,
        initial_backoff_ms: Duration::from_millis(10),
    };
    platform
}

/// Starts the four services; with `pipeline_down` the KPI service is told a
/// pipeline address where nothing listens.
async fn start(pipeline_down: bool) -> World {
    let clients_env = TestEnv::new();
    let config = branchscore_clients::Config {
        server: clients_env.server(),
        database: clients_env.database.clone(),
        recompute_at: String::new(),
        ..Default::default()
    };
    let clients = branchscore_clients::run(&config, &platform(&clients_env), clients_env.shutdown.clone())
        .await
        .expect("clients");
    branchscore_testkit::wait_serving(clients.addr).await;
    let clients_url = format!("http://{}", clients.addr);

    let pipeline_env = TestEnv::new();
    let mut pipeline_platform = platform(&pipeline_env);
    pipeline_platform.peers.clients = clients_url.clone();
    let config = branchscore_pipeline::Config {
        server: pipeline_env.server(),
        database: pipeline_env.database.clone(),
        ..Default::default()
    };
    let pipeline =
        branchscore_pipeline::run(&config, &pipeline_platform, pipeline_env.shutdown.clone()).await.expect("pipeline");
    branchscore_testkit::wait_serving(pipeline.addr).await;

    let feedback_env = TestEnv::new();
    let mut feedback_platform = platform(&feedback_env);
    feedback_platform.peers.clients = clients_url.clone();
    let config = branchscore_feedback::Config {
        server: feedback_env.server(),
        database: feedback_env.database.clone(),
        ..Default::default()
    };
    let feedback =
        branchscore_feedback::run(&config, &feedback_platform, feedback_env.shutdown.clone()).await.expect("feedback");
    branchscore_testkit::wait_serving(feedback.addr).await;

    let kpi_env = TestEnv::new();
    let mut kpi_platform = platform(&kpi_env);
    kpi_platform.peers.clients = clients_url;
    kpi_platform.peers.pipeline = if pipeline_down {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        format!("http://{unused}")
    } else {
        format!("http://{}", pipeline.addr)
    };
    kpi_platform.peers.feedback = format!("http://{}", feedback.addr);
    let config = branchscore_kpi::Config { server: kpi_env.server(), database: kpi_env.database.clone() };
    let kpi = branchscore_kpi::run(&config, &kpi_platform, kpi_env.shutdown.clone()).await.expect("kpi");
    branchscore_testkit::wait_serving(kpi.addr).await;

    let mut world = World {
        admin: kpi_env.token(Role::Admin, &[]),
        hq: kpi_env.token(Role::HqAnalyst, &[]),
        erp: kpi_env.token(Role::ErpIntegration, &["*"]),
        waw_manager: kpi_env.token(Role::BranchManager, &["WAW"]),
        waw_staff: kpi_env.token(Role::BranchStaff, &["WAW"]),
        kpi: KpiServiceClient::new(branchscore_testkit::channel(kpi.addr).await),
        clients: ClientsServiceClient::new(branchscore_testkit::channel(clients.addr).await),
        kpi_env,
        _clients_env: clients_env,
        _pipeline_env: pipeline_env,
        _feedback_env: feedback_env,
    };
    seed(&mut world, pipeline.addr).await;
    world
}

fn employee(id: &str, branch: &str, role: EmployeeRole, team_lead: &str) -> clients::Employee {
    clients::Employee {
        id: id.into(),
        branch_id: branch.into(),
        full_name: format!("Person {id}"),
        role: role as i32,
        team_lead_id: team_lead.into(),
        active: true,
    }
}

fn client(id: &str, branch: &str, owner: &str) -> clients::Client {
    clients::Client {
        id: id.into(),
        name: id.into(),
        kind: ClientKind::B2b as i32,
        size_band: SizeBand::Small as i32,
        branch_id: branch.into(),
        owner_employee_id: owner.into(),
        known_since: day(2024, 1, 1),
        ..Default::default()
    }
}

fn sale(
    id: &str,
    client: &str,
    branch: &str,
    employee: &str,
    amount: i64,
    date: Option<Date>,
) -> clients::TransactionLine {
    clients::TransactionLine {
        id: id.into(),
        document_id: format!("DOC-{id}"),
        client_id: client.into(),
        product_id: "P-1".into(),
        amount: pln(amount),
        business_date: date,
        branch_id: branch.into(),
        employee_id: employee.into(),
        kind: clients::LineKind::Sale as i32,
    }
}

async fn import(world: &mut World, lines: Vec<clients::TransactionLine>) {
    let stream = tokio_stream::iter(vec![clients::ImportTransactionsRequest { lines }]);
    let reply = world.clients.import_transactions(authorized(&world.admin, stream)).await.expect("import");
    assert_eq!(reply.get_ref().rejected, 0, "{:?}", reply.get_ref().rejections);
}

/// WAW: team lead L with sellers S1 and S2, manager M; KRK: seller K1.
/// Q3 2026 sales, all first purchases of clients known since 2024:
/// S1 150 000 to three clients, S2 120 000 to two, K1 240 000 to three.
/// Leads: S1 answered in 300 s, S2 in 900 s.
async fn seed(world: &mut World, pipeline_addr: SocketAddr) {
    let admin = world.admin.clone();
    let c = &mut world.clients;
    let branches = ["WAW", "KRK"].map(|id| clients::Branch {
        id: id.into(),
        name: id.into(),
        region: String::new(),
        currency: "PLN".into(),
    });
    c.batch_upsert_branches(authorized(&admin, clients::BatchUpsertBranchesRequest { branches: branches.to_vec() }))
        .await
        .expect("branches");
    let employees = vec![
        employee("WAW-L", "WAW", EmployeeRole::TeamLead, ""),
        employee("WAW-S1", "WAW", EmployeeRole::Sales, "WAW-L"),
        employee("WAW-S2", "WAW", EmployeeRole::Sales, "WAW-L"),
        employee("WAW-M", "WAW", EmployeeRole::BranchManager, ""),
        employee("KRK-K1", "KRK", EmployeeRole::Sales, ""),
    ];
    c.batch_upsert_employees(authorized(&admin, clients::BatchUpsertEmployeesRequest { employees }))
        .await
        .expect("employees");
    let catalogue = clients::BatchUpsertProductsRequest {
        product_lines: vec![clients::ProductLine { id: "PL-1".into(), name: "Print".into() }],
        products: vec![clients::Product { id: "P-1".into(), product_line_id: "PL-1".into(), name: "Flyers".into() }],
    };
    c.batch_upsert_products(authorized(&admin, catalogue)).await.expect("products");
    let owned = [("WAW", "WAW-S1", 3), ("WAW", "WAW-S2", 2), ("KRK", "KRK-K1", 3)];
    let all_clients = owned
        .iter()
        .flat_map(|&(branch, owner, n)| (1..=n).map(move |i| client(&format!("C-{owner}-{i}"), branch, owner)))
        .collect();
    c.batch_upsert_clients(authorized(&admin, clients::BatchUpsertClientsRequest { clients: all_clients }))
        .await
        .expect("clients");
    let august = day(2026, 8, 5);
    let lines = vec![
        sale("S1-1", "C-WAW-S1-1", "WAW", "WAW-S1", 100_000, august),
        sale("S1-2", "C-WAW-S1-2", "WAW", "WAW-S1", 30_000, august),
        sale("S1-3", "C-WAW-S1-3", "WAW", "WAW-S1", 20_000, august),
        sale("S2-1", "C-WAW-S2-1", "WAW", "WAW-S2", 70_000, august),
        sale("S2-2", "C-WAW-S2-2", "WAW", "WAW-S2", 50_000, august),
        sale("K1-1", "C-KRK-K1-1", "KRK", "KRK-K1", 100_000, august),
        sale("K1-2", "C-KRK-K1-2", "KRK", "KRK-K1", 100_000, august),
        sale("K1-3", "C-KRK-K1-3", "KRK", "KRK-K1", 40_000, august),
    ];
    import(world, lines).await;

    let mut leads = PipelineServiceClient::new(branchscore_testkit::channel(pipeline_addr).await);
    for (i, (owner, response_seconds)) in [("WAW-S1", 300), ("WAW-S2", 900)].into_iter().enumerate() {
        let lead = leads
            .create_lead(authorized(
                &admin,
                pipeline::CreateLeadRequest {
                    request_id: format!("lead-{owner}"),
                    branch_id: "WAW".into(),
                    owner_employee_id: owner.into(),
                    channel: pipeline::LeadChannel::Phone as i32,
                    receive_time: at(2026, 8, 10 + i as u32, 0),
                    contact_name: "Prospect".into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("lead")
            .into_inner()
            .lead
            .expect("lead");
        leads
            .respond_to_lead(authorized(
                &admin,
                pipeline::RespondToLeadRequest {
                    lead_id: lead.id,
                    response_time: at(2026, 8, 10 + i as u32, response_seconds),
                },
            ))
            .await
            .expect("respond");
    }
}

fn line(kpi_code: &str, weight_bp: i32, plan: f64) -> ScorecardLine {
    ScorecardLine { kpi_code: kpi_code.into(), weight_bp, plan }
}

/// Sellers: sales 60% (40 000 a month), new clients 40% (1 a month); 1 000.00 a month.
fn sales_card() -> Scorecard {
    Scorecard {
        role: EmployeeRole::Sales as i32,
        effective_from: day(2026, 1, 1),
        lines: vec![line("sales_amount", 6_000, 40_000.0), line("new_clients", 4_000, 1.0)],
        monthly_base_bonus: pln(100_000),
        ..Scorecard::default()
    }
}

/// Team leads: the team's sales 70% (80 000 a month), first response 30% (720 s); 2 000.00 a month.
fn lead_card() -> Scorecard {
    Scorecard {
        role: EmployeeRole::TeamLead as i32,
        effective_from: day(2026, 1, 1),
        lines: vec![line("sales_amount", 7_000, 80_000.0), line("first_response_time", 3_000, 720.0)],
        monthly_base_bonus: pln(200_000),
        ..Scorecard::default()
    }
}

async fn create_card(world: &mut World, card: Scorecard) -> Scorecard {
    world
        .kpi
        .create_scorecard_version(authorized(&world.hq, CreateScorecardVersionRequest { scorecard: Some(card) }))
        .await
        .expect("scorecard")
        .into_inner()
        .scorecard
        .expect("scorecard")
}

async fn compute(world: &mut World) -> BonusPeriod {
    world
        .kpi
        .compute_period(authorized(&world.hq, ComputePeriodRequest { from: Some(FROM), to: Some(TO) }))
        .await
        .expect("compute")
        .into_inner()
        .period
        .expect("period")
}

async fn scored_world() -> (World, BonusPeriod) {
    let mut world = start(false).await;
    create_card(&mut world, sales_card()).await;
    create_card(&mut world, lead_card()).await;
    let period = compute(&mut world).await;
    (world, period)
}

fn line_of<'a>(period: &'a BonusPeriod, employee_id: &str) -> &'a BonusLine {
    period.lines.iter().find(|l| l.employee_id == employee_id).unwrap_or_else(|| panic!("no line of {employee_id}"))
}

fn minor(money: &Option<Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.minor_units)
}

async fn count(env: &TestEnv, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&env.database.url).await.expect("pool");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_quarter_pays_by_the_scorecards_with_floor_cap_accelerator_and_team() {
    let (_world, period) = scored_world().await;
    assert_eq!(period.version, 1);
    assert_eq!(period.status(), PeriodStatus::Draft);
    // Base: 3 months x the monthly base. Bonus = base x (min(W,1) + 1.2 x max(W-1, 0)).
    // K1: sales 240 000 / 120 000 = 2.0 capped at 1.5; new clients 3 / 3 = 1.0;
    //     W = 0.6 x 1.5 + 0.4 x 1.0 = 1.3; 300 000 x (1 + 1.2 x 0.3) = 408 000.
    // S1: sales 150 000 / 120 000 = 1.25; new clients 3 / 3; W = 0.75 + 0.4 = 1.15;
    //     300 000 x (1 + 1.2 x 0.15) = 354 000.
    // L (team S1 + S2 + L): sales 270 000 / 240 000 = 1.125; response (300 + 900) / 2 = 600 s,
    //     lower is better: 720 / 600 = 1.2; W = 0.7 x 1.125 + 0.3 x 1.2 = 1.1475;
    //     600 000 x (1 + 1.2 x 0.1475) = 600 000 x 1.177 = 706 200.
    // S2: sales 120 000 / 120 000 = 1.0; new clients 2 / 3 = 0.667 below the 0.8 floor = 0;
    //     W = 0.6; 300 000 x 0.6 = 180 000.
    let ranked: Vec<(&str, i32, i64)> =
        period.lines.iter().map(|l| (l.employee_id.as_str(), l.rank, minor(&l.bonus))).collect();
    assert_eq!(ranked, [("KRK-K1", 1, 408_000), ("WAW-S1", 2, 354_000), ("WAW-L", 3, 706_200), ("WAW-S2", 4, 180_000)]);
    assert_eq!(minor(&period.total_bonus), 408_000 + 354_000 + 706_200 + 180_000);
    let k1 = line_of(&period, "KRK-K1");
    assert!((k1.weighted_attainment - 1.3).abs() < 1e-9);
    let sales = &k1.results[0];
    assert_eq!((sales.kpi_code.as_str(), sales.credit()), ("sales_amount", Credit::Capped));
    assert_eq!((sales.fact, sales.plan, sales.credited), (Some(240_000.0), 120_000.0, 1.5));
    let s2 = line_of(&period, "WAW-S2");
    assert_eq!(s2.results[1].credit(), Credit::BelowFloor);
    assert_eq!(s2.results[1].credited, 0.0);
    let lead = line_of(&period, "WAW-L");
    assert_eq!(lead.team_member_ids, ["WAW-S1", "WAW-S2"]);
    let response = &lead.results[1];
    assert_eq!((response.fact, response.attainment), (Some(600.0), Some(720.0 / 600.0)));
    assert_eq!(minor(&lead.base_bonus), 600_000);
    // The branch manager's role has no scorecard: no line.
    assert!(period.lines.iter().all(|l| l.employee_id != "WAW-M"));
}

#[tokio::test]
async fn recomputing_a_draft_replaces_it_and_an_approved_period_gets_a_new_version_with_its_changes() {
    let (mut world, first) = scored_world().await;
    let again = compute(&mut world).await;
    assert_eq!((again.version, again.lines.len()), (1, first.lines.len()));
    assert_eq!(count(&world.kpi_env, "bonus_periods").await, 1);

    let approve = |version| ApprovePeriodRequest { from: Some(FROM), to: Some(TO), version };
    let refused = world.kpi.approve_period(authorized(&world.waw_manager, approve(1))).await.expect_err("manager");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let approved = world.kpi.approve_period(authorized(&world.hq, approve(1))).await.expect("approve");
    let approved = approved.into_inner().period.expect("period");
    assert_eq!((approved.status(), approved.approved_by.as_str()), (PeriodStatus::Approved, "test-hq_analyst"));
    let twice = world.kpi.approve_period(authorized(&world.hq, approve(1))).await.expect_err("not a draft");
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // A late sale of S2 in September: S2 and the team lead change.
    import(&mut world, vec![sale("S2-3", "C-WAW-S2-1", "WAW", "WAW-S2", 30_000, day(2026, 9, 20))]).await;
    let second = compute(&mut world).await;
    assert_eq!((second.version, second.status()), (2, PeriodStatus::Draft));
    assert_eq!(second.compared_with_version, 1);
    let changed: Vec<&str> = second.changes.iter().map(|c| c.employee_id.as_str()).collect();
    assert_eq!(changed, ["WAW-L", "WAW-S2"]);
    // S2: sales 150 000 / 120 000 = 1.25 -> W = 0.75; 300 000 x 0.75 = 225 000.
    let s2 = second.changes.iter().find(|c| c.employee_id == "WAW-S2").expect("S2");
    assert_eq!((minor(&s2.previous_bonus), minor(&s2.bonus)), (180_000, 225_000));
    let stale = world.kpi.approve_period(authorized(&world.hq, approve(1))).await.expect_err("stale version");
    assert_eq!(stale.code(), Code::FailedPrecondition);
    world.kpi.approve_period(authorized(&world.hq, approve(2))).await.expect("approve v2");
    let first_now = world
        .kpi
        .get_period(authorized(
            &world.hq,
            GetPeriodRequest { from: Some(FROM), to: Some(TO), version: 1, ..Default::default() },
        ))
        .await
        .expect("v1")
        .into_inner()
        .period
        .expect("period");
    assert_eq!(first_now.status(), PeriodStatus::Superseded);
}

#[tokio::test]
async fn payroll_exports_only_approved_lines_as_messages_or_csv() {
    let (mut world, period) = scored_world().await;
    let export = |format: ExportFormat| ExportPayrollRequest { from: Some(FROM), to: Some(TO), format: format as i32 };
    let early = world.kpi.export_payroll(authorized(&world.erp, export(ExportFormat::Lines))).await.expect_err("draft");
    assert_eq!(early.code(), Code::FailedPrecondition);
    let staff = world.kpi.export_payroll(authorized(&world.waw_staff, export(ExportFormat::Lines))).await;
    assert_eq!(staff.expect_err("staff").code(), Code::PermissionDenied);
    world
        .kpi
        .approve_period(authorized(&world.hq, ApprovePeriodRequest { from: Some(FROM), to: Some(TO), version: 1 }))
        .await
        .expect("approve");

    let mut stream =
        world.kpi.export_payroll(authorized(&world.erp, export(ExportFormat::Lines))).await.expect("lines");
    let mut lines = Vec::new();
    while let Some(message) = stream.get_mut().message().await.expect("message") {
        if let Some(export_payroll_response::Content::Line(line)) = message.content {
            lines.push((line.employee_id, minor(&line.bonus), line.version));
        }
    }
    let expected: Vec<(String, i64, i32)> =
        period.lines.iter().map(|l| (l.employee_id.clone(), minor(&l.bonus), 1)).collect();
    assert_eq!(lines, expected);

    let mut stream = world.kpi.export_payroll(authorized(&world.erp, export(ExportFormat::Csv))).await.expect("csv");
    let mut text = Vec::new();
    while let Some(message) = stream.get_mut().message().await.expect("chunk") {
        if let Some(export_payroll_response::Content::CsvChunk(chunk)) = message.content {
            text.extend(chunk);
        }
    }
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let header = reader.headers().expect("header").clone();
    assert_eq!(&header[0], "employee_id");
    assert_eq!(&header[6], "bonus_minor_units");
    let rows: Vec<(String, i64)> = reader
        .records()
        .map(|r| r.expect("row"))
        .map(|r| (r[0].to_owned(), r[6].parse().expect("minor units")))
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], ("KRK-K1".to_owned(), 408_000));

    let exported = world
        .kpi
        .get_period(authorized(&world.hq, GetPeriodRequest { from: Some(FROM), to: Some(TO), ..Default::default() }))
        .await
        .expect("period")
        .into_inner()
        .period
        .expect("period");
    assert_eq!(exported.status(), PeriodStatus::Exported);
    assert!(exported.export_time.is_some());
}

#[tokio::test]
async fn a_bonus_is_traced_to_the_documents_and_leads_behind_it() {
    let (mut world, _) = scored_world().await;
    let asked = GetBonusBreakdownRequest { from: Some(FROM), to: Some(TO), version: 0, employee_id: "WAW-L".into() };
    let breakdown = world.kpi.get_bonus_breakdown(authorized(&world.hq, asked)).await.expect("breakdown").into_inner();
    assert_eq!(minor(&breakdown.line.as_ref().expect("line").bonus), 706_200);
    assert!(breakdown.formula.contains("706200"), "{}", breakdown.formula);
    let sales = breakdown.kpis.iter().find(|k| k.result.as_ref().expect("result").kpi_code == "sales_amount");
    let sales = sales.expect("sales KPI");
    let per_person: Vec<(&str, f64, Vec<&str>)> = sales
        .facts
        .iter()
        .map(|f| {
            let mut ids: Vec<&str> = f.sources.iter().map(|s| s.id.as_str()).collect();
            ids.sort();
            (f.employee_id.as_str(), f.value, ids)
        })
        .collect();
    assert_eq!(
        per_person,
        [
            ("WAW-L", 0.0, vec![]),
            ("WAW-S1", 150_000.0, vec!["DOC-S1-1", "DOC-S1-2", "DOC-S1-3"]),
            ("WAW-S2", 120_000.0, vec!["DOC-S2-1", "DOC-S2-2"]),
        ]
    );
    assert!(sales.facts.iter().flat_map(|f| &f.sources).all(|s| s.kind == "document"));
    let response = breakdown.kpis.iter().find(|k| k.result.as_ref().expect("result").kpi_code == "first_response_time");
    let response = response.expect("response KPI");
    let leads: Vec<&str> =
        response.facts.iter().flat_map(|f| &f.sources).filter(|s| s.kind == "lead").map(|s| s.id.as_str()).collect();
    // Both answered leads stand behind the numerator and the denominator.
    assert_eq!(leads.len(), 4, "{response:?}");
    assert!(response.formula.contains("lower is better"), "{}", response.formula);
}

#[tokio::test]
async fn a_branch_manager_sees_only_their_branch() {
    let (mut world, _) = scored_world().await;
    let mine = world
        .kpi
        .get_period(authorized(
            &world.waw_manager,
            GetPeriodRequest { from: Some(FROM), to: Some(TO), ..Default::default() },
        ))
        .await
        .expect("period")
        .into_inner()
        .period
        .expect("period");
    let seen: Vec<&str> = mine.lines.iter().map(|l| l.employee_id.as_str()).collect();
    assert_eq!(seen, ["WAW-S1", "WAW-L", "WAW-S2"]);
    assert_eq!(minor(&mine.total_bonus), 354_000 + 706_200 + 180_000);
    let other = GetPeriodRequest { from: Some(FROM), to: Some(TO), branch_id: "KRK".into(), ..Default::default() };
    let refused = world.kpi.get_period(authorized(&world.waw_manager, other)).await.expect_err("KRK");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let asked = GetBonusBreakdownRequest { from: Some(FROM), to: Some(TO), version: 0, employee_id: "KRK-K1".into() };
    let refused = world.kpi.get_bonus_breakdown(authorized(&world.waw_manager, asked)).await.expect_err("KRK-K1");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let compute = world
        .kpi
        .compute_period(authorized(&world.waw_manager, ComputePeriodRequest { from: Some(FROM), to: Some(TO) }))
        .await;
    assert_eq!(compute.expect_err("manager computes").code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_fact_source_down_fails_with_unavailable_and_stores_nothing() {
    let mut world = start(true).await;
    create_card(&mut world, sales_card()).await;
    let refused = world
        .kpi
        .compute_period(authorized(&world.hq, ComputePeriodRequest { from: Some(FROM), to: Some(TO) }))
        .await
        .expect_err("pipeline is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("pipeline"), "{}", refused.message());
    for table in ["bonus_periods", "bonus_lines", "period_facts"] {
        assert_eq!(count(&world.kpi_env, table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn bad_scorecards_and_periods_are_refused_with_every_problem_and_nothing_written() {
    let mut world = start(false).await;
    let mut card = sales_card();
    card.lines = vec![line("sales_amount", 5_000, 0.0), line("no_such_kpi", 4_000, 1.0)];
    card.cap_bp = Some(9_000);
    let refused = world
        .kpi
        .create_scorecard_version(authorized(&world.hq, CreateScorecardVersionRequest { scorecard: Some(card) }))
        .await
        .expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields = violated_fields(&refused);
    for field in ["scorecard.lines[0].plan", "scorecard.lines[1].kpi_code", "scorecard.lines", "scorecard.cap_bp"] {
        assert!(fields.iter().any(|f| f == field), "{field} missing in {fields:?}");
    }
    let staff = world
        .kpi
        .create_scorecard_version(authorized(
            &world.waw_manager,
            CreateScorecardVersionRequest { scorecard: Some(sales_card()) },
        ))
        .await;
    assert_eq!(staff.expect_err("manager").code(), Code::PermissionDenied);
    assert_eq!(count(&world.kpi_env, "scorecards").await, 0);

    let no_card = world
        .kpi
        .compute_period(authorized(&world.hq, ComputePeriodRequest { from: Some(FROM), to: Some(TO) }))
        .await
        .expect_err("no scorecard");
    assert_eq!(no_card.code(), Code::FailedPrecondition);
    let ragged = ComputePeriodRequest { from: day(2026, 7, 2), to: day(2026, 9, 29) };
    let refused = world.kpi.compute_period(authorized(&world.hq, ragged)).await.expect_err("not whole months");
    assert_eq!(violated_fields(&refused), ["from", "to"]);
    let unauthenticated = world.kpi.list_kpis(ListKpisRequest {}).await.expect_err("no token");
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    assert_eq!(count(&world.kpi_env, "bonus_periods").await, 0);
}

#[tokio::test]
async fn what_if_shows_a_changed_scorecard_beside_the_stored_bonus_without_saving() {
    let (mut world, _) = scored_world().await;
    let mut lower_floor = sales_card();
    lower_floor.floor_bp = Some(6_000);
    let asked = EvaluateWhatIfRequest {
        from: Some(FROM),
        to: Some(TO),
        scorecard: Some(lower_floor),
        branch_id: String::new(),
    };
    let what_if =
        world.kpi.evaluate_what_if(authorized(&world.waw_manager, asked)).await.expect("what-if").into_inner();
    // Only sellers of the manager's branch; S2's new clients (0.667) now pass the
    // 0.6 floor: W = 0.6 + 0.4 x 0.6667 = 0.8667 -> 300 000 x 0.8667 = 260 000.
    let pairs: Vec<(&str, i64, i64)> = what_if
        .lines
        .iter()
        .map(|l| {
            let now = l.what_if.as_ref().expect("what-if line");
            (now.employee_id.as_str(), minor(&l.stored.as_ref().expect("stored").bonus), minor(&now.bonus))
        })
        .collect();
    assert_eq!(pairs, [("WAW-S1", 354_000, 354_000), ("WAW-S2", 180_000, 260_000)]);
    assert_eq!((minor(&what_if.stored_total), minor(&what_if.what_if_total)), (534_000, 614_000));
    let cards = world
        .kpi
        .list_scorecards(authorized(&world.hq, ListScorecardsRequest { role: EmployeeRole::Sales as i32 }))
        .await
        .expect("cards")
        .into_inner()
        .scorecards;
    assert_eq!(cards.len(), 1, "nothing saved");
}

#[tokio::test]
async fn the_sales_plan_follows_last_years_season_and_shows_plan_against_fact() {
    let mut world = start(false).await;
    // 2025: S1 sold 10 000 in March and 30 000 in December, K1 40 000 in December.
    // Mean month = 80 000 / 12; March = 10 000 / (80 000 / 12) = 1.5, December 10.5.
    import(
        &mut world,
        vec![
            sale("H-1", "C-WAW-S1-1", "WAW", "WAW-S1", 10_000, day(2025, 3, 3)),
            sale("H-2", "C-WAW-S1-1", "WAW", "WAW-S1", 30_000, day(2025, 12, 3)),
            sale("H-3", "C-KRK-K1-1", "KRK", "KRK-K1", 40_000, day(2025, 12, 4)),
        ],
    )
    .await;
    let asked = CreateSalesPlanRequest {
        year: 2026,
        annual_target: pln(1_200_000),
        growth_factor: None,
        history_years: 1,
        allocation: PlanAllocation::LastYearShare as i32,
        shares: Vec::new(),
    };
    let plan = world.kpi.create_sales_plan(authorized(&world.hq, asked)).await.expect("plan").into_inner().plan;
    let plan = plan.expect("plan");
    assert!((plan.seasonal_coefficients[2] - 1.5).abs() < 1e-9 && (plan.seasonal_coefficients[11] - 10.5).abs() < 1e-9);
    let monthly: Vec<i64> = plan.monthly.iter().map(|m| m.minor_units).collect();
    assert_eq!((monthly[2], monthly[11], monthly.iter().sum::<i64>()), (150_000, 1_050_000, 1_200_000));
    let shares: Vec<(&str, i32)> = plan.employees.iter().map(|e| (e.employee_id.as_str(), e.share_bp)).collect();
    assert_eq!(shares, [("KRK-K1", 5_000), ("WAW-S1", 5_000)]);

    // To 30 September: S1's plan to date is their half of March's 150 000 (the
    // other months before December plan nothing) = 75 000; S1 sold 150 000 in August.
    let progress = world
        .kpi
        .get_plan_progress(authorized(
            &world.waw_manager,
            GetPlanProgressRequest { as_of: day(2026, 9, 30), branch_id: String::new() },
        ))
        .await
        .expect("progress")
        .into_inner();
    let s1 = progress.employees.iter().find(|e| e.employee_id == "WAW-S1").expect("S1");
    assert_eq!((minor(&s1.plan_to_date), minor(&s1.fact_to_date), s1.attainment), (75_000, 150_000, Some(2.0)));
    assert!(progress.employees.iter().all(|e| e.branch_id == "WAW"), "only the manager's branch");

    let explicit = CreateSalesPlanRequest {
        year: 2026,
        annual_target: pln(1_200_000),
        allocation: PlanAllocation::Explicit as i32,
        shares: vec![EmployeeShare { employee_id: "NOBODY".into(), share_bp: 10_000 }],
        ..Default::default()
    };
    let refused = world.kpi.create_sales_plan(authorized(&world.hq, explicit)).await.expect_err("unknown employee");
    assert_eq!(violated_fields(&refused), ["shares[0].employee_id"]);
}
