//! Test harness shared by the clients service's integration tests: the
//! service on 127.0.0.1:0 with its own database, and a small seeded network.
#![allow(dead_code)] // each test file uses a different part of it

use branchscore_platform::Role;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Money, SizeBand};
use branchscore_testkit::{TestEnv, authorized};
use std::net::SocketAddr;
use tonic::transport::Channel;

pub struct Harness {
    pub env: TestEnv,
    pub addr: SocketAddr,
    pub client: ClientsServiceClient<Channel>,
    pub admin: String,
}

pub async fn start_with(env: TestEnv, config: branchscore_clients::Config) -> Harness {
    let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await.expect("service starts");
    branchscore_testkit::wait_serving(running.addr).await;
    let client = ClientsServiceClient::new(branchscore_testkit::channel(running.addr).await);
    let admin = env.token(Role::Admin, &[]);
    Harness { addr: running.addr, client, admin, env }
}

pub async fn start() -> Harness {
    let env = TestEnv::new();
    let config =
        branchscore_clients::Config { server: env.server(), database: env.database.clone(), ..Default::default() };
    start_with(env, config).await
}

pub fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

pub fn client(id: &str, branch: &str, owner: &str) -> Client {
    Client {
        id: id.into(),
        name: format!("Client {id}"),
        kind: ClientKind::B2b as i32,
        industry: "retail".into(),
        size_band: SizeBand::Small as i32,
        region: "mazowieckie".into(),
        founding_year: 2004,
        branch_id: branch.into(),
        owner_employee_id: owner.into(),
        known_since: date(2024, 1, 15),
        ..Default::default()
    }
}

pub fn line(id: &str, client: &str, branch: &str, employee: &str, amount: i64) -> TransactionLine {
    TransactionLine {
        id: id.into(),
        document_id: format!("DOC-{id}"),
        client_id: client.into(),
        product_id: "P-LOAN".into(),
        amount: Some(Money { minor_units: amount, currency: "PLN".into() }),
        business_date: date(2025, 6, 1),
        branch_id: branch.into(),
        employee_id: employee.into(),
        kind: LineKind::Sale as i32,
    }
}

/// Two branches, an employee each, a catalogue and a client each.
pub async fn seed(h: &mut Harness) {
    let admin = h.admin.clone();
    let branches = vec![
        Branch { id: "WAW".into(), name: "Warszawa".into(), region: "mazowieckie".into(), currency: "PLN".into() },
        Branch { id: "KRK".into(), name: "Kraków".into(), region: "małopolskie".into(), currency: "PLN".into() },
    ];
    h.client
        .batch_upsert_branches(authorized(&admin, BatchUpsertBranchesRequest { branches }))
        .await
        .expect("branches");
    let employees = vec![
        Employee {
            id: "E-WAW".into(),
            branch_id: "WAW".into(),
            full_name: "Anna Nowak".into(),
            role: EmployeeRole::Sales as i32,
            team_lead_id: String::new(),
            active: true,
        },
        Employee {
            id: "E-KRK".into(),
            branch_id: "KRK".into(),
            full_name: "Jan Kowalski".into(),
            role: EmployeeRole::Sales as i32,
            team_lead_id: String::new(),
            active: true,
        },
    ];
    h.client
        .batch_upsert_employees(authorized(&admin, BatchUpsertEmployeesRequest { employees }))
        .await
        .expect("employees");
    let products = BatchUpsertProductsRequest {
        product_lines: vec![ProductLine { id: "PL-CREDIT".into(), name: "Credit".into() }],
        products: vec![Product {
            id: "P-LOAN".into(),
            product_line_id: "PL-CREDIT".into(),
            name: "Business loan".into(),
        }],
    };
    h.client.batch_upsert_products(authorized(&admin, products)).await.expect("products");
    let clients = vec![client("C-WAW-1", "WAW", "E-WAW"), client("C-KRK-1", "KRK", "E-KRK")];
    let reply = h
        .client
        .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients }))
        .await
        .expect("clients");
    assert_eq!(reply.get_ref().created_count, 2);
}

pub async fn count(h: &Harness, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}
