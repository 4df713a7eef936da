//! The clients' own satisfaction, asked from the feedback service for the
//! score's satisfaction component. Feedback being away never stops the
//! recompute: the component is then absent and its weight redistributed.
use branchscore_platform::client::{CallCredentials, ClientConfig, RetryPolicy};
use branchscore_proto::common::v1::Date;
use branchscore_proto::feedback::v1::BatchGetClientSatisfactionRequest;
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use chrono::NaiveDate;
use std::collections::HashMap;
use tonic::transport::Channel;

/// Most ids one request takes.
const BATCH: usize = 1000;

/// Where satisfaction comes from.
#[derive(Debug, Clone)]
pub struct SatisfactionSource {
    pub channel: Channel,
    pub retry: RetryPolicy,
}

impl SatisfactionSource {
    pub fn new(channel: Channel, calls: &ClientConfig) -> Self {
        SatisfactionSource { channel, retry: RetryPolicy::new(calls) }
    }

    /// Satisfaction 0-100 of the clients that answered surveys in the year
    /// before `as_of`; `None` when the feedback service cannot be asked.
    pub async fn of(
        &self,
        client_ids: &[String],
        as_of: NaiveDate,
        credentials: CallCredentials,
    ) -> Option<HashMap<String, f64>> {
        let credentials = credentials.with_deadline(self.retry.deadline());
        let client = FeedbackServiceClient::with_interceptor(self.channel.clone(), credentials);
        let mut found = HashMap::new();
        for chunk in client_ids.chunks(BATCH) {
            let request = BatchGetClientSatisfactionRequest {
                client_ids: chunk.to_vec(),
                as_of: Some(Date::from(as_of)),
                lookback_days: 0,
            };
            let asked = self
                .retry
                .call_idempotent(|| {
                    let (mut client, request) = (client.clone(), request.clone());
                    async move { client.batch_get_client_satisfaction(request).await }
                })
                .await;
            match asked {
                Ok(reply) => {
                    found.extend(reply.into_inner().satisfactions.into_iter().map(|s| (s.client_id, s.satisfaction)))
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "no satisfaction from feedback; the component is left out");
                    return None;
                }
            }
        }
        Some(found)
    }
}
