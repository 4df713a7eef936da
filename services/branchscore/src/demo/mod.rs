//! `branchscore demo`: a synthetic branch network loaded through the public
//! API, then what the platform makes of it.
pub mod kpi;
pub mod load;
pub mod network;
pub mod pipeline;
pub mod report;
pub mod reports;
pub mod scores;

use crate::config::BranchscoreConfig;
use crate::services::ServiceName;
use branchscore_platform::Role;
use branchscore_platform::auth::{ALL_BRANCHES, TokenIssuer};
use branchscore_platform::client::{self, CallCredentials, ClientConfig, RetryPolicy};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use chrono::NaiveDate;
use network::NetworkSpec;
use std::time::{Duration, Instant};

/// How big a network to generate and where to send it.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Seed of the generator: the same seed gives the same network.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub branches: usize,
    #[arg(long, default_value_t = 3000)]
    pub clients: usize,
    /// Months of sales history before the as-of month.
    #[arg(long, default_value_t = 24)]
    pub months: u32,
    /// Last business date of the history (default: today in the company's zone).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// The gateway of a running deployment (e.g. `http://127.0.0.1:50050`):
    /// every call goes through it. Without it the demo starts the services
    /// and the gateway in this process on fresh `branchscore_demo_*`
    /// databases (dropped and recreated on every run).
    #[arg(long)]
    pub target: Option<String>,
}

/// Runs the demo and prints its summary to stdout.
pub async fn run(config: &BranchscoreConfig, options: &DemoOptions) -> anyhow::Result<()> {
    let as_of = match options.as_of {
        Some(date) => date,
        None => config.company.today()?,
    };
    let spec = NetworkSpec {
        seed: options.seed,
        branches: options.branches,
        clients: options.clients,
        months: options.months,
        as_of,
        currency: config.company.currency.clone(),
    };
    let shutdown = CancellationToken::new();
    let _stop_on_exit = shutdown.clone().drop_guard();
    let (target, config) = match &options.target {
        Some(url) => (url.clone(), config.clone()),
        None => {
            let config = in_process_config(config)?;
            for service in ServiceName::ALL {
                branchscore_platform::db::recreate_database(service.database(&config)).await?;
                let running = service.start(&config, shutdown.clone()).await?;
                eprintln!("started the {} service on {}", running.name, running.addr);
            }
            (format!("http://{}", config.gateway.server.listen), config)
        }
    };
    println!(
        "branchscore demo: seed {}, {} branches, {} clients, sales from {} months before {as_of} up to that day",
        spec.seed, spec.branches, spec.clients, spec.months
    );
    let network = network::generate(&spec);
    let issuer = TokenIssuer::new(&config.auth);
    let erp_token =
        issuer.mint("demo-erp", Role::ErpIntegration, &[ALL_BRANCHES.to_owned()], Duration::from_secs(3600))?;
    let client_config = ClientConfig { request_timeout_ms: Duration::from_secs(120), ..ClientConfig::default() };
    let channel = client::channel(&target, &client_config)?;
    client::wait_serving(channel.clone(), Duration::from_secs(60)).await?;
    let clients = ClientsServiceClient::with_interceptor(channel.clone(), CallCredentials::bearer(&erp_token)?)
        .max_decoding_message_size(config.clients.server.max_message_bytes)
        .max_encoding_message_size(config.clients.server.max_message_bytes);
    let started = Instant::now();
    let loaded = load::load(&clients, &RetryPolicy::new(&client_config), &network).await?;
    print!("{}", report::loading(&network, &loaded, started.elapsed().as_secs_f64(), &spec.currency));

    let analyst =
        CallCredentials::bearer(&issuer.mint("demo-analyst", Role::HqAnalyst, &[], Duration::from_secs(3600))?)?;
    let scoring = ScoringServiceClient::with_interceptor(channel.clone(), analyst.clone());
    let reader = ClientsServiceClient::with_interceptor(channel.clone(), analyst)
        .max_decoding_message_size(config.clients.server.max_message_bytes);
    let scored = scores::score_network(&scoring, &reader, as_of, &network).await?;
    print!("{}", report::scoring(&scored, &network, &spec.currency));

    let tokens = branchscore_feedback::demo::DemoTokens {
        head_office: issuer.mint("demo-analyst", Role::HqAnalyst, &[], Duration::from_secs(3600))?,
        erp: erp_token.clone(),
    };
    let feedback = branchscore_feedback::demo::run(channel.clone(), channel.clone(), &tokens, as_of, spec.seed).await?;
    print!("{feedback}");
    // With survey answers in, the scores take each client's satisfaction into account.
    let rescored = scores::recompute(&scoring, as_of).await?;
    println!(
        "  scores recomputed with the satisfaction of {} clients who answered ({:.1} s): {} of {} scores changed",
        rescored.clients_with_satisfaction,
        rescored.duration_ms as f64 / 1000.0,
        rescored.scores_rewritten,
        rescored.clients
    );

    let sales = CallCredentials::bearer(&issuer.mint("demo-sales", Role::Admin, &[], Duration::from_secs(3600))?)?;
    let pipeline = PipelineServiceClient::with_interceptor(channel.clone(), sales);
    let story = pipeline::run(&pipeline, &network, spec.seed, as_of).await?;
    print!("{}", report::pipeline(&story, &spec.currency));

    let head_office =
        CallCredentials::bearer(&issuer.mint("demo-analyst", Role::HqAnalyst, &[], Duration::from_secs(3600))?)?;
    let kpi = KpiServiceClient::with_interceptor(channel.clone(), head_office.clone());
    let bonuses = kpi::run(&kpi, &network, as_of, &spec.currency).await?;
    print!("{}", report::kpi(&bonuses, &spec.currency));

    let reporting = ReportingServiceClient::with_interceptor(channel, head_office);
    let reports = reports::run(&reporting, &kpi, kpi::last_quarter(as_of), as_of).await?;
    print!("{}", report::reports(&reports, &spec.currency));
    Ok(())
}

/// The configuration with every service on a free local port (known before
/// any starts, so each finds its peers) and its own `branchscore_demo_*`
/// database, so the demo never touches real data.
fn in_process_config(config: &BranchscoreConfig) -> anyhow::Result<BranchscoreConfig> {
    let mut demo = config.clone();
    for service in ServiceName::ALL {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let url = format!("http://{port}");
        let (server, database) = match service {
            ServiceName::Clients => {
                demo.peers.clients = url;
                (&mut demo.clients.server, &mut demo.clients.database)
            }
            ServiceName::Pipeline => {
                demo.peers.pipeline = url;
                (&mut demo.pipeline.server, &mut demo.pipeline.database)
            }
            ServiceName::Feedback => {
                demo.peers.feedback = url;
                (&mut demo.feedback.server, &mut demo.feedback.database)
            }
            ServiceName::Kpi => {
                demo.peers.kpi = url;
                (&mut demo.kpi.server, &mut demo.kpi.database)
            }
            ServiceName::Reporting => {
                demo.peers.reporting = url;
                (&mut demo.reporting.server, &mut demo.reporting.database)
            }
            ServiceName::Gateway => (&mut demo.gateway.server, &mut demo.gateway.database),
        };
        server.listen = port;
        database.url = renamed_database(&database.url, &format!("branchscore_demo_{}", service.as_str()));
        database.migrate_on_start = true;
    }
    demo.redis.key_prefix = "bs-demo:".into();
    // One head-office token answers a thousand surveys and opens hundreds of
    // deals within seconds: far above a person's rate.
    demo.gateway.rate_limit.calls_per_second = 100_000.0;
    demo.gateway.rate_limit.burst = 100_000;
    Ok(demo)
}

fn renamed_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let base = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_databases_keep_server_and_options() {
        assert_eq!(
            renamed_database("postgres://u:p@db:5432/branchscore_clients?sslmode=require", "branchscore_demo_clients"),
            "postgres://u:p@db:5432/branchscore_demo_clients?sslmode=require"
        );
        assert_eq!(renamed_database("postgres://127.0.0.1/x", "y"), "postgres://127.0.0.1/y");
    }
}
