//! The pipeline service (`branchscore.pipeline.v1`): leads, deals moving
//! through probability-weighted stages with a qualification gate, control
//! points, losses, the funnel and the forecast.

pub mod api;
pub mod deals;
pub mod events;
pub mod presets;
pub mod store;

use branchscore_platform::config::{DatabaseConfig, ServerConfig};
use branchscore_platform::server::ServerBuilder;
use branchscore_platform::service::{self, PlatformConfig, RunningService, ServiceSpec};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::pipeline::v1::pipeline_service_server::PipelineServiceServer;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// First-response SLA and priority of one lead channel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    pub sla_seconds: i64,
    /// Lower is more urgent.
    pub priority: i16,
}

/// Per channel: the seed cut first responses from hours to minutes, fastest
/// where the client is waiting right now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelRules {
    pub walk_in: ChannelRule,
    pub phone: ChannelRule,
    pub messenger: ChannelRule,
    pub site: ChannelRule,
    pub email: ChannelRule,
}

impl Default for ChannelRules {
    fn default() -> Self {
        ChannelRules {
            walk_in: ChannelRule { sla_seconds: 5 * 60, priority: 1 },
            phone: ChannelRule { sla_seconds: 5 * 60, priority: 1 },
            messenger: ChannelRule { sla_seconds: 15 * 60, priority: 2 },
            site: ChannelRule { sla_seconds: 30 * 60, priority: 3 },
            email: ChannelRule { sla_seconds: 60 * 60, priority: 4 },
        }
    }
}

/// The `[pipeline]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// A deal may take this many average sales cycles to pass the gate.
    pub cycle_multiple: f64,
    pub channels: ChannelRules,
    /// How often the outbox is relayed to the Redis stream.
    #[serde(with = "branchscore_platform::config::millis")]
    pub relay_interval_ms: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig { listen: ([127, 0, 0, 1], 50052).into(), ..ServerConfig::default() },
            database: DatabaseConfig::local("branchscore_pipeline"),
            cycle_multiple: 4.0,
            channels: ChannelRules::default(),
            relay_interval_ms: Duration::from_millis(500),
        }
    }
}

/// Starts the pipeline service in the background.
pub async fn run(
    config: &Config,
    platform: &PlatformConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    anyhow::ensure!(
        config.cycle_multiple.is_finite() && config.cycle_multiple > 0.0,
        "pipeline.cycle_multiple must be a positive number"
    );
    // Deals are checked against the clients service.
    let clients = branchscore_platform::client::channel(&platform.peers.clients, &platform.peers.client)?;
    let spec =
        ServiceSpec { name: "pipeline", server: &config.server, database: &config.database, migrator: &MIGRATOR };
    let relay_shutdown = shutdown.clone();
    let relay_enabled = !platform.redis.url.trim().is_empty();
    service::launch(
        spec,
        platform,
        |context| {
            let max = context.server.max_message_bytes;
            if relay_enabled {
                tokio::spawn(events::relay(
                    context.pool.clone(),
                    context.cache.clone(),
                    config.relay_interval_ms,
                    relay_shutdown,
                ));
            }
            let api = api::PipelineApi::new(context.pool, context.company, clients, config, &platform.peers.client);
            let server = PipelineServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
            ServerBuilder::new(context.server).add_service(InterceptedService::new(server, context.authenticator))
        },
        shutdown,
    )
    .await
}
