//! The `branchscore.pipeline.v1.PipelineService` implementation: validate,
//! authorise, call the store and the domain rules, map errors.
use crate::deals::{self, LOST, OPEN, WON};
use crate::store::{self, ControlPointRow, DealRow, Filter, LeadRow};
use crate::{ChannelRule, ChannelRules, Config, events, presets};
use branchscore_platform::client::{CallCredentials, ClientConfig, RetryPolicy};
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_platform::{db, deadline};
use branchscore_proto::clients::v1::GetClientRequest;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::common::v1::{Date, FactSource, Granularity, Money};
use branchscore_proto::convert::to_datetime;
use branchscore_proto::pipeline::v1::pipeline_service_server::PipelineService;
use branchscore_proto::pipeline::v1::*;
use branchscore_scoring::periods;
use branchscore_scoring::pipeline::{self as rules, Qualification as Facts, Timing};
use chrono::{DateTime, Days, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{Notify, OnceCell, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const HEAD_OFFICE: &[Role] = &[Role::Admin, Role::HqAnalyst];
const SELLERS: &[Role] = &[Role::Admin, Role::BranchManager, Role::BranchStaff, Role::ErpIntegration];
const LOST_STAGE_INDEX: i32 = -1;

/// The pipeline service.
#[derive(Debug, Clone)]
pub struct PipelineApi {
    pool: sqlx::PgPool,
    company: CompanyConfig,
    clients: Channel,
    retry: RetryPolicy,
    channels: ChannelRules,
    cycle_multiple: f64,
    presets: Arc<OnceCell<()>>,
    written: Arc<Notify>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

impl PipelineApi {
    pub fn new(
        pool: sqlx::PgPool,
        company: CompanyConfig,
        clients: Channel,
        config: &Config,
        calls: &ClientConfig,
    ) -> Self {
        PipelineApi {
            pool,
            company,
            clients,
            retry: RetryPolicy::new(calls),
            channels: config.channels.clone(),
            cycle_multiple: config.cycle_multiple,
            presets: Arc::new(OnceCell::new()),
            written: Arc::new(Notify::new()),
        }
    }

    fn today(&self) -> AppResult<NaiveDate> {
        self.company.today().map_err(AppError::internal)
    }

    /// The business date of an instant, in the company's zone.
    fn date_of(&self, at: DateTime<Utc>) -> AppResult<NaiveDate> {
        self.company.date_of(at).map_err(AppError::internal)
    }

    /// The shipped pipelines exist before anything reads pipelines.
    async fn presets(&self) -> AppResult<()> {
        self.presets
            .get_or_try_init(|| async {
                store::ensure_presets(&self.pool, &[presets::schiffman(), presets::agency()])
                    .await
                    .map_err(AppError::from)
            })
            .await?;
        Ok(())
    }

    fn channel_rule(&self, channel: LeadChannel) -> Option<ChannelRule> {
        let c = &self.channels;
        match channel {
            LeadChannel::WalkIn => Some(c.walk_in),
            LeadChannel::Phone => Some(c.phone),
            LeadChannel::Messenger => Some(c.messenger),
            LeadChannel::Site => Some(c.site),
            LeadChannel::Email => Some(c.email),
            LeadChannel::Unspecified => None,
        }
    }

    /// The client as the clients service knows it, asked with the caller's token.
    async fn client_branch<T>(&self, request: &Request<T>, client_id: &str) -> AppResult<String> {
        let clients = ClientsServiceClient::with_interceptor(
            self.clients.clone(),
            CallCredentials::forwarded(request).with_deadline(self.retry.deadline()),
        );
        let asked = self
            .retry
            .call_idempotent(|| {
                let mut clients = clients.clone();
                let id = client_id.to_owned();
                async move { clients.get_client(GetClientRequest { id }).await }
            })
            .await;
        match asked {
            Ok(reply) => Ok(reply.into_inner().client.map(|c| c.branch_id).unwrap_or_default()),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(AppError::not_found(format!("client {client_id}")))
            }
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                Err(AppError::permission_denied(status.message().to_owned()))
            }
            Err(status) => Err(AppError::unavailable(format!(
                "the clients service cannot confirm the client: {}",
                status.message()
            ))),
        }
    }

    async fn full_deal(&self, row: &DealRow) -> AppResult<Deal> {
        let (history, points) =
            tokio::try_join!(store::history(&self.pool, &row.id), store::control_points_of(&self.pool, &row.id))?;
        Ok(deals::deal(row, &history, &points))
    }

    /// Control points of `stage`, due counted from when the deal entered it.
    fn control_points(&self, deal: &DealRow, stage: &Stage) -> AppResult<Vec<ControlPointRow>> {
        let entered = self.date_of(deal.stage_entered_at)?;
        Ok(stage
            .control_points
            .iter()
            .map(|t| ControlPointRow {
                id: uuid::Uuid::now_v7().to_string(),
                deal_id: deal.id.clone(),
                stage: stage.code.clone(),
                kind: t.kind.clone(),
                due_date: entered + Days::new(u64::try_from(t.due_after_days).unwrap_or(0)),
                completed_at: None,
                owner_employee_id: deal.owner_employee_id.clone(),
                branch_id: deal.branch_id.clone(),
            })
            .collect())
    }

    async fn pipeline_of(&self, deal: &DealRow) -> AppResult<Pipeline> {
        store::pipeline(&self.pool, &deal.pipeline_id, deal.pipeline_version).await?.ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("pipeline {} v{} missing", deal.pipeline_id, deal.pipeline_version))
        })
    }

    /// Opens a transaction and locks a visible, open deal.
    async fn open_deal(
        &self,
        principal: &Principal,
        deal_id: &str,
    ) -> AppResult<(sqlx::Transaction<'static, sqlx::Postgres>, DealRow)> {
        let mut tx = self.pool.begin().await?;
        let deal = store::lock_deal(&mut tx, deal_id, principal.branch_filter().as_deref())
            .await?
            .ok_or_else(|| AppError::not_found(format!("deal {deal_id}")))?;
        if deal.status != OPEN {
            let state = if deal.status == WON { "won" } else { "lost" };
            return Err(AppError::failed_precondition(format!("deal {deal_id} is already {state}")));
        }
        Ok((tx, deal))
    }

    /// Records a stage change with its history row, control points and event.
    async fn commit_stage_change(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        deal: &DealRow,
        change: StageChange<'_>,
    ) -> AppResult<Deal> {
        let StageChange { from, to_index, by, event, entered } = change;
        store::update_deal_stage(&mut tx, deal).await?;
        let to = if deal.status == LOST { "lost" } else { deal.stage.as_str() };
        store::insert_transition(&mut tx, &deal.id, (from, to, to_index), by, deal.stage_entered_at).await?;
        if let Some(stage) = entered {
            store::insert_control_points(&mut tx, &self.control_points(deal, stage)?).await?;
        }
        store::insert_event(&mut tx, event as i16, deal).await?;
        tx.commit().await?;
        self.written.notify_waiters();
        metrics::counter!("deal_stage_changes_total", "event" => event.as_str_name()).increment(1);
        self.full_deal(deal).await
    }

    fn filter<'a>(
        principal: &'a Principal,
        scope: &'a Option<Vec<String>>,
        branch_id: &'a str,
        employee_id: &'a str,
    ) -> AppResult<Filter<'a>> {
        if !branch_id.is_empty() {
            principal.ensure_branch(branch_id)?;
        }
        Ok(Filter { scope: scope.as_deref(), branch_id, employee_id })
    }

    fn money(&self, minor_units: i64) -> Option<Money> {
        Some(Money { minor_units, currency: self.company.currency.clone() })
    }
}

/// What a stage change records besides the deal's new state.
struct StageChange<'a> {
    from: &'a str,
    /// The new stage's index; -1 for lost.
    to_index: i32,
    by: &'a str,
    event: StageEventKind,
    /// The stage entered, whose control points start now.
    entered: Option<&'a Stage>,
}

fn check_optional_id(v: &mut Violations, field: &str, value: &str) {
    if !value.is_empty() {
        v.id(|| field.into(), value);
    }
}

#[tonic::async_trait]
impl PipelineService for PipelineApi {
    async fn create_pipeline(
        &self,
        request: Request<CreatePipelineRequest>,
    ) -> Result<Response<CreatePipelineResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(HEAD_OFFICE)?;
        let pipeline = request.into_inner().pipeline.unwrap_or_default();
        let mut v = Violations::new();
        presets::check(&pipeline, &mut v);
        v.finish()?;
        self.presets().await?;
        let stored = store::insert_pipeline(&self.pool, &pipeline, &principal.subject).await.map_err(AppError::from)?;
        Ok(Response::new(CreatePipelineResponse { pipeline: Some(stored) }))
    }

    async fn list_pipelines(
        &self,
        request: Request<ListPipelinesRequest>,
    ) -> Result<Response<ListPipelinesResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        self.presets().await?;
        let pipelines = store::latest_pipelines(&self.pool).await.map_err(AppError::from)?;
        Ok(Response::new(ListPipelinesResponse { pipelines }))
    }

    async fn create_lead(&self, request: Request<CreateLeadRequest>) -> Result<Response<CreateLeadResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let body = request.into_inner();
        let received_at = body.receive_time.as_ref().map(to_datetime);
        let channel = LeadChannel::try_from(body.channel).unwrap_or_default();
        let mut v = Violations::new();
        v.id(|| "request_id".into(), &body.request_id);
        v.id(|| "branch_id".into(), &body.branch_id);
        v.id(|| "owner_employee_id".into(), &body.owner_employee_id);
        v.check(channel != LeadChannel::Unspecified, || "channel".into(), "must be one of the lead channels");
        v.check(received_at.is_none_or(|t| t.is_some()), || "receive_time".into(), "is not a valid time");
        v.check(
            received_at.flatten().is_none_or(|t| t <= now()),
            || "receive_time".into(),
            "must not be in the future",
        );
        check_optional_id(&mut v, "client_id", &body.client_id);
        v.text(|| "contact_name".into(), &body.contact_name, 200);
        v.finish()?;
        principal.ensure_branch(&body.branch_id)?;
        let rule = self.channel_rule(channel).ok_or_else(|| AppError::invalid_field("channel", "unknown"))?;
        let lead = store::insert_lead(
            &self.pool,
            &store::NewLead {
                request_id: &body.request_id,
                created_by: &principal.subject,
                lead: LeadRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    branch_id: body.branch_id,
                    owner_employee_id: body.owner_employee_id,
                    channel: channel as i16,
                    priority: rule.priority,
                    sla_seconds: rule.sla_seconds,
                    received_at: received_at.flatten().unwrap_or_else(now),
                    first_response_at: None,
                    client_id: body.client_id,
                    contact_name: body.contact_name,
                    deal_id: None,
                },
            },
        )
        .await
        .map_err(AppError::from)?;
        Ok(Response::new(CreateLeadResponse { lead: Some(deals::lead(&lead)) }))
    }

    async fn respond_to_lead(
        &self,
        request: Request<RespondToLeadRequest>,
    ) -> Result<Response<RespondToLeadResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let body = request.into_inner();
        let at = body.response_time.as_ref().map(to_datetime);
        let mut v = Violations::new();
        v.id(|| "lead_id".into(), &body.lead_id);
        v.check(
            at.is_none_or(|t| t.is_some_and(|t| t <= now())),
            || "response_time".into(),
            "must be a valid time, not in the future",
        );
        v.finish()?;
        let lead = store::lead(&self.pool, &body.lead_id, principal.branch_filter().as_deref())
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found(format!("lead {}", body.lead_id)))?;
        let at = at.flatten().unwrap_or_else(now);
        if at < lead.received_at {
            return Err(AppError::invalid_field("response_time", "is before the lead arrived").into());
        }
        let lead = store::respond_to_lead(&self.pool, &lead.id, at).await.map_err(AppError::from)?;
        Ok(Response::new(RespondToLeadResponse { lead: Some(deals::lead(&lead)) }))
    }

    async fn list_sla_breaches(
        &self,
        request: Request<ListSlaBreachesRequest>,
    ) -> Result<Response<ListSlaBreachesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let since = match &body.since {
            Some(t) => to_datetime(t).ok_or_else(|| AppError::invalid_field("since", "is not a valid time"))?,
            None => now() - chrono::Duration::days(30),
        };
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let rows = store::sla_breaches(&self.pool, principal.branch_filter().as_deref(), &body.branch_id, since, now())
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(ListSlaBreachesResponse { leads: rows.iter().map(deals::lead).collect() }))
    }

    async fn create_deal(&self, request: Request<CreateDealRequest>) -> Result<Response<CreateDealResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let body = request.get_ref().clone();
        let today = self.today()?;
        let close = body.expected_close_date.as_ref().and_then(|d| d.to_naive());
        let opened = body.create_time.as_ref().map(to_datetime);
        let mut v = Violations::new();
        v.id(|| "request_id".into(), &body.request_id);
        v.check(
            opened.is_none_or(|t| t.is_some_and(|t| t <= now())),
            || "create_time".into(),
            "must be a valid time, not in the future",
        );
        v.id(|| "client_id".into(), &body.client_id);
        v.id(|| "branch_id".into(), &body.branch_id);
        v.id(|| "owner_employee_id".into(), &body.owner_employee_id);
        check_optional_id(&mut v, "pipeline_id", &body.pipeline_id);
        check_optional_id(&mut v, "lead_id", &body.lead_id);
        match &body.amount {
            Some(m) => {
                v.check(m.minor_units >= 0, || "amount.minor_units".into(), "must not be negative");
                v.check(
                    m.currency == self.company.currency,
                    || "amount.currency".into(),
                    "must be the company currency",
                );
            }
            None => v.add("amount", "is required"),
        }
        v.check(close.is_some(), || "expected_close_date".into(), "is required and must be a real calendar date");
        let opened = opened.flatten().unwrap_or_else(now);
        let opened_on = self.date_of(opened)?;
        v.check(
            close.is_none_or(|c| c >= opened_on),
            || "expected_close_date".into(),
            "must not be before the deal was opened",
        );
        v.finish()?;
        principal.ensure_branch(&body.branch_id)?;
        // A retry returns what the first call created, without asking anyone again.
        if let Some(existing) =
            store::deal_by_request(&self.pool, &principal.subject, &body.request_id).await.map_err(AppError::from)?
        {
            return Ok(Response::new(CreateDealResponse { deal: Some(self.full_deal(&existing).await?) }));
        }
        if !body.lead_id.is_empty() {
            let lead = store::lead(&self.pool, &body.lead_id, principal.branch_filter().as_deref())
                .await
                .map_err(AppError::from)?
                .ok_or_else(|| AppError::not_found(format!("lead {}", body.lead_id)))?;
            if lead.branch_id != body.branch_id {
                return Err(AppError::failed_precondition(format!(
                    "lead {} belongs to branch {}",
                    lead.id, lead.branch_id
                ))
                .into());
            }
            if let Some(deal) = lead.deal_id {
                return Err(
                    AppError::failed_precondition(format!("lead {} already became deal {deal}", lead.id)).into()
                );
            }
        }
        let branch = self.client_branch(&request, &body.client_id).await?;
        if branch != body.branch_id {
            return Err(AppError::failed_precondition(format!(
                "client {} belongs to branch {branch}, not {}",
                body.client_id, body.branch_id
            ))
            .into());
        }
        self.presets().await?;
        let pipeline = store::pipeline(&self.pool, &body.pipeline_id, 0)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found(format!("pipeline {}", body.pipeline_id)))?;
        let first = pipeline.stages.first().cloned().unwrap_or_default();
        let deal = DealRow {
            id: uuid::Uuid::now_v7().to_string(),
            client_id: body.client_id,
            branch_id: body.branch_id,
            owner_employee_id: body.owner_employee_id,
            pipeline_id: pipeline.id.clone(),
            pipeline_version: pipeline.version,
            stage: first.code.clone(),
            stage_index: 0,
            probability: i16::try_from(first.probability_percent).unwrap_or(0),
            status: OPEN,
            amount_minor: body.amount.map_or(0, |m| m.minor_units),
            currency: self.company.currency.clone(),
            expected_close: close.unwrap_or(today),
            right_person: false,
            right_plan: false,
            right_budget: false,
            right_timeline: false,
            lead_id: (!body.lead_id.is_empty()).then_some(body.lead_id),
            loss_reason: None,
            created_at: opened,
            stage_entered_at: opened,
            closed_at: None,
        };
        let mut tx = self.pool.begin().await.map_err(AppError::from)?;
        if !store::insert_deal(&mut tx, &deal, &body.request_id, &principal.subject).await.map_err(AppError::from)? {
            // The same request raced us and won: answer with its deal.
            drop(tx);
            let existing = store::deal_by_request(&self.pool, &principal.subject, &body.request_id)
                .await
                .map_err(AppError::from)?
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("deal of request vanished")))?;
            return Ok(Response::new(CreateDealResponse { deal: Some(self.full_deal(&existing).await?) }));
        }
        let created = self
            .commit_stage_change(
                tx,
                &deal,
                StageChange {
                    from: "",
                    to_index: 0,
                    by: &principal.subject,
                    event: StageEventKind::StageEntered,
                    entered: Some(&first),
                },
            )
            .await?;
        Ok(Response::new(CreateDealResponse { deal: Some(created) }))
    }

    async fn get_deal(&self, request: Request<GetDealRequest>) -> Result<Response<GetDealResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let id = &request.get_ref().deal_id;
        let deal = store::deal(&self.pool, id, principal.branch_filter().as_deref())
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found(format!("deal {id}")))?;
        Ok(Response::new(GetDealResponse { deal: Some(self.full_deal(&deal).await?) }))
    }

    async fn qualify_deal(
        &self,
        request: Request<QualifyDealRequest>,
    ) -> Result<Response<QualifyDealResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let body = request.into_inner();
        let Some(q) = body.qualification else {
            return Err(AppError::invalid_field("qualification", "is required").into());
        };
        let (mut tx, mut deal) = self.open_deal(&principal, &body.deal_id).await?;
        deal.right_person = q.right_person;
        deal.right_plan = q.right_plan;
        deal.right_budget = q.right_budget;
        deal.right_timeline = q.right_timeline;
        store::set_qualification(&mut tx, &deal).await.map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        Ok(Response::new(QualifyDealResponse { deal: Some(self.full_deal(&deal).await?) }))
    }

    async fn move_deal(&self, request: Request<MoveDealRequest>) -> Result<Response<MoveDealResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let body = request.into_inner();
        let (tx, mut deal) = self.open_deal(&principal, &body.deal_id).await?;
        let pipeline = self.pipeline_of(&deal).await?;
        let last = pipeline.stages.len().saturating_sub(1);
        let Some(target) = pipeline.stages.iter().position(|s| s.code == body.to_stage) else {
            return Err(AppError::invalid_field(
                "to_stage",
                format!("pipeline {} has no stage {:?}", pipeline.id, body.to_stage),
            )
            .into());
        };
        if target == last {
            return Err(AppError::invalid_field("to_stage", "the last stage is reached by WinDeal").into());
        }
        let current = usize::try_from(deal.stage_index).unwrap_or(0);
        if target == current {
            drop(tx);
            return Ok(Response::new(MoveDealResponse { deal: Some(self.full_deal(&deal).await?) }));
        }
        // Passing a gate (entering it or jumping past it) needs the four facts.
        if let Some(gated) = pipeline.stages[current + 1..=target.max(current)].iter().find(|s| s.qualification_gate) {
            let since = now() - chrono::Duration::days(365);
            let (branch, network) =
                store::won_cycles(&self.pool, &deal.branch_id, since).await.map_err(AppError::from)?;
            let facts = Facts {
                right_person: deal.right_person,
                right_plan: deal.right_plan,
                right_budget: deal.right_budget,
                right_timeline: deal.right_timeline,
            };
            let timing = Timing {
                age_days: (now() - deal.created_at).num_days(),
                expected_close_days: (deal.expected_close - self.date_of(deal.created_at)?).num_days(),
                average_cycle_days: rules::average_cycle(&branch, &network),
                cycle_multiple: self.cycle_multiple,
            };
            let missing = rules::gate(&facts, &timing);
            if !missing.is_empty() {
                let reasons: Vec<String> = missing.iter().map(|m| m.describe()).collect();
                return Err(AppError::failed_precondition(format!(
                    "deal {} cannot enter {}: {}",
                    deal.id,
                    gated.code,
                    reasons.join("; ")
                ))
                .into());
            }
        }
        let stage = pipeline.stages[target].clone();
        let from = std::mem::replace(&mut deal.stage, stage.code.clone());
        deal.stage_index = i32::try_from(target).unwrap_or(0);
        deal.probability = i16::try_from(stage.probability_percent).unwrap_or(0);
        deal.stage_entered_at = now();
        let moved = self
            .commit_stage_change(
                tx,
                &deal,
                StageChange {
                    from: &from,
                    to_index: deal.stage_index,
                    by: &principal.subject,
                    event: StageEventKind::StageEntered,
                    entered: Some(&stage),
                },
            )
            .await?;
        Ok(Response::new(MoveDealResponse { deal: Some(moved) }))
    }

    async fn win_deal(&self, request: Request<WinDealRequest>) -> Result<Response<WinDealResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let (tx, mut deal) = self.open_deal(&principal, &request.get_ref().deal_id).await?;
        let pipeline = self.pipeline_of(&deal).await?;
        let last = pipeline.stages.last().cloned().unwrap_or_default();
        let from = std::mem::replace(&mut deal.stage, last.code.clone());
        deal.stage_index = i32::try_from(pipeline.stages.len().saturating_sub(1)).unwrap_or(0);
        deal.probability = 100;
        deal.status = WON;
        deal.closed_at = Some(now());
        deal.stage_entered_at = now();
        let won = self
            .commit_stage_change(
                tx,
                &deal,
                StageChange {
                    from: &from,
                    to_index: deal.stage_index,
                    by: &principal.subject,
                    event: StageEventKind::Won,
                    entered: Some(&last),
                },
            )
            .await?;
        Ok(Response::new(WinDealResponse { deal: Some(won) }))
    }

    async fn lose_deal(&self, request: Request<LoseDealRequest>) -> Result<Response<LoseDealResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(SELLERS)?;
        let body = request.into_inner();
        let reasons = store::loss_reasons(&self.pool).await.map_err(AppError::from)?;
        if !reasons.iter().any(|(code, _)| *code == body.reason) {
            let codes: Vec<&str> = reasons.iter().map(|(code, _)| code.as_str()).collect();
            return Err(AppError::invalid_field("reason", format!("must be one of {}", codes.join(", "))).into());
        }
        let (tx, mut deal) = self.open_deal(&principal, &body.deal_id).await?;
        let from = deal.stage.clone();
        deal.status = LOST;
        deal.loss_reason = Some(body.reason);
        deal.closed_at = Some(now());
        deal.stage_entered_at = now();
        let lost = self
            .commit_stage_change(
                tx,
                &deal,
                StageChange {
                    from: &from,
                    to_index: LOST_STAGE_INDEX,
                    by: &principal.subject,
                    event: StageEventKind::Lost,
                    entered: None,
                },
            )
            .await?;
        Ok(Response::new(LoseDealResponse { deal: Some(lost) }))
    }

    async fn list_loss_reasons(
        &self,
        request: Request<ListLossReasonsRequest>,
    ) -> Result<Response<ListLossReasonsResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let reasons = store::loss_reasons(&self.pool).await.map_err(AppError::from)?;
        Ok(Response::new(ListLossReasonsResponse {
            reasons: reasons.into_iter().map(|(code, name)| LossReason { code, name }).collect(),
        }))
    }

    async fn complete_control_point(
        &self,
        request: Request<CompleteControlPointRequest>,
    ) -> Result<Response<CompleteControlPointResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(SELLERS)?;
        let id = &request.get_ref().control_point_id;
        let point = store::complete_control_point(&self.pool, id, principal.branch_filter().as_deref())
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found(format!("control point {id}")))?;
        Ok(Response::new(CompleteControlPointResponse { control_point: Some(deals::control_point(&point)) }))
    }

    async fn list_overdue_control_points(
        &self,
        request: Request<ListOverdueControlPointsRequest>,
    ) -> Result<Response<ListOverdueControlPointsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let scope = principal.branch_filter();
        let filter = Self::filter(principal, &scope, &body.branch_id, &body.employee_id)?;
        let points = store::overdue_control_points(
            &self.pool,
            filter.scope,
            filter.branch_id,
            filter.employee_id,
            self.today()?,
        )
        .await
        .map_err(AppError::from)?;
        Ok(Response::new(ListOverdueControlPointsResponse {
            control_points: points.iter().map(deals::control_point).collect(),
        }))
    }

    async fn get_forecast(
        &self,
        request: Request<GetForecastRequest>,
    ) -> Result<Response<GetForecastResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let scope = principal.branch_filter();
        let filter = Self::filter(principal, &scope, &body.branch_id, &body.employee_id)?;
        let rows = store::forecast(&self.pool, filter).await.map_err(AppError::from)?;
        let total = rows.iter().map(|r| r.weighted_forecast).sum();
        Ok(Response::new(GetForecastResponse {
            lines: rows
                .iter()
                .map(|r| ForecastLine {
                    month: Some(Date::from(r.month)),
                    branch_id: r.branch_id.clone(),
                    employee_id: r.employee_id.clone(),
                    open_deals: r.open_deals,
                    pipeline_amount: self.money(r.pipeline_amount),
                    weighted_forecast: self.money(r.weighted_forecast),
                })
                .collect(),
            total_weighted_forecast: self.money(total),
        }))
    }

    async fn get_funnel(&self, request: Request<GetFunnelRequest>) -> Result<Response<GetFunnelResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let today = self.today()?;
        let to = body.to.as_ref().and_then(|d| d.to_naive()).unwrap_or(today);
        let from = body.from.as_ref().and_then(|d| d.to_naive()).unwrap_or(to - Days::new(365));
        if from > to {
            return Err(AppError::invalid_field("to", "must not be before from").into());
        }
        let scope = principal.branch_filter();
        let filter = Self::filter(principal, &scope, &body.branch_id, &body.employee_id)?;
        self.presets().await?;
        let pipeline = store::pipeline(&self.pool, "", 0)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("default pipeline"))?;
        let open_stages = pipeline.stages.len().saturating_sub(1);
        // Each deal becomes its path as it streams in; only the paths are kept.
        let mut paths = Vec::new();
        let mut losses: BTreeMap<usize, BTreeMap<String, i64>> = BTreeMap::new();
        // Both statements stop at the caller's deadline instead of running on for a caller that has gone.
        let limit = deadline::of_request(&request);
        let zone = self.company.time_zone.as_str();
        let (mut deals_tx, mut leads_tx) =
            tokio::try_join!(db::read_within(&self.pool, limit), db::read_within(&self.pool, limit))
                .map_err(AppError::from)?;
        let streamed = store::funnel_deals(&mut deals_tx, &pipeline.id, filter, zone, from, to, |deal| {
            let path = deals::path(deal, open_stages);
            if let (Some(stage), Some(reason)) = (path.lost_at, &deal.loss_reason) {
                let reasons = losses.entry(stage).or_default();
                match reasons.get_mut(reason.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        reasons.insert(reason.clone(), 1);
                    }
                }
            }
            paths.push(path);
        });
        let ((), (leads, converted)) =
            tokio::try_join!(streamed, store::lead_conversion(&mut leads_tx, filter, zone, from, to))
                .map_err(AppError::from)?;
        let funnel = rules::funnel(open_stages, &paths);
        let code = |i: usize| pipeline.stages.get(i).map(|s| s.code.clone()).unwrap_or_default();
        Ok(Response::new(GetFunnelResponse {
            pipeline_id: pipeline.id.clone(),
            stages: funnel
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| FunnelStage {
                    stage: code(i),
                    probability_percent: pipeline.stages[i].probability_percent,
                    reached: s.reached as i64,
                    conversion_to_next: s.conversion_to_next,
                    average_days_in_stage: s.average_days,
                    lost_here: s.lost_here as i64,
                })
                .collect(),
            won: funnel.won as i64,
            lost: funnel.lost as i64,
            losses: losses
                .into_iter()
                .flat_map(|(stage, reasons)| {
                    reasons.into_iter().map(move |(reason, deals)| LossCount { stage: code(stage), reason, deals })
                })
                .collect(),
            bottleneck_stage: funnel.bottleneck.map(code).unwrap_or_default(),
            leads,
            converted_leads: converted,
        }))
    }

    async fn calculate_plan(
        &self,
        request: Request<CalculatePlanRequest>,
    ) -> Result<Response<CalculatePlanResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let target = match &body.revenue_target {
            Some(m) if m.minor_units > 0 && m.currency == self.company.currency => m.minor_units,
            _ => {
                return Err(AppError::invalid_field(
                    "revenue_target",
                    "must be a positive amount in the company currency",
                )
                .into());
            }
        };
        let scope = principal.branch_filter();
        let filter = Self::filter(principal, &scope, &body.branch_id, "")?;
        let today = self.today()?;
        let since = now() - chrono::Duration::days(365);
        let mut leads_tx = db::read_within(&self.pool, deadline::of_request(&request)).await.map_err(AppError::from)?;
        let ((won, average_won, opened), (leads, converted)) = tokio::try_join!(
            store::win_measures(&self.pool, filter, since),
            store::lead_conversion(&mut leads_tx, filter, &self.company.time_zone, today - Days::new(365), today),
        )
        .map_err(AppError::from)?;
        let win_rate = if opened > 0 { won as f64 / opened as f64 } else { 0.0 };
        let lead_conversion = if leads > 0 { converted as f64 / leads as f64 } else { 0.0 };
        let plan = rules::plan(target, average_won, win_rate, lead_conversion).ok_or_else(|| {
            AppError::failed_precondition(
                "the last 12 months hold no won deals or no converted leads to measure conversions from",
            )
        })?;
        Ok(Response::new(CalculatePlanResponse {
            average_won_amount: self.money(average_won),
            win_rate,
            lead_conversion,
            deals_to_win: plan.deals_to_win as i64,
            first_meetings: plan.first_meetings as i64,
            leads: plan.leads as i64,
        }))
    }

    async fn get_pipeline_facts(
        &self,
        request: Request<GetPipelineFactsRequest>,
    ) -> Result<Response<GetPipelineFactsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let (from, to) = (body.from.as_ref().and_then(|d| d.to_naive()), body.to.as_ref().and_then(|d| d.to_naive()));
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
        v.check(
            from.zip(to).is_none_or(|(f, t)| f <= t && (t - f).num_days() <= 3 * 366),
            || "to".into(),
            "must be on or after from, at most 3 years later",
        );
        v.check(granularity.is_some(), || "granularity".into(), "must be DAY, WEEK, MONTH or unspecified");
        v.finish()?;
        let (Some(from), Some(to), Some(granularity)) = (from, to, granularity) else {
            return Err(AppError::internal(anyhow::anyhow!("validated range missing")).into());
        };
        let scope = principal.branch_filter();
        let filter = Self::filter(principal, &scope, &body.branch_id, &body.employee_id)?;
        let mut tx = db::read_within(&self.pool, deadline::of_request(&request)).await.map_err(AppError::from)?;
        let rows =
            store::daily_pipeline(&mut tx, &self.company.time_zone, from, to, filter, now(), body.include_sources)
                .await
                .map_err(AppError::from)?;
        let periods = periods::split(from, to, granularity);
        let mut sums: BTreeMap<(usize, String, String), (store::DailyPipeline, Vec<FactSource>)> = BTreeMap::new();
        for row in rows {
            let Some(i) = periods::index_of(&periods, row.day) else { continue };
            let (sum, sources) = sums.entry((i, row.branch_id.clone(), row.employee_id.clone())).or_default();
            sum.leads += row.leads;
            sum.answered_leads += row.answered_leads;
            sum.response_seconds += row.response_seconds;
            sum.sla_breaches += row.sla_breaches;
            sum.converted_leads += row.converted_leads;
            sum.deals_won += row.deals_won;
            sum.won_amount += row.won_amount;
            sum.deals_lost += row.deals_lost;
            sum.overdue_control_points += row.overdue_control_points;
            for (fact, kind, ids) in row.sources.by_fact() {
                sources.extend(ids.iter().map(|id| FactSource {
                    fact: fact.into(),
                    kind: kind.into(),
                    id: id.clone(),
                }));
            }
        }
        let facts = sums
            .into_iter()
            .map(|((i, branch_id, employee_id), (s, sources))| PipelineFacts {
                period_start: Some(Date::from(periods[i].start)),
                period_end: Some(Date::from(periods[i].end)),
                branch_id,
                employee_id,
                leads: s.leads,
                answered_leads: s.answered_leads,
                average_response_seconds: if s.answered_leads > 0 {
                    s.response_seconds / s.answered_leads as f64
                } else {
                    0.0
                },
                sla_breaches: s.sla_breaches,
                converted_leads: s.converted_leads,
                deals_won: s.deals_won,
                won_amount: self.money(s.won_amount),
                deals_lost: s.deals_lost,
                overdue_control_points: s.overdue_control_points,
                sources,
            })
            .collect();
        Ok(Response::new(GetPipelineFactsResponse { facts }))
    }

    type WatchEventsStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let cursor = request.get_ref().after_cursor;
        if cursor < 0 {
            return Err(AppError::invalid_field("after_cursor", "must not be negative").into());
        }
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(events::watch(self.pool.clone(), self.written.clone(), cursor, principal.branch_filter(), sender));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
