//! What the feedback service reads from the clients service: the client
//! base, classes and scores, first purchases, employees and products. Every
//! call carries the caller's token (so the clients service applies the same
//! branch scope), a deadline, and retries of transient failures. A clients
//! service that cannot answer is UNAVAILABLE for our caller.
use branchscore_platform::client::{self, CallCredentials, ClientConfig, RetryPolicy};
use branchscore_platform::error::ErrorCode;
use branchscore_platform::{AppError, AppResult};
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::Date;
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Largest page the clients service serves for clients, and its batch limit.
const CLIENT_PAGE: i32 = 1000;
const FIRST_PURCHASE_PAGE: i32 = 5000;

type Client = ClientsServiceClient<InterceptedService<Channel, CallCredentials>>;

/// The clients service, as this service uses it.
#[derive(Debug, Clone)]
pub struct ClientsDirectory {
    channel: Channel,
    retry: RetryPolicy,
}

impl ClientsDirectory {
    pub fn new(url: &str, config: &ClientConfig) -> anyhow::Result<Self> {
        Ok(ClientsDirectory { channel: client::channel(url, config)?, retry: RetryPolicy::new(config) })
    }

    fn client(&self, credentials: &CallCredentials) -> Client {
        ClientsServiceClient::with_interceptor(self.channel.clone(), credentials.with_deadline(self.retry.deadline()))
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Every client the caller may see (in `branch_id` if given).
    pub async fn client_base(
        &self,
        credentials: &CallCredentials,
        branch_id: &str,
    ) -> AppResult<Vec<branchscore_proto::clients::v1::Client>> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListClientsRequest {
                page_size: CLIENT_PAGE,
                page_token: page_token.clone(),
                branch_id: branch_id.to_owned(),
                ..ListClientsRequest::default()
            };
            let page = self
                .retry
                .call_idempotent(|| {
                    let mut client = self.client(credentials);
                    let request = request.clone();
                    async move { client.list_clients(request).await }
                })
                .await
                .map_err(|status| refused("list clients", status))?
                .into_inner();
            all.extend(page.clients);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }

    /// Current scores of `ids` (unscored and unknown clients are absent).
    pub async fn scores(
        &self,
        credentials: &CallCredentials,
        ids: &[String],
    ) -> AppResult<HashMap<String, ClientScore>> {
        let mut scores = HashMap::with_capacity(ids.len());
        let unique: Vec<String> = ids.iter().cloned().collect::<HashSet<_>>().into_iter().collect();
        for chunk in unique.chunks(CLIENT_PAGE as usize) {
            let request = BatchGetClientScoresRequest { client_ids: chunk.to_vec() };
            let reply = self
                .retry
                .call_idempotent(|| {
                    let mut client = self.client(credentials);
                    let request = request.clone();
                    async move { client.batch_get_client_scores(request).await }
                })
                .await
                .map_err(|status| refused("read client scores", status))?
                .into_inner();
            scores.extend(reply.scores.into_iter().map(|s| (s.client_id.clone(), s)));
        }
        Ok(scores)
    }

    /// Each client's first purchase of each product, for those in `[from, to]`.
    pub async fn first_purchases(
        &self,
        credentials: &CallCredentials,
        from: NaiveDate,
        to: NaiveDate,
        branch_id: &str,
    ) -> AppResult<Vec<FirstPurchase>> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListFirstPurchasesRequest {
                from: Some(Date::from(from)),
                to: Some(Date::from(to)),
                branch_id: branch_id.to_owned(),
                page_size: FIRST_PURCHASE_PAGE,
                page_token: page_token.clone(),
            };
            let page = self
                .retry
                .call_idempotent(|| {
                    let mut client = self.client(credentials);
                    let request = request.clone();
                    async move { client.list_first_purchases(request).await }
                })
                .await
                .map_err(|status| refused("list first purchases", status))?
                .into_inner();
            all.extend(page.purchases);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }

    /// One client, or `None` when it does not exist or is outside the caller's branches.
    pub async fn client_by_id(
        &self,
        credentials: &CallCredentials,
        id: &str,
    ) -> AppResult<Option<branchscore_proto::clients::v1::Client>> {
        let request = GetClientRequest { id: id.to_owned() };
        let outcome = self
            .retry
            .call_idempotent(|| {
                let mut client = self.client(credentials);
                let request = request.clone();
                async move { client.get_client(request).await }
            })
            .await;
        match outcome {
            Ok(reply) => Ok(reply.into_inner().client),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(refused("read a client", status)),
        }
    }

    /// Ids of the catalogue's products.
    pub async fn product_ids(&self, credentials: &CallCredentials) -> AppResult<HashSet<String>> {
        let reply = self
            .retry
            .call_idempotent(|| {
                let mut client = self.client(credentials);
                async move { client.list_products(ListProductsRequest {}).await }
            })
            .await
            .map_err(|status| refused("list products", status))?;
        Ok(reply.into_inner().products.into_iter().map(|p| p.id).collect())
    }

    /// Employees of a branch.
    pub async fn employees(&self, credentials: &CallCredentials, branch_id: &str) -> AppResult<Vec<Employee>> {
        let request = ListEmployeesRequest { branch_id: branch_id.to_owned() };
        let reply = self
            .retry
            .call_idempotent(|| {
                let mut client = self.client(credentials);
                let request = request.clone();
                async move { client.list_employees(request).await }
            })
            .await
            .map_err(|status| refused("list employees", status))?;
        Ok(reply.into_inner().employees)
    }
}

/// The clients service's refusal as our caller should see it: its auth
/// decisions stand, anything else means it could not serve us.
fn refused(what: &str, status: Status) -> AppError {
    match status.code() {
        Code::PermissionDenied => AppError::permission_denied(status.message().to_owned()),
        Code::Unauthenticated => AppError::unauthenticated(status.message().to_owned()),
        Code::NotFound => AppError::new(ErrorCode::NotFound, status.message().to_owned()),
        code => {
            tracing::warn!(?code, message = status.message(), "clients service could not {what}");
            AppError::unavailable(format!("the clients service is unavailable ({what}: {code:?}); retry later"))
        }
    }
}
