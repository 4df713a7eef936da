//! The demo's sales pipeline: leads from every channel with realistic first
//! response times, deals opened from most of them, moved through Schiffman's
//! stages with the qualification gate, won or lost for catalogued reasons.
//! Deterministic for a seed; sent through the public gRPC API.
use super::network::Network;
use branchscore_platform::client::CallCredentials;
use branchscore_proto::common::v1::{Date, Money};
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::pipeline::v1::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Pipeline = PipelineServiceClient<InterceptedService<Channel, CallCredentials>>;

/// What the demo prints about the pipeline.
#[derive(Debug, Default)]
pub struct PipelineReport {
    pub leads: usize,
    pub deals: usize,
    /// (channel, leads, mean first response in seconds, SLA breaches)
    pub response_by_channel: Vec<(&'static str, usize, f64, usize)>,
    /// Moves the gate refused (and why, for the first one).
    pub gate_refusals: usize,
    pub first_refusal: String,
    pub funnel: GetFunnelResponse,
    pub forecast: GetForecastResponse,
}

const CHANNELS: [(LeadChannel, &str, f64); 5] = [
    // (channel, name, typical first response in minutes)
    (LeadChannel::WalkIn, "walk-in", 2.0),
    (LeadChannel::Phone, "phone", 3.0),
    (LeadChannel::Messenger, "messenger", 12.0),
    (LeadChannel::Site, "site", 25.0),
    (LeadChannel::Email, "e-mail", 90.0),
];

const LOSS_REASONS: [&str; 5] = ["price", "competitor", "no_budget", "timing", "no_decision"];

fn time(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
}

/// Calls in flight at once.
const CONCURRENCY: usize = 8;

/// A deal's planned way through the stages: how far it gets and how it ends.
struct Outcome {
    opened: DateTime<Utc>,
    amount: i64,
    close_after_days: i64,
    /// 0 meeting, 1 qualified, 2 verbal yes.
    furthest: usize,
    won: bool,
    lost_for: Option<&'static str>,
    qualified: bool,
}

/// Runs the pipeline story over the 120 days before now.
pub async fn run(
    pipeline: &Pipeline,
    network: &Network,
    seed: u64,
    as_of: NaiveDate,
) -> anyhow::Result<PipelineReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5049_5045);
    let now = Utc::now();
    let buyers: Vec<_> = network.clients.iter().filter(|c| !c.owner_employee_id.is_empty()).collect();
    let leads = (network.clients.len() / 8).max(10);
    let bar = ProgressBar::new(leads as u64)
        .with_style(ProgressStyle::with_template("{msg:>14} [{bar:40.yellow/blue}] {human_pos}/{human_len}")?)
        .with_message("leads & deals");
    let mut report = PipelineReport { leads, ..PipelineReport::default() };
    // Everything random is drawn first, in order, so the story is the same for
    // a seed however the calls below interleave.
    let mut arrivals = Vec::with_capacity(leads);
    for n in 0..leads {
        let client = buyers[rng.random_range(0..buyers.len())];
        let channel_index = rng.random_range(0..CHANNELS.len());
        let (channel, _, typical) = CHANNELS[channel_index];
        let received = now - Duration::days(rng.random_range(1..120)) - Duration::minutes(rng.random_range(0..600));
        // Mostly near the channel's typical time, sometimes forgotten for hours.
        let minutes = if rng.random_bool(0.1) { typical * 20.0 } else { typical * rng.random_range(0.3..1.8) };
        let answered = (received + Duration::seconds((minutes * 60.0) as i64)).min(now);
        let deal = rng.random_bool(0.6).then(|| {
            let furthest = match rng.random_range(0..100) {
                0..=39 => 0,
                40..=64 => 1,
                _ => 2,
            };
            let won = furthest == 2 && rng.random_bool(0.75);
            let lost = !won && rng.random_bool(0.55);
            Outcome {
                opened: (received + Duration::hours(rng.random_range(1..48))).min(now),
                amount: rng.random_range(5..400) * 10_000,
                close_after_days: rng.random_range(10..60),
                furthest,
                won,
                lost_for: lost.then(|| LOSS_REASONS[rng.random_range(0..LOSS_REASONS.len())]),
                // Now and then a seller tries to skip the qualification.
                qualified: rng.random_bool(0.85),
            }
        });
        let request = CreateLeadRequest {
            request_id: format!("demo-lead-{seed}-{n}"),
            branch_id: client.branch_id.clone(),
            owner_employee_id: client.owner_employee_id.clone(),
            channel: channel as i32,
            receive_time: time(received),
            client_id: client.id.clone(),
            contact_name: client.name.clone(),
        };
        arrivals.push((request, channel_index, answered, deal));
    }
    let handled: Vec<(usize, Lead, Option<Outcome>)> = stream::iter(arrivals)
        .map(|(request, channel_index, answered, deal)| {
            let (pipeline, bar) = (pipeline.clone(), bar.clone());
            async move {
                let lead = pipeline.clone().create_lead(request).await?.into_inner().lead.unwrap_or_default();
                let respond = RespondToLeadRequest { lead_id: lead.id.clone(), response_time: time(answered) };
                let lead = pipeline.clone().respond_to_lead(respond).await?.into_inner().lead.unwrap_or_default();
                bar.inc(1);
                Ok::<_, tonic::Status>((channel_index, lead, deal))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    bar.finish_and_clear();
    for (index, (_, name, _)) in CHANNELS.iter().enumerate() {
        let of_channel: Vec<&Lead> = handled.iter().filter(|(c, _, _)| *c == index).map(|(_, l, _)| l).collect();
        let mean = of_channel.iter().map(|l| l.response_seconds as f64).sum::<f64>() / of_channel.len().max(1) as f64;
        let breaches = of_channel.iter().filter(|l| l.response_seconds > l.sla_seconds).count();
        report.response_by_channel.push((name, of_channel.len(), mean, breaches));
    }
    let mut deals: Vec<(Lead, Outcome)> =
        handled.into_iter().filter_map(|(_, lead, deal)| deal.map(|d| (lead, d))).collect();
    deals.sort_by(|a, b| (a.1.opened, &a.0.id).cmp(&(b.1.opened, &b.0.id)));
    report.deals = deals.len();
    let currency = network_currency(network);
    let refusals: Vec<Option<String>> = stream::iter(deals.into_iter().enumerate())
        .map(|(n, (lead, outcome))| {
            let request_id = format!("demo-deal-{seed}-{n}");
            let (pipeline, currency) = (pipeline.clone(), currency.clone());
            async move { work_deal(&pipeline, request_id, &lead, &outcome, &currency, as_of).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    report.gate_refusals = refusals.iter().flatten().count();
    report.first_refusal = refusals.into_iter().flatten().min().unwrap_or_default();
    report.funnel = pipeline.clone().get_funnel(GetFunnelRequest::default()).await?.into_inner();
    report.forecast = pipeline.clone().get_forecast(GetForecastRequest::default()).await?.into_inner();
    Ok(report)
}

/// Opens the deal of `lead` and plays its outcome; returns the gate's refusal, if any.
async fn work_deal(
    pipeline: &Pipeline,
    request_id: String,
    lead: &Lead,
    outcome: &Outcome,
    currency: &str,
    as_of: NaiveDate,
) -> Result<Option<String>, tonic::Status> {
    let request = CreateDealRequest {
        request_id,
        client_id: lead.client_id.clone(),
        branch_id: lead.branch_id.clone(),
        owner_employee_id: lead.owner_employee_id.clone(),
        pipeline_id: String::new(),
        amount: Some(Money { minor_units: outcome.amount, currency: currency.to_owned() }),
        expected_close_date: Some(Date::from(
            (outcome.opened + Duration::days(outcome.close_after_days)).date_naive().max(as_of),
        )),
        lead_id: lead.id.clone(),
        create_time: time(outcome.opened),
    };
    let deal = pipeline.clone().create_deal(request).await?.into_inner().deal.unwrap_or_default();
    if deal.status() != DealStatus::Open {
        // Played by an earlier run against the same deployment (same request id).
        return Ok(None);
    }
    let mut refusal = None;
    if outcome.furthest >= 1 {
        let facts = Qualification {
            right_person: true,
            right_plan: true,
            right_budget: outcome.qualified,
            right_timeline: true,
        };
        pipeline
            .clone()
            .qualify_deal(QualifyDealRequest { deal_id: deal.id.clone(), qualification: Some(facts) })
            .await?;
        for stage in ["qualified", "verbal_yes"].iter().take(outcome.furthest) {
            let step = MoveDealRequest { deal_id: deal.id.clone(), to_stage: (*stage).into() };
            match pipeline.clone().move_deal(step).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    refusal = Some(status.message().to_owned());
                    break;
                }
                Err(status) => return Err(status),
            }
        }
    }
    if outcome.won {
        pipeline.clone().win_deal(WinDealRequest { deal_id: deal.id.clone() }).await?;
    } else if let Some(reason) = outcome.lost_for {
        pipeline.clone().lose_deal(LoseDealRequest { deal_id: deal.id.clone(), reason: reason.into() }).await?;
    }
    Ok(refusal)
}

fn network_currency(network: &Network) -> String {
    network.branches.first().map(|b| b.currency.clone()).unwrap_or_default()
}
