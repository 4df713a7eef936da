//! The `branchscore.clients.v1.ScoringService` implementation: settings
//! versions, the recompute batch and the reads built on its results.
use crate::gather;
use crate::portrait;
use crate::recompute::{Recompute, RunLock};
use crate::settings;
use crate::store;
use branchscore_platform::client::CallCredentials;
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_platform::{db, deadline};
use branchscore_proto::clients::v1::scoring_service_server::ScoringService;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::Date;
use branchscore_proto::common::v1::{ClientKind, Granularity, SizeBand};
use branchscore_scoring::cross_sell;
use branchscore_scoring::maturity::{self, ClientProducts, MaturityAssessment, ProductState, TargetMatrix};
use branchscore_scoring::periods;
use branchscore_scoring::segment::{BirthAttributes, Segmentation};
use branchscore_scoring::window::AnalysisWindow;
use chrono::NaiveDate;
use std::collections::{BTreeSet, HashMap, HashSet};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const SETTINGS_WRITERS: &[Role] = &[Role::Admin, Role::HqAnalyst];
const RECOMPUTERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::ErpIntegration];
const STATE_WRITERS: &[Role] = &[Role::Admin, Role::BranchManager, Role::BranchStaff, Role::ErpIntegration];
const MAX_HISTORY: i32 = 1000;
const MAX_SEGMENTS: usize = 100;
const MAX_TARGETS: usize = 200;
const MAX_SUGGESTIONS: i32 = 50;
const MAX_FACT_DAYS: i64 = 3 * 366;

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
        let credentials = CallCredentials::forwarded(&request);
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
            let outcome = recompute.run(lock, as_of, &principal.subject, Some(credentials), &mut progress).await;
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
        let (written, cells) =
            store::abc_xyz_matrix(self.pool(), principal.branch_filter().as_deref(), branch_id, &self.company.currency)
                .await
                .map_err(AppError::from)?;
        // The scores hold as of the newest run, though one it found unchanged keeps the date it was written on.
        let newest_run = self.recompute.latest_run.get().await?.newest.map(|run| run.as_of);
        let as_of = if cells.is_empty() { written } else { newest_run.or(written) };
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

    async fn batch_upsert_segments(
        &self,
        request: Request<BatchUpsertSegmentsRequest>,
    ) -> Result<Response<BatchUpsertSegmentsResponse>, Status> {
        Principal::of(&request)?.require(SETTINGS_WRITERS)?;
        let segments = &request.get_ref().segments;
        let mut v = Violations::new();
        v.check(
            !segments.is_empty() && segments.len() <= MAX_SEGMENTS,
            || "segments".into(),
            "must hold 1 to 100 segments",
        );
        let mut seen = HashSet::new();
        for (i, segment) in segments.iter().enumerate() {
            v.id(|| format!("segments[{i}].id"), &segment.id);
            v.check(seen.insert(&segment.id), || format!("segments[{i}].id"), "appears twice in the request");
            v.text(|| format!("segments[{i}].name"), &segment.name, 200);
            for (j, kind) in segment.kinds.iter().enumerate() {
                v.check(
                    matches!(ClientKind::try_from(*kind), Ok(k) if k != ClientKind::Unspecified),
                    || format!("segments[{i}].kinds[{j}]"),
                    "must be B2B or B2C",
                );
            }
            for (j, band) in segment.size_bands.iter().enumerate() {
                v.check(
                    matches!(SizeBand::try_from(*band), Ok(b) if b != SizeBand::Unspecified),
                    || format!("segments[{i}].size_bands[{j}]"),
                    "must be one of the size bands",
                );
            }
            for (j, industry) in segment.industries.iter().enumerate() {
                v.text(|| format!("segments[{i}].industries[{j}]"), industry, 100);
            }
            v.check(
                !segment.target_product_ids.is_empty() && segment.target_product_ids.len() <= MAX_TARGETS,
                || format!("segments[{i}].target_product_ids"),
                "must list 1 to 200 products",
            );
        }
        v.finish()?;
        let wanted: Vec<String> = segments.iter().flat_map(|s| s.target_product_ids.iter().cloned()).collect();
        let known = store::existing(self.pool(), store::Catalogue::Products, &wanted).await.map_err(AppError::from)?;
        let mut v = Violations::new();
        for (i, segment) in segments.iter().enumerate() {
            for (j, product) in segment.target_product_ids.iter().enumerate() {
                v.check(
                    known.contains(product),
                    || format!("segments[{i}].target_product_ids[{j}]"),
                    "unknown product",
                );
            }
        }
        v.finish()?;
        store::upsert_segments(self.pool(), segments).await.map_err(AppError::from)?;
        let ids: HashSet<&String> = segments.iter().map(|s| &s.id).collect();
        let stored = store::list_segments(self.pool()).await.map_err(AppError::from)?;
        Ok(Response::new(BatchUpsertSegmentsResponse {
            segments: stored.into_iter().filter(|s| ids.contains(&s.id)).collect(),
        }))
    }

    async fn list_segments(
        &self,
        request: Request<ListSegmentsRequest>,
    ) -> Result<Response<ListSegmentsResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let segments = store::list_segments(self.pool()).await.map_err(AppError::from)?;
        Ok(Response::new(ListSegmentsResponse { segments }))
    }

    async fn set_product_state(
        &self,
        request: Request<SetProductStateRequest>,
    ) -> Result<Response<SetProductStateResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(STATE_WRITERS)?;
        let body = request.into_inner();
        let today = self.company.today().map_err(AppError::internal)?;
        let date = body.date.as_ref().and_then(|d| d.to_naive());
        let kind = ProductStateKind::try_from(body.state).unwrap_or_default();
        let mut v = Violations::new();
        v.id(|| "client_id".into(), &body.client_id);
        v.id(|| "product_id".into(), &body.product_id);
        v.check(kind != ProductStateKind::Unspecified, || "state".into(), "must be one of the product states");
        let dated = matches!(kind, ProductStateKind::Offered | ProductStateKind::Contracted);
        v.check(!dated || date.is_some(), || "date".into(), "is required for OFFERED and CONTRACTED");
        v.check(date.is_none_or(|d| d <= today), || "date".into(), "must not be in the future");
        v.check(body.date.is_none() || date.is_some(), || "date".into(), "must be a real calendar date");
        v.check(
            kind != ProductStateKind::Refused || !body.reason.trim().is_empty(),
            || "reason".into(),
            "is required for REFUSED",
        );
        v.check(body.reason.chars().count() <= 500, || "reason".into(), "must be at most 500 characters");
        v.finish()?;
        self.visible_client(&principal, &body.client_id).await?;
        let products = store::existing(self.pool(), store::Catalogue::Products, std::slice::from_ref(&body.product_id))
            .await
            .map_err(AppError::from)?;
        if products.is_empty() {
            return Err(AppError::not_found(format!("product {}", body.product_id)).into());
        }
        let stored = store::set_product_state(
            self.pool(),
            &store::RecordedState {
                client_id: body.client_id,
                product_id: body.product_id,
                state: kind as i16,
                date: if dated { date } else { None },
                reason: if kind == ProductStateKind::Refused { body.reason.trim().to_owned() } else { String::new() },
                updated_by: principal.subject.clone(),
                updated_at: chrono::Utc::now(),
            },
        )
        .await
        .map_err(AppError::from)?;
        Ok(Response::new(SetProductStateResponse { state: Some(stored.message()) }))
    }

    async fn get_client_products(
        &self,
        request: Request<GetClientProductsRequest>,
    ) -> Result<Response<GetClientProductsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(&Role::ALL)?;
        let client_id = &request.get_ref().client_id;
        let mut v = Violations::new();
        v.id(|| "client_id".into(), client_id);
        v.finish()?;
        let portrait = self.portrait(&principal, client_id).await?;
        let assessment = portrait.assess();
        let recorded: HashMap<&str, &store::RecordedState> =
            portrait.recorded.iter().map(|r| (r.product_id.as_str(), r)).collect();
        let products = assessment
            .products
            .iter()
            .map(|p| {
                let mut message = portrait::state_message(p.product, p.state);
                if let Some(r) = recorded.get(p.product.as_str()).filter(|r| i32::from(r.state) == message.state) {
                    message.updated_by = r.updated_by.clone();
                    message.update_time = r.message().update_time;
                }
                message
            })
            .collect();
        Ok(Response::new(GetClientProductsResponse {
            segment_id: portrait.segment_id.clone(),
            targeted: i32::try_from(assessment.targeted).unwrap_or(i32::MAX),
            used: i32::try_from(assessment.used).unwrap_or(i32::MAX),
            maturity: assessment.maturity.unwrap_or(0.0),
            products,
        }))
    }

    async fn suggest_cross_sell(
        &self,
        request: Request<SuggestCrossSellRequest>,
    ) -> Result<Response<SuggestCrossSellResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        v.id(|| "client_id".into(), &body.client_id);
        v.check(
            (0..=MAX_SUGGESTIONS).contains(&body.limit),
            || "limit".into(),
            "must be between 0 (default 10) and 50",
        );
        v.finish()?;
        let limit = if body.limit == 0 { 10 } else { body.limit as usize };
        let portrait = self.portrait(&principal, &body.client_id).await?;
        let assessment = portrait.assess();
        let owned = portrait.owned();
        let owned_list: Vec<String> = owned.iter().cloned().collect();
        let rules = store::basket_rules_from(self.pool(), &owned_list).await.map_err(AppError::from)?;
        let names = store::product_names(self.pool()).await.map_err(AppError::from)?;
        let suggestions = cross_sell::suggest(&assessment.cross_sell(), &owned, &rules, limit);
        let segment_name = portrait.segment.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
        Ok(Response::new(SuggestCrossSellResponse {
            suggestions: suggestions.iter().map(|s| portrait::suggestion(s, &segment_name, name)).collect(),
        }))
    }

    async fn get_client_facts(
        &self,
        request: Request<GetClientFactsRequest>,
    ) -> Result<Response<GetClientFactsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(&Role::ALL)?;
        let (received, limit) = (std::time::Instant::now(), deadline::of_request(&request));
        let body = request.into_inner();
        let (from, to) = (body.from.and_then(|d| d.to_naive()), body.to.and_then(|d| d.to_naive()));
        let granularity = match Granularity::try_from(body.granularity) {
            Ok(Granularity::Day) => Some(periods::Granularity::Day),
            Ok(Granularity::Week) => Some(periods::Granularity::Week),
            Ok(Granularity::Month) => Some(periods::Granularity::Month),
            Ok(Granularity::Unspecified) => Some(periods::Granularity::Whole),
            Err(_) => None,
        };
        let mut v = Violations::new();
        v.check(from.is_some(), || "from".into(), "is required and must be a real calendar date");
        v.check(to.is_some(), || "to".into(), "is required and must be a real calendar date");
        if let (Some(from), Some(to)) = (from, to) {
            v.check(from <= to, || "to".into(), "must not be before from");
            v.check((to - from).num_days() <= MAX_FACT_DAYS, || "to".into(), "the range may span at most 3 years");
        }
        v.check(granularity.is_some(), || "granularity".into(), "must be DAY, WEEK, MONTH or unspecified");
        if !body.branch_id.is_empty() {
            v.id(|| "branch_id".into(), &body.branch_id);
        }
        if !body.employee_id.is_empty() {
            v.id(|| "employee_id".into(), &body.employee_id);
        }
        v.finish()?;
        let (Some(from), Some(to), Some(granularity)) = (from, to, granularity) else {
            return Err(AppError::internal(anyhow::anyhow!("validated range missing")).into());
        };
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let scope = principal.branch_filter();
        let stored = store::settings::effective(self.pool(), to).await.map_err(AppError::from)?;
        // What imports since the last refresh touched is recomputed first.
        let deadline = limit.map(|limit| received + limit);
        store::rollups::refresh(self.pool(), from, to, deadline).await.map_err(AppError::from)?;
        let remaining = deadline.map(|deadline| deadline.saturating_duration_since(std::time::Instant::now()));
        // Both statements stop at the caller's deadline instead of running on for a caller that has gone.
        let (mut days_tx, mut sales_tx) =
            tokio::try_join!(db::read_within(self.pool(), remaining), db::read_within(self.pool(), remaining))
                .map_err(AppError::from)?;
        let periods = periods::split(from, to, granularity);
        let query = gather::FactsQuery {
            periods: &periods,
            lifecycle_months: stored.settings.lifecycle_period_months,
            scope: scope.as_deref(),
            branch_id: &body.branch_id,
            employee_id: &body.employee_id,
            include_sources: body.include_sources,
        };
        let facts = gather::client_facts(&mut days_tx, &mut sales_tx, &query, &self.company.currency).await?;
        Ok(Response::new(GetClientFactsResponse { facts, settings_version: stored.version }))
    }
}

/// Everything the maturity of one client is judged on, read live.
struct ClientPortrait {
    segment: Option<Segment>,
    segment_id: String,
    matrix: TargetMatrix<String, String>,
    recorded: Vec<store::RecordedState>,
    purchased: Vec<String>,
    /// Recorded states plus `Using` for every product bought in the window.
    states: Vec<(String, ProductState)>,
}

impl ClientPortrait {
    fn assess(&self) -> MaturityAssessment<'_, String> {
        maturity::assess(&self.matrix, &ClientProducts { segment: &self.segment_id, states: &self.states })
    }

    /// Products the client uses or has contracted: never suggested.
    fn owned(&self) -> BTreeSet<String> {
        self.states
            .iter()
            .filter(|(_, s)| matches!(s, ProductState::Using | ProductState::Contracted { .. }))
            .map(|(p, _)| p.clone())
            .chain(self.purchased.iter().cloned())
            .collect()
    }
}

impl ScoringApi {
    /// The client if the caller may see it, else NOT_FOUND.
    async fn visible_client(&self, principal: &Principal, client_id: &str) -> AppResult<Client> {
        store::clients_by_ids(self.pool(), &[client_id.to_owned()], principal.branch_filter().as_deref())
            .await?
            .pop()
            .ok_or_else(|| AppError::not_found(format!("client {client_id}")))
    }

    async fn portrait(&self, principal: &Principal, client_id: &str) -> AppResult<ClientPortrait> {
        let client = self.visible_client(principal, client_id).await?;
        let today = self.company.today().map_err(AppError::internal)?;
        let settings = store::settings::effective(self.pool(), today).await?.settings;
        let window = AnalysisWindow::as_of(today, settings.window_months).map_err(AppError::internal)?;
        let segments = store::list_segments(self.pool()).await?;
        let segmentation =
            Segmentation::new(segments.iter().map(|s| (s.priority, s.id.clone(), portrait::criteria(s))));
        let attributes = BirthAttributes { kind: client.kind, size_band: client.size_band, industry: &client.industry };
        let segment =
            segmentation.segment_of(&attributes).and_then(|id| segments.iter().find(|s| &s.id == id)).cloned();
        let recorded = store::product_states(self.pool(), Some(client_id)).await?;
        // Bought since the window started, today included: in use.
        let purchased = store::purchased_products(self.pool(), client_id, window.start(), today).await?;
        let mut states: Vec<(String, ProductState)> = recorded
            .iter()
            .filter_map(|r| {
                Some((r.product_id.clone(), portrait::product_state(i32::from(r.state), r.date, &r.reason)?))
            })
            .collect();
        states.extend(purchased.iter().map(|p| (p.clone(), ProductState::Using)));
        let segment_id = segment.as_ref().map(|s| s.id.clone()).unwrap_or_default();
        let targets = segment.as_ref().map(|s| s.target_product_ids.clone()).unwrap_or_default();
        let matrix = TargetMatrix::new([(segment_id.clone(), targets)]);
        Ok(ClientPortrait { segment, segment_id, matrix, recorded, purchased, states })
    }
}
