//! Scores, their history, recompute runs and cluster profiles. A stored
//! score keeps the whole explained record (the protobuf the API and the
//! cache serve) beside the columns that queries filter and group on.
use branchscore_platform::copy::BinaryRows;
use branchscore_proto::clients::v1::{ClientHistoryEntry, ClientScore, ClusterProfile, MatrixCell, RecomputePhase};
use branchscore_proto::common::v1::{Date, Money};
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use prost::Message;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::time::Duration;

/// The columns of `client_scores` next to the encoded record.
#[derive(Debug, Clone)]
pub struct ScoreRow {
    pub client_id: String,
    pub as_of: NaiveDate,
    pub score: f64,
    pub score_class: String,
    pub abc_class: i16,
    pub xyz_class: i16,
    pub rfm_code: String,
    pub rfm_segment: String,
    pub lifecycle_status: i16,
    pub window_revenue_minor: i64,
    pub currency: String,
    pub settings_version: i64,
    pub cluster: Option<i32>,
    /// Fingerprint of the score without what every run changes (its date,
    /// time and the recency counted to that date): equal fingerprints, same score.
    pub content_hash: i64,
    pub record: Vec<u8>,
}

impl From<ClientScore> for ScoreRow {
    fn from(mut score: ClientScore) -> Self {
        let revenue = score.window_revenue.clone().unwrap_or_default();
        // The record is the content's encoding followed by the run's fields:
        // protobuf reads concatenated encodings as one message, so the
        // content is encoded once for both.
        let run = ClientScore {
            as_of: score.as_of.take(),
            compute_time: score.compute_time.take(),
            recency_days: std::mem::take(&mut score.recency_days),
            ..ClientScore::default()
        };
        // Allocated once and exactly: a million records are held at once,
        // and growing one would copy it and could leave spare capacity.
        let mut record = Vec::with_capacity(score.encoded_len() + run.encoded_len());
        score.encode(&mut record).expect("a Vec always has room");
        let content_hash = fingerprint(&record);
        run.encode(&mut record).expect("a Vec always has room");
        ScoreRow {
            client_id: score.client_id,
            as_of: run.as_of.and_then(|d| d.to_naive()).unwrap_or_default(),
            score: score.score,
            score_class: score.score_class,
            abc_class: score.abc_class as i16,
            xyz_class: score.xyz_class as i16,
            rfm_code: score.rfm_code,
            rfm_segment: score.rfm_segment,
            lifecycle_status: score.lifecycle_status as i16,
            window_revenue_minor: revenue.minor_units,
            currency: revenue.currency,
            settings_version: score.settings_version,
            cluster: (score.cluster >= 0).then_some(score.cluster),
            content_hash,
            record,
        }
    }
}

impl From<&ClientScore> for ScoreRow {
    fn from(score: &ClientScore) -> Self {
        ScoreRow::from(score.clone())
    }
}

/// 64-bit FNV-1a: stable across builds (it is stored), and a score changes
/// its own fingerprint with odds of 2^-64 of a collision.
fn fingerprint(bytes: &[u8]) -> i64 {
    let hash = bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Stored scores of `ids` within `scope` (branch as the client is now).
pub async fn scores_by_ids(pool: &PgPool, ids: &[String], scope: Option<&[String]>) -> sqlx::Result<Vec<ClientScore>> {
    let rows = sqlx::query(
        "SELECT s.record, c.branch_id FROM client_scores s JOIN clients c ON c.id = s.client_id
         WHERE s.client_id = ANY($1) AND ($2::text[] IS NULL OR c.branch_id = ANY($2))",
    )
    .bind(ids)
    .bind(scope)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let record: Vec<u8> = row.try_get("record")?;
            let mut score = ClientScore::decode(record.as_slice()).map_err(|err| sqlx::Error::Decode(err.into()))?;
            score.branch_id = row.try_get("branch_id")?;
            Ok(score)
        })
        .collect()
}

/// Rows per COPY message.
const COPY_CHUNK: usize = 10_000;

/// The columns of `client_scores` a write gives, in COPY order.
const SCORE_COLUMNS: &str = "client_id, as_of, score, score_class, abc_class, xyz_class, rfm_code, rfm_segment, \
     lifecycle_status, window_revenue_minor, currency, settings_version, cluster, content_hash, record, run_id";

/// What a score write wrote besides the scores.
#[derive(Debug, Default)]
pub struct ScoresWritten {
    /// History rows appended (or replaced, for a date run again).
    pub history: u64,
}

/// How a client's new score compares with its stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// No stored score: the client is scored for the first time.
    Absent,
    /// The stored score has the same content (fingerprint).
    Same,
    /// The stored score differs.
    Different,
}

/// Writes the latest score of each client in `rows` (distinct clients):
/// [`compare_scores`], then [`ScoreWrite::write`]. `progress` hears WRITING
/// as the comparison starts, then what [`ScoreWrite::write`] reports.
pub async fn write_scores(
    tx: &mut Transaction<'_, Postgres>,
    run_id: Option<i64>,
    rows: &[ScoreRow],
    mut progress: impl FnMut(RecomputePhase, u64),
) -> sqlx::Result<ScoresWritten> {
    progress(RecomputePhase::Writing, 0);
    compare_scores(tx, rows).await?.write(tx, run_id, progress).await
}

/// Sorts the latest score of each client in `rows` (distinct clients) into
/// first, changed and the same as stored, to be written by [`ScoreWrite::write`].
///
/// The table is locked against other writers (not readers) first, so the
/// stored scores read here are the stored scores until the commit, and a
/// first score cannot meet a row written meanwhile. A client without a
/// stored score has no history either: both are written in one transaction
/// and neither is ever deleted on its own.
pub async fn compare_scores<'r>(
    tx: &mut Transaction<'_, Postgres>,
    rows: &'r [ScoreRow],
) -> sqlx::Result<ScoreWrite<'r>> {
    sqlx::query("LOCK TABLE client_scores IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
    let mut write =
        ScoreWrite { all: rows.len() as u64, first: Vec::new(), changed: Vec::new(), rewritten: Vec::new() };
    for (i, stored) in compare_with_stored(tx, rows).await?.into_iter().enumerate() {
        match stored {
            Stored::Absent => write.first.push(&rows[i]),
            Stored::Different => write.changed.push(&rows[i]),
            Stored::Same => continue,
        }
        write.rewritten.push(i);
    }
    Ok(write)
}

/// The scores of a run sorted against the stored ones, to be written in
/// the transaction that compared them.
#[derive(Debug)]
pub struct ScoreWrite<'r> {
    all: u64,
    /// Clients scored for the first time.
    first: Vec<&'r ScoreRow>,
    /// Clients whose stored score has other content.
    changed: Vec<&'r ScoreRow>,
    /// Indices (into the rows compared) of the first and changed scores.
    rewritten: Vec<usize>,
}

impl ScoreWrite<'_> {
    /// Indices (into the rows compared) of the scores the write inserts or
    /// rewrites; every other client's stored score has the same content.
    pub fn rewritten(&self) -> &[usize] {
        &self.rewritten
    }

    /// Writes the scores compared.
    ///
    /// A score whose content (fingerprint) is the stored one's is left
    /// alone: a nightly run changes few clients, and reads bring an older
    /// record up to the newest run (`explain::rebase`). A client scored for
    /// the first time gets its score and (for a run) its first history row
    /// by binary COPY straight into the tables, the bulk of a first run. A
    /// changed score is staged in a temporary table by binary COPY, then one
    /// statement appends a history row for each client whose classes,
    /// lifecycle status or score band differ from its stored score (only
    /// for a run) and one rewrites them: set-based, so Postgres joins and
    /// writes a million clients in a pass instead of a statement per chunk.
    ///
    /// `progress` hears the rows staged so far as WRITING, then the rows
    /// done of each step: RECORDING_HISTORY (only for a run) and STORING,
    /// each ending with all rows.
    pub async fn write(
        self,
        tx: &mut Transaction<'_, Postgres>,
        run_id: Option<i64>,
        mut progress: impl FnMut(RecomputePhase, u64),
    ) -> sqlx::Result<ScoresWritten> {
        let ScoreWrite { all, first, changed, .. } = self;
        if !changed.is_empty() {
            stage(tx, run_id, &changed, |staged| progress(RecomputePhase::Writing, staged)).await?;
        }
        let history = match run_id {
            Some(run_id) => {
                progress(RecomputePhase::RecordingHistory, 0);
                let moved = if changed.is_empty() { 0 } else { record_changes(tx, run_id).await? };
                let done = changed.len() as u64;
                copy_first_history(tx, run_id, &first, |copied| {
                    progress(RecomputePhase::RecordingHistory, done + copied)
                })
                .await?;
                progress(RecomputePhase::RecordingHistory, all);
                moved + first.len() as u64
            }
            None => 0,
        };
        progress(RecomputePhase::Storing, 0);
        if !changed.is_empty() {
            sqlx::query(
                "UPDATE client_scores o SET as_of = n.as_of, score = n.score, score_class = n.score_class,
                     abc_class = n.abc_class, xyz_class = n.xyz_class, rfm_code = n.rfm_code,
                     rfm_segment = n.rfm_segment, lifecycle_status = n.lifecycle_status,
                     window_revenue_minor = n.window_revenue_minor, currency = n.currency,
                     settings_version = n.settings_version, cluster = n.cluster, content_hash = n.content_hash,
                     record = n.record, run_id = n.run_id, computed_at = now()
                 FROM staged_scores n
                 WHERE o.client_id = n.client_id",
            )
            .execute(&mut **tx)
            .await?;
        }
        let done = changed.len() as u64;
        let statement = format!("COPY client_scores ({SCORE_COLUMNS}) FROM STDIN (FORMAT binary)");
        copy_scores(tx, &statement, run_id, &first, |copied| progress(RecomputePhase::Storing, done + copied)).await?;
        progress(RecomputePhase::Storing, all);
        Ok(ScoresWritten { history })
    }
}

/// Stages changed scores in `staged_scores` (dropped at commit).
async fn stage(
    tx: &mut Transaction<'_, Postgres>,
    run_id: Option<i64>,
    changed: &[&ScoreRow],
    progress: impl FnMut(u64),
) -> sqlx::Result<()> {
    sqlx::query("DROP TABLE IF EXISTS pg_temp.staged_scores").execute(&mut **tx).await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE staged_scores ON COMMIT DROP AS
         SELECT client_id, as_of, score, score_class, abc_class, xyz_class, rfm_code, rfm_segment, lifecycle_status,
                window_revenue_minor, currency, settings_version, cluster, content_hash, record, run_id
         FROM client_scores WITH NO DATA",
    )
    .execute(&mut **tx)
    .await?;
    copy_scores(tx, "COPY staged_scores FROM STDIN (FORMAT binary)", run_id, changed, progress).await?;
    // Without statistics the planner would guess a few rows and loop over the index.
    sqlx::query("ANALYZE staged_scores").execute(&mut **tx).await?;
    Ok(())
}

/// Appends a history row for each staged score whose classes, lifecycle
/// status or score band differ from the stored score's; the rows appended.
async fn record_changes(tx: &mut Transaction<'_, Postgres>, run_id: i64) -> sqlx::Result<u64> {
    let appended = sqlx::query(
        "INSERT INTO client_class_history (client_id, as_of, run_id, abc_class, xyz_class, rfm_segment,
             lifecycle_status, previous_lifecycle_status, score_class, settings_version, previous_abc_class)
         SELECT n.client_id, n.as_of, $1, n.abc_class, n.xyz_class, n.rfm_segment, n.lifecycle_status,
                o.lifecycle_status, n.score_class, n.settings_version, o.abc_class
         FROM staged_scores n JOIN client_scores o ON o.client_id = n.client_id
         WHERE (o.abc_class, o.xyz_class, o.rfm_segment, o.lifecycle_status, o.score_class)
               IS DISTINCT FROM (n.abc_class, n.xyz_class, n.rfm_segment, n.lifecycle_status, n.score_class)
         ON CONFLICT (client_id, as_of) DO UPDATE SET run_id = EXCLUDED.run_id, abc_class = EXCLUDED.abc_class,
             xyz_class = EXCLUDED.xyz_class, rfm_segment = EXCLUDED.rfm_segment,
             lifecycle_status = EXCLUDED.lifecycle_status, score_class = EXCLUDED.score_class,
             settings_version = EXCLUDED.settings_version",
    )
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(appended.rows_affected())
}

/// COPYs `rows` with `run_id` into the table of `statement` (the columns of
/// [`SCORE_COLUMNS`], in order), reporting the rows sent after each chunk.
async fn copy_scores(
    tx: &mut Transaction<'_, Postgres>,
    statement: &str,
    run_id: Option<i64>,
    rows: &[&ScoreRow],
    progress: impl FnMut(u64),
) -> sqlx::Result<()> {
    copy_rows(tx, statement, rows, progress, |encoded, r| {
        encoded
            .row(16)
            .text(&r.client_id)
            .date(r.as_of)
            .f64(r.score)
            .text(&r.score_class)
            .i16(r.abc_class)
            .i16(r.xyz_class)
            .text(&r.rfm_code)
            .text(&r.rfm_segment)
            .i16(r.lifecycle_status)
            .i64(r.window_revenue_minor)
            .text(&r.currency)
            .i64(r.settings_version)
            .optional_i32(r.cluster)
            .i64(r.content_hash)
            .bytes(&r.record)
            .optional_i64(run_id);
    })
    .await
}

/// COPYs the first history row of each client scored for the first time.
async fn copy_first_history(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    rows: &[&ScoreRow],
    progress: impl FnMut(u64),
) -> sqlx::Result<()> {
    let statement = "COPY client_class_history (client_id, as_of, run_id, abc_class, xyz_class, rfm_segment,
             lifecycle_status, previous_lifecycle_status, score_class, settings_version, previous_abc_class)
         FROM STDIN (FORMAT binary)";
    copy_rows(tx, statement, rows, progress, |encoded, r| {
        encoded
            .row(11)
            .text(&r.client_id)
            .date(r.as_of)
            .i64(run_id)
            .i16(r.abc_class)
            .i16(r.xyz_class)
            .text(&r.rfm_segment)
            .i16(r.lifecycle_status)
            .i16(0)
            .text(&r.score_class)
            .i64(r.settings_version)
            .i16(0);
    })
    .await
}

/// Runs the binary COPY `statement` over `rows` (nothing when there are
/// none), `COPY_CHUNK` rows per message, reporting the rows sent so far.
async fn copy_rows(
    tx: &mut Transaction<'_, Postgres>,
    statement: &str,
    rows: &[&ScoreRow],
    mut progress: impl FnMut(u64),
    encode: impl Fn(&mut BinaryRows, &ScoreRow),
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = tx.copy_in_raw(statement).await?;
    let mut encoded = BinaryRows::new();
    for chunk in rows.chunks(COPY_CHUNK) {
        for row in chunk {
            encode(&mut encoded, row);
        }
        copy.send(encoded.take()).await?;
        progress(encoded.rows());
    }
    copy.send(encoded.finish()).await?;
    copy.finish().await?;
    Ok(())
}

/// How each of `rows` compares with its stored score, read in one pass over
/// the stored fingerprints (found by binary search among the rows sorted by
/// id, which costs 8 bytes a row rather than a map's dozens).
async fn compare_with_stored(tx: &mut Transaction<'_, Postgres>, rows: &[ScoreRow]) -> sqlx::Result<Vec<Stored>> {
    let mut by_id: Vec<usize> = (0..rows.len()).collect();
    by_id.sort_unstable_by(|&a, &b| rows[a].client_id.cmp(&rows[b].client_id));
    let mut stored = vec![Stored::Absent; rows.len()];
    let mut scores = sqlx::query("SELECT client_id, content_hash FROM client_scores").fetch(&mut **tx);
    while let Some(row) = scores.try_next().await? {
        let (client_id, content_hash): (&str, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        if let Ok(at) = by_id.binary_search_by(|&i| rows[i].client_id.as_str().cmp(client_id)) {
            let i = by_id[at];
            stored[i] = if content_hash == Some(rows[i].content_hash) { Stored::Same } else { Stored::Different };
        }
    }
    Ok(stored)
}

/// The recompute runs as score reads need them.
#[derive(Debug, Default)]
pub struct Runs {
    /// The newest finished run's date and start (every score it wrote
    /// carries that start as its compute time).
    pub newest: Option<(NaiveDate, DateTime<Utc>)>,
    /// The starts of the runs not finished (failed, or still writing) whose
    /// cached scores may still be in Redis.
    pub unfinished: Vec<DateTime<Utc>>,
}

/// The newest finished run and the unfinished ones, less those followed by
/// a run that started more than `cached_for` ago: one run at a time, so a
/// run that did not finish had set its keys before the next one started,
/// and keys live at most `cached_for`.
pub async fn known_runs(pool: &PgPool, cached_for: Duration) -> sqlx::Result<Runs> {
    let rows = sqlx::query(
        "(SELECT as_of, started_at, true AS finished FROM recompute_runs
          WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1)
         UNION ALL
         SELECT as_of, started_at, false FROM recompute_runs run
          WHERE finished_at IS NULL
            AND NOT EXISTS (SELECT FROM recompute_runs later
                             WHERE later.started_at > run.started_at
                               AND later.started_at < now() - $1 * interval '1 second')",
    )
    .bind(cached_for.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut runs = Runs::default();
    for row in rows {
        let started_at = row.try_get("started_at")?;
        if row.try_get("finished")? {
            runs.newest = Some((row.try_get("as_of")?, started_at));
        } else {
            runs.unfinished.push(started_at);
        }
    }
    Ok(runs)
}

/// A client's history, newest first.
pub async fn history(pool: &PgPool, client_id: &str, limit: i64) -> sqlx::Result<Vec<ClientHistoryEntry>> {
    let rows = sqlx::query(
        "SELECT as_of, abc_class, xyz_class, rfm_segment, lifecycle_status, previous_lifecycle_status, score_class,
                settings_version
         FROM client_class_history WHERE client_id = $1 ORDER BY as_of DESC LIMIT $2",
    )
    .bind(client_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ClientHistoryEntry {
                as_of: Some(Date::from(row.try_get::<NaiveDate, _>("as_of")?)),
                abc_class: i32::from(row.try_get::<i16, _>("abc_class")?),
                xyz_class: i32::from(row.try_get::<i16, _>("xyz_class")?),
                rfm_segment: row.try_get("rfm_segment")?,
                lifecycle_status: i32::from(row.try_get::<i16, _>("lifecycle_status")?),
                previous_lifecycle_status: i32::from(row.try_get::<i16, _>("previous_lifecycle_status")?),
                score_class: row.try_get("score_class")?,
                settings_version: row.try_get("settings_version")?,
            })
        })
        .collect()
}

/// Clients and window revenue per ABC x XYZ cell of the stored scores, and
/// the latest date any of them was written on (a run leaves unchanged
/// scores alone, so the newest run's date is the caller's to add).
pub async fn abc_xyz_matrix(
    pool: &PgPool,
    scope: Option<&[String]>,
    branch_id: &str,
    currency: &str,
) -> sqlx::Result<(Option<NaiveDate>, Vec<MatrixCell>)> {
    let rows = sqlx::query(
        "SELECT s.abc_class, s.xyz_class, count(*) AS clients, sum(s.window_revenue_minor)::bigint AS revenue,
                max(s.as_of) AS as_of
         FROM client_scores s JOIN clients c ON c.id = s.client_id
         WHERE ($1::text[] IS NULL OR c.branch_id = ANY($1)) AND ($2 = '' OR c.branch_id = $2)
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(scope)
    .bind(branch_id)
    .fetch_all(pool)
    .await?;
    let mut as_of: Option<NaiveDate> = None;
    let mut cells = Vec::with_capacity(rows.len());
    for row in &rows {
        let date: NaiveDate = row.try_get("as_of")?;
        as_of = Some(as_of.map_or(date, |d| d.max(date)));
        cells.push(MatrixCell {
            abc_class: i32::from(row.try_get::<i16, _>("abc_class")?),
            xyz_class: i32::from(row.try_get::<i16, _>("xyz_class")?),
            clients: row.try_get("clients")?,
            window_revenue: Some(Money { minor_units: row.try_get("revenue")?, currency: currency.into() }),
        });
    }
    Ok((as_of, cells))
}

/// Records the start of a run: its id names every row it writes, and its
/// start (Postgres's clock) is the compute time of every score it computes.
pub async fn start_run(
    pool: &PgPool,
    as_of: NaiveDate,
    settings_version: i64,
    requested_by: &str,
) -> sqlx::Result<(i64, DateTime<Utc>)> {
    let row = sqlx::query(
        "INSERT INTO recompute_runs (as_of, settings_version, requested_by) VALUES ($1, $2, $3)
         RETURNING id, started_at",
    )
    .bind(as_of)
    .bind(settings_version)
    .bind(requested_by)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("id")?, row.try_get("started_at")?))
}

/// What a finished run produced.
#[derive(Debug, Clone, Copy)]
pub struct RunOutcome {
    pub clients: i64,
    pub changed: i64,
    pub clusters: i32,
    pub silhouette: f64,
}

pub async fn finish_run(tx: &mut Transaction<'_, Postgres>, run_id: i64, outcome: RunOutcome) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recompute_runs SET finished_at = now(), clients = $2, changed = $3, clusters = $4, silhouette = $5
         WHERE id = $1",
    )
    .bind(run_id)
    .bind(outcome.clients)
    .bind(outcome.changed)
    .bind(outcome.clusters)
    .bind(outcome.silhouette)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_cluster_profiles(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    profiles: &[ClusterProfile],
) -> sqlx::Result<()> {
    let money = |m: &Option<Money>| m.as_ref().map_or(0.0, |m| m.minor_units as f64);
    sqlx::query(
        "INSERT INTO cluster_profiles (run_id, cluster, clients, revenue_share, recency_days, frequency, monetary,
             average_ticket, purchase_interval_days, product_lines, label)
         SELECT $1, * FROM UNNEST($2::int[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
             $8::float8[], $9::float8[], $10::float8[], $11::text[])",
    )
    .bind(run_id)
    .bind(profiles.iter().map(|p| p.cluster).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.clients).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.revenue_share).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.recency_days).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.frequency).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| money(&p.monetary)).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| money(&p.average_ticket)).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.purchase_interval_days).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.product_lines).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.label.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The latest finished run: (run id, as of, silhouette, profiles).
pub async fn latest_cluster_profiles(
    pool: &PgPool,
    currency: &str,
) -> sqlx::Result<Option<(i64, NaiveDate, f64, Vec<ClusterProfile>)>> {
    let Some(run) = sqlx::query(
        "SELECT id, as_of, silhouette FROM recompute_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let run_id: i64 = run.try_get("id")?;
    let rows = sqlx::query("SELECT * FROM cluster_profiles WHERE run_id = $1 ORDER BY cluster")
        .bind(run_id)
        .fetch_all(pool)
        .await?;
    let money = |units: f64| Some(Money { minor_units: units.round() as i64, currency: currency.into() });
    let profiles = rows
        .iter()
        .map(|row| {
            Ok(ClusterProfile {
                cluster: row.try_get("cluster")?,
                clients: row.try_get("clients")?,
                revenue_share: row.try_get("revenue_share")?,
                recency_days: row.try_get("recency_days")?,
                frequency: row.try_get("frequency")?,
                monetary: money(row.try_get("monetary")?),
                average_ticket: money(row.try_get("average_ticket")?),
                purchase_interval_days: row.try_get("purchase_interval_days")?,
                product_lines: row.try_get("product_lines")?,
                label: row.try_get("label")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Some((run_id, run.try_get("as_of")?, run.try_get("silhouette")?, profiles)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(day: u32, recency_days: i64) -> ClientScore {
        ClientScore {
            client_id: "C-1".into(),
            as_of: NaiveDate::from_ymd_opt(2026, 11, day).map(Date::from),
            score: 71.5,
            rfm_code: "545".into(),
            recency_days,
            compute_time: Some(prost_types::Timestamp { seconds: i64::from(day) * 86_400, nanos: 0 }),
            ..ClientScore::default()
        }
    }

    #[test]
    fn the_fingerprint_ignores_what_every_run_changes_and_the_record_holds_it_all() {
        let (monday, tuesday) = (ScoreRow::from(&score(23, 18)), ScoreRow::from(&score(24, 19)));
        assert_eq!(monday.content_hash, tuesday.content_hash);
        assert_ne!(monday.record, tuesday.record);
        assert_eq!(ClientScore::decode(tuesday.record.as_slice()).expect("decodes"), score(24, 19));
        assert_eq!(tuesday.record.capacity(), tuesday.record.len(), "a million are held at once");
        let higher = ScoreRow::from(&ClientScore { score: 71.6, ..score(24, 19) });
        assert_ne!(higher.content_hash, tuesday.content_hash);
    }

    #[test]
    fn fingerprints_are_fnv_1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
    }
}
