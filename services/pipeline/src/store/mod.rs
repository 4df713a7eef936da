//! Postgres access of the pipeline service. Reads take the caller's branch
//! filter (`None` = whole network); every change to a deal writes its history
//! row and its outbox event in the same transaction.
mod analytics;
mod events;

pub use analytics::*;
pub use events::*;

use branchscore_proto::convert::timestamp;
use branchscore_proto::pipeline::v1::{ControlPointTemplate, Pipeline, Stage};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};

/// How stages are kept in the `stages` jsonb column.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredStage {
    code: String,
    name: String,
    probability: i32,
    gate: bool,
    control_points: Vec<(String, i32)>,
}

fn to_stored(stages: &[Stage]) -> Vec<StoredStage> {
    stages
        .iter()
        .map(|s| StoredStage {
            code: s.code.clone(),
            name: s.name.clone(),
            probability: s.probability_percent,
            gate: s.qualification_gate,
            control_points: s.control_points.iter().map(|c| (c.kind.clone(), c.due_after_days)).collect(),
        })
        .collect()
}

fn pipeline_from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<Pipeline> {
    let Json(stages): Json<Vec<StoredStage>> = row.try_get("stages")?;
    let created: DateTime<Utc> = row.try_get("created_at")?;
    Ok(Pipeline {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        name: row.try_get("name")?,
        stages: stages
            .into_iter()
            .map(|s| Stage {
                code: s.code,
                name: s.name,
                probability_percent: s.probability,
                qualification_gate: s.gate,
                control_points: s
                    .control_points
                    .into_iter()
                    .map(|(kind, due_after_days)| ControlPointTemplate { kind, due_after_days })
                    .collect(),
            })
            .collect(),
        is_default: row.try_get("is_default")?,
        create_time: Some(timestamp(created)),
    })
}

/// Stores the shipped pipelines once (version 1 each).
pub async fn ensure_presets(pool: &PgPool, presets: &[Pipeline]) -> sqlx::Result<()> {
    for p in presets {
        sqlx::query(
            "INSERT INTO pipelines (id, version, name, stages, is_default, created_by)
             VALUES ($1, 1, $2, $3, $4 AND NOT EXISTS (SELECT 1 FROM pipelines WHERE is_default), 'preset')
             ON CONFLICT (id, version) DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(Json(to_stored(&p.stages)))
        .bind(p.is_default)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Stores `pipeline` as the next version of its id.
pub async fn insert_pipeline(pool: &PgPool, pipeline: &Pipeline, created_by: &str) -> sqlx::Result<Pipeline> {
    let mut tx = pool.begin().await?;
    // One writer per pipeline id at a time, so versions do not collide.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(&pipeline.id).execute(&mut *tx).await?;
    if pipeline.is_default {
        sqlx::query("UPDATE pipelines SET is_default = false WHERE id <> $1")
            .bind(&pipeline.id)
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(
        "INSERT INTO pipelines (id, version, name, stages, is_default, created_by)
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5 FROM pipelines WHERE id = $1
         RETURNING *",
    )
    .bind(&pipeline.id)
    .bind(&pipeline.name)
    .bind(Json(to_stored(&pipeline.stages)))
    .bind(pipeline.is_default)
    .bind(created_by)
    .fetch_one(&mut *tx)
    .await?;
    let stored = pipeline_from_row(&row)?;
    if pipeline.is_default {
        sqlx::query("UPDATE pipelines SET is_default = (version = $2) WHERE id = $1")
            .bind(&pipeline.id)
            .bind(stored.version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// The latest version of each pipeline, the default first.
pub async fn latest_pipelines(pool: &PgPool) -> sqlx::Result<Vec<Pipeline>> {
    let rows =
        sqlx::query("SELECT DISTINCT ON (id) * FROM pipelines ORDER BY id, version DESC").fetch_all(pool).await?;
    let mut pipelines = rows.iter().map(pipeline_from_row).collect::<sqlx::Result<Vec<_>>>()?;
    let default_id = sqlx::query_scalar::<_, String>("SELECT id FROM pipelines WHERE is_default LIMIT 1")
        .fetch_optional(pool)
        .await?;
    for p in &mut pipelines {
        p.is_default = default_id.as_deref() == Some(p.id.as_str());
    }
    pipelines.sort_by_key(|p| (!p.is_default, p.id.clone()));
    Ok(pipelines)
}

/// A given version, or the latest version of `id` (version 0), or the
/// default pipeline's latest version (empty id).
pub async fn pipeline(pool: &PgPool, id: &str, version: i32) -> sqlx::Result<Option<Pipeline>> {
    let row = sqlx::query(
        "SELECT * FROM pipelines
         WHERE ($1 = '' AND id = (SELECT id FROM pipelines WHERE is_default LIMIT 1) OR id = $1)
           AND ($2 = 0 OR version = $2)
         ORDER BY version DESC LIMIT 1",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(pipeline_from_row).transpose()
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeadRow {
    pub id: String,
    pub branch_id: String,
    pub owner_employee_id: String,
    pub channel: i16,
    pub priority: i16,
    pub sla_seconds: i64,
    pub received_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub client_id: String,
    pub contact_name: String,
    pub deal_id: Option<String>,
}

/// A new lead, or the one an earlier call with the same request id created.
pub struct NewLead<'a> {
    pub request_id: &'a str,
    pub created_by: &'a str,
    pub lead: LeadRow,
}

pub async fn insert_lead(pool: &PgPool, new: &NewLead<'_>) -> sqlx::Result<LeadRow> {
    let l = &new.lead;
    sqlx::query(
        "INSERT INTO leads (id, request_id, created_by, branch_id, owner_employee_id, channel, priority, sla_seconds,
                            received_at, client_id, contact_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (created_by, request_id) DO NOTHING",
    )
    .bind(&l.id)
    .bind(new.request_id)
    .bind(new.created_by)
    .bind(&l.branch_id)
    .bind(&l.owner_employee_id)
    .bind(l.channel)
    .bind(l.priority)
    .bind(l.sla_seconds)
    .bind(l.received_at)
    .bind(&l.client_id)
    .bind(&l.contact_name)
    .execute(pool)
    .await?;
    sqlx::query_as("SELECT * FROM leads WHERE created_by = $1 AND request_id = $2")
        .bind(new.created_by)
        .bind(new.request_id)
        .fetch_one(pool)
        .await
}

pub async fn lead(pool: &PgPool, id: &str, scope: Option<&[String]>) -> sqlx::Result<Option<LeadRow>> {
    sqlx::query_as("SELECT * FROM leads WHERE id = $1 AND ($2::text[] IS NULL OR branch_id = ANY($2))")
        .bind(id)
        .bind(scope)
        .fetch_optional(pool)
        .await
}

/// Records the first response; a later one changes nothing.
pub async fn respond_to_lead(pool: &PgPool, id: &str, at: DateTime<Utc>) -> sqlx::Result<LeadRow> {
    sqlx::query_as("UPDATE leads SET first_response_at = COALESCE(first_response_at, $2) WHERE id = $1 RETURNING *")
        .bind(id)
        .bind(at)
        .fetch_one(pool)
        .await
}

/// Leads answered later than their SLA, or unanswered and already late, worst first.
pub async fn sla_breaches(
    pool: &PgPool,
    scope: Option<&[String]>,
    branch_id: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<LeadRow>> {
    sqlx::query_as(
        "SELECT * FROM leads
         WHERE received_at >= $3 AND ($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2)
           AND extract(epoch FROM COALESCE(first_response_at, $4) - received_at) > sla_seconds
         ORDER BY extract(epoch FROM COALESCE(first_response_at, $4) - received_at) - sla_seconds DESC, id",
    )
    .bind(scope)
    .bind(branch_id)
    .bind(since)
    .bind(now)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DealRow {
    pub id: String,
    pub client_id: String,
    pub branch_id: String,
    pub owner_employee_id: String,
    pub pipeline_id: String,
    pub pipeline_version: i32,
    pub stage: String,
    pub stage_index: i32,
    pub probability: i16,
    pub status: i16,
    pub amount_minor: i64,
    pub currency: String,
    pub expected_close: NaiveDate,
    pub right_person: bool,
    pub right_plan: bool,
    pub right_budget: bool,
    pub right_timeline: bool,
    pub lead_id: Option<String>,
    pub loss_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub stage_entered_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransitionRow {
    pub from_stage: String,
    pub to_stage: String,
    pub by_subject: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ControlPointRow {
    pub id: String,
    pub deal_id: String,
    pub stage: String,
    pub kind: String,
    pub due_date: NaiveDate,
    pub completed_at: Option<DateTime<Utc>>,
    pub owner_employee_id: String,
    pub branch_id: String,
}

pub async fn deal(pool: &PgPool, id: &str, scope: Option<&[String]>) -> sqlx::Result<Option<DealRow>> {
    sqlx::query_as("SELECT * FROM deals WHERE id = $1 AND ($2::text[] IS NULL OR branch_id = ANY($2))")
        .bind(id)
        .bind(scope)
        .fetch_optional(pool)
        .await
}

/// The deal an earlier creating call with this request id made, if any.
pub async fn deal_by_request(pool: &PgPool, created_by: &str, request_id: &str) -> sqlx::Result<Option<DealRow>> {
    sqlx::query_as("SELECT * FROM deals WHERE created_by = $1 AND request_id = $2")
        .bind(created_by)
        .bind(request_id)
        .fetch_optional(pool)
        .await
}

pub async fn history(pool: &PgPool, deal_id: &str) -> sqlx::Result<Vec<TransitionRow>> {
    sqlx::query_as("SELECT from_stage, to_stage, by_subject, at FROM deal_transitions WHERE deal_id = $1 ORDER BY id")
        .bind(deal_id)
        .fetch_all(pool)
        .await
}

pub async fn control_points_of(pool: &PgPool, deal_id: &str) -> sqlx::Result<Vec<ControlPointRow>> {
    sqlx::query_as("SELECT * FROM control_points WHERE deal_id = $1 ORDER BY due_date, id")
        .bind(deal_id)
        .fetch_all(pool)
        .await
}

/// Inserts a new deal (false when the request id was used before: nothing written).
pub async fn insert_deal(
    tx: &mut Transaction<'_, Postgres>,
    deal: &DealRow,
    request_id: &str,
    created_by: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO deals (id, request_id, created_by, client_id, branch_id, owner_employee_id, pipeline_id,
             pipeline_version, stage, stage_index, probability, status, amount_minor, currency, expected_close,
             lead_id, created_at, stage_entered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
         ON CONFLICT (created_by, request_id) DO NOTHING",
    )
    .bind(&deal.id)
    .bind(request_id)
    .bind(created_by)
    .bind(&deal.client_id)
    .bind(&deal.branch_id)
    .bind(&deal.owner_employee_id)
    .bind(&deal.pipeline_id)
    .bind(deal.pipeline_version)
    .bind(&deal.stage)
    .bind(deal.stage_index)
    .bind(deal.probability)
    .bind(deal.status)
    .bind(deal.amount_minor)
    .bind(&deal.currency)
    .bind(deal.expected_close)
    .bind(&deal.lead_id)
    .bind(deal.created_at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(lead) = &deal.lead_id {
        sqlx::query("UPDATE leads SET deal_id = $2 WHERE id = $1").bind(lead).bind(&deal.id).execute(&mut **tx).await?;
    }
    Ok(true)
}

/// Locks the deal's row for a change (the caller's branch filter applies).
pub async fn lock_deal(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    scope: Option<&[String]>,
) -> sqlx::Result<Option<DealRow>> {
    sqlx::query_as("SELECT * FROM deals WHERE id = $1 AND ($2::text[] IS NULL OR branch_id = ANY($2)) FOR UPDATE")
        .bind(id)
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await
}

pub async fn set_qualification(tx: &mut Transaction<'_, Postgres>, deal: &DealRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deals SET right_person = $2, right_plan = $3, right_budget = $4, right_timeline = $5 WHERE id = $1",
    )
    .bind(&deal.id)
    .bind(deal.right_person)
    .bind(deal.right_plan)
    .bind(deal.right_budget)
    .bind(deal.right_timeline)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the deal's new stage, status and closing fields.
pub async fn update_deal_stage(tx: &mut Transaction<'_, Postgres>, deal: &DealRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deals SET stage = $2, stage_index = $3, probability = $4, status = $5, loss_reason = $6,
             closed_at = $7, stage_entered_at = $8
         WHERE id = $1",
    )
    .bind(&deal.id)
    .bind(&deal.stage)
    .bind(deal.stage_index)
    .bind(deal.probability)
    .bind(deal.status)
    .bind(&deal.loss_reason)
    .bind(deal.closed_at)
    .bind(deal.stage_entered_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_transition(
    tx: &mut Transaction<'_, Postgres>,
    deal_id: &str,
    (from, to, to_index): (&str, &str, i32),
    by: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deal_transitions (deal_id, from_stage, to_stage, to_stage_index, by_subject, at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(deal_id)
    .bind(from)
    .bind(to)
    .bind(to_index)
    .bind(by)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_control_points(tx: &mut Transaction<'_, Postgres>, points: &[ControlPointRow]) -> sqlx::Result<()> {
    for p in points {
        sqlx::query(
            "INSERT INTO control_points (id, deal_id, stage, kind, due_date, owner_employee_id, branch_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.id)
        .bind(&p.deal_id)
        .bind(&p.stage)
        .bind(&p.kind)
        .bind(p.due_date)
        .bind(&p.owner_employee_id)
        .bind(&p.branch_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Writes a stage event into the outbox (same transaction as the change).
pub async fn insert_event(tx: &mut Transaction<'_, Postgres>, kind: i16, deal: &DealRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO stage_events (event_id, kind, deal_id, client_id, branch_id, stage)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(kind)
    .bind(&deal.id)
    .bind(&deal.client_id)
    .bind(&deal.branch_id)
    .bind(&deal.stage)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn loss_reasons(pool: &PgPool) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT code, name FROM loss_reasons ORDER BY code").fetch_all(pool).await
}

pub async fn complete_control_point(
    pool: &PgPool,
    id: &str,
    scope: Option<&[String]>,
) -> sqlx::Result<Option<ControlPointRow>> {
    sqlx::query_as(
        "UPDATE control_points SET completed_at = COALESCE(completed_at, now())
         WHERE id = $1 AND ($2::text[] IS NULL OR branch_id = ANY($2)) RETURNING *",
    )
    .bind(id)
    .bind(scope)
    .fetch_optional(pool)
    .await
}

pub async fn overdue_control_points(
    pool: &PgPool,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
    today: NaiveDate,
) -> sqlx::Result<Vec<ControlPointRow>> {
    sqlx::query_as(
        "SELECT * FROM control_points
         WHERE completed_at IS NULL AND due_date < $4 AND ($1::text[] IS NULL OR branch_id = ANY($1))
           AND ($2 = '' OR branch_id = $2) AND ($3 = '' OR owner_employee_id = $3)
         ORDER BY due_date, id",
    )
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .bind(today)
    .fetch_all(pool)
    .await
}

/// Days from opening to winning of the deals won since `since`: the
/// branch's and the whole network's.
pub async fn won_cycles(pool: &PgPool, branch_id: &str, since: DateTime<Utc>) -> sqlx::Result<(Vec<i64>, Vec<i64>)> {
    let rows = sqlx::query(
        "SELECT branch_id, (extract(epoch FROM closed_at - created_at) / 86400)::bigint AS days
         FROM deals WHERE status = 2 AND closed_at >= $1",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let (mut branch, mut network) = (Vec::new(), Vec::new());
    for row in &rows {
        let days: i64 = row.try_get("days")?;
        if row.try_get::<String, _>("branch_id")? == branch_id {
            branch.push(days);
        }
        network.push(days);
    }
    Ok((branch, network))
}
