//! The services this binary can run, and how each one starts and migrates.
use crate::config::BranchscoreConfig;
use branchscore_platform::config::DatabaseConfig;
use branchscore_platform::service::RunningService;
use branchscore_platform::shutdown::CancellationToken;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sqlx::migrate::Migrator;

/// A service `serve` and `migrate` can be asked for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ServiceName {
    Clients,
    Pipeline,
    Feedback,
    Kpi,
    Reporting,
    Gateway,
}

impl ServiceName {
    /// In start order: a service starts after the peers it calls.
    pub const ALL: [ServiceName; 6] = [
        ServiceName::Clients,
        ServiceName::Pipeline,
        ServiceName::Feedback,
        ServiceName::Kpi,
        ServiceName::Reporting,
        ServiceName::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Clients => "clients",
            ServiceName::Pipeline => "pipeline",
            ServiceName::Feedback => "feedback",
            ServiceName::Kpi => "kpi",
            ServiceName::Reporting => "reporting",
            ServiceName::Gateway => "gateway",
        }
    }

    /// The chosen services, or all of them when none is named.
    pub fn selection(named: &[ServiceName]) -> Vec<ServiceName> {
        if named.is_empty() { ServiceName::ALL.to_vec() } else { named.to_vec() }
    }

    pub fn database(self, config: &BranchscoreConfig) -> &DatabaseConfig {
        match self {
            ServiceName::Clients => &config.clients.database,
            ServiceName::Pipeline => &config.pipeline.database,
            ServiceName::Feedback => &config.feedback.database,
            ServiceName::Kpi => &config.kpi.database,
            ServiceName::Reporting => &config.reporting.database,
            ServiceName::Gateway => &config.gateway.database,
        }
    }

    pub fn migrator(self) -> &'static Migrator {
        match self {
            ServiceName::Clients => &branchscore_clients::MIGRATOR,
            ServiceName::Pipeline => &branchscore_pipeline::MIGRATOR,
            ServiceName::Feedback => &branchscore_feedback::MIGRATOR,
            ServiceName::Kpi => &branchscore_kpi::MIGRATOR,
            ServiceName::Reporting => &branchscore_reporting::MIGRATOR,
            ServiceName::Gateway => &branchscore_gateway::MIGRATOR,
        }
    }

    /// Starts the service in the background on its configured port.
    pub async fn start(
        self,
        config: &BranchscoreConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<RunningService> {
        let platform = config.platform();
        match self {
            ServiceName::Clients => branchscore_clients::run(&config.clients, &platform, shutdown).await,
            ServiceName::Pipeline => branchscore_pipeline::run(&config.pipeline, &platform, shutdown).await,
            ServiceName::Feedback => branchscore_feedback::run(&config.feedback, &platform, shutdown).await,
            ServiceName::Kpi => branchscore_kpi::run(&config.kpi, &platform, shutdown).await,
            ServiceName::Reporting => branchscore_reporting::run(&config.reporting, &platform, shutdown).await,
            ServiceName::Gateway => branchscore_gateway::run(&config.gateway, &platform, shutdown).await,
        }
    }
}

/// Creates each service's database if missing and applies its migrations.
pub async fn migrate(config: &BranchscoreConfig, services: &[ServiceName]) -> anyhow::Result<()> {
    for service in services {
        let database = service.database(config);
        let pool = branchscore_platform::db::connect(database).await?;
        branchscore_platform::db::migrate(&pool, service.migrator()).await?;
        pool.close().await;
        tracing::info!(service = service.as_str(), "database migrated");
    }
    Ok(())
}

/// Starts `services` and waits until shutdown is requested and every one has
/// drained; one service failing stops the others.
pub async fn serve(
    config: &BranchscoreConfig,
    services: &[ServiceName],
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut running = FuturesUnordered::new();
    for service in services {
        let started = service.start(config, shutdown.clone()).await?;
        tracing::info!(service = started.name, addr = %started.addr, "listening");
        let name = started.name;
        running.push(async move { (name, started.task.await) });
    }
    let mut failure = None;
    while let Some((name, outcome)) = running.next().await {
        let err = match outcome {
            Ok(Ok(())) => {
                tracing::info!(service = name, "stopped");
                continue;
            }
            Ok(Err(err)) => err,
            Err(join) => anyhow::anyhow!("{join}"),
        };
        tracing::error!(service = name, error = %format!("{err:#}"), "failed; stopping the others");
        shutdown.cancel();
        failure.get_or_insert(err.context(format!("service {name}")));
    }
    failure.map_or(Ok(()), Err)
}
