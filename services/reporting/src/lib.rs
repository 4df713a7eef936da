//! The reporting service (`branchscore.reporting.v1`): the reports of
//! domain.md section 5, gathered from the clients, pipeline, feedback and
//! KPI services with the caller's token, assembled here, and exported to
//! CSV or Excel with an audit of who exported what.

pub mod api;
pub mod delivery;
pub mod export;
pub mod request;
pub mod store;
pub mod tables;
pub mod upstream;

use branchscore_platform::config::{DatabaseConfig, ServerConfig};
use branchscore_platform::server::ServerBuilder;
use branchscore_platform::service::{self, PlatformConfig, RunningService, ServiceSpec};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::reporting::v1::reporting_service_server::ReportingServiceServer;
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The `[reporting]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig { listen: ([127, 0, 0, 1], 50055).into(), ..ServerConfig::default() },
            database: DatabaseConfig::local("branchscore_reporting"),
        }
    }
}

/// Starts the reporting service in the background.
pub async fn run(
    config: &Config,
    platform: &PlatformConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    let upstream = upstream::Upstream::new(&platform.peers)?;
    let spec =
        ServiceSpec { name: "reporting", server: &config.server, database: &config.database, migrator: &MIGRATOR };
    service::launch(
        spec,
        platform,
        |context| {
            let max = context.server.max_message_bytes;
            let api = api::ReportingApi::new(context.pool, context.company, upstream);
            let server = ReportingServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
            ServerBuilder::new(context.server).add_service(InterceptedService::new(server, context.authenticator))
        },
        shutdown,
    )
    .await
}
