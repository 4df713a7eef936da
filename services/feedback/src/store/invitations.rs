//! Invitations: created by the cadence or by people, sent, opened, answered.
use crate::convert::{code, date, optional_timestamp, timestamp};
use branchscore_proto::feedback::v1::{Invitation, InvitationStatus};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// An invitation as stored.
#[derive(Debug, Clone)]
pub struct InvitationRow {
    pub id: Uuid,
    pub client_id: String,
    pub branch_id: String,
    pub employee_id: String,
    pub abc_class: i16,
    pub product_id: String,
    pub survey_id: String,
    pub survey_version: i32,
    pub reason: i16,
    pub channel: i16,
    pub purchase_date: Option<NaiveDate>,
    pub token_hash: Vec<u8>,
    pub request_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub print_batch_id: Option<Uuid>,
}

impl InvitationRow {
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.answered_at.is_some() {
            InvitationStatus::Answered
        } else if self.failed_at.is_some() {
            InvitationStatus::Failed
        } else if self.expires_at <= now {
            InvitationStatus::Expired
        } else if self.opened_at.is_some() {
            InvitationStatus::Opened
        } else if self.sent_at.is_some() {
            InvitationStatus::Sent
        } else {
            InvitationStatus::Pending
        }
    }

    pub fn message(&self, now: DateTime<Utc>) -> Invitation {
        Invitation {
            id: self.id.to_string(),
            client_id: self.client_id.clone(),
            branch_id: self.branch_id.clone(),
            employee_id: self.employee_id.clone(),
            abc_class: code(self.abc_class),
            product_id: self.product_id.clone(),
            survey_id: self.survey_id.clone(),
            survey_version: self.survey_version,
            reason: code(self.reason),
            channel: code(self.channel),
            status: self.status(now) as i32,
            purchase_date: self.purchase_date.and_then(date),
            create_time: Some(timestamp(self.created_at)),
            send_time: optional_timestamp(self.sent_at),
            open_time: optional_timestamp(self.opened_at),
            answer_time: optional_timestamp(self.answered_at),
            expire_time: Some(timestamp(self.expires_at)),
            print_batch_id: self.print_batch_id.map(|id| id.to_string()).unwrap_or_default(),
        }
    }

    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(InvitationRow {
            id: row.try_get("id")?,
            client_id: row.try_get("client_id")?,
            branch_id: row.try_get("branch_id")?,
            employee_id: row.try_get("employee_id")?,
            abc_class: row.try_get("abc_class")?,
            product_id: row.try_get("product_id")?,
            survey_id: row.try_get("survey_id")?,
            survey_version: row.try_get("survey_version")?,
            reason: row.try_get("reason")?,
            channel: row.try_get("channel")?,
            purchase_date: row.try_get("purchase_date")?,
            token_hash: row.try_get("token_hash")?,
            request_id: row.try_get("request_id")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            sent_at: row.try_get("sent_at")?,
            failed_at: row.try_get("failed_at")?,
            opened_at: row.try_get("opened_at")?,
            answered_at: row.try_get("answered_at")?,
            print_batch_id: row.try_get("print_batch_id")?,
        })
    }
}

const COLUMNS: &str = "id, client_id, branch_id, employee_id, abc_class, product_id, survey_id, survey_version, \
    reason, channel, purchase_date, token_hash, request_id, created_by, created_at, expires_at, sent_at, failed_at, \
    opened_at, answered_at, print_batch_id";

/// The status as SQL, for filters ($1 = now); the same order as [`InvitationRow::status`].
const STATUS_SQL: &str = "CASE WHEN answered_at IS NOT NULL THEN 4 WHEN failed_at IS NOT NULL THEN 6 \
    WHEN expires_at <= $1 THEN 5 WHEN opened_at IS NOT NULL THEN 3 WHEN sent_at IS NOT NULL THEN 2 ELSE 1 END";

fn rows(found: Vec<PgRow>) -> sqlx::Result<Vec<InvitationRow>> {
    found.iter().map(InvitationRow::from_row).collect()
}

/// Inserts invitations; a first-purchase invitation that exists already is
/// skipped. Returns the ids inserted.
pub async fn insert(tx: &mut Transaction<'_, Postgres>, invitations: &[InvitationRow]) -> sqlx::Result<HashSet<Uuid>> {
    let text = |f: fn(&InvitationRow) -> &String| invitations.iter().map(f).cloned().collect::<Vec<_>>();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO invitations (id, client_id, branch_id, employee_id, abc_class, product_id, survey_id,
             survey_version, reason, channel, purchase_date, token_hash, request_id, created_by, created_at,
             expires_at, sent_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::text[],
             $7::text[], $8::integer[], $9::smallint[], $10::smallint[], $11::date[], $12::bytea[], $13::text[],
             $14::text[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[])
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(invitations.iter().map(|i| i.id).collect::<Vec<_>>())
    .bind(text(|i| &i.client_id))
    .bind(text(|i| &i.branch_id))
    .bind(text(|i| &i.employee_id))
    .bind(invitations.iter().map(|i| i.abc_class).collect::<Vec<_>>())
    .bind(text(|i| &i.product_id))
    .bind(text(|i| &i.survey_id))
    .bind(invitations.iter().map(|i| i.survey_version).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.reason).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.channel).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.purchase_date).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.token_hash.clone()).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.request_id.clone()).collect::<Vec<_>>())
    .bind(text(|i| &i.created_by))
    .bind(invitations.iter().map(|i| i.created_at).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.expires_at).collect::<Vec<_>>())
    .bind(invitations.iter().map(|i| i.sent_at).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// When each client was last invited (failed deliveries do not count).
pub async fn last_invited(pool: &PgPool, client_ids: &[String]) -> sqlx::Result<HashMap<String, DateTime<Utc>>> {
    let rows = sqlx::query(
        "SELECT client_id, max(created_at) AS last FROM invitations
         WHERE client_id = ANY($1) AND failed_at IS NULL GROUP BY client_id",
    )
    .bind(client_ids)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|row| Ok((row.try_get("client_id")?, row.try_get("last")?))).collect()
}

/// The (client, product) pairs already asked about a first purchase.
pub async fn asked_about(pool: &PgPool, client_ids: &[String]) -> sqlx::Result<HashSet<(String, String)>> {
    let rows = sqlx::query("SELECT client_id, product_id FROM invitations WHERE reason = 2 AND client_id = ANY($1)")
        .bind(client_ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| Ok((row.try_get("client_id")?, row.try_get("product_id")?))).collect()
}

pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<InvitationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM invitations WHERE id = ANY($1) ORDER BY created_at, id");
    rows(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids).fetch_all(pool).await?)
}

pub async fn by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Vec<InvitationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM invitations WHERE request_id = $1 ORDER BY created_at, id");
    rows(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(request_id).fetch_all(pool).await?)
}

/// Locks invitations for answering, in id order (so concurrent batches cannot deadlock).
pub async fn lock(tx: &mut Transaction<'_, Postgres>, ids: &[Uuid]) -> sqlx::Result<Vec<InvitationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM invitations WHERE id = ANY($1) ORDER BY id FOR UPDATE");
    rows(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids).fetch_all(&mut **tx).await?)
}

/// The invitation a link token opens, locked when answering.
pub async fn by_token_hash(
    executor: impl sqlx::PgExecutor<'_>,
    hash: &[u8],
    for_update: bool,
) -> sqlx::Result<Option<InvitationRow>> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM invitations WHERE token_hash = $1 {lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(executor).await?;
    row.as_ref().map(InvitationRow::from_row).transpose()
}

/// Marks the first opening; later ones change nothing.
pub async fn mark_opened(pool: &PgPool, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE invitations SET opened_at = $2 WHERE id = $1 AND opened_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn mark_answered(tx: &mut Transaction<'_, Postgres>, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE invitations SET answered_at = $2 WHERE id = $1").bind(id).bind(at).execute(&mut **tx).await?;
    Ok(())
}

/// Filters of `ListInvitations`.
#[derive(Debug, Default)]
pub struct InvitationFilter {
    pub branch_id: String,
    pub client_id: String,
    /// 0: any.
    pub status: i32,
    pub channel: i32,
}

/// Newest first, after the keyset `after`.
pub async fn list(
    pool: &PgPool,
    now: DateTime<Utc>,
    filter: &InvitationFilter,
    scope: Option<&[String]>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<InvitationRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM invitations
         WHERE ($2::text[] IS NULL OR branch_id = ANY($2)) AND ($3 = '' OR branch_id = $3)
           AND ($4 = '' OR client_id = $4) AND ($5 = 0 OR {STATUS_SQL} = $5) AND ($6 = 0 OR channel = $6)
           AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8))
         ORDER BY created_at DESC, id DESC LIMIT $9"
    );
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(scope)
        .bind(&filter.branch_id)
        .bind(&filter.client_id)
        .bind(filter.status)
        .bind(filter.channel as i16)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows(found)
}

/// Takes up to `limit` printed-form invitations not exported yet (oldest
/// first; rows another export holds are skipped), marks them sent in `batch`.
pub async fn take_for_print(
    tx: &mut Transaction<'_, Postgres>,
    scope: Option<&[String]>,
    branch_id: &str,
    limit: i64,
    batch: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<InvitationRow>> {
    let sql = format!(
        "UPDATE invitations SET print_batch_id = $4, sent_at = $5
         WHERE id IN (
             SELECT id FROM invitations
             WHERE channel = 2 AND print_batch_id IS NULL AND answered_at IS NULL AND expires_at > $5
               AND ($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2)
             ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    );
    let mut taken = rows(
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(branch_id)
            .bind(limit)
            .bind(batch)
            .bind(now)
            .fetch_all(&mut **tx)
            .await?,
    )?;
    taken.sort_by_key(|i| (i.created_at, i.id));
    Ok(taken)
}

/// The invitations of an earlier print batch that the caller may see.
pub async fn print_batch(pool: &PgPool, batch: Uuid, scope: Option<&[String]>) -> sqlx::Result<Vec<InvitationRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM invitations WHERE print_batch_id = $1 AND ($2::text[] IS NULL OR branch_id = ANY($2))
         ORDER BY created_at, id"
    );
    rows(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(batch).bind(scope).fetch_all(pool).await?)
}

/// Records a delivery report for e-mail and messenger invitations not
/// reported before; returns the ids updated.
pub async fn record_delivery(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    sent: bool,
    at: DateTime<Utc>,
    detail: &str,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE invitations
         SET sent_at = CASE WHEN $2 THEN $3 END, failed_at = CASE WHEN $2 THEN NULL ELSE $3 END, delivery_detail = $4
         WHERE id = $1 AND channel IN (3, 4) AND sent_at IS NULL AND failed_at IS NULL",
    )
    .bind(id)
    .bind(sent)
    .bind(at)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}
