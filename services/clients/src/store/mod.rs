//! Postgres access for the clients service. Every read takes the caller's
//! branch filter (`None` = whole network) so scope is enforced in SQL.
/// A client's activity in one calendar month, as the columns of a
/// `GROUP BY client_id, month` over its transaction lines: revenue net of
/// returns, distinct purchase documents, first and last purchase. The one
/// rule behind the kept monthly activity (`rollups`) and the recompute's
/// read of the newest lines (`aggregates`).
macro_rules! month_activity_columns {
    () => {
        "date_trunc('month', business_date)::date AS month, sum(amount_minor)::bigint AS revenue,
         count(DISTINCT document_id) FILTER (WHERE amount_minor > 0) AS documents,
         min(business_date) FILTER (WHERE amount_minor > 0) AS first_purchase,
         max(business_date) FILTER (WHERE amount_minor > 0) AS last_purchase"
    };
}

mod aggregates;
mod cache_purges;
mod facts;
pub mod lifecycle;
pub mod rollups;
mod scores;
mod segments;
pub mod settings;

pub use aggregates::*;
pub use cache_purges::*;
pub use facts::*;
pub use scores::*;
pub use segments::*;

use branchscore_proto::clients::v1::{Branch, Client, Employee, Product, ProductLine};
use branchscore_proto::common::v1::Date;
use branchscore_proto::convert::timestamp;
use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};

/// Tables whose ids requests refer to.
#[derive(Debug, Clone, Copy)]
pub enum Catalogue {
    Branches,
    Employees,
    ProductLines,
    Products,
}

impl Catalogue {
    fn existing_sql(self) -> &'static str {
        match self {
            Catalogue::Branches => "SELECT id FROM branches WHERE id = ANY($1)",
            Catalogue::Employees => "SELECT id FROM employees WHERE id = ANY($1)",
            Catalogue::ProductLines => "SELECT id FROM product_lines WHERE id = ANY($1)",
            Catalogue::Products => "SELECT id FROM products WHERE id = ANY($1)",
        }
    }
}

/// Which of `ids` exist in `catalogue`.
pub async fn existing(pool: &PgPool, catalogue: Catalogue, ids: &[String]) -> sqlx::Result<HashSet<String>> {
    let found: Vec<String> = sqlx::query_scalar(catalogue.existing_sql()).bind(ids).fetch_all(pool).await?;
    Ok(found.into_iter().collect())
}

/// Employee id -> branch id, for the given ids.
pub async fn employee_branches(pool: &PgPool, ids: &[String]) -> sqlx::Result<HashMap<String, String>> {
    let rows = sqlx::query("SELECT id, branch_id FROM employees WHERE id = ANY($1)").bind(ids).fetch_all(pool).await?;
    rows.into_iter().map(|row| Ok((row.try_get("id")?, row.try_get("branch_id")?))).collect()
}

/// Client id -> branch id, for the given ids.
pub async fn client_branches(pool: &PgPool, ids: &[String]) -> sqlx::Result<HashMap<String, String>> {
    let rows = sqlx::query("SELECT id, branch_id FROM clients WHERE id = ANY($1)").bind(ids).fetch_all(pool).await?;
    rows.into_iter().map(|row| Ok((row.try_get("id")?, row.try_get("branch_id")?))).collect()
}

pub async fn upsert_branches(pool: &PgPool, branches: &[Branch]) -> sqlx::Result<()> {
    let column = |f: fn(&Branch) -> &String| branches.iter().map(f).cloned().collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO branches (id, name, region, currency)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, region = EXCLUDED.region,
             currency = EXCLUDED.currency, updated_at = now()",
    )
    .bind(column(|b| &b.id))
    .bind(column(|b| &b.name))
    .bind(column(|b| &b.region))
    .bind(column(|b| &b.currency))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn list_branches(pool: &PgPool, scope: Option<&[String]>) -> sqlx::Result<Vec<Branch>> {
    let rows = sqlx::query(
        "SELECT id, name, region, currency FROM branches
         WHERE ($1::text[] IS NULL OR id = ANY($1)) ORDER BY id",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Branch {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                region: row.try_get("region")?,
                currency: row.try_get("currency")?,
            })
        })
        .collect()
}

/// Upserts employees; an existing employee outside `scope` is left untouched
/// and its id returned so the caller can refuse the whole batch.
pub async fn upsert_employees(
    tx: &mut Transaction<'_, Postgres>,
    employees: &[Employee],
    scope: Option<&[String]>,
) -> sqlx::Result<Vec<String>> {
    let text = |f: fn(&Employee) -> &String| employees.iter().map(f).cloned().collect::<Vec<_>>();
    let team_leads: Vec<Option<String>> =
        employees.iter().map(|e| Some(e.team_lead_id.clone()).filter(|id| !id.is_empty())).collect();
    let written: Vec<String> = sqlx::query_scalar(
        "INSERT INTO employees (id, branch_id, full_name, role, team_lead_id, active)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::bool[])
         ON CONFLICT (id) DO UPDATE SET branch_id = EXCLUDED.branch_id, full_name = EXCLUDED.full_name,
             role = EXCLUDED.role, team_lead_id = EXCLUDED.team_lead_id, active = EXCLUDED.active, updated_at = now()
         WHERE $7::text[] IS NULL OR employees.branch_id = ANY($7)
         RETURNING id",
    )
    .bind(text(|e| &e.id))
    .bind(text(|e| &e.branch_id))
    .bind(text(|e| &e.full_name))
    .bind(employees.iter().map(|e| e.role as i16).collect::<Vec<_>>())
    .bind(team_leads)
    .bind(employees.iter().map(|e| e.active).collect::<Vec<_>>())
    .bind(scope)
    .fetch_all(&mut **tx)
    .await?;
    let written: HashSet<String> = written.into_iter().collect();
    Ok(employees.iter().filter(|e| !written.contains(&e.id)).map(|e| e.id.clone()).collect())
}

pub async fn list_employees(pool: &PgPool, scope: Option<&[String]>, branch_id: &str) -> sqlx::Result<Vec<Employee>> {
    let rows = sqlx::query(
        "SELECT id, branch_id, full_name, role, COALESCE(team_lead_id, '') AS team_lead_id, active FROM employees
         WHERE ($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2) ORDER BY id",
    )
    .bind(scope)
    .bind(branch_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Employee {
                id: row.try_get("id")?,
                branch_id: row.try_get("branch_id")?,
                full_name: row.try_get("full_name")?,
                role: i32::from(row.try_get::<i16, _>("role")?),
                team_lead_id: row.try_get("team_lead_id")?,
                active: row.try_get("active")?,
            })
        })
        .collect()
}

/// Upserts the catalogue; moving a product to another product line
/// reclassifies its past sales, so its buyers are marked for a refresh.
pub async fn upsert_products(
    tx: &mut Transaction<'_, Postgres>,
    lines: &[ProductLine],
    products: &[Product],
) -> sqlx::Result<()> {
    let ids: Vec<String> = products.iter().map(|p| p.id.clone()).collect();
    let product_lines: Vec<String> = products.iter().map(|p| p.product_line_id.clone()).collect();
    let moved: Vec<String> = sqlx::query_scalar(
        "SELECT p.id FROM products p JOIN UNNEST($1::text[], $2::text[]) AS n(id, line) ON n.id = p.id
         WHERE p.product_line_id <> n.line",
    )
    .bind(&ids)
    .bind(&product_lines)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO product_lines (id, name) SELECT * FROM UNNEST($1::text[], $2::text[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()",
    )
    .bind(lines.iter().map(|l| l.id.clone()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO products (id, product_line_id, name) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT (id) DO UPDATE SET product_line_id = EXCLUDED.product_line_id, name = EXCLUDED.name,
             updated_at = now()",
    )
    .bind(&ids)
    .bind(&product_lines)
    .bind(products.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    if !moved.is_empty() {
        rollups::mark_moved_products(tx, &moved).await?;
    }
    Ok(())
}

pub async fn list_products(pool: &PgPool) -> sqlx::Result<(Vec<ProductLine>, Vec<Product>)> {
    let lines = sqlx::query("SELECT id, name FROM product_lines ORDER BY id")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| Ok(ProductLine { id: row.try_get("id")?, name: row.try_get("name")? }))
        .collect::<sqlx::Result<Vec<_>>>()?;
    let products = sqlx::query("SELECT id, product_line_id, name FROM products ORDER BY id")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(Product {
                id: row.try_get("id")?,
                product_line_id: row.try_get("product_line_id")?,
                name: row.try_get("name")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok((lines, products))
}

/// Result of a client upsert.
#[derive(Debug, Default)]
pub struct ClientUpsert {
    pub created: usize,
    /// Existing clients of branches outside the caller's scope (not written).
    pub out_of_scope: Vec<String>,
    /// Purges owed for the cached scores of clients moved to another branch.
    pub owed_purges: Vec<OwedPurge>,
}

pub async fn upsert_clients(
    tx: &mut Transaction<'_, Postgres>,
    clients: &[Client],
    scope: Option<&[String]>,
) -> sqlx::Result<ClientUpsert> {
    let text = |f: fn(&Client) -> &String| clients.iter().map(f).cloned().collect::<Vec<_>>();
    let owners: Vec<Option<String>> =
        clients.iter().map(|c| Some(c.owner_employee_id.clone()).filter(|id| !id.is_empty())).collect();
    let known_since: Vec<NaiveDate> =
        clients.iter().map(|c| c.known_since.and_then(|d| d.to_naive()).unwrap_or_default()).collect();
    // Every part of the statement sees the rows as they were before it, so
    // `before` holds each client's branch before the upsert.
    let rows = sqlx::query(
        "WITH before AS (SELECT id, branch_id FROM clients WHERE id = ANY($1) FOR UPDATE),
         upserted AS (
             INSERT INTO clients (id, name, kind, industry, size_band, region, founding_year, branch_id,
                                  owner_employee_id, known_since)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::smallint[], $4::text[], $5::smallint[], $6::text[],
                                  $7::int[], $8::text[], $9::text[], $10::date[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, industry = EXCLUDED.industry,
                 size_band = EXCLUDED.size_band, region = EXCLUDED.region, founding_year = EXCLUDED.founding_year,
                 branch_id = EXCLUDED.branch_id, owner_employee_id = EXCLUDED.owner_employee_id,
                 known_since = EXCLUDED.known_since, updated_at = now()
             WHERE $11::text[] IS NULL OR clients.branch_id = ANY($11)
             RETURNING id, branch_id, (xmax = 0) AS created)
         SELECT u.id, u.created, before.branch_id IS DISTINCT FROM u.branch_id AND NOT u.created AS moved
         FROM upserted u LEFT JOIN before ON before.id = u.id",
    )
    .bind(text(|c| &c.id))
    .bind(text(|c| &c.name))
    .bind(clients.iter().map(|c| c.kind as i16).collect::<Vec<_>>())
    .bind(text(|c| &c.industry))
    .bind(clients.iter().map(|c| c.size_band as i16).collect::<Vec<_>>())
    .bind(text(|c| &c.region))
    .bind(clients.iter().map(|c| c.founding_year).collect::<Vec<_>>())
    .bind(text(|c| &c.branch_id))
    .bind(owners)
    .bind(known_since)
    .bind(scope)
    .fetch_all(&mut **tx)
    .await?;
    let mut outcome = ClientUpsert::default();
    let mut written = HashSet::with_capacity(rows.len());
    let mut moved = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if row.try_get::<bool, _>("created")? {
            outcome.created += 1;
        }
        if row.try_get::<bool, _>("moved")? {
            moved.push(id.clone());
        }
        written.insert(id);
    }
    outcome.out_of_scope = clients.iter().filter(|c| !written.contains(&c.id)).map(|c| c.id.clone()).collect();
    // Owed with the move itself, so no crash or Redis failure after the
    // commit leaves the old branch's staff reading a cached score.
    outcome.owed_purges = owe_cache_purges(&mut **tx, &moved).await?;
    // A new owner, branch or registration date moves the client's lifecycle counts.
    rollups::mark_master_data(tx, &written.into_iter().collect::<Vec<_>>()).await?;
    Ok(outcome)
}

const CLIENT_COLUMNS: &str = "c.id, c.name, c.kind, c.industry, c.size_band, c.region, c.founding_year, c.branch_id,
    COALESCE(c.owner_employee_id, '') AS owner_employee_id, c.known_since, c.updated_at,
    COALESCE(s.lifecycle_status, 0::smallint) AS lifecycle_status, COALESCE(s.abc_class, 0::smallint) AS abc_class";

fn client_from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<Client> {
    Ok(Client {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: i32::from(row.try_get::<i16, _>("kind")?),
        industry: row.try_get("industry")?,
        size_band: i32::from(row.try_get::<i16, _>("size_band")?),
        region: row.try_get("region")?,
        founding_year: row.try_get("founding_year")?,
        branch_id: row.try_get("branch_id")?,
        owner_employee_id: row.try_get("owner_employee_id")?,
        known_since: Some(Date::from(row.try_get::<NaiveDate, _>("known_since")?)),
        lifecycle_status: i32::from(row.try_get::<i16, _>("lifecycle_status")?),
        abc_class: i32::from(row.try_get::<i16, _>("abc_class")?),
        update_time: Some(timestamp(row.try_get("updated_at")?)),
    })
}

pub async fn clients_by_ids(pool: &PgPool, ids: &[String], scope: Option<&[String]>) -> sqlx::Result<Vec<Client>> {
    let sql = format!(
        "SELECT {CLIENT_COLUMNS} FROM clients c LEFT JOIN client_scores s ON s.client_id = c.id
         WHERE c.id = ANY($1) AND ($2::text[] IS NULL OR c.branch_id = ANY($2)) ORDER BY c.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids).bind(scope).fetch_all(pool).await?;
    rows.iter().map(client_from_row).collect()
}

/// Filters of `ListClients`; empty strings and 0 mean "any".
#[derive(Debug, Default)]
pub struct ClientFilter {
    pub branch_id: String,
    pub owner_employee_id: String,
    pub lifecycle_status: i32,
    pub abc_class: i32,
}

/// One page of clients ordered by id, starting after `after`.
pub async fn list_clients(
    pool: &PgPool,
    filter: &ClientFilter,
    scope: Option<&[String]>,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<Client>> {
    let sql = format!(
        "SELECT {CLIENT_COLUMNS} FROM clients c LEFT JOIN client_scores s ON s.client_id = c.id
         WHERE ($1::text[] IS NULL OR c.branch_id = ANY($1)) AND ($2 = '' OR c.branch_id = $2)
           AND ($3 = '' OR c.owner_employee_id = $3)
           AND ($4 = 0 OR COALESCE(s.lifecycle_status, 0) = $4) AND ($5 = 0 OR COALESCE(s.abc_class, 0) = $5)
           AND c.id > $6
         ORDER BY c.id LIMIT $7"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(&filter.branch_id)
        .bind(&filter.owner_employee_id)
        .bind(filter.lifecycle_status as i16)
        .bind(filter.abc_class as i16)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(client_from_row).collect()
}

/// A validated transaction line ready for the bulk insert.
#[derive(Debug, Clone)]
pub struct NewTransactionLine {
    pub id: String,
    pub document_id: String,
    pub client_id: String,
    pub product_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub business_date: NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
}

/// Inserts lines in one statement; returns how many were new (the rest were
/// already stored: a re-sent batch).
pub async fn insert_transaction_lines(
    tx: &mut Transaction<'_, Postgres>,
    lines: &[NewTransactionLine],
) -> sqlx::Result<u64> {
    if lines.is_empty() {
        return Ok(0);
    }
    let text = |f: fn(&NewTransactionLine) -> &String| lines.iter().map(f).cloned().collect::<Vec<_>>();
    let result = sqlx::query(
        "INSERT INTO transaction_lines (id, document_id, client_id, product_id, amount_minor, currency,
                                        business_date, branch_id, employee_id)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                              $7::date[], $8::text[], $9::text[])
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(text(|l| &l.id))
    .bind(text(|l| &l.document_id))
    .bind(text(|l| &l.client_id))
    .bind(text(|l| &l.product_id))
    .bind(lines.iter().map(|l| l.amount_minor).collect::<Vec<_>>())
    .bind(text(|l| &l.currency))
    .bind(lines.iter().map(|l| l.business_date).collect::<Vec<_>>())
    .bind(text(|l| &l.branch_id))
    .bind(text(|l| &l.employee_id))
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}
