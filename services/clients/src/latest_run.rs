//! The recompute runs every score read needs to know of. A run rewrites
//! only the stored scores whose content changed, so a read brings an older
//! record up to the newest run's date (`explain::rebase`). And a run puts
//! its scores in the cache while Postgres is still writing them, so a
//! cached score computed by a run that has not finished (still writing, or
//! failed) is not the truth and is not served.
use crate::recompute::RunLock;
use crate::store;
use branchscore_platform::AppResult;
use branchscore_platform::shutdown::{CancellationToken, Ticks};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a replica reads the runs again: after a run on another
/// replica, scores read here may show the previous run's date for about
/// this long.
pub const REREAD_AFTER: Duration = Duration::from_secs(1);

/// A run's date and start, the compute time of the scores it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStamp {
    pub as_of: NaiveDate,
    pub started_at: DateTime<Utc>,
}

/// The runs as last read from Postgres (or finished here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownRuns {
    /// The newest finished run; `None` before the first.
    pub newest: Option<RunStamp>,
    /// Starts of the runs not finished when read (failed, or still
    /// writing), except those finished here since.
    unfinished: Vec<DateTime<Utc>>,
    /// Whether a run held the recompute lock when read (after the runs).
    running: bool,
}

impl KnownRuns {
    /// Whether a cached score computed at `computed` (its run's start) may
    /// be served: its run has finished. Before any run has finished no
    /// cached score may be: it could only come from the first run, still
    /// writing. A score without a compute time predates runs.
    pub fn hold(&self, computed: Option<&prost_types::Timestamp>) -> bool {
        let Some(newest) = self.newest else { return false };
        let Some(computed) = computed.and_then(branchscore_proto::convert::to_datetime) else { return true };
        computed <= newest.started_at && !self.unfinished.contains(&computed)
    }

    /// Whether a cached score computed at `computed` belongs to a run that
    /// will never finish: not finished, and either no run was alive or a
    /// later one had started (runs take turns). Such a score is never
    /// served, and a miss may replace it. A run found dead may only have
    /// finished between the two reads; replacing its score then stores
    /// the same score, read from Postgres after it finished.
    pub fn dead(&self, computed: Option<&prost_types::Timestamp>) -> bool {
        let Some(computed) = computed.and_then(branchscore_proto::convert::to_datetime) else { return false };
        let newest_unfinished = self.unfinished.iter().max();
        self.unfinished.contains(&computed) && (!self.running || newest_unfinished.is_some_and(|&n| computed < n))
    }

    /// Whether a run started since the newest finished one has not
    /// finished. To a run that holds the lock it died, and its cached
    /// scores, never served, keep the reads of their clients on Postgres
    /// until they expire, unless the next run replaces them all.
    pub fn unfinished_since_newest(&self) -> bool {
        let newest = self.newest.map(|run| run.started_at);
        self.unfinished.iter().any(|&started| newest.is_none_or(|newest| started > newest))
    }
}

/// The runs as last read, shared by a replica's reads and its recompute.
/// Reads are answered from memory, kept up to date by `keep_reading`, so a
/// score read never waits for Postgres for them (except the first after start).
#[derive(Debug, Clone)]
pub struct LatestRun {
    pool: PgPool,
    /// How long a run's cached scores may live after the next run started.
    cached_for: Duration,
    /// `None` until first read.
    /// Shared, not copied: every score read takes it.
    known: Arc<Mutex<Option<Arc<KnownRuns>>>>,
    /// Held while reading, so reads end in the order they began and an
    /// older view never replaces a newer one; callers of the first read
    /// wait for it.
    reading: Arc<tokio::sync::Mutex<()>>,
}

impl LatestRun {
    /// `cache_ttl` is the score cache's; an unfinished run is known for
    /// that long after the next run started, and an hour more for keys set
    /// late (a stalled process) and for clocks.
    pub fn new(pool: PgPool, cache_ttl: Duration) -> Self {
        let cached_for = cache_ttl + Duration::from_secs(3600);
        LatestRun { pool, cached_for, known: Arc::default(), reading: Arc::default() }
    }

    /// The runs as last read.
    pub async fn get(&self) -> AppResult<Arc<KnownRuns>> {
        if let Some(runs) = self.known() {
            return Ok(runs);
        }
        let _reading = self.reading.lock().await;
        if let Some(runs) = self.known() {
            return Ok(runs);
        }
        Ok(self.read_locked().await?)
    }

    /// Reads the runs now, as a run finished here must be known at once,
    /// with every run unfinished beside it.
    pub async fn read(&self) -> sqlx::Result<Arc<KnownRuns>> {
        let _reading = self.reading.lock().await;
        self.read_locked().await
    }

    /// Reads the runs every `REREAD_AFTER` until `shutdown`.
    pub async fn keep_reading(self, shutdown: CancellationToken) {
        let mut ticks = Ticks::new(REREAD_AFTER, shutdown);
        while ticks.next().await {
            if let Err(error) = self.read().await {
                tracing::warn!(%error, "recompute runs not read; trying again");
            }
        }
    }

    async fn read_locked(&self) -> sqlx::Result<Arc<KnownRuns>> {
        let runs = store::known_runs(&self.pool, self.cached_for).await?;
        // After the runs: a run seen unfinished and then not holding the
        // lock has died, or finished in between (see `KnownRuns::dead`).
        let running = RunLock::held(&self.pool).await?;
        let newest = runs.newest.map(|(as_of, started_at)| RunStamp { as_of, started_at });
        let runs = Arc::new(KnownRuns { newest, unfinished: runs.unfinished, running });
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&runs));
        Ok(runs)
    }

    fn known(&self) -> Option<Arc<KnownRuns>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_proto::convert::timestamp;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + second, 250_000).expect("instant")
    }

    fn runs(newest: Option<i64>, unfinished: &[i64]) -> KnownRuns {
        let newest = newest.map(|s| RunStamp { as_of: NaiveDate::default(), started_at: at(s) });
        KnownRuns { newest, unfinished: unfinished.iter().map(|&s| at(s)).collect(), running: false }
    }

    #[test]
    fn only_scores_of_finished_runs_are_held() {
        // Runs started at 10 (finished), 20 (failed), 30 (the newest), 40 (still writing).
        let known = runs(Some(30), &[20, 40]);
        assert!(known.hold(Some(&timestamp(at(30)))), "the newest run's own score");
        assert!(known.hold(Some(&timestamp(at(10)))), "an older run's score, found unchanged since");
        assert!(!known.hold(Some(&timestamp(at(20)))), "a failed run's score");
        assert!(!known.hold(Some(&timestamp(at(40)))), "a run still writing");
        assert!(!known.hold(Some(&timestamp(at(35)))), "a run begun after the last read");
        assert!(known.hold(None), "a score without a compute time predates runs");
    }

    #[test]
    fn a_run_unfinished_since_the_newest_finished_one_is_noticed() {
        assert!(!runs(None, &[]).unfinished_since_newest());
        assert!(runs(None, &[5]).unfinished_since_newest(), "the first run died");
        assert!(!runs(Some(30), &[20]).unfinished_since_newest(), "a run after it replaced its scores");
        assert!(runs(Some(30), &[20, 40]).unfinished_since_newest());
    }

    #[test]
    fn a_run_unfinished_is_dead_unless_it_may_be_the_one_running() {
        // Runs started at 10 (finished), 20 (died), 30 (the newest), 40 (unfinished).
        let stopped = runs(Some(30), &[20, 40]);
        let running = KnownRuns { running: true, ..stopped.clone() };
        let score_of = |second| timestamp(at(second));
        assert!(stopped.dead(Some(&score_of(40))), "no run holds the lock: it died");
        assert!(!running.dead(Some(&score_of(40))), "the newest unfinished run may be the one running");
        assert!(stopped.dead(Some(&score_of(20))) && running.dead(Some(&score_of(20))), "a later run started");
        assert!(!stopped.dead(Some(&score_of(30))), "a finished run");
        assert!(!stopped.dead(Some(&score_of(35))), "a run begun after the last read");
        assert!(!stopped.dead(None), "a score without a compute time");
    }

    #[test]
    fn before_any_run_has_finished_no_cached_score_is_held() {
        assert!(!runs(None, &[]).hold(None));
        assert!(!runs(None, &[5]).hold(Some(&timestamp(at(5)))));
    }
}
