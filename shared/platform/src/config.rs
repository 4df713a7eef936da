//! Layered configuration: built-in defaults, then a TOML file, then
//! environment variables `BRANCHSCORE_<SECTION>__<KEY>` (nested keys joined
//! by `__`, e.g. `BRANCHSCORE_CLIENTS__DATABASE__URL`).
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Prefix of every environment variable the platform reads.
pub const ENV_PREFIX: &str = "BRANCHSCORE_";

/// A configuration that cannot be used; the message names the key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Loads `T` from defaults, the optional TOML file and the environment.
pub fn load<T: Default + Serialize + DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError(format!("config file {} does not exist", file.display())));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment.merge(Env::prefixed(ENV_PREFIX).split("__")).extract().map_err(|err| ConfigError(err.to_string()))
}

/// The effective configuration as TOML, for `--dump-config`.
pub fn dump<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    toml::to_string_pretty(config).map_err(|err| ConfigError(err.to_string()))
}

/// Durations are written in milliseconds in files and the environment.
pub mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// How a service's gRPC server protects itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// Longest time one unary call may take before DEADLINE_EXCEEDED/CANCELLED.
    #[serde(with = "millis")]
    pub request_timeout_ms: Duration,
    /// Calls in flight at once across all connections; more are shed with RESOURCE_EXHAUSTED.
    pub concurrency_limit: usize,
    /// Largest request or response message.
    pub max_message_bytes: usize,
    /// Connections are closed after this age so load spreads over new replicas.
    #[serde(with = "millis")]
    pub max_connection_age_ms: Duration,
    /// Time in-flight calls get to finish when a connection reaches its age.
    #[serde(with = "millis")]
    pub max_connection_age_grace_ms: Duration,
    /// After SIGTERM, health reports NOT_SERVING this long before the listener
    /// closes, so load balancers stop sending new calls first.
    #[serde(with = "millis")]
    pub shutdown_drain_delay_ms: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            request_timeout_ms: Duration::from_secs(30),
            concurrency_limit: 1024,
            max_message_bytes: 16 * 1024 * 1024,
            max_connection_age_ms: Duration::from_secs(300),
            max_connection_age_grace_ms: Duration::from_secs(30),
            shutdown_drain_delay_ms: Duration::ZERO,
        }
    }
}

/// One service's Postgres database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/database`; the database is created if missing.
    pub url: String,
    pub max_connections: u32,
    #[serde(with = "millis")]
    pub acquire_timeout_ms: Duration,
    /// Run pending migrations when the service starts (else `branchscore migrate`).
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    /// Defaults for the database named `database` on the local server.
    pub fn local(database: &str) -> Self {
        DatabaseConfig {
            url: format!("postgres://postgres@127.0.0.1:5432/{database}"),
            max_connections: 16,
            acquire_timeout_ms: Duration::from_secs(5),
            migrate_on_start: true,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig::local("branchscore")
    }
}

/// Redis, used as a cache and a bus, never as the source of truth.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://127.0.0.1:6379`; empty means an in-process cache.
    pub url: String,
    /// Prepended to every key, so several deployments (or tests) share one Redis.
    pub key_prefix: String,
    /// A command slower than this counts as a miss; the caller falls back to Postgres.
    #[serde(with = "millis")]
    pub command_timeout_ms: Duration,
    /// After a failed connection, wait this long before trying again.
    #[serde(with = "millis")]
    pub reconnect_backoff_ms: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "bs:".into(),
            command_timeout_ms: Duration::from_millis(50),
            reconnect_backoff_ms: Duration::from_secs(1),
        }
    }
}

/// Where the other services answer, and how calls to them behave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeersConfig {
    pub clients: String,
    pub pipeline: String,
    pub feedback: String,
    pub kpi: String,
    pub reporting: String,
    /// Deadlines, retries and back-off of every call to a peer.
    pub client: crate::client::ClientConfig,
}

impl Default for PeersConfig {
    fn default() -> Self {
        PeersConfig {
            clients: "http://127.0.0.1:50051".into(),
            pipeline: "http://127.0.0.1:50052".into(),
            feedback: "http://127.0.0.1:50053".into(),
            kpi: "http://127.0.0.1:50054".into(),
            reporting: "http://127.0.0.1:50055".into(),
            client: crate::client::ClientConfig::default(),
        }
    }
}

/// Company-wide facts every service needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanyConfig {
    /// IANA zone in which business dates and periods are counted.
    pub time_zone: String,
    /// ISO 4217 currency the company reports in.
    pub currency: String,
}

impl Default for CompanyConfig {
    fn default() -> Self {
        CompanyConfig { time_zone: "Europe/Warsaw".into(), currency: "PLN".into() }
    }
}

impl CompanyConfig {
    /// The parsed time zone.
    pub fn zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.time_zone
            .parse()
            .map_err(|_| ConfigError(format!("company.time_zone {:?} is not an IANA time zone", self.time_zone)))
    }

    /// Today's date in the company's zone.
    pub fn today(&self) -> Result<chrono::NaiveDate, ConfigError> {
        self.date_of(chrono::Utc::now())
    }

    /// The company's business date of an instant (not the UTC date: near
    /// midnight the two differ).
    pub fn date_of(&self, at: chrono::DateTime<chrono::Utc>) -> Result<chrono::NaiveDate, ConfigError> {
        Ok(at.with_timezone(&self.zone()?).date_naive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Sample {
        server: ServerConfig,
        company: CompanyConfig,
    }

    #[test]
    fn business_dates_are_the_company_zones() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        let date = |s: &str| s.parse::<chrono::NaiveDate>().expect("date");
        let warsaw = CompanyConfig::default();
        // 23:30 UTC is 00:30 the next day in Warsaw in winter (UTC+1), 01:30 in summer (UTC+2).
        assert_eq!(warsaw.date_of(at("2026-11-26T23:30:00Z")).unwrap(), date("2026-11-27"));
        assert_eq!(warsaw.date_of(at("2026-11-26T22:59:59Z")).unwrap(), date("2026-11-26"));
        assert_eq!(warsaw.date_of(at("2026-07-01T22:00:00Z")).unwrap(), date("2026-07-02"));
        let bad = CompanyConfig { time_zone: "Mars/Olympus".into(), ..CompanyConfig::default() };
        assert!(bad.date_of(at("2026-11-26T12:00:00Z")).is_err());
    }

    #[test]
    fn file_overrides_defaults_and_durations_are_millis() {
        let dir = std::env::temp_dir().join(format!("bs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("config.toml");
        std::fs::write(&file, "[server]\nrequest_timeout_ms = 1500\n[company]\ncurrency = \"EUR\"\n").expect("write");
        let sample: Sample = load(Some(&file)).expect("loads");
        assert_eq!(sample.server.request_timeout_ms, Duration::from_millis(1500));
        assert_eq!(sample.company.currency, "EUR");
        assert_eq!(sample.company.time_zone, "Europe/Warsaw");
        let dumped = dump(&sample).expect("dumps");
        assert!(dumped.contains("request_timeout_ms = 1500"), "{dumped}");
    }

    #[test]
    fn unknown_keys_and_missing_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("bs-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("config.toml");
        std::fs::write(&file, "[server]\nrequest_timeout = 1500\n").expect("write");
        let err = load::<Sample>(Some(&file)).expect_err("unknown key");
        assert!(err.to_string().contains("request_timeout"), "{err}");
        let err = load::<Sample>(Some(&dir.join("absent.toml"))).expect_err("missing file");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn bad_zone_is_reported() {
        let company = CompanyConfig { time_zone: "Mars/Base".into(), ..CompanyConfig::default() };
        assert!(company.zone().is_err());
    }
}
