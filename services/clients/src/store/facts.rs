//! The raw material of `GetClientFacts`: clients with their purchase days,
//! and sales per day, branch, seller and kind.
use super::rollups;
use branchscore_scoring::periods::Period;
use chrono::NaiveDate;
use futures::TryStreamExt;
use sqlx::{PgConnection, PgPool, Row};

/// A client and every distinct day it made a purchase, up to a date.
#[derive(Debug, Clone)]
pub struct ClientPurchaseDays {
    pub id: String,
    pub branch_id: String,
    pub owner_employee_id: String,
    pub known_since: NaiveDate,
    /// Sorted.
    pub purchase_days: Vec<NaiveDate>,
}

impl ClientPurchaseDays {
    pub fn borrowed(&self) -> ClientPurchases<'_> {
        ClientPurchases {
            id: &self.id,
            branch_id: &self.branch_id,
            owner_employee_id: &self.owner_employee_id,
            known_since: self.known_since,
            purchase_days: &self.purchase_days,
        }
    }
}

/// A client as [`each_client_purchases`] hands it over, borrowed from its row.
#[derive(Debug, Clone, Copy)]
pub struct ClientPurchases<'r> {
    pub id: &'r str,
    pub branch_id: &'r str,
    pub owner_employee_id: &'r str,
    pub known_since: NaiveDate,
    /// Sorted, up to the date asked for.
    pub purchase_days: &'r [NaiveDate],
}

/// Streams the clients known by `to` within the filters, with their
/// purchase days up to `to` (from the purchase history), into `visit` as
/// their rows arrive: a million clients are never held at once. Returns
/// how many were visited.
pub async fn each_client_purchases(
    conn: &mut PgConnection,
    to: NaiveDate,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
    mut visit: impl FnMut(ClientPurchases<'_>),
) -> sqlx::Result<u64> {
    let mut rows = sqlx::query(
        "SELECT c.id, c.branch_id, COALESCE(c.owner_employee_id, '') AS owner, c.known_since,
                COALESCE(h.purchase_days, '{}') AS days
         FROM clients c LEFT JOIN client_purchase_history h ON h.client_id = c.id
         WHERE ($2::text[] IS NULL OR c.branch_id = ANY($2)) AND ($3 = '' OR c.branch_id = $3)
           AND ($4 = '' OR c.owner_employee_id = $4) AND (c.known_since <= $1 OR h.purchase_days[1] <= $1)",
    )
    .bind(to)
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .fetch(&mut *conn);
    let mut visited = 0;
    while let Some(row) = rows.try_next().await? {
        let days: Vec<NaiveDate> = row.try_get(4)?;
        visit(ClientPurchases {
            id: row.try_get(0)?,
            branch_id: row.try_get(1)?,
            owner_employee_id: row.try_get(2)?,
            known_since: row.try_get(3)?,
            purchase_days: &days[..days.partition_point(|day| *day <= to)],
        });
        visited += 1;
    }
    Ok(visited)
}

/// The same clients collected (see [`each_client_purchases`]).
pub async fn client_purchase_days(
    conn: &mut PgConnection,
    to: NaiveDate,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
) -> sqlx::Result<Vec<ClientPurchaseDays>> {
    let mut clients = Vec::new();
    each_client_purchases(conn, to, scope, branch_id, employee_id, |client| {
        clients.push(ClientPurchaseDays {
            id: client.id.to_owned(),
            branch_id: client.branch_id.to_owned(),
            owner_employee_id: client.owner_employee_id.to_owned(),
            known_since: client.known_since,
            purchase_days: client.purchase_days.to_vec(),
        })
    })
    .await?;
    Ok(clients)
}

/// How a sold line counts for the client it was sold to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SaleKind {
    /// Part of the client's first purchase document.
    Primary,
    /// Its product line was bought by the client on an earlier day.
    Repeat,
    /// Its product line is new to the client.
    NewDirection,
}

/// Sales of one kind by one seller in one branch, on one day or summed over a period.
#[derive(Debug, Clone)]
pub struct SellerSales {
    /// The day sold, or the first day of the period summed.
    pub day: NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
    pub kind: SaleKind,
    pub documents: i64,
    pub amount_minor: i64,
    /// The documents counted, when asked for (else empty).
    pub document_ids: Vec<String>,
}

/// Purchases sold in `periods` within the filters, classified per line:
/// primary if the line belongs to the client's first purchase document (the
/// earliest day, then the smallest document id), else repeat if the client
/// bought the line's product line on an earlier day, else new direction.
/// Summed per period from the rollup ingestion keeps; with
/// `list_documents`, per day and computed from the lines, so that each row
/// also names the documents it counts.
pub async fn seller_sales(
    conn: &mut PgConnection,
    periods: &[Period],
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
    list_documents: bool,
) -> sqlx::Result<Vec<SellerSales>> {
    let (Some(first), Some(last)) = (periods.first(), periods.last()) else { return Ok(Vec::new()) };
    let statement = if list_documents { rollups::DAILY_SALES_WITH_DOCUMENTS } else { rollups::PERIOD_SALES };
    let mut query =
        sqlx::query(statement).bind(first.start).bind(last.end).bind(scope).bind(branch_id).bind(employee_id);
    if !list_documents {
        query = query.bind(periods.iter().map(|p| p.start).collect::<Vec<_>>());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let kind = match row.try_get::<i32, _>("kind")? {
                0 => SaleKind::Primary,
                1 => SaleKind::Repeat,
                _ => SaleKind::NewDirection,
            };
            Ok(SellerSales {
                day: row.try_get("day")?,
                branch_id: row.try_get("branch_id")?,
                employee_id: row.try_get("employee_id")?,
                kind,
                documents: row.try_get("documents")?,
                amount_minor: row.try_get("amount")?,
                document_ids: row.try_get("document_ids")?,
            })
        })
        .collect()
}

/// Each client's first purchase of each product, for those in `[from, to]`,
/// after the (client, product) key `after`, at most `limit`.
pub async fn first_purchases(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    scope: Option<&[String]>,
    branch_id: &str,
    after: (&str, &str),
    limit: i64,
) -> sqlx::Result<Vec<branchscore_proto::clients::v1::FirstPurchase>> {
    let rows = sqlx::query(
        "WITH firsts AS (
             SELECT DISTINCT ON (client_id, product_id) client_id, product_id, business_date, document_id,
                    employee_id, branch_id,
                    business_date = min(business_date) OVER (PARTITION BY client_id) AS first_of_client
             FROM transaction_lines
             WHERE amount_minor > 0 AND business_date <= $2
               AND client_id IN (SELECT client_id FROM transaction_lines WHERE business_date BETWEEN $1 AND $2)
             ORDER BY client_id, product_id, business_date, document_id
         )
         SELECT * FROM firsts
         WHERE business_date >= $1 AND ($3::text[] IS NULL OR branch_id = ANY($3)) AND ($4 = '' OR branch_id = $4)
           AND (client_id, product_id) > ($5, $6)
         ORDER BY client_id, product_id LIMIT $7",
    )
    .bind(from)
    .bind(to)
    .bind(scope)
    .bind(branch_id)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(branchscore_proto::clients::v1::FirstPurchase {
                client_id: row.try_get("client_id")?,
                product_id: row.try_get("product_id")?,
                business_date: Some(branchscore_proto::common::v1::Date::from(
                    row.try_get::<NaiveDate, _>("business_date")?,
                )),
                document_id: row.try_get("document_id")?,
                employee_id: row.try_get("employee_id")?,
                branch_id: row.try_get("branch_id")?,
                first_purchase_of_client: row.try_get("first_of_client")?,
            })
        })
        .collect()
}

/// ABC class moves of one (period, branch, owner) from one class to another.
#[derive(Debug, Clone)]
pub struct ClassMoves {
    /// The first day of the period.
    pub period_start: NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
    /// Stored class codes (0 unclassified, 1 A, 2 B, 3 C).
    pub previous_abc_class: i16,
    pub abc_class: i16,
    pub clients: i64,
    /// "client_id@as_of" of each move, when asked for (else empty).
    pub moves: Vec<String>,
}

/// The ABC class changes recomputes recorded in `periods` for the clients
/// within the filters, per period, owner and (previous, new) class.
pub async fn class_moves(
    conn: &mut PgConnection,
    periods: &[Period],
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
    list_moves: bool,
) -> sqlx::Result<Vec<ClassMoves>> {
    let (Some(first), Some(last)) = (periods.first(), periods.last()) else { return Ok(Vec::new()) };
    let rows = sqlx::query(
        "SELECT ($6::date[])[width_bucket(h.as_of, $6::date[])] AS period_start, c.branch_id,
                COALESCE(c.owner_employee_id, '') AS employee_id, h.previous_abc_class, h.abc_class,
                count(*) AS clients,
                COALESCE(array_agg(h.client_id || '@' || h.as_of ORDER BY h.client_id, h.as_of) FILTER (WHERE $7),
                         '{}') AS moves
         FROM client_class_history h JOIN clients c ON c.id = h.client_id
         WHERE h.abc_class <> h.previous_abc_class AND h.as_of BETWEEN $1 AND $2
           AND ($3::text[] IS NULL OR c.branch_id = ANY($3)) AND ($4 = '' OR c.branch_id = $4)
           AND ($5 = '' OR c.owner_employee_id = $5)
         GROUP BY 1, 2, 3, 4, 5",
    )
    .bind(first.start)
    .bind(last.end)
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .bind(periods.iter().map(|p| p.start).collect::<Vec<_>>())
    .bind(list_moves)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ClassMoves {
                period_start: row.try_get("period_start")?,
                branch_id: row.try_get("branch_id")?,
                employee_id: row.try_get("employee_id")?,
                previous_abc_class: row.try_get("previous_abc_class")?,
                abc_class: row.try_get("abc_class")?,
                clients: row.try_get("clients")?,
                moves: row.try_get("moves")?,
            })
        })
        .collect()
}
