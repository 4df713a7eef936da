//! Responses and their item answers.
use crate::convert::{code, date, timestamp};
use branchscore_proto::feedback::v1::{Answers, ItemAnswer, SurveyResponse};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;
use uuid::Uuid;

/// A response to store; the invitation's facts are copied into it.
#[derive(Debug, Clone)]
pub struct NewResponse {
    pub id: Uuid,
    pub invitation_id: Uuid,
    pub external_id: Option<String>,
    pub source: i16,
    pub client_id: String,
    pub branch_id: String,
    pub employee_id: String,
    pub abc_class: i16,
    pub product_id: String,
    pub survey_id: String,
    pub survey_version: i32,
    pub answered_on: NaiveDate,
    pub nps: Option<i16>,
    pub csat: Option<i16>,
    pub comment: String,
    pub recorded_by: String,
    /// (code, touchpoint, score).
    pub items: Vec<(String, String, i16)>,
}

/// Stores a response; `false` when its external id is stored already.
pub async fn insert(tx: &mut Transaction<'_, Postgres>, response: &NewResponse) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO responses (id, invitation_id, external_id, source, client_id, branch_id, employee_id, abc_class,
             product_id, survey_id, survey_version, answered_on, nps, csat, comment, recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (external_id) DO NOTHING",
    )
    .bind(response.id)
    .bind(response.invitation_id)
    .bind(&response.external_id)
    .bind(response.source)
    .bind(&response.client_id)
    .bind(&response.branch_id)
    .bind(&response.employee_id)
    .bind(response.abc_class)
    .bind(&response.product_id)
    .bind(&response.survey_id)
    .bind(response.survey_version)
    .bind(response.answered_on)
    .bind(response.nps)
    .bind(response.csat)
    .bind(&response.comment)
    .bind(&response.recorded_by)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO response_items (response_id, code, touchpoint, score)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::smallint[])",
    )
    .bind(response.id)
    .bind(response.items.iter().map(|i| i.0.clone()).collect::<Vec<_>>())
    .bind(response.items.iter().map(|i| i.1.clone()).collect::<Vec<_>>())
    .bind(response.items.iter().map(|i| i.2).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// The invitation each stored external id answered.
pub async fn invitations_of_external_ids(
    pool: &PgPool,
    external_ids: &[String],
) -> sqlx::Result<HashMap<String, Uuid>> {
    let rows = sqlx::query("SELECT external_id, invitation_id FROM responses WHERE external_id = ANY($1)")
        .bind(external_ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| Ok((row.try_get("external_id")?, row.try_get("invitation_id")?))).collect()
}

const COLUMNS: &str = "r.id, r.invitation_id, r.external_id, r.source, r.client_id, r.branch_id, r.employee_id, \
    r.abc_class, r.product_id, r.survey_id, r.survey_version, r.answered_on, r.nps, r.csat, r.comment, r.recorded_by, \
    r.created_at, c.id AS complaint_id";

fn message(row: &PgRow) -> sqlx::Result<SurveyResponse> {
    let id: Uuid = row.try_get("id")?;
    let invitation_id: Uuid = row.try_get("invitation_id")?;
    let complaint_id: Option<Uuid> = row.try_get("complaint_id")?;
    Ok(SurveyResponse {
        id: id.to_string(),
        invitation_id: invitation_id.to_string(),
        client_id: row.try_get("client_id")?,
        branch_id: row.try_get("branch_id")?,
        employee_id: row.try_get("employee_id")?,
        abc_class: code(row.try_get("abc_class")?),
        product_id: row.try_get("product_id")?,
        survey_id: row.try_get("survey_id")?,
        survey_version: row.try_get("survey_version")?,
        source: code(row.try_get("source")?),
        answered_on: date(row.try_get("answered_on")?),
        answers: Some(Answers {
            items: Vec::new(),
            nps: row.try_get::<Option<i16>, _>("nps")?.map(i32::from),
            csat: row.try_get::<Option<i16>, _>("csat")?.map(i32::from),
            comment: row.try_get("comment")?,
        }),
        recorded_by: row.try_get("recorded_by")?,
        external_id: row.try_get::<Option<String>, _>("external_id")?.unwrap_or_default(),
        create_time: Some(timestamp(row.try_get("created_at")?)),
        complaint_id: complaint_id.map(|id| id.to_string()).unwrap_or_default(),
    })
}

async fn with_items(pool: &PgPool, rows: Vec<PgRow>) -> sqlx::Result<Vec<SurveyResponse>> {
    let mut responses: Vec<SurveyResponse> = rows.iter().map(message).collect::<sqlx::Result<_>>()?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.try_get("id")).collect::<sqlx::Result<_>>()?;
    let items = sqlx::query(
        "SELECT i.response_id, i.code, i.score FROM response_items i
         JOIN survey_items s ON s.code = i.code
         JOIN responses r ON r.id = i.response_id AND s.survey_id = r.survey_id AND s.version = r.survey_version
         WHERE i.response_id = ANY($1) ORDER BY i.response_id, s.position",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut by_response: HashMap<Uuid, Vec<ItemAnswer>> = HashMap::new();
    for row in items {
        by_response
            .entry(row.try_get("response_id")?)
            .or_default()
            .push(ItemAnswer { code: row.try_get("code")?, score: i32::from(row.try_get::<i16, _>("score")?) });
    }
    for (response, id) in responses.iter_mut().zip(&ids) {
        if let Some(answers) = response.answers.as_mut() {
            answers.items = by_response.remove(id).unwrap_or_default();
        }
    }
    Ok(responses)
}

pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<SurveyResponse>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM responses r LEFT JOIN complaints c ON c.response_id = r.id
         WHERE r.id = ANY($1) ORDER BY r.created_at, r.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids).fetch_all(pool).await?;
    with_items(pool, rows).await
}

/// Filters of `ListResponses`.
#[derive(Debug, Default)]
pub struct ResponseFilter {
    pub branch_id: String,
    pub client_id: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Newest first, after the keyset `after`.
pub async fn list(
    pool: &PgPool,
    filter: &ResponseFilter,
    scope: Option<&[String]>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<SurveyResponse>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM responses r LEFT JOIN complaints c ON c.response_id = r.id
         WHERE ($1::text[] IS NULL OR r.branch_id = ANY($1)) AND ($2 = '' OR r.branch_id = $2)
           AND ($3 = '' OR r.client_id = $3) AND ($4::date IS NULL OR r.answered_on >= $4)
           AND ($5::date IS NULL OR r.answered_on <= $5)
           AND ($6::timestamptz IS NULL OR (r.created_at, r.id) < ($6, $7))
         ORDER BY r.created_at DESC, r.id DESC LIMIT $8"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(&filter.branch_id)
        .bind(&filter.client_id)
        .bind(filter.from)
        .bind(filter.to)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    with_items(pool, rows).await
}

/// One response's scores, as satisfaction and statistics read them.
#[derive(Debug, Clone)]
pub struct ScoredResponse {
    pub id: Uuid,
    pub client_id: String,
    pub branch_id: String,
    pub employee_id: String,
    pub product_id: String,
    pub answered_on: NaiveDate,
    pub nps: Option<u8>,
    pub csat: Option<u8>,
    /// (touchpoint, score).
    pub items: Vec<(String, u8)>,
}

/// Filters of the statistics reads; every one is optional.
#[derive(Debug, Default)]
pub struct ScoreFilter<'a> {
    pub scope: Option<&'a [String]>,
    pub branch_id: &'a str,
    pub employee_id: &'a str,
    pub product_id: &'a str,
    pub client_ids: Option<&'a [String]>,
}

/// Responses answered in `[from, to]` matching `filter`, oldest first.
pub async fn scored(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    filter: &ScoreFilter<'_>,
) -> sqlx::Result<Vec<ScoredResponse>> {
    let rows = sqlx::query(
        "SELECT r.id, r.client_id, r.branch_id, r.employee_id, r.product_id, r.answered_on, r.nps, r.csat,
                COALESCE(array_agg(i.touchpoint ORDER BY i.code) FILTER (WHERE i.code IS NOT NULL), '{}') AS touchpoints,
                COALESCE(array_agg(i.score ORDER BY i.code) FILTER (WHERE i.code IS NOT NULL), '{}') AS scores
         FROM responses r LEFT JOIN response_items i ON i.response_id = r.id
         WHERE r.answered_on BETWEEN $1 AND $2
           AND ($3::text[] IS NULL OR r.branch_id = ANY($3)) AND ($4 = '' OR r.branch_id = $4)
           AND ($5 = '' OR r.employee_id = $5) AND ($6 = '' OR r.product_id = $6)
           AND ($7::text[] IS NULL OR r.client_id = ANY($7))
         GROUP BY r.id ORDER BY r.answered_on, r.id",
    )
    .bind(from)
    .bind(to)
    .bind(filter.scope)
    .bind(filter.branch_id)
    .bind(filter.employee_id)
    .bind(filter.product_id)
    .bind(filter.client_ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let touchpoints: Vec<String> = row.try_get("touchpoints")?;
            let scores: Vec<i16> = row.try_get("scores")?;
            let small = |v: Option<i16>| v.and_then(|v| u8::try_from(v).ok());
            Ok(ScoredResponse {
                id: row.try_get("id")?,
                client_id: row.try_get("client_id")?,
                branch_id: row.try_get("branch_id")?,
                employee_id: row.try_get("employee_id")?,
                product_id: row.try_get("product_id")?,
                answered_on: row.try_get("answered_on")?,
                nps: small(row.try_get("nps")?),
                csat: small(row.try_get("csat")?),
                items: touchpoints
                    .into_iter()
                    .zip(scores)
                    .filter_map(|(t, s)| Some((t, u8::try_from(s).ok()?)))
                    .collect(),
            })
        })
        .collect()
}

/// The responses to the given invitations.
pub async fn by_invitations(pool: &PgPool, invitation_ids: &[Uuid]) -> sqlx::Result<Vec<SurveyResponse>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM responses r LEFT JOIN complaints c ON c.response_id = r.id
         WHERE r.invitation_id = ANY($1) ORDER BY r.created_at, r.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(invitation_ids).fetch_all(pool).await?;
    with_items(pool, rows).await
}
