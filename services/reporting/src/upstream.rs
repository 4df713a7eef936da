//! The services that own what reports show, asked with the caller's token
//! (so their branch scope applies) under the peer deadline, reads retried
//! with back-off. A source that cannot answer makes the whole report
//! UNAVAILABLE; a refusal that is the caller's (no right, no such client, a
//! bad filter) keeps its own code.
use branchscore_platform::client::{self, CallCredentials, RetryPolicy};
use branchscore_platform::config::PeersConfig;
use branchscore_platform::error::ErrorCode;
use branchscore_platform::{AppError, AppResult};
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{Date, Granularity};
use branchscore_proto::feedback::v1::complaint_service_client::ComplaintServiceClient;
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use branchscore_proto::feedback::v1::{
    CoverageDimension, GetComplaintAgingRequest, GetComplaintAgingResponse, GetCoverageRequest, GetCoverageResponse,
    GetSatisfactionTrendRequest, GetSatisfactionTrendResponse,
};
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::kpi::v1::{BonusPeriod, GetPeriodRequest, ListScorecardsRequest, Scorecard};
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::pipeline::v1::{GetFunnelRequest, GetFunnelResponse};
use chrono::NaiveDate;
use std::collections::HashMap;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

/// A channel that adds the caller's token to every call.
type WithToken = InterceptedService<Channel, CallCredentials>;

/// Channels to the sources.
#[derive(Debug, Clone)]
pub struct Upstream {
    clients: Channel,
    pipeline: Channel,
    feedback: Channel,
    kpi: Channel,
    retry: RetryPolicy,
}

/// A date range and the filters every periodic source takes.
#[derive(Debug, Clone, Copy)]
pub struct Slice<'a> {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: Granularity,
    pub branch_id: &'a str,
}

/// The source's refusal as the caller's error.
fn refused(service: &str, status: Status) -> AppError {
    let message = status.message().to_owned();
    match status.code() {
        Code::PermissionDenied => AppError::permission_denied(message),
        Code::Unauthenticated => AppError::unauthenticated(message),
        Code::NotFound => AppError::new(ErrorCode::NotFound, message),
        Code::InvalidArgument => {
            AppError::new(ErrorCode::InvalidArgument, format!("the {service} service refused the request: {message}"))
        }
        Code::FailedPrecondition => AppError::failed_precondition(message),
        _ => AppError::unavailable(format!("the {service} service cannot answer: {message}")),
    }
}

impl Upstream {
    pub fn new(peers: &PeersConfig) -> anyhow::Result<Self> {
        Ok(Upstream {
            clients: client::channel(&peers.clients, &peers.client)?,
            pipeline: client::channel(&peers.pipeline, &peers.client)?,
            feedback: client::channel(&peers.feedback, &peers.client)?,
            kpi: client::channel(&peers.kpi, &peers.client)?,
            retry: RetryPolicy::new(&peers.client),
        })
    }

    /// Runs an idempotent read of `service`.
    async fn read<T, F, Fut>(&self, service: &str, call: F) -> AppResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.retry.call_idempotent(call).await.map(Response::into_inner).map_err(|status| refused(service, status))
    }

    fn scoring(&self, credentials: &CallCredentials) -> ScoringServiceClient<WithToken> {
        ScoringServiceClient::with_interceptor(self.clients.clone(), credentials.with_deadline(self.retry.deadline()))
    }

    /// Full names of the employees of the caller's branches, by id.
    pub async fn employee_names(&self, credentials: &CallCredentials) -> AppResult<HashMap<String, String>> {
        let clients = ClientsServiceClient::with_interceptor(
            self.clients.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let reply = self
            .read("clients", || {
                let mut clients = clients.clone();
                async move { clients.list_employees(ListEmployeesRequest::default()).await }
            })
            .await?;
        Ok(reply.employees.into_iter().map(|e| (e.id, e.full_name)).collect())
    }

    /// Client and sales facts per period, branch and owner (or seller).
    pub async fn client_facts(&self, credentials: &CallCredentials, slice: Slice<'_>) -> AppResult<Vec<ClientFacts>> {
        let scoring = self.scoring(credentials);
        let request = GetClientFactsRequest {
            from: Some(slice.from.into()),
            to: Some(slice.to.into()),
            granularity: slice.granularity as i32,
            branch_id: slice.branch_id.to_owned(),
            ..Default::default()
        };
        let reply = self
            .read("clients", || {
                let (mut scoring, request) = (scoring.clone(), request.clone());
                async move { scoring.get_client_facts(request).await }
            })
            .await?;
        Ok(reply.facts)
    }

    pub async fn client(&self, credentials: &CallCredentials, client_id: &str) -> AppResult<Client> {
        let clients = ClientsServiceClient::with_interceptor(
            self.clients.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let request = GetClientRequest { id: client_id.to_owned() };
        let reply = self
            .read("clients", || {
                let (mut clients, request) = (clients.clone(), request.clone());
                async move { clients.get_client(request).await }
            })
            .await?;
        reply.client.ok_or_else(|| AppError::unavailable("the clients service sent no client"))
    }

    /// The client's current score; `None` until it has been scored.
    pub async fn score(&self, credentials: &CallCredentials, client_id: &str) -> AppResult<Option<ClientScore>> {
        let clients = ClientsServiceClient::with_interceptor(
            self.clients.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        // The batch read lists an unscored client as missing instead of
        // failing, so "not scored yet" is not mistaken for "no such client".
        let request = BatchGetClientScoresRequest { client_ids: vec![client_id.to_owned()] };
        let reply = self
            .read("clients", || {
                let (mut clients, request) = (clients.clone(), request.clone());
                async move { clients.batch_get_client_scores(request).await }
            })
            .await?;
        Ok(reply.scores.into_iter().find(|s| s.client_id == client_id))
    }

    pub async fn products(
        &self,
        credentials: &CallCredentials,
        client_id: &str,
    ) -> AppResult<GetClientProductsResponse> {
        let scoring = self.scoring(credentials);
        let request = GetClientProductsRequest { client_id: client_id.to_owned() };
        self.read("clients", || {
            let (mut scoring, request) = (scoring.clone(), request.clone());
            async move { scoring.get_client_products(request).await }
        })
        .await
    }

    pub async fn history(
        &self,
        credentials: &CallCredentials,
        client_id: &str,
        limit: i32,
    ) -> AppResult<Vec<ClientHistoryEntry>> {
        let scoring = self.scoring(credentials);
        let request = GetClientHistoryRequest { client_id: client_id.to_owned(), limit };
        let reply = self
            .read("clients", || {
                let (mut scoring, request) = (scoring.clone(), request.clone());
                async move { scoring.get_client_history(request).await }
            })
            .await?;
        Ok(reply.entries)
    }

    pub async fn abc_xyz_matrix(
        &self,
        credentials: &CallCredentials,
        branch_id: &str,
    ) -> AppResult<GetAbcXyzMatrixResponse> {
        let scoring = self.scoring(credentials);
        let request = GetAbcXyzMatrixRequest { branch_id: branch_id.to_owned() };
        self.read("clients", || {
            let (mut scoring, request) = (scoring.clone(), request.clone());
            async move { scoring.get_abc_xyz_matrix(request).await }
        })
        .await
    }

    pub async fn funnel(
        &self,
        credentials: &CallCredentials,
        request: GetFunnelRequest,
    ) -> AppResult<GetFunnelResponse> {
        let pipeline = PipelineServiceClient::with_interceptor(
            self.pipeline.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        self.read("pipeline", || {
            let (mut pipeline, request) = (pipeline.clone(), request.clone());
            async move { pipeline.get_funnel(request).await }
        })
        .await
    }

    pub async fn satisfaction_trend(
        &self,
        credentials: &CallCredentials,
        slice: Slice<'_>,
    ) -> AppResult<GetSatisfactionTrendResponse> {
        let feedback = FeedbackServiceClient::with_interceptor(
            self.feedback.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let request = GetSatisfactionTrendRequest {
            from: Some(slice.from.into()),
            to: Some(slice.to.into()),
            granularity: slice.granularity as i32,
            branch_id: slice.branch_id.to_owned(),
            ..Default::default()
        };
        self.read("feedback", || {
            let (mut feedback, request) = (feedback.clone(), request.clone());
            async move { feedback.get_satisfaction_trend(request).await }
        })
        .await
    }

    /// Coverage per period by client class.
    pub async fn coverage(&self, credentials: &CallCredentials, slice: Slice<'_>) -> AppResult<GetCoverageResponse> {
        let feedback = FeedbackServiceClient::with_interceptor(
            self.feedback.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let request = GetCoverageRequest {
            from: Some(slice.from.into()),
            to: Some(slice.to.into()),
            granularity: slice.granularity as i32,
            dimension: CoverageDimension::ClientClass as i32,
            branch_id: slice.branch_id.to_owned(),
        };
        self.read("feedback", || {
            let (mut feedback, request) = (feedback.clone(), request.clone());
            async move { feedback.get_coverage(request).await }
        })
        .await
    }

    pub async fn complaint_aging(
        &self,
        credentials: &CallCredentials,
        branch_id: &str,
    ) -> AppResult<GetComplaintAgingResponse> {
        let complaints = ComplaintServiceClient::with_interceptor(
            self.feedback.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let request = GetComplaintAgingRequest { branch_id: branch_id.to_owned() };
        self.read("feedback", || {
            let (mut complaints, request) = (complaints.clone(), request.clone());
            async move { complaints.get_complaint_aging(request).await }
        })
        .await
    }

    /// A computed bonus period's lines within the caller's branches.
    pub async fn bonus_period(
        &self,
        credentials: &CallCredentials,
        (from, to): (NaiveDate, NaiveDate),
        version: i32,
        branch_id: &str,
    ) -> AppResult<BonusPeriod> {
        let kpi =
            KpiServiceClient::with_interceptor(self.kpi.clone(), credentials.with_deadline(self.retry.deadline()));
        let request = GetPeriodRequest {
            from: Some(Date::from(from)),
            to: Some(Date::from(to)),
            version,
            branch_id: branch_id.to_owned(),
        };
        let reply = self
            .read("kpi", || {
                let (mut kpi, request) = (kpi.clone(), request.clone());
                async move { kpi.get_period(request).await }
            })
            .await?;
        reply.period.ok_or_else(|| AppError::unavailable("the kpi service sent no period"))
    }

    /// Every scorecard version of every role.
    pub async fn scorecards(&self, credentials: &CallCredentials) -> AppResult<Vec<Scorecard>> {
        let kpi =
            KpiServiceClient::with_interceptor(self.kpi.clone(), credentials.with_deadline(self.retry.deadline()));
        let reply = self
            .read("kpi", || {
                let mut kpi = kpi.clone();
                async move { kpi.list_scorecards(ListScorecardsRequest::default()).await }
            })
            .await?;
        Ok(reply.scorecards)
    }
}
