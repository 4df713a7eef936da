//! The gateway: the one public entry to the services' gRPC APIs.
//!
//! Calls are routed by gRPC service name to the service that owns the package
//! and forwarded as they are (streams included). Before that every call gets a
//! request id, its caller is authenticated (a bearer JWT, or an API key
//! exchanged for a short-lived token of the key's principal), the caller's
//! rate limit is taken and the deadline capped. Browsers reach it with
//! grpc-web and CORS. The services still authorise every call themselves: the
//! gateway is not the only guard. Its own API (`branchscore.gateway.v1`)
//! manages the API keys.

pub mod api;
pub mod auth;
pub mod edge;
pub mod frames;
pub mod keys;
pub mod proxy;
pub mod rate_limit;
pub mod routing;
pub mod store;
pub mod upstream;

use crate::auth::EdgeAuth;
use crate::edge::{EdgeLayer, Gate};
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::upstream::Upstream;
use branchscore_platform::auth::TokenIssuer;
use branchscore_platform::config::{DatabaseConfig, ServerConfig, millis};
use branchscore_platform::server::{HttpService, ServerBuilder};
use branchscore_platform::service::{self, PlatformConfig, RunningService, ServiceSpec};
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The gateway's schema migrations (its API keys).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The `[gateway]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The public endpoint; `server.max_message_bytes` also bounds every
    /// message forwarded to a service.
    pub server: ServerConfig,
    /// Holds the API keys (hashes only).
    pub database: DatabaseConfig,
    /// Longest deadline forwarded to a service; a call without a deadline gets this one.
    #[serde(with = "millis")]
    pub max_deadline_ms: Duration,
    /// Lifetime of the token minted for each call made with an API key.
    #[serde(with = "millis")]
    pub api_key_token_ttl_ms: Duration,
    pub rate_limit: RateLimitConfig,
    /// Origins whose browser pages may call (CORS), e.g. `https://crm.example.com`;
    /// empty: no cross-origin calls.
    pub cors_allowed_origins: Vec<String>,
    /// gRPC services that check a credential of their own (the survey link
    /// answered by a client): called without a token, rate-limited per address.
    pub anonymous_services: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig { listen: ([127, 0, 0, 1], 50050).into(), ..ServerConfig::default() },
            database: DatabaseConfig::local("branchscore_gateway"),
            max_deadline_ms: Duration::from_secs(30),
            api_key_token_ttl_ms: Duration::from_secs(300),
            rate_limit: RateLimitConfig::default(),
            cors_allowed_origins: Vec::new(),
            anonymous_services: vec!["branchscore.feedback.v1.SurveyLinkService".into()],
        }
    }
}

impl Config {
    /// Refuses values the gateway cannot work with, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.max_deadline_ms.is_zero(), "gateway.max_deadline_ms must be above zero");
        anyhow::ensure!(
            self.api_key_token_ttl_ms >= Duration::from_secs(1),
            "gateway.api_key_token_ttl_ms must be at least 1000 (tokens count whole seconds)"
        );
        self.rate_limit.validate()?;
        self.allowed_origins()?;
        Ok(())
    }

    fn allowed_origins(&self) -> anyhow::Result<Vec<HeaderValue>> {
        self.cors_allowed_origins
            .iter()
            .map(|origin| {
                anyhow::ensure!(
                    (origin.starts_with("https://") || origin.starts_with("http://")) && !origin.ends_with('/'),
                    "gateway.cors_allowed_origins: {origin:?} is not an origin like https://crm.example.com"
                );
                Ok(HeaderValue::from_str(origin)?)
            })
            .collect()
    }

    /// grpc-web from the configured origins: the headers a grpc-web client
    /// sends, and the ones its script must be allowed to read.
    fn cors(&self) -> anyhow::Result<CorsLayer> {
        let origins = self.allowed_origins()?;
        let names = |names: &[&'static str]| names.iter().map(|name| HeaderName::from_static(name)).collect::<Vec<_>>();
        Ok(CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST])
            .allow_headers(names(&[
                "content-type",
                "authorization",
                "x-api-key",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
                "x-request-id",
            ]))
            .expose_headers(names(&["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"]))
            .max_age(Duration::from_secs(600)))
    }
}

/// Starts the gateway in the background.
pub async fn run(
    config: &Config,
    platform: &PlatformConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    config.validate()?;
    let cors = config.cors()?;
    let max_message_bytes = config.server.max_message_bytes;
    let mut upstreams: HashMap<String, Upstream> = HashMap::new();
    let mut proxies = Vec::new();
    for route in routing::routes(&platform.peers)? {
        // One connection per service (HTTP/2 multiplexes the calls), however many gRPC services it hosts.
        let upstream = match upstreams.entry(route.url.clone()) {
            Entry::Occupied(known) => known.get().clone(),
            Entry::Vacant(new) => {
                new.insert(Upstream::new(&route.url, platform.peers.client.connect_timeout_ms)?).clone()
            }
        };
        proxies.push((route.service.clone(), proxy::Proxy::new(&route.service, upstream, max_message_bytes)));
    }
    let spec = ServiceSpec { name: "gateway", server: &config.server, database: &config.database, migrator: &MIGRATOR };
    // A signing key the services would refuse stops the start here.
    let issuer = TokenIssuer::for_deployment(&platform.auth)?;
    let config = config.clone();
    service::launch(
        spec,
        platform,
        move |context| {
            let auth =
                EdgeAuth::new(context.authenticator.clone(), issuer, context.pool.clone(), config.api_key_token_ttl_ms);
            let gate = Gate {
                auth,
                limiter: RateLimiter::new(context.cache, config.rate_limit),
                max_deadline: config.max_deadline_ms,
                anonymous_services: config.anonymous_services,
            };
            let keys = GatewayServiceServer::new(api::GatewayApi::new(context.pool))
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes);
            let server =
                ServerBuilder::new(context.server).add_service(InterceptedService::new(keys, context.authenticator));
            proxies
                .into_iter()
                .fold(server, |server, (name, proxy)| server.add_named_service(&name, proxy))
                .public_edge(move |routes| {
                    // Outermost first: CORS answers preflights, grpc-web becomes gRPC, then the edge.
                    HttpService::new(
                        ServiceBuilder::new()
                            .layer(cors)
                            .layer(tonic_web::GrpcWebLayer::new())
                            .layer(EdgeLayer::new(Arc::new(gate)))
                            .service(routes),
                    )
                })
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
        let origins = Config { cors_allowed_origins: vec!["crm.example.com".into()], ..Config::default() };
        assert!(problem(origins).contains("gateway.cors_allowed_origins"));
        let rate = Config {
            rate_limit: RateLimitConfig { calls_per_second: 0.0, ..RateLimitConfig::default() },
            ..Config::default()
        };
        assert!(problem(rate).contains("gateway.rate_limit.calls_per_second"));
        assert!(problem(Config { max_deadline_ms: Duration::ZERO, ..Config::default() }).contains("max_deadline_ms"));
    }
}
