//! The scoring recompute on a large synthetic network beside the Python
//! reference (pandas + scikit-learn) reading the same Postgres.
//!
//! `cargo run --release -p branchscore-tests --bin bench_recompute -- --clients 1000000 --lines-per-client 20`
//!
//! Creates a scratch database, migrates it, generates a deterministic network
//! (branches, staff, product lines, products, clients with nine buying
//! behaviours, about `--lines-per-client` sales lines per client over
//! `--months` months, with seasonality, churn, pauses, newcomers and returns)
//! and streams it into Postgres with `COPY ... FROM STDIN` (the generator is
//! `branchscore_tests::network`, shared with `bench_report`), then
//! `VACUUM (FREEZE, ANALYZE)`. Then, each in a child process so that neither
//! the generator nor the other side counts in its memory:
//!
//! 1. the Rust recompute exactly as the service runs it (`RunLock::acquire`,
//!    `Recompute::run`: aggregation in Postgres, classification and k-means
//!    in Rust, scores and history written, the cache refreshed); the child is
//!    this binary re-executed with a hidden `recompute` subcommand and prints
//!    its wall time, phase times (from the progress callback) and `VmHWM`;
//! 2. `tests/python/reference_scoring.py` with Rust's k, in the virtualenv of
//!    `tests/python/setup-venv.sh` (created on first use), timed as a process.
//!
//! Then it checks that both agree on every client (window revenue, ABC, XYZ,
//! RFM code, lifecycle status; clusters by adjusted Rand index and by the
//! inertia of Rust's partition, from a second, untimed run of the reference
//! with `--given-labels`) and prints a markdown table. Goals: Rust at least
//! 3x faster than the reference, peak memory under 2 GB.
use branchscore_clients::latest_run::LatestRun;
use branchscore_clients::recompute::{Recompute, RunLock};
use branchscore_clients::score_cache::ScoreCache;
use branchscore_platform::cache::Cache;
use branchscore_platform::config::{DatabaseConfig, RedisConfig};
use branchscore_platform::db;
use branchscore_proto::clients::v1::RecomputePhase;
use branchscore_testkit::TestEnv;
use branchscore_tests::network::{Generator, Loaded, NetworkOptions, load};
use branchscore_tests::{adjusted_rand_index, load_average, machine, peak_rss_bytes, proc_status_bytes};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Recompute on a large synthetic network beside the Python reference (docs/benchmarks.md)")]
struct Options {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    network: NetworkOptions,
    /// The cache the recompute refreshes: Redis (BRANCHSCORE_TEST_REDIS_URL, a key prefix of this run,
    /// removed afterwards) or the in-process cache (an empty Redis URL).
    #[arg(long, value_enum, default_value_t = CacheKind::Redis)]
    cache: CacheKind,
    /// OMP_NUM_THREADS for the reference (scikit-learn's k-means); unset by default, i.e. all cores.
    #[arg(long)]
    omp_threads: Option<usize>,
    /// Keep the scratch database (its URL is printed) instead of dropping it.
    #[arg(long)]
    keep_database: bool,
    /// Diagnostic: after the comparison, store a settings version with k fixed to the chosen one and
    /// recompute again (a second night: scores updated, history only for changes), to show what the
    /// silhouette search over k = 2..8 costs. Not part of the headline figures.
    #[arg(long)]
    fixed_k_rerun: bool,
    /// Measure again on a database kept by `--keep-database` (pass the same --as-of and --months): its
    /// scores, runs and settings are truncated and the generated data reused. The database is not dropped.
    #[arg(long)]
    reuse_database: Option<String>,
    /// Skip the next night: a day of sales like the as-of day's imported (lines copied one day
    /// forward, marked and rolled up as an import would), then the recompute as of the next day,
    /// which rewrites only the scores that changed; the extra lines are removed afterwards.
    #[arg(long)]
    no_next_night: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CacheKind {
    Redis,
    InProcess,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one recompute in this process; prints a JSON line with wall time, phases and VmHWM.
    #[command(hide = true)]
    Recompute {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        as_of: NaiveDate,
        /// Empty: the in-process cache.
        #[arg(long, default_value = "")]
        redis_url: String,
        #[arg(long, default_value = "bench:")]
        redis_prefix: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    match &options.command {
        Some(Command::Recompute { database_url, as_of, redis_url, redis_prefix }) => {
            recompute_child(database_url, *as_of, redis_url, redis_prefix).await
        }
        None => bench(&options).await,
    }
}

// ------------------------------------------------------------------ the child

/// Phase boundaries as the progress callback reports them.
#[derive(Debug, Default)]
struct Marks {
    /// (phase, done, total, when, VmHWM at that moment if the phase just started).
    reports: Vec<(RecomputePhase, u64, u64, Instant, Option<u64>)>,
}

async fn recompute_child(
    database_url: &str,
    as_of: NaiveDate,
    redis_url: &str,
    redis_prefix: &str,
) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .try_init();
    // The service's defaults: a pool of 16, the Redis settings of `[redis]`, a 36 h score TTL.
    let database = DatabaseConfig { url: database_url.to_owned(), ..DatabaseConfig::local("unused") };
    let pool = db::connect(&database).await?;
    let redis =
        RedisConfig { url: redis_url.to_owned(), key_prefix: redis_prefix.to_owned(), ..RedisConfig::default() };
    let cache = Cache::from_config(&redis)?;
    // No feedback service: the satisfaction component is absent (the reference has none either).
    let ttl = branchscore_clients::Config::default().score_cache_ttl_ms;
    let recompute = Recompute {
        pool: pool.clone(),
        score_cache: ScoreCache::new(cache, pool.clone(), ttl),
        currency: "PLN".into(),
        satisfaction: None,
        latest_run: LatestRun::new(pool.clone(), ttl),
    };
    let before = peak_rss_bytes().unwrap_or(0);

    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("  recompute {msg:<12} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut marks = Marks::default();
    let started = Instant::now();
    let summary = {
        // Caching runs beside history and storing: a phase's memory is read when it first reports.
        let mut begun = Vec::new();
        let mut progress = |phase: RecomputePhase, done: u64, total: u64| {
            let hwm = if begun.contains(&phase) {
                None
            } else {
                begun.push(phase);
                peak_rss_bytes()
            };
            marks.reports.push((phase, done, total, Instant::now(), hwm));
            bar.set_message(phase_name(phase));
            if total > 0 {
                bar.set_length(total);
                bar.set_position(done);
            } else {
                bar.set_message(format!("{} {done} rows", phase_name(phase)));
            }
        };
        let lock = RunLock::acquire(&pool).await?;
        recompute.run(lock, as_of, "bench", None, &mut progress).await?
    };
    let wall = started.elapsed();
    bar.finish_and_clear();
    let peak = peak_rss_bytes().unwrap_or(0);
    let phases = phase_times(started, &marks, started + wall);
    let report = json!({
        "wall_seconds": wall.as_secs_f64(),
        "peak_rss_bytes": peak,
        "peak_rss_before_bytes": before,
        "rss_at_end_bytes": proc_status_bytes("VmRSS").unwrap_or(0),
        "clients": summary.clients,
        "changed": summary.changed,
        "clusters": summary.clusters,
        "run_id": summary.run_id,
        "phases": phases,
    });
    println!("{report}");
    pool.close().await;
    Ok(())
}

fn phase_name(phase: RecomputePhase) -> &'static str {
    match phase {
        RecomputePhase::Aggregating => "aggregating",
        RecomputePhase::Classifying => "classifying",
        RecomputePhase::Writing => "writing",
        RecomputePhase::RecordingHistory => "history",
        RecomputePhase::Storing => "storing",
        RecomputePhase::Caching => "caching",
        _ => "starting",
    }
}

/// Seconds per phase, the boundaries taken from the progress reports.
///
/// * population: lock, settings, run row and the population query (until the first AGGREGATING);
/// * monthly aggregate: the GROUP BY client, month streamed and folded (until the last per-100 000-rows
///   report, so up to 100 000 rows late);
/// * window queries: product-line breadth, segments and product states, the products each client bought in
///   the window for maturity and baskets (until AGGREGATING done = total);
/// * classifying: maturity and basket rules, ABC, XYZ, RFM, lifecycle, k-means with k chosen by silhouette,
///   scores and records;
/// * comparing and staging: the stored fingerprints read, changed scores sent by binary COPY into a temporary
///   table (until RECORDING_HISTORY);
/// * history: history rows of changed clients appended, first clients' rows COPYed;
/// * storing: changed scores updated, first scores COPYed (until the last STORING report);
/// * commit and the rest of caching: the run's commit, then the cache refresh still running, until the run returns.
///
/// Caching runs beside history and storing; its own span (first to last CACHING report) is reported apart.
fn phase_times(started: Instant, marks: &Marks, end: Instant) -> Value {
    let reports = &marks.reports;
    let first = |phase: RecomputePhase| reports.iter().find(|r| r.0 == phase).map(|r| r.3);
    let aggregating = first(RecomputePhase::Aggregating);
    let last_fold = reports.iter().rev().find(|r| r.0 == RecomputePhase::Aggregating && r.2 == 0).map(|r| r.3);
    let aggregated =
        reports.iter().rev().find(|r| r.0 == RecomputePhase::Aggregating && r.1 == r.2 && r.2 > 0).map(|r| r.3);
    let classifying = first(RecomputePhase::Classifying);
    let classified =
        reports.iter().rev().find(|r| r.0 == RecomputePhase::Classifying && r.1 == r.2 && r.2 > 0).map(|r| r.3);
    let last = |phase: RecomputePhase| reports.iter().rev().find(|r| r.0 == phase).map(|r| r.3);
    let bounds = [
        ("population", Some(started)),
        ("monthly aggregate", aggregating),
        ("window queries (product-line breadth, purchases for baskets)", last_fold.or(aggregating)),
        ("classifying", classifying.or(aggregated)),
        ("comparing and staging scores", classified),
        ("history", first(RecomputePhase::RecordingHistory)),
        ("storing scores", first(RecomputePhase::Storing)),
        ("commit and the rest of caching", last(RecomputePhase::Storing)),
        ("end", Some(end)),
    ];
    let mut phases = Vec::new();
    for pair in bounds.windows(2) {
        if let ((name, Some(from)), (_, Some(to))) = (pair[0], pair[1]) {
            phases.push(json!({"phase": name, "seconds": to.saturating_duration_since(from).as_secs_f64()}));
        }
    }
    if let (Some(from), Some(to)) = (first(RecomputePhase::Caching), last(RecomputePhase::Caching)) {
        let seconds = to.saturating_duration_since(from).as_secs_f64();
        phases.push(json!({"phase": "caching (beside history and storing)", "seconds": seconds, "overlaps": true}));
    }
    let peaks: Vec<Value> = reports
        .iter()
        .filter_map(|r| r.4.map(|hwm| json!({"phase": phase_name(r.0), "peak_rss_bytes_at_start": hwm})))
        .collect();
    json!({"times": phases, "memory": peaks})
}

// ------------------------------------------------------------------ the parent

async fn bench(options: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.network.months >= 18,
        "--months must be at least 18 (a 12-month window and two lifecycle periods)"
    );
    let env = TestEnv::new();
    let url = options.reuse_database.clone().unwrap_or_else(|| env.database.url.clone());
    let started = Instant::now();
    let loaded = if options.reuse_database.is_some() {
        let pool = db::connect(&DatabaseConfig { url: url.clone(), ..DatabaseConfig::local("unused") }).await?;
        db::migrate(&pool, &branchscore_clients::MIGRATOR).await?;
        pool.close().await;
        let mut conn = PgConnection::connect(&url).await?;
        sqlx::raw_sql("TRUNCATE recompute_runs, client_scores, client_class_history, scoring_settings CASCADE")
            .execute(&mut conn)
            .await?;
        let count = |table| format!("SELECT count(*) FROM {table}");
        let clients: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count("clients"))).fetch_one(&mut conn).await?;
        let lines: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(count("transaction_lines"))).fetch_one(&mut conn).await?;
        conn.close().await?;
        eprintln!("reusing {url}: scores, runs and settings truncated");
        Loaded { clients: clients as u64, lines: lines as u64 }
    } else {
        let pool = db::connect(&env.database).await?;
        db::migrate(&pool, &branchscore_clients::MIGRATOR).await?;
        pool.close().await;
        eprintln!("scratch database {}", env.database_name());
        load(&url, &Arc::new(Generator::new(&options.network))).await?
    };
    let load_time = started.elapsed();
    let started = Instant::now();
    eprintln!("VACUUM (FREEZE, ANALYZE) ...");
    let mut conn = PgConnection::connect(&url).await?;
    sqlx::raw_sql("VACUUM (FREEZE, ANALYZE)").execute(&mut conn).await?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&mut conn).await?;
    conn.close().await?;
    let vacuum_time = started.elapsed();
    eprintln!(
        "loaded {} clients and {} lines in {:.1} s, vacuumed in {:.1} s, database {:.2} GiB",
        loaded.clients,
        loaded.lines,
        load_time.as_secs_f64(),
        vacuum_time.as_secs_f64(),
        size as f64 / f64::from(1 << 30)
    );

    // Rust, in a child process.
    let (redis_url, prefix) = match options.cache {
        CacheKind::Redis => (env.platform.redis.url.clone(), format!("{}bench:", env.platform.redis.key_prefix)),
        CacheKind::InProcess => (String::new(), "bench:".to_owned()),
    };
    eprintln!("running the Rust recompute ...");
    let load_before_rust = load_average();
    let (rust, rust_process) = run_child(&url, options.network.as_of, &redis_url, &prefix).await?;
    let cached = match options.cache {
        CacheKind::Redis => Some(clear_redis(&redis_url, &prefix).await?),
        CacheKind::InProcess => None,
    };
    let clusters = rust["clusters"].as_i64().unwrap_or(0);
    let scores = read_scores(&url).await?;

    // Python, timed, then again with Rust's partition for the inertia comparison.
    let python = tokio::task::spawn_blocking(reference_python).await??;
    let dir = std::env::temp_dir();
    let reference_csv = dir.join(format!("bs-bench-reference-{}.csv", env.database_name()));
    let labels_csv = dir.join(format!("bs-bench-rust-clusters-{}.csv", env.database_name()));
    let k = clusters.max(1);
    eprintln!("running the Python reference (k = {k}) ...");
    let load_before_python = load_average();
    let started = Instant::now();
    let run = reference_command(&python, &url, options, k, &reference_csv, None).output().await?;
    let python_process = started.elapsed();
    anyhow::ensure!(run.status.success(), "the reference failed: {}", String::from_utf8_lossy(&run.stderr));
    let reference_report = last_json(&run.stdout)?;
    let reference = read_reference(&reference_csv)?;

    let mut labels = String::from("client_id,cluster\n");
    for (id, score) in &scores {
        if let Some(cluster) = score.cluster {
            labels.push_str(&format!("{id},{cluster}\n"));
        }
    }
    std::fs::write(&labels_csv, labels)?;
    eprintln!("running the reference again with Rust's clusters (untimed: inertia of Rust's partition) ...");
    let second_csv = dir.join(format!("bs-bench-reference2-{}.csv", env.database_name()));
    let again = reference_command(&python, &url, options, k, &second_csv, Some(&labels_csv)).output().await?;
    anyhow::ensure!(again.status.success(), "the reference failed: {}", String::from_utf8_lossy(&again.stderr));
    let inertia_report = last_json(&again.stdout)?;
    for path in [&reference_csv, &labels_csv, &second_csv] {
        let _ = std::fs::remove_file(path);
    }

    let agreement = compare(&scores, &reference);
    let rerun = if options.fixed_k_rerun {
        eprintln!("diagnostic: recomputing again with k fixed to {k} ...");
        let mut conn = PgConnection::connect(&url).await?;
        sqlx::query(
            "INSERT INTO scoring_settings (effective_from, settings, comment, created_by)
             VALUES ($1, $2, 'bench_recompute: k fixed', 'bench_recompute')",
        )
        .bind(options.network.as_of)
        .bind(json!({"clustering": {"clusters": {"fixed": {"k": k}}}}))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        let (report, wall) = run_child(&url, options.network.as_of, &redis_url, &prefix).await?;
        if options.cache == CacheKind::Redis {
            clear_redis(&redis_url, &prefix).await?;
        }
        Some((report, wall))
    } else {
        None
    };
    let next_night = if options.no_next_night {
        None
    } else {
        eprintln!("the next night: a day of sales imported, then the recompute as of the next day ...");
        let night = next_night(&url, options.network.as_of, &redis_url, &prefix).await;
        if options.cache == CacheKind::Redis {
            clear_redis(&redis_url, &prefix).await?;
        }
        Some(night?)
    };
    let figures = Figures {
        options,
        loaded: &loaded,
        load_time,
        vacuum_time,
        database_bytes: size,
        rust: &rust,
        rust_process,
        cached,
        reference: &reference_report,
        python_process,
        inertia: &inertia_report,
        agreement: &agreement,
        rerun: rerun.as_ref(),
        next_night: next_night.as_ref(),
        load: [load_before_rust, load_before_python],
    };
    figures.print();
    if options.keep_database || options.reuse_database.is_some() {
        println!("kept the database: {url}");
        // Its drop would remove the scratch database.
        std::mem::forget(env);
    }
    Ok(())
}

/// The recompute of the night after the as-of day.
struct NextNight {
    /// Sales lines of the day imported before it, and the clients they belong to.
    lines: u64,
    buyers: u64,
    report: Value,
    process: Duration,
    /// Stored scores the run rewrote (the rest had the same content).
    rewritten: i64,
}

/// Imports a day of sales like the as-of day's, dated the day after (copied
/// lines, marked and rolled up as an import and the service's refresh
/// would), runs the recompute as of that day in a child process, then
/// removes the day again (and rolls its clients back up) so that the
/// database can be measured again.
async fn next_night(url: &str, as_of: NaiveDate, redis_url: &str, prefix: &str) -> anyhow::Result<NextNight> {
    let night = as_of + chrono::Days::new(1);
    let pool = db::connect(&DatabaseConfig { url: url.to_owned(), ..DatabaseConfig::local("unused") }).await?;
    let mut tx = pool.begin().await?;
    let lines = sqlx::query(
        "INSERT INTO transaction_lines (id, document_id, client_id, product_id, amount_minor, currency, business_date,
             branch_id, employee_id)
         SELECT id || '-next', document_id || '-next', client_id, product_id, amount_minor, currency, $2, branch_id,
             employee_id
         FROM transaction_lines WHERE business_date = $1 AND amount_minor > 0",
    )
    .bind(as_of)
    .bind(night)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let buyers = mark_day(&mut tx, night).await?;
    tx.commit().await?;
    let (first, last) = (as_of - chrono::Months::new(1200), night);
    branchscore_clients::store::rollups::refresh(&pool, first, last, None).await?;
    let (report, process) = run_child(url, night, redis_url, prefix).await?;
    let rewritten: i64 = sqlx::query_scalar("SELECT count(*) FROM client_scores WHERE run_id = $1")
        .bind(report["run_id"].as_i64().unwrap_or(0))
        .fetch_one(&pool)
        .await?;

    let mut tx = pool.begin().await?;
    mark_day(&mut tx, night).await?;
    sqlx::query("DELETE FROM transaction_lines WHERE business_date = $1").bind(night).execute(&mut *tx).await?;
    tx.commit().await?;
    branchscore_clients::store::rollups::refresh(&pool, first, last, None).await?;
    pool.close().await;
    Ok(NextNight { lines, buyers, report, process, rewritten })
}

/// Marks the clients and day of `day`'s lines for the rollups' refresh, as an import does; the clients marked.
async fn mark_day(tx: &mut sqlx::PgConnection, day: NaiveDate) -> anyhow::Result<u64> {
    let marked = sqlx::query(
        "INSERT INTO import_marks (clients, days)
         SELECT array_agg(DISTINCT client_id), ARRAY[$1::date] FROM transaction_lines WHERE business_date = $1
         HAVING count(*) > 0
         RETURNING cardinality(clients)",
    )
    .bind(day)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(marked.map(|row| row.get::<i32, _>(0)).map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Runs the recompute in a child process (this binary, `recompute` subcommand): its report and process wall time.
async fn run_child(url: &str, as_of: NaiveDate, redis_url: &str, prefix: &str) -> anyhow::Result<(Value, Duration)> {
    let started = Instant::now();
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("recompute")
        .args(["--database-url", url, "--as-of", &as_of.to_string()])
        .args(["--redis-url", redis_url, "--redis-prefix", prefix])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await?;
    let wall = started.elapsed();
    anyhow::ensure!(child.status.success(), "the recompute child failed: {}", child.status);
    Ok((last_json(&child.stdout)?, wall))
}

fn last_json(stdout: &[u8]) -> anyhow::Result<Value> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let line = line.ok_or_else(|| anyhow::anyhow!("no JSON line in the output: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Counts the keys the recompute cached under `prefix` and removes them.
async fn clear_redis(url: &str, prefix: &str) -> anyhow::Result<u64> {
    let mut redis = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let pattern = format!("{prefix}*");
    let (mut cursor, mut removed) = (0u64, 0u64);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut redis)
            .await?;
        if !keys.is_empty() {
            removed += redis::cmd("UNLINK").arg(&keys).query_async::<u64>(&mut redis).await?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(removed);
        }
    }
}

/// The reference's virtualenv python (`tests/python/setup-venv.sh` installs the pinned requirements).
fn reference_python() -> anyhow::Result<String> {
    let script = python_dir().join("setup-venv.sh");
    let output = std::process::Command::new("bash").arg(&script).stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(output.status.success(), "setup-venv.sh failed");
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().last().ok_or_else(|| anyhow::anyhow!("setup-venv.sh printed nothing"))?.trim().to_owned())
}

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

fn reference_command(
    python: &str,
    url: &str,
    options: &Options,
    k: i64,
    out: &Path,
    given: Option<&Path>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(python_dir().join("reference_scoring.py"))
        .args(["--database-url", url, "--as-of", &options.network.as_of.to_string(), "--k", &k.to_string(), "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(given) = given {
        command.arg("--given-labels").arg(given);
    }
    match options.omp_threads {
        Some(n) => command.env("OMP_NUM_THREADS", n.to_string()),
        None => command.env_remove("OMP_NUM_THREADS"),
    };
    command
}

// --------------------------------------------------------------- agreement

/// The columns of `client_scores` the reference also computes.
#[derive(Debug)]
struct StoredScore {
    abc: i16,
    xyz: i16,
    rfm_code: String,
    lifecycle: i16,
    window_revenue: i64,
    cluster: Option<i32>,
}

async fn read_scores(url: &str) -> anyhow::Result<BTreeMap<String, StoredScore>> {
    let mut conn = PgConnection::connect(url).await?;
    let rows = sqlx::query(
        "SELECT client_id, abc_class, xyz_class, rfm_code, lifecycle_status, window_revenue_minor, cluster
         FROM client_scores",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    rows.iter()
        .map(|row| {
            let score = StoredScore {
                abc: row.try_get("abc_class")?,
                xyz: row.try_get("xyz_class")?,
                rfm_code: row.try_get("rfm_code")?,
                lifecycle: row.try_get("lifecycle_status")?,
                window_revenue: row.try_get("window_revenue_minor")?,
                cluster: row.try_get("cluster")?,
            };
            Ok((row.try_get("client_id")?, score))
        })
        .collect()
}

/// One row of the reference's CSV (empty = none).
#[derive(Debug)]
struct ReferenceRow {
    window_revenue: i64,
    abc: String,
    xyz: String,
    rfm_code: String,
    lifecycle: String,
    cluster: Option<usize>,
}

fn read_reference(path: &Path) -> anyhow::Result<HashMap<String, ReferenceRow>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    anyhow::ensure!(
        header == "client_id,window_revenue,abc,xyz,cv,recency_days,frequency,monetary,rfm_code,lifecycle,cluster",
        "unexpected reference header {header}"
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            anyhow::ensure!(f.len() == 11, "bad reference line {line}");
            let row = ReferenceRow {
                window_revenue: f[1].parse()?,
                abc: f[2].to_owned(),
                xyz: f[3].to_owned(),
                rfm_code: f[8].to_owned(),
                lifecycle: f[9].to_owned(),
                cluster: f[10].parse().ok(),
            };
            Ok((f[0].to_owned(), row))
        })
        .collect()
}

const ABC: [&str; 4] = ["", "A", "B", "C"];
const XYZ: [&str; 4] = ["", "X", "Y", "Z"];
const LIFECYCLE: [&str; 6] = ["", "potential", "new", "regular", "restored", "lost"];

fn name_of(names: &[&'static str], code: i16) -> &'static str {
    usize::try_from(code).ok().and_then(|i| names.get(i).copied()).unwrap_or("?")
}

/// Mismatches per field, with a few examples, and what the Rust side computed.
#[derive(Debug, Default)]
struct Agreement {
    rust_clients: usize,
    python_clients: usize,
    compared: usize,
    only_rust: usize,
    only_python: usize,
    /// (field, mismatches, examples), in [`FIELDS`] order.
    fields: Vec<(&'static str, usize, Vec<String>)>,
    clustered_both: usize,
    adjusted_rand_index: f64,
    abc: BTreeMap<&'static str, usize>,
    xyz: BTreeMap<&'static str, usize>,
    lifecycle: BTreeMap<&'static str, usize>,
    rfm_codes: usize,
}

const FIELDS: [&str; 6] = ["window revenue", "ABC", "XYZ", "RFM code", "lifecycle", "clustered or not"];

fn compare(scores: &BTreeMap<String, StoredScore>, reference: &HashMap<String, ReferenceRow>) -> Agreement {
    let mut a = Agreement { rust_clients: scores.len(), python_clients: reference.len(), ..Agreement::default() };
    a.fields = FIELDS.iter().map(|field| (*field, 0, Vec::new())).collect();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut codes = std::collections::HashSet::new();
    for (id, s) in scores {
        *a.abc.entry(name_of(&ABC, s.abc)).or_default() += 1;
        *a.xyz.entry(name_of(&XYZ, s.xyz)).or_default() += 1;
        *a.lifecycle.entry(name_of(&LIFECYCLE, s.lifecycle)).or_default() += 1;
        codes.insert(s.rfm_code.clone());
        let Some(r) = reference.get(id) else {
            a.only_rust += 1;
            continue;
        };
        a.compared += 1;
        let rust_cluster = s.cluster.and_then(|c| usize::try_from(c).ok());
        let checks = [
            (s.window_revenue.to_string(), r.window_revenue.to_string()),
            (name_of(&ABC, s.abc).to_owned(), r.abc.clone()),
            (name_of(&XYZ, s.xyz).to_owned(), r.xyz.clone()),
            (s.rfm_code.clone(), r.rfm_code.clone()),
            (name_of(&LIFECYCLE, s.lifecycle).to_owned(), r.lifecycle.clone()),
            (rust_cluster.is_some().to_string(), r.cluster.is_some().to_string()),
        ];
        for (entry, (rust, python)) in a.fields.iter_mut().zip(checks) {
            if rust != python {
                entry.1 += 1;
                if entry.2.len() < 3 {
                    entry.2.push(format!("{id}: Rust {rust:?}, Python {python:?}"));
                }
            }
        }
        if let (Some(x), Some(y)) = (rust_cluster, r.cluster) {
            ours.push(x);
            theirs.push(y);
        }
    }
    a.only_python = reference.keys().filter(|id| !scores.contains_key(*id)).count();
    codes.remove("");
    a.rfm_codes = codes.len();
    a.clustered_both = ours.len();
    a.adjusted_rand_index = if ours.is_empty() { f64::NAN } else { adjusted_rand_index(&ours, &theirs) };
    a
}

// ----------------------------------------------------------------- the report

struct Figures<'a> {
    options: &'a Options,
    loaded: &'a Loaded,
    load_time: Duration,
    vacuum_time: Duration,
    database_bytes: i64,
    rust: &'a Value,
    rust_process: Duration,
    cached: Option<u64>,
    reference: &'a Value,
    python_process: Duration,
    inertia: &'a Value,
    agreement: &'a Agreement,
    /// The diagnostic second run with k fixed: its report and process wall time.
    rerun: Option<&'a (Value, Duration)>,
    next_night: Option<&'a NextNight>,
    /// `/proc/loadavg` before the Rust and the Python run: other work on the machine shows here.
    load: [String; 2],
}

const MIB: f64 = 1024.0 * 1024.0;
/// 2 GB, the memory goal.
const MEMORY_GOAL_BYTES: f64 = 2e9;

impl Figures<'_> {
    fn print(&self) {
        let (o, a) = (self.options, self.agreement);
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let rust_wall = f(&self.rust["wall_seconds"]);
        let rust_peak = f(&self.rust["peak_rss_bytes"]);
        let python_total = f(&self.reference["seconds"]["total"]);
        let python_peak = f(&self.reference["peak_rss_mb"]) * MIB;
        let (rust_process, python_process) = (self.rust_process.as_secs_f64(), self.python_process.as_secs_f64());
        let ratio = python_process / rust_process;
        let inner_ratio = python_total / rust_wall;
        let omp = match o.omp_threads {
            Some(n) => format!("OMP_NUM_THREADS={n}"),
            None => "OMP_NUM_THREADS unset (scikit-learn uses every core)".to_owned(),
        };
        let cache = match self.cached {
            Some(keys) => format!("Redis, key prefix of this run ({keys} keys found and removed afterwards)"),
            None => "the in-process cache (empty Redis URL)".to_owned(),
        };
        println!(
            "\nRecompute vs the Python reference: {} clients, {} sales lines ({:.1} per client) over {} months, as of {}",
            self.loaded.clients,
            self.loaded.lines,
            self.loaded.lines as f64 / self.loaded.clients.max(1) as f64,
            o.network.months,
            o.network.as_of
        );
        println!("machine: {}", machine());
        println!(
            "data: {} in {:.1} s, VACUUM (FREEZE, ANALYZE) {:.1} s, database {:.2} GiB",
            if o.reuse_database.is_some() { "reused (outputs truncated)" } else { "generated and COPYed" },
            self.load_time.as_secs_f64(),
            self.vacuum_time.as_secs_f64(),
            self.database_bytes as f64 / f64::from(1 << 30)
        );
        println!("cache: {cache}; Python: {omp}");
        println!("load average before the Rust run: {}; before the Python run: {}\n", self.load[0], self.load[1]);
        println!("| side | process wall s | in-process s | peak memory MiB |");
        println!("|---|---:|---:|---:|");
        println!(
            "| Rust recompute as the service runs it (aggregation in Postgres; classes, k-means with k by silhouette, \
             baskets, explained scores; scores and history written; cache refreshed) | {rust_process:.1} | {rust_wall:.1} | {:.0} |",
            rust_peak / MIB
        );
        println!(
            "| Python reference (pandas + scikit-learn, k = {}, CSV out) | {python_process:.1} | {python_total:.1} | {:.0} |",
            self.rust["clusters"],
            python_peak / MIB
        );
        println!();
        let speed = |r: f64| if r >= 1.0 { format!("{r:.2}x faster") } else { format!("{:.2}x slower", 1.0 / r) };
        println!(
            "speed-up (reference time / Rust time) {ratio:.2} by process wall time, {inner_ratio:.2} in-process: \
             Rust is {} than the reference; goal at least 3x faster: {}",
            speed(ratio),
            if ratio >= 3.0 { "met" } else { "NOT met" }
        );
        println!(
            "Rust peak memory (VmHWM) {:.0} MiB: goal under 2 GB ({:.0} MiB): {}",
            rust_peak / MIB,
            MEMORY_GOAL_BYTES / MIB,
            if rust_peak < MEMORY_GOAL_BYTES { "met" } else { "NOT met" }
        );

        let rerun_phases: Vec<f64> = self
            .rerun
            .map(|(r, _)| r["phases"]["times"].as_array().into_iter().flatten().map(|p| f(&p["seconds"])).collect())
            .unwrap_or_default();
        if self.rerun.is_some() {
            println!("\n| Rust phase | seconds | share | diagnostic second run, k fixed: seconds |");
            println!("|---|---:|---:|---:|");
        } else {
            println!("\n| Rust phase | seconds | share |");
            println!("|---|---:|---:|");
        }
        for (i, phase) in self.rust["phases"]["times"].as_array().into_iter().flatten().enumerate() {
            let seconds = f(&phase["seconds"]);
            let extra = rerun_phases.get(i).map(|s| format!(" {s:.1} |")).unwrap_or_default();
            println!(
                "| {} | {seconds:.1} | {:.0}% |{extra}",
                phase["phase"].as_str().unwrap_or("?"),
                seconds / rust_wall * 100.0
            );
        }
        if let Some((r, wall)) = self.rerun {
            println!(
                "| total (in-process) | {rust_wall:.1} | 100% | {:.1} (process {:.1}, {} history rows, VmHWM {:.0} MiB) |",
                f(&r["wall_seconds"]),
                wall.as_secs_f64(),
                r["changed"],
                f(&r["peak_rss_bytes"]) / MIB
            );
        }
        if let Some(night) = self.next_night {
            let wall = night.process.as_secs_f64();
            let ratio = python_process / wall;
            println!(
                "\nThe next night ({} sales lines of {} clients imported and rolled up, then the recompute as of the next \
                 day): process {wall:.1} s, in-process {:.1} s, {} of {} stored scores rewritten, {} history rows, \
                 VmHWM {:.0} MiB; the reference's time / this night's: {ratio:.2} ({}; goal at least 3x faster: {})",
                night.lines,
                night.buyers,
                f(&night.report["wall_seconds"]),
                night.rewritten,
                night.report["clients"],
                night.report["changed"],
                f(&night.report["peak_rss_bytes"]) / MIB,
                speed(ratio),
                if ratio >= 3.0 { "met" } else { "NOT met" }
            );
            let phases: Vec<String> = night.report["phases"]["times"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{} {:.1}", p["phase"].as_str().unwrap_or("?"), f(&p["seconds"])))
                .collect();
            println!("next night's phases (s): {}", phases.join(", "));
            let memory: Vec<String> = night.report["phases"]["memory"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!("{} {:.0}", m["phase"].as_str().unwrap_or("?"), f(&m["peak_rss_bytes_at_start"]) / MIB)
                })
                .collect();
            println!(
                "next night's VmHWM (MiB) when each phase began: {}; k = {}",
                memory.join(", "),
                night.report["clusters"]
            );
        }
        let memory: Vec<String> = self.rust["phases"]["memory"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| format!("{} {:.0}", m["phase"].as_str().unwrap_or("?"), f(&m["peak_rss_bytes_at_start"]) / MIB))
            .collect();
        println!(
            "Rust VmHWM (MiB) when each phase began: {}; at the end {:.0}; before the run {:.0}",
            memory.join(", "),
            rust_peak / MIB,
            f(&self.rust["peak_rss_before_bytes"]) / MIB
        );
        let s = &self.reference["seconds"];
        println!(
            "Python seconds: read {:.1} (the same GROUP BY, COPY TO STDOUT, read_csv), compute {:.1}, k-means {:.1}, \
             CSV {:.1}; imports and start-up {:.1}",
            f(&s["read"]),
            f(&s["compute"]),
            f(&s["kmeans"]),
            f(&s["write"]),
            python_process - python_total
        );

        println!("\n| agreement | mismatches | of |");
        println!("|---|---:|---:|");
        println!("| population (clients scored by one side only) | {} | {} |", a.only_rust + a.only_python, a.compared);
        for (field, count, _) in &a.fields {
            println!("| {field} | {count} | {} |", a.compared);
        }
        let inertia_rust = f(&self.inertia["given_inertia"]);
        let inertia_python = f(&self.reference["inertia"]);
        println!(
            "clusters: k = {}, adjusted Rand index {:.4} over {} clients clustered by both; inertia of Rust's partition \
             {inertia_rust:.1} vs scikit-learn's {inertia_python:.1} ({:+.3}%)",
            self.rust["clusters"],
            a.adjusted_rand_index,
            a.clustered_both,
            (inertia_rust / inertia_python - 1.0) * 100.0
        );
        let total_mismatches: usize = a.fields.iter().map(|(_, n, _)| n).sum::<usize>() + a.only_rust + a.only_python;
        let clusters_ok = a.adjusted_rand_index > 0.9 || inertia_rust <= inertia_python * 1.001;
        println!(
            "classes agree: {}; clusters agree (ARI > 0.9 or Rust's inertia within 0.1% of scikit-learn's or lower): {}",
            if total_mismatches == 0 { "yes" } else { "NO" },
            if clusters_ok { "yes" } else { "NO" }
        );
        for (field, _, examples) in &a.fields {
            for example in examples {
                println!("  {field} mismatch: {example}");
            }
        }
        let counts = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, v)| format!("{}={v}", if k.is_empty() { "none" } else { k }))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "Rust classes: ABC {} | XYZ {} | lifecycle {} | {} RFM codes | {} changed (history rows)",
            counts(&a.abc),
            counts(&a.xyz),
            counts(&a.lifecycle),
            a.rfm_codes,
            self.rust["changed"]
        );
        println!("population: Rust {} clients, Python {} clients", a.rust_clients, a.python_clients);
    }
}
