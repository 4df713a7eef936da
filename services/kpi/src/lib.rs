//! The KPI service (`branchscore.kpi.v1`): scorecards per role, seasonal
//! sales plans, and bonuses computed from the facts of the clients, pipeline
//! and feedback services, approved by head office, exported to payroll and
//! traceable to the records behind every number (domain.md section 4).

pub mod api;
pub mod breakdown;
pub mod compute;
pub mod convert;
pub mod plans;
pub mod store;
pub mod upstream;

use branchscore_platform::config::{DatabaseConfig, ServerConfig};
use branchscore_platform::server::ServerBuilder;
use branchscore_platform::service::{self, PlatformConfig, RunningService, ServiceSpec};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::kpi::v1::kpi_service_server::KpiServiceServer;
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The `[kpi]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig { listen: ([127, 0, 0, 1], 50054).into(), ..ServerConfig::default() },
            database: DatabaseConfig::local("branchscore_kpi"),
        }
    }
}

/// Starts the KPI service in the background.
pub async fn run(
    config: &Config,
    platform: &PlatformConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    let upstream = upstream::Upstream::new(&platform.peers)?;
    let spec = ServiceSpec { name: "kpi", server: &config.server, database: &config.database, migrator: &MIGRATOR };
    service::launch(
        spec,
        platform,
        |context| {
            let max = context.server.max_message_bytes;
            let api = api::KpiApi::new(context.pool, context.company, upstream);
            let server = KpiServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
            ServerBuilder::new(context.server).add_service(InterceptedService::new(server, context.authenticator))
        },
        shutdown,
    )
    .await
}
