//! The world of the reporting tests: the clients, pipeline, feedback and KPI
//! services started in this process, each on its own real Postgres
//! database, seeded through their gRPC APIs with a small network whose
//! numbers are worked out by hand in the tests, and the reporting service
//! pointed at them.
//!
//! Branches WAW (sellers WAW-S1 Anna Nowak, WAW-S2 Piotr Zieliński) and KRK
//! (seller KRK-K1 Jan Kowalski). Product lines PRINT (P-FLY flyers, P-CARD
//! business cards) and PACK (P-BOX boxes, P-BAG bags). Clients are known
//! since 2024-01-01 (C-Q since 2026-08-15), each sold by its owner; amounts
//! in grosze:
//!
//! | client | owner  | purchases                                                    |
//! |--------|--------|--------------------------------------------------------------|
//! | C-A    | WAW-S1 | 2026-05-15 FLY 10 000; 07-10 FLY 20 000; 08-20 BOX 5 000      |
//! | C-B    | WAW-S1 | 2026-08-05 FLY 30 000 (its first purchase)                   |
//! | C-C    | WAW-S1 | 2025-12-10 FLY 8 000; 2026-09-15 FLY 12 000                   |
//! | C-P    | WAW-S1 | never (potential)                                            |
//! | C-D    | WAW-S2 | 2026-04-10 FLY 6 000, never again                            |
//! | C-E    | WAW-S2 | 2026-07-03 one document FLY 4 000 + BOX 1 000; 07-20 BOX 2 000 |
//! | C-Q    | WAW-S2 | never (potential, known since 2026-08-15)                    |
//! | C-K1   | KRK-K1 | 2026-08-12 CARD 40 000 (its first purchase)                  |
//! | C-K2   | KRK-K1 | 2025-06-01 FLY 3 000; 2026-07-25 BOX 9 000                    |
//! | C-KP   | KRK-K1 | never (potential)                                            |
//!
//! Scores are recomputed as of 2026-07-01 and 2026-10-01. Sellers have a
//! scorecard (sales 60% at 20 000 a month, new clients 40% at 1 a month,
//! 1 000.00 a month at plan) and Q3 2026 is computed. Five deals were opened
//! today (four in WAW: two lost for price, one for timing, one won; one in
//! KRK lost to a competitor). Today three clients answered the general
//! survey (C-A, C-B, C-K1 of four invited), C-B's 3 opened a complaint, and
//! C-K2 complained directly.
#![allow(dead_code)] // each test file uses a different part of it

use branchscore_platform::Role;
use branchscore_platform::client::ClientConfig;
use branchscore_platform::service::PlatformConfig;
use branchscore_proto::clients::v1 as clients;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Money, SizeBand};
use branchscore_proto::feedback::v1 as feedback;
use branchscore_proto::feedback::v1::complaint_service_client::ComplaintServiceClient;
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use branchscore_proto::kpi::v1 as kpi;
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::pipeline::v1 as pipeline;
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use branchscore_testkit::{TestEnv, authorized};
use chrono::NaiveDate;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Q3 2026.
pub const FROM: Date = Date { year: 2026, month: 7, day: 1 };
pub const TO: Date = Date { year: 2026, month: 9, day: 30 };

pub fn day(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

pub fn pln(minor_units: i64) -> Option<Money> {
    Some(Money { minor_units, currency: "PLN".into() })
}

pub fn minor(money: &Option<Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.minor_units)
}

/// The bad-request fields of an error.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Where the sources listen.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    pub clients: SocketAddr,
    pub pipeline: SocketAddr,
    pub feedback: SocketAddr,
    pub kpi: SocketAddr,
}

pub struct World {
    pub reporting: ReportingServiceClient<Channel>,
    pub reporting_addr: SocketAddr,
    pub reporting_env: TestEnv,
    pub sources: Sources,
    /// The sources' databases, dropped with the world.
    _source_envs: Vec<TestEnv>,
    pub admin: String,
    pub hq: String,
    pub erp: String,
    pub waw_manager: String,
    pub waw_staff: String,
    pub today: NaiveDate,
}

/// Short deadlines, so that a source that is down fails fast.
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

/// An address where nothing listens.
pub fn nowhere() -> String {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    format!("http://{unused}")
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

async fn start_sources(envs: &mut Vec<TestEnv>) -> Sources {
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
    envs.push(clients_env);

    let pipeline_env = TestEnv::new();
    let mut peers = platform(&pipeline_env);
    peers.peers.clients = url(clients.addr);
    let config = branchscore_pipeline::Config {
        server: pipeline_env.server(),
        database: pipeline_env.database.clone(),
        ..Default::default()
    };
    let pipeline = branchscore_pipeline::run(&config, &peers, pipeline_env.shutdown.clone()).await.expect("pipeline");
    branchscore_testkit::wait_serving(pipeline.addr).await;
    envs.push(pipeline_env);

    let feedback_env = TestEnv::new();
    let mut peers = platform(&feedback_env);
    peers.peers.clients = url(clients.addr);
    let config = branchscore_feedback::Config {
        server: feedback_env.server(),
        database: feedback_env.database.clone(),
        ..Default::default()
    };
    let feedback = branchscore_feedback::run(&config, &peers, feedback_env.shutdown.clone()).await.expect("feedback");
    branchscore_testkit::wait_serving(feedback.addr).await;
    envs.push(feedback_env);

    let kpi_env = TestEnv::new();
    let mut peers = platform(&kpi_env);
    peers.peers.clients = url(clients.addr);
    peers.peers.pipeline = url(pipeline.addr);
    peers.peers.feedback = url(feedback.addr);
    let config = branchscore_kpi::Config { server: kpi_env.server(), database: kpi_env.database.clone() };
    let kpi = branchscore_kpi::run(&config, &peers, kpi_env.shutdown.clone()).await.expect("kpi");
    branchscore_testkit::wait_serving(kpi.addr).await;
    envs.push(kpi_env);

    Sources { clients: clients.addr, pipeline: pipeline.addr, feedback: feedback.addr, kpi: kpi.addr }
}

/// Source URLs as the reporting service is told them.
#[derive(Debug, Clone)]
pub struct Peers {
    pub clients: String,
    pub pipeline: String,
    pub feedback: String,
    pub kpi: String,
}

impl Peers {
    pub fn of(sources: Sources) -> Self {
        Peers {
            clients: url(sources.clients),
            pipeline: url(sources.pipeline),
            feedback: url(sources.feedback),
            kpi: url(sources.kpi),
        }
    }

    /// Every source down.
    pub fn down() -> Self {
        Peers { clients: nowhere(), pipeline: nowhere(), feedback: nowhere(), kpi: nowhere() }
    }
}

/// A reporting service on its own database, asking `peers`.
pub async fn start_reporting(peers: Peers) -> (TestEnv, ReportingServiceClient<Channel>, SocketAddr) {
    let env = TestEnv::new();
    let mut platform = platform(&env);
    platform.peers.clients = peers.clients;
    platform.peers.pipeline = peers.pipeline;
    platform.peers.feedback = peers.feedback;
    platform.peers.kpi = peers.kpi;
    let config = branchscore_reporting::Config { server: env.server(), database: env.database.clone() };
    let running = branchscore_reporting::run(&config, &platform, env.shutdown.clone()).await.expect("reporting");
    branchscore_testkit::wait_serving(running.addr).await;
    let client = ReportingServiceClient::new(branchscore_testkit::channel(running.addr).await);
    (env, client, running.addr)
}

impl World {
    /// The seeded network of the module documentation.
    pub async fn seeded() -> World {
        let mut source_envs = Vec::new();
        let sources = start_sources(&mut source_envs).await;
        let (reporting_env, reporting, reporting_addr) = start_reporting(Peers::of(sources)).await;
        let world = World {
            admin: reporting_env.token(Role::Admin, &[]),
            hq: reporting_env.token(Role::HqAnalyst, &[]),
            erp: reporting_env.token(Role::ErpIntegration, &["*"]),
            waw_manager: reporting_env.token(Role::BranchManager, &["WAW"]),
            waw_staff: reporting_env.token(Role::BranchStaff, &["WAW"]),
            today: reporting_env.platform.company.today().expect("today"),
            reporting,
            reporting_addr,
            reporting_env,
            sources,
            _source_envs: source_envs,
        };
        world.seed().await;
        world
    }

    /// Rows in a table of the reporting database.
    pub async fn count(&self, table: &str) -> i64 {
        count(&self.reporting_env, table).await
    }

    async fn seed(&self) {
        let admin = &self.admin;
        let channel = branchscore_testkit::channel(self.sources.clients).await;
        let mut master = ClientsServiceClient::new(channel.clone());
        let mut scoring = ScoringServiceClient::new(channel);
        seed_clients(&mut master, admin).await;
        for as_of in [day(2026, 7, 1), day(2026, 10, 1)] {
            let request = clients::RecomputeScoresRequest { as_of };
            let mut progress = scoring.recompute_scores(authorized(admin, request)).await.expect("recompute");
            while progress.get_mut().message().await.expect("progress").is_some() {}
        }
        seed_products(&mut scoring, admin).await;
        self.seed_kpi().await;
        self.seed_deals().await;
        self.seed_feedback().await;
    }

    async fn seed_kpi(&self) {
        let mut kpi = KpiServiceClient::new(branchscore_testkit::channel(self.sources.kpi).await);
        let line =
            |code: &str, weight_bp: i32, plan: f64| kpi::ScorecardLine { kpi_code: code.into(), weight_bp, plan };
        let card = kpi::Scorecard {
            role: EmployeeRole::Sales as i32,
            effective_from: day(2026, 1, 1),
            lines: vec![line("sales_amount", 6_000, 20_000.0), line("new_clients", 4_000, 1.0)],
            monthly_base_bonus: pln(100_000),
            ..Default::default()
        };
        let request = kpi::CreateScorecardVersionRequest { scorecard: Some(card) };
        kpi.create_scorecard_version(authorized(&self.hq, request)).await.expect("scorecard");
        let request = kpi::ComputePeriodRequest { from: Some(FROM), to: Some(TO) };
        kpi.compute_period(authorized(&self.hq, request)).await.expect("compute Q3");
    }

    async fn seed_deals(&self) {
        let mut deals = PipelineServiceClient::new(branchscore_testkit::channel(self.sources.pipeline).await);
        let close = Some(Date::from(self.today + chrono::Days::new(20)));
        let outcomes = [
            ("D-1", "C-A", "WAW", "WAW-S1", Some("price")),
            ("D-2", "C-A", "WAW", "WAW-S1", Some("price")),
            ("D-3", "C-B", "WAW", "WAW-S1", Some("timing")),
            ("D-4", "C-E", "WAW", "WAW-S2", None),
            ("D-5", "C-K1", "KRK", "KRK-K1", Some("competitor")),
        ];
        for (request_id, client, branch, owner, lost_for) in outcomes {
            let request = pipeline::CreateDealRequest {
                request_id: request_id.into(),
                client_id: client.into(),
                branch_id: branch.into(),
                owner_employee_id: owner.into(),
                amount: pln(100_000),
                expected_close_date: close,
                ..Default::default()
            };
            let deal = deals.create_deal(authorized(&self.admin, request)).await.expect("deal").into_inner().deal;
            let deal_id = deal.expect("deal").id;
            match lost_for {
                Some(reason) => {
                    let request = pipeline::LoseDealRequest { deal_id, reason: reason.into() };
                    deals.lose_deal(authorized(&self.admin, request)).await.expect("lost");
                }
                None => {
                    deals.win_deal(authorized(&self.admin, pipeline::WinDealRequest { deal_id })).await.expect("won");
                }
            }
        }
    }

    async fn seed_feedback(&self) {
        let channel = branchscore_testkit::channel(self.sources.feedback).await;
        let mut surveys = FeedbackServiceClient::new(channel.clone());
        let survey = feedback::CreateSurveyVersionRequest {
            survey_id: "S-GENERAL".into(),
            product_id: String::new(),
            name: "How are we doing?".into(),
            items: vec![feedback::SurveyItem {
                code: "service".into(),
                text: "How was our service?".into(),
                touchpoint: "staff".into(),
            }],
            asks_nps: true,
            asks_csat: true,
        };
        surveys.create_survey_version(authorized(&self.hq, survey)).await.expect("survey");
        let invite = |client: &str| feedback::InvitationRequest {
            client_id: client.into(),
            product_id: String::new(),
            channel: feedback::InvitationChannel::WebLink as i32,
        };
        let request = feedback::CreateInvitationsRequest {
            request_id: "invite-q4".into(),
            invitations: vec![invite("C-A"), invite("C-B"), invite("C-C"), invite("C-K1")],
        };
        let invitations =
            surveys.create_invitations(authorized(&self.admin, request)).await.expect("invitations").into_inner();
        // (item, NPS, CSAT): C-A 5 10 5, C-B 4 7 3 (a hidden complaint), C-K1 4 9 4; C-C does not answer.
        let answers = [("C-A", 5, 10, 5), ("C-B", 4, 7, 3), ("C-K1", 4, 9, 4)];
        for (client, item, nps, csat) in answers {
            let invitation = invitations
                .invitations
                .iter()
                .filter_map(|i| i.invitation.as_ref())
                .find(|i| i.client_id == client)
                .expect("invited");
            let request = feedback::RecordResponseRequest {
                invitation_id: invitation.id.clone(),
                answers: Some(feedback::Answers {
                    items: vec![feedback::ItemAnswer { code: "service".into(), score: item }],
                    nps: Some(nps),
                    csat: Some(csat),
                    comment: String::new(),
                }),
                ..Default::default()
            };
            surveys.record_response(authorized(&self.admin, request)).await.expect("answer");
        }
        let mut complaints = ComplaintServiceClient::new(channel);
        let complaint = feedback::RegisterComplaintRequest {
            request_id: "complaint-k2".into(),
            client_id: "C-K2".into(),
            description: "The boxes came late.".into(),
            ..Default::default()
        };
        complaints.register_complaint(authorized(&self.admin, complaint)).await.expect("complaint");
    }
}

pub async fn count(env: &TestEnv, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&env.database.url).await.expect("pool");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

fn sale(
    id: &str,
    document: &str,
    client: &str,
    product: &str,
    amount: i64,
    on: Option<Date>,
) -> clients::TransactionLine {
    let (branch, seller) = match client {
        "C-A" | "C-B" | "C-C" => ("WAW", "WAW-S1"),
        "C-D" | "C-E" => ("WAW", "WAW-S2"),
        _ => ("KRK", "KRK-K1"),
    };
    clients::TransactionLine {
        id: id.into(),
        document_id: document.into(),
        client_id: client.into(),
        product_id: product.into(),
        amount: pln(amount),
        business_date: on,
        branch_id: branch.into(),
        employee_id: seller.into(),
        kind: clients::LineKind::Sale as i32,
    }
}

async fn seed_clients(master: &mut ClientsServiceClient<Channel>, admin: &str) {
    let branches = ["WAW", "KRK"].map(|id| clients::Branch {
        id: id.into(),
        name: id.into(),
        region: String::new(),
        currency: "PLN".into(),
    });
    let request = clients::BatchUpsertBranchesRequest { branches: branches.to_vec() };
    master.batch_upsert_branches(authorized(admin, request)).await.expect("branches");
    let employee = |id: &str, branch: &str, name: &str| clients::Employee {
        id: id.into(),
        branch_id: branch.into(),
        full_name: name.into(),
        role: EmployeeRole::Sales as i32,
        team_lead_id: String::new(),
        active: true,
    };
    let employees = vec![
        employee("WAW-S1", "WAW", "Anna Nowak"),
        employee("WAW-S2", "WAW", "Piotr Zieliński"),
        employee("KRK-K1", "KRK", "Jan Kowalski"),
    ];
    master
        .batch_upsert_employees(authorized(admin, clients::BatchUpsertEmployeesRequest { employees }))
        .await
        .expect("employees");
    let line = |id: &str, name: &str| clients::ProductLine { id: id.into(), name: name.into() };
    let product = |id: &str, line: &str, name: &str| clients::Product {
        id: id.into(),
        product_line_id: line.into(),
        name: name.into(),
    };
    let catalogue = clients::BatchUpsertProductsRequest {
        product_lines: vec![line("PL-PRINT", "Print"), line("PL-PACK", "Packaging")],
        products: vec![
            product("P-FLY", "PL-PRINT", "Flyers"),
            product("P-CARD", "PL-PRINT", "Business cards"),
            product("P-BOX", "PL-PACK", "Boxes"),
            product("P-BAG", "PL-PACK", "Bags"),
        ],
    };
    master.batch_upsert_products(authorized(admin, catalogue)).await.expect("products");
    let owned = [
        ("C-A", "WAW", "WAW-S1"),
        ("C-B", "WAW", "WAW-S1"),
        ("C-C", "WAW", "WAW-S1"),
        ("C-P", "WAW", "WAW-S1"),
        ("C-D", "WAW", "WAW-S2"),
        ("C-E", "WAW", "WAW-S2"),
        ("C-Q", "WAW", "WAW-S2"),
        ("C-K1", "KRK", "KRK-K1"),
        ("C-K2", "KRK", "KRK-K1"),
        ("C-KP", "KRK", "KRK-K1"),
    ];
    let all = owned
        .iter()
        .map(|&(id, branch, owner)| clients::Client {
            id: id.into(),
            name: format!("Firma {id}"),
            kind: ClientKind::B2b as i32,
            size_band: SizeBand::Small as i32,
            branch_id: branch.into(),
            owner_employee_id: owner.into(),
            known_since: if id == "C-Q" { day(2026, 8, 15) } else { day(2024, 1, 1) },
            ..Default::default()
        })
        .collect();
    master
        .batch_upsert_clients(authorized(admin, clients::BatchUpsertClientsRequest { clients: all }))
        .await
        .expect("clients");
    let lines = vec![
        sale("A-1", "DOC-A-1", "C-A", "P-FLY", 10_000, day(2026, 5, 15)),
        sale("A-2", "DOC-A-2", "C-A", "P-FLY", 20_000, day(2026, 7, 10)),
        sale("A-3", "DOC-A-3", "C-A", "P-BOX", 5_000, day(2026, 8, 20)),
        sale("B-1", "DOC-B-1", "C-B", "P-FLY", 30_000, day(2026, 8, 5)),
        sale("C-1", "DOC-C-1", "C-C", "P-FLY", 8_000, day(2025, 12, 10)),
        sale("C-2", "DOC-C-2", "C-C", "P-FLY", 12_000, day(2026, 9, 15)),
        sale("D-1", "DOC-D-1", "C-D", "P-FLY", 6_000, day(2026, 4, 10)),
        sale("E-1a", "DOC-E-1", "C-E", "P-FLY", 4_000, day(2026, 7, 3)),
        sale("E-1b", "DOC-E-1", "C-E", "P-BOX", 1_000, day(2026, 7, 3)),
        sale("E-2", "DOC-E-2", "C-E", "P-BOX", 2_000, day(2026, 7, 20)),
        sale("K1-1", "DOC-K1-1", "C-K1", "P-CARD", 40_000, day(2026, 8, 12)),
        sale("K2-1", "DOC-K2-1", "C-K2", "P-FLY", 3_000, day(2025, 6, 1)),
        sale("K2-2", "DOC-K2-2", "C-K2", "P-BOX", 9_000, day(2026, 7, 25)),
    ];
    let stream = tokio_stream::iter(vec![clients::ImportTransactionsRequest { lines }]);
    let reply = master.import_transactions(authorized(admin, stream)).await.expect("import").into_inner();
    assert_eq!(reply.rejected, 0, "{:?}", reply.rejections);
}

/// Every client is in one segment targeting all four products; C-A's are
/// recorded: flyers and boxes in use, cards offered, bags refused.
async fn seed_products(scoring: &mut ScoringServiceClient<Channel>, admin: &str) {
    let segment = clients::Segment {
        id: "SEG-B2B".into(),
        name: "Business clients".into(),
        priority: 1,
        kinds: vec![ClientKind::B2b as i32],
        target_product_ids: vec!["P-FLY".into(), "P-CARD".into(), "P-BOX".into(), "P-BAG".into()],
        ..Default::default()
    };
    let request = clients::BatchUpsertSegmentsRequest { segments: vec![segment] };
    scoring.batch_upsert_segments(authorized(admin, request)).await.expect("segments");
    let states = [
        ("P-FLY", clients::ProductStateKind::Using, None, ""),
        ("P-BOX", clients::ProductStateKind::Using, None, ""),
        ("P-CARD", clients::ProductStateKind::Offered, day(2026, 10, 5), ""),
        ("P-BAG", clients::ProductStateKind::Refused, None, "price"),
    ];
    for (product, state, date, reason) in states {
        let request = clients::SetProductStateRequest {
            client_id: "C-A".into(),
            product_id: product.into(),
            state: state as i32,
            date,
            reason: reason.into(),
        };
        scoring.set_product_state(authorized(admin, request)).await.expect("product state");
    }
}
