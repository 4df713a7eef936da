//! The feedback service (`branchscore.feedback.v1`): versioned surveys,
//! invitations by cadence and channel, responses by link, staff or ERP,
//! complaints and their workflow, coverage and satisfaction statistics,
//! staff evaluation, touchpoint weights and the outbox. Its own database;
//! clients, classes and purchases come from the clients service over gRPC
//! (`peers.clients` of the platform configuration).

pub mod clients;
pub mod complaint_api;
pub mod complaints;
pub mod convert;
pub mod demo;
pub mod escalation;
pub mod feedback_api;
pub mod invitations;
pub mod link_api;
pub mod links;
pub mod outbox;
pub mod quality_api;
pub mod responses;
pub mod stats;
pub mod store;
pub mod surveys;

use branchscore_platform::config::{CompanyConfig, DatabaseConfig, ServerConfig};
use branchscore_platform::server::ServerBuilder;
use branchscore_platform::service::{self, PlatformConfig, RunningService, ServiceSpec};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::feedback::v1::complaint_service_server::ComplaintServiceServer;
use branchscore_proto::feedback::v1::feedback_service_server::FeedbackServiceServer;
use branchscore_proto::feedback::v1::staff_quality_service_server::StaffQualityServiceServer;
use branchscore_proto::feedback::v1::survey_link_service_server::SurveyLinkServiceServer;
use branchscore_scoring::cadence::CadenceRules;
use branchscore_scoring::complaints::ComplaintState;
use branchscore_scoring::quality::QualityWeights;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Secret used when none is configured: only for local development and tests.
pub const DEV_LINK_SECRET: &str = "branchscore-dev-survey-link-secret-do-not-use";

/// The `[feedback]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub links: LinkConfig,
    pub cadence: CadenceRules,
    /// Client regions (as the ERP records them) that mean "abroad": those
    /// clients get printed forms.
    pub international_regions: Vec<String>,
    pub complaints: ComplaintConfig,
    pub quality_weights: QualityWeights,
    /// Coverage goal shown beside coverage reports (the seeds aim for 80%).
    pub coverage_target: f64,
    /// How often an idle `WatchOutbox` stream looks for events written by other replicas.
    #[serde(with = "branchscore_platform::config::millis")]
    pub outbox_poll_ms: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig { listen: ([127, 0, 0, 1], 50053).into(), ..ServerConfig::default() },
            database: DatabaseConfig::local("branchscore_feedback"),
            links: LinkConfig::default(),
            cadence: CadenceRules::default(),
            international_regions: vec!["international".into()],
            complaints: ComplaintConfig::default(),
            quality_weights: QualityWeights::default(),
            coverage_target: 0.8,
            outbox_poll_ms: Duration::from_millis(500),
        }
    }
}

/// Survey links: unguessable tokens derived from a secret, never stored in clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// HMAC key of the link tokens, at least 32 bytes. Changing it breaks the
    /// links not delivered yet (those already handed out keep working).
    pub secret: String,
    /// The public survey page; the token is appended.
    pub base_url: String,
    /// How long a web, e-mail or messenger link stays valid.
    pub digital_ttl_days: u32,
    /// How long a printed form's link stays valid (paper travels slowly).
    pub printed_ttl_days: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            secret: DEV_LINK_SECRET.into(),
            base_url: "https://feedback.branchscore.local/s/".into(),
            digital_ttl_days: 30,
            printed_ttl_days: 60,
        }
    }
}

/// Which answers open complaints and how long each state may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplaintConfig {
    /// An NPS detractor (0-6) opens a complaint.
    pub nps_detractors_open: bool,
    /// Deadline of each open state, counted from entering it.
    #[serde(with = "branchscore_platform::config::millis")]
    pub registered_ms: Duration,
    #[serde(with = "branchscore_platform::config::millis")]
    pub investigating_ms: Duration,
    #[serde(with = "branchscore_platform::config::millis")]
    pub cause_identified_ms: Duration,
    #[serde(with = "branchscore_platform::config::millis")]
    pub cause_removed_ms: Duration,
    #[serde(with = "branchscore_platform::config::millis")]
    pub process_fixed_ms: Duration,
    /// How often overdue complaints are looked for and escalated.
    #[serde(with = "branchscore_platform::config::millis")]
    pub escalation_check_ms: Duration,
}

impl Default for ComplaintConfig {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * 24 * 3600);
        ComplaintConfig {
            nps_detractors_open: true,
            registered_ms: days(1),
            investigating_ms: days(3),
            cause_identified_ms: days(2),
            cause_removed_ms: days(7),
            process_fixed_ms: days(14),
            escalation_check_ms: Duration::from_secs(60),
        }
    }
}

impl ComplaintConfig {
    /// The deadline of an open state; `None` for closed.
    pub fn deadline(&self, state: ComplaintState) -> Option<Duration> {
        match state {
            ComplaintState::Registered => Some(self.registered_ms),
            ComplaintState::Investigating => Some(self.investigating_ms),
            ComplaintState::CauseIdentified => Some(self.cause_identified_ms),
            ComplaintState::CauseRemoved => Some(self.cause_removed_ms),
            ComplaintState::ProcessFixed => Some(self.process_fixed_ms),
            ComplaintState::Closed => None,
        }
    }
}

impl Config {
    /// Refuses settings the service cannot work with, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.links.secret.len() >= 32, "feedback.links.secret must be at least 32 bytes");
        anyhow::ensure!(
            self.links.digital_ttl_days > 0 && self.links.printed_ttl_days > 0,
            "feedback.links.*_ttl_days must be positive"
        );
        anyhow::ensure!(
            ComplaintState::ALL.iter().filter_map(|s| self.complaints.deadline(*s)).all(|d| !d.is_zero()),
            "feedback.complaints deadlines must be positive"
        );
        anyhow::ensure!(
            !self.complaints.escalation_check_ms.is_zero(),
            "feedback.complaints.escalation_check_ms must be positive"
        );
        anyhow::ensure!(self.quality_weights.is_valid(), "feedback.quality_weights must be non-negative, one positive");
        anyhow::ensure!(
            self.coverage_target > 0.0 && self.coverage_target <= 1.0,
            "feedback.coverage_target must be in (0, 1]"
        );
        anyhow::ensure!(
            self.cadence.annual_interval_days > 0 && self.cadence.new_client_months > 0,
            "feedback.cadence intervals must be positive"
        );
        anyhow::ensure!(!self.outbox_poll_ms.is_zero(), "feedback.outbox_poll_ms must be positive");
        Ok(())
    }
}

/// What every part of the service works with; cheap to clone.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub pool: PgPool,
    pub company: CompanyConfig,
    pub zone: chrono_tz::Tz,
    pub config: Arc<Config>,
    pub clients: clients::ClientsDirectory,
    pub links: links::SurveyLinks,
    pub outbox: outbox::OutboxSignal,
    pub shutdown: CancellationToken,
}

impl Feedback {
    /// Today in the company's time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now().with_timezone(&self.zone).date_naive()
    }
}

/// Starts the feedback service in the background.
pub async fn run(
    config: &Config,
    platform: &PlatformConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    config.validate()?;
    let zone = platform.company.zone()?;
    // Client base, classes, first purchases and employees come from the clients service.
    let clients = clients::ClientsDirectory::new(&platform.peers.clients, &platform.peers.client)?;
    let spec =
        ServiceSpec { name: "feedback", server: &config.server, database: &config.database, migrator: &MIGRATOR };
    let config = Arc::new(config.clone());
    let service_shutdown = shutdown.clone();
    service::launch(
        spec,
        platform,
        |context| {
            let max = context.server.max_message_bytes;
            let feedback = Feedback {
                pool: context.pool,
                company: context.company,
                zone,
                links: links::SurveyLinks::new(&config.links),
                config,
                clients,
                outbox: outbox::OutboxSignal::default(),
                shutdown: service_shutdown.clone(),
            };
            tokio::spawn(escalation::run(feedback.clone(), service_shutdown));
            let api = FeedbackServiceServer::new(feedback_api::FeedbackApi::new(feedback.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            let complaints = ComplaintServiceServer::new(complaint_api::ComplaintApi::new(feedback.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            let quality = StaffQualityServiceServer::new(quality_api::QualityApi::new(feedback.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            // The link token is this service's credential: no bearer token here.
            let link = SurveyLinkServiceServer::new(link_api::LinkApi::new(feedback))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            ServerBuilder::new(context.server)
                .add_service(InterceptedService::new(api, context.authenticator.clone()))
                .add_service(InterceptedService::new(complaints, context.authenticator.clone()))
                .add_service(InterceptedService::new(quality, context.authenticator))
                .add_service(link)
        },
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        Config::default().validate().expect("defaults");
        let problem = |config: Config| config.validate().expect_err("invalid").to_string();
        let short =
            Config { links: LinkConfig { secret: "short".into(), ..LinkConfig::default() }, ..Config::default() };
        assert!(problem(short).contains("feedback.links.secret"));
        let mut instant = Config::default();
        instant.complaints.investigating_ms = Duration::ZERO;
        assert!(problem(instant).contains("deadlines"));
        assert!(problem(Config { coverage_target: 1.5, ..Config::default() }).contains("coverage_target"));
        let weights = QualityWeights { manager: 0.0, quality_control: 0.0, mystery_shopper: 0.0, dialogs: 0.0 };
        assert!(problem(Config { quality_weights: weights, ..Config::default() }).contains("quality_weights"));
    }

    #[test]
    fn durations_are_written_in_milliseconds() {
        let dumped = branchscore_platform::config::dump(&Config::default()).expect("dump");
        assert!(dumped.contains("registered_ms = 86400000"), "{dumped}");
        assert!(dumped.contains("[complaints]") && dumped.contains("[links]") && dumped.contains("[cadence]"));
        assert_eq!(ComplaintConfig::default().deadline(ComplaintState::Closed), None);
    }
}
