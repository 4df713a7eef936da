//! Purchase rollups kept at import (migration 20261126000006): each client's
//! purchase days and first document, its first day per product line, and
//! sales per day, branch, seller and kind. `GetClientFacts` reads these
//! instead of aggregating every transaction line on each call.
//!
//! A batch merges its purchases into the per-client rollups (a union of
//! days and minima: re-sent lines change nothing) and marks stale every day
//! whose sales it may reclassify: its own days, the old first-document day
//! of a client whose first document moved, the old first day of a product
//! line a client now bought earlier. Client advisory locks make the "old"
//! values exact under concurrent batches. A read first recomputes the stale
//! days of its range ([`refresh_stale_days`]). Marking a day takes a row
//! lock that a refresh holds until it commits, so a batch committing lines
//! of a day being refreshed marks it again afterwards: no line is missed.
use super::NewTransactionLine;
use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{BTreeSet, HashMap};

/// Advisory lock class (two-key form) of the clients' rollups; clients
/// share a lock per bucket so that a batch of 10 000 clients holds at most
/// this many locks (each takes a slot of Postgres's shared lock table).
const CLIENT_LOCK: i32 = 0x726f_6c6c;
const CLIENT_LOCK_BUCKETS: i32 = 64;

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

/// Recomputes `daily_sales` of the lines that `{filter}` (a condition on
/// `t`) picks.
const CLASSIFIED_SALES: &str = concat!(
    "INSERT INTO daily_sales (day, branch_id, employee_id, kind, documents, amount_minor)
     SELECT t.business_date, t.branch_id, t.employee_id, ",
    sale_kind!(),
    ", count(DISTINCT t.document_id), sum(t.amount_minor) FROM ",
    classified_lines!(),
    " WHERE t.amount_minor > 0 AND {filter} GROUP BY 1, 2, 3, 4"
);

/// The `daily_sales` rows of `[$1, $2]` within the filters ($3 branch list
/// or NULL, $4 branch or '', $5 seller or ''), with no documents listed.
pub(super) const DAILY_SALES: &str = "SELECT day, branch_id, employee_id, kind::int4 AS kind, documents,
            amount_minor AS amount, '{}'::text[] AS document_ids
     FROM daily_sales
     WHERE day BETWEEN $1 AND $2 AND ($3::text[] IS NULL OR branch_id = ANY($3)) AND ($4 = '' OR branch_id = $4)
       AND ($5 = '' OR employee_id = $5)";

/// The same rows computed from the lines, each naming the documents it counts.
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

/// Merges the purchases among `lines` (just inserted in the same
/// transaction; re-sent ones included) into the per-client rollups and marks
/// the days they may reclassify stale.
pub async fn merge_imported(conn: &mut PgConnection, lines: &[NewTransactionLine]) -> sqlx::Result<()> {
    let purchases: Vec<&NewTransactionLine> = lines.iter().filter(|l| l.amount_minor > 0).collect();
    if purchases.is_empty() {
        return Ok(());
    }
    let clients: Vec<String> =
        purchases.iter().map(|l| l.client_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, k)
         FROM (SELECT DISTINCT hashtext(id) & $3 AS k FROM unnest($2::text[]) id ORDER BY k) s",
    )
    .bind(CLIENT_LOCK)
    .bind(&clients)
    .bind(CLIENT_LOCK_BUCKETS - 1)
    .execute(&mut *conn)
    .await?;
    let before = Firsts::read(conn, &clients).await?;
    let column = |f: fn(&NewTransactionLine) -> &String| purchases.iter().map(|l| f(l).clone()).collect::<Vec<_>>();
    let (client_ids, documents, products) =
        (column(|l| &l.client_id), column(|l| &l.document_id), column(|l| &l.product_id));
    let days: Vec<NaiveDate> = purchases.iter().map(|l| l.business_date).collect();
    let mut stale: BTreeSet<NaiveDate> = days.iter().copied().collect();
    let histories = sqlx::query(
        "INSERT INTO client_purchase_history AS h (client_id, purchase_days, first_document_id)
         SELECT client_id, array_agg(DISTINCT day ORDER BY day), (array_agg(document_id ORDER BY day, document_id))[1]
         FROM unnest($1::text[], $2::date[], $3::text[]) AS t(client_id, day, document_id) GROUP BY client_id
         ON CONFLICT (client_id) DO UPDATE SET
             purchase_days = ARRAY(SELECT DISTINCT d FROM unnest(h.purchase_days || EXCLUDED.purchase_days) d ORDER BY d),
             first_document_id = CASE
                 WHEN (EXCLUDED.purchase_days[1], EXCLUDED.first_document_id) < (h.purchase_days[1], h.first_document_id)
                 THEN EXCLUDED.first_document_id ELSE h.first_document_id END
         RETURNING client_id, first_document_id",
    )
    .bind(&client_ids)
    .bind(&days)
    .bind(&documents)
    .fetch_all(&mut *conn)
    .await?;
    for row in histories {
        let client: String = row.try_get("client_id")?;
        let document: String = row.try_get("first_document_id")?;
        if let Some((day, old)) = before.documents.get(&client)
            && *old != document
        {
            stale.insert(*day);
        }
    }
    let line_firsts = sqlx::query(
        "INSERT INTO client_line_firsts AS l (client_id, product_line_id, first_day)
         SELECT t.client_id, p.product_line_id, min(t.day)
         FROM unnest($1::text[], $2::date[], $3::text[]) AS t(client_id, day, product_id)
         JOIN products p ON p.id = t.product_id GROUP BY 1, 2
         ON CONFLICT (client_id, product_line_id) DO UPDATE SET first_day = LEAST(l.first_day, EXCLUDED.first_day)
         RETURNING client_id, product_line_id, first_day",
    )
    .bind(&client_ids)
    .bind(&days)
    .bind(&products)
    .fetch_all(&mut *conn)
    .await?;
    for row in line_firsts {
        let key: (String, String) = (row.try_get("client_id")?, row.try_get("product_line_id")?);
        let first_day: NaiveDate = row.try_get("first_day")?;
        if let Some(old) = before.lines.get(&key)
            && *old != first_day
        {
            stale.insert(*old);
        }
    }
    sqlx::query("INSERT INTO stale_sales_days (day) SELECT unnest($1::date[]) ON CONFLICT DO NOTHING")
        .bind(stale.into_iter().collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Recomputes the stale days within `[from, to]`; returns how many.
pub async fn refresh_stale_days(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let days: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT day FROM stale_sales_days WHERE day BETWEEN $1 AND $2 ORDER BY day FOR UPDATE")
            .bind(from)
            .bind(to)
            .fetch_all(&mut *tx)
            .await?;
    if days.is_empty() {
        return Ok(0);
    }
    sqlx::query("DELETE FROM daily_sales WHERE day = ANY($1)").bind(&days).execute(&mut *tx).await?;
    let recompute = CLASSIFIED_SALES.replace("{filter}", "t.business_date = ANY($1)");
    sqlx::query(sqlx::AssertSqlSafe(recompute)).bind(&days).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM stale_sales_days WHERE day = ANY($1)").bind(&days).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(days.len() as u64)
}

/// Rebuilds every rollup from the stored lines: after a bulk load that
/// bypassed ingestion, or when a product moved to another product line.
pub async fn rebuild(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query(
        "LOCK TABLE client_purchase_history, client_line_firsts, daily_sales, stale_sales_days IN EXCLUSIVE MODE",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("TRUNCATE client_purchase_history, client_line_firsts, daily_sales, stale_sales_days")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO client_purchase_history (client_id, purchase_days, first_document_id)
         SELECT client_id, array_agg(DISTINCT business_date ORDER BY business_date),
                (array_agg(document_id ORDER BY business_date, document_id))[1]
         FROM transaction_lines WHERE amount_minor > 0 GROUP BY client_id",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO client_line_firsts (client_id, product_line_id, first_day)
         SELECT t.client_id, p.product_line_id, min(t.business_date)
         FROM transaction_lines t JOIN products p ON p.id = t.product_id
         WHERE t.amount_minor > 0 GROUP BY 1, 2",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(CLASSIFIED_SALES.replace("{filter}", "true"))).execute(&mut *conn).await?;
    Ok(())
}

/// The firsts of some clients before a merge.
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
