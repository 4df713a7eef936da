//! `StaffQualityService`: BARS competencies and evaluations, dialog
//! checklists and reviews, and the quality score per employee and period.
use crate::Feedback;
use crate::convert::{self, Range};
use crate::store;
use crate::store::quality::Judgement;
use crate::surveys::DEFINERS;
use branchscore_platform::client::CallCredentials;
use branchscore_platform::error::ErrorCode;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::common::v1::Date;
use branchscore_proto::feedback::v1::staff_quality_service_server::StaffQualityService;
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::periods::{self, Granularity};
use branchscore_scoring::quality::{self, BARS_LEVELS, QualitySource};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Head office evaluates everyone; a branch manager evaluates as manager.
const EVALUATORS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager];
/// Dialog reviews are quality control's work.
const REVIEWERS: &[Role] = &[Role::Admin, Role::HqAnalyst];
const MAX_COMPETENCIES: usize = 100;
const MAX_CRITERIA: usize = 50;

/// The staff quality service.
#[derive(Debug, Clone)]
pub struct QualityApi {
    feedback: Feedback,
}

impl QualityApi {
    pub fn new(feedback: Feedback) -> Self {
        QualityApi { feedback }
    }
}

/// A day that defaults to today and may not be in the future.
fn past_day(v: &mut Violations, field: &str, value: Option<&Date>, today: NaiveDate) -> Option<NaiveDate> {
    let day = match value {
        None => Some(today),
        Some(date) => date.to_naive(),
    };
    v.check(day.is_some(), || field.into(), "must be a real calendar date");
    v.check(day.is_none_or(|d| d <= today), || field.into(), "must not be in the future");
    day.filter(|d| *d <= today)
}

/// Checks that the employee works at the branch (clients service).
async fn check_employee(
    feedback: &Feedback,
    credentials: &CallCredentials,
    employee_id: &str,
    branch_id: &str,
) -> AppResult<()> {
    let employees = feedback.clients.employees(credentials, branch_id).await?;
    if employees.iter().any(|e| e.id == employee_id) {
        Ok(())
    } else {
        Err(AppError::invalid_field("employee_id", format!("not an employee of branch {branch_id}")))
    }
}

fn source_of(kind: i16) -> QualitySource {
    match EvaluatorKind::try_from(i32::from(kind)) {
        Ok(EvaluatorKind::Manager) => QualitySource::Manager,
        Ok(EvaluatorKind::QualityControl) => QualitySource::QualityControl,
        Ok(EvaluatorKind::MysteryShopper) => QualitySource::MysteryShopper,
        _ => QualitySource::Dialogs,
    }
}

/// A quality score and what it is made of.
#[derive(Debug, Clone)]
pub struct ScoredQuality {
    pub score: QualityScore,
    /// ("evaluation" or "dialog_review", id) of each judgement of a source with weight in the score.
    pub made_of: Vec<(&'static str, Uuid)>,
}

/// The quality score of every (period, branch, employee) with judgements.
pub async fn scores(
    feedback: &Feedback,
    scope: Option<&[String]>,
    range: &Range,
    branch_id: &str,
    employee_id: &str,
) -> AppResult<BTreeMap<(usize, String, String), ScoredQuality>> {
    let judgements =
        store::quality::judgements(&feedback.pool, range.from, range.to, scope, branch_id, employee_id).await?;
    type Inputs = BTreeMap<QualitySource, (Vec<f64>, BTreeSet<Uuid>)>;
    let mut grouped: BTreeMap<(usize, String, String), Inputs> = BTreeMap::new();
    for Judgement { day, branch_id, employee_id, evaluator_kind, source_id, value } in judgements {
        let Some(p) = periods::index_of(&range.periods, day) else { continue };
        let cell =
            grouped.entry((p, branch_id, employee_id)).or_default().entry(source_of(evaluator_kind)).or_default();
        cell.0.push(value);
        cell.1.insert(source_id);
    }
    Ok(grouped
        .into_iter()
        .map(|((p, branch_id, employee_id), inputs)| {
            let score_of = |source: QualitySource| {
                let (values, _) = inputs.get(&source)?;
                match source {
                    QualitySource::Dialogs => Some(values.iter().sum::<f64>() / values.len().max(1) as f64),
                    _ => {
                        let levels: Vec<u8> = values.iter().map(|v| *v as u8).collect();
                        quality::bars_score(&levels)
                    }
                }
            };
            let computed = quality::quality_score(&feedback.config.quality_weights, score_of);
            let made_of = computed
                .components
                .iter()
                .filter(|c| c.effective_weight > 0.0)
                .flat_map(|c| {
                    let kind = if c.source == QualitySource::Dialogs { "dialog_review" } else { "evaluation" };
                    inputs.get(&c.source).into_iter().flat_map(move |(_, ids)| ids.iter().map(move |id| (kind, *id)))
                })
                .collect();
            let period = &range.periods[p];
            let score = QualityScore {
                period_start: Some(Date::from(period.start)),
                period_end: Some(Date::from(period.end)),
                branch_id: branch_id.clone(),
                employee_id: employee_id.clone(),
                score: computed.total.unwrap_or(0.0),
                components: computed
                    .components
                    .iter()
                    .map(|c| QualityComponent {
                        source: c.source.name().to_owned(),
                        weight: c.weight,
                        effective_weight: c.effective_weight,
                        score: c.score.unwrap_or(0.0),
                        contribution: c.contribution,
                        present: c.score.is_some(),
                        count: inputs.get(&c.source).map_or(0, |(_, ids)| ids.len() as i64),
                    })
                    .collect(),
            };
            ((p, branch_id, employee_id), ScoredQuality { score, made_of })
        })
        .collect())
}

#[tonic::async_trait]
impl StaffQualityService for QualityApi {
    async fn batch_upsert_competencies(
        &self,
        request: Request<BatchUpsertCompetenciesRequest>,
    ) -> Result<Response<BatchUpsertCompetenciesResponse>, Status> {
        Principal::of(&request)?.require(DEFINERS)?;
        let competencies = &request.get_ref().competencies;
        let mut v = Violations::new();
        v.check(
            !competencies.is_empty() && competencies.len() <= MAX_COMPETENCIES,
            || "competencies".into(),
            "must hold 1-100 competencies",
        );
        let mut ids = HashSet::new();
        for (i, competency) in competencies.iter().enumerate() {
            v.id(|| format!("competencies[{i}].id"), &competency.id);
            v.check(ids.insert(&competency.id), || format!("competencies[{i}].id"), "repeats within the request");
            v.text(|| format!("competencies[{i}].name"), &competency.name, 200);
            v.check(
                competency.description.chars().count() <= 2000,
                || format!("competencies[{i}].description"),
                "at most 2000 characters",
            );
            let levels: HashSet<i32> = competency.anchors.iter().map(|a| a.level).collect();
            v.check(
                competency.anchors.len() == usize::from(BARS_LEVELS)
                    && (1..=i32::from(BARS_LEVELS)).all(|l| levels.contains(&l)),
                || format!("competencies[{i}].anchors"),
                "must anchor each level 1-5 exactly once",
            );
            for (j, anchor) in competency.anchors.iter().enumerate() {
                v.text(|| format!("competencies[{i}].anchors[{j}].behaviour"), &anchor.behaviour, 1000);
            }
        }
        v.finish()?;
        let mut tx = self.feedback.pool.begin().await.map_err(AppError::from)?;
        store::quality::upsert_competencies(&mut tx, competencies).await.map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        let ids: Vec<String> = competencies.iter().map(|c| c.id.clone()).collect();
        let stored = store::quality::competencies(&self.feedback.pool, Some(&ids)).await.map_err(AppError::from)?;
        Ok(Response::new(BatchUpsertCompetenciesResponse { competencies: stored }))
    }

    async fn list_competencies(
        &self,
        request: Request<ListCompetenciesRequest>,
    ) -> Result<Response<ListCompetenciesResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let competencies = store::quality::competencies(&self.feedback.pool, None).await.map_err(AppError::from)?;
        Ok(Response::new(ListCompetenciesResponse { competencies }))
    }

    async fn create_checklist_version(
        &self,
        request: Request<CreateChecklistVersionRequest>,
    ) -> Result<Response<CreateChecklistVersionResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(DEFINERS)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        v.id(|| "checklist_id".into(), &body.checklist_id);
        v.text(|| "name".into(), &body.name, 200);
        v.check(
            !body.criteria.is_empty() && body.criteria.len() <= MAX_CRITERIA,
            || "criteria".into(),
            "must hold 1-50 criteria",
        );
        let mut codes = HashSet::new();
        for (i, criterion) in body.criteria.iter().enumerate() {
            v.id(|| format!("criteria[{i}].code"), &criterion.code);
            v.check(
                codes.insert(&criterion.code),
                || format!("criteria[{i}].code"),
                "repeats another criterion's code",
            );
            v.text(|| format!("criteria[{i}].text"), &criterion.text, 500);
            v.check((1..=100).contains(&criterion.weight), || format!("criteria[{i}].weight"), "must be 1-100");
        }
        v.finish()?;
        let draft = Checklist {
            id: body.checklist_id.clone(),
            version: 0,
            name: body.name.trim().to_owned(),
            criteria: body
                .criteria
                .iter()
                .map(|c| ChecklistCriterion { text: c.text.trim().to_owned(), ..c.clone() })
                .collect(),
            create_time: None,
        };
        let mut tx = self.feedback.pool.begin().await.map_err(AppError::from)?;
        let stored = store::quality::create_checklist_version(&mut tx, &draft, &principal.subject)
            .await
            .map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        Ok(Response::new(CreateChecklistVersionResponse { checklist: Some(stored) }))
    }

    async fn list_checklists(
        &self,
        request: Request<ListChecklistsRequest>,
    ) -> Result<Response<ListChecklistsResponse>, Status> {
        Principal::of(&request)?.require(&Role::ALL)?;
        let checklists = store::quality::checklists(&self.feedback.pool, None).await.map_err(AppError::from)?;
        Ok(Response::new(ListChecklistsResponse { checklists }))
    }

    async fn record_evaluation(
        &self,
        request: Request<RecordEvaluationRequest>,
    ) -> Result<Response<RecordEvaluationResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(EVALUATORS)?;
        let credentials = CallCredentials::forwarded(&request);
        let body = request.into_inner();
        let feedback = &self.feedback;
        let kind = EvaluatorKind::try_from(body.evaluator_kind).ok().filter(|k| *k != EvaluatorKind::Unspecified);
        let mut v = Violations::new();
        v.id(|| "request_id".into(), &body.request_id);
        v.id(|| "employee_id".into(), &body.employee_id);
        v.id(|| "branch_id".into(), &body.branch_id);
        v.check(kind.is_some(), || "evaluator_kind".into(), "must be MANAGER, QUALITY_CONTROL or MYSTERY_SHOPPER");
        let day = past_day(&mut v, "evaluated_on", body.evaluated_on.as_ref(), feedback.today());
        v.check(
            !body.ratings.is_empty() && body.ratings.len() <= MAX_COMPETENCIES,
            || "ratings".into(),
            "must hold 1-100 ratings",
        );
        let mut seen = HashSet::new();
        for (i, rating) in body.ratings.iter().enumerate() {
            v.id(|| format!("ratings[{i}].competency_id"), &rating.competency_id);
            v.check(seen.insert(&rating.competency_id), || format!("ratings[{i}].competency_id"), "rated twice");
            v.check(
                (1..=i32::from(BARS_LEVELS)).contains(&rating.level),
                || format!("ratings[{i}].level"),
                "must be 1-5",
            );
            v.check(
                rating.evidence.chars().count() <= 1000,
                || format!("ratings[{i}].evidence"),
                "at most 1000 characters",
            );
        }
        v.check(body.note.chars().count() <= 2000, || "note".into(), "at most 2000 characters");
        v.finish()?;
        let (kind, day) = (convert::validated(kind)?, convert::validated(day)?);
        if principal.role == Role::BranchManager && kind != EvaluatorKind::Manager {
            return Err(AppError::permission_denied("a branch manager evaluates as MANAGER only").into());
        }
        principal.ensure_branch(&body.branch_id)?;
        if let Some(stored) =
            store::quality::evaluation_by_request(&feedback.pool, &body.request_id).await.map_err(AppError::from)?
        {
            return replay(&principal, stored.branch_id.clone(), stored.evaluator.clone(), stored)
                .map(|evaluation| Response::new(RecordEvaluationResponse { evaluation: Some(evaluation) }));
        }
        let ids: Vec<String> = body.ratings.iter().map(|r| r.competency_id.clone()).collect();
        let known = store::quality::competencies(&feedback.pool, Some(&ids)).await.map_err(AppError::from)?;
        let anchors = store::quality::anchors(&known);
        let mut v = Violations::new();
        for (i, rating) in body.ratings.iter().enumerate() {
            v.check(
                anchors.contains_key(&(rating.competency_id.clone(), rating.level)),
                || format!("ratings[{i}].competency_id"),
                "unknown competency",
            );
        }
        v.finish()?;
        check_employee(feedback, &credentials, &body.employee_id, &body.branch_id).await?;
        let id = Uuid::new_v4();
        let evaluation = Evaluation {
            id: id.to_string(),
            employee_id: body.employee_id,
            branch_id: body.branch_id,
            evaluator_kind: kind as i32,
            evaluator: principal.subject.clone(),
            evaluated_on: Some(Date::from(day)),
            ratings: body
                .ratings
                .into_iter()
                .map(|r| CompetencyRating {
                    anchor: anchors.get(&(r.competency_id.clone(), r.level)).cloned().unwrap_or_default(),
                    evidence: r.evidence.trim().to_owned(),
                    ..r
                })
                .collect(),
            note: body.note.trim().to_owned(),
            create_time: None,
        };
        let mut tx = feedback.pool.begin().await.map_err(AppError::from)?;
        let inserted = store::quality::insert_evaluation(&mut tx, id, &body.request_id, &evaluation)
            .await
            .map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        let stored = store::quality::evaluation_by_request(&feedback.pool, &body.request_id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("evaluation {id} vanished")))?;
        if !inserted {
            return replay(&principal, stored.branch_id.clone(), stored.evaluator.clone(), stored)
                .map(|evaluation| Response::new(RecordEvaluationResponse { evaluation: Some(evaluation) }));
        }
        Ok(Response::new(RecordEvaluationResponse { evaluation: Some(stored) }))
    }

    async fn record_dialog_review(
        &self,
        request: Request<RecordDialogReviewRequest>,
    ) -> Result<Response<RecordDialogReviewResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(REVIEWERS)?;
        let credentials = CallCredentials::forwarded(&request);
        let body = request.into_inner();
        let feedback = &self.feedback;
        let mut v = Violations::new();
        v.id(|| "request_id".into(), &body.request_id);
        v.id(|| "checklist_id".into(), &body.checklist_id);
        v.check(body.checklist_version >= 0, || "checklist_version".into(), "must be 0 (the latest) or a version");
        v.id(|| "employee_id".into(), &body.employee_id);
        v.id(|| "branch_id".into(), &body.branch_id);
        v.text(|| "dialog_ref".into(), &body.dialog_ref, 200);
        let day = past_day(&mut v, "reviewed_on", body.reviewed_on.as_ref(), feedback.today());
        v.finish()?;
        let day = convert::validated(day)?;
        principal.ensure_branch(&body.branch_id)?;
        if let Some(stored) =
            store::quality::review_by_request(&feedback.pool, &body.request_id).await.map_err(AppError::from)?
        {
            return replay(&principal, stored.branch_id.clone(), stored.reviewer.clone(), stored)
                .map(|review| Response::new(RecordDialogReviewResponse { review: Some(review) }));
        }
        let version = (body.checklist_version > 0).then_some(body.checklist_version);
        let checklist = store::quality::checklists(&feedback.pool, Some((&body.checklist_id, version)))
            .await
            .map_err(AppError::from)?
            .pop()
            .ok_or_else(|| AppError::invalid_field("checklist_id", "unknown checklist or version"))?;
        let mut v = Violations::new();
        let mut weighted = Vec::with_capacity(body.results.len());
        let mut answered = HashSet::new();
        for (i, result) in body.results.iter().enumerate() {
            let criterion = checklist.criteria.iter().find(|c| c.code == result.code);
            v.check(criterion.is_some(), || format!("results[{i}].code"), "not a criterion of the checklist version");
            v.check(answered.insert(&result.code), || format!("results[{i}].code"), "judged twice");
            let outcome = convert::outcome_from_proto(result.outcome);
            v.check(outcome.is_some(), || format!("results[{i}].outcome"), "must be MET, MISSED or NOT_APPLICABLE");
            if let (Some(criterion), Some(outcome)) = (criterion, outcome) {
                weighted.push((criterion.weight.unsigned_abs(), outcome));
            }
        }
        for criterion in &checklist.criteria {
            v.check(
                answered.contains(&criterion.code),
                || "results".into(),
                &format!("criterion {} is not judged", criterion.code),
            );
        }
        let compliance = quality::script_compliance(&weighted);
        v.check(
            compliance.is_some() || !v.is_empty(),
            || "results".into(),
            "at least one criterion must apply to the dialog",
        );
        v.finish()?;
        check_employee(feedback, &credentials, &body.employee_id, &body.branch_id).await?;
        let id = Uuid::new_v4();
        let review = DialogReview {
            id: id.to_string(),
            checklist_id: checklist.id.clone(),
            checklist_version: checklist.version,
            employee_id: body.employee_id,
            branch_id: body.branch_id,
            dialog_ref: body.dialog_ref.trim().to_owned(),
            reviewed_on: Some(Date::from(day)),
            results: body.results,
            script_compliance_percent: convert::validated(compliance)?,
            reviewer: principal.subject.clone(),
            create_time: None,
        };
        let mut tx = feedback.pool.begin().await.map_err(AppError::from)?;
        let inserted =
            store::quality::insert_review(&mut tx, id, &body.request_id, &review).await.map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        let stored = store::quality::review_by_request(&feedback.pool, &body.request_id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("review {id} vanished")))?;
        if !inserted {
            return replay(&principal, stored.branch_id.clone(), stored.reviewer.clone(), stored)
                .map(|review| Response::new(RecordDialogReviewResponse { review: Some(review) }));
        }
        Ok(Response::new(RecordDialogReviewResponse { review: Some(stored) }))
    }

    async fn get_quality_scores(
        &self,
        request: Request<GetQualityScoresRequest>,
    ) -> Result<Response<GetQualityScoresResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(&Role::ALL)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let range = convert::range(&mut v, body.from.as_ref(), body.to.as_ref(), body.granularity, Granularity::Whole);
        convert::optional_id(&mut v, "branch_id", &body.branch_id);
        convert::optional_id(&mut v, "employee_id", &body.employee_id);
        v.finish()?;
        let range = convert::validated(range)?;
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let scope = principal.branch_filter();
        let scores = scores(&self.feedback, scope.as_deref(), &range, &body.branch_id, &body.employee_id).await?;
        Ok(Response::new(GetQualityScoresResponse { scores: scores.into_values().map(|s| s.score).collect() }))
    }
}

/// What a retried request stored, if the same caller made it.
fn replay<T>(principal: &Principal, branch_id: String, recorded_by: String, stored: T) -> Result<T, Status> {
    if principal.can_access(&branch_id) && recorded_by == principal.subject {
        Ok(stored)
    } else {
        Err(AppError::new(ErrorCode::AlreadyExists, "request_id was used by another request").into())
    }
}
