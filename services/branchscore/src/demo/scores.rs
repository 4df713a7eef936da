//! The demo's scoring step: recompute through the API with a progress bar,
//! then read back what people look at.
use super::network::Network;
use super::report::explained_picks;
use branchscore_platform::client::CallCredentials;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::Date;
use chrono::NaiveDate;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Scoring = ScoringServiceClient<InterceptedService<Channel, CallCredentials>>;
pub type Clients = ClientsServiceClient<InterceptedService<Channel, CallCredentials>>;

/// What the demo prints about the scores.
#[derive(Debug, Default)]
pub struct ScoreReport {
    pub summary: RecomputeSummary,
    pub matrix: GetAbcXyzMatrixResponse,
    pub clusters: ListClusterProfilesResponse,
    pub scores: Vec<ClientScore>,
    /// Cross-sell suggestions for the clients the report explains.
    pub suggestions: Vec<(String, Vec<CrossSellSuggestion>)>,
}

fn phase_name(phase: i32) -> &'static str {
    match RecomputePhase::try_from(phase).unwrap_or_default() {
        RecomputePhase::Aggregating => "aggregating",
        RecomputePhase::Classifying => "classifying",
        RecomputePhase::Writing => "writing",
        RecomputePhase::RecordingHistory => "history",
        RecomputePhase::Storing => "storing",
        RecomputePhase::Caching => "caching",
        RecomputePhase::Done => "done",
        RecomputePhase::Unspecified => "starting",
    }
}

/// Recomputes every score as of `as_of` with progress bars (the cache is
/// refreshed beside the write, so it has a bar of its own); the run's summary.
pub async fn recompute(scoring: &Scoring, as_of: NaiveDate) -> anyhow::Result<RecomputeSummary> {
    let style = ProgressStyle::with_template("{msg:>14} [{bar:40.green/blue}] {human_pos}/{human_len}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars = MultiProgress::new();
    let run = bars.add(ProgressBar::new(0).with_style(style.clone()).with_message("recompute"));
    let mut cache = None;
    let mut stream =
        scoring.clone().recompute_scores(RecomputeScoresRequest { as_of: Some(Date::from(as_of)) }).await?.into_inner();
    let mut summary = None;
    while let Some(progress) = stream.message().await? {
        let bar = if progress.phase == RecomputePhase::Caching as i32 {
            cache.get_or_insert_with(|| bars.add(ProgressBar::new(0).with_style(style.clone())))
        } else {
            &run
        };
        if progress.total > 0 {
            bar.set_length(progress.total as u64);
        }
        bar.set_position(progress.done.max(0) as u64);
        bar.set_message(phase_name(progress.phase));
        if progress.summary.is_some() {
            summary = progress.summary;
        }
    }
    bars.clear()?;
    summary.ok_or_else(|| anyhow::anyhow!("the recompute ended without a summary"))
}

/// Stores the segments, recomputes as of `as_of`, then reads the matrix, the
/// clusters, every score and suggestions for the clients the report explains.
pub async fn score_network(
    scoring: &Scoring,
    clients: &Clients,
    as_of: NaiveDate,
    network: &Network,
) -> anyhow::Result<ScoreReport> {
    scoring.clone().batch_upsert_segments(BatchUpsertSegmentsRequest { segments: network.segments.clone() }).await?;
    let summary = recompute(scoring, as_of).await?;
    let matrix = scoring.clone().get_abc_xyz_matrix(GetAbcXyzMatrixRequest::default()).await?.into_inner();
    let clusters = scoring.clone().list_cluster_profiles(ListClusterProfilesRequest {}).await?.into_inner();
    let ids: Vec<String> = network.clients.iter().map(|c| c.id.clone()).collect();
    let mut scores = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let request = BatchGetClientScoresRequest { client_ids: chunk.to_vec() };
        scores.extend(clients.clone().batch_get_client_scores(request).await?.into_inner().scores);
    }
    let mut suggestions = Vec::new();
    for (_, score) in explained_picks(&scores) {
        let request = SuggestCrossSellRequest { client_id: score.client_id.clone(), limit: 3 };
        let suggested = scoring.clone().suggest_cross_sell(request).await?.into_inner().suggestions;
        suggestions.push((score.client_id.clone(), suggested));
    }
    Ok(ScoreReport { summary, matrix, clusters, scores, suggestions })
}
