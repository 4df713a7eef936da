//! Test harness of the feedback service: the clients service started in
//! this process on its own database and seeded through its gRPC API, the
//! feedback service on another database pointed at it, and tokens for every
//! kind of caller. Dates are relative to today, as the services check them.
#![allow(dead_code)] // each test file uses a different part of it

use branchscore_feedback::Config;
use branchscore_platform::Role;
use branchscore_platform::client::ClientConfig;
use branchscore_platform::service::PlatformConfig;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Money, SizeBand};
use branchscore_proto::feedback::v1::complaint_service_client::ComplaintServiceClient;
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use branchscore_proto::feedback::v1::staff_quality_service_client::StaffQualityServiceClient;
use branchscore_proto::feedback::v1::survey_link_service_client::SurveyLinkServiceClient;
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::cadence::CadenceRules;
use branchscore_testkit::{TestEnv, authorized};
use chrono::{Duration, NaiveDate};
use std::net::SocketAddr;
use std::time::Duration as StdDuration;
use tonic::transport::Channel;

pub struct Harness {
    /// The feedback service's world (its database is dropped with it).
    pub env: TestEnv,
    pub clients_env: TestEnv,
    pub clients_addr: SocketAddr,
    pub addr: SocketAddr,
    pub feedback: FeedbackServiceClient<Channel>,
    pub complaints: ComplaintServiceClient<Channel>,
    pub quality: StaffQualityServiceClient<Channel>,
    pub link: SurveyLinkServiceClient<Channel>,
    pub clients: ClientsServiceClient<Channel>,
    pub scoring: ScoringServiceClient<Channel>,
    pub admin: String,
    pub hq: String,
    pub erp: String,
    pub waw_manager: String,
    pub waw_staff: String,
    pub krk_staff: String,
    pub today: NaiveDate,
}

/// The feedback config of the tests: A clients always count as A+ (so the
/// printed-form rule does not hang on the exact score).
pub fn config(env: &TestEnv) -> Config {
    Config {
        server: env.server(),
        database: env.database.clone(),
        cadence: CadenceRules { a_plus_min_score: 0.0, ..CadenceRules::default() },
        ..Config::default()
    }
}

/// The platform config with the clients service at `clients_url` and short deadlines.
pub fn platform(env: &TestEnv, clients_url: String) -> PlatformConfig {
    let mut platform = env.platform.clone();
    platform.peers.clients = clients_url;
    platform.peers.client = ClientConfig {
        connect_timeout_ms: StdDuration::from_millis(500),
        request_timeout_ms: StdDuration::from_secs(20),
        max_attempts: 2,
        initial_backoff_ms: StdDuration::from_millis(10),
    };
    platform
}

pub async fn start() -> Harness {
    start_with(|_, _| {}).await
}

/// Starts both services; `adjust` changes the feedback and platform configs.
pub async fn start_with(adjust: impl FnOnce(&mut Config, &mut PlatformConfig)) -> Harness {
    let clients_env = TestEnv::new();
    let clients_config = branchscore_clients::Config {
        server: clients_env.server(),
        database: clients_env.database.clone(),
        recompute_at: String::new(),
        ..Default::default()
    };
    let clients = branchscore_clients::run(&clients_config, &clients_env.platform, clients_env.shutdown.clone())
        .await
        .expect("clients service starts");
    branchscore_testkit::wait_serving(clients.addr).await;
    let env = TestEnv::new();
    let mut feedback_config = config(&env);
    let mut feedback_platform = platform(&env, format!("http://{}", clients.addr));
    adjust(&mut feedback_config, &mut feedback_platform);
    let running = branchscore_feedback::run(&feedback_config, &feedback_platform, env.shutdown.clone())
        .await
        .expect("feedback starts");
    branchscore_testkit::wait_serving(running.addr).await;
    let channel = branchscore_testkit::channel(running.addr).await;
    let clients_channel = branchscore_testkit::channel(clients.addr).await;
    let today = env.platform.company.today().expect("today");
    Harness {
        admin: env.token(Role::Admin, &[]),
        hq: env.token(Role::HqAnalyst, &[]),
        erp: env.token(Role::ErpIntegration, &["*"]),
        waw_manager: env.token(Role::BranchManager, &["WAW"]),
        waw_staff: env.token(Role::BranchStaff, &["WAW"]),
        krk_staff: env.token(Role::BranchStaff, &["KRK"]),
        feedback: FeedbackServiceClient::new(channel.clone()),
        complaints: ComplaintServiceClient::new(channel.clone()),
        quality: StaffQualityServiceClient::new(channel.clone()),
        link: SurveyLinkServiceClient::new(channel),
        clients: ClientsServiceClient::new(clients_channel.clone()),
        scoring: ScoringServiceClient::new(clients_channel),
        clients_addr: clients.addr,
        addr: running.addr,
        env,
        clients_env,
        today,
    }
}

pub fn day(date: NaiveDate) -> Option<Date> {
    Some(Date::from(date))
}

impl Harness {
    pub fn days_ago(&self, days: i64) -> NaiveDate {
        self.today - Duration::days(days)
    }

    /// Rows in a table of the feedback database.
    pub async fn count(&self, table: &str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.env.database.url).await.expect("pool");
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        n
    }

    /// Runs SQL on the feedback database: only to let time pass (expiry, history).
    pub async fn execute(&self, sql: &str) {
        let pool = sqlx::PgPool::connect(&self.env.database.url).await.expect("pool");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.expect("sql");
        pool.close().await;
    }

    /// Counts of the tables every write touches, to prove nothing was written.
    pub async fn footprint(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in ["surveys", "invitations", "responses", "complaints", "complaint_events", "outbox", "evaluations"]
        {
            counts.push(self.count(table).await);
        }
        counts
    }
}

/// A client of the seeded network.
pub struct Seed {
    pub id: &'static str,
    pub branch: &'static str,
    pub owner: &'static str,
    pub region: &'static str,
}

/// A purchase: client, product, days before today, amount in grosze.
pub type Purchase = (&'static str, &'static str, i64, i64);

/// The network most tests use:
/// * C-WAW-A: 100 000.00 a month for a year (class A -> printed form);
/// * C-KRK-1: 20 000.00 a month (B); C-WAW-B 10 000.00 (C);
/// * C-WAW-INT: 1 000.00 a month, region "international" (printed form);
/// * C-WAW-NEW: a new client: loan 10 days ago, card 3 days ago;
/// * C-KRK-NEW: a new client: loan 5 days ago;
/// * C-WAW-POT: never bought (potential: never surveyed).
pub fn standard_clients() -> Vec<Seed> {
    vec![
        Seed { id: "C-WAW-A", branch: "WAW", owner: "E-WAW", region: "mazowieckie" },
        Seed { id: "C-WAW-B", branch: "WAW", owner: "E-WAW", region: "mazowieckie" },
        Seed { id: "C-WAW-INT", branch: "WAW", owner: "E-WAW-2", region: "International" },
        Seed { id: "C-WAW-NEW", branch: "WAW", owner: "E-WAW", region: "mazowieckie" },
        Seed { id: "C-WAW-POT", branch: "WAW", owner: "E-WAW", region: "mazowieckie" },
        Seed { id: "C-KRK-1", branch: "KRK", owner: "E-KRK", region: "małopolskie" },
        Seed { id: "C-KRK-NEW", branch: "KRK", owner: "E-KRK", region: "małopolskie" },
    ]
}

pub fn standard_purchases() -> Vec<Purchase> {
    let mut purchases = Vec::new();
    for month in 1..=12 {
        let ago = 30 * month;
        purchases.push(("C-WAW-A", "P-LOAN", ago, 10_000_000));
        purchases.push(("C-KRK-1", "P-LOAN", ago, 2_000_000));
        purchases.push(("C-WAW-B", "P-CARD", ago, 1_000_000));
        purchases.push(("C-WAW-INT", "P-LOAN", ago, 100_000));
    }
    purchases.push(("C-WAW-NEW", "P-LOAN", 10, 50_000));
    purchases.push(("C-WAW-NEW", "P-CARD", 3, 20_000));
    purchases.push(("C-KRK-NEW", "P-LOAN", 5, 30_000));
    purchases
}

/// Loads branches, employees, the catalogue, `clients` and `purchases` into
/// the clients service, then recomputes scores as of today.
pub async fn seed_network(h: &mut Harness, clients: &[Seed], purchases: &[Purchase]) {
    let admin = h.admin.clone();
    let branches = vec![
        Branch { id: "WAW".into(), name: "Warszawa".into(), region: "mazowieckie".into(), currency: "PLN".into() },
        Branch { id: "KRK".into(), name: "Kraków".into(), region: "małopolskie".into(), currency: "PLN".into() },
    ];
    h.clients
        .batch_upsert_branches(authorized(&admin, BatchUpsertBranchesRequest { branches }))
        .await
        .expect("branches");
    let employee = |id: &str, branch: &str, name: &str| Employee {
        id: id.into(),
        branch_id: branch.into(),
        full_name: name.into(),
        role: EmployeeRole::Sales as i32,
        team_lead_id: String::new(),
        active: true,
    };
    let employees = vec![
        employee("E-WAW", "WAW", "Anna Nowak"),
        employee("E-WAW-2", "WAW", "Piotr Zieliński"),
        employee("E-KRK", "KRK", "Jan Kowalski"),
    ];
    h.clients
        .batch_upsert_employees(authorized(&admin, BatchUpsertEmployeesRequest { employees }))
        .await
        .expect("employees");
    let products = BatchUpsertProductsRequest {
        product_lines: vec![
            ProductLine { id: "PL-CREDIT".into(), name: "Credit".into() },
            ProductLine { id: "PL-CARDS".into(), name: "Cards".into() },
        ],
        products: vec![
            Product { id: "P-LOAN".into(), product_line_id: "PL-CREDIT".into(), name: "Business loan".into() },
            Product { id: "P-CARD".into(), product_line_id: "PL-CARDS".into(), name: "Company card".into() },
        ],
    };
    h.clients.batch_upsert_products(authorized(&admin, products)).await.expect("products");
    let clients: Vec<Client> = clients
        .iter()
        .map(|seed| Client {
            id: seed.id.into(),
            name: format!("Firma {}", seed.id),
            kind: ClientKind::B2b as i32,
            industry: "retail".into(),
            size_band: SizeBand::Small as i32,
            region: seed.region.into(),
            founding_year: 2010,
            branch_id: seed.branch.into(),
            owner_employee_id: seed.owner.into(),
            known_since: day(h.days_ago(800)),
            ..Default::default()
        })
        .collect();
    let owners: std::collections::HashMap<String, (String, String)> =
        clients.iter().map(|c| (c.id.clone(), (c.branch_id.clone(), c.owner_employee_id.clone()))).collect();
    for chunk in clients.chunks(500) {
        h.clients
            .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients: chunk.to_vec() }))
            .await
            .expect("clients");
    }
    let lines: Vec<TransactionLine> = purchases
        .iter()
        .enumerate()
        .map(|(n, (client, product, ago, amount))| {
            let (branch, employee) = owners[*client].clone();
            TransactionLine {
                id: format!("L-{n}"),
                document_id: format!("D-{n}"),
                client_id: (*client).into(),
                product_id: (*product).into(),
                amount: Some(Money { minor_units: *amount, currency: "PLN".into() }),
                business_date: day(h.days_ago(*ago)),
                branch_id: branch,
                employee_id: employee,
                kind: LineKind::Sale as i32,
            }
        })
        .collect();
    let messages: Vec<ImportTransactionsRequest> =
        lines.chunks(5000).map(|chunk| ImportTransactionsRequest { lines: chunk.to_vec() }).collect();
    let erp = h.erp.clone();
    let reply = h
        .clients
        .import_transactions(authorized(&erp, tokio_stream::iter(messages)))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(reply.rejected, 0, "{:?}", reply.rejections);
    recompute(h).await;
}

/// Recomputes the client scores as of today.
pub async fn recompute(h: &mut Harness) {
    let admin = h.admin.clone();
    let mut stream = h
        .scoring
        .recompute_scores(authorized(&admin, RecomputeScoresRequest { as_of: day(h.today) }))
        .await
        .expect("recompute")
        .into_inner();
    while stream.message().await.expect("progress").is_some() {}
}

pub fn item(code: &str, text: &str, touchpoint: &str) -> SurveyItem {
    SurveyItem { code: code.into(), text: text.into(), touchpoint: touchpoint.into() }
}

/// The general survey (items, NPS, CSAT) and one per product.
pub async fn seed_surveys(h: &mut Harness) {
    let hq = h.hq.clone();
    let surveys = [
        CreateSurveyVersionRequest {
            survey_id: "S-GENERAL".into(),
            product_id: String::new(),
            name: "How are we doing?".into(),
            items: vec![
                item("staff", "How helpful were our staff?", "staff"),
                item("speed", "How quickly did we answer you?", "communication"),
            ],
            asks_nps: true,
            asks_csat: true,
        },
        CreateSurveyVersionRequest {
            survey_id: "S-LOAN".into(),
            product_id: "P-LOAN".into(),
            name: "Your business loan".into(),
            items: vec![
                item("paperwork", "How clear was the paperwork?", "documents"),
                item("payout", "How fast was the payout?", "delivery"),
                item("payment", "How convenient are the repayments?", "payment"),
            ],
            asks_nps: true,
            asks_csat: false,
        },
        CreateSurveyVersionRequest {
            survey_id: "S-CARD".into(),
            product_id: "P-CARD".into(),
            name: "Your company card".into(),
            items: vec![
                item("look", "How do you like the card?", "product"),
                item("delivery", "How fast did it arrive?", "delivery"),
            ],
            asks_nps: false,
            asks_csat: true,
        },
    ];
    for survey in surveys {
        h.feedback.create_survey_version(authorized(&hq, survey)).await.expect("survey");
    }
}

/// The standard network with surveys.
pub async fn standard() -> Harness {
    let mut h = start().await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    seed_surveys(&mut h).await;
    h
}

/// Plans as of today with `token`.
pub async fn plan(
    h: &mut Harness,
    token: &str,
    digital: InvitationChannel,
) -> Result<PlanInvitationsResponse, tonic::Status> {
    let request = PlanInvitationsRequest { digital_channel: digital as i32, ..Default::default() };
    h.feedback.plan_invitations(authorized(token, request)).await.map(|r| r.into_inner())
}

/// The planned invitation of a client (about a product; "" = general).
pub fn planned<'a>(plan: &'a PlanInvitationsResponse, client: &str, product: &str) -> &'a IssuedInvitation {
    plan.invitations
        .iter()
        .find(|i| i.invitation.as_ref().is_some_and(|i| i.client_id == client && i.product_id == product))
        .unwrap_or_else(|| panic!("no invitation for {client} about {product:?}"))
}

pub fn answers(items: &[(&str, i32)], nps: Option<i32>, csat: Option<i32>) -> Answers {
    Answers {
        items: items.iter().map(|(code, score)| ItemAnswer { code: (*code).into(), score: *score }).collect(),
        nps,
        csat,
        comment: String::new(),
    }
}

/// The bad-request fields of an error.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// An address where nothing listens.
pub async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}
