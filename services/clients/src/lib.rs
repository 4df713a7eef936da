//! The clients service: master data, ERP transaction ingestion and the
//! client score read path (`branchscore.clients.v1`).

pub mod api;
pub mod explain;
pub mod facts;
pub mod freshness;
pub mod gather;
pub mod ingest;
pub mod latest_run;
pub mod maturity_batch;
pub mod nightly;
pub mod portrait;
pub mod recompute;
pub mod satisfaction;
pub mod score_cache;
pub mod scoring_api;
pub mod settings;
pub mod store;

use branchscore_platform::auth::TokenIssuer;
use branchscore_platform::config::{DatabaseConfig, ServerConfig};
use branchscore_platform::server::ServerBuilder;
use branchscore_platform::service::{self, PlatformConfig, RunningService, ServiceSpec};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::clients::v1::clients_service_server::ClientsServiceServer;
use branchscore_proto::clients::v1::scoring_service_server::ScoringServiceServer;
use recompute::Recompute;
use satisfaction::SatisfactionSource;
use score_cache::ScoreCache;
use scoring_api::ScoringApi;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The `[clients]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// How long a score stays in the cache (a recompute overwrites the scores it changes).
    #[serde(with = "branchscore_platform::config::millis")]
    pub score_cache_ttl_ms: Duration,
    /// Local time (company zone) of the nightly recompute, e.g. "02:30"; empty disables it.
    pub recompute_at: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig { listen: ([127, 0, 0, 1], 50051).into(), ..ServerConfig::default() },
            database: DatabaseConfig::local("branchscore_clients"),
            score_cache_ttl_ms: Duration::from_secs(36 * 3600),
            recompute_at: "02:30".into(),
        }
    }
}

/// Starts the clients service in the background.
pub async fn run(
    config: &Config,
    platform: &PlatformConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    let spec = ServiceSpec { name: "clients", server: &config.server, database: &config.database, migrator: &MIGRATOR };
    let ttl = config.score_cache_ttl_ms;
    let nightly_at = nightly::parse_time(&config.recompute_at)?;
    // A signing key the services would refuse stops the start here.
    let nightly_issuer = TokenIssuer::for_deployment(&platform.auth)?;
    // Satisfaction comes from the feedback service when one is configured.
    let feedback = (!platform.peers.feedback.trim().is_empty())
        .then(|| branchscore_platform::client::channel(&platform.peers.feedback, &platform.peers.client))
        .transpose()?;
    let nightly_shutdown = shutdown.clone();
    service::launch(
        spec,
        platform,
        |context| {
            let max = context.server.max_message_bytes;
            let latest_run = latest_run::LatestRun::new(context.pool.clone(), ttl);
            let score_cache = ScoreCache::new(context.cache, context.pool.clone(), ttl);
            let recompute = Recompute {
                pool: context.pool.clone(),
                score_cache: score_cache.clone(),
                currency: context.company.currency.clone(),
                satisfaction: feedback.clone().map(|channel| SatisfactionSource::new(channel, &platform.peers.client)),
                latest_run: latest_run.clone(),
            };
            tokio::spawn(latest_run.clone().keep_reading(nightly_shutdown.clone()));
            tokio::spawn(score_cache.clone().keep_settling(nightly_shutdown.clone()));
            tokio::spawn(freshness::keep_fresh(
                context.pool.clone(),
                context.company.clone(),
                freshness::REFRESH_EVERY,
                nightly_shutdown.clone(),
            ));
            if let Some(at) = nightly_at {
                let company = context.company.clone();
                tokio::spawn(nightly::schedule(recompute.clone(), company, at, nightly_issuer, nightly_shutdown));
            }
            let scoring = ScoringServiceServer::new(ScoringApi::new(recompute, context.company.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            let api = api::ClientsApi::new(context.pool, score_cache, context.company, latest_run);
            let clients = ClientsServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
            ServerBuilder::new(context.server)
                .add_service(InterceptedService::new(clients, context.authenticator.clone()))
                .add_service(InterceptedService::new(scoring, context.authenticator))
        },
        shutdown,
    )
    .await
}
