//! One Postgres database per service: created if missing, migrated by
//! `branchscore migrate` or at start.
use crate::config::DatabaseConfig;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Creates the configured database when it does not exist yet.
pub async fn ensure_database(config: &DatabaseConfig) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(&config.url)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another replica created it first: duplicate_database, or
            // unique_violation on pg_database when both got past the check
            // at the same moment.
            Err(sqlx::Error::Database(err)) if matches!(err.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(err) => return Err(err.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Drops the configured database (closing its connections) and creates it
/// empty again. Only for scratch databases: the demo's and the tests'.
pub async fn recreate_database(config: &DatabaseConfig) -> anyhow::Result<()> {
    drop_database(config).await?;
    ensure_database(config).await
}

/// Drops the configured database if it exists, closing its connections.
pub async fn drop_database(config: &DatabaseConfig) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(&config.url)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options.database("postgres").connect().await?;
    let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""));
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}

/// Opens the service's pool, creating the database if needed.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    ensure_database(config).await?;
    let options = PgConnectOptions::from_str(&config.url)?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout_ms)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Runs pending migrations; safe to call from several replicas at once
/// (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await?;
    Ok(())
}

/// Whether every migration the binary knows has been applied.
pub async fn is_migrated(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<bool> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    if !table_exists {
        return Ok(false);
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await?;
    Ok(migrator.iter().filter(|m| m.migration_type.is_up_migration()).all(|m| applied.contains(&m.version)))
}

/// A read-only transaction whose statements Postgres cancels once they run
/// longer than `limit` (`None`: no limit; use [`crate::deadline::of_request`]).
/// Dropping a query's future does not stop its statement: without this, a
/// report whose caller gave up keeps a backend busy until it is done. A
/// statement cut short fails with DEADLINE_EXCEEDED. Drop the transaction
/// when done (nothing to commit).
pub async fn read_within(pool: &PgPool, limit: Option<Duration>) -> sqlx::Result<Transaction<'static, Postgres>> {
    begin_within(pool, limit, true).await
}

/// A transaction that may write, its statements cut short at `limit` like
/// [`read_within`]'s: work a caller waits for before its read. Commit it.
pub async fn write_within(pool: &PgPool, limit: Option<Duration>) -> sqlx::Result<Transaction<'static, Postgres>> {
    begin_within(pool, limit, false).await
}

async fn begin_within(
    pool: &PgPool,
    limit: Option<Duration>,
    read_only: bool,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    // Whole milliseconds, at least one (0 would mean no limit); without a
    // limit the session's own setting stays. One round trip for both.
    let millis = limit.map(|limit| limit.as_millis().clamp(1, i32::MAX as u128).to_string());
    sqlx::query(
        "SELECT set_config('transaction_read_only', $2, true),
                set_config('statement_timeout', COALESCE($1, current_setting('statement_timeout')), true)",
    )
    .bind(millis)
    .bind(if read_only { "on" } else { "off" })
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppError;
    use crate::error::ErrorCode;
    use std::time::Instant;

    /// The server the tests create their databases on (see branchscore-testkit).
    async fn server() -> PgPool {
        PgPool::connect(&server_url()).await.expect("the test Postgres")
    }

    fn server_url() -> String {
        std::env::var("BRANCHSCORE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    #[tokio::test]
    async fn replicas_starting_together_all_find_the_database_they_create() {
        let url = server_url();
        let name = format!("bs_platform_create_{}", std::process::id());
        let config = DatabaseConfig {
            url: format!("{}/{name}", url.rsplit_once('/').expect("a database url").0),
            ..Default::default()
        };
        drop_database(&config).await.expect("no leftover");
        let replicas = (0..8).map(|_| ensure_database(&config));
        for outcome in futures::future::join_all(replicas).await {
            outcome.expect("every replica goes on");
        }
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&server().await)
            .await
            .expect("pg_database");
        assert!(exists);
        drop_database(&config).await.expect("dropped");
    }

    #[tokio::test]
    async fn a_statement_past_the_limit_is_cancelled_and_reads_only() {
        let pool = server().await;
        let mut tx = read_within(&pool, Some(Duration::from_millis(200))).await.expect("begin");
        let started = Instant::now();
        let err = sqlx::query("SELECT pg_sleep(5)").execute(&mut *tx).await.expect_err("cut short");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert_eq!(AppError::from(err).code, ErrorCode::DeadlineExceeded);
        drop(tx);

        let mut tx = read_within(&pool, None).await.expect("begin");
        sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *tx).await.expect("no limit");
        let write = sqlx::query("CREATE TEMPORARY TABLE t (x int)").execute(&mut *tx).await;
        assert!(write.is_err(), "a read-only transaction refuses writes");
        drop(tx);
        // The limit was local to the transaction: the pooled connection has none.
        let after: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&pool).await.expect("show");
        assert_eq!(after, "0");
    }

    #[tokio::test]
    async fn a_writing_transaction_writes_within_its_limit() {
        let pool = server().await;
        let mut tx = write_within(&pool, Some(Duration::from_millis(200))).await.expect("begin");
        sqlx::query("CREATE TEMPORARY TABLE t (x int)").execute(&mut *tx).await.expect("writes");
        let err = sqlx::query("SELECT pg_sleep(5)").execute(&mut *tx).await.expect_err("cut short");
        assert_eq!(AppError::from(err).code, ErrorCode::DeadlineExceeded);
    }
}
