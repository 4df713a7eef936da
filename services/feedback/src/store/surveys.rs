//! Surveys and their versions.
use crate::convert::timestamp;
use branchscore_proto::feedback::v1::{SurveyItem, SurveyVersion};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;

/// Why a version cannot be added.
#[derive(Debug, PartialEq, Eq)]
pub enum SurveyConflict {
    /// The survey exists for another product.
    ProductFixed { product_id: String },
    /// The product already has another survey.
    ProductTaken { survey_id: String },
}

/// Adds the next version of `version.survey_id`, creating the survey on its first version.
pub async fn create_version(
    tx: &mut Transaction<'_, Postgres>,
    version: &SurveyVersion,
) -> sqlx::Result<Result<SurveyVersion, SurveyConflict>> {
    let taken: Option<String> = sqlx::query_scalar("SELECT id FROM surveys WHERE product_id = $1 AND id <> $2")
        .bind(&version.product_id)
        .bind(&version.survey_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(survey_id) = taken {
        return Ok(Err(SurveyConflict::ProductTaken { survey_id }));
    }
    sqlx::query("INSERT INTO surveys (id, product_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(&version.survey_id)
        .bind(&version.product_id)
        .execute(&mut **tx)
        .await?;
    // The row lock orders concurrent versions of one survey.
    let product_id: String = sqlx::query_scalar("SELECT product_id FROM surveys WHERE id = $1 FOR UPDATE")
        .bind(&version.survey_id)
        .fetch_one(&mut **tx)
        .await?;
    if product_id != version.product_id {
        return Ok(Err(SurveyConflict::ProductFixed { product_id }));
    }
    let (number, created_at): (i32, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO survey_versions (survey_id, version, name, asks_nps, asks_csat, created_by)
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5 FROM survey_versions WHERE survey_id = $1
         RETURNING version, created_at",
    )
    .bind(&version.survey_id)
    .bind(&version.name)
    .bind(version.asks_nps)
    .bind(version.asks_csat)
    .bind(&version.created_by)
    .fetch_one(&mut **tx)
    .await?;
    let text = |f: fn(&SurveyItem) -> &String| version.items.iter().map(f).cloned().collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO survey_items (survey_id, version, position, code, text, touchpoint)
         SELECT $1, $2, position::smallint, code, text, touchpoint
         FROM UNNEST($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS i (code, text, touchpoint, position)",
    )
    .bind(&version.survey_id)
    .bind(number)
    .bind(text(|i| &i.code))
    .bind(text(|i| &i.text))
    .bind(text(|i| &i.touchpoint))
    .execute(&mut **tx)
    .await?;
    Ok(Ok(SurveyVersion { version: number, create_time: Some(timestamp(created_at)), ..version.clone() }))
}

const VERSION_COLUMNS: &str =
    "v.survey_id, v.version, s.product_id, v.name, v.asks_nps, v.asks_csat, v.created_by, v.created_at";

/// One version (`None` = the latest) of a survey.
pub async fn version(pool: &PgPool, survey_id: &str, number: Option<i32>) -> sqlx::Result<Option<SurveyVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM survey_versions v JOIN surveys s ON s.id = v.survey_id
         WHERE v.survey_id = $1 AND ($2::integer IS NULL OR v.version = $2)
         ORDER BY v.version DESC LIMIT 1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(survey_id).bind(number).fetch_all(pool).await?;
    Ok(with_items(pool, rows).await?.pop())
}

/// The latest version of every survey, by survey id.
pub async fn latest(pool: &PgPool) -> sqlx::Result<Vec<SurveyVersion>> {
    let sql = format!(
        "SELECT DISTINCT ON (v.survey_id) {VERSION_COLUMNS}
         FROM survey_versions v JOIN surveys s ON s.id = v.survey_id
         ORDER BY v.survey_id, v.version DESC"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
    with_items(pool, rows).await
}

/// The given versions, keyed by (survey id, version).
pub async fn versions(pool: &PgPool, keys: &[(String, i32)]) -> sqlx::Result<HashMap<(String, i32), SurveyVersion>> {
    let unique: std::collections::BTreeSet<&(String, i32)> = keys.iter().collect();
    let ids: Vec<String> = unique.iter().map(|k| k.0.clone()).collect();
    let numbers: Vec<i32> = unique.iter().map(|k| k.1).collect();
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM survey_versions v JOIN surveys s ON s.id = v.survey_id
         JOIN UNNEST($1::text[], $2::integer[]) AS k (survey_id, version)
           ON k.survey_id = v.survey_id AND k.version = v.version"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids).bind(numbers).fetch_all(pool).await?;
    Ok(with_items(pool, rows).await?.into_iter().map(|v| ((v.survey_id.clone(), v.version), v)).collect())
}

async fn with_items(pool: &PgPool, rows: Vec<sqlx::postgres::PgRow>) -> sqlx::Result<Vec<SurveyVersion>> {
    let mut versions: Vec<SurveyVersion> = rows
        .iter()
        .map(|row| {
            Ok(SurveyVersion {
                survey_id: row.try_get("survey_id")?,
                version: row.try_get("version")?,
                product_id: row.try_get("product_id")?,
                name: row.try_get("name")?,
                items: Vec::new(),
                asks_nps: row.try_get("asks_nps")?,
                asks_csat: row.try_get("asks_csat")?,
                created_by: row.try_get("created_by")?,
                create_time: Some(timestamp(row.try_get("created_at")?)),
            })
        })
        .collect::<sqlx::Result<_>>()?;
    let ids: Vec<String> = versions.iter().map(|v| v.survey_id.clone()).collect();
    let numbers: Vec<i32> = versions.iter().map(|v| v.version).collect();
    let items = sqlx::query(
        "SELECT i.survey_id, i.version, i.code, i.text, i.touchpoint FROM survey_items i
         JOIN UNNEST($1::text[], $2::integer[]) AS k (survey_id, version)
           ON k.survey_id = i.survey_id AND k.version = i.version
         ORDER BY i.survey_id, i.version, i.position",
    )
    .bind(ids)
    .bind(numbers)
    .fetch_all(pool)
    .await?;
    let mut by_version: HashMap<(String, i32), Vec<SurveyItem>> = HashMap::new();
    for row in items {
        by_version.entry((row.try_get("survey_id")?, row.try_get("version")?)).or_default().push(SurveyItem {
            code: row.try_get("code")?,
            text: row.try_get("text")?,
            touchpoint: row.try_get("touchpoint")?,
        });
    }
    for version in &mut versions {
        version.items = by_version.remove(&(version.survey_id.clone(), version.version)).unwrap_or_default();
    }
    Ok(versions)
}
