//! The whole population as of a date: every rule of this crate applied to
//! every client at once, as the nightly recompute runs it.
//!
//! The caller aggregates each client's transactions into [`ClientFacts`]
//! (the service pushes that down to Postgres: revenue per client and month,
//! first and last purchase per month); [`evaluate`] returns one
//! [`ClientEvaluation`] per client, aligned with the input, plus the
//! behavioural clusters.
//!
//! Behavioural features for k-means, in [`FEATURES`] order, for every client
//! with positive window revenue: recency days, frequency, monetary (minor
//! units), average ticket (monetary / frequency), purchase interval (days
//! between the first and last purchase in the window / (frequency - 1), or
//! the window's length for a single purchase) and product lines bought in
//! the window.
use chrono::NaiveDate;
use rayon::prelude::*;

use crate::Money;
use crate::abc::{AbcClass, AbcDistribution, NextAbcClass};
use crate::clustering::{self, ClusterPoint, Clustering, ClusteringError};
use crate::lifecycle::{self, LifecycleFacts, LifecycleStatus};
use crate::rfm::{self, RfmInput, RfmScore};
use crate::score::{ClientScore, ScoreInput, Scorer};
use crate::settings::{InvalidSettings, ScoringSettings};
use crate::window::{AnalysisWindow, LifecyclePeriods, WindowError};
use crate::xyz::{self, NoXyz, XyzInput, XyzOutcome};

/// Names of the clustering features, in order.
pub const FEATURES: [&str; 6] =
    ["recency_days", "frequency", "monetary", "average_ticket", "purchase_interval_days", "product_lines"];

/// What the batch needs to know about one client.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientFacts {
    /// Net revenue per window month, oldest first (the window's month count).
    pub monthly_revenue: Vec<Money>,
    /// First purchase ever, on or before D.
    pub first_purchase: Option<NaiveDate>,
    /// Last purchase on or before D.
    pub last_purchase: Option<NaiveDate>,
    /// First and last purchase inside the window.
    pub first_in_window: Option<NaiveDate>,
    pub last_in_window: Option<NaiveDate>,
    /// Distinct purchase documents in the window.
    pub window_transactions: u32,
    /// Any purchase in the current / previous lifecycle period.
    pub purchased_in_current: bool,
    pub purchased_in_previous: bool,
    /// Distinct product lines bought in the window.
    pub product_lines: u32,
    /// Targeted products used / targeted, when the client's segment has targets.
    pub maturity: Option<f64>,
    /// The client's own satisfaction 0-100, when known.
    pub satisfaction: Option<f64>,
}

impl ClientFacts {
    /// Net revenue over the window.
    pub fn window_revenue(&self) -> Money {
        self.monthly_revenue.iter().fold(0, |sum: Money, m| sum.saturating_add(*m))
    }
}

/// Everything computed for one client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEvaluation<'s> {
    pub window_revenue: Money,
    pub abc: Option<AbcClass>,
    pub abc_next: Option<NextAbcClass>,
    pub xyz: Result<XyzOutcome, NoXyz>,
    pub rfm: Option<RfmScore>,
    pub lifecycle: LifecycleStatus,
    /// Cluster label (0 = largest cluster); `None` when not clustered.
    pub cluster: Option<usize>,
    pub score: ClientScore<'s>,
    /// The last purchase recency counts from.
    pub last_purchase: Option<NaiveDate>,
}

/// The population's results.
#[derive(Debug, Clone)]
pub struct Evaluation<'s> {
    pub clients: Vec<ClientEvaluation<'s>>,
    /// `None` when there were too few distinct clients to cluster.
    pub clustering: Option<Clustering>,
}

/// Why the batch cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("client {index} has {got} monthly revenues, the window has {expected} months")]
    SeriesLength { index: usize, expected: usize, got: usize },
    #[error(transparent)]
    Clustering(#[from] ClusteringError),
}

/// Applies every rule to every client as of `as_of` (O(n log n) plus k-means).
pub fn evaluate<'s>(
    as_of: NaiveDate,
    settings: &'s ScoringSettings,
    facts: &[ClientFacts],
) -> Result<Evaluation<'s>, BatchError> {
    settings.validate()?;
    let window = AnalysisWindow::as_of(as_of, settings.window_months)?;
    let periods = LifecyclePeriods::as_of(as_of, settings.lifecycle_period_months)?;
    if let Some((index, f)) = facts.iter().enumerate().find(|(_, f)| f.monthly_revenue.len() != window.month_count()) {
        return Err(BatchError::SeriesLength { index, expected: window.month_count(), got: f.monthly_revenue.len() });
    }
    let revenues: Vec<Money> = facts.iter().map(ClientFacts::window_revenue).collect();
    let distribution = AbcDistribution::new(&revenues, &settings.abc)?;
    let rfm_inputs: Vec<RfmInput> = facts
        .iter()
        .zip(&revenues)
        .map(|(f, &revenue)| RfmInput { last_purchase: f.last_purchase, transactions: f.window_transactions, revenue })
        .collect();
    let rfm_scores = rfm::score(as_of, &rfm_inputs);
    let clustering = cluster(facts, &revenues, &rfm_scores, &window, settings)?;
    let scorer = Scorer::new(&settings.score)?;
    let mut clusters: Vec<Option<usize>> = vec![None; facts.len()];
    if let Some((members, c)) = &clustering {
        for (&member, &label) in members.iter().zip(&c.labels) {
            clusters[member] = Some(label);
        }
    }
    // Each client's classes need nothing more from the others: both cores
    // take a share, in order.
    let clients = facts
        .par_iter()
        .zip(&revenues)
        .zip(rfm_scores)
        .zip(clusters)
        .map(|(((f, &window_revenue), rfm), cluster)| {
            let lifecycle = lifecycle::status(
                &periods,
                &LifecycleFacts {
                    first_purchase: f.first_purchase,
                    purchased_in_current: f.purchased_in_current,
                    purchased_in_previous: f.purchased_in_previous,
                },
            );
            let xyz = xyz::classify_one(
                &window,
                &XyzInput {
                    monthly_revenue: &f.monthly_revenue,
                    first_purchase: f.first_purchase,
                    is_new: lifecycle == LifecycleStatus::New,
                },
                &settings.xyz,
            );
            let abc = distribution.class_of(window_revenue);
            let abc_next = distribution.next_class(window_revenue);
            let score = scorer.score(&ScoreInput {
                abc,
                xyz: xyz.as_ref().ok().map(|o| o.class),
                rfm: rfm.map(|r| r.code),
                lifecycle: Some(lifecycle),
                maturity: f.maturity,
                satisfaction: f.satisfaction,
                abc_next,
            });
            ClientEvaluation {
                window_revenue,
                abc,
                abc_next,
                xyz,
                rfm,
                lifecycle,
                cluster,
                score,
                last_purchase: f.last_purchase,
            }
        })
        .collect();
    Ok(Evaluation { clients, clustering: clustering.map(|(_, c)| c) })
}

/// The clustering features of one client with positive window revenue.
pub fn features(facts: &ClientFacts, revenue: Money, rfm: &RfmScore, window: &AnalysisWindow) -> [f64; 6] {
    let frequency = f64::from(rfm.frequency.max(1));
    let interval = match (facts.first_in_window, facts.last_in_window) {
        (Some(first), Some(last)) if rfm.frequency > 1 => (last - first).num_days() as f64 / (frequency - 1.0),
        _ => (window.end() - window.start()).num_days() as f64 + 1.0,
    };
    [
        rfm.recency_days as f64,
        f64::from(rfm.frequency),
        revenue as f64,
        revenue as f64 / frequency,
        interval,
        f64::from(facts.product_lines),
    ]
}

/// Indices of the clustered clients and their clustering; `None` when fewer
/// distinct clients than clusters exist (a small or brand-new network).
fn cluster(
    facts: &[ClientFacts],
    revenues: &[Money],
    rfm_scores: &[Option<RfmScore>],
    window: &AnalysisWindow,
    settings: &ScoringSettings,
) -> Result<Option<(Vec<usize>, Clustering)>, BatchError> {
    let mut members = Vec::new();
    let mut rows: Vec<[f64; 6]> = Vec::new();
    for (index, ((f, &revenue), rfm)) in facts.iter().zip(revenues).zip(rfm_scores).enumerate() {
        if let (true, Some(rfm)) = (revenue > 0, rfm) {
            members.push(index);
            rows.push(features(f, revenue, rfm, window));
        }
    }
    let points: Vec<ClusterPoint<'_>> = rows
        .iter()
        .zip(&members)
        .map(|(row, &index)| ClusterPoint { features: row, revenue: revenues[index] })
        .collect();
    match clustering::cluster(&points, &settings.clustering) {
        Ok(clustering) => Ok(Some((members, clustering))),
        Err(ClusteringError::TooFewPoints { .. } | ClusteringError::NoPoints) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::ClusterCount;
    use crate::xyz::XyzClass;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    /// D = 2026-11-23: window 2025-11..2026-10, C = (2026-08-23, D], V = (2026-05-23, 2026-08-23].
    fn as_of() -> NaiveDate {
        date(2026, 11, 23)
    }

    fn steady(monthly: Money) -> ClientFacts {
        ClientFacts {
            monthly_revenue: vec![monthly; 12],
            first_purchase: Some(date(2024, 1, 10)),
            last_purchase: Some(date(2026, 11, 2)),
            first_in_window: Some(date(2025, 11, 10)),
            last_in_window: Some(date(2026, 10, 10)),
            window_transactions: 12,
            purchased_in_current: true,
            purchased_in_previous: true,
            product_lines: 2,
            ..ClientFacts::default()
        }
    }

    fn fixed_k(k: usize) -> ScoringSettings {
        let mut settings = ScoringSettings::default();
        settings.clustering.clusters = ClusterCount::Fixed { k };
        settings
    }

    #[test]
    fn hand_computed_population() {
        // Revenues 600, 300, 100 (x 12 months): total 12 000; prior shares
        // 0, 7200/12000 = 60% and 10800/12000 = 90% -> A, B, C.
        let mut big = steady(600);
        big.monthly_revenue[0] = 0; // CV > 0 but small: 11 months of 600 and one 0 -> still stable
        let facts =
            vec![big, steady(300), steady(100), ClientFacts { monthly_revenue: vec![0; 12], ..Default::default() }];
        let settings = fixed_k(2);
        let result = evaluate(as_of(), &settings, &facts).expect("evaluates");
        let classes: Vec<_> = result.clients.iter().map(|c| c.abc).collect();
        assert_eq!(classes, [Some(AbcClass::A), Some(AbcClass::B), Some(AbcClass::C), None]);
        // 11 x 600 and a 0: mean 550, population sd = sqrt(11 x 50^2 + 550^2) / sqrt(12) = 165.8 -> CV 30% -> Z.
        assert_eq!(result.clients[0].xyz.as_ref().map(|o| o.class), Ok(XyzClass::Z));
        assert_eq!(result.clients[1].xyz.as_ref().map(|o| o.class), Ok(XyzClass::X));
        assert_eq!(result.clients[1].lifecycle, LifecycleStatus::Regular);
        assert_eq!(result.clients[3].lifecycle, LifecycleStatus::Potential);
        assert_eq!(result.clients[3].xyz, Err(NoXyz::NoPurchase));
        assert!(result.clients[3].rfm.is_none() && result.clients[3].cluster.is_none());
        // The B client needs revenue whose prior share falls below 50%.
        assert_eq!(result.clients[1].abc_next.map(|n| n.class), Some(AbcClass::A));
        let clustered: Vec<_> = result.clients.iter().filter_map(|c| c.cluster).collect();
        assert_eq!(clustered.len(), 3);
        assert!(result.clients[0].score.total > result.clients[2].score.total);
    }

    #[test]
    fn a_lone_client_is_scored_but_not_clustered() {
        let settings = fixed_k(3);
        let result = evaluate(as_of(), &settings, &[steady(100)]).expect("evaluates");
        assert!(result.clustering.is_none());
        assert_eq!(result.clients[0].abc, Some(AbcClass::A));
        assert_eq!(result.clients[0].rfm.map(|r| r.code.to_string()), Some("111".to_owned()));
    }

    #[test]
    fn new_clients_get_no_xyz_and_wrong_series_are_refused() {
        let mut fresh = steady(100);
        fresh.first_purchase = Some(date(2026, 10, 1));
        fresh.purchased_in_previous = false;
        let settings = fixed_k(1);
        let result = evaluate(as_of(), &settings, &[fresh]).expect("evaluates");
        assert_eq!(result.clients[0].lifecycle, LifecycleStatus::New);
        assert_eq!(result.clients[0].xyz, Err(NoXyz::NewClient));

        let short = ClientFacts { monthly_revenue: vec![1; 3], ..ClientFacts::default() };
        assert!(matches!(
            evaluate(as_of(), &settings, &[short]),
            Err(BatchError::SeriesLength { index: 0, expected: 12, got: 3 })
        ));
    }

    #[test]
    fn features_follow_their_definitions() {
        let facts = steady(100);
        let window = AnalysisWindow::as_of(as_of(), 12).expect("window");
        let rfm = RfmScore {
            recency_days: 21,
            frequency: 12,
            monetary: 1200,
            code: crate::rfm::RfmCode::new(5, 5, 5).expect("code"),
        };
        // Interval: 2025-11-10 .. 2026-10-10 = 334 days over 11 gaps.
        assert_eq!(features(&facts, 1200, &rfm, &window), [21.0, 12.0, 1200.0, 100.0, 334.0 / 11.0, 2.0]);
        let once = RfmScore { frequency: 1, ..rfm };
        // One purchase: the window's 365 days.
        assert_eq!(features(&facts, 1200, &once, &window)[4], 365.0);
    }
}
