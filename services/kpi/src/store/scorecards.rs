//! Scorecard versions per role.
use super::{role_from_name, role_name};
use crate::compute::{Scorecard, ScorecardLine};
use branchscore_proto::common::v1::EmployeeRole;
use branchscore_scoring::kpi::PayoutTerms;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;

/// A scorecard version with who stored it and when.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScorecard {
    pub scorecard: Scorecard,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Stores `scorecard` as its role's next version and returns the version.
pub async fn insert_scorecard(
    pool: &PgPool,
    scorecard: &Scorecard,
    currency: &str,
    created_by: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<i32> {
    let mut tx = pool.begin().await?;
    let role = role_name(scorecard.role);
    // Versions of one role are numbered one after another.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kpi.scorecard.' || $1))").bind(role).execute(&mut *tx).await?;
    let version: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM scorecards WHERE role = $1")
        .bind(role)
        .fetch_one(&mut *tx)
        .await?;
    let terms = &scorecard.terms;
    sqlx::query(
        "INSERT INTO scorecards (role, version, effective_from, floor_bp, cap_bp, accelerator, payout_curve, \
         monthly_base_bonus, currency, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(role)
    .bind(version)
    .bind(scorecard.effective_from)
    .bind(terms.floor_bp as i32)
    .bind(terms.cap_bp as i32)
    .bind(terms.accelerator)
    .bind(Json(&terms.curve))
    .bind(scorecard.monthly_base_bonus)
    .bind(currency)
    .bind(now)
    .bind(created_by)
    .execute(&mut *tx)
    .await?;
    let codes: Vec<&str> = scorecard.lines.iter().map(|l| l.kpi_code.as_str()).collect();
    let weights: Vec<i32> = scorecard.lines.iter().map(|l| l.weight_bp as i32).collect();
    let plans: Vec<f64> = scorecard.lines.iter().map(|l| l.plan).collect();
    sqlx::query(
        "INSERT INTO scorecard_lines (role, version, kpi_code, weight_bp, plan, position) \
         SELECT $1, $2, code, weight, plan, position::int - 1 \
         FROM UNNEST($3::text[], $4::int[], $5::float8[]) WITH ORDINALITY AS l(code, weight, plan, position)",
    )
    .bind(role)
    .bind(version)
    .bind(&codes)
    .bind(&weights)
    .bind(&plans)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}

const SELECT_SCORECARDS: &str = "SELECT s.*, COALESCE((SELECT jsonb_agg(jsonb_build_array(l.kpi_code, l.weight_bp, \
     l.plan) ORDER BY l.position) FROM scorecard_lines l WHERE l.role = s.role AND l.version = s.version), '[]') \
     AS lines FROM scorecards s";

fn scorecard_from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<StoredScorecard> {
    let Json(lines): Json<Vec<(String, u32, f64)>> = row.try_get("lines")?;
    let Json(curve): Json<Vec<(u32, u32)>> = row.try_get("payout_curve")?;
    let floor_bp: i32 = row.try_get("floor_bp")?;
    let cap_bp: i32 = row.try_get("cap_bp")?;
    Ok(StoredScorecard {
        scorecard: Scorecard {
            role: role_from_name(row.try_get("role")?)?,
            version: row.try_get("version")?,
            effective_from: row.try_get("effective_from")?,
            lines: lines
                .into_iter()
                .map(|(kpi_code, weight_bp, plan)| ScorecardLine { kpi_code, weight_bp, plan })
                .collect(),
            terms: PayoutTerms {
                floor_bp: u32::try_from(floor_bp).unwrap_or(0),
                cap_bp: u32::try_from(cap_bp).unwrap_or(0),
                accelerator: row.try_get("accelerator")?,
                curve,
            },
            monthly_base_bonus: row.try_get("monthly_base_bonus")?,
        },
        currency: row.try_get("currency")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

/// Every version, newest first; only `role`'s when given.
pub async fn list_scorecards(pool: &PgPool, role: Option<EmployeeRole>) -> sqlx::Result<Vec<StoredScorecard>> {
    let sql = format!("{SELECT_SCORECARDS} WHERE ($1::text IS NULL OR s.role = $1) ORDER BY s.role, s.version DESC");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(role.map(role_name)).fetch_all(pool).await?;
    rows.iter().map(scorecard_from_row).collect()
}

/// Per role (as `EmployeeRole as i32`), the version in force on `day`: the
/// latest effective date not after it, the highest version among equals.
pub async fn scorecards_in_force(pool: &PgPool, day: NaiveDate) -> sqlx::Result<BTreeMap<i32, Scorecard>> {
    let sql = format!(
        "SELECT * FROM ({SELECT_SCORECARDS} WHERE s.effective_from <= $1) v \
         WHERE NOT EXISTS (SELECT 1 FROM scorecards n WHERE n.role = v.role AND n.effective_from <= $1 \
         AND (n.effective_from, n.version) > (v.effective_from, v.version))"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(day).fetch_all(pool).await?;
    rows.iter().map(|row| scorecard_from_row(row).map(|s| (s.scorecard.role as i32, s.scorecard))).collect()
}
