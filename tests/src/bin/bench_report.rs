//! GetPeriodReport over a year of a large synthetic network beside the facts
//! store functions called directly in the same database, in the same run.
//!
//! `cargo run --release -p branchscore-tests --bin bench_report -- --clients 1000000`
//!
//! Creates a scratch database, migrates it and generates the network of
//! `bench_recompute` into it (`branchscore_tests::network`, the same options
//! and defaults: 1 000 000 clients, about 20 sales lines each over 36 months
//! up to 2026-11-23), then `VACUUM (FREEZE, ANALYZE)`. Starts the clients
//! service on it and the reporting service on a scratch database of its own,
//! both in this process, the reporting service asking the clients service as
//! in a deployment (its peer channel, the caller's token forwarded).
//!
//! Three cases, each measured on every path below: `--warmup` untimed calls
//! of each path, then `--runs` timed rounds that call every path once, in an
//! order that rotates from round to round:
//!
//! 1. `year`: the last 12 months by MONTH (the as-of month included, up to
//!    the as-of date), whole network, head-office token (`hq_analyst`);
//! 2. `branch`: the same year for one branch (`BR01`), its manager's token;
//! 3. `days`: the last whole month before the as-of month by DAY, whole
//!    network, head office.
//!
//! Paths, from the outside in:
//!
//! * `GetPeriodReport` through the reporting service (what a user waits for:
//!   GetClientFacts and ListEmployees from the clients service, the table);
//! * `GetClientFacts` straight to the clients service (no reporting hop, no
//!   employee names, no table);
//! * in-process: what the GetClientFacts handler does, without gRPC: the
//!   settings, then `gather::client_facts` on a pool like the service's
//!   (clients from `store::lifecycle::period_counts` when the periods are
//!   days, weeks or months, else streamed from `store::each_client_purchases` into a
//!   `facts::FactsBuilder`; `store::seller_sales` concurrently);
//! * the clients counted one by one instead: `store::client_purchase_days`
//!   alone (clients collected), `store::seller_sales` alone, and
//!   `facts::assemble` alone on the rows they last read; its facts must
//!   equal the others, which cross-checks the lifecycle counts against
//!   counting every client.
//!
//! Every report must equal the first one and the table built in-process from
//! the store's rows by the reporting service's own `tables::period_report`;
//! every GetClientFacts reply must equal the in-process facts; the report's
//! sales must add up to the range's positive sales lines counted with a
//! plain `sum()`.
//!
//! After the timed rounds of a case, one more GetPeriodReport goes to a
//! second reporting service configured as deployed by default (10 s
//! deadline on its calls to the clients service, 30 s request timeout; the
//! measured services have 600 s, and 600 s of grace for a call in flight
//! when its connection reaches its maximum age): its
//! outcome is printed, and the benchmark waits until Postgres has no active
//! statement left on the database (a call given up on does not stop the
//! statements it started), which it reports too. It also counts, on the
//! in-process pool's connections, how many executions of the store
//! statements ran with a custom and with a generic plan (Postgres may switch
//! a prepared statement to a generic plan from its sixth execution on a
//! connection).
//!
//! Prints a markdown table (p50, p95 and max of the timed calls) and the goal
//! line: GetPeriodReport over a year of the whole network with a p95 under
//! 500 ms.
use branchscore_clients::store::{ClientPurchaseDays, SellerSales};
use branchscore_clients::{facts, gather, store};
use branchscore_platform::Role;
use branchscore_platform::client::ClientConfig;
use branchscore_platform::config::{DatabaseConfig, ServerConfig};
use branchscore_platform::db;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::{ClientFacts, GetClientFactsRequest};
use branchscore_proto::common::v1::{Date, Granularity, Money};
use branchscore_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use branchscore_proto::reporting::v1::{GetPeriodReportRequest, GetPeriodReportResponse};
use branchscore_scoring::periods::{self, Period};
use branchscore_testkit::{TestEnv, authorized};
use branchscore_tests::network::{Generator, Loaded, NetworkOptions, branch_id, first_of_month, load};
use branchscore_tests::{load_average, machine, postgres_settings};
use chrono::{Months, NaiveDate};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "GetPeriodReport over a year of a large synthetic network beside the facts store functions \
                   called directly (docs/benchmarks.md)")]
struct Options {
    #[command(flatten)]
    network: NetworkOptions,
    /// Timed rounds; each calls every path of a case once.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Untimed calls of each path before the timed rounds (statements prepared, data in the caches).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Cases to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [CaseKind::Year, CaseKind::Branch, CaseKind::Days])]
    cases: Vec<CaseKind>,
    /// Keep the scratch database (its URL is printed) instead of dropping it.
    #[arg(long)]
    keep_database: bool,
    /// Measure on a database kept by `--keep-database` here or by `bench_recompute` (pass the same
    /// --as-of): nothing is generated, and the database is not dropped.
    #[arg(long)]
    reuse_database: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CaseKind {
    /// The last 12 months by month, whole network, head office.
    Year,
    /// The same year for one branch, its manager.
    Branch,
    /// The last whole month by day, whole network, head office.
    Days,
}

impl fmt::Display for CaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaseKind::Year => "year",
            CaseKind::Branch => "branch",
            CaseKind::Days => "days",
        })
    }
}

/// The p95 goal of the year report over the whole network.
const GOAL: Duration = Duration::from_millis(500);
/// The measured services' deadlines: a slow report is measured, not cut.
const LONG: Duration = Duration::from_secs(600);
/// Replies the benchmark's own clients accept.
const MAX_MESSAGE: usize = 256 << 20;

/// One report asked for.
struct Case {
    kind: CaseKind,
    title: String,
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
    split: periods::Granularity,
    branch_id: String,
    /// The caller's token and its branch filter, as `Principal::branch_filter` gives it.
    token: String,
    scope: Option<Vec<String>>,
}

impl Case {
    fn periods(&self) -> Vec<Period> {
        periods::split(self.from, self.to, self.split)
    }

    fn report_request(&self) -> tonic::Request<GetPeriodReportRequest> {
        authorized(
            &self.token,
            GetPeriodReportRequest {
                from: Some(Date::from(self.from)),
                to: Some(Date::from(self.to)),
                granularity: self.granularity as i32,
                branch_id: self.branch_id.clone(),
            },
        )
    }

    fn facts_request(&self) -> tonic::Request<GetClientFactsRequest> {
        authorized(
            &self.token,
            GetClientFactsRequest {
                from: Some(Date::from(self.from)),
                to: Some(Date::from(self.to)),
                granularity: self.granularity as i32,
                branch_id: self.branch_id.clone(),
                ..Default::default()
            },
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Report,
    Facts,
    InProcess,
    PurchaseDays,
    SellerSales,
    Assemble,
}

impl Path {
    /// Called in every round, in a rotating order; `Assemble` runs after them on the last rows read.
    const ROUND: [Path; 5] = [Path::Report, Path::Facts, Path::InProcess, Path::PurchaseDays, Path::SellerSales];
    const ALL: [Path; 6] =
        [Path::Report, Path::Facts, Path::InProcess, Path::PurchaseDays, Path::SellerSales, Path::Assemble];

    fn name(self) -> &'static str {
        match self {
            Path::Report => "GetPeriodReport through the reporting service (gRPC, two hops)",
            Path::Facts => "GetClientFacts straight to the clients service (gRPC, one hop)",
            Path::InProcess => "in-process: settings, then gather::client_facts (the handler's reads)",
            Path::PurchaseDays => "  store::client_purchase_days alone (SQL, rows decoded and collected)",
            Path::SellerSales => "  store::seller_sales alone (SQL, rows decoded)",
            Path::Assemble => "  facts::assemble alone (Rust, on the rows read)",
        }
    }
}

/// What the paths of one case have shown so far.
#[derive(Default)]
struct Seen {
    report: Option<GetPeriodReportResponse>,
    facts: Option<Vec<ClientFacts>>,
    clients: Vec<ClientPurchaseDays>,
    sales: Vec<SellerSales>,
    lifecycle_months: u32,
    purchase_days_rows: usize,
    daily_sales_rows: usize,
    report_bytes: usize,
    facts_bytes: usize,
}

/// The services and connections the paths use.
struct Bench {
    reporting: ReportingServiceClient<Channel>,
    /// A reporting service with the default deadlines.
    deployed: ReportingServiceClient<Channel>,
    scoring: ScoringServiceClient<Channel>,
    pool: PgPool,
    currency: String,
}

impl Bench {
    /// Runs `path` once; checks its answer against what was seen; returns its time.
    async fn call(&mut self, case: &Case, path: Path, seen: &mut Seen) -> anyhow::Result<Duration> {
        let scope = case.scope.as_deref();
        let started = Instant::now();
        match path {
            Path::Report => {
                let reply = self.reporting.get_period_report(case.report_request()).await?.into_inner();
                let elapsed = started.elapsed();
                seen.report_bytes = reply.encoded_len();
                match &seen.report {
                    Some(first) => anyhow::ensure!(reply == *first, "{}: a report differs from the first", case.kind),
                    None => seen.report = Some(reply),
                }
                Ok(elapsed)
            }
            Path::Facts => {
                let reply = self.scoring.get_client_facts(case.facts_request()).await?.into_inner();
                let elapsed = started.elapsed();
                seen.facts_bytes = reply.encoded_len();
                expect_facts(case, seen, reply.facts, "GetClientFacts")?;
                Ok(elapsed)
            }
            Path::InProcess => {
                let stored = store::settings::effective(&self.pool, case.to).await?;
                let (mut days_tx, mut sales_tx) =
                    tokio::try_join!(db::read_within(&self.pool, None), db::read_within(&self.pool, None))?;
                let lifecycle_months = stored.settings.lifecycle_period_months;
                let periods = case.periods();
                let query = gather::FactsQuery {
                    periods: &periods,
                    lifecycle_months,
                    scope,
                    branch_id: &case.branch_id,
                    employee_id: "",
                    include_sources: false,
                };
                let rows = gather::client_facts(&mut days_tx, &mut sales_tx, &query, &self.currency).await?;
                let elapsed = started.elapsed();
                seen.lifecycle_months = lifecycle_months;
                expect_facts(case, seen, rows, "the in-process facts")?;
                Ok(elapsed)
            }
            Path::PurchaseDays => {
                let mut conn = self.pool.acquire().await?;
                let rows = store::client_purchase_days(&mut conn, case.to, scope, &case.branch_id, "").await?;
                let elapsed = started.elapsed();
                seen.purchase_days_rows = rows.len();
                seen.clients = rows;
                Ok(elapsed)
            }
            Path::SellerSales => {
                let periods = case.periods();
                let rows =
                    store::seller_sales(&mut *self.pool.acquire().await?, &periods, scope, &case.branch_id, "", false)
                        .await?;
                let elapsed = started.elapsed();
                seen.daily_sales_rows = rows.len();
                seen.sales = rows;
                Ok(elapsed)
            }
            Path::Assemble => {
                let periods = case.periods();
                let started = Instant::now();
                let rows =
                    facts::assemble(&periods, seen.lifecycle_months, &seen.clients, &seen.sales, &self.currency, false)
                        .map_err(|e| anyhow::anyhow!("facts::assemble: {e:?}"))?;
                let elapsed = started.elapsed();
                expect_facts(case, seen, rows, "facts::assemble")?;
                Ok(elapsed)
            }
        }
    }

    /// The table the reporting service should have sent: the in-process facts through its own assembly.
    async fn expected_report(&self, case: &Case, facts: &[ClientFacts]) -> anyhow::Result<GetPeriodReportResponse> {
        let employees = store::list_employees(&self.pool, case.scope.as_deref(), "").await?;
        let names: HashMap<String, String> = employees.into_iter().map(|e| (e.id, e.full_name)).collect();
        Ok(branchscore_reporting::tables::period_report(&case.periods(), facts, &names, &self.currency))
    }
}

fn expect_facts(case: &Case, seen: &mut Seen, facts: Vec<ClientFacts>, what: &str) -> anyhow::Result<()> {
    match &seen.facts {
        Some(first) => anyhow::ensure!(facts == *first, "{}: {what} differ from the first facts", case.kind),
        None => seen.facts = Some(facts),
    }
    Ok(())
}

/// p50, p95 (nearest rank) and max.
#[derive(Debug, Clone, Copy)]
struct Spread {
    p50: Duration,
    p95: Duration,
    max: Duration,
}

fn spread(samples: &[Duration]) -> Spread {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len().max(1);
    let rank = |q: f64| sorted.get(((n as f64 * q).ceil() as usize).clamp(1, n) - 1).copied().unwrap_or_default();
    let p50 = if n % 2 == 1 || sorted.len() < 2 { rank(0.5) } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2 };
    Spread { p50, p95: rank(0.95), max: sorted.last().copied().unwrap_or_default() }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 { format!("{ms:.1}") } else { format!("{ms:.0}") }
}

fn minor(money: &Option<Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.minor_units)
}

/// Sales of the network totals: primary + repeat + new direction.
fn report_sales(report: &GetPeriodReportResponse) -> i64 {
    report
        .network_totals
        .iter()
        .map(|r| minor(&r.primary_sales_amount) + minor(&r.repeat_sales_amount) + minor(&r.new_direction_sales_amount))
        .sum()
}

/// The range's positive sales lines, summed plainly.
async fn plain_sales(conn: &mut PgConnection, case: &Case) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(sum(amount_minor), 0)::bigint FROM transaction_lines
         WHERE business_date BETWEEN $1 AND $2 AND amount_minor > 0 AND ($3 = '' OR branch_id = $3)",
    )
    .bind(case.from)
    .bind(case.to)
    .bind(&case.branch_id)
    .fetch_one(conn)
    .await?)
}

/// What one case came to.
struct Outcome {
    samples: HashMap<&'static str, Vec<Duration>>,
    seen: Seen,
    report: GetPeriodReportResponse,
    /// The first in-process call (statements not prepared yet).
    first: Duration,
    plans: Vec<(&'static str, i64, i64)>,
    deployed: Deployed,
}

/// What one GetPeriodReport through the reporting service with the default deadlines came to, and how long
/// Postgres went on working on the database after it.
struct Deployed {
    outcome: Result<(), (tonic::Code, String)>,
    elapsed: Duration,
    busy_after: Duration,
}

impl Bench {
    async fn as_deployed(&mut self, case: &Case, conn: &mut PgConnection) -> anyhow::Result<Deployed> {
        let started = Instant::now();
        let outcome = match self.deployed.get_period_report(case.report_request()).await {
            Ok(_) => Ok(()),
            Err(status) => Err((status.code(), status.message().to_owned())),
        };
        let elapsed = started.elapsed();
        let busy_after = wait_idle(conn).await?;
        Ok(Deployed { outcome, elapsed, busy_after })
    }

    /// (statement, executions with a custom plan, with a generic plan) of the store statements, summed over
    /// the in-process pool's connections.
    async fn plans(&self) -> anyhow::Result<Vec<(&'static str, i64, i64)>> {
        let mut held = Vec::new();
        while held.len() < self.pool.size() as usize && self.pool.num_idle() > 0 {
            held.push(self.pool.acquire().await?);
        }
        let mut counts = vec![
            ("store::client_purchase_days", 0, 0),
            ("store::seller_sales", 0, 0),
            ("store::lifecycle::period_counts", 0, 0),
        ];
        let patterns = [
            "%FROM clients c LEFT JOIN client_purchase_history%",
            "%FROM daily_sales%",
            "%FROM lifecycle_counts_built%",
        ];
        for conn in &mut held {
            for (count, pattern) in counts.iter_mut().zip(patterns) {
                let (custom, generic): (i64, i64) = sqlx::query_as(
                    "SELECT COALESCE(sum(custom_plans), 0)::bigint, COALESCE(sum(generic_plans), 0)::bigint
                     FROM pg_prepared_statements WHERE statement LIKE $1",
                )
                .bind(pattern)
                .fetch_one(&mut **conn)
                .await?;
                (count.1, count.2) = (count.1 + custom, count.2 + generic);
            }
        }
        Ok(counts)
    }
}

/// Waits until no other session runs a statement on the database; how long that took.
async fn wait_idle(conn: &mut PgConnection) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *conn)
        .await?;
        if active == 0 || started.elapsed() > LONG {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The database to measure on, generated unless reused; what it holds and how long loading took.
async fn prepare(options: &Options, env: &TestEnv) -> anyhow::Result<(String, Loaded, Duration, Duration, i64)> {
    let url = options.reuse_database.clone().unwrap_or_else(|| env.database.url.clone());
    let started = Instant::now();
    let pool = db::connect(&DatabaseConfig { url: url.clone(), ..DatabaseConfig::local("unused") }).await?;
    db::migrate(&pool, &branchscore_clients::MIGRATOR).await?;
    pool.close().await;
    let loaded = if options.reuse_database.is_some() {
        let mut conn = PgConnection::connect(&url).await?;
        let clients: i64 = sqlx::query_scalar("SELECT count(*) FROM clients").fetch_one(&mut conn).await?;
        let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM transaction_lines").fetch_one(&mut conn).await?;
        conn.close().await?;
        eprintln!("reusing {url}");
        Loaded { clients: clients as u64, lines: lines as u64 }
    } else {
        eprintln!("scratch database {}", env.database_name());
        load(&url, &Arc::new(Generator::new(&options.network))).await?
    };
    let load_time = started.elapsed();
    eprintln!("VACUUM (FREEZE, ANALYZE) ...");
    let started = Instant::now();
    let mut conn = PgConnection::connect(&url).await?;
    sqlx::raw_sql("VACUUM (FREEZE, ANALYZE)").execute(&mut conn).await?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok((url, loaded, load_time, started.elapsed(), size))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    anyhow::ensure!(options.network.months >= 13, "--months must be at least 13 (a year and the month before it)");
    anyhow::ensure!(options.runs > 0, "--runs must be positive");
    // Logs to stderr, apart from the figures; the pools' slow-statement warnings are what is measured here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx::query=error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let mut env = TestEnv::new();
    let (url, loaded, load_time, vacuum_time, database_bytes) = prepare(&options, &env).await?;
    eprintln!(
        "{} clients and {} lines ready in {:.1} s, vacuumed in {:.1} s, database {:.2} GiB",
        loaded.clients,
        loaded.lines,
        load_time.as_secs_f64(),
        vacuum_time.as_secs_f64(),
        database_bytes as f64 / f64::from(1 << 30)
    );

    // The clients service on the network, as deployed (pool of 16), without Redis (no path reads scores)
    // or the nightly recompute; the reporting service on its own database, asking it.
    env.platform.redis.url = String::new();
    // Calls may run for minutes: the request timeout is raised, and so is the grace an in-flight call gets
    // when its connection reaches its maximum age (30 s by default, after which the call fails with a broken
    // pipe).
    let long =
        |server: ServerConfig| ServerConfig { request_timeout_ms: LONG, max_connection_age_grace_ms: LONG, ..server };
    let database = DatabaseConfig { url: url.clone(), ..DatabaseConfig::local("unused") };
    let clients_config = branchscore_clients::Config {
        server: long(env.server()),
        database: database.clone(),
        recompute_at: String::new(),
        ..branchscore_clients::Config::default()
    };
    let clients = branchscore_clients::run(&clients_config, &env.platform, env.shutdown.clone()).await?;
    branchscore_testkit::wait_serving(clients.addr).await;
    let mut reporting_env = TestEnv::new();
    reporting_env.platform.redis.url = String::new();
    let nowhere = "http://127.0.0.1:9".to_owned();
    let peers = &mut reporting_env.platform.peers;
    peers.clients = format!("http://{}", clients.addr);
    (peers.pipeline, peers.feedback, peers.kpi) = (nowhere.clone(), nowhere.clone(), nowhere);
    peers.client = ClientConfig { request_timeout_ms: LONG, ..ClientConfig::default() };
    let reporting_config = branchscore_reporting::Config {
        server: long(reporting_env.server()),
        database: reporting_env.database.clone(),
    };
    let reporting =
        branchscore_reporting::run(&reporting_config, &reporting_env.platform, reporting_env.shutdown.clone()).await?;
    branchscore_testkit::wait_serving(reporting.addr).await;
    let mut deployed_platform = reporting_env.platform.clone();
    deployed_platform.peers.client = ClientConfig::default();
    let deployed_config = branchscore_reporting::Config { server: reporting_env.server(), ..reporting_config.clone() };
    let deployed =
        branchscore_reporting::run(&deployed_config, &deployed_platform, reporting_env.shutdown.clone()).await?;
    branchscore_testkit::wait_serving(deployed.addr).await;

    let mut bench = Bench {
        reporting: ReportingServiceClient::new(branchscore_testkit::channel(reporting.addr).await)
            .max_decoding_message_size(MAX_MESSAGE),
        deployed: ReportingServiceClient::new(branchscore_testkit::channel(deployed.addr).await)
            .max_decoding_message_size(MAX_MESSAGE),
        scoring: ScoringServiceClient::new(branchscore_testkit::channel(clients.addr).await)
            .max_decoding_message_size(MAX_MESSAGE),
        // The in-process paths: a pool like the service's.
        pool: db::connect(&database).await?,
        currency: env.platform.company.currency.clone(),
    };
    let mut conn = PgConnectOptions::from_str(&url)?.disable_statement_logging().connect().await?;

    let as_of = options.network.as_of;
    let this_month = first_of_month(as_of);
    let last_month = this_month - Months::new(1);
    let branch = branch_id(0);
    let hq = env.token(Role::HqAnalyst, &[]);
    let cases: Vec<Case> = options
        .cases
        .iter()
        .map(|&kind| match kind {
            CaseKind::Year => Case {
                kind,
                title: "a year by month, whole network (head office)".into(),
                from: this_month - Months::new(11),
                to: as_of,
                granularity: Granularity::Month,
                split: periods::Granularity::Month,
                branch_id: String::new(),
                token: hq.clone(),
                scope: None,
            },
            CaseKind::Branch => Case {
                kind,
                title: format!("a year by month, branch {branch} (its manager)"),
                from: this_month - Months::new(11),
                to: as_of,
                granularity: Granularity::Month,
                split: periods::Granularity::Month,
                branch_id: branch.clone(),
                token: env.token(Role::BranchManager, &[&branch]),
                scope: Some(vec![branch.clone()]),
            },
            CaseKind::Days => Case {
                kind,
                title: "a month by day, whole network (head office)".into(),
                from: last_month,
                to: this_month.pred_opt().unwrap_or(this_month),
                granularity: Granularity::Day,
                split: periods::Granularity::Day,
                branch_id: String::new(),
                token: hq.clone(),
                scope: None,
            },
        })
        .collect();

    let calls = cases.len() * ((options.warmup + options.runs) * Path::ROUND.len() + options.runs + 2);
    let bar = ProgressBar::new(calls as u64).with_style(
        ProgressStyle::with_template("  {prefix:<8} [{bar:30}] {pos}/{len} calls, {msg} {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let load_before = load_average();
    let mut results = Vec::new();
    let mut plan_totals: Vec<(&str, i64, i64)> = Vec::new();
    for case in &cases {
        bar.set_prefix(case.kind.to_string());
        let mut seen = Seen::default();
        let mut samples: HashMap<&'static str, Vec<Duration>> = HashMap::new();
        let first = bench.call(case, Path::InProcess, &mut seen).await?;
        bar.inc(1);
        for path in Path::ROUND {
            for _ in 0..options.warmup {
                bar.set_message(format!("warm-up: {}", path.name().trim()));
                bench.call(case, path, &mut seen).await?;
                bar.inc(1);
            }
        }
        for run in 0..options.runs {
            for step in 0..Path::ROUND.len() {
                let path = Path::ROUND[(run + step) % Path::ROUND.len()];
                bar.set_message(format!("run {}: {}", run + 1, path.name().trim()));
                let elapsed = bench.call(case, path, &mut seen).await?;
                samples.entry(path.name()).or_default().push(elapsed);
                bar.inc(1);
            }
        }
        for _ in 0..options.runs {
            let elapsed = bench.call(case, Path::Assemble, &mut seen).await?;
            samples.entry(Path::Assemble.name()).or_default().push(elapsed);
            bar.inc(1);
        }
        // The answers agree with each other and with a plain sum.
        let facts = seen.facts.clone().unwrap_or_default();
        let expected = bench.expected_report(case, &facts).await?;
        let report = seen.report.clone().unwrap_or_default();
        anyhow::ensure!(report == expected, "{}: the report differs from the in-process table", case.kind);
        let (sales, plain) = (report_sales(&report), plain_sales(&mut conn, case).await?);
        anyhow::ensure!(sales == plain, "{}: the report's sales {sales} differ from the lines' sum {plain}", case.kind);
        // The counts live as long as the connections: this case's are the growth since the last case.
        let totals = bench.plans().await?;
        let plans = totals
            .iter()
            .map(|&(name, custom, generic)| {
                let before = plan_totals.iter().find(|p| p.0 == name).map_or((0, 0), |p| (p.1, p.2));
                (name, custom - before.0, generic - before.1)
            })
            .collect();
        plan_totals = totals;
        bar.set_message("one call as deployed (default deadlines)");
        let deployed = bench.as_deployed(case, &mut conn).await?;
        bar.inc(1);
        results.push(Outcome { samples, seen, report, first, plans, deployed });
    }
    bar.finish_and_clear();
    let load_after = load_average();

    let (version, settings) = postgres_settings(&mut conn).await?;
    let n = &options.network;
    println!(
        "\nGetPeriodReport on a synthetic network of {} clients, {} sales lines ({:.1} per client) over {} months, \
         as of {}",
        loaded.clients,
        loaded.lines,
        loaded.lines as f64 / loaded.clients.max(1) as f64,
        n.months,
        as_of
    );
    println!("machine: {}; PostgreSQL {version} ({settings})", machine());
    println!(
        "data: {} in {:.1} s, VACUUM (FREEZE, ANALYZE) {:.1} s, database {:.2} GiB; seed {}",
        if options.reuse_database.is_some() { "reused" } else { "generated and COPYed" },
        load_time.as_secs_f64(),
        vacuum_time.as_secs_f64(),
        database_bytes as f64 / f64::from(1 << 30),
        n.seed
    );
    println!(
        "calls: {} untimed of each path, then {} timed rounds (every path once, rotating order); \
         load average {load_before} before, {load_after} after",
        options.warmup, options.runs
    );
    println!("every report equals the in-process table and its sales the plain sum of the range's lines");

    println!("\n| case | path | p50 ms | p95 ms | max ms | p50 share of the report's |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut goal = None;
    for (case, outcome) in cases.iter().zip(&results) {
        let report = spread(outcome.samples.get(Path::Report.name()).map_or(&[][..], Vec::as_slice));
        for path in Path::ALL {
            let Some(s) = outcome.samples.get(path.name()) else { continue };
            let s = spread(s);
            let share = s.p50.as_secs_f64() / report.p50.as_secs_f64().max(f64::EPSILON) * 100.0;
            println!(
                "| {}: {} to {} | {} | {} | {} | {} | {share:.0}% |",
                case.title,
                case.from,
                case.to,
                path.name().trim(),
                ms(s.p50),
                ms(s.p95),
                ms(s.max)
            );
        }
        if case.kind == CaseKind::Year {
            goal = Some(report.p95);
        }
    }
    println!();
    for (case, Outcome { seen, report, first, plans, deployed, .. }) in cases.iter().zip(&results) {
        println!(
            "{}: {} periods; {} clients and {} (day, branch, seller, kind) sales rows read; {} facts rows \
             ({} KiB encoded); report {} rows, {} branch totals ({} KiB); first in-process call {} ms",
            case.kind,
            case.periods().len(),
            seen.purchase_days_rows,
            seen.daily_sales_rows,
            seen.facts.as_ref().map_or(0, Vec::len),
            seen.facts_bytes / 1024,
            report.rows.len(),
            report.branch_totals.len(),
            seen.report_bytes / 1024,
            ms(*first)
        );
        let plans: Vec<String> =
            plans.iter().map(|(name, custom, generic)| format!("{name} {custom} custom, {generic} generic")).collect();
        println!("  plans of the in-process pool's executions: {}", plans.join("; "));
        let outcome = match &deployed.outcome {
            Ok(()) => "answered".to_owned(),
            Err((code, message)) => format!("failed with {code:?}: {message}"),
        };
        println!(
            "  as deployed (default deadlines: {} s to the clients service, {} s per call): {outcome} after {} ms; \
             Postgres busy on the database for {} ms more",
            ClientConfig::default().request_timeout_ms.as_secs_f64(),
            ServerConfig::default().request_timeout_ms.as_secs_f64(),
            ms(deployed.elapsed),
            ms(deployed.busy_after)
        );
    }
    if let Some((_, outcome)) = cases.iter().zip(&results).find(|(c, _)| c.kind == CaseKind::Year) {
        println!("\nNetwork totals of the year (PLN):");
        println!(
            "| month | potential | primary sales | primary PLN | lost | restored | repeat PLN | new direction PLN |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &outcome.report.network_totals {
            let start = r.period_start.as_ref().and_then(Date::to_naive).map(|d| d.format("%Y-%m").to_string());
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                start.unwrap_or_default(),
                r.potential_clients,
                r.primary_sales_count,
                minor(&r.primary_sales_amount) / 100,
                r.lost_clients,
                r.restored_clients,
                minor(&r.repeat_sales_amount) / 100,
                minor(&r.new_direction_sales_amount) / 100
            );
        }
    }
    println!();
    if let Some(p95) = goal {
        println!(
            "goal: GetPeriodReport over a year by month, whole network, p95 under {} ms: p95 {} ms: {}",
            GOAL.as_millis(),
            ms(p95),
            if p95 < GOAL { "met" } else { "NOT met" }
        );
    }

    conn.close().await?;
    bench.pool.close().await;
    reporting_env.shutdown.cancel();
    env.shutdown.cancel();
    let _ = reporting.task.await;
    let _ = deployed.task.await;
    let _ = clients.task.await;
    if options.keep_database || options.reuse_database.is_some() {
        println!("kept the database: {url}");
        // Its drop would remove the scratch database.
        std::mem::forget(env);
    }
    Ok(())
}
