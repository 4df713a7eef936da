//! The scoring batch as of a date: aggregate in Postgres, classify in Rust
//! (`branchscore_scoring::batch`), write scores and changed history in one
//! transaction while the cache takes the rewritten scores. One run at a
//! time across all replicas (a Postgres advisory lock held on a connection
//! of its own).
use crate::explain::{self, ScoreContext};
use crate::latest_run::LatestRun;
use crate::maturity_batch::{self, Products};
use crate::satisfaction::SatisfactionSource;
use crate::score_cache::ScoreCache;
use crate::store::{self, MonthlyActivity, RunOutcome, ScoreRow};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::{AppError, AppResult};
use branchscore_proto::clients::v1::{Product, RecomputePhase, RecomputeSummary};
use branchscore_proto::common::v1::Date;
use branchscore_scoring::batch::{self, ClientFacts};
use branchscore_scoring::window::{AnalysisWindow, LifecyclePeriods};
use chrono::NaiveDate;
use rayon::prelude::*;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Advisory lock key of the recompute ("BSRECOMP").
const LOCK_KEY: i64 = 0x4253_5245_434f_4d50;

/// Receives (phase, done, total) as the run advances.
pub trait Progress: Send {
    fn report(&mut self, phase: RecomputePhase, done: u64, total: u64);
}

impl<F: FnMut(RecomputePhase, u64, u64) + Send> Progress for F {
    fn report(&mut self, phase: RecomputePhase, done: u64, total: u64) {
        self(phase, done, total)
    }
}

/// What a run needs from the service.
#[derive(Debug, Clone)]
pub struct Recompute {
    pub pool: PgPool,
    pub score_cache: ScoreCache,
    pub currency: String,
    /// The feedback service, for the satisfaction component.
    pub satisfaction: Option<SatisfactionSource>,
    /// Told of each run as it finishes, for this replica's score reads.
    pub latest_run: LatestRun,
}

impl Recompute {
    /// Runs the batch as of `as_of` under `lock`.
    /// `credentials` are presented to the feedback service (the caller's, or
    /// the service's own for the nightly run); without them satisfaction is absent.
    pub async fn run(
        &self,
        lock: RunLock,
        as_of: NaiveDate,
        requested_by: &str,
        credentials: Option<CallCredentials>,
        progress: &mut impl Progress,
    ) -> AppResult<RecomputeSummary> {
        let started = Instant::now();
        let stored = store::settings::effective(&self.pool, as_of).await?;
        let settings = stored.settings;
        let window = AnalysisWindow::as_of(as_of, settings.window_months).map_err(AppError::internal)?;
        let periods = LifecyclePeriods::as_of(as_of, settings.lifecycle_period_months).map_err(AppError::internal)?;
        let cache_every_score = self.latest_run.read().await?.unfinished_since_newest();
        let (run_id, started_at) = store::start_run(&self.pool, as_of, stored.version, requested_by).await?;
        tracing::info!(run_id, %as_of, settings_version = stored.version, "recompute started");

        let population = store::population(&self.pool, as_of).await?;
        let total = population.len() as u64;
        let index: HashMap<&str, usize> = population.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
        let empty = ClientFacts { monthly_revenue: vec![0; window.month_count()], ..ClientFacts::default() };
        let mut facts = vec![empty; population.len()];
        progress.report(RecomputePhase::Aggregating, 0, total);
        let segments = store::list_segments(&self.pool).await?;
        let recorded = store::product_states(&self.pool, None).await?;
        let (_, catalogue) = store::list_products(&self.pool).await?;
        let mut products = Products::default();
        let mut purchased: Vec<Vec<u32>> = vec![Vec::new(); population.len()];
        let mut visits = 0u64;
        store::client_activity(&self.pool, &window, |activity| {
            if let Some(&i) = index.get(activity.client_id) {
                for month in &activity.months {
                    fold(&mut facts[i], month, &window, &periods);
                }
                purchased[i].extend(activity.window_products.iter().map(|p| products.intern(p)));
            }
            visits += 1;
            if visits.is_multiple_of(100_000) {
                progress.report(RecomputePhase::Aggregating, visits, 0);
            }
        })
        .await?;
        // A product bought in several months of the window came once per month.
        for bought in &mut purchased {
            bought.sort_unstable();
            bought.dedup();
        }
        drop(index);
        for (facts, lines) in facts.iter_mut().zip(product_line_breadth(&purchased, &products, &catalogue)) {
            facts.product_lines = lines;
        }
        progress.report(RecomputePhase::Aggregating, total, total);

        let rated = match (&self.satisfaction, credentials) {
            (Some(source), Some(credentials)) => {
                let ids: Vec<String> = population.iter().map(|c| c.id.clone()).collect();
                let satisfaction = source.of(&ids, as_of, credentials).await.unwrap_or_default();
                for (facts, id) in facts.iter_mut().zip(&ids) {
                    facts.satisfaction = satisfaction.get(id).copied();
                }
                satisfaction.len()
            }
            _ => 0,
        };

        progress.report(RecomputePhase::Classifying, 0, total);
        let currency = self.currency.clone();
        let compute_time = branchscore_proto::convert::timestamp(started_at);
        let version = stored.version;
        // What is no longer needed is dropped as soon as it is not: the peak
        // is when the facts, their evaluation and the encoded scores meet.
        let (rows, profiles, clustering, rules) = tokio::task::spawn_blocking(move || -> AppResult<_> {
            let portfolio = maturity_batch::assess(
                &population,
                &segments,
                &recorded,
                &purchased,
                &mut products,
                settings.basket_min_support,
            )
            .map_err(AppError::internal)?;
            drop((purchased, products, recorded));
            for (facts, maturity) in facts.iter_mut().zip(&portfolio.maturity) {
                facts.maturity = *maturity;
            }
            let evaluation = batch::evaluate(as_of, &settings, &facts).map_err(AppError::internal)?;
            drop(facts);
            let context = ScoreContext { as_of, settings_version: version, currency: &currency, compute_time };
            let profiles = evaluation
                .clustering
                .as_ref()
                .map(|c| explain::cluster_profiles(&c.profiles, &currency))
                .unwrap_or_default();
            let clustering = evaluation.clustering.as_ref().map_or((0, 0.0), |c| (c.k, c.silhouette.unwrap_or(0.0)));
            // Explaining and encoding a client's score needs nothing from the
            // others: both cores take a share, in order.
            let rows: Vec<ScoreRow> = population
                .into_par_iter()
                .zip(evaluation.clients)
                .zip(portfolio.segments)
                .map(|((client, e), segment)| {
                    let segment = segment.as_deref().unwrap_or_default();
                    ScoreRow::from(explain::client_score(&client.id, &client.branch_id, segment, &e, &context))
                })
                .collect();
            Ok((rows, profiles, clustering, portfolio.rules))
        })
        .await
        .map_err(AppError::internal)??;
        progress.report(RecomputePhase::Classifying, total, total);

        // The cache takes the rewritten scores while Postgres writes them:
        // reads serve none of them until the run has finished
        // (`KnownRuns::hold`), and the run's scores are in the cache by the
        // time it has, or soon after, instead of only then starting.
        let progress = Mutex::new(progress);
        let report =
            |phase, done, total| progress.lock().unwrap_or_else(PoisonError::into_inner).report(phase, done, total);
        report(RecomputePhase::Writing, 0, total);
        let mut tx = self.pool.begin().await?;
        let write = store::compare_scores(&mut tx, &rows).await?;
        let rewritten = write.rewritten().len() as u64;
        let cached_scores: Vec<(&str, &[u8])> = if cache_every_score {
            tracing::info!(run_id, "caching every score, over those of a run that did not finish");
            rows.iter().map(|row| (row.client_id.as_str(), row.record.as_slice())).collect()
        } else {
            write.rewritten().iter().map(|&i| (rows[i].client_id.as_str(), rows[i].record.as_slice())).collect()
        };
        let to_cache = cached_scores.len() as u64;
        let committed = async {
            let written = write.write(&mut tx, Some(run_id), |phase, done| report(phase, done, total)).await?;
            store::insert_cluster_profiles(&mut tx, run_id, &profiles).await?;
            store::insert_basket_rules(&mut tx, run_id, &rules).await?;
            let outcome = RunOutcome {
                clients: total as i64,
                changed: written.history as i64,
                clusters: i32::try_from(clustering.0).unwrap_or(i32::MAX),
                silhouette: clustering.1,
            };
            store::finish_run(&mut tx, run_id, outcome).await?;
            tx.commit().await?;
            // Until read, this replica reads the run's scores from Postgres.
            if let Err(error) = self.latest_run.read().await {
                tracing::warn!(%error, "recompute runs not read after the run; they will be within a second");
            }
            AppResult::Ok(outcome)
        };
        report(RecomputePhase::Caching, 0, to_cache);
        let cached =
            self.score_cache.replace(&cached_scores, |cached| report(RecomputePhase::Caching, cached, to_cache));
        let (mut committed, mut cached) = (pin!(committed), pin!(cached));
        let outcome = tokio::select! {
            outcome = &mut committed => match outcome {
                Ok(outcome) => {
                    cached.await;
                    Ok(outcome)
                }
                Err(error) => Err(error),
            },
            () = &mut cached => committed.await,
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                let ids: Vec<&str> = cached_scores.iter().map(|(id, _)| *id).collect();
                self.score_cache.forget(&ids).await;
                return Err(error);
            }
        };
        let summary = RecomputeSummary {
            run_id,
            as_of: Some(Date::from(as_of)),
            settings_version: stored.version,
            clients: outcome.clients,
            changed: outcome.changed,
            clusters: outcome.clusters,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            clients_with_satisfaction: rated as i64,
            scores_rewritten: rewritten as i64,
        };
        tracing::info!(
            run_id,
            clients = summary.clients,
            changed = summary.changed,
            ms = summary.duration_ms,
            "recompute finished"
        );
        metrics::histogram!("recompute_duration_seconds").record(started.elapsed().as_secs_f64());
        lock.release().await;
        Ok(summary)
    }
}

/// The right to run the batch, across all replicas: a Postgres advisory lock
/// held on a connection outside the pool, so it goes away with the
/// connection however the run ends.
#[derive(Debug)]
pub struct RunLock(PgConnection);

impl RunLock {
    /// FAILED_PRECONDITION when another run holds it.
    pub async fn acquire(pool: &PgPool) -> AppResult<RunLock> {
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LOCK_KEY).fetch_one(&mut conn).await?;
        if !locked {
            let _ = conn.close().await;
            return Err(AppError::failed_precondition(
                "a recompute is already running; try again when it has finished",
            ));
        }
        Ok(RunLock(conn))
    }

    async fn release(self) {
        // Closing the session releases its advisory locks.
        let _ = self.0.close().await;
    }

    /// Whether any session holds the lock now, that is whether a run is
    /// alive: a run that stopped without finishing (its process killed)
    /// lost the lock with its connection.
    pub async fn held(pool: &PgPool) -> sqlx::Result<bool> {
        // pg_locks shows a bigint advisory key as its high and low 32 bits.
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_locks
                            WHERE locktype = 'advisory' AND granted AND objsubid = 1
                              AND classid::int8 = $1 AND objid::int8 = $2
                              AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .bind(LOCK_KEY >> 32)
        .bind(LOCK_KEY & 0xffff_ffff)
        .fetch_one(pool)
        .await
    }
}

/// Distinct product lines of each client's purchases (products missing from
/// the catalogue count for none).
fn product_line_breadth(purchased: &[Vec<u32>], products: &Products, catalogue: &[Product]) -> Vec<u32> {
    let line_of: HashMap<&str, &str> = catalogue.iter().map(|p| (p.id.as_str(), p.product_line_id.as_str())).collect();
    purchased
        .iter()
        .map(|bought| {
            let mut lines: Vec<&str> = bought.iter().filter_map(|&p| line_of.get(products.id(p)).copied()).collect();
            lines.sort_unstable();
            lines.dedup();
            u32::try_from(lines.len()).unwrap_or(u32::MAX)
        })
        .collect()
}

/// Adds one month of a client's activity to its facts.
fn fold(facts: &mut ClientFacts, row: &MonthlyActivity, window: &AnalysisWindow, periods: &LifecyclePeriods) {
    if let Some(slot) = window.month_index(row.month).and_then(|i| facts.monthly_revenue.get_mut(i)) {
        *slot = slot.saturating_add(row.revenue);
        facts.window_transactions =
            facts.window_transactions.saturating_add(u32::try_from(row.documents).unwrap_or(u32::MAX));
        facts.first_in_window = earliest(facts.first_in_window, row.first_purchase);
        facts.last_in_window = latest(facts.last_in_window, row.last_purchase);
    }
    let (Some(first), Some(last)) = (row.first_purchase, row.last_purchase) else { return };
    facts.first_purchase = earliest(facts.first_purchase, Some(first));
    facts.last_purchase = latest(facts.last_purchase, Some(last));
    // A lifecycle period is at least a month long, so a calendar month holds at
    // most one of its boundaries: a purchase inside the period exists exactly
    // when the month's first or last purchase lies inside it.
    facts.purchased_in_current |= periods.in_current(first) || periods.in_current(last);
    facts.purchased_in_previous |= periods.in_previous(first) || periods.in_previous(last);
}

fn earliest(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn folding_months_gives_the_lifecycle_and_window_facts() {
        // D = 2026-11-23: window 2025-11..2026-10; C = (2026-08-23, D]; V = (2026-05-23, 2026-08-23].
        let as_of = date(2026, 11, 23);
        let window = AnalysisWindow::as_of(as_of, 12).expect("window");
        let periods = LifecyclePeriods::as_of(as_of, 3).expect("periods");
        let mut facts = ClientFacts { monthly_revenue: vec![0; 12], ..ClientFacts::default() };
        let month = |m: NaiveDate, revenue, documents, first, last| MonthlyActivity {
            month: m,
            revenue,
            documents,
            first_purchase: first,
            last_purchase: last,
        };
        // August: purchases on the 3rd and the 30th; only the 30th is in C, only the 3rd in V.
        fold(
            &mut facts,
            &month(date(2026, 8, 1), 500, 2, Some(date(2026, 8, 3)), Some(date(2026, 8, 30))),
            &window,
            &periods,
        );
        // 2024: before the window, a first purchase.
        fold(
            &mut facts,
            &month(date(2024, 3, 1), 100, 1, Some(date(2024, 3, 9)), Some(date(2024, 3, 9))),
            &window,
            &periods,
        );
        // A month of returns only: revenue counts, no purchase.
        fold(&mut facts, &month(date(2026, 2, 1), -40, 0, None, None), &window, &periods);
        // D's own month: outside the window, counts for recency.
        fold(
            &mut facts,
            &month(date(2026, 11, 1), 70, 1, Some(date(2026, 11, 20)), Some(date(2026, 11, 20))),
            &window,
            &periods,
        );

        assert_eq!(facts.monthly_revenue[9], 500); // 2026-08 is the 10th window month
        assert_eq!(facts.monthly_revenue[3], -40);
        assert_eq!(facts.window_revenue(), 460);
        assert_eq!(facts.window_transactions, 2);
        assert_eq!((facts.first_in_window, facts.last_in_window), (Some(date(2026, 8, 3)), Some(date(2026, 8, 30))));
        assert_eq!(facts.first_purchase, Some(date(2024, 3, 9)));
        assert_eq!(facts.last_purchase, Some(date(2026, 11, 20)));
        assert!(facts.purchased_in_current && facts.purchased_in_previous);
    }
}
