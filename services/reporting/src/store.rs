//! Postgres access of the reporting service: the audit of exports (the
//! service keeps no business data of its own).
use branchscore_proto::common::v1::{Date, Granularity};
use branchscore_proto::convert::timestamp;
use branchscore_proto::reporting::v1::{ExportRecord, ExportStatus, FileFormat, ReportKind};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Row};
use std::time::Duration;
use uuid::Uuid;

/// An export about to be streamed.
#[derive(Debug, Clone)]
pub struct NewExport<'a> {
    pub id: Uuid,
    pub report: ReportKind,
    pub format: FileFormat,
    pub requested_by: &'a str,
    pub role: &'a str,
    /// `None`: the whole network.
    pub scope: Option<&'a [String]>,
    pub branch_id: &'a str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: Granularity,
    pub rows: i64,
    pub bytes: i64,
    pub sha256: &'a str,
    pub started_at: DateTime<Utc>,
}

/// Records an export as streaming, its lease running for `lease`.
pub async fn record_export(pool: &PgPool, export: &NewExport<'_>, lease: Duration) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO exports (id, report, format, requested_by, role, scope_branch_ids, branch_id, period_from,
                              period_to, granularity, rows, bytes, sha256, status, started_at, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 now() + make_interval(secs => $16))",
    )
    .bind(export.id)
    .bind(export.report.as_str_name())
    .bind(export.format.as_str_name())
    .bind(export.requested_by)
    .bind(export.role)
    .bind(export.scope)
    .bind(export.branch_id)
    .bind(export.from)
    .bind(export.to)
    .bind(export.granularity.as_str_name())
    .bind(export.rows)
    .bind(export.bytes)
    .bind(export.sha256)
    .bind(ExportStatus::Streaming.as_str_name())
    .bind(export.started_at)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Extends a streaming export's lease to `lease` from now.
pub async fn renew_lease(pool: &PgPool, id: Uuid, lease: Duration) -> sqlx::Result<()> {
    sqlx::query("UPDATE exports SET lease_until = now() + make_interval(secs => $2) WHERE id = $1 AND status = $3")
        .bind(id)
        .bind(lease.as_secs_f64())
        .bind(ExportStatus::Streaming.as_str_name())
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks a streaming export delivered or interrupted.
pub async fn finish_export(pool: &PgPool, id: Uuid, status: ExportStatus, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE exports SET status = $2, finished_at = $3 WHERE id = $1 AND status = $4")
        .bind(id)
        .bind(status.as_str_name())
        .bind(at)
        .bind(ExportStatus::Streaming.as_str_name())
        .execute(pool)
        .await?;
    Ok(())
}

fn decode<T>(name: &str, parse: impl Fn(&str) -> Option<T>) -> sqlx::Result<T> {
    parse(name).ok_or_else(|| sqlx::Error::Decode(format!("unknown value {name:?}").into()))
}

/// Exports newest first, of `requested_by` only when given, after the
/// export `before` (exclusive), at most `limit`.
pub async fn list_exports(
    pool: &PgPool,
    requested_by: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<ExportRecord>> {
    // A streaming export whose lease ran out was cut off when its lease ended.
    let rows = sqlx::query(
        "SELECT *, CASE WHEN cut_off THEN 'EXPORT_STATUS_INTERRUPTED' ELSE status END AS status_now,
                CASE WHEN cut_off THEN lease_until ELSE finished_at END AS finished_now
         FROM (SELECT *, status = 'EXPORT_STATUS_STREAMING' AND lease_until < now() AS cut_off FROM exports) e
         WHERE ($1::text IS NULL OR requested_by = $1) AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(requested_by)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let id: Uuid = row.try_get("id")?;
            let from: NaiveDate = row.try_get("period_from")?;
            let to: NaiveDate = row.try_get("period_to")?;
            let started_at: DateTime<Utc> = row.try_get("started_at")?;
            let finished_at: Option<DateTime<Utc>> = row.try_get("finished_now")?;
            let scope: Option<Vec<String>> = row.try_get("scope_branch_ids")?;
            Ok(ExportRecord {
                export_id: id.to_string(),
                report: decode(row.try_get("report")?, ReportKind::from_str_name)? as i32,
                format: decode(row.try_get("format")?, FileFormat::from_str_name)? as i32,
                requested_by: row.try_get("requested_by")?,
                role: row.try_get("role")?,
                scope_branch_ids: scope.unwrap_or_default(),
                branch_id: row.try_get("branch_id")?,
                from: Some(Date::from(from)),
                to: Some(Date::from(to)),
                granularity: decode(row.try_get("granularity")?, Granularity::from_str_name)? as i32,
                rows: row.try_get("rows")?,
                bytes: row.try_get("bytes")?,
                sha256: row.try_get("sha256")?,
                status: decode(row.try_get("status_now")?, ExportStatus::from_str_name)? as i32,
                start_time: Some(timestamp(started_at)),
                finish_time: finished_at.map(timestamp),
            })
        })
        .collect()
}
