//! The deterministic synthetic branch network of the large benchmarks
//! (`bench_recompute`, `bench_report`), generated straight into a clients
//! service database with `COPY ... FROM STDIN`.
//!
//! ChaCha8 with one RNG stream per client: branches with a manager, a team
//! lead and six sellers each, 8 product lines of 6 products, clients with
//! nine buying behaviours (key accounts and contract clients buying every
//! month, regulars, seasonal buyers, occasional ones, churned, returning
//! after a pause, new in the last months, prospects who never bought; some
//! registered after the as-of date) and about `--lines-per-client` sales
//! lines each over `--months` months up to the as-of date, with seasonality
//! and about 2% of lines returned within a month. The same options give the
//! same rows, whichever benchmark generates them.
use branchscore_proto::common::v1::{ClientKind, EmployeeRole, SizeBand};
use chrono::{Datelike, Days, Months, NaiveDate};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{Connection, PgConnection};
use std::io::Write;
use std::sync::Arc;

/// The network's size and time span (the command-line options both benchmarks share).
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkOptions {
    /// Clients to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub clients: usize,
    /// Average sales lines per client (returns included; prospects have none).
    #[arg(long, default_value_t = 20)]
    pub lines_per_client: usize,
    /// Months of history up to and including the as-of month.
    #[arg(long, default_value_t = 36)]
    pub months: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The as-of date: the last business date generated (the recompute's as-of date, the end of the reports).
    #[arg(long, default_value = "2026-11-23")]
    pub as_of: NaiveDate,
}

/// Demand by calendar month (January first): spring and autumn peaks, a summer lull.
const SEASONALITY: [f64; 12] = [0.80, 0.85, 1.10, 1.15, 1.05, 0.90, 0.75, 0.80, 1.10, 1.20, 1.15, 0.95];
const SALES_PER_BRANCH: usize = 6;
const PRODUCT_LINES: usize = 8;
const PRODUCTS_PER_LINE: usize = 6;
const RETURN_RATE: f64 = 0.02;
const MAX_LINES_PER_DOCUMENT: usize = 25;
const INDUSTRIES: [&str; 8] =
    ["retail", "hospitality", "construction", "education", "healthcare", "logistics", "it", "manufacturing"];
/// Bytes of CSV per COPY message.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Large, steady monthly orders (X, A).
    KeyAccount,
    /// One order a month on contract, seasons damped (X or Y).
    Contract,
    /// Buys most months, seasonal.
    Regular,
    /// Buys in the high seasons only.
    Seasonal,
    /// A few purchases a year; a few return everything.
    Occasional,
    /// Regular until it stops before the current period (lost).
    Churned,
    /// A pause of several months; most come back in the current period after none in the previous (restored).
    Returning,
    /// First purchase in the last three months (new), some a little earlier.
    New,
    /// Registered, never bought (potential); some registered after the as-of date (not scored).
    Prospect,
}

/// (behaviour, share per mille, relative number of lines, order value multiplier).
const MIX: [(Behaviour, u32, f64, f64); 9] = [
    (Behaviour::KeyAccount, 30, 5.0, 8.0),
    (Behaviour::Contract, 100, 1.5, 2.0),
    (Behaviour::Regular, 250, 1.2, 1.0),
    (Behaviour::Seasonal, 120, 0.8, 1.5),
    (Behaviour::Occasional, 140, 0.4, 0.8),
    (Behaviour::Churned, 110, 0.9, 1.0),
    (Behaviour::Returning, 70, 1.0, 1.0),
    (Behaviour::New, 110, 0.4, 1.0),
    (Behaviour::Prospect, 70, 0.0, 0.0),
];

/// The network's shape; every client is generated from its own RNG stream, so clients and
/// their lines can be generated in separate passes and always come out the same.
#[derive(Debug)]
pub struct Generator {
    seed: u64,
    clients: usize,
    months: u32,
    as_of: NaiveDate,
    first_month: NaiveDate,
    branches: usize,
    /// Lines per unit of relative lines.
    line_scale: f64,
}

/// One client's drawn characteristics.
#[derive(Debug)]
struct Profile {
    behaviour: Behaviour,
    branch: usize,
    seller: Option<usize>,
    known_since: NaiveDate,
    /// First month offset with activity.
    start: u32,
    chance: f64,
    visits: u32,
    base: f64,
    damping: f64,
    noise: f64,
    churn_at: u32,
    /// Months without purchases (inclusive offsets).
    pause: Option<(u32, u32)>,
    /// A purchase is forced in this month offset (restored and new clients).
    forced: Option<u32>,
    budget: usize,
    full_refund: bool,
    favourites: Vec<usize>,
}

impl Generator {
    pub fn new(options: &NetworkOptions) -> Self {
        let mean_weight: f64 = MIX.iter().map(|(_, share, weight, _)| f64::from(*share) * weight).sum::<f64>() / 1000.0;
        let first_month = first_of_month(options.as_of) - Months::new(options.months - 1);
        Generator {
            seed: options.seed,
            clients: options.clients,
            months: options.months,
            as_of: options.as_of,
            first_month,
            branches: (options.clients / 20_000).clamp(4, 99),
            line_scale: options.lines_per_client as f64 / mean_weight / (1.0 + RETURN_RATE),
        }
    }

    /// Clients generated.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// Branches: one per 20 000 clients, at least 4 and at most 99 (`BR01`, `BR02`, ... by [`branch_id`]).
    pub fn branches(&self) -> usize {
        self.branches
    }

    fn rng(&self, n: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(n as u64);
        rng
    }

    fn profile(&self, n: usize, rng: &mut ChaCha8Rng) -> Profile {
        let m = self.months;
        let mut roll = rng.random_range(0..1000);
        let (behaviour, weight, multiplier) = MIX
            .iter()
            .find(|(_, share, _, _)| {
                let hit = roll < *share;
                roll = roll.saturating_sub(*share);
                hit
            })
            .map_or((Behaviour::Regular, 1.2, 1.0), |(b, _, w, x)| (*b, *w, *x));
        let branch = n % self.branches;
        let seller = rng.random_bool(0.97).then(|| rng.random_range(1..=SALES_PER_BRANCH));
        let mut p = Profile {
            behaviour,
            branch,
            seller,
            known_since: self.as_of,
            start: 0,
            chance: 0.0,
            visits: 1,
            base: 10f64.powf(rng.random_range(3.3..5.0)) * multiplier,
            damping: 1.0,
            noise: 0.4,
            churn_at: m,
            pause: None,
            forced: None,
            budget: 0,
            full_refund: false,
            favourites: Vec::new(),
        };
        match behaviour {
            Behaviour::KeyAccount => {
                (p.start, p.chance, p.visits, p.damping, p.noise) = (rng.random_range(0..=m / 2), 1.0, 1, 0.2, 0.04);
                if rng.random_bool(0.4) {
                    p.visits = 2;
                }
            }
            Behaviour::Contract => {
                (p.start, p.chance, p.damping, p.noise) = (rng.random_range(0..=m - 8), 0.97, 0.3, 0.08);
            }
            Behaviour::Regular => (p.start, p.chance) = (rng.random_range(0..=m - 5), rng.random_range(0.55..0.9)),
            Behaviour::Seasonal => (p.start, p.noise) = (rng.random_range(0..=m - 13), 0.3),
            Behaviour::Occasional => {
                (p.start, p.chance, p.noise) = (rng.random_range(0..=m - 6), rng.random_range(0.08..0.2), 0.5);
                p.full_refund = rng.random_bool(0.03);
            }
            Behaviour::Churned => {
                p.start = rng.random_range(0..=m / 2);
                p.churn_at = rng.random_range((p.start + 4).min(m - 4)..=m - 4);
                p.chance = rng.random_range(0.6..0.9);
            }
            Behaviour::Returning => {
                (p.start, p.chance) = (rng.random_range(0..=m / 3), 0.8);
                if rng.random_bool(0.6) {
                    // No purchase from the month before the previous period to the end of it,
                    // one at least in the current period: restored.
                    p.pause = Some((m - 7 - rng.random_range(0..=5), m - 4));
                    p.forced = Some(m - 2);
                } else {
                    let from = rng.random_range(m / 3 + 1..=(m - 14).max(m / 3 + 1));
                    p.pause = Some((from, from + rng.random_range(3..=7)));
                }
            }
            Behaviour::New => {
                p.chance = 0.85;
                p.start = if rng.random_bool(0.7) {
                    rng.random_range(m - 3..=m - 1)
                } else {
                    rng.random_range(m - 5..=m - 4)
                };
                p.forced = Some(p.start);
            }
            Behaviour::Prospect => {}
        }
        let start_month = self.first_month + Months::new(p.start);
        p.known_since = match behaviour {
            Behaviour::Prospect if rng.random_bool(0.12) => self.as_of + Days::new(rng.random_range(1..=60)),
            Behaviour::Prospect => self.as_of - Days::new(rng.random_range(0..=3 * 365)),
            Behaviour::Regular if rng.random_bool(0.02) => self.as_of + Days::new(rng.random_range(1..=30)),
            _ => start_month - Days::new(rng.random_range(0..=400)),
        };
        p.budget = (self.line_scale * weight * rng.random_range(0.5..1.5)).round().max(1.0) as usize;
        let favourites =
            if behaviour == Behaviour::KeyAccount { rng.random_range(4..=10) } else { rng.random_range(1..=5) };
        let home = rng.random_range(0..PRODUCT_LINES);
        p.favourites = (0..favourites)
            .map(|_| {
                let line = if rng.random_bool(0.6) { home } else { rng.random_range(0..PRODUCT_LINES) };
                line * PRODUCTS_PER_LINE + rng.random_range(0..PRODUCTS_PER_LINE)
            })
            .collect();
        p
    }

    /// The client's row of `clients` (CSV); 1 row.
    fn client_csv(&self, n: usize, out: &mut Vec<u8>) -> u64 {
        let mut rng = self.rng(n);
        let p = self.profile(n, &mut rng);
        let business = p.behaviour == Behaviour::KeyAccount || rng.random_bool(0.7);
        let (kind, industry, size, year) = if business {
            let size = match (p.behaviour, rng.random_range(0..10)) {
                (Behaviour::KeyAccount, _) => SizeBand::Large,
                (_, 0..=4) => SizeBand::Micro,
                (_, 5..=7) => SizeBand::Small,
                (_, 8) => SizeBand::Medium,
                _ => SizeBand::Large,
            };
            (ClientKind::B2b, INDUSTRIES[rng.random_range(0..INDUSTRIES.len())], size, rng.random_range(1990..=2024))
        } else {
            (ClientKind::B2c, "", SizeBand::Unspecified, 0)
        };
        let owner = p.seller.map(|s| format!("{}-S{s}", branch_id(p.branch))).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},Client {},{},\"{industry}\",{},region-{},{year},{},{owner},{}",
            client_id(n),
            n + 1,
            kind as i16,
            size as i16,
            p.branch,
            branch_id(p.branch),
            p.known_since
        );
        1
    }

    /// The client's sales and returns (CSV rows of `transaction_lines`); returns the rows written.
    fn lines_csv(&self, n: usize, out: &mut Vec<u8>) -> u64 {
        let mut rng = self.rng(n);
        let p = self.profile(n, &mut rng);
        if p.behaviour == Behaviour::Prospect {
            return 0;
        }
        let mut documents = self.documents(&p, &mut rng);
        if documents.len() > p.budget {
            let mut keep = rand::seq::index::sample(&mut rng, documents.len(), p.budget).into_vec();
            keep.sort_unstable();
            documents = keep.into_iter().map(|i| documents[i]).collect();
        }
        if documents.is_empty() {
            return 0;
        }
        let (per_document, extra) = (p.budget / documents.len(), p.budget % documents.len());
        let client = client_id(n);
        let branch = branch_id(p.branch);
        let seller = format!("{branch}-S{}", p.seller.unwrap_or(1));
        let mut rows = 0u64;
        let mut line_no = 0u32;
        for (d, &(date, total)) in documents.iter().enumerate() {
            let count = (per_document + usize::from(rng.random_range(0..documents.len()) < extra))
                .clamp(1, MAX_LINES_PER_DOCUMENT);
            let weights: Vec<f64> = (0..count).map(|_| rng.random_range(0.5..1.5)).collect();
            let sum: f64 = weights.iter().sum();
            for w in weights {
                let product = p.favourites[rng.random_range(0..p.favourites.len())];
                let amount = ((total as f64 * w / sum).round() as i64).max(100);
                line_no += 1;
                let _ = writeln!(
                    out,
                    "L{client}-{line_no:05},D{client}-{d:04},{client},{},{amount},PLN,{date},{branch},{seller}",
                    product_id(product)
                );
                rows += 1;
                let refund = p.full_refund || rng.random_bool(RETURN_RATE);
                if refund && date + Days::new(3) <= self.as_of {
                    let back = (date + Days::new(rng.random_range(3..=30))).min(self.as_of);
                    let returned = if p.full_refund {
                        amount
                    } else {
                        ((amount as f64 * rng.random_range(0.2..=1.0)).round() as i64).max(1)
                    };
                    line_no += 1;
                    let _ = writeln!(
                        out,
                        "L{client}-{line_no:05},D{client}-{d:04}R,{client},{},{},PLN,{back},{branch},{seller}",
                        product_id(product),
                        -returned
                    );
                    rows += 1;
                }
            }
        }
        rows
    }

    /// (business date, order value) of each purchase document, oldest first.
    fn documents(&self, p: &Profile, rng: &mut ChaCha8Rng) -> Vec<(NaiveDate, i64)> {
        let mut documents = Vec::new();
        for offset in p.start..self.months {
            let month = self.first_month + Months::new(offset);
            let season = SEASONALITY[month.month0() as usize];
            let chance = match p.behaviour {
                Behaviour::Seasonal if season >= 1.1 => 0.85,
                Behaviour::Seasonal => 0.04,
                _ if offset >= p.churn_at => 0.0,
                _ if p.pause.is_some_and(|(from, to)| (from..=to).contains(&offset)) => 0.0,
                _ => p.chance,
            };
            let forced = p.forced == Some(offset);
            // The as-of month is only partly over.
            let elapsed = if offset + 1 == self.months {
                f64::from(self.as_of.day()) / f64::from(days_in_month(month))
            } else {
                1.0
            };
            if !forced && !rng.random_bool((chance * elapsed).clamp(0.0, 1.0)) {
                continue;
            }
            let visits = if p.behaviour == Behaviour::Regular && rng.random_bool(0.2) { 2 } else { p.visits };
            for _ in 0..visits {
                let date = self.business_day(rng, month);
                let value =
                    p.base * (1.0 + (season - 1.0) * p.damping) * rng.random_range(1.0 - p.noise..1.0 + p.noise);
                documents.push((date, (value.round() as i64).max(100)));
            }
        }
        documents
    }

    /// A weekday of `month` on or before the as-of date (the month's first day if none).
    fn business_day(&self, rng: &mut ChaCha8Rng, month: NaiveDate) -> NaiveDate {
        let last = (month + Months::new(1)).pred_opt().unwrap_or(month).min(self.as_of);
        let span = (last - month).num_days().max(0) as u64;
        let mut date = month + Days::new(rng.random_range(0..=span));
        while date.weekday().number_from_monday() > 5 && date > month {
            date = date.pred_opt().unwrap_or(month);
        }
        date
    }
}

pub fn client_id(n: usize) -> String {
    format!("C{:07}", n + 1)
}

pub fn branch_id(b: usize) -> String {
    format!("BR{:02}", b + 1)
}

pub fn product_id(p: usize) -> String {
    format!("P{}-{}", p / PRODUCTS_PER_LINE + 1, p % PRODUCTS_PER_LINE + 1)
}

pub fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

fn days_in_month(month: NaiveDate) -> u32 {
    ((month + Months::new(1)) - month).num_days() as u32
}

/// What was loaded.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub clients: u64,
    pub lines: u64,
}

/// Generates the network into the (migrated, empty) clients database at `url`: master data, then the
/// clients and their sales lines each streamed into one `COPY` with a progress bar.
pub async fn load(url: &str, generator: &Arc<Generator>) -> anyhow::Result<Loaded> {
    let mut conn = PgConnection::connect(url).await?;
    let (mut branches, mut employees) = (Vec::new(), Vec::new());
    for b in 0..generator.branches {
        let id = branch_id(b);
        writeln!(branches, "{id},Branch {},region-{b},PLN", b + 1)?;
        writeln!(employees, "{id}-M,{id},Manager {id},{},", EmployeeRole::BranchManager as i16)?;
        writeln!(employees, "{id}-L,{id},Team lead {id},{},", EmployeeRole::TeamLead as i16)?;
        for s in 1..=SALES_PER_BRANCH {
            writeln!(employees, "{id}-S{s},{id},Sales {s} {id},{},{id}-L", EmployeeRole::Sales as i16)?;
        }
    }
    let (mut lines, mut products) = (Vec::new(), Vec::new());
    for l in 0..PRODUCT_LINES {
        writeln!(lines, "PL{},Product line {}", l + 1, l + 1)?;
        for k in 0..PRODUCTS_PER_LINE {
            let p = l * PRODUCTS_PER_LINE + k;
            writeln!(products, "{},PL{},Product {}", product_id(p), l + 1, product_id(p))?;
        }
    }
    for (statement, csv) in [
        ("COPY branches (id, name, region, currency) FROM STDIN (FORMAT csv)", branches),
        ("COPY employees (id, branch_id, full_name, role, team_lead_id) FROM STDIN (FORMAT csv)", employees),
        ("COPY product_lines (id, name) FROM STDIN (FORMAT csv)", lines),
        ("COPY products (id, product_line_id, name) FROM STDIN (FORMAT csv)", products),
    ] {
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(csv).await?;
        copy.finish().await?;
    }
    let clients = copy_generated(
        &mut conn,
        "COPY clients (id, name, kind, industry, size_band, region, founding_year, branch_id, owner_employee_id,
                       known_since) FROM STDIN (FORMAT csv)",
        generator,
        Generator::client_csv,
        "clients",
    )
    .await?;
    let lines = copy_generated(
        &mut conn,
        "COPY transaction_lines (id, document_id, client_id, product_id, amount_minor, currency, business_date,
                                 branch_id, employee_id) FROM STDIN (FORMAT csv)",
        generator,
        Generator::lines_csv,
        "sales lines",
    )
    .await?;
    // The COPY bypassed ingestion, which keeps the purchase rollups.
    let spinner = ProgressBar::new_spinner().with_message("building the purchase rollups and lifecycle counts");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut tx = conn.begin().await?;
    let settings = branchscore_clients::store::settings::effective(&mut *tx, generator.as_of).await?;
    branchscore_clients::store::rollups::rebuild(&mut tx, settings.settings.lifecycle_period_months).await?;
    tx.commit().await?;
    spinner.finish_and_clear();
    // Printed, not only shown on the spinner, so that a benchmark's log keeps it.
    eprintln!("purchase rollups and lifecycle counts built in {:.1} s", spinner.elapsed().as_secs_f64());
    conn.close().await?;
    Ok(Loaded { clients, lines })
}

/// Streams CSV generated client by client on a thread of its own into one COPY.
async fn copy_generated(
    conn: &mut PgConnection,
    statement: &str,
    generator: &Arc<Generator>,
    write: fn(&Generator, usize, &mut Vec<u8>) -> u64,
    what: &'static str,
) -> anyhow::Result<u64> {
    let bar = ProgressBar::new(generator.clients as u64).with_style(
        ProgressStyle::with_template("  {prefix:<12} [{bar:30}] {pos}/{len} clients, {msg} {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(Vec<u8>, u64, u64)>(8);
    let shared = Arc::clone(generator);
    let producer = std::thread::spawn(move || {
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + (64 << 10));
        let (mut rows, mut clients) = (0u64, 0u64);
        for n in 0..shared.clients {
            rows += write(&shared, n, &mut buffer);
            clients += 1;
            if buffer.len() >= CHUNK_BYTES || n + 1 == shared.clients {
                let chunk = std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK_BYTES + (64 << 10)));
                if sender.blocking_send((chunk, clients, rows)).is_err() {
                    return;
                }
                (rows, clients) = (0, 0);
            }
        }
    });
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut rows = 0u64;
    while let Some((chunk, clients, chunk_rows)) = receiver.recv().await {
        copy.send(chunk).await?;
        rows += chunk_rows;
        bar.inc(clients);
        bar.set_message(format!("{rows} rows"));
    }
    let copied = copy.finish().await?;
    bar.finish_and_clear();
    producer.join().map_err(|_| anyhow::anyhow!("the {what} generator panicked"))?;
    anyhow::ensure!(copied == rows, "COPY stored {copied} {what} rows of {rows}");
    Ok(rows)
}
