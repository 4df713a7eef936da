//! Complaints and their history.
use crate::convert::{code, optional_timestamp, state_to_proto, timestamp};
use branchscore_proto::feedback::v1::{Complaint, ComplaintEvent};
use branchscore_scoring::complaints::ComplaintState;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

/// A complaint as stored.
#[derive(Debug, Clone)]
pub struct ComplaintRow {
    pub id: Uuid,
    pub request_id: Option<String>,
    pub client_id: String,
    pub branch_id: String,
    pub employee_id: String,
    pub product_id: String,
    pub source: i16,
    pub response_id: Option<Uuid>,
    pub description: String,
    pub state: i16,
    pub owner: String,
    pub root_cause_category: i16,
    pub cause: String,
    pub client_informed: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub deadline_ms: i64,
    pub escalation_level: i16,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl ComplaintRow {
    pub fn state(&self) -> Option<ComplaintState> {
        crate::convert::state_from_proto(i32::from(self.state))
    }

    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.closed_at.is_none() && self.due_at.is_some_and(|due| due <= now)
    }

    pub fn message(&self, now: DateTime<Utc>) -> Complaint {
        Complaint {
            id: self.id.to_string(),
            client_id: self.client_id.clone(),
            branch_id: self.branch_id.clone(),
            employee_id: self.employee_id.clone(),
            product_id: self.product_id.clone(),
            source: code(self.source),
            response_id: self.response_id.map(|id| id.to_string()).unwrap_or_default(),
            description: self.description.clone(),
            state: code(self.state),
            owner: self.owner.clone(),
            root_cause_category: code(self.root_cause_category),
            cause: self.cause.clone(),
            due_time: optional_timestamp(self.due_at),
            overdue: self.is_overdue(now),
            escalation_level: i32::from(self.escalation_level),
            client_informed: self.client_informed,
            create_time: Some(timestamp(self.created_at)),
            close_time: optional_timestamp(self.closed_at),
        }
    }

    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(ComplaintRow {
            id: row.try_get("id")?,
            request_id: row.try_get("request_id")?,
            client_id: row.try_get("client_id")?,
            branch_id: row.try_get("branch_id")?,
            employee_id: row.try_get("employee_id")?,
            product_id: row.try_get("product_id")?,
            source: row.try_get("source")?,
            response_id: row.try_get("response_id")?,
            description: row.try_get("description")?,
            state: row.try_get("state")?,
            owner: row.try_get("owner")?,
            root_cause_category: row.try_get("root_cause_category")?,
            cause: row.try_get("cause")?,
            client_informed: row.try_get("client_informed")?,
            due_at: row.try_get("due_at")?,
            deadline_ms: row.try_get("deadline_ms")?,
            escalation_level: row.try_get("escalation_level")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            closed_at: row.try_get("closed_at")?,
        })
    }
}

const COLUMNS: &str = "id, request_id, client_id, branch_id, employee_id, product_id, source, response_id, description, \
    state, owner, root_cause_category, cause, client_informed, due_at, deadline_ms, escalation_level, created_by, \
    created_at, closed_at";

fn rows(found: Vec<PgRow>) -> sqlx::Result<Vec<ComplaintRow>> {
    found.iter().map(ComplaintRow::from_row).collect()
}

/// Inserts a complaint; `false` when its request id was used already.
pub async fn insert(tx: &mut Transaction<'_, Postgres>, c: &ComplaintRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO complaints (id, request_id, client_id, branch_id, employee_id, product_id, source, response_id,
             description, state, owner, root_cause_category, cause, client_informed, due_at, deadline_ms,
             escalation_level, created_by, created_at, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(c.id)
    .bind(&c.request_id)
    .bind(&c.client_id)
    .bind(&c.branch_id)
    .bind(&c.employee_id)
    .bind(&c.product_id)
    .bind(c.source)
    .bind(c.response_id)
    .bind(&c.description)
    .bind(c.state)
    .bind(&c.owner)
    .bind(c.root_cause_category)
    .bind(&c.cause)
    .bind(c.client_informed)
    .bind(c.due_at)
    .bind(c.deadline_ms)
    .bind(c.escalation_level)
    .bind(&c.created_by)
    .bind(c.created_at)
    .bind(c.closed_at)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Writes back the fields a change may touch.
pub async fn update(tx: &mut Transaction<'_, Postgres>, c: &ComplaintRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE complaints SET state = $2, owner = $3, root_cause_category = $4, cause = $5, client_informed = $6,
             due_at = $7, deadline_ms = $8, escalation_level = $9, closed_at = $10
         WHERE id = $1",
    )
    .bind(c.id)
    .bind(c.state)
    .bind(&c.owner)
    .bind(c.root_cause_category)
    .bind(&c.cause)
    .bind(c.client_informed)
    .bind(c.due_at)
    .bind(c.deadline_ms)
    .bind(c.escalation_level)
    .bind(c.closed_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends an event to the complaint's history (the next sequence number).
pub async fn append_event(
    tx: &mut Transaction<'_, Postgres>,
    complaint_id: Uuid,
    event: &ComplaintEvent,
    at: DateTime<Utc>,
) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO complaint_events (complaint_id, sequence, kind, from_state, to_state, actor, owner, note,
             escalation_level, at)
         SELECT $1, COALESCE(max(sequence), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9
         FROM complaint_events WHERE complaint_id = $1
         RETURNING sequence",
    )
    .bind(complaint_id)
    .bind(event.kind as i16)
    .bind(event.from_state as i16)
    .bind(event.to_state as i16)
    .bind(&event.actor)
    .bind(&event.owner)
    .bind(&event.note)
    .bind(event.escalation_level as i16)
    .bind(at)
    .fetch_one(&mut **tx)
    .await
}

pub async fn by_id(
    executor: impl sqlx::PgExecutor<'_>,
    id: Uuid,
    for_update: bool,
) -> sqlx::Result<Option<ComplaintRow>> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM complaints WHERE id = $1 {lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(executor).await?;
    row.as_ref().map(ComplaintRow::from_row).transpose()
}

pub async fn by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Option<ComplaintRow>> {
    let sql = format!("SELECT {COLUMNS} FROM complaints WHERE request_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(request_id).fetch_optional(pool).await?;
    row.as_ref().map(ComplaintRow::from_row).transpose()
}

pub async fn history(pool: &PgPool, id: Uuid) -> sqlx::Result<Vec<ComplaintEvent>> {
    let rows = sqlx::query(
        "SELECT sequence, kind, from_state, to_state, actor, owner, note, escalation_level, at
         FROM complaint_events WHERE complaint_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ComplaintEvent {
                sequence: row.try_get("sequence")?,
                kind: code(row.try_get("kind")?),
                from_state: code(row.try_get("from_state")?),
                to_state: code(row.try_get("to_state")?),
                actor: row.try_get("actor")?,
                owner: row.try_get("owner")?,
                note: row.try_get("note")?,
                escalation_level: i32::from(row.try_get::<i16, _>("escalation_level")?),
                time: Some(timestamp(row.try_get("at")?)),
            })
        })
        .collect()
}

/// Filters of `ListComplaints`.
#[derive(Debug, Default)]
pub struct ComplaintFilter {
    pub branch_id: String,
    pub client_id: String,
    /// 0: any.
    pub state: i16,
    pub overdue_only: bool,
    pub open_only: bool,
}

/// Oldest first, after the keyset `after`.
pub async fn list(
    pool: &PgPool,
    now: DateTime<Utc>,
    filter: &ComplaintFilter,
    scope: Option<&[String]>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ComplaintRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM complaints
         WHERE ($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2)
           AND ($3 = '' OR client_id = $3) AND ($4 = 0 OR state = $4)
           AND (NOT $5 OR (closed_at IS NULL AND due_at <= $6)) AND (NOT $7 OR closed_at IS NULL)
           AND ($8::timestamptz IS NULL OR (created_at, id) > ($8, $9))
         ORDER BY created_at, id LIMIT $10"
    );
    rows(
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(&filter.branch_id)
            .bind(&filter.client_id)
            .bind(filter.state)
            .bind(filter.overdue_only)
            .bind(now)
            .bind(filter.open_only)
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1).unwrap_or_default())
            .bind(limit)
            .fetch_all(pool)
            .await?,
    )
}

/// Open complaints due their next escalation (the deadline plus one
/// deadline's length per earlier escalation has passed) below the top
/// level, locked; rows another replica holds are skipped.
pub async fn overdue(
    tx: &mut Transaction<'_, Postgres>,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<ComplaintRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM complaints
         WHERE closed_at IS NULL AND escalation_level < $2
           AND due_at + deadline_ms * escalation_level * interval '1 millisecond' <= $1
         ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED"
    );
    rows(
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(i16::from(branchscore_scoring::complaints::MAX_ESCALATION_LEVEL))
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Open complaints (for aging) and those closed since `closed_since`.
pub async fn for_aging(
    pool: &PgPool,
    scope: Option<&[String]>,
    branch_id: &str,
    closed_since: DateTime<Utc>,
) -> sqlx::Result<Vec<ComplaintRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM complaints
         WHERE (closed_at IS NULL OR closed_at >= $3)
           AND ($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2)"
    );
    rows(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(scope).bind(branch_id).bind(closed_since).fetch_all(pool).await?)
}

/// Opened, closed and escalated counts per (day, branch, employee, source) for the KPI facts.
#[derive(Debug, Clone)]
pub struct ComplaintDay {
    pub day: chrono::NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
    /// What happened: an opening (with its source), a closing or an escalation.
    pub happening: Happening,
    pub count: i64,
    /// The complaints counted (one per escalation), when asked for (else empty).
    pub complaint_ids: Vec<uuid::Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happening {
    Opened(i16),
    Closed,
    Escalated,
}

/// Complaint happenings in `[from, to]` (company-zone days); with
/// `list_complaints`, each also names the complaints it counts.
#[allow(clippy::too_many_arguments)]
pub async fn happenings(
    pool: &PgPool,
    zone: &str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
    list_complaints: bool,
) -> sqlx::Result<Vec<ComplaintDay>> {
    let rows = sqlx::query(
        "WITH c AS (
             SELECT * FROM complaints
             WHERE ($4::text[] IS NULL OR branch_id = ANY($4)) AND ($5 = '' OR branch_id = $5)
               AND ($6 = '' OR employee_id = $6)
         ), happened AS (
             SELECT (created_at AT TIME ZONE $1)::date AS day, branch_id, employee_id, 'opened' AS what, source, id
             FROM c
             UNION ALL
             SELECT (closed_at AT TIME ZONE $1)::date, branch_id, employee_id, 'closed', 0::smallint, id
             FROM c WHERE closed_at IS NOT NULL
             UNION ALL
             SELECT (e.at AT TIME ZONE $1)::date, c.branch_id, c.employee_id, 'escalated', 0::smallint, c.id
             FROM complaint_events e JOIN c ON c.id = e.complaint_id WHERE e.kind = 4
         )
         SELECT day, branch_id, employee_id, what, source, count(*) AS n,
                COALESCE(array_agg(id ORDER BY id) FILTER (WHERE $7), '{}') AS complaint_ids
         FROM happened
         WHERE day BETWEEN $2 AND $3
         GROUP BY day, branch_id, employee_id, what, source",
    )
    .bind(zone)
    .bind(from)
    .bind(to)
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .bind(list_complaints)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let what: String = row.try_get("what")?;
            let happening = match what.as_str() {
                "opened" => Happening::Opened(row.try_get("source")?),
                "closed" => Happening::Closed,
                _ => Happening::Escalated,
            };
            Ok(ComplaintDay {
                day: row.try_get("day")?,
                branch_id: row.try_get("branch_id")?,
                employee_id: row.try_get("employee_id")?,
                happening,
                count: row.try_get("n")?,
                complaint_ids: row.try_get("complaint_ids")?,
            })
        })
        .collect()
}

/// The state of a stored complaint as the proto enum (for events).
pub fn proto_state(state: ComplaintState) -> i32 {
    state_to_proto(state) as i32
}
