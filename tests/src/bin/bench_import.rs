//! ImportTransactions throughput beside a plain COPY of the same rows.
//!
//! `cargo run --release -p branchscore-tests --bin bench_import -- --lines 1000000`
//!
//! Starts the clients service in-process on a scratch database, loads a
//! demo network's master data, streams N synthetic lines through the gRPC
//! API (validated, de-duplicated, committed per message), then COPYs the
//! same rows into a table of the same shape (same primary key and index) in
//! the same database. Goal: the API reaches at least 50% of COPY.
use branchscore::demo::network::{self, NetworkSpec};
use branchscore_platform::Role;
use branchscore_platform::client::CallCredentials;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{Date, Money};
use branchscore_testkit::TestEnv;
use branchscore_tests::{machine, rate};
use chrono::{Days, NaiveDate};
use clap::Parser;
use indicatif::ProgressBar;
use sqlx::Connection;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Options {
    /// Lines to import.
    #[arg(long, default_value_t = 1_000_000)]
    lines: usize,
    /// Lines per stream message (the service takes up to 10 000).
    #[arg(long, default_value_t = 10_000)]
    lines_per_message: usize,
    /// Clients the lines are spread over.
    #[arg(long, default_value_t = 20_000)]
    clients: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let env = TestEnv::new();
    let config = branchscore_clients::Config {
        server: env.server(),
        database: env.database.clone(),
        ..branchscore_clients::Config::default()
    };
    let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await?;
    branchscore_testkit::wait_serving(running.addr).await;
    let token = env.token(Role::ErpIntegration, &["*"]);
    let mut clients = ClientsServiceClient::with_interceptor(
        branchscore_testkit::channel(running.addr).await,
        CallCredentials::bearer(&token)?,
    )
    .max_encoding_message_size(64 << 20)
    .max_decoding_message_size(64 << 20);

    let as_of = NaiveDate::from_ymd_opt(2026, 10, 31).expect("date");
    let network = network::generate(&NetworkSpec {
        seed: 1,
        branches: 8,
        clients: options.clients,
        months: 1,
        as_of,
        currency: "PLN".into(),
    });
    clients.batch_upsert_branches(BatchUpsertBranchesRequest { branches: network.branches.clone() }).await?;
    let (leads, staff): (Vec<_>, Vec<_>) = network.employees.iter().cloned().partition(|e| e.team_lead_id.is_empty());
    for employees in [leads, staff] {
        clients.batch_upsert_employees(BatchUpsertEmployeesRequest { employees }).await?;
    }
    clients
        .batch_upsert_products(BatchUpsertProductsRequest {
            product_lines: network.product_lines.clone(),
            products: network.products.clone(),
        })
        .await?;
    for chunk in network.clients.chunks(1000) {
        clients.batch_upsert_clients(BatchUpsertClientsRequest { clients: chunk.to_vec() }).await?;
    }

    let lines = synthetic_lines(&network.clients, &network.products, options.lines, as_of);
    eprintln!("streaming {} lines through ImportTransactions ...", lines.len());
    let progress = ProgressBar::new(lines.len() as u64);
    let messages: Vec<ImportTransactionsRequest> = lines
        .chunks(options.lines_per_message)
        .map(|chunk| ImportTransactionsRequest { lines: chunk.to_vec() })
        .collect();
    let sent = progress.clone();
    let started = Instant::now();
    let reply = clients
        .import_transactions(tokio_stream::iter(messages.into_iter().inspect(move |m| sent.inc(m.lines.len() as u64))))
        .await?
        .into_inner();
    let api = started.elapsed();
    progress.finish_and_clear();
    anyhow::ensure!(reply.accepted as usize == lines.len(), "accepted {} of {} lines", reply.accepted, lines.len());

    eprintln!("COPYing the same rows into a table of the same shape ...");
    let mut conn = sqlx::PgConnection::connect(&env.database.url).await?;
    sqlx::raw_sql("CREATE TABLE copy_reference (LIKE transaction_lines INCLUDING ALL)").execute(&mut conn).await?;
    let csv = to_csv(&lines);
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY copy_reference (id, document_id, client_id, product_id, amount_minor, currency, business_date,
                                  branch_id, employee_id) FROM STDIN (FORMAT csv)",
        )
        .await?;
    for chunk in csv.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    let reference = started.elapsed();
    anyhow::ensure!(copied as usize == lines.len(), "copied {copied} rows");

    report(lines.len() as u64, api, reference, &options);
    env.shutdown.cancel();
    let _ = running.task.await;
    Ok(())
}

fn synthetic_lines(clients: &[Client], products: &[Product], count: usize, as_of: NaiveDate) -> Vec<TransactionLine> {
    (0..count)
        .map(|n| {
            let client = &clients[n % clients.len()];
            let date = as_of - Days::new((n % 700) as u64);
            TransactionLine {
                id: format!("BENCH-{n:09}"),
                document_id: format!("DOC-{:08}", n / 3),
                client_id: client.id.clone(),
                product_id: products[n % products.len()].id.clone(),
                amount: Some(Money { minor_units: 1_000 + (n as i64 * 7919) % 250_000, currency: "PLN".into() }),
                business_date: Some(Date::from(date)),
                branch_id: client.branch_id.clone(),
                employee_id: client.owner_employee_id.clone(),
                kind: LineKind::Sale as i32,
            }
        })
        .collect()
}

fn to_csv(lines: &[TransactionLine]) -> Vec<u8> {
    use std::io::Write;
    let mut csv = Vec::with_capacity(lines.len() * 96);
    for line in lines {
        let date = line.business_date.as_ref().and_then(|d| d.to_naive()).expect("date");
        let amount = line.amount.as_ref().expect("amount");
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            line.id,
            line.document_id,
            line.client_id,
            line.product_id,
            amount.minor_units,
            amount.currency,
            date,
            line.branch_id,
            line.employee_id
        );
    }
    csv
}

fn report(rows: u64, api: Duration, reference: Duration, options: &Options) {
    let (api_rate, copy_rate) = (rate(rows, api), rate(rows, reference));
    println!(
        "ImportTransactions vs COPY, {rows} lines over {} clients, {} lines per message",
        options.clients, options.lines_per_message
    );
    println!("machine: {}", machine());
    println!("| path | seconds | rows/s |");
    println!("|---|---:|---:|");
    println!(
        "| ImportTransactions (gRPC, validated, committed per message) | {:.2} | {api_rate:.0} |",
        api.as_secs_f64()
    );
    println!(
        "| COPY FROM STDIN (csv) into a table of the same shape | {:.2} | {copy_rate:.0} |",
        reference.as_secs_f64()
    );
    println!("ImportTransactions reaches {:.0}% of COPY (goal: at least 50%)", api_rate / copy_rate * 100.0);
}
