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
/// Borrowed from the row read: a million clients' products are not copied.
#[derive(Debug, Clone, Default)]
pub struct ClientActivity<'r> {
    pub client_id: &'r str,
    pub months: Vec<MonthlyActivity>,
    pub window_products: Vec<&'r str>,
}

/// Clients whose monthly activity a refresh has yet to recompute.
macro_rules! with_pending {
    () => {
        "WITH pending AS (SELECT DISTINCT unnest(clients) AS client_id FROM import_marks WHERE purchases_changed) "
    };
}

/// The kept monthly activity of the clients with nothing pending.
const KEPT_ACTIVITY: &str = concat!(
    with_pending!(),
    "SELECT a.client_id, a.months, a.revenue_minor, a.documents, a.first_purchase, a.last_purchase, a.product_ids,
            a.product_months
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
    mut visit: impl FnMut(ClientActivity<'_>),
) -> sqlx::Result<u64> {
    let as_of = window.as_of_date();
    let month_start = as_of.with_day(1).unwrap_or(as_of);
    let mut tx = pool.begin().await?;
    // Whole-table scans of a batch job: compiling them costs more than it
    // saves, and the as-of month's sort fits in memory instead of on disk.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL work_mem = '64MB'").execute(&mut *tx).await?;
    let mut visits = 0;
    {
        let mut rows = sqlx::query(KEPT_ACTIVITY).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            visit(kept_activity(&row, window, month_start)?);
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
        let products: Vec<String> = row.try_get::<Option<Vec<String>>, _>("window_products")?.unwrap_or_default();
        visit(ClientActivity {
            client_id: row.try_get("client_id")?,
            months: vec![MonthlyActivity {
                month: row.try_get("month")?,
                revenue: row.try_get("revenue")?,
                documents: row.try_get("documents")?,
                first_purchase: row.try_get("first_purchase")?,
                last_purchase: row.try_get("last_purchase")?,
            }],
            window_products: products.iter().map(String::as_str).collect(),
        });
        visits += 1;
    }
    Ok(visits)
}

/// A kept row's months before `before` (the as-of month's first day) and
/// its products bought inside `window`.
fn kept_activity<'r>(row: &'r PgRow, window: &AnalysisWindow, before: NaiveDate) -> sqlx::Result<ClientActivity<'r>> {
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
    let product_months: Vec<NaiveDate> = row.try_get("product_months")?;
    let product_ids = row.try_get_raw("product_ids")?;
    let product_ids = text_array(product_ids.as_bytes().map_err(sqlx::Error::Decode)?)
        .ok_or_else(|| sqlx::Error::Decode("product_ids is not a one-dimensional text[] without NULLs".into()))?;
    let window_products = product_ids
        .into_iter()
        .zip(product_months)
        .filter(|(_, month)| (window.start()..=window.end()).contains(month))
        .map(|(product, _)| product)
        .collect();
    Ok(ClientActivity { client_id: row.try_get("client_id")?, months, window_products })
}

/// The elements of a one-dimensional `text[]` without NULLs in Postgres's
/// binary format, borrowed (sqlx's own decoding allocates a `String` for
/// each: 14 million of them at a million clients); `None` when malformed.
fn text_array(bytes: &[u8]) -> Option<Vec<&str>> {
    let mut rest = bytes;
    let (dimensions, _has_nulls, _element_type) = (int(&mut rest)?, int(&mut rest)?, int(&mut rest)?);
    if dimensions == 0 {
        return Some(Vec::new());
    }
    let (length, _lower_bound) = (int(&mut rest)?, int(&mut rest)?);
    if dimensions != 1 {
        return None;
    }
    let mut elements = Vec::with_capacity(usize::try_from(length).ok()?);
    for _ in 0..length {
        let size = usize::try_from(int(&mut rest)?).ok()?;
        let (element, tail) = rest.split_at_checked(size)?;
        rest = tail;
        elements.push(std::str::from_utf8(element).ok()?);
    }
    rest.is_empty().then_some(elements)
}

/// Takes a big-endian `int4` off the front of `bytes`.
fn int(bytes: &mut &[u8]) -> Option<i32> {
    let (head, tail) = bytes.split_first_chunk::<4>()?;
    *bytes = tail;
    Some(i32::from_be_bytes(*head))
}

#[cfg(test)]
mod tests {
    use super::text_array;

    /// A one-dimensional text[] as Postgres sends it in binary.
    fn encoded(elements: &[&str]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for header in [1, 0, 25, elements.len() as i32, 1] {
            bytes.extend(i32::to_be_bytes(header));
        }
        for element in elements {
            bytes.extend(i32::to_be_bytes(element.len() as i32));
            bytes.extend(element.as_bytes());
        }
        bytes
    }

    #[test]
    fn a_binary_text_array_is_read_in_place() {
        assert_eq!(text_array(&encoded(&["P-LOAN", "", "Łódź-7"])), Some(vec!["P-LOAN", "", "Łódź-7"]));
        let empty: Vec<u8> = [0, 0, 25].into_iter().flat_map(i32::to_be_bytes).collect();
        assert_eq!(text_array(&empty), Some(vec![]));
    }

    #[test]
    fn a_malformed_or_null_holding_array_is_refused() {
        let whole = encoded(&["P-LOAN", "P-CARD"]);
        assert_eq!(text_array(&whole[..whole.len() - 1]), None, "cut short");
        assert_eq!(text_array(&[whole.as_slice(), b"x"].concat()), None, "trailing bytes");
        let mut null = encoded(&["P-LOAN"]);
        null.truncate(20);
        null.extend(i32::to_be_bytes(-1));
        assert_eq!(text_array(&null), None, "a NULL element");
        let mut two_dimensional = encoded(&["a", "b"]);
        two_dimensional[3] = 2;
        assert_eq!(text_array(&two_dimensional), None);
    }
}
