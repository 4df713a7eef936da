//! Forwards a call as it is to the service that answers it: a transparent
//! HTTP/2 proxy, so unary calls and streams in either direction pass without
//! the gateway decoding a message. Headers (the caller's or the minted
//! `authorization`, `x-request-id`, the capped `grpc-timeout`) go along;
//! the reply, trailers included, comes back untouched.
use crate::frames;
use crate::upstream::{Failure, Upstream};
use branchscore_platform::error::ErrorCode;
use branchscore_platform::{AppError, deadline};
use futures::future::BoxFuture;
use http::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;

/// Forwards every call of one gRPC service to its upstream.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// The gRPC service, for the caller's error messages and the logs.
    service: Arc<str>,
    upstream: Upstream,
    max_message_bytes: usize,
}

impl Proxy {
    pub fn new(service: &str, upstream: Upstream, max_message_bytes: usize) -> Self {
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
        let (head, body) = request.into_parts();
        // The caller's deadline, capped at the edge, is the deadline; the
        // proxy sets none of its own.
        let deadline = head.headers.get(deadline::GRPC_TIMEOUT).and_then(|value| value.to_str().ok());
        let deadline = deadline.and_then(deadline::parse_grpc_timeout);
        let limit = self.max_message_bytes;
        let (body, oversized) = frames::limit(body, limit);
        let (upstream, service) = (self.upstream.clone(), self.service.clone());
        Box::pin(async move {
            Ok(upstream.forward(Request::from_parts(head, body), deadline).await.unwrap_or_else(|failure| {
                let status = match oversized.get() {
                    Some(size) => Status::from(AppError::new(
                        ErrorCode::ResourceExhausted,
                        format!("a message of {size} bytes is above the gateway's limit of {limit} bytes"),
                    )),
                    None => failed(&service, failure),
                };
                status.into_http()
            }))
        })
    }
}

/// Why forwarding failed, as the caller can act on it.
fn failed(service: &str, failure: Failure) -> Status {
    match failure {
        Failure::Deadline => Status::from(AppError::new(
            ErrorCode::DeadlineExceeded,
            format!("{service} did not answer within the deadline"),
        )),
        Failure::Request => Status::cancelled("the caller's request broke off before it was forwarded"),
        Failure::Unavailable(why) => {
            tracing::warn!(%service, error = %why, "forwarding failed");
            Status::from(AppError::unavailable(format!("{service} is unavailable; retry later")))
        }
    }
}
