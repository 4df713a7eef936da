//! The lifecycle every service shares: bind (health NOT_SERVING), create and
//! migrate the database (or wait for `branchscore migrate`), report SERVING,
//! serve until shutdown, drain.
use crate::auth::{AuthConfig, Authenticator};
use crate::cache::Cache;
use crate::config::{CompanyConfig, DatabaseConfig, PeersConfig, RedisConfig, ServerConfig};
use crate::server::ServerBuilder;
use crate::shutdown::CancellationToken;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;

/// Settings every service shares (one section each in the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformConfig {
    pub auth: AuthConfig,
    pub company: CompanyConfig,
    pub redis: RedisConfig,
    pub peers: PeersConfig,
}

/// What a service's API needs from the platform.
#[derive(Clone, Debug)]
pub struct ServiceContext {
    pub pool: PgPool,
    pub cache: Cache,
    pub authenticator: Authenticator,
    pub company: CompanyConfig,
    pub server: ServerConfig,
}

/// A service started in the background.
#[derive(Debug)]
pub struct RunningService {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// What a service provides to [`launch`].
#[derive(Debug)]
pub struct ServiceSpec<'a> {
    pub name: &'static str,
    pub server: &'a ServerConfig,
    pub database: &'a DatabaseConfig,
    pub migrator: &'static Migrator,
}

/// Starts a service: the port answers health at once (NOT_SERVING) and turns
/// SERVING only when the database exists and its schema is current.
pub async fn launch(
    spec: ServiceSpec<'_>,
    platform: &PlatformConfig,
    routes: impl FnOnce(ServiceContext) -> ServerBuilder,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    platform.company.zone()?;
    let options = PgConnectOptions::from_str(&spec.database.url)?;
    let pool = PgPoolOptions::new()
        .max_connections(spec.database.max_connections)
        .acquire_timeout(spec.database.acquire_timeout_ms)
        .connect_lazy_with(options);
    let context = ServiceContext {
        pool: pool.clone(),
        cache: Cache::from_config(&platform.redis)?,
        authenticator: Authenticator::new(&platform.auth)?,
        company: platform.company.clone(),
        server: spec.server.clone(),
    };
    let bound = routes(context).bind().await?;
    let addr = bound.local_addr();
    let health = bound.health();
    let name = spec.name;
    let database = spec.database.clone();
    let migrator = spec.migrator;
    let ready_shutdown = shutdown.clone();
    let readiness = tokio::spawn(async move {
        match become_ready(&database, &pool, migrator, &ready_shutdown).await {
            Ok(true) => {
                health.set(ServingStatus::Serving).await;
                tracing::info!(service = name, %addr, "serving");
            }
            Ok(false) => {}
            Err(err) => {
                tracing::error!(service = name, error = %format!("{err:#}"), "cannot become ready");
                ready_shutdown.cancel();
            }
        }
    });
    let task = tokio::spawn(async move {
        let served = bound.serve(shutdown).await;
        readiness.abort();
        served
    });
    Ok(RunningService { name, addr, task })
}

/// Returns `Ok(false)` when shutdown came first.
async fn become_ready(
    database: &DatabaseConfig,
    pool: &PgPool,
    migrator: &Migrator,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    crate::db::ensure_database(database).await?;
    if database.migrate_on_start {
        crate::db::migrate(pool, migrator).await?;
        return Ok(true);
    }
    let mut waiting_logged = false;
    loop {
        if crate::db::is_migrated(pool, migrator).await? {
            return Ok(true);
        }
        if !waiting_logged {
            tracing::info!("schema not current; waiting for `branchscore migrate`");
            waiting_logged = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
