//! `FeedbackService`: authenticate, then the rules of each part.
use crate::Feedback;
use crate::{invitations, outbox, responses, stats, surveys};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::validate::Violations;
use branchscore_platform::{Principal, Role};
use branchscore_proto::feedback::v1::feedback_service_server::FeedbackService;
use branchscore_proto::feedback::v1::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Whoever delivers e-mail and messenger invitations and follows complaints.
const OUTBOX_READERS: &[Role] = &[Role::Admin, Role::ErpIntegration];

/// The feedback service.
#[derive(Debug, Clone)]
pub struct FeedbackApi {
    feedback: Feedback,
}

impl FeedbackApi {
    pub fn new(feedback: Feedback) -> Self {
        FeedbackApi { feedback }
    }
}

/// The caller and its token, to forward to the clients service.
fn caller<T>(request: &Request<T>) -> Result<(Principal, CallCredentials), Status> {
    Ok((Principal::of(request)?.clone(), CallCredentials::forwarded(request)))
}

#[tonic::async_trait]
impl FeedbackService for FeedbackApi {
    async fn create_survey_version(
        &self,
        request: Request<CreateSurveyVersionRequest>,
    ) -> Result<Response<CreateSurveyVersionResponse>, Status> {
        let (principal, credentials) = caller(&request)?;
        Ok(Response::new(
            surveys::create_version(&self.feedback, &principal, &credentials, request.into_inner()).await?,
        ))
    }

    async fn get_survey(&self, request: Request<GetSurveyRequest>) -> Result<Response<GetSurveyResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(surveys::get(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn list_surveys(
        &self,
        request: Request<ListSurveysRequest>,
    ) -> Result<Response<ListSurveysResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(surveys::list(&self.feedback, &principal).await?))
    }

    async fn plan_invitations(
        &self,
        request: Request<PlanInvitationsRequest>,
    ) -> Result<Response<PlanInvitationsResponse>, Status> {
        let (principal, credentials) = caller(&request)?;
        Ok(Response::new(invitations::plan(&self.feedback, &principal, &credentials, request.into_inner()).await?))
    }

    async fn create_invitations(
        &self,
        request: Request<CreateInvitationsRequest>,
    ) -> Result<Response<CreateInvitationsResponse>, Status> {
        let (principal, credentials) = caller(&request)?;
        Ok(Response::new(invitations::create(&self.feedback, &principal, &credentials, request.into_inner()).await?))
    }

    async fn list_invitations(
        &self,
        request: Request<ListInvitationsRequest>,
    ) -> Result<Response<ListInvitationsResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(invitations::list(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn export_printed_forms(
        &self,
        request: Request<ExportPrintedFormsRequest>,
    ) -> Result<Response<ExportPrintedFormsResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(invitations::export_printed(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn record_deliveries(
        &self,
        request: Request<RecordDeliveriesRequest>,
    ) -> Result<Response<RecordDeliveriesResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(invitations::record_deliveries(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn record_response(
        &self,
        request: Request<RecordResponseRequest>,
    ) -> Result<Response<RecordResponseResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(responses::record(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn import_responses(
        &self,
        request: Request<ImportResponsesRequest>,
    ) -> Result<Response<ImportResponsesResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(responses::import(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn list_responses(
        &self,
        request: Request<ListResponsesRequest>,
    ) -> Result<Response<ListResponsesResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(responses::list(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn batch_get_client_satisfaction(
        &self,
        request: Request<BatchGetClientSatisfactionRequest>,
    ) -> Result<Response<BatchGetClientSatisfactionResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(responses::satisfaction(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn get_coverage(
        &self,
        request: Request<GetCoverageRequest>,
    ) -> Result<Response<GetCoverageResponse>, Status> {
        let (principal, credentials) = caller(&request)?;
        Ok(Response::new(stats::coverage(&self.feedback, &principal, &credentials, request.into_inner()).await?))
    }

    async fn get_satisfaction_trend(
        &self,
        request: Request<GetSatisfactionTrendRequest>,
    ) -> Result<Response<GetSatisfactionTrendResponse>, Status> {
        let (principal, _) = caller(&request)?;
        Ok(Response::new(stats::trend(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn get_touchpoint_weights(
        &self,
        request: Request<GetTouchpointWeightsRequest>,
    ) -> Result<Response<GetTouchpointWeightsResponse>, Status> {
        let (principal, credentials) = caller(&request)?;
        Ok(Response::new(
            stats::touchpoint_weights(&self.feedback, &principal, &credentials, request.into_inner()).await?,
        ))
    }

    async fn get_feedback_facts(
        &self,
        request: Request<GetFeedbackFactsRequest>,
    ) -> Result<Response<GetFeedbackFactsResponse>, Status> {
        let (principal, credentials) = caller(&request)?;
        Ok(Response::new(stats::facts(&self.feedback, &principal, &credentials, request.into_inner()).await?))
    }

    type WatchOutboxStream = ReceiverStream<Result<WatchOutboxResponse, Status>>;

    async fn watch_outbox(
        &self,
        request: Request<WatchOutboxRequest>,
    ) -> Result<Response<Self::WatchOutboxStream>, Status> {
        let (principal, _) = caller(&request)?;
        principal.require(OUTBOX_READERS)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        v.check(body.after_cursor >= 0, || "after_cursor".into(), "must not be negative");
        for (i, topic) in body.topics.iter().enumerate() {
            v.check(
                !matches!(OutboxTopic::try_from(*topic), Ok(OutboxTopic::Unspecified) | Err(_)),
                || format!("topics[{i}]"),
                "must be one of the topics",
            );
        }
        v.finish()?;
        let topics = body.topics.iter().map(|t| *t as i16).collect();
        Ok(Response::new(outbox::watch(self.feedback.clone(), principal.branch_filter(), topics, body.after_cursor)))
    }
}
