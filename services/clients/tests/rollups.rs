//! The purchase rollups ingestion keeps agree with a from-scratch
//! computation over the stored lines, whatever the order and concurrency of
//! the batches that brought them, and after a product moves to another line;
//! the lifecycle counts kept alongside agree with counts built from scratch
//! and give the facts of counting clients one by one.
use branchscore_clients::store::MonthlyActivity;
use branchscore_platform::Role;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{Granularity, Money};
use branchscore_scoring::window::AnalysisWindow;
use branchscore_testkit::authorized;
use chrono::NaiveDate;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

mod common;
use common::*;

/// Sales per day, branch, seller and kind computed from the lines alone.
const SALES_FROM_LINES: &str = "WITH sold AS (
         SELECT t.*, p.product_line_id FROM transaction_lines t JOIN products p ON p.id = t.product_id
         WHERE t.amount_minor > 0
     ),
     first_document AS (
         SELECT DISTINCT ON (client_id) client_id, document_id FROM sold ORDER BY client_id, business_date, document_id
     ),
     first_in_line AS (SELECT client_id, product_line_id, min(business_date) AS first_day FROM sold GROUP BY 1, 2)
     SELECT s.business_date, s.branch_id, s.employee_id,
            (CASE WHEN s.document_id = f.document_id THEN 0 WHEN l.first_day < s.business_date THEN 1 ELSE 2 END)::int4,
            count(DISTINCT s.document_id), sum(s.amount_minor)::bigint
     FROM sold s
     JOIN first_document f ON f.client_id = s.client_id
     JOIN first_in_line l ON l.client_id = s.client_id AND l.product_line_id = s.product_line_id
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4";

type SalesRow = (NaiveDate, String, String, i32, i64, i64);

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("day")
}

/// Each client month's activity and each client's products bought in the window.
type ActivityRead = (BTreeMap<(String, NaiveDate), MonthlyActivity>, BTreeMap<String, BTreeSet<String>>);

/// What the recompute reads as of `as_of` (whatever a refresh has yet to do).
async fn activity_as_read(pool: &PgPool, as_of: NaiveDate) -> ActivityRead {
    let window = AnalysisWindow::as_of(as_of, 12).expect("window");
    let (mut months, mut products) = (BTreeMap::new(), BTreeMap::<String, BTreeSet<String>>::new());
    branchscore_clients::store::client_activity(pool, &window, |activity| {
        for month in activity.months {
            let previous = months.insert((activity.client_id.to_owned(), month.month), month);
            assert!(previous.is_none(), "a client month read twice: {previous:?}");
        }
        let bought = activity.window_products.iter().map(|product| product.to_string());
        products.entry(activity.client_id.to_owned()).or_default().extend(bought);
    })
    .await
    .expect("activity read");
    products.retain(|_, bought| !bought.is_empty());
    (months, products)
}

type MonthRow = (String, NaiveDate, i64, i64, Option<NaiveDate>, Option<NaiveDate>);

/// The same, aggregated from the lines.
async fn activity_from_lines(pool: &PgPool, as_of: NaiveDate) -> ActivityRead {
    let window = AnalysisWindow::as_of(as_of, 12).expect("window");
    let rows: Vec<MonthRow> = sqlx::query_as(
        "SELECT client_id, date_trunc('month', business_date)::date, sum(amount_minor)::bigint,
                count(DISTINCT document_id) FILTER (WHERE amount_minor > 0),
                min(business_date) FILTER (WHERE amount_minor > 0), max(business_date) FILTER (WHERE amount_minor > 0)
         FROM transaction_lines WHERE business_date <= $1 GROUP BY 1, 2",
    )
    .bind(as_of)
    .fetch_all(pool)
    .await
    .expect("months from lines");
    let months = rows
        .into_iter()
        .map(|(client, month, revenue, documents, first_purchase, last_purchase)| {
            ((client, month), MonthlyActivity { month, revenue, documents, first_purchase, last_purchase })
        })
        .collect();
    let bought: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT client_id, product_id FROM transaction_lines
         WHERE business_date BETWEEN $1 AND $2 AND amount_minor > 0",
    )
    .bind(window.start())
    .bind(window.end())
    .fetch_all(pool)
    .await
    .expect("products from lines");
    let mut products = BTreeMap::<String, BTreeSet<String>>::new();
    for (client, product) in bought {
        products.entry(client).or_default().insert(product);
    }
    (months, products)
}

/// Asserts that the recompute's read equals the lines' aggregation, as of
/// a day inside a month and a day after the last line.
async fn assert_activity_matches_lines(pool: &PgPool, when: &str) {
    for as_of in [day(2026, 3, 17), day(2026, 11, 25)] {
        let expected = activity_from_lines(pool, as_of).await;
        assert!(expected.0.len() > 50 && expected.1.len() > 5, "{when}: too few client months ({})", expected.0.len());
        assert!(expected == activity_as_read(pool, as_of).await, "{when}: the activity as of {as_of}");
    }
}

/// Asserts that every rollup, once the stale days are refreshed as a read
/// does, equals its computation from the lines, and that the recompute's
/// read does before and after the refresh.
async fn assert_rollups_match_lines(pool: &PgPool, when: &str) {
    let (first, last) =
        (NaiveDate::from_ymd_opt(2000, 1, 1).expect("day"), NaiveDate::from_ymd_opt(2100, 1, 1).expect("day"));
    assert_activity_matches_lines(pool, &format!("{when}, before the refresh")).await;
    branchscore_clients::store::rollups::refresh(pool, first, last, None).await.expect("refresh");
    assert_activity_matches_lines(pool, &format!("{when}, after the refresh")).await;
    let stale: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM stale_sales_days) + (SELECT count(*) FROM import_marks)")
            .fetch_one(pool)
            .await
            .expect("stale");
    assert_eq!(stale, 0, "{when}: days left stale");
    let expected: Vec<SalesRow> = sqlx::query_as(SALES_FROM_LINES).fetch_all(pool).await.expect("from lines");
    let kept: Vec<SalesRow> = sqlx::query_as(
        "SELECT day, branch_id, employee_id, kind::int4, documents, amount_minor FROM daily_sales ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(pool)
    .await
    .expect("kept");
    assert!(expected.len() > 50, "{when}: too few rows to mean anything ({})", expected.len());
    assert_eq!(kept, expected, "{when}: daily_sales");
    let days = "SELECT client_id, array_agg(DISTINCT business_date ORDER BY business_date) FROM transaction_lines
                WHERE amount_minor > 0 GROUP BY 1 ORDER BY 1";
    let expected: Vec<(String, Vec<NaiveDate>)> = sqlx::query_as(days).fetch_all(pool).await.expect("days");
    let kept: Vec<(String, Vec<NaiveDate>)> =
        sqlx::query_as("SELECT client_id, purchase_days FROM client_purchase_history ORDER BY 1")
            .fetch_all(pool)
            .await
            .expect("kept days");
    assert_eq!(kept, expected, "{when}: client_purchase_history");
    let firsts = "SELECT t.client_id, p.product_line_id, min(t.business_date) FROM transaction_lines t
                  JOIN products p ON p.id = t.product_id WHERE t.amount_minor > 0 GROUP BY 1, 2 ORDER BY 1, 2";
    let expected: Vec<(String, String, NaiveDate)> = sqlx::query_as(firsts).fetch_all(pool).await.expect("firsts");
    let kept: Vec<(String, String, NaiveDate)> =
        sqlx::query_as("SELECT client_id, product_line_id, first_day FROM client_line_firsts ORDER BY 1, 2")
            .fetch_all(pool)
            .await
            .expect("kept firsts");
    assert_eq!(kept, expected, "{when}: client_line_firsts");
    assert_lifecycle_counts_rebuild_alike(pool, when).await;
}

type CountsRow = (i16, NaiveDate, String, String, [i64; 8]);

/// The non-zero rows of a lifecycle counts table.
async fn counts_rows(pool: &PgPool, table: &str, day: &str) -> Vec<CountsRow> {
    let rows: Vec<(i16, NaiveDate, String, String, Vec<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT frame, {day}, branch_id, employee_id,
                ARRAY[acquired, lost, restored, buying, repeat_buyers, clients, initial_stage, potential]
         FROM {table} ORDER BY 1, 2, 3, 4"
    )))
    .fetch_all(pool)
    .await
    .expect("counts");
    rows.into_iter()
        .filter(|(_, _, _, _, counts)| counts.iter().any(|c| *c != 0))
        .map(|(frame, day, branch, employee, counts)| {
            (frame, day, branch, employee, counts.try_into().expect("eight counts"))
        })
        .collect()
}

/// Asserts that the lifecycle counts kept so far equal those built from
/// scratch (for another lifecycle period, then back to 3 months).
async fn assert_lifecycle_counts_rebuild_alike(pool: &PgPool, when: &str) {
    use branchscore_clients::store::rollups::count_lifecycles;
    let kept = (
        counts_rows(pool, "lifecycle_deltas", "day").await,
        counts_rows(pool, "lifecycle_totals", "period_start").await,
    );
    assert!(kept.0.len() > 50, "{when}: too few lifecycle rows to mean anything ({})", kept.0.len());
    count_lifecycles(pool, 4).await.expect("built for 4 months");
    assert_ne!(counts_rows(pool, "lifecycle_deltas", "day").await, kept.0, "{when}: another period, other counts");
    count_lifecycles(pool, 3).await.expect("built for 3 months");
    let rebuilt = (
        counts_rows(pool, "lifecycle_deltas", "day").await,
        counts_rows(pool, "lifecycle_totals", "period_start").await,
    );
    assert_eq!(kept.0, rebuilt.0, "{when}: lifecycle_deltas");
    assert_eq!(kept.1, rebuilt.1, "{when}: lifecycle_totals");
}

/// Documents of one to three lines over a few dozen days (so that clients
/// have several documents on one day), some with a return line.
fn random_lines(rng: &mut ChaCha8Rng) -> Vec<TransactionLine> {
    let products = ["P-LOAN", "P-LEASE", "P-CARD"];
    let days: Vec<NaiveDate> = (0..40)
        .map(|_| NaiveDate::from_ymd_opt(2025, 1, 1).expect("day") + chrono::Days::new(rng.random_range(0..640)))
        .collect();
    let mut lines = Vec::new();
    for document in 0..220 {
        let n = rng.random_range(1..=12);
        let (client, branch, employee) =
            if n <= 6 { (format!("C-{n:02}"), "WAW", "E-WAW") } else { (format!("C-{n:02}"), "KRK", "E-KRK") };
        let day = days[rng.random_range(0..days.len())];
        for l in 0..rng.random_range(1..=3) {
            let returned = rng.random_bool(0.1);
            let amount = rng.random_range(1_000..100_000) * if returned { -1 } else { 1 };
            let mut line = line(&format!("L-{document}-{l}"), &client, branch, employee, amount);
            line.document_id = format!("D-{document:03}");
            line.product_id = products[rng.random_range(0..products.len())].into();
            line.amount = Some(Money { minor_units: amount, currency: "PLN".into() });
            line.business_date = Some(day.into());
            line.kind = if returned { LineKind::Return } else { LineKind::Sale } as i32;
            lines.push(line);
        }
    }
    lines.shuffle(rng);
    lines
}

#[tokio::test]
async fn rollups_agree_with_the_lines_after_shuffled_concurrent_imports() {
    let mut h = start().await;
    seed(&mut h).await;
    let admin = h.admin.clone();
    let products = BatchUpsertProductsRequest {
        product_lines: vec![
            ProductLine { id: "PL-LEASING".into(), name: "Leasing".into() },
            ProductLine { id: "PL-CARDS".into(), name: "Cards".into() },
        ],
        products: vec![
            Product { id: "P-LEASE".into(), product_line_id: "PL-LEASING".into(), name: "Lease".into() },
            Product { id: "P-CARD".into(), product_line_id: "PL-CARDS".into(), name: "Card".into() },
        ],
    };
    h.client.batch_upsert_products(authorized(&admin, products.clone())).await.expect("products");
    let clients = (1..=12)
        .map(|n| {
            if n <= 6 {
                client(&format!("C-{n:02}"), "WAW", "E-WAW")
            } else {
                client(&format!("C-{n:02}"), "KRK", "E-KRK")
            }
        })
        .collect();
    h.client.batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients })).await.expect("clients");
    let pool = PgPool::connect(&h.env.database.url).await.expect("pool");
    // Built now, the counts are then kept by every refresh.
    branchscore_clients::store::rollups::count_lifecycles(&pool, 3).await.expect("lifecycle counts");

    let lines = random_lines(&mut ChaCha8Rng::seed_from_u64(20261126));
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    // Four streams at once, each of several small batches, lines in random
    // date order: later batches move first documents and first days back.
    let streams = lines.chunks(lines.len().div_ceil(4)).map(|part| {
        let mut client = h.client.clone();
        let batches: Vec<ImportTransactionsRequest> =
            part.chunks(7).map(|batch| ImportTransactionsRequest { lines: batch.to_vec() }).collect();
        let request = authorized(&erp, tokio_stream::iter(batches));
        async move { client.import_transactions(request).await.map(|reply| reply.into_inner()) }
    });
    let replies = futures::future::try_join_all(streams).await.expect("imports");
    assert_eq!(replies.iter().map(|r| r.rejected).sum::<i64>(), 0, "{replies:?}");
    assert_eq!(replies.iter().map(|r| r.accepted).sum::<i64>(), lines.len() as i64);
    assert_rollups_match_lines(&pool, "after the imports").await;

    // Purchases dated before everything else: the clients' old first
    // documents are no longer primary and their credit lines bought on the
    // old first day become repeats, on days this batch does not touch.
    let earliest: Vec<TransactionLine> = ["C-01", "C-07"]
        .iter()
        .map(|client| {
            let (branch, employee) = if *client == "C-01" { ("WAW", "E-WAW") } else { ("KRK", "E-KRK") };
            TransactionLine {
                business_date: date(2024, 12, 2),
                ..line(&format!("EARLY-{client}"), client, branch, employee, 900)
            }
        })
        .collect();
    let reply = h
        .client
        .import_transactions(authorized(&erp, tokio_stream::iter([ImportTransactionsRequest { lines: earliest }])))
        .await
        .expect("earliest")
        .into_inner();
    assert_eq!(reply.accepted, 2);
    assert_rollups_match_lines(&pool, "after purchases dated before all others").await;

    // A re-sent batch changes nothing.
    let again = ImportTransactionsRequest { lines: lines[..40].to_vec() };
    h.client.import_transactions(authorized(&erp, tokio_stream::iter([again]))).await.expect("re-sent");
    assert_rollups_match_lines(&pool, "after a re-sent batch").await;

    // Imports no refresh has reached (the refresh lock held meanwhile): the
    // recompute reads their clients' months from the lines, a return-only
    // batch included, and the as-of month always.
    let mut held = pool.acquire().await.expect("connection");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(branchscore_clients::store::rollups::REFRESH_LOCK)
        .execute(&mut *held)
        .await
        .expect("refresh lock");
    let unrefreshed = [
        ("LATE-1", "C-02", "WAW", "E-WAW", 4_100, day(2026, 2, 11)),
        ("LATE-2", "C-09", "KRK", "E-KRK", -2_500, day(2025, 7, 30)),
        ("LATE-3", "C-11", "KRK", "E-KRK", 7_700, day(2026, 3, 16)),
    ]
    .map(|(id, client, branch, employee, amount, business_date)| {
        let kind = if amount < 0 { LineKind::Return } else { LineKind::Sale };
        let line = TransactionLine {
            business_date: Some(business_date.into()),
            kind: kind as i32,
            ..line(id, client, branch, employee, amount)
        };
        ImportTransactionsRequest { lines: vec![line] }
    });
    h.client.import_transactions(authorized(&erp, tokio_stream::iter(unrefreshed))).await.expect("unrefreshed");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM import_marks").fetch_one(&pool).await.expect("marks");
    assert_eq!(pending, 3, "each batch left its mark");
    assert_activity_matches_lines(&pool, "with imports no refresh has reached").await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(branchscore_clients::store::rollups::REFRESH_LOCK)
        .execute(&mut *held)
        .await
        .expect("refresh lock released");
    drop(held);
    assert_rollups_match_lines(&pool, "after the imports no refresh had reached").await;

    // Cards become leasing: what was a new direction may now be a repeat.
    let mut moved = products;
    moved.products[1].product_line_id = "PL-LEASING".into();
    h.client.batch_upsert_products(authorized(&admin, moved)).await.expect("moved");
    assert_rollups_match_lines(&pool, "after P-CARD moved to PL-LEASING").await;

    // A client without an owner, one registered earlier, one moved to the
    // other branch: their lifecycle counts move with them.
    let mut moved_clients =
        vec![client("C-03", "WAW", ""), client("C-04", "WAW", "E-WAW"), client("C-05", "KRK", "E-KRK")];
    moved_clients[1].known_since = date(2020, 3, 1);
    h.client
        .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients: moved_clients }))
        .await
        .expect("changed clients");
    assert_rollups_match_lines(&pool, "after clients changed owner, registration and branch").await;

    // A deployment upgraded to the monthly activity: its migration marks
    // every client with a line, and the refresh builds their rows.
    sqlx::query("TRUNCATE client_monthly_activity").execute(&pool).await.expect("as before the upgrade");
    let migration = include_str!("../migrations/20261127000009_monthly_activity.sql");
    let (_, backfill) = migration.split_once("INSERT INTO import_marks").expect("the migration marks clients");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("INSERT INTO import_marks{backfill}")))
        .execute(&pool)
        .await
        .expect("backfill marks");
    assert_rollups_match_lines(&pool, "after the upgrade").await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM client_monthly_activity").fetch_one(&pool).await.expect("rows");
    assert_eq!(rows, 12, "a row per client with a line");

    // The facts read from the rollups and the lifecycle counts equal those
    // counted client by client with their sources listed: whole months and
    // a last month cut short, weeks from a Monday, days, one month as a
    // whole; and a range no frame fits (counted one by one both ways).
    let mut scoring = ScoringServiceClient::new(branchscore_testkit::channel(h.addr).await);
    let asked = [
        (date(2025, 1, 1), date(2026, 10, 31), Granularity::Month),
        (date(2025, 1, 1), date(2026, 10, 17), Granularity::Month),
        (date(2025, 3, 3), date(2026, 6, 10), Granularity::Week),
        (date(2025, 6, 1), date(2025, 9, 30), Granularity::Day),
        (date(2025, 9, 1), date(2025, 9, 30), Granularity::Unspecified),
        (date(2025, 1, 15), date(2026, 6, 30), Granularity::Month),
    ];
    for (from, to, granularity) in asked {
        let ask = |include_sources: bool| {
            authorized(
                &admin,
                GetClientFactsRequest {
                    from,
                    to,
                    granularity: granularity as i32,
                    include_sources,
                    ..Default::default()
                },
            )
        };
        let plain = scoring.get_client_facts(ask(false)).await.expect("plain").into_inner().facts;
        let listed = scoring.get_client_facts(ask(true)).await.expect("listed").into_inner().facts;
        let without_sources: Vec<ClientFacts> =
            listed.iter().map(|row| ClientFacts { sources: Vec::new(), ..row.clone() }).collect();
        assert!(plain.len() >= 3, "{}", plain.len());
        assert_eq!(plain, without_sources, "{from:?} to {to:?} by {granularity:?}");
    }
    // Over the months, the counts did count events.
    let months = scoring
        .get_client_facts(authorized(
            &admin,
            GetClientFactsRequest {
                from: date(2025, 1, 1),
                to: date(2026, 10, 31),
                granularity: Granularity::Month as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("months")
        .into_inner()
        .facts;
    assert!(months.iter().map(|row| row.lost_clients + row.restored_clients).sum::<i64>() > 5);
    pool.close().await;
}
