//! Lifecycle counts per day, week and month, branch and owner (migration
//! 20261126000007): every client's `period_to_date::day_deltas` in each
//! frame, added up, and summed per week and month. A report by day, week
//! or month reads a few thousand rows instead of replaying a million
//! clients' purchases.
//!
//! The counts are the sum over `client_lifecycle_basis` (what each client
//! was counted from: branch, owner, registration, purchase days). A refresh
//! ([`recount`], under the rollups' refresh lock) takes a changed client's
//! old deltas back out and adds its new ones; [`rebuild`] starts over, for
//! another lifecycle period or after a bulk load.
use branchscore_scoring::period_to_date::{self, ClientLifecycle, Frame, LifecycleCounts};
use branchscore_scoring::periods::Period;
use chrono::NaiveDate;
use futures::TryStreamExt;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

/// What one client is counted from.
struct Basis {
    branch_id: String,
    employee_id: String,
    known_since: NaiveDate,
    purchase_days: Vec<NaiveDate>,
}

impl Basis {
    fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        Ok(Basis {
            branch_id: row.try_get("branch_id")?,
            employee_id: row.try_get("employee_id")?,
            known_since: row.try_get("known_since")?,
            purchase_days: row.try_get("purchase_days")?,
        })
    }
}

/// Records as the basis of the clients `$filter` (a condition on `c`)
/// picks their current master data and purchase history.
macro_rules! record_basis {
    ($filter:literal) => {
        concat!(
            "INSERT INTO client_lifecycle_basis (client_id, branch_id, employee_id, known_since, purchase_days)
             SELECT c.id, c.branch_id, COALESCE(c.owner_employee_id, ''), c.known_since,
                    COALESCE(h.purchase_days, '{}')
             FROM clients c LEFT JOIN client_purchase_history h ON h.client_id = c.id WHERE ",
            $filter,
            " ON CONFLICT (client_id) DO UPDATE SET branch_id = EXCLUDED.branch_id,
                 employee_id = EXCLUDED.employee_id, known_since = EXCLUDED.known_since,
                 purchase_days = EXCLUDED.purchase_days"
        )
    };
}

/// The stored code of a frame.
fn frame_code(frame: Frame) -> i16 {
    match frame {
        Frame::Day => 1,
        Frame::Week => 2,
        Frame::Month => 3,
    }
}

/// Counts keyed by frame, day (or period start) and owner index.
type Keyed = HashMap<(Frame, NaiveDate, usize), LifecycleCounts>;

/// Counts to add to the deltas and the totals.
#[derive(Default)]
struct Changes {
    /// Branch -> owner -> index into `owners`: names are copied once each.
    owner_index: HashMap<String, HashMap<String, usize>>,
    owners: Vec<(String, String)>,
    deltas: Keyed,
    totals: Keyed,
}

impl Changes {
    fn owner(&mut self, branch_id: &str, employee_id: &str) -> usize {
        if let Some(&index) = self.owner_index.get(branch_id).and_then(|owners| owners.get(employee_id)) {
            return index;
        }
        let index = self.owners.len();
        self.owners.push((branch_id.to_owned(), employee_id.to_owned()));
        self.owner_index.entry(branch_id.to_owned()).or_default().insert(employee_id.to_owned(), index);
        index
    }

    /// Adds a client's deltas in every frame (`sign` 1), or takes them back out (-1).
    fn add(&mut self, basis: &Basis, period_months: u32, sign: i64) -> sqlx::Result<()> {
        let client =
            ClientLifecycle { known_since: basis.known_since, purchase_days: &basis.purchase_days, period_months };
        let owner = self.owner(&basis.branch_id, &basis.employee_id);
        for frame in Frame::ALL {
            let deltas = period_to_date::day_deltas(&client, frame).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            for (day, delta) in deltas {
                let delta = delta.times(sign);
                *self.deltas.entry((frame, day, owner)).or_default() += delta;
                // A day's total is its delta: only weeks and months are summed.
                if frame != Frame::Day {
                    *self.totals.entry((frame, frame.start_of(day), owner)).or_default() += delta;
                }
            }
        }
        Ok(())
    }

    async fn write(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        add_to(conn, add_counts!("lifecycle_deltas", "day"), &self.owners, self.deltas).await?;
        add_to(conn, add_counts!("lifecycle_totals", "period_start"), &self.owners, self.totals).await
    }
}

/// Adds counts to the rows of `$table` keyed by (frame, `$day`, branch, owner).
macro_rules! add_counts {
    ($table:literal, $day:literal) => {
        concat!(
            "INSERT INTO ", $table, " AS t (frame, ", $day, ", branch_id, employee_id, acquired, lost, restored,
                 buying, repeat_buyers, clients, initial_stage, potential)
             SELECT * FROM UNNEST($1::int2[], $2::date[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[],
                                  $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[])
             ON CONFLICT (frame, ", $day, ", branch_id, employee_id) DO UPDATE SET
                 acquired = t.acquired + EXCLUDED.acquired, lost = t.lost + EXCLUDED.lost,
                 restored = t.restored + EXCLUDED.restored, buying = t.buying + EXCLUDED.buying,
                 repeat_buyers = t.repeat_buyers + EXCLUDED.repeat_buyers, clients = t.clients + EXCLUDED.clients,
                 initial_stage = t.initial_stage + EXCLUDED.initial_stage, potential = t.potential + EXCLUDED.potential"
        )
    };
}
use add_counts;

/// Rows per statement when adding counts.
const ROWS_PER_WRITE: usize = 50_000;

async fn add_to(
    conn: &mut PgConnection,
    statement: &'static str,
    owners: &[(String, String)],
    keyed: Keyed,
) -> sqlx::Result<()> {
    let rows: Vec<_> = keyed.into_iter().filter(|(_, counts)| !counts.is_zero()).collect();
    for chunk in rows.chunks(ROWS_PER_WRITE) {
        let column = |f: fn(&LifecycleCounts) -> i64| chunk.iter().map(|(_, c)| f(c)).collect::<Vec<i64>>();
        sqlx::query(statement)
            .bind(chunk.iter().map(|((frame, _, _), _)| frame_code(*frame)).collect::<Vec<_>>())
            .bind(chunk.iter().map(|((_, day, _), _)| *day).collect::<Vec<_>>())
            .bind(chunk.iter().map(|((_, _, owner), _)| owners[*owner].0.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|((_, _, owner), _)| owners[*owner].1.as_str()).collect::<Vec<_>>())
            .bind(column(|c| c.acquired))
            .bind(column(|c| c.lost))
            .bind(column(|c| c.restored))
            .bind(column(|c| c.buying))
            .bind(column(|c| c.repeat_buyers))
            .bind(column(|c| c.clients))
            .bind(column(|c| c.initial_stage))
            .bind(column(|c| c.potential))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The lifecycle period (months) the counts are built for; `None`: not built.
pub(super) async fn built_for(conn: &mut PgConnection) -> sqlx::Result<Option<u32>> {
    let months: Option<i32> =
        sqlx::query_scalar("SELECT lifecycle_months FROM lifecycle_counts_built").fetch_optional(&mut *conn).await?;
    Ok(months.and_then(|m| u32::try_from(m).ok()))
}

/// Recounts `clients` from their current master data and purchase history
/// (which must be refreshed already); nothing when the counts are not built.
pub(super) async fn recount(conn: &mut PgConnection, clients: &[String]) -> sqlx::Result<()> {
    let Some(months) = built_for(conn).await? else { return Ok(()) };
    let mut changes = Changes::default();
    let old = sqlx::query("SELECT * FROM client_lifecycle_basis WHERE client_id = ANY($1)")
        .bind(clients)
        .fetch_all(&mut *conn)
        .await?;
    for row in &old {
        changes.add(&Basis::from_row(row)?, months, -1)?;
    }
    // The basis written is the one counted, whatever commits meanwhile.
    let current = sqlx::query(concat!(record_basis!("c.id = ANY($1)"), " RETURNING *"))
        .bind(clients)
        .fetch_all(&mut *conn)
        .await?;
    for row in &current {
        changes.add(&Basis::from_row(row)?, months, 1)?;
    }
    changes.write(conn).await
}

/// Counts every client again with a lifecycle period of `months`, in the
/// caller's transaction (which must hold the rollups' refresh lock).
pub(super) async fn rebuild(conn: &mut PgConnection, months: u32) -> sqlx::Result<()> {
    sqlx::query("TRUNCATE lifecycle_counts_built, client_lifecycle_basis, lifecycle_deltas, lifecycle_totals")
        .execute(&mut *conn)
        .await?;
    sqlx::query(record_basis!("true")).execute(&mut *conn).await?;
    let mut changes = Changes::default();
    {
        let mut rows = sqlx::query("SELECT * FROM client_lifecycle_basis").fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            changes.add(&Basis::from_row(&row)?, months, 1)?;
        }
    }
    changes.write(conn).await?;
    sqlx::query("INSERT INTO lifecycle_counts_built (lifecycle_months) VALUES ($1)")
        .bind(i32::try_from(months).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Lifecycle counts of one period, branch and owner.
#[derive(Debug, Clone)]
pub struct PeriodCounts {
    /// Index into the periods asked for.
    pub period: usize,
    pub branch_id: String,
    pub employee_id: String,
    pub counts: LifecycleCounts,
}

/// Filters on a counts table by branch list ($1, or NULL), branch ($2 or
/// '') and owner ($3 or '').
macro_rules! owner_filter {
    () => {
        "($1::text[] IS NULL OR branch_id = ANY($1)) AND ($2 = '' OR branch_id = $2) AND ($3 = '' OR employee_id = $3)"
    };
}

/// The summed counts columns.
macro_rules! summed {
    () => {
        "sum(acquired)::int8, sum(lost)::int8, sum(restored)::int8, sum(buying)::int8, sum(repeat_buyers)::int8,
         sum(clients)::int8, sum(initial_stage)::int8, sum(potential)::int8"
    };
}

fn counts_from(row: &sqlx::postgres::PgRow, first: usize) -> sqlx::Result<LifecycleCounts> {
    let at = |i: usize| row.try_get::<Option<i64>, _>(first + i).map(Option::unwrap_or_default);
    Ok(LifecycleCounts {
        acquired: at(0)?,
        lost: at(1)?,
        restored: at(2)?,
        buying: at(3)?,
        repeat_buyers: at(4)?,
        clients: at(5)?,
        initial_stage: at(6)?,
        potential: at(7)?,
    })
}

/// The lifecycle counts of `periods` (those of a frame: see
/// `Frame::of_periods`) per branch and owner within the filters: each whole
/// period from its total (a day's from its delta), a period cut short by
/// `to` from its days, the census carried from everything before. `None`
/// when the periods are no frame's, or the counts are not built for a
/// lifecycle period of `lifecycle_months` (read in the same statement, so a
/// rebuild committing meanwhile cannot mix two periods).
pub async fn period_counts(
    conn: &mut PgConnection,
    periods: &[Period],
    lifecycle_months: u32,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
) -> sqlx::Result<Option<Vec<PeriodCounts>>> {
    let (Some(frame), Some(first), Some(last)) = (Frame::of_periods(periods), periods.first(), periods.last()) else {
        return Ok(None);
    };
    let cut_short = last.end != frame.end_from(last.start);
    let whole: Vec<NaiveDate> = periods.iter().take(periods.len() - usize::from(cut_short)).map(|p| p.start).collect();
    let month = Frame::Month.start_of(first.start);
    // Slot -2: what the counts were built for; -1: the census before the
    // first period (months before its month, then its month's days before
    // it); then one per period (a day's total is its delta).
    let rows = sqlx::query(concat!(
        "SELECT -2 AS slot, '' AS branch_id, '' AS employee_id, lifecycle_months::int8, ",
        "NULL::int8, NULL::int8, NULL::int8, NULL::int8, NULL::int8, NULL::int8, NULL::int8
         FROM lifecycle_counts_built
         UNION ALL
         SELECT -1, branch_id, employee_id, ",
        summed!(),
        " FROM (SELECT * FROM lifecycle_totals WHERE frame = 3 AND period_start < $4
               UNION ALL SELECT * FROM lifecycle_deltas WHERE frame = 3 AND day >= $4 AND day < $5) before
         WHERE ",
        owner_filter!(),
        " GROUP BY 2, 3
         UNION ALL
         SELECT array_position($6::date[], period_start) - 1, branch_id, employee_id, ",
        summed!(),
        " FROM (SELECT * FROM lifecycle_totals UNION ALL SELECT * FROM lifecycle_deltas WHERE frame = 1) whole
         WHERE frame = $10 AND period_start = ANY($6) AND ",
        owner_filter!(),
        " GROUP BY 1, 2, 3
         UNION ALL
         SELECT $8::int4, branch_id, employee_id, ",
        summed!(),
        " FROM lifecycle_deltas WHERE $7 AND frame = $10 AND day BETWEEN $9 AND $11 AND ",
        owner_filter!(),
        " GROUP BY 2, 3"
    ))
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .bind(month)
    .bind(first.start)
    .bind(&whole)
    .bind(cut_short)
    .bind(i32::try_from(periods.len() - 1).unwrap_or(i32::MAX))
    .bind(last.start)
    .bind(frame_code(frame))
    .bind(last.end)
    .fetch_all(&mut *conn)
    .await?;
    // Per owner: the census before the first period, then each period's rows.
    let mut by_owner: HashMap<(String, String), Vec<LifecycleCounts>> = HashMap::new();
    let mut built_for = None;
    for row in &rows {
        if row.try_get::<i32, _>("slot")? == -2 {
            built_for = row.try_get::<Option<i64>, _>(3)?;
            continue;
        }
        let key = (row.try_get("branch_id")?, row.try_get("employee_id")?);
        let slot = usize::try_from(row.try_get::<i32, _>("slot")? + 1).unwrap_or_default();
        let slots = by_owner.entry(key).or_insert_with(|| vec![LifecycleCounts::default(); periods.len() + 1]);
        if let Some(counts) = slots.get_mut(slot) {
            *counts += counts_from(row, 3)?;
        }
    }
    if built_for != Some(i64::from(lifecycle_months)) {
        return Ok(None);
    }
    let mut counted = Vec::new();
    for ((branch_id, employee_id), slots) in by_owner {
        let mut census = slots[0].census();
        for (period, delta) in slots.into_iter().enumerate().skip(1) {
            census += delta.census();
            let counts = delta - delta.census() + census;
            if counts.clients > 0 {
                counted.push(PeriodCounts {
                    period: period - 1,
                    branch_id: branch_id.clone(),
                    employee_id: employee_id.clone(),
                    counts,
                });
            }
        }
    }
    Ok(Some(counted))
}
