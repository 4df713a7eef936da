//! Raw material of coverage and the KPI facts.
use chrono::NaiveDate;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// An invitation sent on a company-zone day, and whether it is answered by now.
#[derive(Debug, Clone)]
pub struct SentInvitation {
    pub id: Uuid,
    pub client_id: String,
    pub branch_id: String,
    pub employee_id: String,
    pub abc_class: i16,
    pub product_id: String,
    pub sent_on: NaiveDate,
    pub answered: bool,
}

/// Invitations sent in `[from, to]` (days in `zone`).
pub async fn sent_invitations(
    pool: &PgPool,
    zone: &str,
    from: NaiveDate,
    to: NaiveDate,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
) -> sqlx::Result<Vec<SentInvitation>> {
    let rows = sqlx::query(
        "SELECT id, client_id, branch_id, employee_id, abc_class, product_id,
                (sent_at AT TIME ZONE $1)::date AS sent_on, answered_at IS NOT NULL AS answered
         FROM invitations
         WHERE sent_at IS NOT NULL AND (sent_at AT TIME ZONE $1)::date BETWEEN $2 AND $3
           AND ($4::text[] IS NULL OR branch_id = ANY($4)) AND ($5 = '' OR branch_id = $5)
           AND ($6 = '' OR employee_id = $6)",
    )
    .bind(zone)
    .bind(from)
    .bind(to)
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SentInvitation {
                id: row.try_get("id")?,
                client_id: row.try_get("client_id")?,
                branch_id: row.try_get("branch_id")?,
                employee_id: row.try_get("employee_id")?,
                abc_class: row.try_get("abc_class")?,
                product_id: row.try_get("product_id")?,
                sent_on: row.try_get("sent_on")?,
                answered: row.try_get("answered")?,
            })
        })
        .collect()
}

/// The days in `[from, to]` on which each of `client_ids` answered.
pub async fn answer_days(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    client_ids: &[String],
) -> sqlx::Result<Vec<(String, NaiveDate)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT client_id, answered_on FROM responses
         WHERE answered_on BETWEEN $1 AND $2 AND client_id = ANY($3)",
    )
    .bind(from)
    .bind(to)
    .bind(client_ids)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|row| Ok((row.try_get("client_id")?, row.try_get("answered_on")?))).collect()
}
