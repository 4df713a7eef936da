//! The one way every service serves gRPC: health (NOT_SERVING until ready and
//! from the first moment of shutdown), reflection v1 and v1alpha, per-RPC
//! metrics and spans, request timeout, a global concurrency limit with load
//! shedding, connection ageing and graceful drain. Message size limits are
//! set per generated service from [`ServerConfig::max_message_bytes`].
//! Reflection advertises exactly the services the server hosts.
use crate::config::ServerConfig;
use crate::io::UnvectoredTcp;
use crate::metrics::RpcObservabilityLayer;
use crate::shutdown::CancellationToken;
use futures::TryStreamExt;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

/// A server's whole request handling as one service: what
/// [`ServerBuilder::public_edge`] wraps the routes into.
pub type HttpService = BoxCloneService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, Infallible>;

type Edge = Box<dyn FnOnce(Routes) -> HttpService + Send>;

/// Health of the services one server hosts.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<String>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("services", &self.services).finish()
    }
}

impl Health {
    /// Marks the overall server and every hosted service.
    pub async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// A bound gRPC server that reports NOT_SERVING until [`ReadyServer::serve`] is told it is ready.
pub struct ServerBuilder {
    config: ServerConfig,
    routes: Routes,
    service_names: Vec<String>,
    descriptor_sets: Vec<&'static [u8]>,
    edge: Option<Edge>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder").field("services", &self.service_names).finish()
    }
}

impl ServerBuilder {
    pub fn new(config: ServerConfig) -> Self {
        ServerBuilder {
            config,
            routes: Routes::default(),
            service_names: Vec::new(),
            descriptor_sets: vec![branchscore_proto::FILE_DESCRIPTOR_SET],
            edge: None,
        }
    }

    /// Adds a service; its name is reported by health.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME.to_owned());
        self.routes = self.routes.add_service(service);
        self
    }

    /// Adds a service whose gRPC name is known only at run time (a proxy for
    /// another server's service); it answers `/{name}/...` and its name is
    /// reported by health and reflection like any other.
    pub fn add_named_service<S>(mut self, name: &str, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(name.to_owned());
        let service =
            service.map_request(|request: http::Request<axum::body::Body>| request.map(tonic::body::Body::new));
        self.routes =
            Routes::from(self.routes.into_axum_router().route_service(&format!("/{name}/{{*rest}}"), service));
        self
    }

    /// Makes this server a public edge: `wrap` puts its layers around every
    /// route, health and reflection included (e.g. grpc-web translation, CORS,
    /// authentication before routing), and HTTP/1.1 is accepted besides
    /// HTTP/2 because browsers speak grpc-web over it.
    pub fn public_edge(mut self, wrap: impl FnOnce(Routes) -> HttpService + Send + 'static) -> Self {
        self.edge = Some(Box::new(wrap));
        self
    }

    /// Binds the listener (so the caller learns the port) with health NOT_SERVING.
    pub async fn bind(self) -> anyhow::Result<BoundServer> {
        let listener = TcpListener::bind(self.config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health { reporter, services: self.service_names };
        health.set(ServingStatus::NotServing).await;
        let hosted: Vec<&str> = [
            tonic_health::pb::health_server::SERVICE_NAME,
            tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
            tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
        ]
        .into_iter()
        .chain(health.services.iter().map(String::as_str))
        .collect();
        let reflection = || {
            let sets = self.descriptor_sets.iter().fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            );
            hosted.iter().fold(sets, |builder, name| builder.with_service_name(*name))
        };
        let routes = self
            .routes
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        Ok(BoundServer { config: self.config, listener, local_addr, health, routes, edge: self.edge })
    }
}

/// A server whose port is bound; it answers health (NOT_SERVING) at once.
pub struct BoundServer {
    config: ServerConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    health: Health,
    routes: Routes,
    edge: Option<Edge>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer").field("local_addr", &self.local_addr).finish()
    }
}

impl BoundServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Serves until `shutdown` is cancelled, then reports NOT_SERVING, waits
    /// the drain delay, stops accepting and drains in-flight calls.
    /// Call [`Health::set`] with SERVING once the service is ready.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let config = self.config;
        let health = self.health.clone();
        let accept_http1 = self.edge.is_some();
        let routes = self.routes.prepare();
        let service = match self.edge {
            Some(wrap) => wrap(routes),
            None => HttpService::new(routes),
        };
        let layers = ServiceBuilder::new()
            .layer(RpcObservabilityLayer)
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(config.concurrency_limit))
            .into_inner();
        let signal = async move {
            shutdown.cancelled().await;
            health.set(ServingStatus::NotServing).await;
            if !config.shutdown_drain_delay_ms.is_zero() {
                tokio::time::sleep(config.shutdown_drain_delay_ms).await;
            }
            tracing::info!("listener closed; draining in-flight calls");
        };
        Server::builder()
            .accept_http1(accept_http1)
            .timeout(config.request_timeout_ms)
            .max_connection_age(config.max_connection_age_ms)
            .max_connection_age_grace(config.max_connection_age_grace_ms)
            .layer(layers)
            // Replies must not wait for delayed ACKs (Nagle): every small
            // response would otherwise stall up to 40 ms.
            .serve_with_incoming_shutdown(
                service,
                TcpIncoming::from(self.listener).with_nodelay(Some(true)).map_ok(UnvectoredTcp),
                signal,
            )
            .await?;
        Ok(())
    }
}
