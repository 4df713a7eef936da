//! The reads behind the forecast, the funnel, the plan calculator and the
//! facts for kpi.
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use sqlx::{PgConnection, PgPool, Row};

/// Whose numbers: the caller's branches (`None` = network), optionally one
/// branch and one employee (empty = all).
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub scope: Option<&'a [String]>,
    pub branch_id: &'a str,
    pub employee_id: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForecastRow {
    pub month: NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
    pub open_deals: i64,
    pub pipeline_amount: i64,
    pub weighted_forecast: i64,
}

/// Open deals by expected close month, branch and owner; the weighted sum
/// rounds each deal to a minor unit (half away from zero), as the domain rule does.
pub async fn forecast(pool: &PgPool, filter: Filter<'_>) -> sqlx::Result<Vec<ForecastRow>> {
    sqlx::query_as(
        "SELECT date_trunc('month', expected_close)::date AS month, branch_id, owner_employee_id AS employee_id,
                count(*) AS open_deals, sum(amount_minor)::bigint AS pipeline_amount,
                sum(round(amount_minor::numeric * probability / 100))::bigint AS weighted_forecast
         FROM deals
         WHERE status = 1 AND ($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2)
           AND ($3 = '' OR owner_employee_id = $3)
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(filter.scope)
    .bind(filter.branch_id)
    .bind(filter.employee_id)
    .fetch_all(pool)
    .await
}

/// A deal of the funnel with its stage entries (stage index, entered at), in order.
#[derive(Debug, Clone)]
pub struct FunnelDeal {
    pub status: i16,
    pub stage_index: i32,
    pub loss_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub entered: Vec<(i32, DateTime<Utc>)>,
}

/// Hands `each` the deals of one pipeline created in `[from, to]` (dates in
/// the company's zone `zone`) that have
/// at least one transition, in deal id order, each with its stage entries
/// (a loss enters no stage) in the order they were made. The rows stream
/// sorted by deal, so only the current deal is held, not the whole range.
pub async fn funnel_deals(
    conn: &mut PgConnection,
    pipeline_id: &str,
    filter: Filter<'_>,
    zone: &str,
    from: NaiveDate,
    to: NaiveDate,
    mut each: impl FnMut(&FunnelDeal),
) -> sqlx::Result<()> {
    let mut rows = sqlx::query(
        "SELECT d.id, d.status, d.stage_index, d.loss_reason, d.closed_at, t.to_stage_index, t.at
         FROM deals d JOIN deal_transitions t ON t.deal_id = d.id
         WHERE d.pipeline_id = $1 AND (d.created_at AT TIME ZONE $7)::date BETWEEN $5 AND $6
           AND ($2::text[] IS NULL OR d.branch_id = ANY($2)) AND ($3 = '' OR d.branch_id = $3)
           AND ($4 = '' OR d.owner_employee_id = $4)
         ORDER BY d.id, t.id",
    )
    .bind(pipeline_id)
    .bind(filter.scope)
    .bind(filter.branch_id)
    .bind(filter.employee_id)
    .bind(from)
    .bind(to)
    .bind(zone)
    .fetch(&mut *conn);
    // The deal being read and its id; both are reused from one deal to the next.
    let mut current: Option<FunnelDeal> = None;
    let mut current_id = String::new();
    while let Some(row) = rows.try_next().await? {
        let id: &str = row.try_get(0)?;
        let deal = match &mut current {
            Some(deal) if current_id == id => deal,
            _ => {
                if let Some(done) = &current {
                    each(done);
                }
                current_id.clear();
                current_id.push_str(id);
                let deal = current.get_or_insert_with(|| FunnelDeal {
                    status: 0,
                    stage_index: 0,
                    loss_reason: None,
                    closed_at: None,
                    entered: Vec::new(),
                });
                deal.status = row.try_get(1)?;
                deal.stage_index = row.try_get(2)?;
                deal.loss_reason = row.try_get(3)?;
                deal.closed_at = row.try_get(4)?;
                deal.entered.clear();
                deal
            }
        };
        let index: i32 = row.try_get(5)?;
        if index >= 0 {
            deal.entered.push((index, row.try_get(6)?));
        }
    }
    if let Some(done) = &current {
        each(done);
    }
    Ok(())
}

/// Leads received in `[from, to]` (dates in the company's zone `zone`) and
/// how many became deals.
pub async fn lead_conversion(
    conn: &mut PgConnection,
    filter: Filter<'_>,
    zone: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT count(*) AS leads, count(deal_id) AS converted FROM leads
         WHERE (received_at AT TIME ZONE $6)::date BETWEEN $4 AND $5 AND ($1::text[] IS NULL OR branch_id = ANY($1))
           AND ($2 = '' OR branch_id = $2) AND ($3 = '' OR owner_employee_id = $3)",
    )
    .bind(filter.scope)
    .bind(filter.branch_id)
    .bind(filter.employee_id)
    .bind(from)
    .bind(to)
    .bind(zone)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("leads")?, row.try_get("converted")?))
}

/// Won deals since `since`: (count, mean amount), and deals opened since then.
pub async fn win_measures(pool: &PgPool, filter: Filter<'_>, since: DateTime<Utc>) -> sqlx::Result<(i64, i64, i64)> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status = 2) AS won,
                COALESCE(round(avg(amount_minor) FILTER (WHERE status = 2)), 0)::bigint AS average_won,
                count(*) AS opened
         FROM deals WHERE created_at >= $3 AND ($1::text[] IS NULL OR branch_id = ANY($1))
           AND ($2 = '' OR branch_id = $2)",
    )
    .bind(filter.scope)
    .bind(filter.branch_id)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("won")?, row.try_get("average_won")?, row.try_get("opened")?))
}

/// Per day, branch and employee: what `GetPipelineFacts` adds up.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct DailyPipeline {
    pub day: NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
    pub leads: i64,
    pub answered_leads: i64,
    pub response_seconds: f64,
    pub sla_breaches: i64,
    pub converted_leads: i64,
    pub deals_won: i64,
    pub won_amount: i64,
    pub deals_lost: i64,
    pub overdue_control_points: i64,
    #[sqlx(flatten)]
    pub sources: DailySources,
}

/// The ids of the records a [`DailyPipeline`] counts, when asked for (else empty).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct DailySources {
    pub lead_ids: Vec<String>,
    pub answered_lead_ids: Vec<String>,
    pub breached_lead_ids: Vec<String>,
    pub converted_lead_ids: Vec<String>,
    pub won_deal_ids: Vec<String>,
    pub lost_deal_ids: Vec<String>,
    pub overdue_control_point_ids: Vec<String>,
}

impl DailySources {
    /// Each list with the `PipelineFacts` field it counts for and the kind of record it names.
    pub fn by_fact(&self) -> [(&'static str, &'static str, &[String]); 7] {
        [
            ("leads", "lead", &self.lead_ids),
            ("answered_leads", "lead", &self.answered_lead_ids),
            ("sla_breaches", "lead", &self.breached_lead_ids),
            ("converted_leads", "lead", &self.converted_lead_ids),
            ("deals_won", "deal", &self.won_deal_ids),
            ("deals_lost", "deal", &self.lost_deal_ids),
            ("overdue_control_points", "control_point", &self.overdue_control_point_ids),
        ]
    }
}

/// Leads by day received, deals by day closed, control points by due day
/// (in the company's zone `zone`), `[from, to]`, as of `now`; with
/// `list_sources`, each row also names the records it counts.
pub async fn daily_pipeline(
    conn: &mut PgConnection,
    zone: &str,
    from: NaiveDate,
    to: NaiveDate,
    filter: Filter<'_>,
    now: DateTime<Utc>,
    list_sources: bool,
) -> sqlx::Result<Vec<DailyPipeline>> {
    sqlx::query_as(
        "WITH l AS (
             SELECT (received_at AT TIME ZONE $1)::date AS day, branch_id, owner_employee_id AS employee_id,
                    count(*) AS leads, count(first_response_at) AS answered_leads,
                    COALESCE(sum(extract(epoch FROM first_response_at - received_at)), 0)::float8 AS response_seconds,
                    count(*) FILTER (WHERE breached) AS sla_breaches,
                    count(deal_id) AS converted_leads,
                    array_agg(id ORDER BY id) FILTER (WHERE $8) AS lead_ids,
                    array_agg(id ORDER BY id) FILTER (WHERE $8 AND first_response_at IS NOT NULL) AS answered_lead_ids,
                    array_agg(id ORDER BY id) FILTER (WHERE $8 AND breached) AS breached_lead_ids,
                    array_agg(id ORDER BY id) FILTER (WHERE $8 AND deal_id IS NOT NULL) AS converted_lead_ids
             FROM leads,
                  LATERAL (SELECT extract(epoch FROM COALESCE(first_response_at, $7) - received_at) > sla_seconds
                                  AS breached) b
             GROUP BY 1, 2, 3
         ),
         d AS (
             SELECT (closed_at AT TIME ZONE $1)::date AS day, branch_id, owner_employee_id AS employee_id,
                    count(*) FILTER (WHERE status = 2) AS deals_won,
                    COALESCE(sum(amount_minor) FILTER (WHERE status = 2), 0)::bigint AS won_amount,
                    count(*) FILTER (WHERE status = 3) AS deals_lost,
                    array_agg(id ORDER BY id) FILTER (WHERE $8 AND status = 2) AS won_deal_ids,
                    array_agg(id ORDER BY id) FILTER (WHERE $8 AND status = 3) AS lost_deal_ids
             FROM deals WHERE closed_at IS NOT NULL GROUP BY 1, 2, 3
         ),
         c AS (
             SELECT due_date AS day, branch_id, owner_employee_id AS employee_id,
                    count(*) FILTER (WHERE overdue) AS overdue_control_points,
                    array_agg(id ORDER BY id) FILTER (WHERE $8 AND overdue) AS overdue_control_point_ids
             FROM control_points,
                  LATERAL (SELECT COALESCE((completed_at AT TIME ZONE $1)::date, ($7 AT TIME ZONE $1)::date) > due_date
                                  AS overdue) o
             WHERE due_date < ($7 AT TIME ZONE $1)::date GROUP BY 1, 2, 3
         ),
         keys AS (SELECT day, branch_id, employee_id FROM l UNION SELECT day, branch_id, employee_id FROM d
                  UNION SELECT day, branch_id, employee_id FROM c)
         SELECT k.day, k.branch_id, k.employee_id,
                COALESCE(l.leads, 0) AS leads, COALESCE(l.answered_leads, 0) AS answered_leads,
                COALESCE(l.response_seconds, 0) AS response_seconds, COALESCE(l.sla_breaches, 0) AS sla_breaches,
                COALESCE(l.converted_leads, 0) AS converted_leads, COALESCE(d.deals_won, 0) AS deals_won,
                COALESCE(d.won_amount, 0) AS won_amount, COALESCE(d.deals_lost, 0) AS deals_lost,
                COALESCE(c.overdue_control_points, 0) AS overdue_control_points,
                COALESCE(l.lead_ids, '{}') AS lead_ids, COALESCE(l.answered_lead_ids, '{}') AS answered_lead_ids,
                COALESCE(l.breached_lead_ids, '{}') AS breached_lead_ids,
                COALESCE(l.converted_lead_ids, '{}') AS converted_lead_ids,
                COALESCE(d.won_deal_ids, '{}') AS won_deal_ids, COALESCE(d.lost_deal_ids, '{}') AS lost_deal_ids,
                COALESCE(c.overdue_control_point_ids, '{}') AS overdue_control_point_ids
         FROM keys k
         LEFT JOIN l USING (day, branch_id, employee_id)
         LEFT JOIN d USING (day, branch_id, employee_id)
         LEFT JOIN c USING (day, branch_id, employee_id)
         WHERE k.day BETWEEN $2 AND $3 AND ($4::text[] IS NULL OR k.branch_id = ANY($4)) AND ($5 = '' OR k.branch_id = $5)
           AND ($6 = '' OR k.employee_id = $6)
         ORDER BY 1, 2, 3",
    )
    .bind(zone)
    .bind(from)
    .bind(to)
    .bind(filter.scope)
    .bind(filter.branch_id)
    .bind(filter.employee_id)
    .bind(now)
    .bind(list_sources)
    .fetch_all(&mut *conn)
    .await
}
