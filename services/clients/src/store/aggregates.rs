//! What the recompute reads: the scored population and its transactions
//! per client and calendar month (kept at import by `rollups`; the newest
//! lines aggregated in Postgres when read).
use branchscore_scoring::window::AnalysisWindow;
use chrono::{Datelike, NaiveDate};
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyActivity {
    pub month: NaiveDate,
    pub revenue: i64,
    /// Distinct purchase documents (a document has one date, so one month).
    pub documents: i64,
    pub first_purchase: Option<NaiveDate>,
    pub last_purchase: Option<NaiveDate>,
}

/// Some of one client's months, and the products it bought in those of them
/// inside the analysis window (a product may come again with other months).
#[derive(Debug, Clone, Default)]
pub struct ClientActivity {
    pub client_id: String,
    pub months: Vec<MonthlyActivity>,
    pub window_products: Vec<String>,
}

/// Clients whose monthly activity a refresh has yet to recompute.
macro_rules! with_pending {
    () => {
        "WITH pending AS (SELECT DISTINCT unnest(clients) AS client_id FROM import_marks WHERE purchases_changed) "
    };
}

/// The kept monthly activity of the clients with nothing pending, its
/// window's products filtered by Postgres ($1..$2).
const KEPT_ACTIVITY: &str = concat!(
    with_pending!(),
    "SELECT a.client_id, a.months, a.revenue_minor, a.documents, a.first_purchase, a.last_purchase,
            ARRAY(SELECT u.p FROM unnest(a.product_ids, a.product_months) AS u(p, m) WHERE u.m BETWEEN $1 AND $2)
                AS window_products
     FROM client_monthly_activity a
     WHERE NOT EXISTS (SELECT 1 FROM pending WHERE pending.client_id = a.client_id)"
);

/// Months aggregated from the lines `$filter` picks, with the products
/// bought in the window ($1..$2).
macro_rules! months_from_lines {
    ($filter:literal) => {
        concat!(
            "SELECT client_id, date_trunc('month', business_date)::date AS month, sum(amount_minor)::bigint AS revenue,
                    count(DISTINCT document_id) FILTER (WHERE amount_minor > 0) AS documents,
                    min(business_date) FILTER (WHERE amount_minor > 0) AS first_purchase,
                    max(business_date) FILTER (WHERE amount_minor > 0) AS last_purchase,
                    array_agg(DISTINCT product_id) FILTER (WHERE amount_minor > 0 AND business_date BETWEEN $1 AND $2)
                        AS window_products
             FROM transaction_lines WHERE ",
            $filter,
            " GROUP BY 1, 2"
        )
    };
}

/// The as-of month ($3..$4) of every client and the earlier months of the
/// clients with something pending, from their lines.
const ACTIVITY_FROM_LINES: &str = concat!(
    with_pending!(),
    months_from_lines!("business_date BETWEEN $3 AND $4"),
    " UNION ALL ",
    months_from_lines!("business_date < $3 AND client_id IN (SELECT client_id FROM pending)")
);

/// Streams every client's activity per calendar month up to the as-of date
/// of `window` into `visit` (a client may come in several calls), without
/// holding the result set in memory; returns the calls made.
///
/// Whole months before the as-of month come from the monthly activity kept
/// at import; the as-of month, and every month of clients whose import a
/// refresh has not yet reached, from their lines. Both reads share one
/// snapshot, so each client month is counted once.
pub async fn client_activity(
    pool: &PgPool,
    window: &AnalysisWindow,
    mut visit: impl FnMut(ClientActivity),
) -> sqlx::Result<u64> {
    let as_of = window.as_of_date();
    let month_start = as_of.with_day(1).unwrap_or(as_of);
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mut visits = 0;
    {
        let mut rows = sqlx::query(KEPT_ACTIVITY).bind(window.start()).bind(window.end()).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            visit(kept_activity(&row, month_start)?);
            visits += 1;
        }
    }
    let mut rows = sqlx::query(ACTIVITY_FROM_LINES)
        .bind(window.start())
        .bind(window.end())
        .bind(month_start)
        .bind(as_of)
        .fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        visit(ClientActivity {
            client_id: row.try_get("client_id")?,
            months: vec![MonthlyActivity {
                month: row.try_get("month")?,
                revenue: row.try_get("revenue")?,
                documents: row.try_get("documents")?,
                first_purchase: row.try_get("first_purchase")?,
                last_purchase: row.try_get("last_purchase")?,
            }],
            window_products: row.try_get::<Option<Vec<String>>, _>("window_products")?.unwrap_or_default(),
        });
        visits += 1;
    }
    Ok(visits)
}

/// A kept row's months before `before` (the as-of month's first day).
fn kept_activity(row: &PgRow, before: NaiveDate) -> sqlx::Result<ClientActivity> {
    let months: Vec<NaiveDate> = row.try_get("months")?;
    let revenue: Vec<i64> = row.try_get("revenue_minor")?;
    let documents: Vec<i64> = row.try_get("documents")?;
    let first: Vec<Option<NaiveDate>> = row.try_get("first_purchase")?;
    let last: Vec<Option<NaiveDate>> = row.try_get("last_purchase")?;
    let months = (0..months.len())
        .take_while(|&i| months[i] < before)
        .map(|i| MonthlyActivity {
            month: months[i],
            revenue: revenue.get(i).copied().unwrap_or_default(),
            documents: documents.get(i).copied().unwrap_or_default(),
            first_purchase: first.get(i).copied().flatten(),
            last_purchase: last.get(i).copied().flatten(),
        })
        .collect();
    Ok(ClientActivity {
        client_id: row.try_get("client_id")?,
        months,
        window_products: row.try_get("window_products")?,
    })
}
