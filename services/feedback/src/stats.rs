//! Coverage, the satisfaction trend, touchpoint weights and the KPI facts.
//!
//! Coverage's base is the client base as the clients service sees it now
//! (clients who have bought, by their current class, branch and owner);
//! invitations, responses and complaints count on the branch, employee and
//! class recorded when the client was invited.
use crate::Feedback;
use crate::convert::{self, Range};
use crate::quality_api;
use crate::store;
use crate::store::complaints::Happening;
use crate::store::responses::{ScoreFilter, ScoredResponse};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::clients::v1::Client;
use branchscore_proto::common::v1::{Date, FactSource, LifecycleStatus};
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::coverage::{self, BaseClient, SentInvitation, Tally};
use branchscore_scoring::nps::{NpsTally, ScaleTally};
use branchscore_scoring::periods::{self, Granularity, Period};
use branchscore_scoring::touchpoints::{self, Row};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashSet};

/// Clients who have bought: the base of coverage. An unscored client's
/// status is unknown and it is left out, like a potential one.
fn has_bought(client: &Client) -> bool {
    matches!(
        LifecycleStatus::try_from(client.lifecycle_status),
        Ok(LifecycleStatus::New | LifecycleStatus::Regular | LifecycleStatus::Restored | LifecycleStatus::Lost)
    )
}

fn owner_key(employee_id: &str) -> String {
    if employee_id.is_empty() { "unassigned".into() } else { employee_id.to_owned() }
}

/// Checks the common filters and the caller's right to the branch.
fn scoped_range(
    principal: &Principal,
    v: &mut Violations,
    body: (&Option<Date>, &Option<Date>, i32),
    default: Granularity,
    branch_id: &str,
    employee_id: &str,
) -> AppResult<Range> {
    let range = convert::range(v, body.0.as_ref(), body.1.as_ref(), body.2, default);
    convert::optional_id(v, "branch_id", branch_id);
    convert::optional_id(v, "employee_id", employee_id);
    std::mem::take(v).finish()?;
    if !branch_id.is_empty() {
        principal.ensure_branch(branch_id)?;
    }
    convert::validated(range)
}

/// A period's base clients and sent invitations, by group.
type PeriodCoverage = (Vec<BaseClient<String>>, Vec<SentInvitation<String>>);

pub async fn coverage(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: GetCoverageRequest,
) -> AppResult<GetCoverageResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    let dimension = CoverageDimension::try_from(body.dimension).ok().filter(|d| *d != CoverageDimension::Unspecified);
    v.check(dimension.is_some(), || "dimension".into(), "must be CLIENT_CLASS, BRANCH, EMPLOYEE or PRODUCT");
    let range = scoped_range(
        principal,
        &mut v,
        (&body.from, &body.to, body.granularity),
        Granularity::Whole,
        &body.branch_id,
        "",
    )?;
    let dimension = convert::validated(dimension)?;
    let scope = principal.branch_filter();
    let zone = feedback.zone.name();
    let sent = store::stats::sent_invitations(
        &feedback.pool,
        zone,
        range.from,
        range.to,
        scope.as_deref(),
        &body.branch_id,
        "",
    )
    .await?;
    let mut by_period: Vec<PeriodCoverage> = range.periods.iter().map(|_| (Vec::new(), Vec::new())).collect();
    let invitation_key = |s: &store::stats::SentInvitation| match dimension {
        CoverageDimension::ClientClass => convert::abc_name(i32::from(s.abc_class)).to_owned(),
        CoverageDimension::Branch => s.branch_id.clone(),
        CoverageDimension::Employee => owner_key(&s.employee_id),
        _ => {
            if s.product_id.is_empty() {
                "general".to_owned()
            } else {
                s.product_id.clone()
            }
        }
    };
    for invitation in &sent {
        if let Some(p) = periods::index_of(&range.periods, invitation.sent_on) {
            by_period[p].1.push(SentInvitation { group: invitation_key(invitation), answered: invitation.answered });
        }
    }
    if dimension == CoverageDimension::Product {
        // The base of a product is the clients asked about it in the period.
        let mut asked: BTreeMap<(usize, String, &str), bool> = BTreeMap::new();
        for invitation in &sent {
            if let Some(p) = periods::index_of(&range.periods, invitation.sent_on) {
                let answered = asked.entry((p, invitation_key(invitation), invitation.client_id.as_str())).or_default();
                *answered |= invitation.answered;
            }
        }
        for ((p, group, _), responded) in asked {
            by_period[p].0.push(BaseClient { group, responded });
        }
    } else {
        let base: Vec<Client> =
            feedback.clients.client_base(credentials, &body.branch_id).await?.into_iter().filter(has_bought).collect();
        let ids: Vec<String> = base.iter().map(|c| c.id.clone()).collect();
        let answered = store::stats::answer_days(&feedback.pool, range.from, range.to, &ids).await?;
        let mut responded: HashSet<(usize, &str)> = HashSet::new();
        for (client, day) in &answered {
            if let Some(p) = periods::index_of(&range.periods, *day) {
                responded.insert((p, client.as_str()));
            }
        }
        for client in &base {
            let group = match dimension {
                CoverageDimension::ClientClass => convert::abc_name(client.abc_class).to_owned(),
                CoverageDimension::Branch => client.branch_id.clone(),
                _ => owner_key(&client.owner_employee_id),
            };
            for (p, (clients, _)) in by_period.iter_mut().enumerate() {
                clients
                    .push(BaseClient { group: group.clone(), responded: responded.contains(&(p, client.id.as_str())) });
            }
        }
    }
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for (period, (clients, invitations)) in range.periods.iter().zip(by_period) {
        let groups = coverage::tally(clients, invitations);
        totals.push(coverage_row(period, String::new(), &coverage::total(&groups)));
        rows.extend(groups.iter().map(|(key, tally)| coverage_row(period, key.clone(), tally)));
    }
    Ok(GetCoverageResponse { rows, totals, coverage_target: feedback.config.coverage_target })
}

fn coverage_row(period: &Period, key: String, tally: &Tally) -> CoverageRow {
    CoverageRow {
        period_start: Some(Date::from(period.start)),
        period_end: Some(Date::from(period.end)),
        key,
        clients: tally.clients as i64,
        responding_clients: tally.responding_clients as i64,
        coverage: tally.coverage(),
        invitations_sent: tally.invitations_sent as i64,
        invitations_answered: tally.invitations_answered as i64,
        response_rate: tally.response_rate(),
    }
}

/// NPS, CSAT and item answers of some responses.
#[derive(Debug, Default, Clone, Copy)]
struct Satisfaction {
    responses: u64,
    nps: NpsTally,
    csat: ScaleTally,
    items: ScaleTally,
}

impl Satisfaction {
    fn add(&mut self, response: &ScoredResponse) {
        self.responses += 1;
        if let Some(nps) = response.nps {
            self.nps.add(nps);
        }
        if let Some(csat) = response.csat {
            self.csat.add(csat);
        }
        response.items.iter().for_each(|(_, score)| self.items.add(*score));
    }

    fn point(&self, period: &Period) -> SatisfactionPoint {
        SatisfactionPoint {
            period_start: Some(Date::from(period.start)),
            period_end: Some(Date::from(period.end)),
            responses: self.responses as i64,
            nps: self.nps.score(),
            promoters: self.nps.promoters as i64,
            passives: self.nps.passives as i64,
            detractors: self.nps.detractors as i64,
            csat_percent: self.csat.satisfied_percent(),
            csat_mean: self.csat.mean(),
            csat_answers: self.csat.answers as i64,
            item_mean: self.items.mean(),
            item_answers: self.items.answers as i64,
        }
    }
}

pub async fn trend(
    feedback: &Feedback,
    principal: &Principal,
    body: GetSatisfactionTrendRequest,
) -> AppResult<GetSatisfactionTrendResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    convert::optional_id(&mut v, "product_id", &body.product_id);
    let range = scoped_range(
        principal,
        &mut v,
        (&body.from, &body.to, body.granularity),
        Granularity::Month,
        &body.branch_id,
        &body.employee_id,
    )?;
    let scope = principal.branch_filter();
    let filter = ScoreFilter {
        scope: scope.as_deref(),
        branch_id: &body.branch_id,
        employee_id: &body.employee_id,
        product_id: &body.product_id,
        client_ids: None,
    };
    let responses = store::responses::scored(&feedback.pool, range.from, range.to, &filter).await?;
    let mut periods = vec![Satisfaction::default(); range.periods.len()];
    let mut total = Satisfaction::default();
    for response in &responses {
        if let Some(p) = periods::index_of(&range.periods, response.answered_on) {
            periods[p].add(response);
        }
        total.add(response);
    }
    let whole = Period { start: range.from, end: range.to };
    Ok(GetSatisfactionTrendResponse {
        points: range.periods.iter().zip(&periods).map(|(period, s)| s.point(period)).collect(),
        total: Some(total.point(&whole)),
    })
}

/// Score sum and answer count per touchpoint.
type TouchpointSums<'a> = BTreeMap<&'a str, (u32, u32)>;

pub async fn touchpoint_weights(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: GetTouchpointWeightsRequest,
) -> AppResult<GetTouchpointWeightsResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    v.check(
        (0..=730).contains(&body.follow_up_days),
        || "follow_up_days".into(),
        "must be between 0 (default 60) and 730",
    );
    v.check(
        body.min_clients == 0 || (10..=1_000_000).contains(&body.min_clients),
        || "min_clients".into(),
        "must be 0 (default 30) or at least 10",
    );
    let range = scoped_range(principal, &mut v, (&body.from, &body.to, 0), Granularity::Whole, &body.branch_id, "")?;
    let follow_up = if body.follow_up_days == 0 { 60 } else { i64::from(body.follow_up_days) };
    let min_clients = if body.min_clients == 0 { 30 } else { body.min_clients as usize };
    let scope = principal.branch_filter();
    let filter = ScoreFilter { scope: scope.as_deref(), branch_id: &body.branch_id, ..ScoreFilter::default() };
    let responses = store::responses::scored(&feedback.pool, range.from, range.to, &filter).await?;
    // Per client: each touchpoint's score sum and count, and the last answer day.
    let mut clients: BTreeMap<&str, (TouchpointSums, NaiveDate)> = BTreeMap::new();
    for response in &responses {
        let (touchpoints, last) = clients.entry(&response.client_id).or_insert((BTreeMap::new(), response.answered_on));
        *last = (*last).max(response.answered_on);
        for (touchpoint, score) in &response.items {
            let cell = touchpoints.entry(touchpoint).or_default();
            cell.0 += u32::from(*score);
            cell.1 += 1;
        }
    }
    let ids: Vec<String> = clients.keys().map(|id| (*id).to_owned()).collect();
    let scores = feedback.clients.scores(credentials, &ids).await?;
    let mut usable = Vec::new();
    for (client, (touchpoints, last)) in &clients {
        let Some(score) = scores.get(*client) else { continue };
        let Some(as_of) = score.as_of.as_ref().and_then(Date::to_naive) else { continue };
        if (as_of - *last).num_days() < follow_up {
            continue;
        }
        // RFM is scored only for clients who bought in the window; recency then dates the last purchase.
        let last_purchase = (!score.rfm_code.is_empty()).then(|| as_of - chrono::Duration::days(score.recency_days));
        usable.push((touchpoints, last_purchase.is_some_and(|day| day > *last)));
    }
    let mut rated: BTreeMap<&str, usize> = BTreeMap::new();
    for (touchpoints, _) in &usable {
        for touchpoint in touchpoints.keys() {
            *rated.entry(touchpoint).or_default() += 1;
        }
    }
    // Touchpoints most clients rated are modelled; the rest are noted.
    let mut notes = Vec::new();
    let mut names = Vec::new();
    for (touchpoint, count) in &rated {
        if *count * 2 >= usable.len() {
            names.push((*touchpoint).to_owned());
        } else {
            notes.push(format!("{touchpoint}: rated by only {count} of {} clients, left out", usable.len()));
        }
    }
    let rows: Vec<Row> = usable
        .iter()
        .filter_map(|(touchpoints, bought_again)| {
            let scores: Option<Vec<f64>> = names
                .iter()
                .map(|name| touchpoints.get(name.as_str()).map(|(sum, n)| f64::from(*sum) / f64::from(*n)))
                .collect();
            Some(Row { scores: scores?, bought_again: *bought_again })
        })
        .collect();
    let fit =
        touchpoints::weigh(&names, &rows, min_clients).map_err(|err| AppError::failed_precondition(err.to_string()))?;
    notes.extend(fit.notes);
    Ok(GetTouchpointWeightsResponse {
        weights: fit
            .weights
            .into_iter()
            .map(|w| TouchpointWeight {
                touchpoint: w.touchpoint,
                beta: w.beta,
                standard_error: w.standard_error,
                ci_low: w.ci_low,
                ci_high: w.ci_high,
                significant: w.significant,
                importance: w.importance,
                mean_score: w.mean_score,
            })
            .collect(),
        clients: fit.rows as i64,
        repeat_rate: fit.repeat_rate,
        r_squared: fit.r_squared,
        adjusted_r_squared: fit.adjusted_r_squared,
        notes,
        method: touchpoints::METHOD.to_owned(),
    })
}

/// A row of `GetFeedbackFacts` being counted, with the NPS and CSAT answers behind it.
struct FactsRow {
    facts: FeedbackFacts,
    nps: NpsTally,
    csat: ScaleTally,
    include_sources: bool,
}

impl FactsRow {
    /// Lists the record `kind` `id` behind `fact`, if sources are asked for.
    fn source(&mut self, fact: &str, kind: &str, id: impl ToString) {
        if self.include_sources {
            self.facts.sources.push(FactSource { fact: fact.to_owned(), kind: kind.to_owned(), id: id.to_string() });
        }
    }
}

/// The rows of `GetFeedbackFacts` being counted, by (period, branch, employee).
struct Facts<'a> {
    periods: &'a [Period],
    include_sources: bool,
    rows: BTreeMap<(usize, String, String), FactsRow>,
}

impl Facts<'_> {
    fn at(&mut self, p: usize, branch_id: &str, employee_id: &str) -> &mut FactsRow {
        let period = &self.periods[p];
        let include_sources = self.include_sources;
        self.rows.entry((p, branch_id.to_owned(), employee_id.to_owned())).or_insert_with(|| FactsRow {
            facts: FeedbackFacts {
                period_start: Some(Date::from(period.start)),
                period_end: Some(Date::from(period.end)),
                branch_id: branch_id.to_owned(),
                employee_id: employee_id.to_owned(),
                ..FeedbackFacts::default()
            },
            nps: NpsTally::default(),
            csat: ScaleTally::default(),
            include_sources,
        })
    }
}

pub async fn facts(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: GetFeedbackFactsRequest,
) -> AppResult<GetFeedbackFactsResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    let range = scoped_range(
        principal,
        &mut v,
        (&body.from, &body.to, body.granularity),
        Granularity::Whole,
        &body.branch_id,
        &body.employee_id,
    )?;
    let (branch, employee) = (body.branch_id.as_str(), body.employee_id.as_str());
    let scope = principal.branch_filter();
    let zone = feedback.zone.name();
    let base: Vec<Client> = feedback
        .clients
        .client_base(credentials, branch)
        .await?
        .into_iter()
        .filter(|c| has_bought(c) && (employee.is_empty() || c.owner_employee_id == employee))
        .collect();
    let ids: Vec<String> = base.iter().map(|c| c.id.clone()).collect();
    let answered = store::stats::answer_days(&feedback.pool, range.from, range.to, &ids).await?;
    let sent =
        store::stats::sent_invitations(&feedback.pool, zone, range.from, range.to, scope.as_deref(), branch, employee)
            .await?;
    let filter =
        ScoreFilter { scope: scope.as_deref(), branch_id: branch, employee_id: employee, ..ScoreFilter::default() };
    let responses = store::responses::scored(&feedback.pool, range.from, range.to, &filter).await?;
    let happenings = store::complaints::happenings(
        &feedback.pool,
        zone,
        range.from,
        range.to,
        scope.as_deref(),
        branch,
        employee,
        body.include_sources,
    )
    .await?;
    let quality = quality_api::scores(feedback, scope.as_deref(), &range, branch, employee).await?;

    let mut facts = Facts { periods: &range.periods, include_sources: body.include_sources, rows: BTreeMap::new() };
    let mut responded: HashSet<(usize, &str)> = HashSet::new();
    for (client, day) in &answered {
        if let Some(p) = periods::index_of(&range.periods, *day) {
            responded.insert((p, client.as_str()));
        }
    }
    for client in &base {
        for p in 0..range.periods.len() {
            let row = facts.at(p, &client.branch_id, &client.owner_employee_id);
            row.facts.clients += 1;
            row.source("clients", "client", &client.id);
            if responded.contains(&(p, client.id.as_str())) {
                row.facts.responding_clients += 1;
                row.source("responding_clients", "client", &client.id);
            }
        }
    }
    for invitation in &sent {
        if let Some(p) = periods::index_of(&range.periods, invitation.sent_on) {
            let row = facts.at(p, &invitation.branch_id, &invitation.employee_id);
            row.facts.invitations_sent += 1;
            row.source("invitations_sent", "invitation", invitation.id);
            if invitation.answered {
                row.facts.invitations_answered += 1;
                row.source("invitations_answered", "invitation", invitation.id);
            }
        }
    }
    // The schema keeps stored answers on their scales, so the tallies count each one.
    for response in &responses {
        if let Some(p) = periods::index_of(&range.periods, response.answered_on) {
            let row = facts.at(p, &response.branch_id, &response.employee_id);
            if let Some(answer) = response.nps {
                row.nps.add(answer);
                row.source("nps_answers", "answer", response.id);
            }
            if let Some(answer) = response.csat {
                row.csat.add(answer);
                row.source("csat_answers", "answer", response.id);
            }
        }
    }
    for happening in &happenings {
        let Some(p) = periods::index_of(&range.periods, happening.day) else { continue };
        let row = facts.at(p, &happening.branch_id, &happening.employee_id);
        let (count, fact) = match happening.happening {
            Happening::Opened(source) => match ComplaintSource::try_from(i32::from(source)) {
                Ok(ComplaintSource::Explicit) => (&mut row.facts.complaints_explicit, "complaints_explicit"),
                Ok(ComplaintSource::Hidden) => (&mut row.facts.complaints_hidden, "complaints_hidden"),
                Ok(ComplaintSource::NpsDetractor) => {
                    (&mut row.facts.complaints_nps_detractor, "complaints_nps_detractor")
                }
                _ => (&mut row.facts.complaints_direct, "complaints_direct"),
            },
            Happening::Closed => (&mut row.facts.complaints_closed, "complaints_closed"),
            Happening::Escalated => (&mut row.facts.complaints_escalated, "complaints_escalated"),
        };
        *count += happening.count;
        for id in &happening.complaint_ids {
            row.source(fact, "complaint", id);
        }
    }
    for ((p, branch_id, employee_id), quality) in &quality {
        let row = facts.at(*p, branch_id, employee_id);
        row.facts.quality_score = quality.score.score.is_finite().then_some(quality.score.score);
        for (kind, id) in &quality.made_of {
            row.source("quality_score", kind, id);
        }
    }
    let facts = facts
        .rows
        .into_values()
        .map(|FactsRow { facts: mut row, nps, csat, .. }| {
            row.coverage = Tally {
                clients: row.clients as u64,
                responding_clients: row.responding_clients as u64,
                ..Tally::default()
            }
            .coverage();
            row.nps = nps.score();
            row.nps_answers = nps.answers() as i64;
            row.csat_percent = csat.satisfied_percent();
            row.csat_answers = csat.answers as i64;
            row
        })
        .collect();
    Ok(GetFeedbackFactsResponse { facts })
}
