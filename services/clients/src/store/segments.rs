//! Segments, their targets, the product states of the managed sales process
//! and the basket rules of the latest run.
use branchscore_proto::clients::v1::{ClientProductState, Segment};
use branchscore_proto::common::v1::Date;
use branchscore_scoring::basket::PairRule;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;

fn small(values: &[i32]) -> Vec<i16> {
    values.iter().map(|v| i16::try_from(*v).unwrap_or(i16::MAX)).collect()
}

/// Creates or replaces `segments` and their target lists, atomically.
pub async fn upsert_segments(pool: &PgPool, segments: &[Segment]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for segment in segments {
        sqlx::query(
            "INSERT INTO segments (id, name, priority, kinds, size_bands, industries) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, priority = EXCLUDED.priority,
                 kinds = EXCLUDED.kinds, size_bands = EXCLUDED.size_bands, industries = EXCLUDED.industries,
                 updated_at = now()",
        )
        .bind(&segment.id)
        .bind(&segment.name)
        .bind(segment.priority)
        .bind(small(&segment.kinds))
        .bind(small(&segment.size_bands))
        .bind(&segment.industries)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM segment_targets WHERE segment_id = $1").bind(&segment.id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO segment_targets (segment_id, product_id) SELECT $1, unnest($2::text[])")
            .bind(&segment.id)
            .bind(&segment.target_product_ids)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Every segment in matching order (priority, id), targets sorted.
pub async fn list_segments(pool: &PgPool) -> sqlx::Result<Vec<Segment>> {
    let rows = sqlx::query(
        "SELECT s.id, s.name, s.priority, s.kinds, s.size_bands, s.industries,
                COALESCE(array_agg(t.product_id ORDER BY t.product_id) FILTER (WHERE t.product_id IS NOT NULL), '{}')
                    AS targets
         FROM segments s LEFT JOIN segment_targets t ON t.segment_id = s.id
         GROUP BY s.id ORDER BY s.priority, s.id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let widen = |v: Vec<i16>| v.into_iter().map(i32::from).collect();
            Ok(Segment {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                priority: row.try_get("priority")?,
                kinds: widen(row.try_get("kinds")?),
                size_bands: widen(row.try_get("size_bands")?),
                industries: row.try_get("industries")?,
                target_product_ids: row.try_get("targets")?,
            })
        })
        .collect()
}

/// A recorded product state.
#[derive(Debug, Clone)]
pub struct RecordedState {
    pub client_id: String,
    pub product_id: String,
    pub state: i16,
    pub date: Option<NaiveDate>,
    pub reason: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

impl RecordedState {
    pub fn message(&self) -> ClientProductState {
        ClientProductState {
            product_id: self.product_id.clone(),
            state: i32::from(self.state),
            date: self.date.map(Date::from),
            reason: self.reason.clone(),
            updated_by: self.updated_by.clone(),
            update_time: Some(branchscore_proto::convert::timestamp(self.updated_at)),
        }
    }
}

fn recorded(row: &sqlx::postgres::PgRow) -> sqlx::Result<RecordedState> {
    Ok(RecordedState {
        client_id: row.try_get("client_id")?,
        product_id: row.try_get("product_id")?,
        state: row.try_get("state")?,
        date: row.try_get("state_date")?,
        reason: row.try_get("reason")?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn set_product_state(pool: &PgPool, state: &RecordedState) -> sqlx::Result<RecordedState> {
    let row = sqlx::query(
        "INSERT INTO client_product_states (client_id, product_id, state, state_date, reason, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (client_id, product_id) DO UPDATE SET state = EXCLUDED.state, state_date = EXCLUDED.state_date,
             reason = EXCLUDED.reason, updated_by = EXCLUDED.updated_by, updated_at = now()
         RETURNING *",
    )
    .bind(&state.client_id)
    .bind(&state.product_id)
    .bind(state.state)
    .bind(state.date)
    .bind(&state.reason)
    .bind(&state.updated_by)
    .fetch_one(pool)
    .await?;
    recorded(&row)
}

/// Recorded states of one client, or of everybody (`None`).
pub async fn product_states(pool: &PgPool, client_id: Option<&str>) -> sqlx::Result<Vec<RecordedState>> {
    let rows = sqlx::query("SELECT * FROM client_product_states WHERE $1::text IS NULL OR client_id = $1")
        .bind(client_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(recorded).collect()
}

/// Products `client_id` bought in `[from, to]`.
pub async fn purchased_products(
    pool: &PgPool,
    client_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT product_id FROM transaction_lines
         WHERE client_id = $1 AND business_date BETWEEN $2 AND $3 AND amount_minor > 0 ORDER BY 1",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

pub async fn insert_basket_rules(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    rules: &[PairRule<String>],
) -> sqlx::Result<()> {
    for chunk in rules.chunks(5_000) {
        sqlx::query(
            "INSERT INTO basket_rules (run_id, antecedent, consequent, baskets, support, confidence, lift)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[])",
        )
        .bind(run_id)
        .bind(chunk.iter().map(|r| r.antecedent.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.consequent.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| i64::try_from(r.baskets).unwrap_or(i64::MAX)).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.support).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.confidence).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.lift).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Rules of the latest finished run whose antecedent is one of `products`.
pub async fn basket_rules_from(pool: &PgPool, products: &[String]) -> sqlx::Result<Vec<PairRule<String>>> {
    let rows = sqlx::query(
        "SELECT * FROM basket_rules
         WHERE run_id = (SELECT max(id) FROM recompute_runs WHERE finished_at IS NOT NULL) AND antecedent = ANY($1)",
    )
    .bind(products)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PairRule {
                antecedent: row.try_get("antecedent")?,
                consequent: row.try_get("consequent")?,
                baskets: u64::try_from(row.try_get::<i64, _>("baskets")?).unwrap_or(0),
                support: row.try_get("support")?,
                confidence: row.try_get("confidence")?,
                lift: row.try_get("lift")?,
            })
        })
        .collect()
}

/// Product id -> name.
pub async fn product_names(pool: &PgPool) -> sqlx::Result<HashMap<String, String>> {
    let rows = sqlx::query("SELECT id, name FROM products").fetch_all(pool).await?;
    rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("name")?))).collect()
}
