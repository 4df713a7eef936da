//! Keeps the purchase rollups fresh between reports: imports only mark what
//! they touched, and this recomputes it every few seconds so that a report
//! rarely pays for a large import itself. It also builds the lifecycle
//! counts for the lifecycle period in effect today (after an upgrade, or a
//! settings version that changes the period takes effect); until then
//! reports count clients one by one.
use crate::store::{rollups, settings};
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::shutdown::{CancellationToken, Ticks};
use chrono::NaiveDate;
use sqlx::PgPool;
use std::time::Duration;

/// How often stale rollups are looked for.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Builds the lifecycle counts for today's lifecycle period if they are
/// not, and refreshes every stale client and day, each `every` until `shutdown`.
pub async fn keep_fresh(pool: PgPool, company: CompanyConfig, every: Duration, shutdown: CancellationToken) {
    let (first, last) = (NaiveDate::from_ymd_opt(1900, 1, 1), NaiveDate::from_ymd_opt(2999, 12, 31));
    let (Some(first), Some(last)) = (first, last) else { return };
    let mut ticks = Ticks::new(every, shutdown);
    while ticks.next().await {
        match count_lifecycles(&pool, &company).await {
            Ok(Some(months)) => tracing::info!(months, "lifecycle counts built"),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "lifecycle counts not built; retrying on the next tick"),
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

/// Builds the lifecycle counts for the period in effect today unless they
/// are; the period, when it built them.
async fn count_lifecycles(pool: &PgPool, company: &CompanyConfig) -> anyhow::Result<Option<u32>> {
    let months = settings::effective(pool, company.today()?).await?.settings.lifecycle_period_months;
    Ok(rollups::count_lifecycles(pool, months).await?.then_some(months))
}
