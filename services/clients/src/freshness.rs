//! Keeps the purchase rollups fresh between reports: imports only mark what
//! they touched, and this recomputes it every few seconds so that a report
//! rarely pays for a large import itself.
use crate::store::rollups;
use branchscore_platform::shutdown::CancellationToken;
use chrono::NaiveDate;
use sqlx::PgPool;
use std::time::Duration;

/// How often stale rollups are looked for.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Refreshes every stale client and day each `every` until `shutdown`.
pub async fn keep_fresh(pool: PgPool, every: Duration, shutdown: CancellationToken) {
    let (first, last) = (NaiveDate::from_ymd_opt(1900, 1, 1), NaiveDate::from_ymd_opt(2999, 12, 31));
    let (Some(first), Some(last)) = (first, last) else { return };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match rollups::refresh(&pool, first, last, None).await {
            Ok(done) if done != rollups::Refreshed::default() => {
                tracing::info!(clients = done.clients, days = done.days, "purchase rollups refreshed");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "purchase rollups not refreshed; retrying on the next tick"),
        }
    }
}
