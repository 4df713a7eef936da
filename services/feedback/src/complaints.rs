//! Complaints: opened by low answers or registered directly, moved through
//! the workflow by people, escalated by the clock. Every change is a history
//! entry and an outbox event, written in the same transaction.
use crate::Feedback;
use crate::convert::{self, page_token, source_to_proto, state_to_proto};
use crate::outbox;
use crate::store;
use crate::store::complaints::{ComplaintFilter, ComplaintRow, proto_state};
use crate::store::invitations::InvitationRow;
use branchscore_platform::client::CallCredentials;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::feedback::v1::outbox_event::Payload;
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::complaints::{
    self as rules, AGE_BUCKETS, ComplaintSource, ComplaintState as State, TransitionFacts, Trigger,
};
use chrono::{DateTime, Duration, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

pub const HANDLERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::BranchStaff];
const REGISTRARS: &[Role] =
    &[Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::BranchStaff, Role::ErpIntegration];
/// The actor of what the service does by itself.
pub const SYSTEM: &str = "system";
const MAX_DESCRIPTION: usize = 4000;
const MAX_NOTE: usize = 2000;

/// The outbox event announcing a change.
pub fn change_event(complaint: &ComplaintRow, event: ComplaintEvent, now: DateTime<Utc>) -> OutboxEvent {
    outbox::event(
        OutboxTopic::Complaint,
        &complaint.branch_id,
        Payload::ComplaintChange(ComplaintChange { complaint: Some(complaint.message(now)), event: Some(event) }),
    )
}

/// Whom and what a complaint is about.
struct About<'a> {
    client_id: &'a str,
    branch_id: &'a str,
    employee_id: &'a str,
    product_id: &'a str,
}

/// A new complaint in REGISTERED with that state's deadline.
fn registered(
    feedback: &Feedback,
    source: ComplaintSource,
    about: About<'_>,
    description: String,
    created_by: &str,
    now: DateTime<Utc>,
) -> AppResult<ComplaintRow> {
    let deadline = deadline(feedback, State::Registered)?;
    Ok(ComplaintRow {
        id: Uuid::new_v4(),
        request_id: None,
        client_id: about.client_id.to_owned(),
        branch_id: about.branch_id.to_owned(),
        employee_id: about.employee_id.to_owned(),
        product_id: about.product_id.to_owned(),
        source: source_to_proto(source) as i16,
        response_id: None,
        description,
        state: state_to_proto(State::Registered) as i16,
        owner: String::new(),
        root_cause_category: 0,
        cause: String::new(),
        client_informed: false,
        due_at: Some(now + deadline),
        deadline_ms: deadline.num_milliseconds(),
        escalation_level: 0,
        created_by: created_by.to_owned(),
        created_at: now,
        closed_at: None,
    })
}

fn deadline(feedback: &Feedback, state: State) -> AppResult<Duration> {
    let configured = feedback.config.complaints.deadline(state).unwrap_or_default();
    Duration::from_std(configured).map_err(AppError::internal)
}

/// Opens the complaint a response's answers trigger, inside the response's
/// transaction; returns it and its outbox event.
pub async fn open_from_response(
    tx: &mut Transaction<'_, Postgres>,
    feedback: &Feedback,
    invitation: &InvitationRow,
    response_id: Uuid,
    trigger: &Trigger<'_>,
    comment: &str,
    now: DateTime<Utc>,
) -> AppResult<(ComplaintRow, OutboxEvent)> {
    let mut description = format!("Low answers: {}", trigger.describe());
    if !comment.is_empty() {
        description.push_str(&format!(". The client wrote: {comment}"));
    }
    let mut complaint = registered(
        feedback,
        trigger.source,
        About {
            client_id: &invitation.client_id,
            branch_id: &invitation.branch_id,
            employee_id: &invitation.employee_id,
            product_id: &invitation.product_id,
        },
        description,
        SYSTEM,
        now,
    )?;
    complaint.response_id = Some(response_id);
    store::complaints::insert(tx, &complaint).await?;
    let event = opened_event(&complaint, SYSTEM, now);
    store::complaints::append_event(tx, complaint.id, &event, now).await?;
    Ok((complaint.clone(), change_event(&complaint, event, now)))
}

fn opened_event(complaint: &ComplaintRow, actor: &str, now: DateTime<Utc>) -> ComplaintEvent {
    ComplaintEvent {
        sequence: 1,
        kind: ComplaintEventKind::Opened as i32,
        from_state: 0,
        to_state: proto_state(State::Registered),
        actor: actor.to_owned(),
        owner: complaint.owner.clone(),
        note: String::new(),
        escalation_level: 0,
        time: Some(convert::timestamp(now)),
    }
}

pub async fn register(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: RegisterComplaintRequest,
) -> AppResult<RegisterComplaintResponse> {
    principal.require(REGISTRARS)?;
    let mut v = Violations::new();
    v.id(|| "request_id".into(), &body.request_id);
    v.id(|| "client_id".into(), &body.client_id);
    convert::optional_id(&mut v, "product_id", &body.product_id);
    v.text(|| "description".into(), &body.description, MAX_DESCRIPTION);
    v.check(body.owner.chars().count() <= 200, || "owner".into(), "at most 200 characters");
    v.finish()?;
    let now = Utc::now();
    if let Some(existing) = store::complaints::by_request(&feedback.pool, &body.request_id).await? {
        return replay(principal, existing, &body.client_id, now);
    }
    let client = feedback
        .clients
        .client_by_id(credentials, &body.client_id)
        .await?
        .ok_or_else(|| AppError::invalid_field("client_id", "unknown client, or outside your branches"))?;
    principal.ensure_branch(&client.branch_id)?;
    let mut complaint = registered(
        feedback,
        ComplaintSource::Direct,
        About {
            client_id: &client.id,
            branch_id: &client.branch_id,
            employee_id: &client.owner_employee_id,
            product_id: &body.product_id,
        },
        body.description.trim().to_owned(),
        &principal.subject,
        now,
    )?;
    complaint.request_id = Some(body.request_id.clone());
    complaint.owner = body.owner.trim().to_owned();
    let mut tx = feedback.pool.begin().await?;
    if !store::complaints::insert(&mut tx, &complaint).await? {
        // A concurrent retry with the same request id won.
        tx.rollback().await?;
        let existing = store::complaints::by_request(&feedback.pool, &body.request_id)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("request id conflict without a row")))?;
        return replay(principal, existing, &body.client_id, now);
    }
    let event = opened_event(&complaint, &principal.subject, now);
    store::complaints::append_event(&mut tx, complaint.id, &event, now).await?;
    outbox::append(&mut tx, &[change_event(&complaint, event, now)]).await?;
    tx.commit().await?;
    feedback.outbox.committed();
    metrics::counter!("complaints_opened_total", "source" => "direct").increment(1);
    Ok(RegisterComplaintResponse { complaint: Some(complaint.message(now)) })
}

/// The complaint a retried request created, if it is the same request.
fn replay(
    principal: &Principal,
    existing: ComplaintRow,
    client_id: &str,
    now: DateTime<Utc>,
) -> AppResult<RegisterComplaintResponse> {
    if existing.client_id != client_id || !principal.can_access(&existing.branch_id) {
        return Err(AppError::new(
            branchscore_platform::error::ErrorCode::AlreadyExists,
            "request_id was used for another complaint",
        ));
    }
    Ok(RegisterComplaintResponse { complaint: Some(existing.message(now)) })
}

fn complaint_id(v: &mut Violations, value: &str) -> Option<Uuid> {
    let id = value.parse::<Uuid>().ok();
    v.check(id.is_some(), || "complaint_id".into(), "must be a complaint id");
    id
}

/// The complaint, locked, if the caller may see it (else NOT_FOUND).
async fn visible_for_update(
    tx: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    id: Uuid,
) -> AppResult<ComplaintRow> {
    store::complaints::by_id(&mut **tx, id, true)
        .await?
        .filter(|c| principal.can_access(&c.branch_id))
        .ok_or_else(|| AppError::not_found(format!("complaint {id}")))
}

pub async fn get(
    feedback: &Feedback,
    principal: &Principal,
    body: GetComplaintRequest,
) -> AppResult<GetComplaintResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    let id = complaint_id(&mut v, &body.complaint_id);
    v.finish()?;
    let id = convert::validated(id)?;
    let complaint = store::complaints::by_id(&feedback.pool, id, false)
        .await?
        .filter(|c| principal.can_access(&c.branch_id))
        .ok_or_else(|| AppError::not_found(format!("complaint {id}")))?;
    let history = store::complaints::history(&feedback.pool, id).await?;
    Ok(GetComplaintResponse { complaint: Some(complaint.message(Utc::now())), history })
}

pub async fn list(
    feedback: &Feedback,
    principal: &Principal,
    body: ListComplaintsRequest,
) -> AppResult<ListComplaintsResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    convert::optional_id(&mut v, "branch_id", &body.branch_id);
    convert::optional_id(&mut v, "client_id", &body.client_id);
    v.check(
        ComplaintState::try_from(body.state).is_ok(),
        || "state".into(),
        "must be one of the complaint states or unspecified",
    );
    let limit = convert::page_size(&mut v, body.page_size, 100, 1000);
    let after = page_token::decode(&body.page_token);
    v.check(after.is_some(), || "page_token".into(), "is not a token this service issued");
    v.finish()?;
    if !body.branch_id.is_empty() {
        principal.ensure_branch(&body.branch_id)?;
    }
    let now = Utc::now();
    let filter = ComplaintFilter {
        branch_id: body.branch_id,
        client_id: body.client_id,
        state: body.state as i16,
        overdue_only: body.overdue_only,
        open_only: body.open_only,
    };
    let mut rows = store::complaints::list(
        &feedback.pool,
        now,
        &filter,
        principal.branch_filter().as_deref(),
        after.flatten(),
        limit + 1,
    )
    .await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|c| page_token::encode(c.created_at, c.id)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(ListComplaintsResponse { complaints: rows.iter().map(|c| c.message(now)).collect(), next_page_token })
}

pub async fn assign(
    feedback: &Feedback,
    principal: &Principal,
    body: AssignComplaintRequest,
) -> AppResult<AssignComplaintResponse> {
    principal.require(HANDLERS)?;
    let mut v = Violations::new();
    let id = complaint_id(&mut v, &body.complaint_id);
    v.text(|| "owner".into(), &body.owner, 200);
    v.check(body.note.chars().count() <= MAX_NOTE, || "note".into(), "at most 2000 characters");
    v.finish()?;
    let id = convert::validated(id)?;
    let now = Utc::now();
    let mut tx = feedback.pool.begin().await?;
    let mut complaint = visible_for_update(&mut tx, principal, id).await?;
    if complaint.closed_at.is_some() {
        return Err(AppError::failed_precondition("a closed complaint cannot be reassigned"));
    }
    complaint.owner = body.owner.trim().to_owned();
    store::complaints::update(&mut tx, &complaint).await?;
    let state = proto_state(complaint.state().unwrap_or(State::Registered));
    let event = ComplaintEvent {
        sequence: 0,
        kind: ComplaintEventKind::Assigned as i32,
        from_state: state,
        to_state: state,
        actor: principal.subject.clone(),
        owner: complaint.owner.clone(),
        note: body.note.trim().to_owned(),
        escalation_level: i32::from(complaint.escalation_level),
        time: Some(convert::timestamp(now)),
    };
    let sequence = store::complaints::append_event(&mut tx, id, &event, now).await?;
    outbox::append(&mut tx, &[change_event(&complaint, ComplaintEvent { sequence, ..event }, now)]).await?;
    tx.commit().await?;
    feedback.outbox.committed();
    Ok(AssignComplaintResponse { complaint: Some(complaint.message(now)) })
}

pub async fn advance(
    feedback: &Feedback,
    principal: &Principal,
    body: AdvanceComplaintRequest,
) -> AppResult<AdvanceComplaintResponse> {
    principal.require(HANDLERS)?;
    let mut v = Violations::new();
    let id = complaint_id(&mut v, &body.complaint_id);
    let to = convert::state_from_proto(body.to_state);
    v.check(to.is_some(), || "to_state".into(), "must be one of the complaint states");
    v.check(
        RootCauseCategory::try_from(body.root_cause_category).is_ok(),
        || "root_cause_category".into(),
        "must be one of the root-cause categories or unspecified",
    );
    v.check(body.owner.chars().count() <= 200, || "owner".into(), "at most 200 characters");
    v.check(body.cause.chars().count() <= MAX_NOTE, || "cause".into(), "at most 2000 characters");
    v.check(body.note.chars().count() <= MAX_NOTE, || "note".into(), "at most 2000 characters");
    v.finish()?;
    let (id, to) = (convert::validated(id)?, convert::validated(to)?);
    let now = Utc::now();
    let mut tx = feedback.pool.begin().await?;
    let mut complaint = visible_for_update(&mut tx, principal, id).await?;
    let from =
        complaint.state().ok_or_else(|| AppError::internal(anyhow::anyhow!("stored state {}", complaint.state)))?;
    let owner = if body.owner.trim().is_empty() { complaint.owner.clone() } else { body.owner.trim().to_owned() };
    let root_cause =
        if body.root_cause_category != 0 { body.root_cause_category as i16 } else { complaint.root_cause_category };
    let cause = if body.cause.trim().is_empty() { complaint.cause.clone() } else { body.cause.trim().to_owned() };
    let facts = TransitionFacts {
        has_owner: !owner.is_empty(),
        has_root_cause: root_cause != 0,
        has_cause: !cause.is_empty(),
        has_note: !body.note.trim().is_empty(),
        client_informed: body.client_informed,
    };
    rules::check_transition(from, to, &facts).map_err(|refused| AppError::failed_precondition(refused.to_string()))?;
    let step =
        feedback.config.complaints.deadline(to).map(Duration::from_std).transpose().map_err(AppError::internal)?;
    complaint.state = state_to_proto(to) as i16;
    complaint.owner = owner;
    complaint.root_cause_category = root_cause;
    complaint.cause = cause;
    complaint.client_informed = complaint.client_informed || body.client_informed;
    complaint.due_at = step.map(|step| now + step);
    complaint.deadline_ms = step.map_or(complaint.deadline_ms, |s| s.num_milliseconds());
    complaint.escalation_level = 0;
    complaint.closed_at = (to == State::Closed).then_some(now);
    store::complaints::update(&mut tx, &complaint).await?;
    let event = ComplaintEvent {
        sequence: 0,
        kind: ComplaintEventKind::Advanced as i32,
        from_state: proto_state(from),
        to_state: proto_state(to),
        actor: principal.subject.clone(),
        owner: complaint.owner.clone(),
        note: body.note.trim().to_owned(),
        escalation_level: 0,
        time: Some(convert::timestamp(now)),
    };
    let sequence = store::complaints::append_event(&mut tx, id, &event, now).await?;
    outbox::append(&mut tx, &[change_event(&complaint, ComplaintEvent { sequence, ..event }, now)]).await?;
    tx.commit().await?;
    feedback.outbox.committed();
    tracing::info!(complaint = %id, from = from.name(), to = to.name(), by = %principal.subject, "complaint advanced");
    Ok(AdvanceComplaintResponse { complaint: Some(complaint.message(now)) })
}

pub async fn aging(
    feedback: &Feedback,
    principal: &Principal,
    body: GetComplaintAgingRequest,
) -> AppResult<GetComplaintAgingResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    convert::optional_id(&mut v, "branch_id", &body.branch_id);
    v.finish()?;
    if !body.branch_id.is_empty() {
        principal.ensure_branch(&body.branch_id)?;
    }
    let now = Utc::now();
    let since = now - Duration::days(90);
    let rows =
        store::complaints::for_aging(&feedback.pool, principal.branch_filter().as_deref(), &body.branch_id, since)
            .await?;
    let mut cells = vec![[(0i64, 0i64); AGE_BUCKETS.len()]; State::ALL.len()];
    let (mut open, mut overdue, mut oldest) = (0i64, 0i64, 0.0f64);
    let (mut closed, mut days_to_close) = (0i64, 0.0f64);
    for complaint in &rows {
        let age = (now - complaint.created_at).num_seconds() as f64 / 86_400.0;
        match (complaint.closed_at, complaint.state()) {
            (Some(closed_at), _) => {
                closed += 1;
                days_to_close += (closed_at - complaint.created_at).num_seconds() as f64 / 86_400.0;
            }
            (None, Some(state)) => {
                let late = complaint.is_overdue(now);
                let cell = &mut cells[state as usize][rules::age_bucket((now - complaint.created_at).num_days())];
                cell.0 += 1;
                cell.1 += i64::from(late);
                open += 1;
                overdue += i64::from(late);
                oldest = oldest.max(age);
            }
            (None, None) => {}
        }
    }
    let buckets = State::ALL
        .iter()
        .flat_map(|state| {
            let counts = cells[*state as usize];
            AGE_BUCKETS.iter().enumerate().filter(move |(i, _)| counts[*i].0 > 0).map(move |(i, (min, max))| {
                AgingBucket {
                    state: proto_state(*state),
                    label: rules::age_bucket_label(i),
                    min_days: *min as i32,
                    max_days: max.map_or(-1, |m| m as i32),
                    complaints: counts[i].0,
                    overdue: counts[i].1,
                }
            })
        })
        .collect();
    Ok(GetComplaintAgingResponse {
        as_of: Some(convert::timestamp(now)),
        buckets,
        open,
        overdue,
        oldest_open_days: oldest,
        closed_last_90_days: closed,
        mean_days_to_close: if closed > 0 { days_to_close / closed as f64 } else { 0.0 },
    })
}
