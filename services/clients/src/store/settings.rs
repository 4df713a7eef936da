//! Versions of the scoring settings.
use branchscore_scoring::ScoringSettings;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Row};

/// One stored version.
#[derive(Debug, Clone)]
pub struct StoredSettings {
    /// 0 = the built-in defaults (no row).
    pub version: i64,
    pub effective_from: NaiveDate,
    pub settings: ScoringSettings,
    pub comment: String,
    pub created_by: String,
    pub created_at: Option<DateTime<Utc>>,
}

impl StoredSettings {
    /// The built-in defaults of domain.md, in effect until a version is stored.
    pub fn built_in() -> Self {
        StoredSettings {
            version: 0,
            effective_from: NaiveDate::MIN,
            settings: ScoringSettings::default(),
            comment: "built-in defaults".into(),
            created_by: String::new(),
            created_at: None,
        }
    }
}

fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<StoredSettings> {
    let Json(settings): Json<ScoringSettings> = row.try_get("settings")?;
    Ok(StoredSettings {
        version: row.try_get("version")?,
        effective_from: row.try_get("effective_from")?,
        settings,
        comment: row.try_get("comment")?,
        created_by: row.try_get("created_by")?,
        created_at: Some(row.try_get("created_at")?),
    })
}

/// The version in effect on `as_of`: the latest effective date on or before
/// it, the highest version among equals; the built-in defaults if none.
pub async fn effective<'e>(db: impl sqlx::PgExecutor<'e>, as_of: NaiveDate) -> sqlx::Result<StoredSettings> {
    let row = sqlx::query(
        "SELECT * FROM scoring_settings WHERE effective_from <= $1 ORDER BY effective_from DESC, version DESC LIMIT 1",
    )
    .bind(as_of)
    .fetch_optional(db)
    .await?;
    row.as_ref().map_or_else(|| Ok(StoredSettings::built_in()), from_row)
}

/// Every version, newest first, ending with the built-in defaults.
pub async fn all(pool: &PgPool) -> sqlx::Result<Vec<StoredSettings>> {
    let rows = sqlx::query("SELECT * FROM scoring_settings ORDER BY version DESC").fetch_all(pool).await?;
    let mut versions = rows.iter().map(from_row).collect::<sqlx::Result<Vec<_>>>()?;
    versions.push(StoredSettings::built_in());
    Ok(versions)
}

pub async fn insert(
    pool: &PgPool,
    effective_from: NaiveDate,
    settings: &ScoringSettings,
    comment: &str,
    created_by: &str,
) -> sqlx::Result<StoredSettings> {
    let row = sqlx::query(
        "INSERT INTO scoring_settings (effective_from, settings, comment, created_by) VALUES ($1, $2, $3, $4)
         RETURNING *",
    )
    .bind(effective_from)
    .bind(Json(settings))
    .bind(comment)
    .bind(created_by)
    .fetch_one(pool)
    .await?;
    from_row(&row)
}
