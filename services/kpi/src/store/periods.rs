//! Computed periods: versions, their bonus lines, and the facts (with their
//! sources) each version was computed from.
use super::{role_from_name, role_name};
use crate::compute::{BonusLine, KpiOutcome};
use crate::upstream::{Employee, EmployeeFacts, Source};
use branchscore_scoring::kpi::FactSheet;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::BTreeMap;

/// A bonus period: whole months from `from` to `to`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodKey {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodStatus {
    Draft,
    Approved,
    Exported,
    Superseded,
}

impl PeriodStatus {
    fn as_str(self) -> &'static str {
        match self {
            PeriodStatus::Draft => "draft",
            PeriodStatus::Approved => "approved",
            PeriodStatus::Exported => "exported",
            PeriodStatus::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> sqlx::Result<Self> {
        [PeriodStatus::Draft, PeriodStatus::Approved, PeriodStatus::Exported, PeriodStatus::Superseded]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown period status {text:?}").into()))
    }

    /// Approved and exported versions are what payroll may use.
    pub fn is_approved(self) -> bool {
        matches!(self, PeriodStatus::Approved | PeriodStatus::Exported)
    }
}

/// One version of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodVersion {
    pub key: PeriodKey,
    pub version: i32,
    pub status: PeriodStatus,
    pub computed_at: DateTime<Utc>,
    pub computed_by: String,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub exported_at: Option<DateTime<Utc>>,
    pub currency: String,
}

fn version_from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<PeriodVersion> {
    Ok(PeriodVersion {
        key: PeriodKey { from: row.try_get("period_from")?, to: row.try_get("period_to")? },
        version: row.try_get("version")?,
        status: PeriodStatus::parse(row.try_get("status")?)?,
        computed_at: row.try_get("computed_at")?,
        computed_by: row.try_get("computed_by")?,
        approved_at: row.try_get("approved_at")?,
        approved_by: row.try_get("approved_by")?,
        exported_at: row.try_get("exported_at")?,
        currency: row.try_get("currency")?,
    })
}

/// Serialises writers of one period and returns its latest version, locked.
async fn lock_latest(tx: &mut Transaction<'_, Postgres>, key: PeriodKey) -> sqlx::Result<Option<PeriodVersion>> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kpi.period.' || $1::text || '.' || $2::text))")
        .bind(key.from)
        .bind(key.to)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "SELECT * FROM bonus_periods WHERE period_from = $1 AND period_to = $2 ORDER BY version DESC LIMIT 1 \
         FOR UPDATE",
    )
    .bind(key.from)
    .bind(key.to)
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(version_from_row)
    .transpose()
}

/// What a computation stores: everyone's facts and the bonus lines.
#[derive(Debug)]
pub struct ComputedPeriod<'a> {
    pub key: PeriodKey,
    pub roster: &'a [Employee],
    pub facts: &'a BTreeMap<String, EmployeeFacts>,
    pub lines: &'a [BonusLine],
    pub currency: &'a str,
    pub computed_by: &'a str,
    pub computed_at: DateTime<Utc>,
}

/// Stores a computation as the period's draft, all or nothing: it replaces
/// the draft if the latest version is one, else it becomes the next version.
pub async fn save_draft(pool: &PgPool, computed: &ComputedPeriod<'_>) -> sqlx::Result<PeriodVersion> {
    let key = computed.key;
    let mut tx = pool.begin().await?;
    let version = match lock_latest(&mut tx, key).await? {
        None => 1,
        Some(draft) if draft.status == PeriodStatus::Draft => {
            sqlx::query("DELETE FROM bonus_periods WHERE period_from = $1 AND period_to = $2 AND version = $3")
                .bind(key.from)
                .bind(key.to)
                .bind(draft.version)
                .execute(&mut *tx)
                .await?;
            draft.version
        }
        Some(latest) => latest.version + 1,
    };
    let row = sqlx::query(
        "INSERT INTO bonus_periods (period_from, period_to, version, status, computed_at, computed_by, currency) \
         VALUES ($1, $2, $3, 'draft', $4, $5, $6) RETURNING *",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(computed.computed_at)
    .bind(computed.computed_by)
    .bind(computed.currency)
    .fetch_one(&mut *tx)
    .await?;
    insert_facts(&mut tx, key, version, computed.roster, computed.facts).await?;
    for line in computed.lines {
        insert_line(&mut tx, key, version, line).await?;
    }
    tx.commit().await?;
    version_from_row(&row)
}

async fn insert_facts(
    tx: &mut Transaction<'_, Postgres>,
    key: PeriodKey,
    version: i32,
    roster: &[Employee],
    facts: &BTreeMap<String, EmployeeFacts>,
) -> sqlx::Result<()> {
    let empty = EmployeeFacts::default();
    let mut ids = Vec::new();
    let mut branches = Vec::new();
    let mut names = Vec::new();
    let mut roles = Vec::new();
    let mut leads = Vec::new();
    let mut active = Vec::new();
    let mut sheets = Vec::new();
    let (mut source_employees, mut source_facts, mut source_kinds, mut source_ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for employee in roster {
        let theirs = facts.get(&employee.id).unwrap_or(&empty);
        ids.push(employee.id.as_str());
        branches.push(employee.branch_id.as_str());
        names.push(employee.full_name.as_str());
        roles.push(role_name(employee.role));
        leads.push(employee.team_lead_id.as_str());
        active.push(employee.active);
        sheets.push(serde_json::to_string(&theirs.sheet.0).map_err(|e| sqlx::Error::Encode(e.into()))?);
        for source in &theirs.sources {
            source_employees.push(employee.id.as_str());
            source_facts.push(source.fact.as_str());
            source_kinds.push(source.kind.as_str());
            source_ids.push(source.id.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO period_facts (period_from, period_to, version, employee_id, branch_id, full_name, role, \
         team_lead_id, active, facts) SELECT $1, $2, $3, e, b, n, r, l, a, f::jsonb FROM UNNEST($4::text[], \
         $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[], $10::text[]) AS t(e, b, n, r, l, a, f)",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(&ids)
    .bind(&branches)
    .bind(&names)
    .bind(&roles)
    .bind(&leads)
    .bind(&active)
    .bind(&sheets)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO period_fact_sources (period_from, period_to, version, employee_id, fact, kind, source_id) \
         SELECT $1, $2, $3, e, f, k, i FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[]) AS t(e, f, k, i)",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(&source_employees)
    .bind(&source_facts)
    .bind(&source_kinds)
    .bind(&source_ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_line(
    tx: &mut Transaction<'_, Postgres>,
    key: PeriodKey,
    version: i32,
    line: &BonusLine,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bonus_lines (period_from, period_to, version, employee_id, branch_id, full_name, role, \
         scorecard_version, team_member_ids, weighted_attainment, base_bonus, bonus, rank, results) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(&line.employee_id)
    .bind(&line.branch_id)
    .bind(&line.full_name)
    .bind(role_name(line.role))
    .bind(line.scorecard_version)
    .bind(&line.team_member_ids)
    .bind(line.weighted_attainment)
    .bind(line.base_bonus)
    .bind(line.bonus)
    .bind(line.rank)
    .bind(Json(&line.results))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A version of the period: `version`, or the latest when `None`.
pub async fn period_version(
    pool: &PgPool,
    key: PeriodKey,
    version: Option<i32>,
) -> sqlx::Result<Option<PeriodVersion>> {
    sqlx::query(
        "SELECT * FROM bonus_periods WHERE period_from = $1 AND period_to = $2 AND ($3::int IS NULL OR version = $3) \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(version_from_row)
    .transpose()
}

/// The latest approved (or exported) version.
pub async fn approved_version(pool: &PgPool, key: PeriodKey) -> sqlx::Result<Option<PeriodVersion>> {
    sqlx::query(
        "SELECT * FROM bonus_periods WHERE period_from = $1 AND period_to = $2 AND status IN ('approved', 'exported') \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(key.from)
    .bind(key.to)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(version_from_row)
    .transpose()
}

/// Lines of a version in rank order, within the branch filter (and `branch_id` when not empty).
pub async fn bonus_lines(
    pool: &PgPool,
    key: PeriodKey,
    version: i32,
    branches: Option<&[String]>,
    branch_id: &str,
) -> sqlx::Result<Vec<BonusLine>> {
    let rows = sqlx::query(
        "SELECT * FROM bonus_lines WHERE period_from = $1 AND period_to = $2 AND version = $3 \
         AND ($4::text[] IS NULL OR branch_id = ANY($4)) AND ($5 = '' OR branch_id = $5) ORDER BY rank, employee_id",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(branches)
    .bind(branch_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let Json(results): Json<Vec<KpiOutcome>> = row.try_get("results")?;
            Ok(BonusLine {
                employee_id: row.try_get("employee_id")?,
                full_name: row.try_get("full_name")?,
                branch_id: row.try_get("branch_id")?,
                role: role_from_name(row.try_get("role")?)?,
                scorecard_version: row.try_get("scorecard_version")?,
                team_member_ids: row.try_get("team_member_ids")?,
                results,
                weighted_attainment: row.try_get("weighted_attainment")?,
                base_bonus: row.try_get("base_bonus")?,
                bonus: row.try_get("bonus")?,
                rank: row.try_get("rank")?,
            })
        })
        .collect()
}

/// Why a version cannot be approved.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalRefused {
    NotComputed,
    /// The latest version is not the draft asked for.
    NotTheDraft(PeriodVersion),
}

/// Approves the draft `version`; earlier approved versions become superseded.
pub async fn approve(
    pool: &PgPool,
    key: PeriodKey,
    version: i32,
    approved_by: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Result<PeriodVersion, ApprovalRefused>> {
    let mut tx = pool.begin().await?;
    let latest = match lock_latest(&mut tx, key).await? {
        None => return Ok(Err(ApprovalRefused::NotComputed)),
        Some(latest) if latest.status != PeriodStatus::Draft || latest.version != version => {
            return Ok(Err(ApprovalRefused::NotTheDraft(latest)));
        }
        Some(latest) => latest,
    };
    sqlx::query(
        "UPDATE bonus_periods SET status = 'superseded' WHERE period_from = $1 AND period_to = $2 \
         AND status IN ('approved', 'exported')",
    )
    .bind(key.from)
    .bind(key.to)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "UPDATE bonus_periods SET status = 'approved', approved_at = $4, approved_by = $5 \
         WHERE period_from = $1 AND period_to = $2 AND version = $3 RETURNING *",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(latest.version)
    .bind(now)
    .bind(approved_by)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    version_from_row(&row).map(Ok)
}

/// Records that `version` went to payroll.
pub async fn mark_exported(pool: &PgPool, key: PeriodKey, version: i32, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bonus_periods SET status = 'exported', exported_at = $4 \
         WHERE period_from = $1 AND period_to = $2 AND version = $3 AND status IN ('approved', 'exported')",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// The roster and facts a version was computed from; sources only for
/// `with_sources` employees (the breakdown needs them, the what-if does not).
pub async fn period_facts(
    pool: &PgPool,
    key: PeriodKey,
    version: i32,
    with_sources: &[String],
) -> sqlx::Result<(Vec<Employee>, BTreeMap<String, EmployeeFacts>)> {
    let rows = sqlx::query(
        "SELECT * FROM period_facts WHERE period_from = $1 AND period_to = $2 AND version = $3 ORDER BY employee_id",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .fetch_all(pool)
    .await?;
    let mut roster = Vec::with_capacity(rows.len());
    let mut facts = BTreeMap::new();
    for row in &rows {
        let employee = Employee {
            id: row.try_get("employee_id")?,
            branch_id: row.try_get("branch_id")?,
            full_name: row.try_get("full_name")?,
            role: role_from_name(row.try_get("role")?)?,
            team_lead_id: row.try_get("team_lead_id")?,
            active: row.try_get("active")?,
        };
        let Json(sheet): Json<BTreeMap<String, f64>> = row.try_get("facts")?;
        if !sheet.is_empty() {
            facts.insert(employee.id.clone(), EmployeeFacts { sheet: FactSheet(sheet), sources: Vec::new() });
        }
        roster.push(employee);
    }
    let sources = sqlx::query(
        "SELECT employee_id, fact, kind, source_id FROM period_fact_sources WHERE period_from = $1 \
         AND period_to = $2 AND version = $3 AND employee_id = ANY($4) ORDER BY employee_id, fact, kind, source_id",
    )
    .bind(key.from)
    .bind(key.to)
    .bind(version)
    .bind(with_sources)
    .fetch_all(pool)
    .await?;
    for row in &sources {
        let employee_id: String = row.try_get("employee_id")?;
        let source = Source { fact: row.try_get("fact")?, kind: row.try_get("kind")?, id: row.try_get("source_id")? };
        facts.entry(employee_id).or_insert_with(EmployeeFacts::default).sources.push(source);
    }
    Ok((roster, facts))
}
