//! The feedback part of `branchscore demo`, all through the public API on a
//! network the clients service already holds (with scores computed):
//! surveys for the general cadence and every product, the cadence's
//! invitations, an e-mail sender that reads the outbox and reports back,
//! printed forms for A+ and international clients, and clients answering a
//! realistic share (more A clients than C clients; the seeds' goal is 65-80%
//! coverage), with low answers opening complaints. Deterministic for a seed.
use crate::convert::abc_name;
use branchscore_platform::client::CallCredentials;
use branchscore_proto::clients::v1::ListProductsRequest;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::common::v1::{AbcClass, Date};
use branchscore_proto::feedback::v1::complaint_service_client::ComplaintServiceClient;
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use branchscore_proto::feedback::v1::survey_link_service_client::SurveyLinkServiceClient;
use branchscore_proto::feedback::v1::*;
use chrono::{Duration, NaiveDate};
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Tokens the demo acts with: head office defines surveys and reads the
/// reports; the ERP integration plans, sends, imports paper answers.
#[derive(Debug, Clone)]
pub struct DemoTokens {
    pub head_office: String,
    pub erp: String,
}

/// Share of invitations a client of each ABC class answers.
pub fn answer_probability(class: AbcClass) -> f64 {
    match class {
        AbcClass::A => 0.8,
        AbcClass::B => 0.65,
        AbcClass::C => 0.45,
        AbcClass::Unspecified => 0.35,
    }
}

/// A client's mood on the 1-5 scale: most clients are content, A clients
/// most of all, and a few of each class (4% of A, 9% of unclassed) had a
/// bad experience; everyone varies (a sum of uniforms is close enough to a bell).
fn mood(rng: &mut impl Rng, class: AbcClass) -> f64 {
    let (content, unhappy_share) = match class {
        AbcClass::A => (4.6, 0.04),
        AbcClass::B => (4.5, 0.06),
        AbcClass::C => (4.4, 0.08),
        AbcClass::Unspecified => (4.35, 0.09),
    };
    let centre = if rng.random_bool(unhappy_share) { 2.3 } else { content };
    let spread: f64 = (0..3).map(|_| rng.random_range(-0.5..0.5)).sum();
    (centre + spread).clamp(1.0, 5.0)
}

/// Answers to `survey` from a client in `mood`.
pub fn answer(rng: &mut impl Rng, survey: &SurveyVersion, mood: f64) -> Answers {
    let scale = |rng: &mut dyn rand::RngCore, jitter: f64| -> i32 {
        (mood + rng.random_range(-jitter..=jitter)).round().clamp(1.0, 5.0) as i32
    };
    Answers {
        items: survey.items.iter().map(|item| ItemAnswer { code: item.code.clone(), score: scale(rng, 0.6) }).collect(),
        nps: survey
            .asks_nps
            .then(|| ((mood - 1.0) * 2.5 + rng.random_range(-1.5..=1.5)).round().clamp(0.0, 10.0) as i32),
        csat: survey.asks_csat.then(|| scale(rng, 0.4)),
        comment: String::new(),
    }
}

/// What the demo did and what came of it.
#[derive(Debug, Default)]
pub struct DemoSummary {
    pub planned: PlanInvitationsResponse,
    /// E-mail invitations the sender took from the outbox.
    pub delivered: usize,
    pub printed: usize,
    /// By ABC class: (invited, answered).
    pub answered_by_class: BTreeMap<String, (usize, usize)>,
    pub coverage: GetCoverageResponse,
    pub satisfaction: SatisfactionPoint,
    /// Open complaints by source.
    pub open_complaints: BTreeMap<String, usize>,
}

type Authed = InterceptedService<Channel, CallCredentials>;

/// Runs the feedback demo: plans as of `as_of` (not after today; the network's
/// sales should end then), answers today, reports the 12 months up to today.
pub async fn run(
    feedback: Channel,
    clients: Channel,
    tokens: &DemoTokens,
    as_of: NaiveDate,
    seed: u64,
) -> anyhow::Result<DemoSummary> {
    let head_office = CallCredentials::bearer(&tokens.head_office)?;
    let erp = CallCredentials::bearer(&tokens.erp)?;
    let mut definer = FeedbackServiceClient::with_interceptor(feedback.clone(), head_office.clone())
        .max_decoding_message_size(256 * 1024 * 1024);
    let mut integration: FeedbackServiceClient<Authed> =
        FeedbackServiceClient::with_interceptor(feedback.clone(), erp).max_decoding_message_size(256 * 1024 * 1024);
    let link = SurveyLinkServiceClient::new(feedback.clone());
    let mut complaints = ComplaintServiceClient::with_interceptor(feedback, head_office.clone());
    let mut catalogue = ClientsServiceClient::with_interceptor(clients, head_office);

    let products = catalogue.list_products(ListProductsRequest {}).await?.into_inner().products;
    let mut surveys = vec![general_survey()];
    surveys.extend(products.iter().map(|p| product_survey(&p.id, &p.name)));
    let mut by_key = HashMap::new();
    for survey in surveys {
        let stored = definer.create_survey_version(survey).await?.into_inner().survey.unwrap_or_default();
        by_key.insert((stored.survey_id.clone(), stored.version), stored);
    }

    let request = PlanInvitationsRequest {
        as_of: Some(Date::from(as_of)),
        digital_channel: InvitationChannel::Email as i32,
        ..Default::default()
    };
    let planned = integration.plan_invitations(request).await?.into_inner();
    let invitations: Vec<Invitation> = planned.invitations.iter().filter_map(|i| i.invitation.clone()).collect();
    let links = deliver_by_email(&mut integration, &invitations).await?;
    let printed = export_printed(&mut integration).await?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut answered_by_class: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut web_answers = Vec::new();
    let mut paper_answers = Vec::new();
    let mut moods: HashMap<String, f64> = HashMap::new();
    for invitation in &invitations {
        let class = AbcClass::try_from(invitation.abc_class).unwrap_or_default();
        let tally = answered_by_class.entry(abc_name(invitation.abc_class).to_owned()).or_default();
        tally.0 += 1;
        let mood = *moods.entry(invitation.client_id.clone()).or_insert_with(|| mood(&mut rng, class));
        let answers_it = rng.random_bool(answer_probability(class));
        let Some(survey) = by_key.get(&(invitation.survey_id.clone(), invitation.survey_version)) else { continue };
        if !answers_it {
            continue;
        }
        tally.1 += 1;
        let answers = answer(&mut rng, survey, mood);
        match links.get(&invitation.id) {
            Some(token) => web_answers.push((token.clone(), answers)),
            None if invitation.channel() == InvitationChannel::PrintedForm => paper_answers.push(ImportedResponse {
                external_id: format!("DEMO-PAPER-{}", invitation.id),
                invitation_id: invitation.id.clone(),
                answered_on: None,
                answers: Some(answers),
            }),
            None => {}
        }
    }
    // Clients answer by their links, a few at a time.
    futures::stream::iter(web_answers)
        .map(|(token, answers)| {
            let mut link = link.clone();
            async move { link.submit_survey(SubmitSurveyRequest { token, answers: Some(answers) }).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    // The ERP imports the paper forms that came back.
    for chunk in paper_answers.chunks(500) {
        integration.import_responses(ImportResponsesRequest { responses: chunk.to_vec() }).await?;
    }

    // Answers are dated the day they come in, which may be after an as-of in the past.
    let newest = ListResponsesRequest { page_size: 1, ..Default::default() };
    let newest = definer.list_responses(newest).await?.into_inner().responses;
    let until = newest.first().and_then(|r| r.answered_on.as_ref()?.to_naive()).map_or(as_of, |day| day.max(as_of));
    let year = GetCoverageRequest {
        from: Some(Date::from(until - Duration::days(364))),
        to: Some(Date::from(until)),
        dimension: CoverageDimension::ClientClass as i32,
        ..Default::default()
    };
    let coverage = definer.get_coverage(year).await?.into_inner();
    let trend = GetSatisfactionTrendRequest {
        from: Some(Date::from(until - Duration::days(364))),
        to: Some(Date::from(until)),
        ..Default::default()
    };
    let satisfaction = definer.get_satisfaction_trend(trend).await?.into_inner().total.unwrap_or_default();
    let mut open_complaints = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let request = ListComplaintsRequest { open_only: true, page_size: 1000, page_token, ..Default::default() };
        let page = complaints.list_complaints(request).await?.into_inner();
        for complaint in &page.complaints {
            *open_complaints.entry(source_name(complaint.source()).to_owned()).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(DemoSummary {
        delivered: links.len(),
        printed,
        planned,
        answered_by_class,
        coverage,
        satisfaction,
        open_complaints,
    })
}

/// Plays the external e-mail sender: takes this plan's delivery requests
/// from the outbox and reports them sent. Returns each invitation's link token.
async fn deliver_by_email(
    integration: &mut FeedbackServiceClient<Authed>,
    invitations: &[Invitation],
) -> anyhow::Result<HashMap<String, String>> {
    let mut waiting: HashSet<&str> = invitations
        .iter()
        .filter(|i| matches!(i.channel(), InvitationChannel::Email | InvitationChannel::Messenger))
        .map(|i| i.id.as_str())
        .collect();
    let mut links = HashMap::new();
    if waiting.is_empty() {
        return Ok(links);
    }
    let watch = WatchOutboxRequest { after_cursor: 0, topics: vec![OutboxTopic::InvitationDelivery as i32] };
    let mut stream = integration.watch_outbox(watch).await?.into_inner();
    while !waiting.is_empty() {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), stream.message())
            .await
            .map_err(|_| anyhow::anyhow!("the outbox stopped short: {} deliveries missing", waiting.len()))??
            .ok_or_else(|| anyhow::anyhow!("the outbox stream ended"))?;
        let Some(outbox_event::Payload::InvitationDelivery(delivery)) = message.event.and_then(|e| e.payload) else {
            continue;
        };
        let Some(id) = delivery.invitation.map(|i| i.id) else { continue };
        if waiting.remove(id.as_str()) {
            let token = delivery.link_url.rsplit('/').next().unwrap_or_default().to_owned();
            links.insert(id, token);
        }
    }
    let deliveries: Vec<Delivery> = links
        .keys()
        .map(|id| Delivery {
            invitation_id: id.clone(),
            outcome: DeliveryOutcome::Sent as i32,
            time: None,
            detail: String::new(),
        })
        .collect();
    for chunk in deliveries.chunks(1000) {
        integration.record_deliveries(RecordDeliveriesRequest { deliveries: chunk.to_vec() }).await?;
    }
    Ok(links)
}

/// Exports every printed form waiting, batch by batch; returns how many.
async fn export_printed(integration: &mut FeedbackServiceClient<Authed>) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let batch =
            integration.export_printed_forms(ExportPrintedFormsRequest { limit: 1000, ..Default::default() }).await?;
        let forms = batch.into_inner().forms.len();
        if forms == 0 {
            return Ok(total);
        }
        total += forms;
    }
}

fn item(code: &str, text: &str, touchpoint: &str) -> SurveyItem {
    SurveyItem { code: code.into(), text: text.into(), touchpoint: touchpoint.into() }
}

fn general_survey() -> CreateSurveyVersionRequest {
    CreateSurveyVersionRequest {
        survey_id: "DEMO-GENERAL".into(),
        product_id: String::new(),
        name: "How are we doing?".into(),
        items: vec![
            item("advice", "How useful was our advice?", "staff"),
            item("reachability", "How easy is it to reach us?", "communication"),
            item("offer", "How well does our offer fit your business?", "offer"),
        ],
        asks_nps: true,
        asks_csat: true,
    }
}

fn product_survey(product_id: &str, name: &str) -> CreateSurveyVersionRequest {
    CreateSurveyVersionRequest {
        survey_id: format!("DEMO-{product_id}"),
        product_id: product_id.into(),
        name: format!("Your {name}"),
        items: vec![
            item("appearance", "How does the product look?", "product"),
            item("delivery", "How fast was the delivery?", "delivery"),
            item("payment", "How convenient was paying?", "payment"),
        ],
        asks_nps: false,
        asks_csat: true,
    }
}

fn source_name(source: ComplaintSource) -> &'static str {
    match source {
        ComplaintSource::Explicit => "explicit (2 or lower)",
        ComplaintSource::Hidden => "hidden (a 3)",
        ComplaintSource::NpsDetractor => "NPS detractor",
        ComplaintSource::Direct => "registered directly",
        ComplaintSource::Unspecified => "other",
    }
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.planned;
        writeln!(
            f,
            "\nFeedback: {} invitations planned ({} yearly, {} first purchases of new clients), {} sent by e-mail through the outbox, {} printed forms (A+ and international)",
            p.invitations.len(),
            p.annual,
            p.first_purchase,
            self.delivered,
            self.printed
        )?;
        for skip in &p.skipped {
            writeln!(f, "  not invited: {} clients ({})", skip.clients, skip.reason)?;
        }
        writeln!(f, "  answered by class:")?;
        for (class, (invited, answered)) in &self.answered_by_class {
            let share = if *invited == 0 { 0.0 } else { *answered as f64 / *invited as f64 };
            writeln!(f, "    {class:<10} {answered:>5} of {invited:>5} invitations ({})", percent(share))?;
        }
        writeln!(f, "  coverage over the last 12 months (goal {}):", percent(self.coverage.coverage_target))?;
        for row in self.coverage.rows.iter().chain(&self.coverage.totals) {
            let key = if row.key.is_empty() { "all" } else { row.key.as_str() };
            writeln!(
                f,
                "    {key:<10} {:>5} of {:>5} clients gave feedback ({}), response rate {}",
                row.responding_clients,
                row.clients,
                percent(row.coverage),
                percent(row.response_rate)
            )?;
        }
        let s = &self.satisfaction;
        let or_dash = |v: Option<f64>, unit: &str| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{unit}"));
        writeln!(
            f,
            "  NPS {} ({} promoters, {} passives, {} detractors); CSAT {} satisfied (mean {}); {} responses",
            or_dash(s.nps, ""),
            s.promoters,
            s.passives,
            s.detractors,
            or_dash(s.csat_percent, "%"),
            or_dash(s.csat_mean, ""),
            s.responses
        )?;
        let open: usize = self.open_complaints.values().sum();
        writeln!(f, "  open complaints: {open}")?;
        for (source, count) in &self.open_complaints {
            writeln!(f, "    {count:>5} {source}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn survey() -> SurveyVersion {
        SurveyVersion {
            items: vec![item("a", "A", "x"), item("b", "B", "y")],
            asks_nps: true,
            asks_csat: true,
            ..SurveyVersion::default()
        }
    }

    #[test]
    fn answers_stay_on_their_scales_and_follow_the_mood() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut happy, mut unhappy) = (0.0, 0.0);
        for _ in 0..2000 {
            for (mood, sum) in [(4.8, &mut happy), (1.5, &mut unhappy)] {
                let answers = answer(&mut rng, &survey(), mood);
                assert!(answers.items.iter().all(|i| (1..=5).contains(&i.score)));
                assert!(answers.nps.is_some_and(|n| (0..=10).contains(&n)));
                assert!(answers.csat.is_some_and(|c| (1..=5).contains(&c)));
                *sum += f64::from(answers.nps.unwrap_or_default());
            }
        }
        assert!(happy / 2000.0 > 8.0 && unhappy / 2000.0 < 3.0, "{happy} {unhappy}");
    }

    #[test]
    fn a_clients_answer_more_often_and_are_happier_than_c_clients() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut answered = [0u32; 2];
        let mut moods = [0.0f64; 2];
        for _ in 0..10_000 {
            for (i, class) in [AbcClass::A, AbcClass::C].into_iter().enumerate() {
                answered[i] += u32::from(rng.random_bool(answer_probability(class)));
                moods[i] += mood(&mut rng, class);
            }
        }
        assert!(answered[0] > 7_500 && answered[1] < 5_000, "{answered:?}");
        assert!(moods[0] > moods[1]);
    }
}
