//! Calling branchscore services: channels with connect and request deadlines,
//! the caller's token and trace context on every call, and retries with
//! exponential back-off and a retry budget for idempotent calls only.
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tower::retry::budget::{Budget, TpsBudget};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    #[serde(with = "crate::config::millis")]
    pub connect_timeout_ms: Duration,
    /// Deadline of each call: the channel gives up after it, and credentials
    /// made [`CallCredentials::with_deadline`] also send it as `grpc-timeout`,
    /// so the server stops the work it started for the call.
    #[serde(with = "crate::config::millis")]
    pub request_timeout_ms: Duration,
    /// Attempts of an idempotent call, the first included.
    pub max_attempts: u32,
    #[serde(with = "crate::config::millis")]
    pub initial_backoff_ms: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout_ms: Duration::from_secs(2),
            request_timeout_ms: Duration::from_secs(10),
            max_attempts: 3,
            initial_backoff_ms: Duration::from_millis(50),
        }
    }
}

/// A lazily connecting channel to `url` with the configured deadlines.
pub fn channel(url: &str, config: &ClientConfig) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(config.connect_timeout_ms)
        .timeout(config.request_timeout_ms)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Waits until the server behind `channel` reports SERVING on `grpc.health.v1`.
pub async fn wait_serving(channel: Channel, timeout: Duration) -> anyhow::Result<()> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let deadline = tokio::time::Instant::now() + timeout;
    let mut health = HealthClient::new(channel);
    loop {
        let outcome = health.check(HealthCheckRequest::default()).await;
        if outcome.as_ref().is_ok_and(|reply| reply.get_ref().status() == ServingStatus::Serving) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("not SERVING after {timeout:?} (last answer: {outcome:?})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Adds `authorization: Bearer <token>` and the current trace context to each call.
#[derive(Clone, Debug)]
pub struct CallCredentials {
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// Sent as `grpc-timeout` when the call has none of its own.
    deadline: Option<Duration>,
}

impl CallCredentials {
    pub fn bearer(token: &str) -> anyhow::Result<Self> {
        Ok(CallCredentials { authorization: Some(format!("Bearer {token}").parse()?), deadline: None })
    }

    /// The same credentials, every call also telling the server its deadline.
    /// A channel's own timeout is not sent: without this the server goes on
    /// with a call its caller has given up on.
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        CallCredentials { deadline: Some(deadline), ..self.clone() }
    }

    /// Forwards the token of an incoming request (token propagation between services).
    pub fn forwarded<T>(incoming: &Request<T>) -> Self {
        CallCredentials { authorization: incoming.metadata().get("authorization").cloned(), deadline: None }
    }
}

impl Interceptor for CallCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        if let Some(deadline) = self.deadline
            && !request.metadata().contains_key(crate::deadline::GRPC_TIMEOUT)
        {
            request.set_timeout(deadline);
        }
        crate::telemetry::inject_current_context(request.metadata_mut());
        Ok(request)
    }
}

/// Retries of idempotent calls, shared by every call through one client so
/// that a failing dependency is not hammered: retries are limited to a share
/// of recent successful calls.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    config: ClientConfig,
    budget: Arc<TpsBudget>,
}

impl RetryPolicy {
    /// The deadline of each call (`request_timeout_ms`).
    pub fn deadline(&self) -> Duration {
        self.config.request_timeout_ms
    }

    pub fn new(config: &ClientConfig) -> Self {
        RetryPolicy {
            config: config.clone(),
            // Retries may add 20% to the recent call rate, plus 10 per second.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        }
    }

    /// Codes worth retrying: the call did not take effect or may be repeated safely.
    pub fn is_retryable(code: Code) -> bool {
        matches!(code, Code::Unavailable | Code::ResourceExhausted | Code::Aborted)
    }

    /// Runs an IDEMPOTENT call, retrying transient failures with back-off.
    /// Never use it for calls that create something without a request id.
    pub async fn call_idempotent<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut backoff = self.config.initial_backoff_ms;
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => {
                    self.budget.deposit();
                    return Ok(value);
                }
                Err(status)
                    if Self::is_retryable(status.code())
                        && attempt < self.config.max_attempts
                        && self.budget.withdraw() =>
                {
                    tracing::debug!(attempt, code = ?status.code(), "retrying idempotent call");
                    let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2 + 1));
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                Err(status) => return Err(status),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_with_a_deadline_tell_the_server_unless_the_call_has_its_own() {
        let mut credentials = CallCredentials::bearer("t").expect("token").with_deadline(Duration::from_millis(250));
        let sent = credentials.call(Request::new(())).expect("intercepted");
        assert_eq!(crate::deadline::of_request(&sent), Some(Duration::from_millis(250)));
        assert_eq!(sent.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer t"));
        let mut own = Request::new(());
        own.set_timeout(Duration::from_secs(2));
        let sent = credentials.call(own).expect("intercepted");
        assert_eq!(crate::deadline::of_request(&sent), Some(Duration::from_secs(2)));
        let mut plain = CallCredentials::bearer("t").expect("token");
        assert_eq!(crate::deadline::of_request(&plain.call(Request::new(())).expect("intercepted")), None);
    }
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_failures_are_retried_then_succeed() {
        let policy =
            RetryPolicy::new(&ClientConfig { initial_backoff_ms: Duration::from_millis(1), ..ClientConfig::default() });
        let calls = AtomicU32::new(0);
        let result = policy
            .call_idempotent(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 2 { Err(Status::unavailable("down")) } else { Ok(n) } }
            })
            .await;
        assert_eq!(result.expect("third attempt succeeds"), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_and_exhausted_attempts_stop() {
        let policy =
            RetryPolicy::new(&ClientConfig { initial_backoff_ms: Duration::from_millis(1), ..ClientConfig::default() });
        let calls = AtomicU32::new(0);
        let result: Result<(), Status> = policy
            .call_idempotent(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::invalid_argument("bad")) }
            })
            .await;
        assert_eq!(result.expect_err("fails").code(), Code::InvalidArgument);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let result: Result<(), Status> = policy
            .call_idempotent(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::unavailable("down")) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
