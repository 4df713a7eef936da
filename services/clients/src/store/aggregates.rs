//! What the recompute reads: the scored population and its transactions
//! per client and calendar month (kept at import by `rollups`; the newest
//! lines aggregated in Postgres when read).
use branchscore_scoring::window::AnalysisWindow;
use chrono::{Datelike, Months, NaiveDate};
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
    "SELECT a.client_id, a.months, a.products FROM client_monthly_activity a
     WHERE NOT EXISTS (SELECT 1 FROM pending WHERE pending.client_id = a.client_id)"
);

/// Months aggregated from the lines `$filter` picks, with the products
/// bought in the window ($1..$2).
macro_rules! months_from_lines {
    ($filter:literal) => {
        concat!(
            "SELECT client_id, ",
            month_activity_columns!(),
            ", array_agg(DISTINCT product_id) FILTER (WHERE amount_minor > 0 AND business_date BETWEEN $1 AND $2)
                        AS window_products
             FROM transaction_lines WHERE ",
            $filter,
            " GROUP BY 1, 2"
        )
    };
}

/// The months from $3 to the as-of date $4 of every client and the earlier
/// months of the clients with something pending, from their lines.
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
/// Months come from the monthly activity kept at import, except the as-of
/// month when a line is dated after the as-of date (the kept month would
/// count it), and every month of clients whose import a refresh has not
/// yet reached: those from their lines. The reads share one snapshot, so
/// each client month is counted once.
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
    // The nightly run is as of today: nothing is dated later, and the kept
    // as-of month is the month to date.
    let later_lines: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM transaction_lines WHERE business_date > $1)")
            .bind(as_of)
            .fetch_one(&mut *tx)
            .await?;
    let kept_before =
        if later_lines { month_start } else { month_start.checked_add_months(Months::new(1)).unwrap_or(month_start) };
    let mut visits = 0;
    {
        let mut rows = sqlx::query(KEPT_ACTIVITY).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            visit(kept_activity(&row, window, kept_before)?);
            visits += 1;
        }
    }
    let mut rows = sqlx::query(ACTIVITY_FROM_LINES)
        .bind(window.start())
        .bind(window.end())
        .bind(kept_before)
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

/// A kept row's months before `before` and its products bought inside `window`.
fn kept_activity<'r>(row: &'r PgRow, window: &AnalysisWindow, before: NaiveDate) -> sqlx::Result<ClientActivity<'r>> {
    let malformed = |column: &str| sqlx::Error::Decode(format!("client_monthly_activity.{column} is malformed").into());
    let months = kept_months(row.try_get("months")?).ok_or_else(|| malformed("months"))?;
    let products = kept_products(row.try_get("products")?).ok_or_else(|| malformed("products"))?;
    Ok(ClientActivity {
        client_id: row.try_get("client_id")?,
        months: months.into_iter().take_while(|m| m.month < before).collect(),
        window_products: products
            .into_iter()
            .filter(|(month, _)| (window.start()..=window.end()).contains(month))
            .map(|(_, product)| product)
            .collect(),
    })
}

/// Bytes of one packed month (migration 20261127000009).
const MONTH_RECORD: usize = 28;

/// The packed months of a kept row; `None` when malformed.
fn kept_months(mut bytes: &[u8]) -> Option<Vec<MonthlyActivity>> {
    if !bytes.len().is_multiple_of(MONTH_RECORD) {
        return None;
    }
    let mut months = Vec::with_capacity(bytes.len() / MONTH_RECORD);
    while !bytes.is_empty() {
        months.push(MonthlyActivity {
            month: day(take(&mut bytes).map(i32::from_be_bytes)?)?,
            revenue: take(&mut bytes).map(i64::from_be_bytes)?,
            documents: take(&mut bytes).map(i64::from_be_bytes)?,
            first_purchase: optional_day(take(&mut bytes).map(i32::from_be_bytes)?)?,
            last_purchase: optional_day(take(&mut bytes).map(i32::from_be_bytes)?)?,
        });
    }
    Some(months)
}

/// The packed (month, product) pairs of a kept row, ids borrowed from it;
/// `None` when malformed.
fn kept_products(mut bytes: &[u8]) -> Option<Vec<(NaiveDate, &str)>> {
    let mut products = Vec::new();
    while !bytes.is_empty() {
        let month = day(take(&mut bytes).map(i32::from_be_bytes)?)?;
        let length = usize::try_from(take(&mut bytes).map(i16::from_be_bytes)?).ok()?;
        let (id, rest) = bytes.split_at_checked(length)?;
        bytes = rest;
        products.push((month, std::str::from_utf8(id).ok()?));
    }
    Some(products)
}

/// Takes `N` bytes off the front of `bytes`.
fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = bytes.split_first_chunk::<N>()?;
    *bytes = tail;
    Some(*head)
}

/// 1970-01-01 in days from 0001-01-01 (chrono's count).
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// A day counted from 1970-01-01.
fn day(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_FROM_CE)?)
}

/// The same, `i32::MIN` standing for none.
fn optional_day(days: i32) -> Option<Option<NaiveDate>> {
    if days == i32::MIN { Some(None) } else { day(days).map(Some) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn days(date: NaiveDate) -> i32 {
        (date - super::day(0).expect("epoch")).num_days() as i32
    }

    /// A month packed as the refresh's SQL packs it.
    fn packed_month(month: &MonthlyActivity) -> Vec<u8> {
        let optional = |d: Option<NaiveDate>| d.map_or(i32::MIN, days);
        [
            &days(month.month).to_be_bytes()[..],
            &month.revenue.to_be_bytes(),
            &month.documents.to_be_bytes(),
            &optional(month.first_purchase).to_be_bytes(),
            &optional(month.last_purchase).to_be_bytes(),
        ]
        .concat()
    }

    #[test]
    fn packed_months_are_read_back() {
        assert_eq!(super::day(0), Some(date(1970, 1, 1)));
        let months = [
            MonthlyActivity {
                month: date(2026, 8, 1),
                revenue: 50_000,
                documents: 2,
                first_purchase: Some(date(2026, 8, 3)),
                last_purchase: Some(date(2026, 8, 30)),
            },
            // Returns only: a negative revenue and no purchase.
            MonthlyActivity {
                month: date(2026, 9, 1),
                revenue: -4_000,
                documents: 0,
                first_purchase: None,
                last_purchase: None,
            },
        ];
        let bytes: Vec<u8> = months.iter().flat_map(packed_month).collect();
        assert_eq!(bytes.len(), 2 * MONTH_RECORD);
        assert_eq!(kept_months(&bytes), Some(months.to_vec()));
        assert_eq!(kept_months(&[]), Some(vec![]));
        assert_eq!(kept_months(&bytes[..MONTH_RECORD + 1]), None, "cut short");
    }

    #[test]
    fn packed_products_are_read_in_place() {
        let mut bytes = Vec::new();
        for (month, id) in [(date(2026, 8, 1), "P-LOAN"), (date(2026, 8, 1), "P-CARD"), (date(2026, 10, 1), "P-LOAN")] {
            bytes.extend(days(month).to_be_bytes());
            bytes.extend((id.len() as i16).to_be_bytes());
            bytes.extend(id.as_bytes());
        }
        let expected = vec![(date(2026, 8, 1), "P-LOAN"), (date(2026, 8, 1), "P-CARD"), (date(2026, 10, 1), "P-LOAN")];
        assert_eq!(kept_products(&bytes), Some(expected));
        assert_eq!(kept_products(&bytes[..bytes.len() - 1]), None, "an id cut short");
        assert_eq!(kept_products(&bytes[..5]), None, "a length cut short");
    }
}
