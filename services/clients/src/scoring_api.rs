//! The `branchscore.clients.v1.ScoringService` implementation: settings
//! versions, the recompute batch and the reads built on its results.
use crate::recompute::{Recompute, RunLock};
use crate::settings;
use crate::store;
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::clients::v1::scoring_service_server::ScoringService;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::Date;
use chrono::NaiveDate;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const SETTINGS_WRITERS: &[Role] = &[Role::Admin, Role::HqAnalyst];
const RECOMPUTERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::ErpIntegration];
const MAX_HISTORY: i32 = 1000;

/// The scoring service.
#[derive(Debug, Clone)]
pub struct ScoringApi {
    recompute: Recompute,
    company: CompanyConfig,
}

impl ScoringApi {
    pub fn new(recompute: Recompute, company: CompanyConfig) -> Self {
        ScoringApi { recompute, company }
    }

    fn pool(&self) -> &sqlx::PgPool {
        &self.recompute.pool
    }

    /// `date` if given and valid (not after today), else today.
    fn as_of(&self, field: &str, date: Option<&Date>) -> AppResult<NaiveDate> {
        let today = self.company.today().map_err(AppError::internal)?;
        let Some(date) = date else { return Ok(today) };
        let date = date.to_naive().ok_or_else(|| AppError::invalid_field(field, "must be a real calendar date"))?;
        if date > today {
            return Err(AppError::invalid_field(field, format!("{date} is in the future (today is {today})")));
        }
        Ok(date)
    }
}

#[tonic::async_trait]
impl ScoringService for ScoringApi {
    async fn get_scoring_settings(
        &self,
        request: Request<GetScoringSettingsRequest>,
    ) -> Result<Response<GetScoringSettingsResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let as_of = match &request.get_ref().as_of {
            Some(date) => {
                date.to_naive().ok_or_else(|| AppError::invalid_field("as_of", "must be a real calendar date"))?
            }
            None => self.company.today().map_err(AppError::internal)?,
        };
        let stored = store::settings::effective(self.pool(), as_of).await.map_err(AppError::from)?;
        Ok(Response::new(GetScoringSettingsResponse { settings: Some(settings::version_to_proto(&stored)) }))
    }

    async fn list_scoring_settings(
        &self,
        request: Request<ListScoringSettingsRequest>,
    ) -> Result<Response<ListScoringSettingsResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let versions = store::settings::all(self.pool()).await.map_err(AppError::from)?;
        Ok(Response::new(ListScoringSettingsResponse {
            versions: versions.iter().map(settings::version_to_proto).collect(),
        }))
    }

    async fn create_scoring_settings(
        &self,
        request: Request<CreateScoringSettingsRequest>,
    ) -> Result<Response<CreateScoringSettingsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SETTINGS_WRITERS)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let effective_from = body.effective_from.as_ref().and_then(|d| d.to_naive());
        v.check(effective_from.is_some(), || "effective_from".into(), "is required and must be a real calendar date");
        v.text(|| "comment".into(), &body.comment, 500);
        let parsed = match &body.settings {
            Some(message) => settings::validated(message),
            None => Err(Vec::new()),
        };
        if body.settings.is_none() {
            v.add("settings", "is required");
        }
        if let Err(violations) = &parsed {
            for violation in violations {
                v.add(violation.field.clone(), violation.description.clone());
            }
        }
        v.finish()?;
        let (Some(effective_from), Ok(parsed)) = (effective_from, parsed) else {
            return Err(AppError::internal(anyhow::anyhow!("validated settings missing")).into());
        };
        let stored = store::settings::insert(self.pool(), effective_from, &parsed, &body.comment, &principal.subject)
            .await
            .map_err(AppError::from)?;
        tracing::info!(version = stored.version, %effective_from, by = %principal.subject, "scoring settings stored");
        Ok(Response::new(CreateScoringSettingsResponse { settings: Some(settings::version_to_proto(&stored)) }))
    }

    type RecomputeScoresStream = ReceiverStream<Result<RecomputeScoresResponse, Status>>;

    async fn recompute_scores(
        &self,
        request: Request<RecomputeScoresRequest>,
    ) -> Result<Response<Self::RecomputeScoresStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(RECOMPUTERS)?;
        let as_of = self.as_of("as_of", request.get_ref().as_of.as_ref())?;
        // Refused here, before the stream opens, when another run holds the lock.
        let lock = RunLock::acquire(self.pool()).await?;
        let (sender, receiver) = mpsc::channel(64);
        let recompute = self.recompute.clone();
        // The batch finishes even if the caller goes away.
        tokio::spawn(async move {
            let progress_sender = sender.clone();
            let mut progress = move |phase: RecomputePhase, done: u64, total: u64| {
                // Progress may be dropped for a slow reader; the summary is not.
                let _ = progress_sender.try_send(Ok(RecomputeScoresResponse {
                    phase: phase as i32,
                    done: done as i64,
                    total: total as i64,
                    summary: None,
                }));
            };
            let outcome = recompute.run(lock, as_of, &principal.subject, &mut progress).await;
            let last = outcome.map(|summary| RecomputeScoresResponse {
                phase: RecomputePhase::Done as i32,
                done: summary.clients,
                total: summary.clients,
                summary: Some(summary),
            });
            if let Err(err) = &last {
                tracing::error!(error = %err, "recompute failed");
            }
            let _ = sender.send(last.map_err(Status::from)).await;
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_client_history(
        &self,
        request: Request<GetClientHistoryRequest>,
    ) -> Result<Response<GetClientHistoryResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        v.id(|| "client_id".into(), &body.client_id);
        v.check((0..=MAX_HISTORY).contains(&body.limit), || "limit".into(), "must be between 0 (default 100) and 1000");
        v.finish()?;
        let visible = store::clients_by_ids(
            self.pool(),
            std::slice::from_ref(&body.client_id),
            principal.branch_filter().as_deref(),
        )
        .await
        .map_err(AppError::from)?;
        if visible.is_empty() {
            return Err(AppError::not_found(format!("client {}", body.client_id)).into());
        }
        let limit = if body.limit == 0 { 100 } else { body.limit };
        let entries = store::history(self.pool(), &body.client_id, i64::from(limit)).await.map_err(AppError::from)?;
        Ok(Response::new(GetClientHistoryResponse { entries }))
    }

    async fn get_abc_xyz_matrix(
        &self,
        request: Request<GetAbcXyzMatrixRequest>,
    ) -> Result<Response<GetAbcXyzMatrixResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let branch_id = &request.get_ref().branch_id;
        if !branch_id.is_empty() {
            principal.ensure_branch(branch_id)?;
        }
        let (as_of, cells) =
            store::abc_xyz_matrix(self.pool(), principal.branch_filter().as_deref(), branch_id, &self.company.currency)
                .await
                .map_err(AppError::from)?;
        Ok(Response::new(GetAbcXyzMatrixResponse { as_of: as_of.map(Date::from), cells }))
    }

    async fn list_cluster_profiles(
        &self,
        request: Request<ListClusterProfilesRequest>,
    ) -> Result<Response<ListClusterProfilesResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let latest =
            store::latest_cluster_profiles(self.pool(), &self.company.currency).await.map_err(AppError::from)?;
        let Some((run_id, as_of, silhouette, profiles)) = latest else {
            return Err(AppError::not_found("cluster profiles: no recompute has finished yet").into());
        };
        Ok(Response::new(ListClusterProfilesResponse { as_of: Some(Date::from(as_of)), run_id, silhouette, profiles }))
    }
}
