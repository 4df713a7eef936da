//! `SurveyLinkService`: what a client reaches through a survey link. The
//! token is the only credential and opens exactly its own invitation; no
//! answer reveals anything about other invitations or what the answers set off.
use crate::Feedback;
use crate::convert::{self, timestamp};
use crate::links;
use crate::outbox;
use crate::responses::{self, Provenance};
use crate::store;
use crate::store::invitations::InvitationRow;
use crate::surveys;
use branchscore_platform::error::ErrorCode;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult};
use branchscore_proto::feedback::v1::survey_link_service_server::SurveyLinkService;
use branchscore_proto::feedback::v1::*;
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

/// The survey link service.
#[derive(Debug, Clone)]
pub struct LinkApi {
    feedback: Feedback,
}

impl LinkApi {
    pub fn new(feedback: Feedback) -> Self {
        LinkApi { feedback }
    }

    /// The invitation behind `token` if it may still be answered.
    async fn open(&self, token: &str, executor: impl sqlx::PgExecutor<'_>, lock: bool) -> AppResult<InvitationRow> {
        if !links::is_well_formed(token) {
            return Err(not_valid());
        }
        let invitation =
            store::invitations::by_token_hash(executor, &links::hash(token), lock).await?.ok_or_else(not_valid)?;
        usable(&invitation, Utc::now())?;
        Ok(invitation)
    }
}

fn not_valid() -> AppError {
    metrics::counter!("survey_link_refusals_total", "reason" => "unknown").increment(1);
    AppError::unauthenticated("this survey link is not valid")
}

/// A link works once, and until it expires.
fn usable(invitation: &InvitationRow, now: DateTime<Utc>) -> AppResult<()> {
    if invitation.answered_at.is_some() {
        metrics::counter!("survey_link_refusals_total", "reason" => "answered").increment(1);
        return Err(AppError::new(ErrorCode::AlreadyExists, "this survey has been answered already; thank you"));
    }
    if invitation.expires_at <= now {
        metrics::counter!("survey_link_refusals_total", "reason" => "expired").increment(1);
        let day = invitation.expires_at.format("%Y-%m-%d");
        return Err(AppError::failed_precondition(format!("this survey link expired on {day}")));
    }
    Ok(())
}

#[tonic::async_trait]
impl SurveyLinkService for LinkApi {
    async fn open_survey(&self, request: Request<OpenSurveyRequest>) -> Result<Response<OpenSurveyResponse>, Status> {
        let token = &request.get_ref().token;
        let invitation = self.open(token, &self.feedback.pool, false).await?;
        store::invitations::mark_opened(&self.feedback.pool, invitation.id, Utc::now())
            .await
            .map_err(AppError::from)?;
        let survey =
            store::surveys::version(&self.feedback.pool, &invitation.survey_id, Some(invitation.survey_version))
                .await
                .map_err(AppError::from)?
                .map(|survey| SurveyVersion { created_by: String::new(), ..survey });
        Ok(Response::new(OpenSurveyResponse { survey, expire_time: Some(timestamp(invitation.expires_at)) }))
    }

    async fn submit_survey(
        &self,
        request: Request<SubmitSurveyRequest>,
    ) -> Result<Response<SubmitSurveyResponse>, Status> {
        let body = request.into_inner();
        let feedback = &self.feedback;
        // Checked before the transaction, so a bad answer locks and writes nothing.
        let peeked = self.open(&body.token, &feedback.pool, false).await?;
        let survey = store::surveys::version(&feedback.pool, &peeked.survey_id, Some(peeked.survey_version))
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("survey of invitation {} missing", peeked.id)))?;
        let mut v = Violations::new();
        let answers = surveys::check_answers(&mut v, "answers", &survey, body.answers.as_ref());
        v.finish()?;
        let answers = convert::validated(answers)?;
        let mut tx = feedback.pool.begin().await.map_err(AppError::from)?;
        // Locked: of two submissions racing with one token, the second sees it answered.
        let invitation = self.open(&body.token, &mut *tx, true).await?;
        let now = Utc::now();
        let provenance = Provenance {
            source: ResponseSource::WebLink,
            answered_on: now.with_timezone(&feedback.zone).date_naive(),
            recorded_by: String::new(),
            external_id: None,
        };
        let stored = responses::store_response(&mut tx, feedback, &invitation, &answers, &provenance, now)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("a web response without external id conflicted")))?;
        outbox::append(&mut tx, &stored.events).await.map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        feedback.outbox.committed();
        Ok(Response::new(SubmitSurveyResponse { answer_time: Some(timestamp(now)) }))
    }
}
