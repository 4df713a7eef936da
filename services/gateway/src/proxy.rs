//! Forwards a call as it is to the service that answers it: a transparent
//! HTTP/2 proxy, so unary calls and streams in either direction pass without
//! the gateway decoding a message. Headers (the caller's or the minted
//! `authorization`, `x-request-id`, the capped `grpc-timeout`) go along;
//! the reply, trailers included, comes back untouched.
use crate::frames;
use branchscore_platform::AppError;
use branchscore_platform::client::ClientConfig;
use branchscore_platform::error::ErrorCode;
use futures::future::BoxFuture;
use http::{Request, Response, Version};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

/// A lazily connecting channel to a service for forwarded calls. Unlike a
/// peer channel it sets no deadline of its own: the caller's `grpc-timeout`,
/// capped at the edge, is the deadline.
pub fn upstream(url: &str, config: &ClientConfig) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(config.connect_timeout_ms)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Forwards every call of one gRPC service to its upstream.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// The gRPC service, for the caller's error messages and the logs.
    service: Arc<str>,
    upstream: Channel,
    max_message_bytes: usize,
}

impl Proxy {
    pub fn new(service: &str, upstream: Channel, max_message_bytes: usize) -> Self {
        Proxy { service: service.into(), upstream, max_message_bytes }
    }
}

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The channel's own readiness is awaited per call (oneshot): a slow
        // upstream must not stall the router for the others.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (mut head, body) = request.into_parts();
        // grpc-web arrives over HTTP/1.1; upstream always speaks HTTP/2.
        head.version = Version::HTTP_2;
        let limit = self.max_message_bytes;
        let (body, oversized) = frames::limit(body, limit);
        let forwarded = self.upstream.clone().oneshot(Request::from_parts(head, body));
        let service = self.service.clone();
        Box::pin(async move {
            Ok(forwarded.await.unwrap_or_else(|err| {
                let failure = match oversized.get() {
                    Some(size) => AppError::new(
                        ErrorCode::ResourceExhausted,
                        format!("a message of {size} bytes is above the gateway's limit of {limit} bytes"),
                    ),
                    None => failed(&service, &err),
                };
                Status::from(failure).into_http()
            }))
        })
    }
}

/// Why forwarding failed, as the caller can act on it.
fn failed(service: &str, err: &tonic::transport::Error) -> AppError {
    let mut causes = std::iter::successors(Some(err as &dyn std::error::Error), |cause| cause.source());
    if causes.any(|cause| cause.is::<tonic::TimeoutExpired>()) {
        return AppError::new(ErrorCode::DeadlineExceeded, format!("{service} did not answer within the deadline"));
    }
    tracing::warn!(%service, error = %format!("{err:?}"), "forwarding failed");
    AppError::unavailable(format!("{service} is unavailable; retry later"))
}
