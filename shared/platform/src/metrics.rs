//! Prometheus metrics and the per-RPC tower layer that records them and opens
//! the request's tracing span (parented on the caller's W3C trace context).
use crate::shutdown::CancellationToken;
use axum::Router;
use axum::routing::get;
use http::{Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::Instrument;

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The process-wide Prometheus recorder (installed once).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // A second recorder can only come from a test harness; ours stays usable.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Serves `GET /metrics` until `shutdown` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(|| async { handle().render() }));
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// Binds and serves the metrics endpoint in the background.
pub async fn spawn(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(err) = serve(listener, shutdown).await {
            tracing::error!(%err, "metrics endpoint failed");
        }
    });
    Ok(local)
}

/// Records `grpc_server_requests_total{service,method,code}`,
/// `grpc_server_request_duration_seconds{service,method}` and opens a span per call.
#[derive(Debug, Clone, Default)]
pub struct RpcObservabilityLayer;

impl<S> Layer<S> for RpcObservabilityLayer {
    type Service = RpcObservability<S>;
    fn layer(&self, inner: S) -> Self::Service {
        handle();
        RpcObservability { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcObservability<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RpcObservability<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let span = tracing::info_span!(
            "grpc",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
        );
        let parent =
            crate::telemetry::extract_context(&tonic::metadata::MetadataMap::from_headers(request.headers().clone()));
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let _ = span.set_parent(parent);
        }
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    // Errors come back trailers-only with grpc-status in the headers.
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse::<i32>().ok())
                        .unwrap_or(0),
                    Err(_) => tonic::Code::Unknown as i32,
                };
                let code_name = format!("{:?}", tonic::Code::from_i32(code));
                tracing::Span::current().record("rpc.grpc.status_code", code);
                let labels = [("service", service.clone()), ("method", method.clone())];
                metrics::histogram!("grpc_server_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
                metrics::counter!("grpc_server_requests_total", "service" => service, "method" => method, "code" => code_name).increment(1);
                result
            }
            .instrument(span),
        )
    }
}

fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default().to_owned();
    let method = parts.next().unwrap_or_default().to_owned();
    (service, method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        let (service, method) = split_path("/branchscore.clients.v1.ClientsService/GetClient");
        assert_eq!(service, "branchscore.clients.v1.ClientsService");
        assert_eq!(method, "GetClient");
    }
}
