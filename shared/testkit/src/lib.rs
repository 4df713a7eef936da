//! Test environment for branchscore services: a fresh Postgres database per
//! test, a unique Redis key prefix, dev tokens, and helpers that wait for a
//! service started on 127.0.0.1:0 to report SERVING.
//!
//! URLs come from `BRANCHSCORE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, the server to create test
//! databases on) and `BRANCHSCORE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
use branchscore_platform::Role;
use branchscore_platform::auth::{AuthConfig, TokenIssuer};
use branchscore_platform::config::{DatabaseConfig, PeersConfig, RedisConfig, ServerConfig};
use branchscore_platform::service::PlatformConfig;
use branchscore_platform::shutdown::CancellationToken;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

mod redis_server;
pub use redis_server::PrivateRedis;

pub fn database_server_url() -> String {
    std::env::var("BRANCHSCORE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("BRANCHSCORE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One test's world: its own database and key prefix; dropped databases are removed.
#[derive(Debug)]
pub struct TestEnv {
    pub database: DatabaseConfig,
    pub platform: PlatformConfig,
    pub shutdown: CancellationToken,
    issuer: TokenIssuer,
    database_name: String,
}

impl TestEnv {
    pub fn new() -> Self {
        // Service logs appear in the output of a failing test (RUST_LOG to tune).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,branchscore=info")),
            )
            .with_test_writer()
            .try_init();
        let database_name = format!("bs_test_{}", uuid::Uuid::new_v4().simple());
        let server = database_server_url();
        let base = server.rsplit_once('/').map(|(base, _)| base.to_owned()).unwrap_or(server);
        let platform = PlatformConfig {
            redis: RedisConfig { url: redis_url(), key_prefix: format!("{database_name}:"), ..RedisConfig::default() },
            // No peer is reached by accident (a developer's own `branchscore serve`,
            // say): a test that needs one points to the one it started.
            peers: PeersConfig {
                clients: String::new(),
                pipeline: String::new(),
                feedback: String::new(),
                kpi: String::new(),
                reporting: String::new(),
                ..PeersConfig::default()
            },
            ..PlatformConfig::default()
        };
        TestEnv {
            database: DatabaseConfig {
                url: format!("{base}/{database_name}"),
                max_connections: 8,
                ..DatabaseConfig::local("x")
            },
            issuer: TokenIssuer::new(&platform.auth),
            platform,
            shutdown: CancellationToken::new(),
            database_name,
        }
    }

    /// A server config listening on an ephemeral port of 127.0.0.1.
    pub fn server(&self) -> ServerConfig {
        ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServerConfig::default() }
    }

    pub fn auth(&self) -> &AuthConfig {
        &self.platform.auth
    }

    /// Tokens verified as `auth` says, and `token` minted by `people` (an
    /// identity provider's issuer, for an RS256 deployment).
    pub fn with_auth(mut self, auth: AuthConfig, people: TokenIssuer) -> Self {
        self.platform.auth = auth;
        self.issuer = people;
        self
    }

    /// A dev token for `role` at `branches` (empty for head office).
    pub fn token(&self, role: Role, branches: &[&str]) -> String {
        let branches: Vec<String> = branches.iter().map(|b| b.to_string()).collect();
        self.issuer.mint(&format!("test-{role}"), role, &branches, Duration::from_secs(3600)).expect("mint token")
    }

    pub fn database_name(&self) -> &str {
        &self.database_name
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let database = self.database.clone();
        // Drop runs outside async context; a short-lived runtime removes the database.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            let _ = runtime.block_on(branchscore_platform::db::drop_database(&database));
        })
        .join();
    }
}

/// A channel to a service on `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect")
}

/// The overall health status of the server at `addr`.
pub async fn health(addr: SocketAddr) -> ServingStatus {
    let mut client = HealthClient::new(channel(addr).await);
    match client.check(HealthCheckRequest { service: String::new() }).await {
        Ok(reply) => reply.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Waits until the server at `addr` reports SERVING (panics after 30 s).
pub async fn wait_serving(addr: SocketAddr) {
    if let Err(err) = branchscore_platform::client::wait_serving(channel(addr).await, Duration::from_secs(30)).await {
        panic!("service at {addr}: {err:#}");
    }
}

/// Asks `probe` every 50 ms until it answers `Some`, for at most `within`,
/// for what a background task brings about and no API announces. Returns
/// the answer, or `None` if none came in time.
pub async fn eventually<T>(within: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(answer) = probe().await {
            return Some(answer);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}
