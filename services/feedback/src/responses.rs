//! Responses: by link (see `link_api`), entered by staff, imported by the
//! ERP. One response per invitation; storing it marks the invitation
//! answered and opens the complaint its answers trigger, all in one
//! transaction with the outbox events.
use crate::Feedback;
use crate::complaints;
use crate::convert::{self, page_token};
use crate::outbox;
use crate::store;
use crate::store::invitations::InvitationRow;
use crate::store::responses::{NewResponse, ResponseFilter, ScoreFilter};
use crate::surveys::{self, ValidAnswers};
use branchscore_platform::error::ErrorCode;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::common::v1::Date;
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::complaints::{TriggerInput, trigger};
use branchscore_scoring::nps::{self, NpsGroup, ResponseAnswers};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::BranchManager, Role::BranchStaff];
const IMPORTERS: &[Role] = &[Role::Admin, Role::ErpIntegration];
const MAX_IMPORT: usize = 1000;
const MAX_SATISFACTION_IDS: usize = 1000;
const MAX_LOOKBACK_DAYS: i32 = 1100;

/// What a stored response brought about.
#[derive(Debug)]
pub struct Stored {
    pub response_id: Uuid,
    pub complaint_opened: bool,
    pub events: Vec<OutboxEvent>,
}

/// How a response arrived and who entered it.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub source: ResponseSource,
    pub answered_on: NaiveDate,
    pub recorded_by: String,
    pub external_id: Option<String>,
}

/// Stores a response to `invitation` (locked by the caller and not answered
/// yet) in `tx`. `Ok(None)` when `external_id` is stored already.
pub async fn store_response(
    tx: &mut Transaction<'_, Postgres>,
    feedback: &Feedback,
    invitation: &InvitationRow,
    answers: &ValidAnswers,
    provenance: &Provenance,
    now: DateTime<Utc>,
) -> AppResult<Option<Stored>> {
    let response = NewResponse {
        id: Uuid::new_v4(),
        invitation_id: invitation.id,
        external_id: provenance.external_id.clone(),
        source: provenance.source as i16,
        client_id: invitation.client_id.clone(),
        branch_id: invitation.branch_id.clone(),
        employee_id: invitation.employee_id.clone(),
        abc_class: invitation.abc_class,
        product_id: invitation.product_id.clone(),
        survey_id: invitation.survey_id.clone(),
        survey_version: invitation.survey_version,
        answered_on: provenance.answered_on,
        nps: answers.nps.map(i16::from),
        csat: answers.csat.map(i16::from),
        comment: answers.comment.clone(),
        recorded_by: provenance.recorded_by.clone(),
        items: answers.items.iter().map(|(c, t, s)| (c.clone(), t.clone(), i16::from(*s))).collect(),
    };
    if !store::responses::insert(tx, &response).await? {
        return Ok(None);
    }
    store::invitations::mark_answered(tx, invitation.id, now).await?;
    let items: Vec<(&str, u8)> = answers.items.iter().map(|(code, _, score)| (code.as_str(), *score)).collect();
    let input = TriggerInput { items: &items, csat: answers.csat, nps: answers.nps };
    let mut events = Vec::new();
    let opened = trigger(&input, feedback.config.complaints.nps_detractors_open);
    if let Some(opened) = &opened {
        let (_, event) =
            complaints::open_from_response(tx, feedback, invitation, response.id, opened, &answers.comment, now)
                .await?;
        events.push(event);
        let source = convert::source_to_proto(opened.source).as_str_name();
        metrics::counter!("complaints_opened_total", "source" => source).increment(1);
    }
    metrics::counter!("responses_total", "source" => provenance.source.as_str_name()).increment(1);
    Ok(Some(Stored { response_id: response.id, complaint_opened: opened.is_some(), events }))
}

/// `answered_on` checked: default today, not in the future, not before the invitation.
fn answered_on(
    v: &mut Violations,
    field: &str,
    value: Option<&Date>,
    today: NaiveDate,
    invited_on: NaiveDate,
) -> Option<NaiveDate> {
    let day = match value {
        None => Some(today),
        Some(date) => date.to_naive(),
    };
    v.check(day.is_some(), || field.into(), "must be a real calendar date");
    let day = day?;
    v.check(day <= today, || field.into(), "must not be in the future");
    v.check(day >= invited_on, || field.into(), "must not be before the invitation");
    (day <= today && day >= invited_on).then_some(day)
}

pub async fn record(
    feedback: &Feedback,
    principal: &Principal,
    body: RecordResponseRequest,
) -> AppResult<RecordResponseResponse> {
    principal.require(STAFF)?;
    let mut v = Violations::new();
    let invitation_id = body.invitation_id.parse::<Uuid>().ok();
    v.check(invitation_id.is_some(), || "invitation_id".into(), "must be an invitation id");
    convert::optional_id(&mut v, "external_id", &body.external_id);
    v.finish()?;
    let invitation_id = convert::validated(invitation_id)?;
    let external_id = Some(body.external_id.clone()).filter(|id| !id.is_empty());
    if let Some(external_id) = &external_id {
        let stored =
            store::responses::invitations_of_external_ids(&feedback.pool, std::slice::from_ref(external_id)).await?;
        if let Some(answered) = stored.get(external_id) {
            return replay(feedback, principal, *answered, invitation_id).await;
        }
    }
    let invitation = store::invitations::by_ids(&feedback.pool, &[invitation_id])
        .await?
        .pop()
        .filter(|i| principal.can_access(&i.branch_id))
        .ok_or_else(|| AppError::not_found(format!("invitation {invitation_id}")))?;
    if invitation.answered_at.is_some() {
        return Err(answered_already());
    }
    let survey = survey_of(feedback, &invitation).await?;
    let invited_on = invitation.created_at.with_timezone(&feedback.zone).date_naive();
    let mut v = Violations::new();
    let day = answered_on(&mut v, "answered_on", body.answered_on.as_ref(), feedback.today(), invited_on);
    let answers = surveys::check_answers(&mut v, "answers", &survey, body.answers.as_ref());
    v.finish()?;
    let (day, answers) = (convert::validated(day)?, convert::validated(answers)?);
    let provenance = Provenance {
        source: ResponseSource::Staff,
        answered_on: day,
        recorded_by: principal.subject.clone(),
        external_id,
    };
    let now = Utc::now();
    let mut tx = feedback.pool.begin().await?;
    // Under the lock, an answer that arrived meanwhile (by link, say) wins.
    let locked = store::invitations::lock(&mut tx, &[invitation_id]).await?.pop();
    if locked.is_none_or(|i| i.answered_at.is_some()) {
        return Err(answered_already());
    }
    let Some(stored) = store_response(&mut tx, feedback, &invitation, &answers, &provenance, now).await? else {
        return Err(AppError::new(ErrorCode::Aborted, "a concurrent entry with this external_id won; retry"));
    };
    outbox::append(&mut tx, &stored.events).await?;
    tx.commit().await?;
    feedback.outbox.committed();
    let response = store::responses::by_ids(&feedback.pool, &[stored.response_id]).await?.pop();
    Ok(RecordResponseResponse { response })
}

fn answered_already() -> AppError {
    AppError::new(ErrorCode::AlreadyExists, "this invitation is answered already")
}

/// The stored response of a retried entry, if it answered the same invitation.
async fn replay(
    feedback: &Feedback,
    principal: &Principal,
    answered: Uuid,
    invitation_id: Uuid,
) -> AppResult<RecordResponseResponse> {
    if answered != invitation_id {
        return Err(AppError::new(ErrorCode::AlreadyExists, "external_id was used for another invitation"));
    }
    let response = store::responses::by_invitations(&feedback.pool, &[invitation_id])
        .await?
        .pop()
        .filter(|r| principal.can_access(&r.branch_id))
        .ok_or_else(|| AppError::not_found(format!("invitation {invitation_id}")))?;
    Ok(RecordResponseResponse { response: Some(response) })
}

/// The survey version an invitation asks.
async fn survey_of(feedback: &Feedback, invitation: &InvitationRow) -> AppResult<SurveyVersion> {
    store::surveys::version(&feedback.pool, &invitation.survey_id, Some(invitation.survey_version)).await?.ok_or_else(
        || {
            AppError::internal(anyhow::anyhow!(
                "survey {} v{} missing",
                invitation.survey_id,
                invitation.survey_version
            ))
        },
    )
}

pub async fn import(
    feedback: &Feedback,
    principal: &Principal,
    body: ImportResponsesRequest,
) -> AppResult<ImportResponsesResponse> {
    principal.require(IMPORTERS)?;
    let records = &body.responses;
    let mut v = Violations::new();
    v.check(!records.is_empty() && records.len() <= MAX_IMPORT, || "responses".into(), "must hold 1-1000 responses");
    let mut seen = HashSet::new();
    for (i, record) in records.iter().enumerate() {
        v.check(
            seen.insert(&record.external_id),
            || format!("responses[{i}].external_id"),
            "repeats within the request",
        );
    }
    v.finish()?;
    let mut reply = ImportResponsesResponse::default();
    let mut reject = |index: usize, record: &ImportedResponse, field: String, reason: String| {
        reply.rejections.push(RejectedResponse {
            index: index as i32,
            external_id: record.external_id.clone(),
            field,
            reason,
        });
    };
    // Field checks first: a bad record is refused alone.
    let mut candidates: Vec<(usize, Uuid)> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let mut v = Violations::new();
        v.id(|| "external_id".into(), &record.external_id);
        let id = record.invitation_id.parse::<Uuid>().ok();
        v.check(id.is_some(), || "invitation_id".into(), "must be an invitation id");
        match (v.into_vec().into_iter().next(), id) {
            (Some(problem), _) => reject(i, record, problem.field, problem.description),
            (None, Some(id)) => candidates.push((i, id)),
            (None, None) => {}
        }
    }
    let external_ids: Vec<String> = candidates.iter().map(|(i, _)| records[*i].external_id.clone()).collect();
    let stored = store::responses::invitations_of_external_ids(&feedback.pool, &external_ids).await?;
    let ids: Vec<Uuid> = candidates.iter().map(|(_, id)| *id).collect();
    let visible: Vec<InvitationRow> = store::invitations::by_ids(&feedback.pool, &ids)
        .await?
        .into_iter()
        .filter(|i| principal.can_access(&i.branch_id))
        .collect();
    let keys: Vec<(String, i32)> = visible.iter().map(|i| (i.survey_id.clone(), i.survey_version)).collect();
    let versions = store::surveys::versions(&feedback.pool, &keys).await?;
    let now = Utc::now();
    let today = feedback.today();
    let mut tx = feedback.pool.begin().await?;
    let visible_ids: Vec<Uuid> = visible.iter().map(|i| i.id).collect();
    let invitations: HashMap<Uuid, InvitationRow> =
        store::invitations::lock(&mut tx, &visible_ids).await?.into_iter().map(|i| (i.id, i)).collect();
    let mut events = Vec::new();
    let mut answered_now = HashSet::new();
    for (i, id) in candidates {
        let record = &records[i];
        match stored.get(&record.external_id) {
            Some(answered) if *answered == id => {
                reply.duplicates += 1;
                continue;
            }
            Some(answered) => {
                reject(i, record, "external_id".into(), format!("already used for invitation {answered}"));
                continue;
            }
            None => {}
        }
        let Some(invitation) = invitations.get(&id) else {
            reject(i, record, "invitation_id".into(), "unknown invitation, or outside your branches".into());
            continue;
        };
        if invitation.answered_at.is_some() || answered_now.contains(&id) {
            reject(i, record, "invitation_id".into(), "the invitation is answered already".into());
            continue;
        }
        let Some(survey) = versions.get(&(invitation.survey_id.clone(), invitation.survey_version)) else {
            return Err(AppError::internal(anyhow::anyhow!("survey of invitation {id} missing")));
        };
        let invited_on = invitation.created_at.with_timezone(&feedback.zone).date_naive();
        let mut v = Violations::new();
        let day = answered_on(&mut v, "answered_on", record.answered_on.as_ref(), today, invited_on);
        let answers = surveys::check_answers(&mut v, "answers", survey, record.answers.as_ref());
        let (Some(day), Some(answers)) = (day, answers) else {
            let problem = v.into_vec().into_iter().next();
            let (field, reason) = problem.map_or((String::new(), "invalid".into()), |p| (p.field, p.description));
            reject(i, record, field, reason);
            continue;
        };
        let provenance = Provenance {
            source: ResponseSource::ErpImport,
            answered_on: day,
            recorded_by: principal.subject.clone(),
            external_id: Some(record.external_id.clone()),
        };
        match store_response(&mut tx, feedback, invitation, &answers, &provenance, now).await? {
            Some(outcome) => {
                reply.accepted += 1;
                reply.complaints_opened += i64::from(outcome.complaint_opened);
                answered_now.insert(id);
                events.extend(outcome.events);
            }
            None => reply.duplicates += 1,
        }
    }
    outbox::append(&mut tx, &events).await?;
    tx.commit().await?;
    if !events.is_empty() {
        feedback.outbox.committed();
    }
    reply.rejected = reply.rejections.len() as i64;
    reply.rejections.sort_by_key(|r| r.index);
    tracing::info!(
        accepted = reply.accepted,
        duplicates = reply.duplicates,
        rejected = reply.rejected,
        "responses imported"
    );
    Ok(reply)
}

pub async fn list(
    feedback: &Feedback,
    principal: &Principal,
    body: ListResponsesRequest,
) -> AppResult<ListResponsesResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    convert::optional_id(&mut v, "branch_id", &body.branch_id);
    convert::optional_id(&mut v, "client_id", &body.client_id);
    let from = body.from.as_ref().map(Date::to_naive);
    let to = body.to.as_ref().map(Date::to_naive);
    v.check(from.is_none_or(|d| d.is_some()), || "from".into(), "must be a real calendar date");
    v.check(to.is_none_or(|d| d.is_some()), || "to".into(), "must be a real calendar date");
    let limit = convert::page_size(&mut v, body.page_size, 100, 1000);
    let after = page_token::decode(&body.page_token);
    v.check(after.is_some(), || "page_token".into(), "is not a token this service issued");
    v.finish()?;
    if !body.branch_id.is_empty() {
        principal.ensure_branch(&body.branch_id)?;
    }
    let filter =
        ResponseFilter { branch_id: body.branch_id, client_id: body.client_id, from: from.flatten(), to: to.flatten() };
    let scope = principal.branch_filter();
    let mut responses =
        store::responses::list(&feedback.pool, &filter, scope.as_deref(), after.flatten(), limit + 1).await?;
    let next_page_token = if responses.len() as i64 > limit {
        responses.truncate(limit as usize);
        let last = responses.last();
        let keyset = last.and_then(|r| {
            Some((branchscore_proto::convert::to_datetime(r.create_time.as_ref()?)?, r.id.parse().ok()?))
        });
        keyset.map(|(at, id)| page_token::encode(at, id)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(ListResponsesResponse { responses, next_page_token })
}

pub async fn satisfaction(
    feedback: &Feedback,
    principal: &Principal,
    body: BatchGetClientSatisfactionRequest,
) -> AppResult<BatchGetClientSatisfactionResponse> {
    principal.require(&Role::ALL)?;
    let today = feedback.today();
    let mut v = Violations::new();
    v.check(
        !body.client_ids.is_empty() && body.client_ids.len() <= MAX_SATISFACTION_IDS,
        || "client_ids".into(),
        "must hold 1-1000 ids",
    );
    for (i, id) in body.client_ids.iter().enumerate() {
        v.id(|| format!("client_ids[{i}]"), id);
    }
    let as_of = match &body.as_of {
        None => Some(today),
        Some(date) => date.to_naive(),
    };
    v.check(as_of.is_some(), || "as_of".into(), "must be a real calendar date");
    v.check(
        (0..=MAX_LOOKBACK_DAYS).contains(&body.lookback_days),
        || "lookback_days".into(),
        "must be between 0 (default 365) and 1100",
    );
    v.finish()?;
    let as_of = convert::validated(as_of)?;
    let lookback = if body.lookback_days == 0 { 365 } else { body.lookback_days };
    let from = as_of - Duration::days(i64::from(lookback) - 1);
    let ids: Vec<String> = body.client_ids.iter().cloned().collect::<HashSet<_>>().into_iter().collect();
    let scope = principal.branch_filter();
    let filter = ScoreFilter { scope: scope.as_deref(), client_ids: Some(&ids), ..ScoreFilter::default() };
    let responses = store::responses::scored(&feedback.pool, from, as_of, &filter).await?;
    let mut by_client: BTreeMap<&str, Vec<&store::responses::ScoredResponse>> = BTreeMap::new();
    for response in &responses {
        by_client.entry(response.client_id.as_str()).or_default().push(response);
    }
    let mut satisfactions = Vec::new();
    for (client_id, responses) in &by_client {
        let scores: Vec<Vec<u8>> = responses.iter().map(|r| r.items.iter().map(|(_, s)| *s).collect()).collect();
        let answers: Vec<ResponseAnswers> = responses
            .iter()
            .zip(&scores)
            .map(|(r, items)| ResponseAnswers { items, nps: r.nps, csat: r.csat })
            .collect();
        let Some(value) = nps::client_satisfaction(&answers) else { continue };
        let latest_nps = responses.iter().rev().find_map(|r| r.nps).and_then(NpsGroup::of);
        satisfactions.push(ClientSatisfaction {
            client_id: (*client_id).to_owned(),
            satisfaction: value,
            responses: responses.len() as i32,
            last_answered_on: responses.last().map(|r| Date::from(r.answered_on)),
            latest_nps_group: latest_nps.map(|g| g.name().to_owned()).unwrap_or_default(),
        });
    }
    let found: HashSet<&str> = satisfactions.iter().map(|s| s.client_id.as_str()).collect();
    let mut missing_client_ids: Vec<String> = ids.iter().filter(|id| !found.contains(id.as_str())).cloned().collect();
    missing_client_ids.sort();
    Ok(BatchGetClientSatisfactionResponse { satisfactions, missing_client_ids })
}
