//! The API keys in the gateway's Postgres database.
use crate::keys::IssuedSecret;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub display_name: String,
    pub subject: String,
    /// A platform role name, e.g. `erp_integration`.
    pub role: String,
    pub branch_ids: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    pub api_key_id: String,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key to create, with the request that creates it.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub id: &'a str,
    pub request_id: &'a str,
    pub created_by: &'a str,
    pub display_name: &'a str,
    pub subject: &'a str,
    pub role: &'a str,
    pub branch_ids: &'a [String],
}

/// Stores the key with its first secret; `false` when the caller used the
/// request id before (nothing is stored then).
pub async fn insert_key(pool: &PgPool, key: &NewKey<'_>, secret: &IssuedSecret) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO api_keys (id, request_id, created_by, display_name, subject, role, branch_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (created_by, request_id) DO NOTHING",
    )
    .bind(key.id)
    .bind(key.request_id)
    .bind(key.created_by)
    .bind(key.display_name)
    .bind(key.subject)
    .bind(key.role)
    .bind(key.branch_ids)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        insert_secret(&mut tx, key.id, secret).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

async fn insert_secret(tx: &mut sqlx::PgConnection, key_id: &str, secret: &IssuedSecret) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO api_key_secrets (hash, api_key_id, hint) VALUES ($1, $2, $3)")
        .bind(&secret.hash)
        .bind(key_id)
        .bind(&secret.hint)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn key_by_request(pool: &PgPool, created_by: &str, request_id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as("SELECT * FROM api_keys WHERE created_by = $1 AND request_id = $2")
        .bind(created_by)
        .bind(request_id)
        .fetch_optional(pool)
        .await
}

pub async fn key(pool: &PgPool, id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as("SELECT * FROM api_keys WHERE id = $1").bind(id).fetch_optional(pool).await
}

/// Keys created after the key `after` (ids grow with time), oldest first.
pub async fn keys(pool: &PgPool, show_revoked: bool, after: &str, limit: i64) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as("SELECT * FROM api_keys WHERE id > $1 AND ($2 OR revoked_at IS NULL) ORDER BY id LIMIT $3")
        .bind(after)
        .bind(show_revoked)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// The secrets that still open the given keys, newest first.
pub async fn live_secrets(pool: &PgPool, key_ids: &[String]) -> sqlx::Result<Vec<SecretRow>> {
    sqlx::query_as(
        "SELECT s.api_key_id, s.hint, s.created_at, s.expires_at
         FROM api_key_secrets s JOIN api_keys k ON k.id = s.api_key_id
         WHERE s.api_key_id = ANY($1) AND k.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > now())
         ORDER BY s.created_at DESC",
    )
    .bind(key_ids)
    .fetch_all(pool)
    .await
}

/// The live key a secret opens: not revoked, the secret not expired.
pub async fn key_of_secret(pool: &PgPool, hash: &[u8]) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as(
        "SELECT k.* FROM api_key_secrets s JOIN api_keys k ON k.id = s.api_key_id
         WHERE s.hash = $1 AND k.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > now())",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// What became of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    Revoked,
    NoSuchKey,
}

/// Adds `secret` to the key and lets its earlier secrets expire at
/// `previous_expire_at`, never later than they already would.
pub async fn rotate(
    pool: &PgPool,
    key_id: &str,
    secret: &IssuedSecret,
    previous_expire_at: DateTime<Utc>,
) -> sqlx::Result<Rotation> {
    let mut tx = pool.begin().await?;
    // The row lock orders a rotation against a concurrent revocation.
    let revoked: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT revoked_at FROM api_keys WHERE id = $1 FOR UPDATE")
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
    match revoked {
        None => return Ok(Rotation::NoSuchKey),
        Some(Some(_)) => return Ok(Rotation::Revoked),
        Some(None) => {}
    }
    sqlx::query(
        "UPDATE api_key_secrets SET expires_at = LEAST(COALESCE(expires_at, $2), $2)
         WHERE api_key_id = $1 AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(key_id)
    .bind(previous_expire_at)
    .execute(&mut *tx)
    .await?;
    insert_secret(&mut tx, key_id, secret).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated)
}

/// Revokes the key unless it is revoked already; `None` when there is no such key.
pub async fn revoke(pool: &PgPool, key_id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(key_id)
        .execute(pool)
        .await?;
    key(pool, key_id).await
}
