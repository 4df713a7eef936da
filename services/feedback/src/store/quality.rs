//! BARS competencies, evaluations, dialog checklists and reviews.
use crate::convert::{code, date, timestamp};
use branchscore_proto::feedback::v1::{
    BehaviourAnchor, Checklist, ChecklistCriterion, Competency, CompetencyRating, CriterionResult, DialogReview,
    Evaluation,
};
use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;
use uuid::Uuid;

pub async fn upsert_competencies(tx: &mut Transaction<'_, Postgres>, competencies: &[Competency]) -> sqlx::Result<()> {
    let text = |f: fn(&Competency) -> &String| competencies.iter().map(f).cloned().collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO competencies (id, name, description)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, updated_at = now()",
    )
    .bind(text(|c| &c.id))
    .bind(text(|c| &c.name))
    .bind(text(|c| &c.description))
    .execute(&mut **tx)
    .await?;
    let anchors: Vec<(&String, &BehaviourAnchor)> =
        competencies.iter().flat_map(|c| c.anchors.iter().map(move |a| (&c.id, a))).collect();
    sqlx::query(
        "INSERT INTO competency_anchors (competency_id, level, behaviour)
         SELECT * FROM UNNEST($1::text[], $2::smallint[], $3::text[])
         ON CONFLICT (competency_id, level) DO UPDATE SET behaviour = EXCLUDED.behaviour",
    )
    .bind(anchors.iter().map(|(id, _)| (*id).clone()).collect::<Vec<_>>())
    .bind(anchors.iter().map(|(_, a)| a.level as i16).collect::<Vec<_>>())
    .bind(anchors.iter().map(|(_, a)| a.behaviour.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Competencies (all when `ids` is `None`) with their anchors, by id.
pub async fn competencies(pool: &PgPool, ids: Option<&[String]>) -> sqlx::Result<Vec<Competency>> {
    let rows = sqlx::query(
        "SELECT c.id, c.name, c.description, a.level, a.behaviour
         FROM competencies c JOIN competency_anchors a ON a.competency_id = c.id
         WHERE $1::text[] IS NULL OR c.id = ANY($1) ORDER BY c.id, a.level",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut competencies: Vec<Competency> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if competencies.last().is_none_or(|c| c.id != id) {
            competencies.push(Competency {
                id,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                anchors: Vec::new(),
            });
        }
        if let Some(competency) = competencies.last_mut() {
            competency.anchors.push(BehaviourAnchor {
                level: i32::from(row.try_get::<i16, _>("level")?),
                behaviour: row.try_get("behaviour")?,
            });
        }
    }
    Ok(competencies)
}

/// Adds the next version of a checklist, creating it on its first version.
pub async fn create_checklist_version(
    tx: &mut Transaction<'_, Postgres>,
    checklist: &Checklist,
    created_by: &str,
) -> sqlx::Result<Checklist> {
    sqlx::query("INSERT INTO checklists (id) VALUES ($1) ON CONFLICT (id) DO NOTHING")
        .bind(&checklist.id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT id FROM checklists WHERE id = $1 FOR UPDATE").bind(&checklist.id).execute(&mut **tx).await?;
    let (version, created_at): (i32, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "INSERT INTO checklist_versions (checklist_id, version, name, created_by)
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3 FROM checklist_versions WHERE checklist_id = $1
         RETURNING version, created_at",
    )
    .bind(&checklist.id)
    .bind(&checklist.name)
    .bind(created_by)
    .fetch_one(&mut **tx)
    .await?;
    let text = |f: fn(&ChecklistCriterion) -> &String| checklist.criteria.iter().map(f).cloned().collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO checklist_criteria (checklist_id, version, position, code, text, weight)
         SELECT $1, $2, position::smallint, code, text, weight
         FROM UNNEST($3::text[], $4::text[], $5::integer[]) WITH ORDINALITY AS c (code, text, weight, position)",
    )
    .bind(&checklist.id)
    .bind(version)
    .bind(text(|c| &c.code))
    .bind(text(|c| &c.text))
    .bind(checklist.criteria.iter().map(|c| c.weight).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(Checklist { version, create_time: Some(timestamp(created_at)), ..checklist.clone() })
}

/// The latest version of every checklist, or one version of one (`None` = its latest).
pub async fn checklists(pool: &PgPool, one: Option<(&str, Option<i32>)>) -> sqlx::Result<Vec<Checklist>> {
    let (id, version) = one.map_or((None, None), |(id, version)| (Some(id), version));
    let rows = sqlx::query(
        "WITH chosen AS (
             SELECT DISTINCT ON (checklist_id) checklist_id, version, name, created_at FROM checklist_versions
             WHERE ($1::text IS NULL OR checklist_id = $1) AND ($2::integer IS NULL OR version = $2)
             ORDER BY checklist_id, version DESC
         )
         SELECT v.checklist_id, v.version, v.name, v.created_at, c.code, c.text, c.weight
         FROM chosen v JOIN checklist_criteria c ON c.checklist_id = v.checklist_id AND c.version = v.version
         ORDER BY v.checklist_id, c.position",
    )
    .bind(id)
    .bind(version)
    .fetch_all(pool)
    .await?;
    let mut checklists: Vec<Checklist> = Vec::new();
    for row in rows {
        let id: String = row.try_get("checklist_id")?;
        if checklists.last().is_none_or(|c| c.id != id) {
            checklists.push(Checklist {
                id,
                version: row.try_get("version")?,
                name: row.try_get("name")?,
                criteria: Vec::new(),
                create_time: Some(timestamp(row.try_get("created_at")?)),
            });
        }
        if let Some(checklist) = checklists.last_mut() {
            checklist.criteria.push(ChecklistCriterion {
                code: row.try_get("code")?,
                text: row.try_get("text")?,
                weight: row.try_get("weight")?,
            });
        }
    }
    Ok(checklists)
}

/// Stores an evaluation; `false` when its request id was used already.
pub async fn insert_evaluation(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    request_id: &str,
    e: &Evaluation,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO evaluations (id, request_id, employee_id, branch_id, evaluator_kind, evaluator, evaluated_on, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(id)
    .bind(request_id)
    .bind(&e.employee_id)
    .bind(&e.branch_id)
    .bind(e.evaluator_kind as i16)
    .bind(&e.evaluator)
    .bind(e.evaluated_on.as_ref().and_then(|d| d.to_naive()))
    .bind(&e.note)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO evaluation_ratings (evaluation_id, competency_id, level, evidence, anchor)
         SELECT $1, * FROM UNNEST($2::text[], $3::smallint[], $4::text[], $5::text[])",
    )
    .bind(id)
    .bind(e.ratings.iter().map(|r| r.competency_id.clone()).collect::<Vec<_>>())
    .bind(e.ratings.iter().map(|r| r.level as i16).collect::<Vec<_>>())
    .bind(e.ratings.iter().map(|r| r.evidence.clone()).collect::<Vec<_>>())
    .bind(e.ratings.iter().map(|r| r.anchor.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

pub async fn evaluation_by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Option<Evaluation>> {
    let rows = sqlx::query(
        "SELECT e.id, e.employee_id, e.branch_id, e.evaluator_kind, e.evaluator, e.evaluated_on, e.note, e.created_at,
                r.competency_id, r.level, r.evidence, r.anchor
         FROM evaluations e JOIN evaluation_ratings r ON r.evaluation_id = e.id
         WHERE e.request_id = $1 ORDER BY r.competency_id",
    )
    .bind(request_id)
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let id: Uuid = first.try_get("id")?;
    Ok(Some(Evaluation {
        id: id.to_string(),
        employee_id: first.try_get("employee_id")?,
        branch_id: first.try_get("branch_id")?,
        evaluator_kind: code(first.try_get("evaluator_kind")?),
        evaluator: first.try_get("evaluator")?,
        evaluated_on: date(first.try_get("evaluated_on")?),
        ratings: rows
            .iter()
            .map(|row| {
                Ok(CompetencyRating {
                    competency_id: row.try_get("competency_id")?,
                    level: i32::from(row.try_get::<i16, _>("level")?),
                    evidence: row.try_get("evidence")?,
                    anchor: row.try_get("anchor")?,
                })
            })
            .collect::<sqlx::Result<_>>()?,
        note: first.try_get("note")?,
        create_time: Some(timestamp(first.try_get("created_at")?)),
    }))
}

/// Stores a dialog review; `false` when its request id was used already.
pub async fn insert_review(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    request_id: &str,
    r: &DialogReview,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO dialog_reviews (id, request_id, checklist_id, checklist_version, employee_id, branch_id,
             dialog_ref, reviewed_on, compliance, reviewer)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(id)
    .bind(request_id)
    .bind(&r.checklist_id)
    .bind(r.checklist_version)
    .bind(&r.employee_id)
    .bind(&r.branch_id)
    .bind(&r.dialog_ref)
    .bind(r.reviewed_on.as_ref().and_then(|d| d.to_naive()))
    .bind(r.script_compliance_percent)
    .bind(&r.reviewer)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO dialog_review_results (review_id, code, outcome)
         SELECT $1, * FROM UNNEST($2::text[], $3::smallint[])",
    )
    .bind(id)
    .bind(r.results.iter().map(|c| c.code.clone()).collect::<Vec<_>>())
    .bind(r.results.iter().map(|c| c.outcome as i16).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

pub async fn review_by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Option<DialogReview>> {
    let rows = sqlx::query(
        "SELECT d.id, d.checklist_id, d.checklist_version, d.employee_id, d.branch_id, d.dialog_ref, d.reviewed_on,
                d.compliance, d.reviewer, d.created_at, r.code, r.outcome
         FROM dialog_reviews d JOIN dialog_review_results r ON r.review_id = d.id
         WHERE d.request_id = $1 ORDER BY r.code",
    )
    .bind(request_id)
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let id: Uuid = first.try_get("id")?;
    Ok(Some(DialogReview {
        id: id.to_string(),
        checklist_id: first.try_get("checklist_id")?,
        checklist_version: first.try_get("checklist_version")?,
        employee_id: first.try_get("employee_id")?,
        branch_id: first.try_get("branch_id")?,
        dialog_ref: first.try_get("dialog_ref")?,
        reviewed_on: date(first.try_get("reviewed_on")?),
        results: rows
            .iter()
            .map(|row| Ok(CriterionResult { code: row.try_get("code")?, outcome: code(row.try_get("outcome")?) }))
            .collect::<sqlx::Result<_>>()?,
        script_compliance_percent: first.try_get("compliance")?,
        reviewer: first.try_get("reviewer")?,
        create_time: Some(timestamp(first.try_get("created_at")?)),
    }))
}

/// One BARS rating or one dialog review in a period.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub day: NaiveDate,
    pub branch_id: String,
    pub employee_id: String,
    /// The evaluator kind, or 0 for a dialog review.
    pub evaluator_kind: i16,
    /// The evaluation or review it belongs to.
    pub source_id: Uuid,
    /// A BARS level (1-5) or a compliance % (0-100).
    pub value: f64,
}

/// Every rating and review in `[from, to]` matching the filters.
pub async fn judgements(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    scope: Option<&[String]>,
    branch_id: &str,
    employee_id: &str,
) -> sqlx::Result<Vec<Judgement>> {
    let rows = sqlx::query(
        "SELECT e.evaluated_on AS day, e.branch_id, e.employee_id, e.evaluator_kind AS kind, e.id AS source_id,
                r.level::double precision AS value
         FROM evaluations e JOIN evaluation_ratings r ON r.evaluation_id = e.id
         WHERE e.evaluated_on BETWEEN $1 AND $2
           AND ($3::text[] IS NULL OR e.branch_id = ANY($3)) AND ($4 = '' OR e.branch_id = $4)
           AND ($5 = '' OR e.employee_id = $5)
         UNION ALL
         SELECT reviewed_on, branch_id, employee_id, 0::smallint, id, compliance
         FROM dialog_reviews
         WHERE reviewed_on BETWEEN $1 AND $2
           AND ($3::text[] IS NULL OR branch_id = ANY($3)) AND ($4 = '' OR branch_id = $4)
           AND ($5 = '' OR employee_id = $5)",
    )
    .bind(from)
    .bind(to)
    .bind(scope)
    .bind(branch_id)
    .bind(employee_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Judgement {
                day: row.try_get("day")?,
                branch_id: row.try_get("branch_id")?,
                employee_id: row.try_get("employee_id")?,
                evaluator_kind: row.try_get("kind")?,
                source_id: row.try_get("source_id")?,
                value: row.try_get("value")?,
            })
        })
        .collect()
}

/// The anchor text of each (competency, level).
pub fn anchors(competencies: &[Competency]) -> HashMap<(String, i32), String> {
    competencies
        .iter()
        .flat_map(|c| c.anchors.iter().map(move |a| ((c.id.clone(), a.level), a.behaviour.clone())))
        .collect()
}
