//! GetForecast and GetFunnel over a million deals beside the equivalent SQL
//! run directly in the same database, in the same run.
//!
//! `cargo run --release -p branchscore-tests --bin bench_pipeline -- --deals 1000000`
//!
//! Starts the pipeline service in-process on a scratch database and calls
//! `ListPipelines` once, which stores the Schiffman and agency presets. Then
//! it generates a deterministic history (seeded; times relative to the start
//! of the run) and COPYs it into `leads`, `deals` and `deal_transitions`:
//! 5 branches of uneven size, 50 owners of uneven skill, deals opened over
//! the last 12 months (3% in the agency pipeline), moved through Schiffman's
//! stages with conversions around 55% / 60% / 85% (a few jump from the
//! meeting past the gate, win straight from the meeting or go back a stage
//! once; some stall), lost for catalogued reasons that depend on the stage,
//! amounts log-normal around 8 000 PLN, expected closes in the coming months
//! for the open deals; 60% of deals come from a lead, plus unconverted leads.
//! Then `VACUUM (ANALYZE)`.
//!
//! Then it times each query, alternating which path goes first, through the
//! gRPC API (admin token, whole network: what the service does, decoding of
//! the reply included) and as SQL on its own connection (for the forecast the
//! service's GROUP BY without its filter predicates; for the funnel one
//! statement that computes reach counts, conversions, days in stage, losses
//! by stage and reason, the bottleneck and the lead conversion), checks that
//! every answer equals the first, and prints a markdown table: the first run
//! (the first call ever on that path), median and p95 of the other runs, and
//! the ratio of the medians.
use branchscore_platform::Role;
use branchscore_proto::common::v1::Date;
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::pipeline::v1::*;
use branchscore_testkit::{TestEnv, authorized};
use branchscore_tests::{machine, postgres_settings};
use chrono::{DateTime, Days, NaiveDate, Utc};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "GetForecast and GetFunnel over many deals beside the same SQL run directly (docs/benchmarks.md)")]
struct Options {
    /// Deals to generate.
    #[arg(long, default_value_t = 1_000_000)]
    deals: usize,
    /// Timed runs of each query on each path (the first is reported apart).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Seed of the generator: the same seed gives the same history, relative to the start of the run.
    #[arg(long, default_value_t = 4)]
    seed: u64,
}

/// Times are microseconds since the epoch, as precise as Postgres keeps them.
const SECOND: i64 = 1_000_000;
const DAY: i64 = 86_400 * SECOND;
/// Branch and share of the deals.
const BRANCHES: [(&str, f64); 5] = [("WAW", 0.30), ("KRK", 0.22), ("WRO", 0.18), ("POZ", 0.16), ("GDA", 0.14)];
const OWNERS_PER_BRANCH: usize = 10;
const CLIENTS_PER_BRANCH: u32 = 40_000;
/// The catalogue of the migration.
const REASONS: [&str; 8] =
    ["price", "competitor", "no_budget", "no_decision", "timing", "no_contact", "product_fit", "other"];
const AGENCY_SHARE: f64 = 0.03;
/// Deals that come from a lead; unconverted leads per deal.
const FROM_LEAD: f64 = 0.6;
const UNCONVERTED_LEADS: f64 = 0.3;

/// How deals move through one pipeline.
struct Flow {
    id: &'static str,
    /// (code, probability) of every stage, the won stage last.
    stages: &'static [(&'static str, i16)],
    /// The gated stage: from there on the four facts are confirmed.
    gate: usize,
    /// Per open stage, the share of deals that leave it forward (the others are lost).
    onward: &'static [f64],
    /// Per open stage, mean days before a deal leaves it.
    mean_days: &'static [f64],
    /// Per open stage, loss reasons (index into `REASONS`, weight).
    losses: &'static [&'static [(usize, u32)]],
}

const SCHIFFMAN: Flow = Flow {
    id: "schiffman",
    stages: &[("meeting", 25), ("qualified", 50), ("verbal_yes", 70), ("signed", 100)],
    gate: 1,
    onward: &[0.55, 0.60, 0.85],
    mean_days: &[12.0, 9.0, 6.0],
    losses: &[
        &[(2, 30), (4, 25), (5, 20), (6, 15), (7, 10)],
        &[(0, 35), (1, 25), (3, 25), (4, 15)],
        &[(0, 40), (1, 35), (3, 15), (7, 10)],
    ],
};

const AGENCY: Flow = Flow {
    id: "agency",
    stages: &[
        ("proposal_writing", 25),
        ("proposal_sent", 40),
        ("studying", 50),
        ("defended", 75),
        ("verbal_yes", 90),
        ("signed", 100),
    ],
    gate: 2,
    onward: &[0.85, 0.75, 0.60, 0.70, 0.90],
    mean_days: &[4.0, 6.0, 10.0, 7.0, 5.0],
    losses: &[
        &[(4, 40), (5, 30), (7, 30)],
        &[(5, 40), (0, 30), (1, 30)],
        &[(0, 40), (1, 30), (3, 30)],
        &[(0, 50), (1, 30), (3, 20)],
        &[(0, 50), (1, 50)],
    ],
};

const FLOWS: [&Flow; 2] = [&SCHIFFMAN, &AGENCY];

/// Per lead channel: value, SLA seconds, priority (as the service's defaults),
/// mean first response in seconds, share of leads.
const CHANNELS: [(LeadChannel, i64, i16, f64, f64); 5] = [
    (LeadChannel::WalkIn, 300, 1, 240.0, 0.20),
    (LeadChannel::Phone, 300, 1, 360.0, 0.25),
    (LeadChannel::Messenger, 900, 2, 1_800.0, 0.15),
    (LeadChannel::Site, 1_800, 3, 4_200.0, 0.20),
    (LeadChannel::Email, 3_600, 4, 18_000.0, 0.20),
];

/// A UUID v7-shaped id: milliseconds first, so ids grow with time as the service's do.
#[derive(Debug, Clone, Copy)]
struct Uid {
    ms: i64,
    bits: u64,
}

impl Uid {
    fn new(rng: &mut ChaCha8Rng, micros: i64) -> Uid {
        Uid { ms: micros / 1000, bits: rng.random() }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ms, b) = (self.ms as u64, self.bits);
        write!(
            f,
            "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
            (ms >> 16) & 0xffff_ffff,
            ms & 0xffff,
            b & 0xfff,
            0x8000 | ((b >> 12) & 0x3fff),
            b >> 26
        )
    }
}

struct GenDeal {
    id: Uid,
    created: i64,
    branch: u8,
    owner: u8,
    client: u32,
    flow: u8,
    stage: u8,
    status: DealStatus,
    amount: i64,
    expected_close: NaiveDate,
    facts: [bool; 4],
    reason: Option<u8>,
    entered: i64,
    closed: Option<i64>,
    lead: Option<Uid>,
}

/// A stage change; `from` -1 opens the deal, `to` -1 loses it.
struct GenTransition {
    at: i64,
    deal: u32,
    from: i8,
    to: i8,
}

struct GenLead {
    id: Uid,
    received: i64,
    responded: Option<i64>,
    branch: u8,
    owner: u8,
    channel: u8,
    client: u32,
    deal: Option<u32>,
}

struct History {
    deals: Vec<GenDeal>,
    transitions: Vec<GenTransition>,
    leads: Vec<GenLead>,
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|c| c.1).sum();
    let mut roll = rng.random_range(0..total);
    for &(choice, weight) in choices {
        if roll < weight {
            return choice;
        }
        roll -= weight;
    }
    choices[choices.len() - 1].0
}

fn date(micros: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(micros).expect("time").date_naive()
}

/// A deterministic history of `count` deals opened in the year before `now`.
fn generate(count: usize, seed: u64, now: i64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let today = date(now);
    let skill: Vec<f64> = (0..BRANCHES.len() * OWNERS_PER_BRANCH).map(|_| rng.random_range(0.85..1.15)).collect();
    let branch_weights: Vec<(u8, u32)> =
        BRANCHES.iter().enumerate().map(|(i, (_, share))| (i as u8, (share * 1000.0) as u32)).collect();
    let channel_weights: Vec<(u8, u32)> =
        CHANNELS.iter().enumerate().map(|(i, c)| (i as u8, (c.4 * 1000.0) as u32)).collect();
    let mut created: Vec<i64> = (0..count).map(|_| now - rng.random_range(600 * SECOND..365 * DAY)).collect();
    created.sort_unstable();
    let mut deals = Vec::with_capacity(count);
    let mut transitions = Vec::with_capacity(count * 3);
    let mut leads = Vec::with_capacity((count as f64 * (FROM_LEAD + UNCONVERTED_LEADS)) as usize + 1);
    let new_lead = |rng: &mut ChaCha8Rng, received: i64, branch: u8, owner: u8, client: u32, deal: Option<u32>| {
        let channel = weighted(rng, &channel_weights);
        let answered = deal.is_some() || rng.random_bool(0.85);
        let responded = answered.then(|| {
            let after = (exponential(rng, CHANNELS[usize::from(channel)].3).max(20.0) * SECOND as f64) as i64;
            (received + after).min(now)
        });
        GenLead { id: Uid::new(rng, received), received, responded, branch, owner, channel, client, deal }
    };
    for (n, &opened) in created.iter().enumerate() {
        let deal = n as u32;
        let flow_index = u8::from(rng.random_bool(AGENCY_SHARE));
        let flow = FLOWS[usize::from(flow_index)];
        let open_stages = flow.stages.len() - 1;
        let branch = weighted(&mut rng, &branch_weights);
        let owner = rng.random_range(0..OWNERS_PER_BRANCH as u8);
        let skill = skill[usize::from(branch) * OWNERS_PER_BRANCH + usize::from(owner)];
        let client = rng.random_range(0..CLIENTS_PER_BRANCH);
        let amount = ((8_000.0 * (1.1 * normal(&mut rng)).exp()).clamp(200.0, 2_000_000.0)).round() as i64 * 100;

        transitions.push(GenTransition { at: opened, deal, from: -1, to: 0 });
        let (mut stage, mut at, mut went_back, mut passed_gate) = (0usize, opened, false, false);
        let (status, reason, closed) = loop {
            let next =
                at + (exponential(&mut rng, flow.mean_days[stage]) * DAY as f64).max(600.0 * SECOND as f64) as i64;
            // Some deals stall: nobody moves them again.
            if next > now || rng.random_bool(0.015) {
                break (DealStatus::Open, None, None);
            }
            let onward = (flow.onward[stage] * skill).min(0.97);
            if rng.random_bool(onward) {
                if stage + 1 == open_stages || (stage == 0 && rng.random_bool(0.015)) {
                    // As WinDeal and LoseDeal write them: the close time, then the
                    // transition (and stage entry) a few microseconds later.
                    at = next + rng.random_range(1..50);
                    transitions.push(GenTransition { at, deal, from: stage as i8, to: open_stages as i8 });
                    stage = open_stages;
                    break (DealStatus::Won, None, Some(next));
                }
                // A few pass the gate straight from the first stage.
                let to = if stage == 0 && open_stages > 2 && rng.random_bool(0.02) { 2 } else { stage + 1 };
                transitions.push(GenTransition { at: next, deal, from: stage as i8, to: to as i8 });
                stage = to;
                passed_gate |= stage >= flow.gate;
            } else if stage > 0 && !went_back && rng.random_bool(0.05) {
                // The client reopened a question: back one stage, once.
                transitions.push(GenTransition { at: next, deal, from: stage as i8, to: stage as i8 - 1 });
                stage -= 1;
                went_back = true;
            } else {
                at = next + rng.random_range(1..50);
                transitions.push(GenTransition { at, deal, from: stage as i8, to: -1 });
                let reason = weighted(&mut rng, flow.losses[stage]) as u8;
                break (DealStatus::Lost, Some(reason), Some(next));
            }
            at = next;
        };
        // Past the gate all four facts are confirmed; before it, some are.
        let facts = [0u8; 4].map(|_| passed_gate || rng.random_bool(0.5));
        let expected_close = match status {
            DealStatus::Open => today + Days::new(rng.random_range(0..150)),
            _ => date(opened) + Days::new(rng.random_range(14..90)),
        };
        let lead = rng.random_bool(FROM_LEAD).then(|| {
            let received = opened - rng.random_range(600 * SECOND..3 * DAY);
            let lead = new_lead(&mut rng, received, branch, owner, client, Some(deal));
            let id = lead.id;
            leads.push(lead);
            id
        });
        deals.push(GenDeal {
            id: Uid::new(&mut rng, opened),
            created: opened,
            branch,
            owner,
            client,
            flow: flow_index,
            stage: stage as u8,
            status,
            amount,
            expected_close,
            facts,
            reason,
            entered: at,
            closed,
            lead,
        });
    }
    for _ in 0..(count as f64 * UNCONVERTED_LEADS) as usize {
        let received = now - rng.random_range(600 * SECOND..365 * DAY);
        let branch = weighted(&mut rng, &branch_weights);
        let owner = rng.random_range(0..OWNERS_PER_BRANCH as u8);
        let client = rng.random_range(0..CLIENTS_PER_BRANCH);
        leads.push(new_lead(&mut rng, received, branch, owner, client, None));
    }
    // Rows go in as the service would have written them: in time order, so are the transition ids.
    leads.sort_by_key(|l| (l.received, l.id.ms, l.id.bits));
    transitions.sort_by_key(|t| (t.at, t.deal));
    History { deals, transitions, leads }
}

fn ts(micros: i64) -> impl fmt::Display {
    DateTime::from_timestamp_micros(micros).expect("time").naive_utc()
}

fn owner_id(branch: u8, owner: u8) -> String {
    format!("E-{}-{:02}", BRANCHES[usize::from(branch)].0, owner + 1)
}

fn client_id(branch: u8, client: u32) -> String {
    format!("C-{}-{client:06}", BRANCHES[usize::from(branch)].0)
}

fn write_lead(csv: &mut Vec<u8>, l: &GenLead, deals: &[GenDeal]) -> std::io::Result<()> {
    let (channel, sla, priority, _, _) = CHANNELS[usize::from(l.channel)];
    write!(
        csv,
        "{},{},bench,{},{},{},{priority},{sla},{}+00,",
        l.id,
        l.id,
        BRANCHES[usize::from(l.branch)].0,
        owner_id(l.branch, l.owner),
        channel as i16,
        ts(l.received)
    )?;
    if let Some(at) = l.responded {
        write!(csv, "{}+00", ts(at))?;
    }
    write!(csv, ",{},Contact {},", client_id(l.branch, l.client), l.id.bits % 100_000)?;
    if let Some(deal) = l.deal {
        write!(csv, "{}", deals[deal as usize].id)?;
    }
    writeln!(csv)
}

fn write_deal(csv: &mut Vec<u8>, d: &GenDeal) -> std::io::Result<()> {
    let flow = FLOWS[usize::from(d.flow)];
    let (code, probability) = flow.stages[usize::from(d.stage)];
    let [person, plan, budget, timeline] = d.facts;
    write!(
        csv,
        "{},{},bench,{},{},{},{},1,{code},{},{probability},{},{},PLN,{},{person},{plan},{budget},{timeline},",
        d.id,
        d.id,
        client_id(d.branch, d.client),
        BRANCHES[usize::from(d.branch)].0,
        owner_id(d.branch, d.owner),
        flow.id,
        d.stage,
        d.status as i16,
        d.amount,
        d.expected_close
    )?;
    if let Some(lead) = d.lead {
        write!(csv, "{lead}")?;
    }
    write!(csv, ",{},{}+00,{}+00,", d.reason.map_or("", |r| REASONS[usize::from(r)]), ts(d.created), ts(d.entered))?;
    if let Some(at) = d.closed {
        write!(csv, "{}+00", ts(at))?;
    }
    writeln!(csv)
}

fn write_transition(csv: &mut Vec<u8>, id: usize, t: &GenTransition, deals: &[GenDeal]) -> std::io::Result<()> {
    let d = &deals[t.deal as usize];
    let stages = FLOWS[usize::from(d.flow)].stages;
    let code = |i: i8| usize::try_from(i).map_or("", |i| stages[i].0);
    let to = if t.to < 0 { "lost" } else { code(t.to) };
    writeln!(
        csv,
        "{},{},\"{}\",{to},{},{},{}+00",
        id + 1,
        d.id,
        code(t.from),
        t.to,
        owner_id(d.branch, d.owner),
        ts(t.at)
    )
}

/// COPYs the rows `write` renders as CSV, a few MiB at a time.
async fn copy<T>(
    conn: &mut PgConnection,
    statement: &str,
    rows: impl Iterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T) -> std::io::Result<()>,
) -> anyhow::Result<u64> {
    const CHUNK: usize = 4 << 20;
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut csv = Vec::with_capacity(CHUNK + 4096);
    for row in rows {
        write(&mut csv, row)?;
        if csv.len() >= CHUNK {
            copy.send(csv.as_slice()).await?;
            csv.clear();
        }
    }
    if !csv.is_empty() {
        copy.send(csv.as_slice()).await?;
    }
    Ok(copy.finish().await?)
}

/// Loads the history: foreign keys hold by construction, so their triggers
/// are off for the load (and checked once afterwards); indexes are maintained.
async fn load(conn: &mut PgConnection, history: &History) -> anyhow::Result<()> {
    let History { deals, transitions, leads } = history;
    sqlx::raw_sql("SET session_replication_role = replica").execute(&mut *conn).await?;
    let copied = copy(
        conn,
        "COPY leads (id, request_id, created_by, branch_id, owner_employee_id, channel, priority, sla_seconds,
                     received_at, first_response_at, client_id, contact_name, deal_id) FROM STDIN (FORMAT csv)",
        leads.iter(),
        |csv, l| write_lead(csv, l, deals),
    )
    .await?;
    anyhow::ensure!(copied as usize == leads.len(), "copied {copied} leads");
    let copied = copy(
        conn,
        "COPY deals (id, request_id, created_by, client_id, branch_id, owner_employee_id, pipeline_id,
                     pipeline_version, stage, stage_index, probability, status, amount_minor, currency,
                     expected_close, right_person, right_plan, right_budget, right_timeline, lead_id, loss_reason,
                     created_at, stage_entered_at, closed_at) FROM STDIN (FORMAT csv)",
        deals.iter(),
        write_deal,
    )
    .await?;
    anyhow::ensure!(copied as usize == deals.len(), "copied {copied} deals");
    let copied = copy(
        conn,
        "COPY deal_transitions (id, deal_id, from_stage, to_stage, to_stage_index, by_subject, at)
         FROM STDIN (FORMAT csv)",
        transitions.iter().enumerate(),
        |csv, (id, t)| write_transition(csv, id, t, deals),
    )
    .await?;
    anyhow::ensure!(copied as usize == transitions.len(), "copied {copied} transitions");
    sqlx::raw_sql("SET session_replication_role = DEFAULT").execute(&mut *conn).await?;
    sqlx::query("SELECT setval('deal_transitions_id_seq', $1)")
        .bind(transitions.len() as i64)
        .execute(&mut *conn)
        .await?;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM deal_transitions t WHERE NOT EXISTS (SELECT 1 FROM deals d WHERE d.id = t.deal_id))
              + (SELECT count(*) FROM deals d WHERE d.lead_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = d.lead_id AND l.deal_id = d.id))",
    )
    .fetch_one(&mut *conn)
    .await?;
    anyhow::ensure!(orphans == 0, "{orphans} rows break a foreign key");
    for table in ["leads", "deals", "deal_transitions"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}"))).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The service's forecast statement without its filter predicates (admin, whole network).
const FORECAST_SQL: &str = "
SELECT date_trunc('month', expected_close)::date AS month, branch_id, owner_employee_id AS employee_id,
       count(*) AS open_deals, sum(amount_minor)::bigint AS pipeline_amount,
       sum(round(amount_minor::numeric * probability / 100))::bigint AS weighted_forecast
FROM deals
WHERE status = 1
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

/// The funnel of the default pipeline's deals created in [$1, $2], whole
/// network, in one statement: one row per open stage.
///
/// As the service defines it: deals with at least one transition count; a
/// deal counts as far as the furthest open stage it ever entered (every deal
/// counts at the first); the time in a stage runs from entering it to the
/// next stage entered, else to the close (a loss enters no stage), in whole
/// seconds, never negative, and open deals count none for their current
/// stage; conversion is reached(next) / reached, won / reached for the last
/// open stage; a lost deal is lost at the stage it was in; the bottleneck is
/// the first stage of lowest conversion among those reached; leads count by
/// the day they arrived.
///
/// One pass over the deals joined with their transitions: a window orders
/// each deal's stage entries (partitioned apart from its loss) for the next
/// entry and finds the furthest stage and the deal's first row; grouping sets
/// then sum stays by stage, deals by furthest stage, losses by stage and
/// reason, and the totals (grouping ids 7, 11, 12, 15 below).
const FUNNEL_SQL: &str = r#"
WITH p AS MATERIALIZED (
    SELECT id, stages, jsonb_array_length(stages) - 1 AS open_stages
    FROM pipelines WHERE id = (SELECT id FROM pipelines WHERE is_default LIMIT 1)
    ORDER BY version DESC LIMIT 1
),
steps AS (
    SELECT t.to_stage_index AS stage, t.at, d.status, greatest(d.stage_index, 0) AS at_stage, d.loss_reason,
           COALESCE(lead(t.at) OVER (PARTITION BY t.deal_id, t.to_stage_index >= 0 ORDER BY t.id), d.closed_at)
               AS left_at,
           max(t.to_stage_index) FILTER (WHERE t.to_stage_index >= 0 AND t.to_stage_index < (SELECT open_stages FROM p))
               OVER (PARTITION BY t.deal_id) AS furthest,
           row_number() OVER (PARTITION BY t.deal_id) = 1 AS first
    FROM deals d JOIN deal_transitions t ON t.deal_id = d.id
    WHERE d.pipeline_id = (SELECT id FROM p) AND d.created_at::date BETWEEN $1 AND $2
),
sums AS MATERIALIZED (
    SELECT GROUPING(stay_stage, reach_stage, lost_stage, loss_reason) AS grouping,
           COALESCE(stay_stage, reach_stage, lost_stage) AS stage, loss_reason,
           count(*) AS n, sum(stay_seconds) AS seconds,
           count(*) FILTER (WHERE first AND status = 2) AS won,
           count(*) FILTER (WHERE first AND status = 3 AND at_stage < (SELECT open_stages FROM p)) AS lost
    FROM (
        SELECT CASE WHEN stage >= 0 AND stage < (SELECT open_stages FROM p) AND left_at IS NOT NULL THEN stage END
                   AS stay_stage,
               CASE WHEN stage >= 0 AND stage < (SELECT open_stages FROM p) AND left_at IS NOT NULL
                    THEN greatest(trunc(extract(epoch FROM left_at - at)), 0) END AS stay_seconds,
               CASE WHEN first THEN COALESCE(furthest, 0) END AS reach_stage,
               CASE WHEN first AND status = 3 THEN at_stage END AS lost_stage,
               loss_reason, first, status, at_stage
        FROM steps
    ) keyed
    GROUP BY GROUPING SETS ((stay_stage), (reach_stage), (lost_stage, loss_reason), ())
),
reach AS MATERIALIZED (
    SELECT s.i, p.stages -> s.i ->> 'code' AS code, (p.stages -> s.i ->> 'probability')::int AS probability,
           (SELECT COALESCE(sum(n), 0) FROM sums WHERE grouping = 11 AND stage >= s.i)::bigint AS reached
    FROM p CROSS JOIN generate_series(0, p.open_stages - 1) AS s(i)
),
conv AS MATERIALIZED (
    SELECT r.*,
           CASE WHEN r.reached = 0 THEN 0::float8
                ELSE COALESCE(lead(r.reached) OVER (ORDER BY r.i), (SELECT won FROM sums WHERE grouping = 15))::float8
                     / r.reached::float8 END AS conversion
    FROM reach r
)
SELECT p.id AS pipeline_id, c.code, c.probability, c.reached, c.conversion,
       COALESCE((st.seconds / 86400 / st.n)::float8, 0) AS average_days,
       (SELECT COALESCE(sum(n), 0) FROM sums WHERE grouping = 12 AND stage = c.i)::bigint AS lost_here,
       o.won, o.lost,
       COALESCE((SELECT b.code FROM conv b WHERE b.reached > 0 ORDER BY b.conversion, b.i LIMIT 1), '') AS bottleneck,
       l.leads, l.converted,
       ARRAY(SELECT loss_reason FROM sums WHERE grouping = 12 AND stage = c.i AND loss_reason IS NOT NULL
             ORDER BY loss_reason COLLATE "C") AS loss_reasons,
       ARRAY(SELECT n FROM sums WHERE grouping = 12 AND stage = c.i AND loss_reason IS NOT NULL
             ORDER BY loss_reason COLLATE "C") AS loss_deals
FROM conv c CROSS JOIN p
CROSS JOIN (SELECT won, lost FROM sums WHERE grouping = 15) o
CROSS JOIN (SELECT count(*) AS leads, count(deal_id) AS converted FROM leads
            WHERE received_at::date BETWEEN $1 AND $2) l
LEFT JOIN sums st ON st.grouping = 7 AND st.stage = c.i
ORDER BY c.i"#;

type ForecastKey = (NaiveDate, String, String, i64, i64, i64);

async fn sql_forecast(conn: &mut PgConnection) -> anyhow::Result<Vec<ForecastKey>> {
    let rows = sqlx::query(FORECAST_SQL).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("month")?,
                r.try_get("branch_id")?,
                r.try_get("employee_id")?,
                r.try_get("open_deals")?,
                r.try_get("pipeline_amount")?,
                r.try_get("weighted_forecast")?,
            ))
        })
        .collect()
}

fn api_forecast_lines(reply: &GetForecastResponse) -> Vec<ForecastKey> {
    let minor = |m: &Option<branchscore_proto::common::v1::Money>| m.as_ref().map_or(0, |m| m.minor_units);
    reply
        .lines
        .iter()
        .map(|l| {
            let month = l.month.as_ref().and_then(|d| d.to_naive()).unwrap_or_default();
            let (pipeline, weighted) = (minor(&l.pipeline_amount), minor(&l.weighted_forecast));
            (month, l.branch_id.clone(), l.employee_id.clone(), l.open_deals, pipeline, weighted)
        })
        .collect()
}

/// The reference funnel, shaped as the API's reply.
async fn sql_funnel(conn: &mut PgConnection, from: NaiveDate, to: NaiveDate) -> anyhow::Result<GetFunnelResponse> {
    let rows = sqlx::query(FUNNEL_SQL).bind(from).bind(to).fetch_all(&mut *conn).await?;
    let mut reply = GetFunnelResponse::default();
    for row in &rows {
        let stage: String = row.try_get("code")?;
        reply.pipeline_id = row.try_get("pipeline_id")?;
        reply.won = row.try_get("won")?;
        reply.lost = row.try_get("lost")?;
        reply.bottleneck_stage = row.try_get("bottleneck")?;
        reply.leads = row.try_get("leads")?;
        reply.converted_leads = row.try_get("converted")?;
        let reasons: Vec<String> = row.try_get("loss_reasons")?;
        let deals: Vec<i64> = row.try_get("loss_deals")?;
        reply.losses.extend(reasons.into_iter().zip(deals).map(|(reason, deals)| LossCount {
            stage: stage.clone(),
            reason,
            deals,
        }));
        reply.stages.push(FunnelStage {
            stage,
            probability_percent: row.try_get("probability")?,
            reached: row.try_get("reached")?,
            conversion_to_next: row.try_get("conversion")?,
            average_days_in_stage: row.try_get("average_days")?,
            lost_here: row.try_get("lost_here")?,
        });
    }
    Ok(reply)
}

/// Same numbers: counts and conversions exactly (both divide the same
/// integers), mean days to 1e-9 relative (sums of the same stays in another order).
fn same_funnel(a: &GetFunnelResponse, b: &GetFunnelResponse) -> anyhow::Result<()> {
    let key = |r: &GetFunnelResponse| {
        (
            r.pipeline_id.clone(),
            r.won,
            r.lost,
            r.leads,
            r.converted_leads,
            r.bottleneck_stage.clone(),
            r.losses.clone(),
            r.stages
                .iter()
                .map(|s| {
                    (s.stage.clone(), s.probability_percent, s.reached, s.lost_here, s.conversion_to_next.to_bits())
                })
                .collect::<Vec<_>>(),
        )
    };
    anyhow::ensure!(key(a) == key(b), "the funnels differ:\n{a:#?}\n{b:#?}");
    for (x, y) in a.stages.iter().zip(&b.stages) {
        let (x, y) = (x.average_days_in_stage, y.average_days_in_stage);
        anyhow::ensure!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "mean days in stage differ: {x} and {y}");
    }
    Ok(())
}

/// First run, then median and p95 (nearest rank) of the others.
#[derive(Debug, Clone, Copy)]
struct Timing {
    first: Duration,
    median: Duration,
    p95: Duration,
}

fn timing(samples: &[Duration]) -> Timing {
    let mut rest = if samples.len() > 1 { samples[1..].to_vec() } else { samples.to_vec() };
    rest.sort_unstable();
    let n = rest.len();
    let median = if n % 2 == 1 { rest[n / 2] } else { (rest[n / 2 - 1] + rest[n / 2]) / 2 };
    let p95 = rest[((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1];
    Timing { first: samples[0], median, p95 }
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    anyhow::ensure!(options.deals > 0 && options.runs > 0, "--deals and --runs must be positive");
    let mut env = TestEnv::new();
    // Neither path touches Redis; without it the outbox relay does not poll either.
    env.platform.redis.url = String::new();
    // Nor does either ask the clients service (only opening a deal does): a port nobody listens on.
    env.platform.peers.clients = "http://127.0.0.1:9".into();
    let config = branchscore_pipeline::Config {
        // A slow funnel is measured rather than cut at the default 30 s (reported if it happens).
        server: branchscore_platform::config::ServerConfig {
            request_timeout_ms: Duration::from_secs(600),
            ..env.server()
        },
        database: env.database.clone(),
        ..branchscore_pipeline::Config::default()
    };
    let running = branchscore_pipeline::run(&config, &env.platform, env.shutdown.clone()).await?;
    branchscore_testkit::wait_serving(running.addr).await;
    let admin = env.token(Role::Admin, &[]);
    let mut api: PipelineServiceClient<Channel> =
        PipelineServiceClient::new(branchscore_testkit::channel(running.addr).await);
    let pipelines = api.list_pipelines(authorized(&admin, ListPipelinesRequest {})).await?.into_inner().pipelines;
    anyhow::ensure!(
        pipelines.first().is_some_and(|p| p.id == SCHIFFMAN.id && p.is_default),
        "the presets are not stored: {pipelines:?}"
    );

    let now = Utc::now().timestamp_micros();
    let started = Instant::now();
    let history = generate(options.deals, options.seed, now);
    eprintln!(
        "generated {} deals, {} transitions, {} leads in {:.1} s; loading with COPY ...",
        history.deals.len(),
        history.transitions.len(),
        history.leads.len(),
        started.elapsed().as_secs_f64()
    );
    // The reference's statements are timed here, not logged as slow.
    let mut conn = PgConnectOptions::from_str(&env.database.url)?.disable_statement_logging().connect().await?;
    let started = Instant::now();
    load(&mut conn, &history).await?;
    let loaded = started.elapsed();
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))").fetch_one(&mut conn).await?;
    let (deals, transitions, leads) = (history.deals.len(), history.transitions.len(), history.leads.len());
    let open = history.deals.iter().filter(|d| d.status == DealStatus::Open).count();
    drop(history);
    eprintln!("loaded and vacuumed in {:.1} s, database {size}", loaded.as_secs_f64());

    let to = env.platform.company.today()?;
    let from = to - Days::new(365);
    let funnel_request = || {
        authorized(
            &admin,
            GetFunnelRequest { from: Some(Date::from(from)), to: Some(Date::from(to)), ..Default::default() },
        )
    };
    let forecast_request = || authorized(&admin, GetForecastRequest::default());

    // Alternating, each path first in every other run; the first run of each is
    // its first call ever (statements not prepared yet). Every answer must equal
    // the first one, whichever path gave it: the API and the SQL agree.
    eprintln!("timing {} runs of each query on each path ...", options.runs);
    let load_before = load_average();
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let mut forecast: Option<Vec<ForecastKey>> = None;
    let mut expect_forecast = |lines: Vec<ForecastKey>, path: &str| -> anyhow::Result<()> {
        match &forecast {
            Some(first) => anyhow::ensure!(lines == *first, "the forecast of the {path} differs"),
            None => forecast = Some(lines),
        }
        Ok(())
    };
    for run in 0..options.runs {
        for step in 0..2 {
            if (run + step) % 2 == 0 {
                let t = Instant::now();
                let reply = api.get_forecast(forecast_request()).await?.into_inner();
                samples[0].push(t.elapsed());
                let total = reply.total_weighted_forecast.as_ref().map_or(0, |m| m.minor_units);
                let lines = api_forecast_lines(&reply);
                anyhow::ensure!(
                    total == lines.iter().map(|l| l.5).sum::<i64>(),
                    "the API's total is not its lines' sum"
                );
                expect_forecast(lines, "API")?;
            } else {
                let t = Instant::now();
                let rows = sql_forecast(&mut conn).await?;
                samples[1].push(t.elapsed());
                expect_forecast(rows, "SQL")?;
            }
        }
    }
    let forecast = forecast.unwrap_or_default();
    let mut funnel: Option<GetFunnelResponse> = None;
    let mut api_funnel = GetFunnelResponse::default();
    for run in 0..options.runs {
        for step in 0..2 {
            let reply = if (run + step) % 2 == 0 {
                let t = Instant::now();
                let reply = api.get_funnel(funnel_request()).await?.into_inner();
                samples[2].push(t.elapsed());
                api_funnel = reply.clone();
                reply
            } else {
                let t = Instant::now();
                let reply = sql_funnel(&mut conn, from, to).await?;
                samples[3].push(t.elapsed());
                reply
            };
            match &funnel {
                Some(first) => same_funnel(&reply, first)?,
                None => funnel = Some(reply),
            }
        }
    }
    let load_after = load_average();
    eprintln!("the API and the SQL agree on every run");
    let [forecast_api, forecast_sql, funnel_api, funnel_sql] = samples.each_ref().map(|s| timing(s));

    let (version, settings) = postgres_settings(&mut conn).await?;
    println!("GetForecast and GetFunnel beside the same SQL run directly, {deals} deals");
    println!("machine: {}; PostgreSQL {version} ({settings})", machine());
    println!(
        "data: {deals} deals ({open} open), {transitions} transitions, {leads} leads, database {size}, \
         COPY + VACUUM (ANALYZE) {:.1} s; seed {}",
        loaded.as_secs_f64(),
        options.seed
    );
    println!("load average: {load_before} before the timed runs, {load_after} after");
    println!();
    println!(
        "Funnel of {} (deals created {from} to {to}): won {}, lost {}, bottleneck {}, leads {} ({} converted)",
        api_funnel.pipeline_id,
        api_funnel.won,
        api_funnel.lost,
        api_funnel.bottleneck_stage,
        api_funnel.leads,
        api_funnel.converted_leads
    );
    for s in &api_funnel.stages {
        println!(
            "  {:<11} {:>3}%  {:>8} reached  {:>5.1}% onward  {:>5.1} days  {:>7} lost",
            s.stage,
            s.probability_percent,
            s.reached,
            s.conversion_to_next * 100.0,
            s.average_days_in_stage,
            s.lost_here
        );
    }
    println!(
        "Forecast: {} lines, {} open deals, weighted {} PLN",
        forecast.len(),
        forecast.iter().map(|l| l.3).sum::<i64>(),
        forecast.iter().map(|l| l.5).sum::<i64>() / 100
    );
    println!();
    println!("| query | path | first run ms | median ms | p95 ms | runs | API / SQL (median) |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let rows = [
        ("GetForecast", "gRPC API (admin token, whole network)", forecast_api, Some(forecast_sql)),
        ("GetForecast", "SQL: the same GROUP BY, directly", forecast_sql, None),
        ("GetFunnel", "gRPC API (admin token, whole network)", funnel_api, Some(funnel_sql)),
        ("GetFunnel", "SQL: one statement, directly", funnel_sql, None),
    ];
    for (query, path, t, reference) in rows {
        let ratio = reference.map_or(String::new(), |r| {
            format!("{:.2}x", t.median.as_secs_f64() / r.median.as_secs_f64().max(f64::EPSILON))
        });
        println!(
            "| {query} | {path} | {} | {} | {} | {} | {ratio} |",
            ms(t.first),
            ms(t.median),
            ms(t.p95),
            options.runs.saturating_sub(1).max(1)
        );
    }
    let slowest = samples.iter().flatten().max().copied().unwrap_or_default();
    if slowest > Duration::from_secs(30) {
        println!("note: a call took {:.1} s, longer than the default request timeout (30 s)", slowest.as_secs_f64());
    }

    conn.close().await?;
    env.shutdown.cancel();
    let _ = running.task.await;
    Ok(())
}
