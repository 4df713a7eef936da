//! Purchase rollups (migrations 20261126000006 and 20261127000009): each
//! client's purchase days and first document, its first day per product
//! line, its activity per month, and sales per day, branch, seller and
//! kind. `GetClientFacts` and the recompute read these instead of
//! aggregating every transaction line on each call.
//!
//! Ingestion only appends a mark naming the clients and days a batch
//! touched ([`mark_imported`]), in the batch's transaction: it waits for
//! nothing, and a refresh sees the mark exactly when it can see the lines.
//! A refresh ([`refresh`]: before a read, and every few seconds in the
//! background) recomputes the marked clients from their lines, marks stale
//! their days and every day their new firsts reclassify (the old
//! first-document day, the old first day of a product line), and
//! recomputes the stale days. Refreshes take turns on an advisory lock, so
//! an older snapshot never overwrites a newer result.
//!
//! The same refresh recounts the marked clients' lifecycle counts
//! ([`lifecycle`]); a master-data change marks its clients for that alone
//! ([`mark_master_data`]).
use super::{NewTransactionLine, lifecycle};
use branchscore_platform::db;
use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// The advisory lock refreshes take turns on: whoever holds it keeps every
/// refresh waiting.
pub const REFRESH_LOCK: i64 = 0x726f_6c6c_7570;

/// Purchase lines with what classifies them: the client's first document
/// and its first day in the line's product line.
macro_rules! classified_lines {
    () => {
        "transaction_lines t
         JOIN products p ON p.id = t.product_id
         JOIN client_purchase_history h ON h.client_id = t.client_id
         JOIN client_line_firsts l ON l.client_id = t.client_id AND l.product_line_id = p.product_line_id"
    };
}

/// A line's kind: 0 primary (part of the client's first document), 1 repeat
/// (its product line bought on an earlier day), 2 new direction.
macro_rules! sale_kind {
    () => {
        "CASE WHEN t.document_id = h.first_document_id THEN 0 WHEN l.first_day < t.business_date THEN 1 ELSE 2 END"
    };
}

/// Inserts the `daily_sales` of the purchase lines that `$filter` (a
/// condition on `t`) picks.
macro_rules! classified_sales {
    ($filter:literal) => {
        concat!(
            "INSERT INTO daily_sales (day, branch_id, employee_id, kind, documents, amount_minor)
             SELECT t.business_date, t.branch_id, t.employee_id, ",
            sale_kind!(),
            ", count(DISTINCT t.document_id), sum(t.amount_minor) FROM ",
            classified_lines!(),
            " WHERE t.amount_minor > 0 AND ",
            $filter,
            " GROUP BY 1, 2, 3, 4"
        )
    };
}

/// Upserts the purchase history (sorted purchase days, first document: the
/// earliest day, then the smallest document id) of the clients `$filter`
/// (a condition on `t`) picks.
macro_rules! client_histories {
    ($filter:literal) => {
        concat!(
            "INSERT INTO client_purchase_history (client_id, purchase_days, first_document_id)
             SELECT client_id, array_agg(DISTINCT business_date ORDER BY business_date),
                    (array_agg(document_id ORDER BY business_date, document_id))[1]
             FROM transaction_lines t WHERE amount_minor > 0 AND ",
            $filter,
            " GROUP BY client_id
             ON CONFLICT (client_id) DO UPDATE
                 SET purchase_days = EXCLUDED.purchase_days, first_document_id = EXCLUDED.first_document_id"
        )
    };
}

/// Upserts the first day per product line of the clients `$filter` picks.
macro_rules! client_line_firsts {
    ($filter:literal) => {
        concat!(
            "INSERT INTO client_line_firsts (client_id, product_line_id, first_day)
             SELECT t.client_id, p.product_line_id, min(t.business_date)
             FROM transaction_lines t JOIN products p ON p.id = t.product_id
             WHERE t.amount_minor > 0 AND ",
            $filter,
            " GROUP BY 1, 2
             ON CONFLICT (client_id, product_line_id) DO UPDATE SET first_day = EXCLUDED.first_day"
        )
    };
}

/// Inserts the monthly activity (migration 20261127000009, which describes
/// the packed records) of the clients `$filter` (a condition on `t`) picks.
macro_rules! monthly_activity {
    ($filter:literal) => {
        concat!(
            "INSERT INTO client_monthly_activity (client_id, months, products)
             SELECT m.client_id, m.months, coalesce(p.products, ''::bytea)
             FROM (
                 SELECT client_id,
                        string_agg(int4send(month - DATE '1970-01-01') || int8send(revenue) || int8send(documents)
                                       || int4send(coalesce(first_purchase - DATE '1970-01-01', '-2147483648'::int4))
                                       || int4send(coalesce(last_purchase - DATE '1970-01-01', '-2147483648'::int4)),
                                   ''::bytea ORDER BY month) AS months
                 FROM (
                     SELECT client_id, ",
            month_activity_columns!(),
            " FROM transaction_lines t WHERE ",
            $filter,
            " GROUP BY 1, 2
                 ) monthly
                 GROUP BY client_id
             ) m
             LEFT JOIN (
                 SELECT client_id,
                        string_agg(int4send(month - DATE '1970-01-01') || int2send(octet_length(product_id)::int2)
                                       || convert_to(product_id, 'UTF8'),
                                   ''::bytea ORDER BY month, product_id) AS products
                 FROM (
                     SELECT DISTINCT client_id, date_trunc('month', business_date)::date AS month, product_id
                     FROM transaction_lines t WHERE amount_minor > 0 AND ",
            $filter,
            "    ) bought
                 GROUP BY client_id
             ) p USING (client_id)"
        )
    };
}

/// The `daily_sales` of `[$1, $2]` within the filters ($3 branch list or
/// NULL, $4 branch or '', $5 seller or '') summed per period ($6: the
/// periods' first days, in order), with no documents listed.
pub(super) const PERIOD_SALES: &str =
    "SELECT ($6::date[])[width_bucket(day, $6::date[])] AS day, branch_id, employee_id,
            kind::int4 AS kind, sum(documents)::int8 AS documents, sum(amount_minor)::int8 AS amount,
            '{}'::text[] AS document_ids
     FROM daily_sales
     WHERE day BETWEEN $1 AND $2 AND ($3::text[] IS NULL OR branch_id = ANY($3)) AND ($4 = '' OR branch_id = $4)
       AND ($5 = '' OR employee_id = $5)
     GROUP BY 1, 2, 3, 4";

/// The same per day, computed from the lines, each row naming the documents it counts.
pub(super) const DAILY_SALES_WITH_DOCUMENTS: &str = concat!(
    "SELECT t.business_date AS day, t.branch_id, t.employee_id, ",
    sale_kind!(),
    " AS kind, count(DISTINCT t.document_id) AS documents, sum(t.amount_minor)::bigint AS amount,
       array_agg(DISTINCT t.document_id ORDER BY t.document_id) AS document_ids FROM ",
    classified_lines!(),
    " WHERE t.business_date BETWEEN $1 AND $2 AND t.amount_minor > 0
        AND ($3::text[] IS NULL OR t.branch_id = ANY($3)) AND ($4 = '' OR t.branch_id = $4)
        AND ($5 = '' OR t.employee_id = $5)
      GROUP BY 1, 2, 3, 4"
);

/// Records the clients of `lines` (inserted in the same transaction,
/// re-sent ones included) and the days of their purchases for the next
/// refresh. A client with returns only is marked too: its monthly revenue
/// changes.
pub async fn mark_imported(conn: &mut PgConnection, lines: &[NewTransactionLine]) -> sqlx::Result<()> {
    let clients: BTreeSet<&str> = lines.iter().map(|l| l.client_id.as_str()).collect();
    let days: BTreeSet<NaiveDate> = lines.iter().filter(|l| l.amount_minor > 0).map(|l| l.business_date).collect();
    if clients.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO import_marks (clients, days) VALUES ($1, $2)")
        .bind(clients.into_iter().collect::<Vec<_>>())
        .bind(days.into_iter().collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What a refresh recomputed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    pub clients: u64,
    pub days: u64,
}

/// Import marks, clients (reached with the last mark taken) and days one
/// refresh transaction takes on: short transactions let a report and the
/// background refresh take turns.
const MARKS_PER_REFRESH: i64 = 20;
const CLIENTS_PER_REFRESH: usize = 10_000;
const DAYS_PER_REFRESH: usize = 31;

/// Takes the refresh lock for the transaction: refreshes run one at a time,
/// so each sees the previous one's results and recomputes from newer lines.
async fn serialize(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(REFRESH_LOCK).execute(&mut *conn).await?;
    Ok(())
}

/// Recomputes the clients of every committed import mark, then the stale
/// days within `[from, to]` (days outside stay stale for a later refresh).
/// Past `deadline` (a caller's), Postgres cancels the statement running and
/// the refresh fails with DEADLINE_EXCEEDED; what it committed stays.
pub async fn refresh(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    deadline: Option<Instant>,
) -> sqlx::Result<Refreshed> {
    let begin = || db::write_within(pool, deadline.map(|d| d.saturating_duration_since(Instant::now())));
    let mut done = Refreshed::default();
    loop {
        let mut tx = begin().await?;
        serialize(&mut tx).await?;
        let marks = sqlx::query("SELECT id, clients, days, purchases_changed FROM import_marks ORDER BY id LIMIT $1")
            .bind(MARKS_PER_REFRESH)
            .fetch_all(&mut *tx)
            .await?;
        if marks.is_empty() {
            break;
        }
        let (mut ids, mut buyers, mut clients, mut days) =
            (Vec::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for mark in &marks {
            if clients.len() >= CLIENTS_PER_REFRESH {
                break;
            }
            ids.push(mark.try_get::<i64, _>("id")?);
            let marked = mark.try_get::<Vec<String>, _>("clients")?;
            if mark.try_get("purchases_changed")? {
                buyers.extend(marked.iter().cloned());
            }
            clients.extend(marked);
            days.extend(mark.try_get::<Vec<NaiveDate>, _>("days")?);
        }
        let (buyers, clients): (Vec<String>, Vec<String>) =
            (buyers.into_iter().collect(), clients.into_iter().collect());
        days.extend(refresh_clients(&mut tx, &buyers).await?);
        lifecycle::recount(&mut tx, &clients).await?;
        sqlx::query("INSERT INTO stale_sales_days (day) SELECT unnest($1::date[]) ON CONFLICT DO NOTHING")
            .bind(days.into_iter().collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM import_marks WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        tx.commit().await?;
        done.clients += clients.len() as u64;
    }
    loop {
        let mut tx = begin().await?;
        serialize(&mut tx).await?;
        let days: Vec<NaiveDate> =
            sqlx::query_scalar("SELECT day FROM stale_sales_days WHERE day BETWEEN $1 AND $2 ORDER BY day LIMIT $3")
                .bind(from)
                .bind(to)
                .bind(DAYS_PER_REFRESH as i64)
                .fetch_all(&mut *tx)
                .await?;
        if days.is_empty() {
            break;
        }
        sqlx::query("DELETE FROM daily_sales WHERE day = ANY($1)").bind(&days).execute(&mut *tx).await?;
        sqlx::query(classified_sales!("t.business_date = ANY($1)")).bind(&days).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM stale_sales_days WHERE day = ANY($1)").bind(&days).execute(&mut *tx).await?;
        tx.commit().await?;
        done.days += days.len() as u64;
    }
    Ok(done)
}

/// Recomputes the rollups of `clients` from their lines; returns the days
/// whose sales their changed firsts reclassify.
async fn refresh_clients(conn: &mut PgConnection, clients: &[String]) -> sqlx::Result<BTreeSet<NaiveDate>> {
    let before = Firsts::read(conn, clients).await?;
    // Deleted first: a product moved to another line can leave a pair no line has any more.
    sqlx::query("DELETE FROM client_line_firsts WHERE client_id = ANY($1)").bind(clients).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM client_monthly_activity WHERE client_id = ANY($1)")
        .bind(clients)
        .execute(&mut *conn)
        .await?;
    sqlx::query(monthly_activity!("t.client_id = ANY($1)")).bind(clients).execute(&mut *conn).await?;
    let mut reclassified = BTreeSet::new();
    let histories = concat!(client_histories!("t.client_id = ANY($1)"), " RETURNING client_id, first_document_id");
    for row in sqlx::query(histories).bind(clients).fetch_all(&mut *conn).await? {
        let client: String = row.try_get("client_id")?;
        let document: String = row.try_get("first_document_id")?;
        if let Some((day, old)) = before.documents.get(&client)
            && *old != document
        {
            reclassified.insert(*day);
        }
    }
    let line_firsts =
        concat!(client_line_firsts!("t.client_id = ANY($1)"), " RETURNING client_id, product_line_id, first_day");
    for row in sqlx::query(line_firsts).bind(clients).fetch_all(&mut *conn).await? {
        let key: (String, String) = (row.try_get("client_id")?, row.try_get("product_line_id")?);
        let first_day: NaiveDate = row.try_get("first_day")?;
        if let Some(old) = before.lines.get(&key)
            && *old != first_day
        {
            reclassified.insert(*old);
        }
    }
    Ok(reclassified)
}

/// Records, for the next refresh, that the branch, owner or registration
/// date of `clients` may have changed: their lifecycle counts are redone.
pub async fn mark_master_data(conn: &mut PgConnection, clients: &[String]) -> sqlx::Result<()> {
    if clients.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO import_marks (clients, days, purchases_changed) VALUES ($1, '{}', false)")
        .bind(clients)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Builds the lifecycle counts for a lifecycle period of `months` unless
/// they are built for it already; whether it built them.
pub async fn count_lifecycles(pool: &PgPool, months: u32) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    serialize(&mut tx).await?;
    if lifecycle::built_for(&mut tx).await? == Some(months) {
        return Ok(false);
    }
    lifecycle::rebuild(&mut tx, months).await?;
    tx.commit().await?;
    Ok(true)
}

/// Records, for the next refresh, the buyers of `products` (which moved to
/// another product line) and the days of their purchases of them: those
/// lines now count against another line's first day. Buyers go in marks of
/// at most [`CLIENTS_PER_REFRESH`], each naming all the days.
pub async fn mark_moved_products(conn: &mut PgConnection, products: &[String]) -> sqlx::Result<()> {
    sqlx::query(
        "WITH bought AS (
             SELECT client_id, business_date FROM transaction_lines WHERE product_id = ANY($1) AND amount_minor > 0
         ),
         buyers AS (
             SELECT client_id, (row_number() OVER (ORDER BY client_id) - 1) / $2 AS part
             FROM (SELECT DISTINCT client_id FROM bought) b
         )
         INSERT INTO import_marks (clients, days)
         SELECT array_agg(client_id ORDER BY client_id),
                (SELECT array_agg(DISTINCT business_date ORDER BY business_date) FROM bought)
         FROM buyers GROUP BY part",
    )
    .bind(products)
    .bind(CLIENTS_PER_REFRESH as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rebuilds every rollup from the stored lines, after a bulk load that
/// bypassed ingestion, with lifecycle counts for a period of `lifecycle_months`.
pub async fn rebuild(conn: &mut PgConnection, lifecycle_months: u32) -> sqlx::Result<()> {
    serialize(conn).await?;
    sqlx::query(
        "LOCK TABLE client_purchase_history, client_line_firsts, client_monthly_activity, daily_sales, import_marks,
                    stale_sales_days
         IN EXCLUSIVE MODE",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "TRUNCATE client_purchase_history, client_line_firsts, client_monthly_activity, daily_sales, import_marks,
                  stale_sales_days",
    )
    .execute(&mut *conn)
    .await?;
    for statement in
        [client_histories!("true"), client_line_firsts!("true"), classified_sales!("true"), monthly_activity!("true")]
    {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    lifecycle::rebuild(conn, lifecycle_months).await
}

/// The firsts of some clients before a refresh.
struct Firsts {
    /// Client -> (first purchase day, first document).
    documents: HashMap<String, (NaiveDate, String)>,
    /// (client, product line) -> first day.
    lines: HashMap<(String, String), NaiveDate>,
}

impl Firsts {
    async fn read(conn: &mut PgConnection, clients: &[String]) -> sqlx::Result<Self> {
        let mut documents = HashMap::new();
        for row in sqlx::query(
            "SELECT client_id, purchase_days[1] AS first_day, first_document_id
             FROM client_purchase_history WHERE client_id = ANY($1)",
        )
        .bind(clients)
        .fetch_all(&mut *conn)
        .await?
        {
            documents.insert(row.try_get("client_id")?, (row.try_get("first_day")?, row.try_get("first_document_id")?));
        }
        let mut lines = HashMap::new();
        for row in sqlx::query(
            "SELECT client_id, product_line_id, first_day FROM client_line_firsts WHERE client_id = ANY($1)",
        )
        .bind(clients)
        .fetch_all(&mut *conn)
        .await?
        {
            lines.insert((row.try_get("client_id")?, row.try_get("product_line_id")?), row.try_get("first_day")?);
        }
        Ok(Firsts { documents, lines })
    }
}
