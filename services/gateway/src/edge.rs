//! What every call through the gateway passes before it is routed: a request
//! id, authentication, the caller's rate limit and a capped deadline.
//! Refusals are answered here, with the request id, and never reach a service.
use crate::auth::{API_KEY_HEADER, EdgeAuth};
use crate::rate_limit::RateLimiter;
use branchscore_platform::{AppResult, deadline};
use futures::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

/// Returned to the caller and forwarded upstream, so one id follows a call through the logs.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static(deadline::GRPC_TIMEOUT);
/// Anyone may ask: load balancers check health, tools list the API.
const OPEN_SERVICES: [&str; 3] = [
    tonic_health::pb::health_server::SERVICE_NAME,
    tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
    tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
];

/// The edge's settings and state, shared by every connection.
#[derive(Debug)]
pub struct Gate {
    pub auth: EdgeAuth,
    pub limiter: RateLimiter,
    pub max_deadline: Duration,
    /// gRPC services that check a credential of their own.
    pub anonymous_services: Vec<String>,
}

impl Gate {
    /// Lets a call through, its headers rewritten for the upstream, or says why not.
    async fn admit(&self, request: &mut Request<Body>) -> AppResult<()> {
        let service = grpc_service(request.uri().path());
        if OPEN_SERVICES.contains(&service) {
            return Ok(());
        }
        let caller = if self.anonymous_services.iter().any(|anonymous| anonymous == service) {
            request.headers_mut().remove(API_KEY_HEADER);
            let address = request.extensions().get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr);
            format!("anonymous@{}", address.map(|address| address.ip().to_string()).unwrap_or_default())
        } else {
            let caller = self.auth.authenticate(request.headers()).await?;
            tracing::Span::current().record("enduser.id", caller.principal.subject.as_str());
            if let Some(authorization) = caller.minted_authorization {
                // The secret stays at the edge; the services get the minted token.
                request.headers_mut().remove(API_KEY_HEADER);
                request.headers_mut().insert(AUTHORIZATION, authorization);
            }
            caller.principal.subject
        };
        self.limiter.take(&caller).await?;
        cap_deadline(request.headers_mut(), self.max_deadline);
        Ok(())
    }
}

/// `branchscore.clients.v1.ClientsService` of `/branchscore.clients.v1.ClientsService/GetClient`.
fn grpc_service(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

/// The caller's request id when it is a sane one, else a new one; set on the request.
fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    let id = headers
        .get(&REQUEST_ID)
        .filter(|id| (1..=128).contains(&id.len()) && id.to_str().is_ok())
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a valid header value")
        });
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// Caps `grpc-timeout` at `max`; a call without a deadline (or with one that
/// does not parse) gets `max`, so no forwarded call waits forever.
fn cap_deadline(headers: &mut HeaderMap, max: Duration) {
    if headers.get(&GRPC_TIMEOUT).and_then(parse_grpc_timeout).is_some_and(|asked| asked <= max) {
        return;
    }
    headers.insert(GRPC_TIMEOUT, grpc_timeout(max));
}

fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    value.to_str().ok().and_then(deadline::parse_grpc_timeout)
}

fn grpc_timeout(timeout: Duration) -> HeaderValue {
    HeaderValue::from_str(&deadline::format_grpc_timeout(timeout)).expect("digits and a unit are a valid header value")
}

/// Puts the [`Gate`] in front of the routes.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    gate: Arc<Gate>,
}

impl EdgeLayer {
    pub fn new(gate: Arc<Gate>) -> Self {
        EdgeLayer { gate }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, gate: self.gate.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Service<Request<Body>> for Edge<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let request_id = request_id(request.headers_mut());
        // The service polled ready handles this call; its clone waits for the next.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let mut response = match gate.admit(&mut request).await {
                Ok(()) => ready.call(request).await?,
                Err(refusal) => Status::from(refusal).into_http(),
            };
            response.headers_mut().insert(REQUEST_ID, request_id);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_of(headers: &HeaderMap) -> Option<Duration> {
        headers.get(&GRPC_TIMEOUT).and_then(parse_grpc_timeout)
    }

    #[test]
    fn missing_and_long_deadlines_are_capped_short_ones_kept() {
        let max = Duration::from_secs(30);
        let mut headers = HeaderMap::new();
        cap_deadline(&mut headers, max);
        assert_eq!(timeout_of(&headers), Some(max));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("1H"));
        cap_deadline(&mut headers, max);
        assert_eq!(timeout_of(&headers), Some(max));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("1500m"));
        cap_deadline(&mut headers, max);
        assert_eq!(timeout_of(&headers), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), HeaderValue::from_static("200000S"));
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_made_when_not() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("erp-batch-42"));
        assert_eq!(request_id(&mut headers), "erp-batch-42");
        headers.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(200)).expect("header"));
        let made = request_id(&mut headers);
        assert_eq!(made.len(), 36);
        assert_eq!(headers.get(&REQUEST_ID), Some(&made));
    }

    #[test]
    fn paths_name_their_grpc_service() {
        assert_eq!(
            grpc_service("/branchscore.clients.v1.ClientsService/GetClient"),
            "branchscore.clients.v1.ClientsService"
        );
        assert_eq!(grpc_service("/"), "");
    }
}
