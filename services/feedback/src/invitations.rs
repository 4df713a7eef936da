//! Invitations: planned by the cadence rules, created by people, exported
//! as printed forms, delivered by the external sender (outbox), tracked
//! through sent, opened and answered.
use crate::Feedback;
use crate::convert::{self, page_token};
use crate::links;
use crate::outbox;
use crate::store;
use crate::store::invitations::{InvitationFilter, InvitationRow};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::error::ErrorCode;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::clients::v1::{Client, ClientScore, FirstPurchase};
use branchscore_proto::common::v1::LifecycleStatus;
use branchscore_proto::feedback::v1::outbox_event::Payload;
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::cadence::{self, CadenceClient, Delivery, Due};
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

const PLANNERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::ErpIntegration];
const INVITERS: &[Role] = &[Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::BranchStaff, Role::ErpIntegration];
const SENDERS: &[Role] = &[Role::Admin, Role::ErpIntegration];
const MAX_MANUAL: usize = 100;
const MAX_DELIVERIES: usize = 1000;
const MAX_PLAN_DAYS: i64 = 366;

/// Everything an invitation is made of before it is stored.
struct Draft<'a> {
    client: &'a Client,
    branch_id: &'a str,
    employee_id: &'a str,
    score: Option<&'a ClientScore>,
    survey: &'a SurveyVersion,
    reason: InvitationReason,
    channel: InvitationChannel,
    purchase_date: Option<NaiveDate>,
}

impl Feedback {
    fn is_international(&self, client: &Client) -> bool {
        let region = client.region.trim();
        self.config.international_regions.iter().any(|r| r.trim().eq_ignore_ascii_case(region))
    }

    /// Printed or the digital channel asked for, by the cadence's channel rule.
    fn channel_for(
        &self,
        client: &Client,
        score: Option<&ClientScore>,
        digital: InvitationChannel,
    ) -> InvitationChannel {
        let abc = score.and_then(|s| convert::abc_from_proto(s.abc_class));
        match cadence::delivery(&self.config.cadence, abc, score.map(|s| s.score), self.is_international(client)) {
            Delivery::Printed => InvitationChannel::PrintedForm,
            Delivery::Digital => digital,
        }
    }

    fn row(
        &self,
        draft: &Draft<'_>,
        principal: &Principal,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> InvitationRow {
        let id = Uuid::new_v4();
        let links = &self.config.links;
        let ttl_days = if draft.channel == InvitationChannel::PrintedForm {
            links.printed_ttl_days
        } else {
            links.digital_ttl_days
        };
        InvitationRow {
            id,
            client_id: draft.client.id.clone(),
            branch_id: draft.branch_id.to_owned(),
            employee_id: draft.employee_id.to_owned(),
            abc_class: draft.score.map_or(0, |s| s.abc_class as i16),
            product_id: draft.survey.product_id.clone(),
            survey_id: draft.survey.survey_id.clone(),
            survey_version: draft.survey.version,
            reason: draft.reason as i16,
            channel: draft.channel as i16,
            purchase_date: draft.purchase_date,
            token_hash: links::hash(&self.links.token(id)),
            request_id: request_id.map(str::to_owned),
            created_by: principal.subject.clone(),
            created_at: now,
            expires_at: now + Duration::days(i64::from(ttl_days)),
            // A web link is handed over with the reply: sent now.
            sent_at: (draft.channel == InvitationChannel::WebLink).then_some(now),
            failed_at: None,
            opened_at: None,
            answered_at: None,
            print_batch_id: None,
        }
    }

    /// As returned to the caller: with the link when the caller hands it over.
    fn issued(&self, row: &InvitationRow, now: DateTime<Utc>) -> IssuedInvitation {
        let (link_token, link_url) = if row.channel == InvitationChannel::WebLink as i16 {
            self.links.issue(row.id)
        } else {
            (String::new(), String::new())
        };
        IssuedInvitation { invitation: Some(row.message(now)), link_token, link_url }
    }

    /// Stores invitations with the delivery requests of e-mail and messenger
    /// ones; returns those stored (a first purchase asked about concurrently is skipped).
    async fn store_invitations(
        &self,
        rows: Vec<InvitationRow>,
        surveys: &HashMap<(String, i32), &SurveyVersion>,
    ) -> AppResult<Vec<InvitationRow>> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let inserted = store::invitations::insert(&mut tx, &rows).await?;
        let stored: Vec<InvitationRow> = rows.into_iter().filter(|r| inserted.contains(&r.id)).collect();
        let events: Vec<OutboxEvent> = stored
            .iter()
            .filter(|r| {
                r.channel == InvitationChannel::Email as i16 || r.channel == InvitationChannel::Messenger as i16
            })
            .map(|r| {
                let survey_name =
                    surveys.get(&(r.survey_id.clone(), r.survey_version)).map(|s| s.name.clone()).unwrap_or_default();
                let delivery =
                    InvitationDelivery { invitation: Some(r.message(now)), survey_name, link_url: String::new() };
                outbox::event(OutboxTopic::InvitationDelivery, &r.branch_id, Payload::InvitationDelivery(delivery))
            })
            .collect();
        outbox::append(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.outbox.committed();
        }
        metrics::counter!("invitations_created_total").increment(stored.len() as u64);
        Ok(stored)
    }
}

fn digital_channel(v: &mut Violations, value: i32) -> InvitationChannel {
    match InvitationChannel::try_from(value) {
        Ok(InvitationChannel::Unspecified) => InvitationChannel::Email,
        Ok(channel @ (InvitationChannel::WebLink | InvitationChannel::Email | InvitationChannel::Messenger)) => channel,
        _ => {
            v.add("digital_channel", "must be WEB_LINK, EMAIL, MESSENGER or unspecified (EMAIL)");
            InvitationChannel::Email
        }
    }
}

pub async fn plan(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: PlanInvitationsRequest,
) -> AppResult<PlanInvitationsResponse> {
    principal.require(PLANNERS)?;
    let today = feedback.today();
    let mut v = Violations::new();
    let as_of = match &body.as_of {
        None => Some(today),
        Some(date) => date.to_naive(),
    };
    v.check(as_of.is_some(), || "as_of".into(), "must be a real calendar date");
    v.check(as_of.is_none_or(|d| d <= today), || "as_of".into(), "must not be in the future");
    let from = match (&body.first_purchases_from, as_of) {
        (None, Some(as_of)) => Some(as_of - Duration::days(30)),
        (Some(date), _) => date.to_naive(),
        (None, None) => None,
    };
    v.check(from.is_some(), || "first_purchases_from".into(), "must be a real calendar date");
    if let (Some(from), Some(as_of)) = (from, as_of) {
        v.check(
            from <= as_of && (as_of - from).num_days() <= MAX_PLAN_DAYS,
            || "first_purchases_from".into(),
            "must be on or before as_of and at most 366 days before it",
        );
    }
    convert::optional_id(&mut v, "branch_id", &body.branch_id);
    let digital = digital_channel(&mut v, body.digital_channel);
    v.finish()?;
    let (as_of, from) = (convert::validated(as_of)?, convert::validated(from)?);
    if !body.branch_id.is_empty() {
        principal.ensure_branch(&body.branch_id)?;
    }
    // Everything is read before anything is written: if the clients service
    // fails, nothing is planned.
    let base = feedback.clients.client_base(credentials, &body.branch_id).await?;
    let months = Months::new(feedback.config.cadence.new_client_months);
    let purchases_from = from.checked_sub_months(months).unwrap_or(from);
    let purchases = feedback.clients.first_purchases(credentials, purchases_from, as_of, &body.branch_id).await?;
    let ids: Vec<String> = base.iter().map(|c| c.id.clone()).collect();
    let scores = feedback.clients.scores(credentials, &ids).await?;
    let last_invited = store::invitations::last_invited(&feedback.pool, &ids).await?;
    let asked = store::invitations::asked_about(&feedback.pool, &ids).await?;
    let surveys = store::surveys::latest(&feedback.pool).await?;
    let by_product: HashMap<&str, &SurveyVersion> = surveys.iter().map(|s| (s.product_id.as_str(), s)).collect();

    let cadence_clients: Vec<CadenceClient> = base
        .iter()
        .map(|c| CadenceClient {
            id: &c.id,
            // Unscored clients count as not having bought: potential clients are never surveyed.
            has_bought: !matches!(
                LifecycleStatus::try_from(c.lifecycle_status),
                Ok(LifecycleStatus::Potential | LifecycleStatus::Unspecified) | Err(_)
            ),
            last_invited: last_invited.get(&c.id).map(|at| at.with_timezone(&feedback.zone).date_naive()),
        })
        .collect();
    // The purchases with a readable date, and where each came from.
    let (sources, purchase_facts): (Vec<&FirstPurchase>, Vec<cadence::FirstPurchase>) = purchases
        .iter()
        .filter_map(|p| {
            let date = p.business_date.as_ref()?.to_naive()?;
            let fact = cadence::FirstPurchase {
                client: &p.client_id,
                product: &p.product_id,
                date,
                first_of_client: p.first_purchase_of_client,
            };
            Some((p, fact))
        })
        .unzip();
    let asked: HashSet<(&str, &str)> = asked.iter().map(|(c, p)| (c.as_str(), p.as_str())).collect();
    let due = cadence::plan(&feedback.config.cadence, as_of, from, &cadence_clients, &purchase_facts, &asked);

    let clients: HashMap<&str, &Client> = base.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    let mut drafts = Vec::new();
    for item in &due {
        let (client_id, product_id, reason) = match item {
            Due::Annual { client } => (*client, "", InvitationReason::Annual),
            Due::FirstPurchase { client, product, .. } => (*client, *product, InvitationReason::FirstPurchase),
        };
        let Some(client) = clients.get(client_id) else { continue };
        let Some(survey) = by_product.get(product_id) else {
            let reason = if product_id.is_empty() {
                "no general survey (create one with an empty product_id)".to_owned()
            } else {
                format!("no survey for product {product_id}")
            };
            *skipped.entry(reason).or_default() += 1;
            continue;
        };
        let score = scores.get(client_id);
        let (branch_id, employee_id, purchase_date) = match item {
            Due::FirstPurchase { purchase, .. } => {
                let sale = sources[*purchase];
                (sale.branch_id.as_str(), sale.employee_id.as_str(), Some(purchase_facts[*purchase].date))
            }
            Due::Annual { .. } => (client.branch_id.as_str(), client.owner_employee_id.as_str(), None),
        };
        drafts.push(Draft {
            client,
            branch_id,
            employee_id,
            score,
            survey,
            reason,
            channel: feedback.channel_for(client, score, digital),
            purchase_date,
        });
    }
    let now = Utc::now();
    let rows: Vec<InvitationRow> = drafts.iter().map(|d| feedback.row(d, principal, None, now)).collect();
    let versions: HashMap<(String, i32), &SurveyVersion> =
        surveys.iter().map(|s| ((s.survey_id.clone(), s.version), s)).collect();
    let stored = feedback.store_invitations(rows, &versions).await?;
    let count = |reason: InvitationReason| stored.iter().filter(|r| r.reason == reason as i16).count() as i64;
    tracing::info!(
        annual = count(InvitationReason::Annual),
        first_purchase = count(InvitationReason::FirstPurchase),
        %as_of,
        by = %principal.subject,
        "invitations planned"
    );
    Ok(PlanInvitationsResponse {
        annual: count(InvitationReason::Annual),
        first_purchase: count(InvitationReason::FirstPurchase),
        printed_forms: stored.iter().filter(|r| r.channel == InvitationChannel::PrintedForm as i16).count() as i64,
        invitations: stored.iter().map(|r| feedback.issued(r, now)).collect(),
        skipped: skipped.into_iter().map(|(reason, clients)| PlanSkip { reason, clients }).collect(),
    })
}

pub async fn create(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: CreateInvitationsRequest,
) -> AppResult<CreateInvitationsResponse> {
    principal.require(INVITERS)?;
    let mut v = Violations::new();
    v.id(|| "request_id".into(), &body.request_id);
    v.check(
        !body.invitations.is_empty() && body.invitations.len() <= MAX_MANUAL,
        || "invitations".into(),
        "must hold 1-100 invitations",
    );
    for (i, wanted) in body.invitations.iter().enumerate() {
        v.id(|| format!("invitations[{i}].client_id"), &wanted.client_id);
        convert::optional_id(&mut v, &format!("invitations[{i}].product_id"), &wanted.product_id);
        v.check(
            !matches!(InvitationChannel::try_from(wanted.channel), Ok(InvitationChannel::Unspecified) | Err(_)),
            || format!("invitations[{i}].channel"),
            "must be one of the channels",
        );
    }
    v.finish()?;
    let now = Utc::now();
    let earlier = store::invitations::by_request(&feedback.pool, &body.request_id).await?;
    if !earlier.is_empty() {
        let replayed = replay(principal, earlier, &body.invitations)
            .ok_or_else(|| AppError::new(ErrorCode::AlreadyExists, "request_id was used by another request"))?;
        return Ok(CreateInvitationsResponse {
            invitations: replayed.iter().map(|r| feedback.issued(r, now)).collect(),
        });
    }
    let wanted_ids: Vec<String> = body.invitations.iter().map(|w| w.client_id.clone()).collect();
    let mut clients: HashMap<String, Client> = HashMap::new();
    for id in wanted_ids.iter().collect::<HashSet<_>>() {
        if let Some(client) = feedback.clients.client_by_id(credentials, id).await? {
            clients.insert(id.clone(), client);
        }
    }
    let scores = feedback.clients.scores(credentials, &clients.keys().cloned().collect::<Vec<_>>()).await?;
    let surveys = store::surveys::latest(&feedback.pool).await?;
    let by_product: HashMap<&str, &SurveyVersion> = surveys.iter().map(|s| (s.product_id.as_str(), s)).collect();
    let mut v = Violations::new();
    let mut drafts = Vec::new();
    for (i, wanted) in body.invitations.iter().enumerate() {
        let client = clients.get(&wanted.client_id);
        v.check(client.is_some(), || format!("invitations[{i}].client_id"), "unknown client, or outside your branches");
        let survey = by_product.get(wanted.product_id.as_str());
        v.check(survey.is_some(), || format!("invitations[{i}].product_id"), "no survey for this product");
        let (Some(client), Some(survey)) = (client, survey) else { continue };
        drafts.push(Draft {
            client,
            branch_id: &client.branch_id,
            employee_id: &client.owner_employee_id,
            score: scores.get(&client.id),
            survey,
            reason: InvitationReason::Manual,
            channel: InvitationChannel::try_from(wanted.channel).unwrap_or(InvitationChannel::WebLink),
            purchase_date: None,
        });
    }
    v.finish()?;
    for draft in &drafts {
        principal.ensure_branch(draft.branch_id)?;
    }
    let rows: Vec<InvitationRow> =
        drafts.iter().map(|d| feedback.row(d, principal, Some(&body.request_id), now)).collect();
    let versions: HashMap<(String, i32), &SurveyVersion> =
        surveys.iter().map(|s| ((s.survey_id.clone(), s.version), s)).collect();
    let stored = feedback.store_invitations(rows, &versions).await?;
    Ok(CreateInvitationsResponse { invitations: stored.iter().map(|r| feedback.issued(r, now)).collect() })
}

/// The invitations a retried request created, in the request's order; `None`
/// when they were made by someone else or for a different request.
fn replay(
    principal: &Principal,
    mut earlier: Vec<InvitationRow>,
    wanted: &[InvitationRequest],
) -> Option<Vec<InvitationRow>> {
    if earlier.len() != wanted.len() {
        return None;
    }
    let mut replayed = Vec::with_capacity(wanted.len());
    for want in wanted {
        let position = earlier.iter().position(|r| {
            r.client_id == want.client_id && r.product_id == want.product_id && i32::from(r.channel) == want.channel
        })?;
        let row = earlier.swap_remove(position);
        if !principal.can_access(&row.branch_id) || row.created_by != principal.subject {
            return None;
        }
        replayed.push(row);
    }
    Some(replayed)
}

pub async fn list(
    feedback: &Feedback,
    principal: &Principal,
    body: ListInvitationsRequest,
) -> AppResult<ListInvitationsResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    convert::optional_id(&mut v, "branch_id", &body.branch_id);
    convert::optional_id(&mut v, "client_id", &body.client_id);
    v.check(InvitationStatus::try_from(body.status).is_ok(), || "status".into(), "must be a status or unspecified");
    v.check(InvitationChannel::try_from(body.channel).is_ok(), || "channel".into(), "must be a channel or unspecified");
    let limit = convert::page_size(&mut v, body.page_size, 100, 1000);
    let after = page_token::decode(&body.page_token);
    v.check(after.is_some(), || "page_token".into(), "is not a token this service issued");
    v.finish()?;
    if !body.branch_id.is_empty() {
        principal.ensure_branch(&body.branch_id)?;
    }
    let now = Utc::now();
    let filter = InvitationFilter {
        branch_id: body.branch_id,
        client_id: body.client_id,
        status: body.status,
        channel: body.channel,
    };
    let scope = principal.branch_filter();
    let mut rows =
        store::invitations::list(&feedback.pool, now, &filter, scope.as_deref(), after.flatten(), limit + 1).await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| page_token::encode(r.created_at, r.id)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(ListInvitationsResponse { invitations: rows.iter().map(|r| r.message(now)).collect(), next_page_token })
}

pub async fn export_printed(
    feedback: &Feedback,
    principal: &Principal,
    body: ExportPrintedFormsRequest,
) -> AppResult<ExportPrintedFormsResponse> {
    principal.require(INVITERS)?;
    let mut v = Violations::new();
    convert::optional_id(&mut v, "branch_id", &body.branch_id);
    v.check((0..=1000).contains(&body.limit), || "limit".into(), "must be between 0 (default 200) and 1000");
    let batch = (!body.batch_id.is_empty()).then(|| body.batch_id.parse::<Uuid>().ok());
    v.check(batch.is_none_or(|b| b.is_some()), || "batch_id".into(), "must be a batch id");
    v.finish()?;
    if !body.branch_id.is_empty() {
        principal.ensure_branch(&body.branch_id)?;
    }
    let scope = principal.branch_filter();
    let now = Utc::now();
    let (batch_id, rows) = match batch.flatten() {
        Some(batch_id) => {
            let rows = store::invitations::print_batch(&feedback.pool, batch_id, scope.as_deref()).await?;
            if rows.is_empty() {
                return Err(AppError::not_found(format!("print batch {batch_id}")));
            }
            (batch_id, rows)
        }
        None => {
            let batch_id = Uuid::new_v4();
            let limit = if body.limit == 0 { 200 } else { i64::from(body.limit) };
            let mut tx = feedback.pool.begin().await?;
            let rows =
                store::invitations::take_for_print(&mut tx, scope.as_deref(), &body.branch_id, limit, batch_id, now)
                    .await?;
            tx.commit().await?;
            if rows.is_empty() {
                return Ok(ExportPrintedFormsResponse::default());
            }
            tracing::info!(%batch_id, forms = rows.len(), by = %principal.subject, "printed forms exported");
            (batch_id, rows)
        }
    };
    let keys: Vec<(String, i32)> = rows.iter().map(|r| (r.survey_id.clone(), r.survey_version)).collect();
    let surveys = store::surveys::versions(&feedback.pool, &keys).await?;
    let forms = rows
        .iter()
        .map(|r| PrintedForm {
            invitation: Some(r.message(now)),
            survey: surveys.get(&(r.survey_id.clone(), r.survey_version)).cloned(),
            link_url: feedback.links.url(&feedback.links.token(r.id)),
        })
        .collect();
    Ok(ExportPrintedFormsResponse { batch_id: batch_id.to_string(), forms })
}

pub async fn record_deliveries(
    feedback: &Feedback,
    principal: &Principal,
    body: RecordDeliveriesRequest,
) -> AppResult<RecordDeliveriesResponse> {
    principal.require(SENDERS)?;
    let now = Utc::now();
    let mut v = Violations::new();
    v.check(
        !body.deliveries.is_empty() && body.deliveries.len() <= MAX_DELIVERIES,
        || "deliveries".into(),
        "must hold 1-1000 deliveries",
    );
    let mut parsed = Vec::with_capacity(body.deliveries.len());
    for (i, delivery) in body.deliveries.iter().enumerate() {
        let id = delivery.invitation_id.parse::<Uuid>().ok();
        v.check(id.is_some(), || format!("deliveries[{i}].invitation_id"), "must be an invitation id");
        let outcome = DeliveryOutcome::try_from(delivery.outcome).ok().filter(|o| *o != DeliveryOutcome::Unspecified);
        v.check(outcome.is_some(), || format!("deliveries[{i}].outcome"), "must be SENT or FAILED");
        let at = match &delivery.time {
            None => Some(now),
            Some(time) => branchscore_proto::convert::to_datetime(time),
        };
        v.check(
            at.is_some_and(|at| at <= now + Duration::minutes(5)),
            || format!("deliveries[{i}].time"),
            "must be a time not in the future",
        );
        v.check(delivery.detail.chars().count() <= 500, || format!("deliveries[{i}].detail"), "at most 500 characters");
        if let (Some(id), Some(outcome), Some(at)) = (id, outcome, at) {
            parsed.push((id, outcome == DeliveryOutcome::Sent, at, delivery.detail.trim()));
        }
    }
    v.finish()?;
    let ids: Vec<Uuid> = parsed.iter().map(|p| p.0).collect();
    let known: HashSet<Uuid> = store::invitations::by_ids(&feedback.pool, &ids)
        .await?
        .into_iter()
        .filter(|r| {
            principal.can_access(&r.branch_id)
                && (r.channel == InvitationChannel::Email as i16 || r.channel == InvitationChannel::Messenger as i16)
        })
        .map(|r| r.id)
        .collect();
    let mut reply = RecordDeliveriesResponse::default();
    let mut tx = feedback.pool.begin().await?;
    for (id, sent, at, detail) in parsed {
        if !known.contains(&id) {
            reply.unknown_invitation_ids.push(id.to_string());
        } else if store::invitations::record_delivery(&mut tx, id, sent, at, detail).await? {
            reply.recorded += 1;
        } else {
            reply.repeated += 1;
        }
    }
    tx.commit().await?;
    Ok(reply)
}
