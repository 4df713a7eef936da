//! The newest finished recompute run, as every score read needs it: a run
//! rewrites only the stored scores whose content changed, so a read brings
//! an older record up to the run's date (`explain::rebase`).
use crate::store;
use branchscore_platform::AppResult;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a replica trusts what it read: after a run on another replica,
/// scores read here may show the previous run's date for this long.
pub const REREAD_AFTER: Duration = Duration::from_secs(1);

/// A run's date and start, the compute time of the scores it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStamp {
    pub as_of: NaiveDate,
    pub started_at: DateTime<Utc>,
}

/// What was known of the newest run, and when.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    run: Option<RunStamp>,
}

/// The newest run as last read from Postgres (or finished here).
#[derive(Debug, Clone)]
pub struct LatestRun {
    pool: PgPool,
    known: Arc<Mutex<Option<Reading>>>,
    /// One read at a time; readers arriving meanwhile wait for it.
    reading: Arc<tokio::sync::Mutex<()>>,
}

impl LatestRun {
    pub fn new(pool: PgPool) -> Self {
        LatestRun { pool, known: Arc::default(), reading: Arc::default() }
    }

    /// The newest finished run; `None` before the first.
    pub async fn get(&self) -> AppResult<Option<RunStamp>> {
        if let Some(run) = self.fresh() {
            return Ok(run);
        }
        let _reading = self.reading.lock().await;
        if let Some(run) = self.fresh() {
            return Ok(run);
        }
        let run = store::latest_run(&self.pool).await?.map(|(as_of, started_at)| RunStamp { as_of, started_at });
        self.remember(run);
        Ok(run)
    }

    /// A run that has just finished on this replica.
    pub fn finished(&self, run: RunStamp) {
        self.remember(Some(run));
    }

    fn fresh(&self) -> Option<Option<RunStamp>> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.filter(|reading| reading.at.elapsed() < REREAD_AFTER).map(|reading| reading.run)
    }

    /// Never goes back to an older run (a read that began before a run here
    /// finished may end after it): runs start one after another.
    fn remember(&self, run: Option<RunStamp>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = match (known.and_then(|reading| reading.run), run) {
            (Some(old), Some(new)) if old.started_at > new.started_at => Some(old),
            (old, new) => new.or(old),
        };
        *known = Some(Reading { at: Instant::now(), run: newest });
    }
}
