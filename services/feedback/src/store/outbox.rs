//! Reading the outbox.
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

#[derive(Debug)]
pub struct OutboxRow {
    pub cursor: i64,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// Events after `cursor` in the caller's branches and topics (empty: all), oldest first.
pub async fn after(
    pool: &PgPool,
    cursor: i64,
    scope: Option<&[String]>,
    topics: &[i16],
    limit: i64,
) -> sqlx::Result<Vec<OutboxRow>> {
    let rows = sqlx::query(
        "SELECT cursor, payload, created_at FROM outbox
         WHERE cursor > $1 AND ($2::text[] IS NULL OR branch_id = ANY($2))
           AND (cardinality($3::smallint[]) = 0 OR topic = ANY($3))
         ORDER BY cursor LIMIT $4",
    )
    .bind(cursor)
    .bind(scope)
    .bind(topics)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxRow {
                cursor: row.try_get("cursor")?,
                payload: row.try_get("payload")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}
