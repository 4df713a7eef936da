//! One Postgres database per service: created if missing, migrated by
//! `branchscore migrate` or at start.
use crate::config::DatabaseConfig;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;

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
            // Another replica created it first.
            Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => {}
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
