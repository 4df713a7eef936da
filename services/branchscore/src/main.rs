//! `branchscore serve | migrate | token | demo`.
use branchscore::config::BranchscoreConfig;
use branchscore::demo::{self, DemoOptions};
use branchscore::services::{self, ServiceName};
use branchscore_platform::Role;
use branchscore_platform::auth::TokenIssuer;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "branchscore", version, about = "Client scoring for branch networks")]
struct Cli {
    /// TOML configuration file; every key can also be set as
    /// `BRANCHSCORE_<SECTION>__<KEY>` (e.g. `BRANCHSCORE_CLIENTS__DATABASE__URL`).
    #[arg(long, short, global = true, env = "BRANCHSCORE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run services (all when none is named) until SIGTERM/SIGINT.
    Serve {
        services: Vec<ServiceName>,
        /// Print the effective configuration as TOML and exit.
        #[arg(long)]
        dump_config: bool,
    },
    /// Create the services' databases if missing and apply their migrations.
    Migrate { services: Vec<ServiceName> },
    /// Mint a token: HS256 with the configured secret, or RS256 with auth.rs256_signing_key_pem.
    Token {
        /// admin, hq_analyst, branch_manager, branch_staff or erp_integration.
        #[arg(long)]
        role: Role,
        /// A branch the token may act for; repeat for several. `*` (ERP only) means all.
        #[arg(long = "branch")]
        branches: Vec<String>,
        #[arg(long, default_value = "dev")]
        subject: String,
        #[arg(long, default_value_t = 12)]
        ttl_hours: u64,
    },
    /// Generate a synthetic branch network, load it through the API and print what came of it.
    Demo(DemoOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match BranchscoreConfig::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("branchscore: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("branchscore: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("branchscore: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, config: BranchscoreConfig) -> anyhow::Result<()> {
    match command {
        Command::Serve { dump_config: true, .. } => {
            print!("{}", branchscore_platform::config::dump(&config)?);
            Ok(())
        }
        Command::Serve { services, .. } => {
            let _telemetry = branchscore_platform::telemetry::init(&config.telemetry, "branchscore")?;
            let shutdown = branchscore_platform::shutdown::on_signal();
            if let Some(addr) = metrics_addr(&config)? {
                let bound = branchscore_platform::metrics::spawn(addr, shutdown.clone()).await?;
                tracing::info!(%bound, "metrics at /metrics");
            }
            services::serve(&config, &ServiceName::selection(&services), shutdown).await
        }
        Command::Migrate { services } => {
            let _telemetry = branchscore_platform::telemetry::init(&config.telemetry, "branchscore-migrate")?;
            services::migrate(&config, &ServiceName::selection(&services)).await
        }
        Command::Token { role, branches, subject, ttl_hours } => {
            let issuer = TokenIssuer::for_deployment(&config.auth)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "auth.rs256_public_key_pem is set and auth.rs256_signing_key_pem is not: people's tokens come \
                     from your identity provider, not from here"
                )
            })?;
            let token = issuer.mint(&subject, role, &branches, Duration::from_secs(ttl_hours * 3600))?;
            println!("{token}");
            Ok(())
        }
        Command::Demo(options) => demo::run(&config, &options).await,
    }
}

fn metrics_addr(config: &BranchscoreConfig) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let listen = config.telemetry.metrics_listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let addr = listen.parse().map_err(|err| anyhow::anyhow!("telemetry.metrics_listen {listen:?}: {err}"))?;
    Ok(Some(addr))
}
