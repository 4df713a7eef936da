//! What the recompute reads: the scored population and its transactions
//! aggregated in Postgres per client and calendar month.
use chrono::NaiveDate;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};

/// A client known on the as-of date.
#[derive(Debug, Clone)]
pub struct PopulationClient {
    pub id: String,
    pub branch_id: String,
    pub kind: i32,
    pub size_band: i32,
    pub industry: String,
}

/// Clients known on or before `as_of` (or with a line by then), by id.
pub async fn population(pool: &PgPool, as_of: NaiveDate) -> sqlx::Result<Vec<PopulationClient>> {
    let rows = sqlx::query(
        "SELECT id, branch_id, kind, size_band, industry FROM clients c
         WHERE known_since <= $1
            OR EXISTS (SELECT 1 FROM transaction_lines t WHERE t.client_id = c.id AND t.business_date <= $1)
         ORDER BY id",
    )
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PopulationClient {
                id: row.try_get("id")?,
                branch_id: row.try_get("branch_id")?,
                kind: i32::from(row.try_get::<i16, _>("kind")?),
                size_band: i32::from(row.try_get::<i16, _>("size_band")?),
                industry: row.try_get("industry")?,
            })
        })
        .collect()
}

/// One client's activity in one calendar month. Purchases are lines with a
/// positive amount; `revenue` is net of returns.
#[derive(Debug, Clone)]
pub struct MonthlyActivity {
    pub client_id: String,
    pub month: NaiveDate,
    pub revenue: i64,
    /// Distinct purchase documents (a document has one date, so one month).
    pub documents: i64,
    pub first_purchase: Option<NaiveDate>,
    pub last_purchase: Option<NaiveDate>,
}

/// Streams every client's monthly activity up to `as_of` into `visit`,
/// without holding the result set in memory; returns the rows seen.
pub async fn monthly_activity(
    pool: &PgPool,
    as_of: NaiveDate,
    mut visit: impl FnMut(MonthlyActivity),
) -> sqlx::Result<u64> {
    let mut rows = sqlx::query(
        "SELECT client_id, date_trunc('month', business_date)::date AS month, sum(amount_minor)::bigint AS revenue,
                count(DISTINCT document_id) FILTER (WHERE amount_minor > 0) AS documents,
                min(business_date) FILTER (WHERE amount_minor > 0) AS first_purchase,
                max(business_date) FILTER (WHERE amount_minor > 0) AS last_purchase
         FROM transaction_lines WHERE business_date <= $1 GROUP BY 1, 2",
    )
    .bind(as_of)
    .fetch(pool);
    let mut seen = 0;
    while let Some(row) = rows.try_next().await? {
        visit(MonthlyActivity {
            client_id: row.try_get("client_id")?,
            month: row.try_get("month")?,
            revenue: row.try_get("revenue")?,
            documents: row.try_get("documents")?,
            first_purchase: row.try_get("first_purchase")?,
            last_purchase: row.try_get("last_purchase")?,
        });
        seen += 1;
    }
    Ok(seen)
}
