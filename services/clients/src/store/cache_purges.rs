//! Cached scores owed a purge (`score_cache_purges`): written where Redis
//! could not drop them, settled by `ScoreCache::settle_owed`.
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};

/// A purge of a client's cached score, owed until Redis has taken it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedPurge {
    pub id: i64,
    pub client_id: String,
}

/// Owes the purge of these clients' cached scores.
pub async fn owe_cache_purges(db: impl PgExecutor<'_>, client_ids: &[String]) -> sqlx::Result<Vec<OwedPurge>> {
    if client_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query("INSERT INTO score_cache_purges (client_id) SELECT unnest($1::text[]) RETURNING id, client_id")
            .bind(client_ids)
            .fetch_all(db)
            .await?;
    rows.iter().map(owed_purge).collect()
}

fn owed_purge(row: &PgRow) -> sqlx::Result<OwedPurge> {
    Ok(OwedPurge { id: row.try_get("id")?, client_id: row.try_get("client_id")? })
}

/// The oldest owed purges, at most `limit`.
pub async fn owed_cache_purges(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<OwedPurge>> {
    let rows = sqlx::query("SELECT id, client_id FROM score_cache_purges ORDER BY id LIMIT $1")
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(owed_purge).collect()
}

/// Forgets purges done (by id: a purge owed again since then stays owed).
pub async fn settle_cache_purges(db: impl PgExecutor<'_>, purges: &[OwedPurge]) -> sqlx::Result<()> {
    let ids: Vec<i64> = purges.iter().map(|purge| purge.id).collect();
    sqlx::query("DELETE FROM score_cache_purges WHERE id = ANY($1)").bind(ids).execute(db).await?;
    Ok(())
}
