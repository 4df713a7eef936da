//! The stage-event outbox: read in cursor order; the relay's position.
use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub cursor: i64,
    pub event_id: String,
    pub kind: i16,
    pub deal_id: String,
    pub client_id: String,
    pub branch_id: String,
    pub stage: String,
    pub created_at: DateTime<Utc>,
}

/// Events after `cursor` within the caller's branches, oldest first.
pub async fn events_after(
    pool: &PgPool,
    cursor: i64,
    scope: Option<&[String]>,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT * FROM stage_events WHERE cursor > $1 AND ($2::text[] IS NULL OR branch_id = ANY($2))
         ORDER BY cursor LIMIT $3",
    )
    .bind(cursor)
    .bind(scope)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn relay_cursor(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT cursor FROM stage_event_relay").fetch_one(pool).await
}

pub async fn set_relay_cursor(pool: &PgPool, cursor: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE stage_event_relay SET cursor = greatest(cursor, $1)").bind(cursor).execute(pool).await?;
    Ok(())
}
