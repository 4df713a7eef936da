//! GetClientScore under an open-loop load, beside a trivial tonic service
//! and `redis-benchmark` GET measured in the same run.
//!
//! `cargo run --release -p branchscore-tests --bin bench_lookup -- --clients 100000 --rate 5000`
//!
//! Starts the clients service in-process on a scratch database and Redis
//! key prefix, loads a demo network's master data over gRPC, writes one
//! synthetic explained score per client straight into the database, then:
//!
//! - cache hits: primes Redis (BatchGetClientScores over every client) and
//!   calls GetClientScore for random clients at a fixed rate;
//! - cache misses: deletes the benchmark's keys from Redis before each level
//!   and asks for every client at most once in it (Redis miss, Postgres,
//!   Redis fill);
//! - through the gateway: the same cache hits (Redis primed again after the
//!   miss path emptied it) sent to the gateway in front of the service
//!   (request id, token check, a Redis rate-limit bucket, deadline cap,
//!   forwarding), to show what the public entry adds;
//! - the reference: `grpc.health.v1.Health/Check` on a bare tonic server in
//!   the same process (no auth, no middleware), at the same rates;
//! - `redis-benchmark` GET of one key holding a value the size of a score;
//! - the machine itself, idle: how late a thread that asks to wake every
//!   200 us wakes (the floor under every tail measured here).
//!
//! Beside each level's latency it prints the CPU time per call of each part
//! (the service, the gateway, the load generator, Redis, Postgres) and how
//! busy the machine was: on a small shared machine the tails move from run
//! to run with the machine, the CPU time per call much less, so that is the
//! figure for comparing two builds or two paths.
//!
//! The load is open-loop: request n is due at `start + n / rate` whatever
//! happened to the earlier ones, and its latency runs from that due time
//! (so a stalled server or a late generator shows up in the figures instead
//! of slowing the load down). Requests go round-robin over a few HTTP/2
//! connections. The generator (`branchscore_tests::open_loop`) runs on a
//! thread of its own, paced by a timer with nanosecond resolution, and
//! sends pre-encoded requests straight onto HTTP/2: it costs the shared
//! cores as little as it can. The service has the process's runtime.
//! The maximum sustainable rate is the highest offered rate at which at
//! least 95% of it is achieved, p99 stays within `--max-p99-ms` and at most
//! 0.1% of the calls fail: the rate grows by `--step-factor` until a level
//! fails, then a few bisections narrow it down. A level that fails is tried
//! once more after `--settle-seconds` and counts as failed only if it fails
//! again (the machine is shared by the generator, the service, Redis and
//! Postgres, so one scheduling hiccup should not end the search).
use branchscore::demo::network::{self, NetworkSpec};
use branchscore_clients::store::ScoreRow;
use branchscore_platform::Role;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{AbcClass, Date, LifecycleStatus, Money, XyzClass};
use branchscore_testkit::TestEnv;
use branchscore_tests::cpu::{CpuPerCall, CpuTimes};
use branchscore_tests::open_loop::{self, Call, Check, Generator, Load, Outcome, histogram, micros};
use branchscore_tests::{cores, load_average, machine};
use chrono::NaiveDate;
use clap::Parser;
use hdrhistogram::Histogram;
use http::HeaderValue;
use prost::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};

#[derive(Debug, Parser)]
struct Options {
    /// Clients with a stored score.
    #[arg(long, default_value_t = 100_000)]
    clients: usize,
    /// The fixed rate (requests per second) the goals are measured at.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Seconds of load at the fixed rate.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load at each level of the maximum-rate search.
    #[arg(long, default_value_t = 3.0)]
    step_seconds: f64,
    /// First offered rate of the maximum-rate search.
    #[arg(long, default_value_t = 2_000.0)]
    start_rate: f64,
    /// Offered rate growth between levels while they pass.
    #[arg(long, default_value_t = 1.5)]
    step_factor: f64,
    /// Bisections between the last passing and the first failing rate.
    #[arg(long, default_value_t = 3)]
    bisections: u32,
    /// A level fails when its p99 exceeds this (milliseconds).
    #[arg(long, default_value_t = 10.0)]
    max_p99_ms: f64,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests redis-benchmark sends.
    #[arg(long, default_value_t = 100_000)]
    redis_requests: u64,
    /// Pause after a level that failed, before the next one (seconds).
    #[arg(long, default_value_t = 3.0)]
    settle_seconds: f64,
    /// Skip the maximum-rate searches (only the fixed rate).
    #[arg(long)]
    no_search: bool,
    /// Runs the gateway on this core alone, and everything else (the
    /// service, the load generator and the local Redis) on the other cores:
    /// the gateway on a core of its own, as in its own pod.
    #[arg(long)]
    gateway_core: Option<usize>,
}

/// Goal: p99 of a cached GetClientScore at the fixed rate.
const HIT_P99_GOAL_MS: f64 = 2.0;
/// Goal: p99 of an uncached GetClientScore at the fixed rate.
const MISS_P99_GOAL_MS: f64 = 10.0;
/// Goal: GetClientScore's maximum rate against the trivial service's.
const MAX_RATE_GOAL: f64 = 0.25;
/// Goals: what the gateway adds to a cache hit's p50 and p99 at the fixed rate.
const GATEWAY_P50_GOAL_MS: f64 = 0.3;
const GATEWAY_P99_GOAL_MS: f64 = 1.0;
/// A call still unanswered after this counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const REDIS_BENCHMARK_KEY: &str = "key:__rand_int__";
/// The idle machine's wake-up check: about the gap between two calls at 5 000 rps.
const WAKEUP_PERIOD: Duration = Duration::from_micros(200);
const WAKEUP_SECONDS: f64 = 3.0;

const SCORE_PATH: &str = "/branchscore.clients.v1.ClientsService/GetClientScore";
const ECHO_PATH: &str = "/grpc.health.v1.Health/Check";

/// The one field the generator checks of a GetClientScoreResponse, the
/// score's client id; the rest of the answer is skipped unparsed, so that
/// the generator's CPU goes to sending, not to decoding what it ignores.
#[derive(Clone, PartialEq, prost::Message)]
struct AnsweredScore {
    #[prost(message, optional, tag = "1")]
    score: Option<AnsweredClient>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnsweredClient {
    #[prost(string, tag = "1")]
    client_id: String,
}

/// What one level of load produced.
struct Level {
    offered: f64,
    outcome: Outcome,
    /// Redis keyspace hits and misses during the level (all clients of the Redis).
    redis: Option<(u64, u64)>,
    /// CPU time per call, by part, over the level.
    cpu: CpuPerCall,
}

impl Level {
    fn errors(&self) -> u64 {
        self.outcome.errors.values().sum()
    }

    /// "0", or the count and the codes, e.g. "12 (ResourceExhausted 10, timeout 2)".
    fn errors_text(&self) -> String {
        if self.outcome.errors.is_empty() {
            return "0".into();
        }
        let codes: Vec<String> = self.outcome.errors.iter().map(|(code, n)| format!("{code} {n}")).collect();
        format!("{} ({})", self.errors(), codes.join(", "))
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.outcome.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.outcome.latency.max() as f64 / 1000.0
    }

    /// Why the level does not count as sustained; `None` if it does.
    fn shortfall(&self, max_p99_ms: f64) -> Option<String> {
        if self.outcome.achieved < 0.95 * self.offered {
            Some(format!("achieved {:.0} < 95% of offered", self.outcome.achieved))
        } else if self.errors() * 1000 > self.outcome.sent as u64 {
            Some(format!("errors {}", self.errors_text()))
        } else if self.outcome.latency.is_empty() || self.ms(0.99) > max_p99_ms {
            Some(format!("p99 {:.2} ms > {max_p99_ms} ms", self.ms(0.99)))
        } else {
            None
        }
    }

    fn hit_ratio(&self) -> String {
        match self.redis {
            Some((hits, misses)) if hits + misses > 0 => {
                format!("{:.1}%", hits as f64 * 100.0 / (hits + misses) as f64)
            }
            _ => "-".into(),
        }
    }
}

fn describe(label: &str, level: &Level, max_p99_ms: f64) {
    let verdict = level.shortfall(max_p99_ms).map_or_else(|| "sustained".to_owned(), |why| format!("FAILS: {why}"));
    eprintln!(
        "  {label:<6} {:>7.0} rps offered, {:>7.0} achieved | p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ms (at {:.2} s) | \
         send lag p99 {:.3} ms | redis hits {} | errors {} | {verdict}",
        level.offered,
        level.outcome.achieved,
        level.ms(0.5),
        level.ms(0.99),
        level.ms(0.999),
        level.max_ms(),
        level.outcome.slowest_due.as_secs_f64(),
        level.outcome.lag.value_at_quantile(0.99) as f64 / 1000.0,
        level.hit_ratio(),
        level.errors_text(),
    );
    eprintln!("         cpu: {}", level.cpu.text());
}

/// The paths under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Hit,
    Miss,
    Gateway,
    Echo,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Hit => "hit",
            Path::Miss => "miss",
            Path::Gateway => "gateway",
            Path::Echo => "echo",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Path::Hit => "GetClientScore, cache hit (Redis)",
            Path::Miss => "GetClientScore, cache miss (Redis empty: Postgres, then Redis fill)",
            Path::Gateway => "GetClientScore, cache hit, through the gateway",
            Path::Echo => "trivial tonic service: grpc.health.v1 Check",
        }
    }
}

/// Everything a level needs: the runtimes, the connections, the clients.
struct Bench {
    options: Options,
    /// The setup's runtime (loading, priming and clearing the cache).
    load: Runtime,
    generator: Generator,
    /// For the batch reads that prime the cache.
    scores: ClientsServiceClient<Channel>,
    service_addr: SocketAddr,
    gateway_addr: SocketAddr,
    echo_addr: SocketAddr,
    ids: Arc<Vec<String>>,
    /// The branch-staff authorization header of each client's branch.
    auth: Vec<HeaderValue>,
    redis: redis::aio::MultiplexedConnection,
    key_prefix: String,
    /// A head-office token, for the batch reads that prime the cache.
    analyst: String,
    seed: u64,
}

impl Bench {
    /// One level of `path` at `rate` for `seconds`, with its preparation.
    fn level(&mut self, path: Path, rate: f64, seconds: f64) -> anyhow::Result<Level> {
        self.seed += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let requests = ((rate * seconds).round() as usize).max(1);
        let plan: Vec<u32> = match path {
            Path::Hit | Path::Gateway | Path::Echo => {
                (0..requests).map(|_| rng.random_range(0..self.ids.len() as u32)).collect()
            }
            Path::Miss => {
                anyhow::ensure!(requests <= self.ids.len(), "{requests} misses need as many clients (--clients)");
                self.clear_cache()?;
                let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
                order.shuffle(&mut rng);
                order.truncate(requests);
                order
            }
        };
        let (addr, calls, check) = self.calls(path, &plan);
        let load = Load { addr, connections: self.options.connections, rate, straggler_timeout: CALL_TIMEOUT };
        let before = self.keyspace()?;
        let cpu_before = CpuTimes::now();
        let outcome = self.generator.run(load, calls, check)?;
        let cpu = CpuTimes::now().per_call_since(&cpu_before, outcome.sent);
        let mut level = Level { offered: rate, outcome, redis: None, cpu };
        let after = self.keyspace()?;
        level.redis = Some((after.0.saturating_sub(before.0), after.1.saturating_sub(before.1)));
        describe(path.label(), &level, self.options.max_p99_ms);
        let pause = if level.shortfall(self.options.max_p99_ms).is_some() { self.options.settle_seconds } else { 0.5 };
        std::thread::sleep(Duration::from_secs_f64(pause));
        Ok(level)
    }

    /// Where a level of `path` goes, its calls in order, and how to check an answer.
    fn calls(&self, path: Path, plan: &[u32]) -> (SocketAddr, Vec<Call>, Arc<Check>) {
        match path {
            Path::Hit | Path::Miss | Path::Gateway => {
                let addr = if path == Path::Gateway { self.gateway_addr } else { self.service_addr };
                let calls = plan
                    .iter()
                    .map(|&index| {
                        let client_id = self.ids[index as usize].clone();
                        Call::new(SCORE_PATH, &GetClientScoreRequest { client_id })
                            .with_metadata("authorization", self.auth[index as usize].clone())
                    })
                    .collect();
                let (ids, plan) = (self.ids.clone(), plan.to_vec());
                let check = move |n: usize, message: &[u8]| {
                    let answer = AnsweredScore::decode(message).map_err(|err| format!("decode: {err}"))?;
                    match answer.score {
                        Some(score) if score.client_id == ids[plan[n] as usize] => Ok(()),
                        _ => Err("wrong score".to_owned()),
                    }
                };
                (addr, calls, Arc::new(check))
            }
            Path::Echo => {
                let calls = plan.iter().map(|_| Call::new(ECHO_PATH, &HealthCheckRequest { service: String::new() }));
                let check = |_: usize, message: &[u8]| {
                    let reply = HealthCheckResponse::decode(message).map_err(|err| format!("decode: {err}"))?;
                    match reply.status() {
                        ServingStatus::Serving => Ok(()),
                        _ => Err("not serving".to_owned()),
                    }
                };
                (self.echo_addr, calls.collect(), Arc::new(check))
            }
        }
    }

    /// Deletes every score key of the benchmark's clients from Redis.
    fn clear_cache(&mut self) -> anyhow::Result<()> {
        let keys = self.score_keys();
        let redis = &mut self.redis;
        self.load.block_on(async {
            for chunk in keys.chunks(1000) {
                redis::cmd("DEL").arg(chunk).query_async::<u64>(redis).await?;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        let left = self.cached_count(&keys)?;
        anyhow::ensure!(left == 0, "{left} score keys still in Redis");
        Ok(())
    }

    /// The Redis key of every benchmark client's score.
    fn score_keys(&self) -> Vec<String> {
        self.ids
            .iter()
            .map(|id| format!("{}{}", self.key_prefix, branchscore_clients::score_cache::ScoreCache::key(id)))
            .collect()
    }

    /// How many of `keys` Redis holds.
    fn cached_count(&mut self, keys: &[String]) -> anyhow::Result<u64> {
        let redis = &mut self.redis;
        self.load.block_on(async {
            let mut held = 0;
            for chunk in keys.chunks(1000) {
                held += redis::cmd("EXISTS").arg(chunk).query_async::<u64>(redis).await?;
            }
            Ok(held)
        })
    }

    /// Fills Redis with every client's score (a batch read caches what it
    /// reads): a hit path must meet a warm cache, whatever the miss path
    /// removed before it. A read's fill is best effort (a pipeline slower
    /// than the command timeout is dropped, as it should be at a counter),
    /// so the batch reads repeat until Redis holds every key.
    fn prime_cache(&mut self) -> anyhow::Result<()> {
        const ROUNDS: usize = 5;
        let keys = self.score_keys();
        for round in 1..=ROUNDS {
            self.read_every_score()?;
            let held = self.cached_count(&keys)?;
            if held == keys.len() as u64 {
                return Ok(());
            }
            eprintln!("  cache primed: {held} of {} scores after {round} round(s); again", keys.len());
        }
        anyhow::bail!("Redis did not take every score in {ROUNDS} rounds of batch reads")
    }

    fn read_every_score(&mut self) -> anyhow::Result<()> {
        let (mut clients, ids, analyst) = (self.scores.clone(), self.ids.clone(), self.analyst.clone());
        self.load.block_on(async move {
            for chunk in ids.chunks(1000) {
                let reply = clients
                    .batch_get_client_scores(branchscore_testkit::authorized(
                        &analyst,
                        BatchGetClientScoresRequest { client_ids: chunk.to_vec() },
                    ))
                    .await?
                    .into_inner();
                anyhow::ensure!(reply.missing_client_ids.is_empty(), "scores missing: {:?}", reply.missing_client_ids);
            }
            Ok(())
        })
    }

    /// Redis keyspace hits and misses so far.
    fn keyspace(&mut self) -> anyhow::Result<(u64, u64)> {
        let info: String = self.load.block_on(redis::cmd("INFO").arg("stats").query_async(&mut self.redis))?;
        let stat = |name: &str| {
            info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok())
        };
        Ok((stat("keyspace_hits").unwrap_or(0), stat("keyspace_misses").unwrap_or(0)))
    }

    /// A level of the search: tried twice before it counts as failed.
    fn attempt(&mut self, path: Path, rate: f64) -> anyhow::Result<Result<Level, String>> {
        let (max_p99, seconds) = (self.options.max_p99_ms, self.options.step_seconds);
        let level = self.level(path, rate, seconds)?;
        if level.shortfall(max_p99).is_none() {
            return Ok(Ok(level));
        }
        let again = self.level(path, rate, seconds)?;
        Ok(match again.shortfall(max_p99) {
            None => Ok(again),
            Some(why) => Err(why),
        })
    }

    /// The highest sustained rate of `path`.
    fn search(&mut self, path: Path) -> anyhow::Result<Search> {
        let seconds = self.options.step_seconds;
        let cap = match path {
            Path::Miss => self.ids.len() as f64 / seconds,
            Path::Hit | Path::Gateway | Path::Echo => f64::INFINITY,
        };
        eprintln!("{}: maximum sustainable rate ({seconds} s per level)", path.name());
        let mut best: Option<Level> = None;
        let mut failed: Option<(f64, String)> = None;
        let mut rate = self.options.start_rate;
        while rate <= cap {
            match self.attempt(path, rate)? {
                Ok(level) => best = Some(level),
                Err(why) => {
                    failed = Some((rate, why));
                    break;
                }
            }
            rate = (rate * self.options.step_factor).round();
        }
        if let Some((mut high, mut why)) = failed.clone() {
            for _ in 0..self.options.bisections {
                let low = best.as_ref().map_or(0.0, |l| l.offered);
                let mid = ((low + high) / 2.0 / 100.0).round() * 100.0;
                if mid <= low || mid >= high {
                    break;
                }
                match self.attempt(path, mid)? {
                    Ok(level) => best = Some(level),
                    Err(reason) => (high, why) = (mid, reason),
                }
            }
            failed = Some((high, why));
        }
        Ok(Search { best, failed, capped: (rate > cap).then_some(cap) })
    }
}

struct Search {
    best: Option<Level>,
    /// The lowest failing rate and why.
    failed: Option<(f64, String)>,
    /// The search stopped at this rate without a failure (miss path: clients run out).
    capped: Option<f64>,
}

impl Search {
    fn rate(&self) -> f64 {
        self.best.as_ref().map_or(0.0, |l| l.offered)
    }
}

/// A synthetic explained score with every field a real one has.
fn synthetic_score(client: &Client, rng: &mut ChaCha8Rng, as_of: NaiveDate) -> ClientScore {
    const WEIGHTS: [(&str, f64); 6] = [
        ("value", 0.30),
        ("stability", 0.15),
        ("rfm", 0.25),
        ("lifecycle", 0.10),
        ("maturity", 0.10),
        ("satisfaction", 0.10),
    ];
    const SEGMENTS: [&str; 6] =
        ["champions", "loyal", "potential_loyalist", "need_attention", "at_risk", "hibernating"];
    // No feedback service yet: satisfaction is absent and passes its weight on.
    let present_weight: f64 = WEIGHTS[..5].iter().map(|(_, w)| w).sum();
    let components: Vec<ScoreComponent> = WEIGHTS
        .iter()
        .map(|&(component, weight)| {
            let present = component != "satisfaction";
            let effective_weight = if present { weight / present_weight } else { 0.0 };
            let component_score = if present { f64::from(rng.random_range(0..=100u32)) } else { 0.0 };
            ScoreComponent {
                component: component.into(),
                weight,
                effective_weight,
                component_score,
                contribution: effective_weight * component_score,
                present,
            }
        })
        .collect();
    let score: f64 = components.iter().map(|c| c.contribution).sum();
    let (band, next, floor) = match score {
        s if s >= 80.0 => ("excellent", "", 100.0),
        s if s >= 60.0 => ("good", "excellent", 80.0),
        s if s >= 40.0 => ("fair", "good", 60.0),
        _ => ("weak", "fair", 40.0),
    };
    let abc = [AbcClass::A, AbcClass::B, AbcClass::C][rng.random_range(0..3)];
    let revenue = rng.random_range(10_000..50_000_000i64);
    let money = |minor_units: i64| Some(Money { minor_units, currency: "PLN".into() });
    let rfm_code = format!("{}{}{}", rng.random_range(1..=5), rng.random_range(1..=5), rng.random_range(1..=5));
    let recency_days: i64 = rng.random_range(0..400);
    ClientScore {
        client_id: client.id.clone(),
        branch_id: client.branch_id.clone(),
        as_of: Some(Date::from(as_of)),
        score,
        score_class: band.into(),
        abc_class: abc as i32,
        xyz_class: [XyzClass::X, XyzClass::Y, XyzClass::Z][rng.random_range(0..3)] as i32,
        rfm_code,
        rfm_segment: SEGMENTS[rng.random_range(0..SEGMENTS.len())].into(),
        lifecycle_status: [
            LifecycleStatus::New,
            LifecycleStatus::Regular,
            LifecycleStatus::Restored,
            LifecycleStatus::Lost,
        ][rng.random_range(0..4)] as i32,
        components,
        window_revenue: money(revenue),
        settings_version: 3,
        compute_time: Some(prost_types::Timestamp { seconds: 1_795_000_000 + rng.random_range(0..86_400), nanos: 0 }),
        outlook: Some(ScoreOutlook {
            next_score_class: next.into(),
            points_needed: if next.is_empty() { 0.0 } else { floor - score },
            next_abc_class: if abc == AbcClass::A { AbcClass::Unspecified as i32 } else { abc as i32 - 1 },
            revenue_needed: if abc == AbcClass::A { None } else { money(rng.random_range(1_000..10_000_000)) },
        }),
        recency_days,
        last_purchase: Some(Date::from(as_of - chrono::Days::new(recency_days.unsigned_abs()))),
        frequency: rng.random_range(1..60),
        xyz_cv: rng.random_range(0.02..0.9),
        cluster: rng.random_range(0..6),
        notes: if rng.random_bool(0.2) { vec!["xyz: only 2 month(s) of history".into()] } else { Vec::new() },
        segment_id: ["SEG-CORE", "SEG-GROWTH", "SEG-PREMIUM"][rng.random_range(0..3)].into(),
    }
}

/// Master data over gRPC, one synthetic score per client into Postgres, the
/// cache primed. Returns the clients and the mean encoded record size.
async fn seed(env: &TestEnv, addr: SocketAddr, count: usize) -> anyhow::Result<(Vec<Client>, usize)> {
    let as_of = NaiveDate::from_ymd_opt(2026, 10, 31).expect("date");
    let network = network::generate(&NetworkSpec {
        seed: 1,
        branches: 8,
        clients: count,
        months: 1,
        as_of,
        currency: "PLN".into(),
    });
    let mut clients = ClientsServiceClient::new(branchscore_testkit::channel(addr).await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let erp = env.token(Role::ErpIntegration, &["*"]);
    clients
        .batch_upsert_branches(branchscore_testkit::authorized(
            &erp,
            BatchUpsertBranchesRequest { branches: network.branches.clone() },
        ))
        .await?;
    let (leads, staff): (Vec<_>, Vec<_>) = network.employees.iter().cloned().partition(|e| e.team_lead_id.is_empty());
    for employees in [leads, staff] {
        clients
            .batch_upsert_employees(branchscore_testkit::authorized(&erp, BatchUpsertEmployeesRequest { employees }))
            .await?;
    }
    clients
        .batch_upsert_products(branchscore_testkit::authorized(
            &erp,
            BatchUpsertProductsRequest {
                product_lines: network.product_lines.clone(),
                products: network.products.clone(),
            },
        ))
        .await?;
    for chunk in network.clients.chunks(1000) {
        clients
            .batch_upsert_clients(branchscore_testkit::authorized(
                &erp,
                BatchUpsertClientsRequest { clients: chunk.to_vec() },
            ))
            .await?;
    }

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let scores: Vec<ClientScore> = network.clients.iter().map(|c| synthetic_score(c, &mut rng, as_of)).collect();
    let bytes: usize = scores.iter().map(Message::encoded_len).sum();
    let pool = sqlx::PgPool::connect(&env.database.url).await?;
    let rows: Vec<ScoreRow> = scores.iter().map(ScoreRow::from).collect();
    let mut tx = pool.begin().await?;
    branchscore_clients::store::write_scores(&mut tx, None, &rows, |_, _| {}).await?;
    // As after a nightly run that found them unchanged: the cache serves
    // only scores of finished runs, and reads bring these up to its date.
    sqlx::query(
        "INSERT INTO recompute_runs (as_of, settings_version, requested_by, finished_at)
         VALUES ($1, 0, 'bench', now())",
    )
    .bind(as_of)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE client_scores").execute(&pool).await?;
    pool.close().await;

    let mean = bytes / scores.len().max(1);
    Ok((network.clients, mean))
}

/// The gateway in front of the clients service at `clients`, sharing its
/// Redis (rate-limit buckets) with a limit no benchmark level reaches: the
/// figures are the cost of the checks and the forwarding, not of refusals.
async fn start_gateway(env: &TestEnv, clients_env: &TestEnv, clients: SocketAddr) -> anyhow::Result<SocketAddr> {
    let mut platform = env.platform.clone();
    platform.redis = clients_env.platform.redis.clone();
    platform.peers.clients = format!("http://{clients}");
    let mut config = branchscore_gateway::Config {
        server: env.server(),
        database: env.database.clone(),
        ..branchscore_gateway::Config::default()
    };
    config.rate_limit.calls_per_second = 1e9;
    config.rate_limit.burst = u32::MAX;
    let running = branchscore_gateway::run(&config, &platform, env.shutdown.clone()).await?;
    branchscore_testkit::wait_serving(running.addr).await;
    Ok(running.addr)
}

/// The local Redis server's main thread, kept on some cores for the run.
struct PinnedRedis {
    pid: i32,
    cores: Vec<usize>,
}

impl PinnedRedis {
    /// Lets Redis run on the cores it had before.
    fn release(&self) {
        if let Err(err) = cores::pin(Some(self.pid), &self.cores) {
            eprintln!("could not give Redis (pid {}) its cores {:?} back: {err}", self.pid, self.cores);
        }
    }
}

/// Keeps the Redis server at `url` (which must run on this machine) on
/// `cores`, off the gateway's core.
fn pin_redis(url: &str, cores: &[usize]) -> anyhow::Result<PinnedRedis> {
    let info: String = redis::cmd("INFO").arg("server").query(&mut redis::Client::open(url)?.get_connection()?)?;
    let pid: i32 = info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .ok_or_else(|| anyhow::anyhow!("Redis did not say its process id"))?
        .trim()
        .parse()?;
    let before = cores::allowed_of(pid)?;
    cores::pin(Some(pid), cores)
        .map_err(|err| anyhow::anyhow!("could not pin Redis (pid {pid}; is it local?): {err}"))?;
    Ok(PinnedRedis { pid, cores: before })
}

/// How late a thread that asks to wake every `period` wakes, over
/// `seconds` on a machine otherwise idle: the floor under every latency
/// tail measured here (scheduler, timer slack, a virtual machine's stalls).
fn wakeup_lateness(seconds: f64, period: Duration) -> Histogram<u64> {
    let mut lateness = histogram();
    let start = Instant::now();
    let wakeups = (seconds / period.as_secs_f64()) as u32;
    for n in 1..=wakeups {
        let due = start + period * n;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        lateness.saturating_record(micros(Instant::now().saturating_duration_since(due)));
    }
    lateness
}

/// `redis-benchmark` GET figures.
struct RedisBenchmark {
    command: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs redis-benchmark GET against the key it reads, set to `value_len` bytes first.
fn redis_benchmark(bench: &mut Bench, redis_url: &str, value_len: usize) -> anyhow::Result<RedisBenchmark> {
    let info = redis::Client::open(redis_url)?.get_connection_info().addr().clone();
    let redis::ConnectionAddr::Tcp(host, port) = info else { anyhow::bail!("redis-benchmark needs a TCP Redis") };
    let redis = &mut bench.redis;
    bench.load.block_on(redis::cmd("SET").arg(REDIS_BENCHMARK_KEY).arg(vec![b'x'; value_len]).exec_async(redis))?;
    let args = [
        "-h".to_owned(),
        host,
        "-p".to_owned(),
        port.to_string(),
        "-t".to_owned(),
        "get".to_owned(),
        "-n".to_owned(),
        bench.options.redis_requests.to_string(),
        "-c".to_owned(),
        "50".to_owned(),
        "-q".to_owned(),
        "--csv".to_owned(),
    ];
    let command = format!("redis-benchmark {}", args.join(" "));
    eprintln!("{command} (key {REDIS_BENCHMARK_KEY} holds {value_len} bytes)");
    let output = std::process::Command::new("redis-benchmark").args(&args).output();
    let redis = &mut bench.redis;
    bench.load.block_on(redis::cmd("DEL").arg(REDIS_BENCHMARK_KEY).exec_async(redis))?;
    let output = output?;
    anyhow::ensure!(output.status.success(), "redis-benchmark: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let fields: Vec<f64> = stdout
        .lines()
        .find(|line| line.starts_with("\"GET\""))
        .ok_or_else(|| anyhow::anyhow!("no GET line in {stdout:?}"))?
        .split(',')
        .skip(1)
        .map(|field| field.trim_matches('"').parse::<f64>())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(fields.len() >= 6, "unexpected redis-benchmark output {stdout:?}");
    Ok(RedisBenchmark { command, rps: fields[0], p50_ms: fields[3], p99_ms: fields[5] })
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    // Service logs go to stderr, errors only unless RUST_LOG says otherwise
    // (RUST_LOG=warn shows, e.g., Redis commands timing out under overload).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let load_before = load_average();
    let machine = machine();
    anyhow::ensure!(options.connections > 0 && options.rate > 0.0 && options.step_factor > 1.0, "bad options");
    // Pinned before any other thread starts, so that every later one inherits it.
    let pinning = options.gateway_core.map(cores::split).transpose()?;
    if let Some((_, rest)) = &pinning {
        cores::pin(None, rest)?;
    }
    // The service's runtime (the process's cores) and the setup's small one.
    let service = tokio::runtime::Builder::new_multi_thread().thread_name("service").enable_all().build()?;
    let load =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("load").enable_all().build()?;
    let env = TestEnv::new();
    let config = branchscore_clients::Config {
        server: env.server(),
        // The deployed pool size, not the test environment's smaller one.
        database: branchscore_platform::config::DatabaseConfig {
            max_connections: branchscore_clients::Config::default().database.max_connections,
            ..env.database.clone()
        },
        ..branchscore_clients::Config::default()
    };
    let gateway_env = TestEnv::new();
    let (running, echo_addr) = service.block_on(async {
        let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await?;
        branchscore_testkit::wait_serving(running.addr).await;
        anyhow::Ok((running, open_loop::start_trivial_server().await?))
    })?;
    // With a core of its own the gateway gets a runtime of its own on it;
    // otherwise it shares the service's, as before.
    let gateway_runtime = match &pinning {
        Some((gateway_cores, _)) => {
            let gateway_cores = gateway_cores.clone();
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("gateway")
                    .on_thread_start(move || {
                        if let Err(err) = cores::pin(None, &gateway_cores) {
                            eprintln!("could not pin a gateway thread: {err}");
                        }
                    })
                    .enable_all()
                    .build()?,
            )
        }
        None => None,
    };
    let gateway_addr =
        gateway_runtime.as_ref().unwrap_or(&service).block_on(start_gateway(&gateway_env, &env, running.addr))?;
    let redis_pinned = match &pinning {
        Some((_, rest)) => Some(pin_redis(&env.platform.redis.url, rest)?),
        None => None,
    };

    eprintln!("loading {} clients and their scores ...", options.clients);
    let started = Instant::now();
    let (clients, record_bytes) = load.block_on(seed(&env, running.addr, options.clients))?;
    eprintln!("  loaded in {:.1} s; mean score record {record_bytes} bytes", started.elapsed().as_secs_f64());

    let mut tokens: BTreeMap<String, HeaderValue> = BTreeMap::new();
    for client in &clients {
        if !tokens.contains_key(&client.branch_id) {
            let token = env.token(Role::BranchStaff, &[&client.branch_id]);
            tokens.insert(client.branch_id.clone(), HeaderValue::try_from(format!("Bearer {token}"))?);
        }
    }
    let auth: Vec<HeaderValue> = clients.iter().map(|c| tokens[&c.branch_id].clone()).collect();
    let (scores, redis) = load.block_on(async {
        let scores = ClientsServiceClient::new(branchscore_testkit::channel(running.addr).await);
        let redis = redis::Client::open(env.platform.redis.url.as_str())?.get_multiplexed_async_connection().await?;
        anyhow::Ok((scores, redis))
    })?;
    let mut bench = Bench {
        key_prefix: env.platform.redis.key_prefix.clone(),
        ids: Arc::new(clients.iter().map(|c| c.id.clone()).collect()),
        auth,
        options,
        load,
        generator: Generator::start()?,
        scores,
        service_addr: running.addr,
        gateway_addr,
        echo_addr,
        redis,
        analyst: env.token(Role::HqAnalyst, &[]),
        seed: 0,
    };

    eprintln!("the machine idle: a thread waking every {} us for {WAKEUP_SECONDS} s", WAKEUP_PERIOD.as_micros());
    let lateness = wakeup_lateness(WAKEUP_SECONDS, WAKEUP_PERIOD);
    let (rate, seconds) = (bench.options.rate, bench.options.seconds);
    let mut fixed = Vec::new();
    let mut searches = Vec::new();
    for path in [Path::Hit, Path::Miss, Path::Gateway, Path::Echo] {
        if matches!(path, Path::Hit | Path::Gateway) {
            bench.prime_cache()?;
        }
        // The warm-up runs at the fixed rate, so that connections and the
        // database pool have grown to what that rate needs before it is measured.
        eprintln!("{}: warm-up, then {rate} rps for {seconds} s", path.name());
        bench.level(path, rate, 1.0)?;
        fixed.push((path, bench.level(path, rate, seconds)?));
        if !bench.options.no_search {
            searches.push((path, bench.search(path)?));
        }
    }
    let redis_url = env.platform.redis.url.clone();
    let reference = redis_benchmark(&mut bench, &redis_url, record_bytes)?;

    let load_after = load_average();
    if let Some(redis) = &redis_pinned {
        redis.release();
    }
    // The scores cached under this run's prefix would otherwise stay in Redis for the TTL (36 h).
    bench.clear_cache()?;
    let figures = Figures { record_bytes, fixed, searches, redis: reference, lateness };
    report(&bench.options, &machine, &figures);
    if let Some((gateway, rest)) = &pinning {
        println!("gateway on core(s) {gateway:?}; the service, the load generator and Redis on {rest:?}");
    }
    println!("load average before the run {load_before}, after it {load_after}");
    env.shutdown.cancel();
    let _ = bench.load.block_on(async { tokio::time::timeout(Duration::from_secs(10), running.task).await });
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// Everything the report prints.
struct Figures {
    record_bytes: usize,
    fixed: Vec<(Path, Level)>,
    searches: Vec<(Path, Search)>,
    redis: RedisBenchmark,
    lateness: Histogram<u64>,
}

fn report(options: &Options, machine: &str, figures: &Figures) {
    let Figures { record_bytes, fixed, searches, redis, lateness } = figures;
    println!(
        "Score lookup, open loop: {} clients, score records of {record_bytes} bytes on average, {} HTTP/2 connections, \
         random clients (each client at most once per miss level)",
        options.clients, options.connections
    );
    println!("machine: {machine}");
    println!();
    println!(
        "At a fixed rate ({} rps for {} s; latency from the intended send time, in ms):",
        options.rate, options.seconds
    );
    println!();
    println!("| path | offered rps | achieved rps | p50 | p99 | p99.9 | max | errors | Redis hits |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (path, level) in fixed {
        println!(
            "| {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
            path.name(),
            level.offered,
            level.outcome.achieved,
            level.ms(0.5),
            level.ms(0.99),
            level.ms(0.999),
            level.max_ms(),
            level.errors_text(),
            level.hit_ratio()
        );
    }
    println!(
        "| {} (closed loop, 50 connections, one key of {record_bytes} bytes) | - | {:.0} | {:.3} | {:.3} | - | - | - | - |",
        redis.command, redis.rps, redis.p50_ms, redis.p99_ms
    );
    let ms = |quantile: f64| lateness.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "| the machine idle: lateness of a thread waking every {} us | - | - | {:.3} | {:.3} | {:.3} | {:.3} | - | - |",
        WAKEUP_PERIOD.as_micros(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        lateness.max() as f64 / 1000.0
    );
    println!();
    println!(
        "CPU time per call at the fixed rate (us; the load generator is its `loadgen` thread; the gateway shares \
         the service's runtime unless `--gateway-core`):"
    );
    println!();
    println!("| path | service | gateway | load generator | Redis | Postgres | machine busy |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (path, level) in fixed {
        let cpu = &level.cpu;
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% |",
            path.name(),
            cpu.of("service"),
            cpu.of("gateway"),
            cpu.of("loadgen"),
            cpu.of("redis-server"),
            cpu.of("postgres"),
            cpu.machine_busy * 100.0
        );
    }
    let rate_of = |wanted: Path| searches.iter().find(|(path, _)| *path == wanted).map(|(_, s)| s.rate());
    if !searches.is_empty() {
        println!();
        println!(
            "Maximum sustainable rate (>= 95% of the offered rate achieved, p99 <= {} ms, <= 0.1% errors; {} s per level):",
            options.max_p99_ms, options.step_seconds
        );
        println!();
        println!("| path | max rps | achieved rps | p50 | p99 | max | first failing rate |");
        println!("|---|---:|---:|---:|---:|---:|---|");
        for (path, search) in searches {
            let failing = match (&search.failed, search.capped) {
                (Some((rate, why)), _) => format!("{rate:.0}: {why}"),
                (None, Some(cap)) => format!("none up to {cap:.0} (clients ran out)"),
                (None, None) => "none".to_owned(),
            };
            let (achieved, p50, p99, max) = search.best.as_ref().map_or((0.0, 0.0, 0.0, 0.0), |level| {
                (level.outcome.achieved, level.ms(0.5), level.ms(0.99), level.max_ms())
            });
            println!(
                "| {} | {:.0} | {achieved:.0} | {p50:.3} | {p99:.3} | {max:.3} | {failing} |",
                path.name(),
                search.rate()
            );
        }
        println!(
            "| {} (closed loop, for scale) | - | {:.0} | {:.3} | {:.3} | - | - |",
            redis.command, redis.rps, redis.p50_ms, redis.p99_ms
        );
    }
    println!();
    println!("| goal | figure | |");
    println!("|---|---:|---|");
    let p99 = |wanted: Path| fixed.iter().find(|(path, _)| *path == wanted).map_or(f64::NAN, |(_, l)| l.ms(0.99));
    let hit = p99(Path::Hit);
    println!(
        "| cache hit: p99 under {HIT_P99_GOAL_MS} ms at {} rps | {hit:.3} ms | {} |",
        options.rate,
        met(hit < HIT_P99_GOAL_MS)
    );
    let miss = p99(Path::Miss);
    println!(
        "| cache miss: p99 under {MISS_P99_GOAL_MS} ms at {} rps | {miss:.3} ms | {} |",
        options.rate,
        met(miss < MISS_P99_GOAL_MS)
    );
    let p50 = |wanted: Path| fixed.iter().find(|(path, _)| *path == wanted).map_or(f64::NAN, |(_, l)| l.ms(0.5));
    let (added_p50, added_p99) = (p50(Path::Gateway) - p50(Path::Hit), p99(Path::Gateway) - hit);
    println!(
        "| gateway: adds at most {GATEWAY_P50_GOAL_MS} ms to a cache hit's p50 at {} rps | {added_p50:.3} ms | {} |",
        options.rate,
        met(added_p50 <= GATEWAY_P50_GOAL_MS)
    );
    println!(
        "| gateway: adds at most {GATEWAY_P99_GOAL_MS} ms to a cache hit's p99 at {} rps | {added_p99:.3} ms | {} |",
        options.rate,
        met(added_p99 <= GATEWAY_P99_GOAL_MS)
    );
    if let (Some(lookup), Some(echo)) = (rate_of(Path::Hit), rate_of(Path::Echo)) {
        let ratio = lookup / echo.max(f64::EPSILON);
        println!(
            "| cache hit: maximum rate at least {:.0}% of the trivial tonic service's | {lookup:.0} / {echo:.0} rps = {:.0}% | {} |",
            MAX_RATE_GOAL * 100.0,
            ratio * 100.0,
            met(ratio >= MAX_RATE_GOAL)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_field_is_the_scores_client_id() {
        let answer = GetClientScoreResponse {
            score: Some(ClientScore { client_id: "c-42".into(), branch_id: "b-7".into(), ..ClientScore::default() }),
        };
        let answered = AnsweredScore::decode(answer.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(answered.score.map(|score| score.client_id), Some("c-42".to_owned()));
        let none =
            AnsweredScore::decode(GetClientScoreResponse::default().encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(none.score, None);
    }
}
