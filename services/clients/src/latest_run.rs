//! The newest finished recompute run, as every score read needs it: a run
//! rewrites only the stored scores whose content changed, so a read brings
//! an older record up to the run's date (`explain::rebase`).
use crate::store;
use branchscore_platform::AppResult;
use branchscore_platform::shutdown::{CancellationToken, Ticks};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a replica reads the newest run again: after a run on another
/// replica, scores read here may show the previous run's date for about
/// this long.
pub const REREAD_AFTER: Duration = Duration::from_secs(1);

/// A run's date and start, the compute time of the scores it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStamp {
    pub as_of: NaiveDate,
    pub started_at: DateTime<Utc>,
}

/// The newest run as last read from Postgres (or finished here). Reads are
/// answered from memory, kept up to date by `keep_reading`, so a score read
/// never waits for Postgres for it (except the first after start).
#[derive(Debug, Clone)]
pub struct LatestRun {
    pool: PgPool,
    /// `None` until first read; then the newest run, if any.
    known: Arc<Mutex<Option<Option<RunStamp>>>>,
    /// The first read: callers arriving meanwhile wait for it.
    first: Arc<tokio::sync::Mutex<()>>,
}

impl LatestRun {
    pub fn new(pool: PgPool) -> Self {
        LatestRun { pool, known: Arc::default(), first: Arc::default() }
    }

    /// The newest finished run; `None` before the first.
    pub async fn get(&self) -> AppResult<Option<RunStamp>> {
        if let Some(run) = self.known() {
            return Ok(run);
        }
        let _first = self.first.lock().await;
        if let Some(run) = self.known() {
            return Ok(run);
        }
        Ok(self.read().await?)
    }

    /// Reads the newest run every `REREAD_AFTER` until `shutdown`.
    pub async fn keep_reading(self, shutdown: CancellationToken) {
        let mut ticks = Ticks::new(REREAD_AFTER, shutdown);
        while ticks.next().await {
            if let Err(error) = self.read().await {
                tracing::warn!(%error, "newest recompute run not read; trying again");
            }
        }
    }

    async fn read(&self) -> sqlx::Result<Option<RunStamp>> {
        let run = store::latest_run(&self.pool).await?.map(|(as_of, started_at)| RunStamp { as_of, started_at });
        self.remember(run);
        Ok(self.known().flatten())
    }

    /// A run that has just finished on this replica.
    pub fn finished(&self, run: RunStamp) {
        self.remember(Some(run));
    }

    fn known(&self) -> Option<Option<RunStamp>> {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Never goes back to an older run (a read that began before a run here
    /// finished may end after it): runs start one after another.
    fn remember(&self, run: Option<RunStamp>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = match (known.flatten(), run) {
            (Some(old), Some(new)) if old.started_at > new.started_at => Some(old),
            (old, new) => new.or(old),
        };
        *known = Some(newest);
    }
}
