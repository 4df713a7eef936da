//! Behavioural clusters of clients (seed 002): k-means over standardised
//! features, with profiles people can read.
//!
//! * **Standardised**: every feature becomes a z-score (population mean and
//!   standard deviation), so revenue in kopecks does not drown a 1-5 survey
//!   score. A feature with zero variance carries no information and becomes
//!   0 for everybody.
//! * **k**: given, or chosen by the best mean silhouette over a range (ties
//!   go to the smaller k). The silhouette is computed on an evenly spaced
//!   sample of at most `silhouette_sample` clients, because it is quadratic.
//! * **Deterministic**: k-means (linfa, k-means++ init) gets a ChaCha RNG
//!   seeded from the settings, so the same input and seed give the same
//!   clusters.
//! * **Large networks** are fitted on a seeded random sample of at most
//!   `fit_sample` clients (every candidate k, all restarts), then the chosen
//!   fit's centroids start one k-means run over everybody. k-means++ and the
//!   restarts find the shape of the data as well on 20 000 clients as on a
//!   million; the full run only moves the centroids to the population's
//!   optimum, in a few iterations instead of `runs` x candidates full fits.
//! * **Too few points**: k must not exceed the number of distinct points
//!   (identical clients cannot be split); a fixed k above it is the error
//!   [`ClusteringError::TooFewPoints`], a silhouette range is clamped to it
//!   (and is that error if even its lower end is above it).
//! * **Profiles** are in original units: the mean of each feature over the
//!   members, the size and the share of revenue. Clusters are numbered by
//!   size, largest first.

use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView1, Axis};
use rand_chacha_linfa::ChaCha8Rng;
use rand_chacha_linfa::rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Money;
use crate::settings::{FieldViolation, InvalidSettings, into_result};

/// One client's features (any units) and window revenue.
#[derive(Debug, Clone, Copy)]
pub struct ClusterPoint<'a> {
    /// Behavioural features, same order and length for every client (e.g.
    /// recency, frequency, monetary, average ticket, purchase interval,
    /// product-line shares, survey scores).
    pub features: &'a [f64],
    /// Window revenue, for the clusters' revenue shares.
    pub revenue: Money,
}

/// How many clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterCount {
    /// Exactly k.
    Fixed {
        /// Number of clusters (>= 1).
        k: usize,
    },
    /// The k in `min_k..=max_k` with the best mean silhouette.
    BySilhouette {
        /// Smallest k tried (>= 2).
        min_k: usize,
        /// Largest k tried.
        max_k: usize,
    },
}

/// Largest k accepted.
pub const MAX_K: usize = 50;
/// Largest silhouette sample accepted (the silhouette is quadratic in it).
pub const MAX_SILHOUETTE_SAMPLE: usize = 20_000;
/// Smallest fitting sample accepted: fewer clients would not show the shape of a network.
pub const MIN_FIT_SAMPLE: usize = 1_000;

/// Clustering parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusteringSettings {
    /// k or the range to choose it from (default 2..=8 by silhouette).
    pub clusters: ClusterCount,
    /// RNG seed (default 42).
    pub seed: u64,
    /// k-means restarts, the best inertia wins (default 5).
    pub runs: usize,
    /// Iteration cap per run (default 300).
    pub max_iterations: u64,
    /// Convergence tolerance on centroid movement (default 1e-4).
    pub tolerance: f64,
    /// Clients used for the silhouette (default 2 000).
    pub silhouette_sample: usize,
    /// Clients k-means is fitted on before one run over everybody (default 20 000).
    pub fit_sample: usize,
}

impl Default for ClusteringSettings {
    fn default() -> Self {
        Self {
            clusters: ClusterCount::BySilhouette { min_k: 2, max_k: 8 },
            seed: 42,
            runs: 5,
            max_iterations: 300,
            tolerance: 1e-4,
            silhouette_sample: 2_000,
            fit_sample: 20_000,
        }
    }
}

impl ClusteringSettings {
    /// Field-level validation.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut out = Vec::new();
        let mut bad = |field: &str, msg: String| out.push(FieldViolation::new("", field, msg));
        match self.clusters {
            ClusterCount::Fixed { k } => {
                if k == 0 || k > MAX_K {
                    bad("clusters.k", format!("must be between 1 and {MAX_K}, got {k}"));
                }
            }
            ClusterCount::BySilhouette { min_k, max_k } => {
                if !(2..=MAX_K).contains(&min_k) {
                    bad("clusters.min_k", format!("must be between 2 and {MAX_K}, got {min_k}"));
                }
                if max_k < min_k || max_k > MAX_K {
                    bad("clusters.max_k", format!("must be between min_k ({min_k}) and {MAX_K}, got {max_k}"));
                }
            }
        }
        if self.runs == 0 {
            bad("runs", "must be at least 1".into());
        }
        if self.max_iterations == 0 {
            bad("max_iterations", "must be at least 1".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            bad("tolerance", format!("must be a positive number, got {}", self.tolerance));
        }
        if self.silhouette_sample < 2 || self.silhouette_sample > MAX_SILHOUETTE_SAMPLE {
            bad(
                "silhouette_sample",
                format!("must be between 2 and {MAX_SILHOUETTE_SAMPLE}, got {}", self.silhouette_sample),
            );
        }
        if self.fit_sample < MIN_FIT_SAMPLE {
            bad("fit_sample", format!("must be at least {MIN_FIT_SAMPLE}, got {}", self.fit_sample));
        }
        into_result(out)
    }
}

/// Why clustering could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClusteringError {
    /// Settings rejected.
    #[error(transparent)]
    InvalidSettings(#[from] InvalidSettings),
    /// No clients given.
    #[error("no points to cluster")]
    NoPoints,
    /// Clients have no features.
    #[error("points have no features")]
    NoFeatures,
    /// A client's feature vector has another length than the first one's.
    #[error("point {point} has {got} features, expected {expected}")]
    FeatureCount {
        /// Index of the point.
        point: usize,
        /// Length of the first point's features.
        expected: usize,
        /// Its length.
        got: usize,
    },
    /// NaN or infinite feature.
    #[error("point {point} feature {feature} is not a finite number")]
    NonFinite {
        /// Index of the point.
        point: usize,
        /// Index of the feature.
        feature: usize,
    },
    /// k exceeds the number of distinct points.
    #[error("cannot form {k} clusters from {distinct_points} distinct point(s)")]
    TooFewPoints {
        /// Requested (smallest) k.
        k: usize,
        /// Distinct points available.
        distinct_points: usize,
    },
    /// linfa failed.
    #[error("k-means failed: {0}")]
    KMeans(String),
}

/// One cluster, in original units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterProfile {
    /// Cluster number (0 = largest).
    pub cluster: usize,
    /// Members.
    pub size: usize,
    /// Mean of each feature over the members, original units.
    pub centroid: Vec<f64>,
    /// Members' revenue (saturating sum).
    pub revenue: Money,
    /// Members' revenue / total revenue; `None` if the total is not positive.
    pub revenue_share: Option<f64>,
}

/// Silhouette of one candidate k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SilhouetteCandidate {
    /// Clusters.
    pub k: usize,
    /// Mean silhouette (-1..=1) on the sample.
    pub silhouette: f64,
}

/// Result of a clustering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clustering {
    /// Number of clusters.
    pub k: usize,
    /// Cluster of each point, aligned with the input.
    pub labels: Vec<usize>,
    /// Profiles, by cluster number.
    pub profiles: Vec<ClusterProfile>,
    /// Silhouette of the chosen k, when k was chosen by silhouette.
    pub silhouette: Option<f64>,
    /// Every k tried with its silhouette (empty for a fixed k).
    pub candidates: Vec<SilhouetteCandidate>,
}

/// Clusters the clients (see the module doc for the rules).
pub fn cluster(points: &[ClusterPoint<'_>], settings: &ClusteringSettings) -> Result<Clustering, ClusteringError> {
    settings.validate()?;
    let original = feature_matrix(points)?;
    let scale = Scale::of(&original);
    let standardized = scale.apply(&original);
    // Every use of the count compares it with a k, so it is counted up to the largest.
    let enough = match settings.clusters {
        ClusterCount::Fixed { k } => k,
        ClusterCount::BySilhouette { max_k, .. } => max_k,
    };
    let distinct = distinct_rows(&standardized, enough);

    // A large network: every fit on a random sample that still has
    // enough distinct clients, then one run over everybody.
    let largest_k = match settings.clusters {
        ClusterCount::Fixed { k } => k,
        ClusterCount::BySilhouette { max_k, .. } => max_k.min(distinct),
    };
    let fit_sample = (standardized.nrows() > settings.fit_sample)
        .then(|| standardized.select(Axis(0), &random_sample(standardized.nrows(), settings.fit_sample, settings.seed)))
        .filter(|z| distinct_rows(z, largest_k) >= largest_k);
    let z = fit_sample.as_ref().unwrap_or(&standardized);
    let (k, fit, candidates, silhouette) = match settings.clusters {
        ClusterCount::Fixed { k } => {
            if k > distinct {
                return Err(ClusteringError::TooFewPoints { k, distinct_points: distinct });
            }
            (k, fit_labels(z, k, settings)?, Vec::new(), None)
        }
        ClusterCount::BySilhouette { min_k, max_k } => {
            if min_k > distinct {
                return Err(ClusteringError::TooFewPoints { k: min_k, distinct_points: distinct });
            }
            let fits = (min_k..=max_k.min(distinct))
                .map(|k| Ok((k, fit_labels(z, k, settings)?)))
                .collect::<Result<Vec<_>, ClusteringError>>()?;
            let sample = sample_indices(z.nrows(), settings.silhouette_sample);
            let labellings: Vec<(&[usize], usize)> = fits.iter().map(|(k, fit)| (fit.labels.as_slice(), *k)).collect();
            let scores = silhouettes(z, &labellings, &sample);
            let candidates: Vec<SilhouetteCandidate> =
                fits.iter().zip(&scores).map(|(&(k, _), &silhouette)| SilhouetteCandidate { k, silhouette }).collect();
            let mut best: Option<(usize, Fitted, f64)> = None;
            for ((k, fit), s) in fits.into_iter().zip(scores) {
                if best.as_ref().is_none_or(|(_, _, b)| s > *b) {
                    best = Some((k, fit, s));
                }
            }
            let Some((k, fit, s)) = best else {
                return Err(ClusteringError::TooFewPoints { k: min_k, distinct_points: distinct });
            };
            (k, fit, candidates, Some(s))
        }
    };
    let fit = if fit_sample.is_some() { refine(&standardized, fit.centroids, settings)? } else { fit };
    let (labels, profiles) = profiles(points, &original, &scale, fit, k);
    Ok(Clustering { k, labels, profiles, silhouette, candidates })
}

fn feature_matrix(points: &[ClusterPoint<'_>]) -> Result<Array2<f64>, ClusteringError> {
    let first = points.first().ok_or(ClusteringError::NoPoints)?;
    let d = first.features.len();
    if d == 0 {
        return Err(ClusteringError::NoFeatures);
    }
    let mut flat = Vec::with_capacity(points.len() * d);
    for (point, p) in points.iter().enumerate() {
        if p.features.len() != d {
            return Err(ClusteringError::FeatureCount { point, expected: d, got: p.features.len() });
        }
        if let Some(feature) = p.features.iter().position(|x| !x.is_finite()) {
            return Err(ClusteringError::NonFinite { point, feature });
        }
        flat.extend_from_slice(p.features);
    }
    Array2::from_shape_vec((points.len(), d), flat).map_err(|e| ClusteringError::KMeans(e.to_string()))
}

/// Per-feature population mean and standard deviation (0 = no variance).
struct Scale {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Scale {
    fn of(x: &Array2<f64>) -> Self {
        let n = x.nrows() as f64;
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for column in x.columns() {
            let m = column.sum() / n;
            let s = (column.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
            mean.push(m);
            std.push(if s > 0.0 && s.is_finite() { s } else { 0.0 });
        }
        Self { mean, std }
    }

    /// z-scores; zero-variance features become 0.
    fn apply(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut z = x.clone();
        for ((mut column, &m), &s) in z.columns_mut().into_iter().zip(&self.mean).zip(&self.std) {
            if s > 0.0 {
                column.mapv_inplace(|v| (v - m) / s);
            } else {
                column.fill(0.0);
            }
        }
        z
    }

    /// Back to original units.
    fn revert(&self, feature: usize, z: f64) -> f64 {
        z * self.std[feature] + self.mean[feature]
    }
}

/// Distinct rows of `z`, counted up to `enough`: finding that a million
/// clients hold at least eight distinct points takes a few rows, not a sort.
fn distinct_rows(z: &Array2<f64>, enough: usize) -> usize {
    let mut seen: Vec<ArrayView1<'_, f64>> = Vec::new();
    for row in z.rows() {
        if seen.len() >= enough {
            break;
        }
        let same = |other: &ArrayView1<'_, f64>| other.iter().zip(&row).all(|(a, b)| a.total_cmp(b).is_eq());
        if !seen.iter().any(same) {
            seen.push(row);
        }
    }
    seen.len()
}

/// Labels and model centroids (standardised units) of one k-means fit.
struct Fitted {
    labels: Vec<usize>,
    centroids: Array2<f64>,
}

fn fit_labels(z: &Array2<f64>, k: usize, settings: &ClusteringSettings) -> Result<Fitted, ClusteringError> {
    let rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let dataset = DatasetBase::from(z.view());
    let model = KMeans::params_with_rng(k, rng)
        .n_runs(settings.runs)
        .max_n_iterations(settings.max_iterations)
        .tolerance(settings.tolerance)
        .fit(&dataset)
        .map_err(|e| ClusteringError::KMeans(e.to_string()))?;
    Ok(Fitted { labels: model.predict(z).to_vec(), centroids: model.centroids().clone() })
}

/// One k-means run over all of `z` from the centroids of a fit on a sample.
fn refine(z: &Array2<f64>, centroids: Array2<f64>, settings: &ClusteringSettings) -> Result<Fitted, ClusteringError> {
    let k = centroids.nrows();
    let rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let model = KMeans::params_with_rng(k, rng)
        .init_method(KMeansInit::Precomputed(centroids))
        .n_runs(1)
        .max_n_iterations(settings.max_iterations)
        .tolerance(settings.tolerance)
        .fit(&DatasetBase::from(z.view()))
        .map_err(|e| ClusteringError::KMeans(e.to_string()))?;
    Ok(Fitted { labels: model.predict(z).to_vec(), centroids: model.centroids().clone() })
}

/// `size` of the indices `0..n` drawn without replacement (seeded, so the
/// same for the same seed), in ascending order. Random rather than evenly
/// spaced: an input ordered in a repeating pattern would alias with a stride.
fn random_sample(n: usize, size: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut indices: Vec<usize> = (0..n).collect();
    let size = size.min(n);
    for i in 0..size {
        let remaining = (n - i) as u64;
        let j = i + usize::try_from(rng.next_u64() % remaining).unwrap_or(0);
        indices.swap(i, j);
    }
    indices.truncate(size);
    indices.sort_unstable();
    indices
}

/// Evenly spaced indices, at most `max` of them.
fn sample_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| i * n / max).collect()
}

/// Mean silhouette of each labelling `(labels, k)` over the sample
/// (distances within the sample). A point alone in its cluster, or at
/// distance 0 from everything, scores 0. The distances do not depend on
/// the labelling, so one pass over the sample's pairs serves every
/// candidate k. Each point's values are computed on their own (in
/// parallel) and summed in sample order, so the result does not depend on
/// the number of threads.
fn silhouettes(z: &Array2<f64>, labellings: &[(&[usize], usize)], sample: &[usize]) -> Vec<f64> {
    if sample.is_empty() || labellings.is_empty() {
        return vec![0.0; labellings.len()];
    }
    let rows: Vec<Vec<f64>> = sample.iter().map(|&i| z.row(i).to_vec()).collect();
    // Per sample point, its label in each labelling; per labelling, where
    // its clusters' sums start in a point's accumulator.
    let labels: Vec<Vec<usize>> =
        sample.iter().map(|&i| labellings.iter().map(|(labels, _)| labels[i]).collect()).collect();
    let offsets: Vec<usize> = labellings.iter().scan(0, |at, &(_, k)| Some(std::mem::replace(at, *at + k))).collect();
    let counts: Vec<Vec<usize>> = labellings
        .iter()
        .enumerate()
        .map(|(l, &(_, k))| {
            let mut counts = vec![0usize; k];
            for point in &labels {
                if let Some(c) = counts.get_mut(point[l]) {
                    *c += 1;
                }
            }
            counts
        })
        .collect();
    let clusters: usize = labellings.iter().map(|&(_, k)| k).sum();
    let mut per_point = vec![0.0; sample.len() * labellings.len()];
    per_point.par_chunks_mut(labellings.len()).enumerate().for_each(|(i, values)| {
        let mut sums = vec![0.0; clusters];
        for (j, row_j) in rows.iter().enumerate() {
            if i != j {
                let dist = rows[i].iter().zip(row_j).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
                for (l, &label) in labels[j].iter().enumerate() {
                    if label < labellings[l].1 {
                        sums[offsets[l] + label] += dist;
                    }
                }
            }
        }
        for (l, value) in values.iter_mut().enumerate() {
            let (k, counts, sums) = (labellings[l].1, &counts[l], &sums[offsets[l]..offsets[l] + labellings[l].1]);
            *value = point_silhouette(labels[i][l], k, counts, sums);
        }
    });
    (0..labellings.len())
        .map(|l| per_point.iter().skip(l).step_by(labellings.len()).sum::<f64>() / sample.len() as f64)
        .collect()
}

/// One point's silhouette from its summed distances to each cluster.
fn point_silhouette(own: usize, k: usize, counts: &[usize], sums: &[f64]) -> f64 {
    let own_count = counts.get(own).copied().unwrap_or(0);
    if own_count <= 1 {
        return 0.0;
    }
    let a = sums[own] / (own_count - 1) as f64;
    let b = (0..k).filter(|&c| c != own && counts[c] > 0).map(|c| sums[c] / counts[c] as f64).min_by(f64::total_cmp);
    let Some(b) = b else { return 0.0 };
    let max = a.max(b);
    if max > 0.0 { (b - a) / max } else { 0.0 }
}

/// Renumbers clusters by size (largest first, ties by the model's number)
/// and computes their profiles in original units. A cluster left empty by
/// k-means (possible on degenerate data) shows the model's centroid.
fn profiles(
    points: &[ClusterPoint<'_>],
    original: &Array2<f64>,
    scale: &Scale,
    fit: Fitted,
    k: usize,
) -> (Vec<usize>, Vec<ClusterProfile>) {
    let Fitted { labels, centroids } = fit;
    let d = original.ncols();
    let mut sizes = vec![0usize; k];
    for &l in &labels {
        sizes[l] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut renumber = vec![0; k];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = new;
    }
    let labels: Vec<usize> = labels.into_iter().map(|l| renumber[l]).collect();

    let mut sums = vec![0.0; k * d];
    let mut revenue = vec![0i128; k];
    let mut total: i128 = 0;
    for ((point, &l), row) in points.iter().zip(&labels).zip(original.rows()) {
        for (s, v) in sums[l * d..(l + 1) * d].iter_mut().zip(row.iter()) {
            *s += v;
        }
        revenue[l] += i128::from(point.revenue);
        total += i128::from(point.revenue);
    }
    let mut sizes_new = vec![0usize; k];
    for &l in &labels {
        sizes_new[l] += 1;
    }
    let profiles = (0..k)
        .map(|c| {
            let size = sizes_new[c];
            let centroid = if size > 0 {
                sums[c * d..(c + 1) * d].iter().map(|s| s / size as f64).collect()
            } else {
                let old = order[c];
                (0..d).map(|f| scale.revert(f, centroids.get((old, f)).copied().unwrap_or(0.0))).collect()
            };
            ClusterProfile {
                cluster: c,
                size,
                centroid,
                revenue: Money::try_from(revenue[c]).unwrap_or(if revenue[c] > 0 { Money::MAX } else { Money::MIN }),
                revenue_share: (total > 0).then(|| revenue[c] as f64 / total as f64),
            }
        })
        .collect();
    (labels, profiles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn points(rows: &[([f64; 3], Money)]) -> Vec<ClusterPoint<'_>> {
        rows.iter().map(|(f, revenue)| ClusterPoint { features: f, revenue: *revenue }).collect()
    }

    fn fixed(k: usize) -> ClusteringSettings {
        ClusteringSettings { clusters: ClusterCount::Fixed { k }, ..ClusteringSettings::default() }
    }

    /// Two separated groups; the third feature is constant (zero variance).
    fn two_groups() -> Vec<([f64; 3], Money)> {
        vec![
            ([1.0, 100.0, 7.0], 100),
            ([2.0, 110.0, 7.0], 100),
            ([1.5, 105.0, 7.0], 100),
            ([10.0, 1000.0, 7.0], 1_000),
            ([11.0, 1010.0, 7.0], 1_000),
            ([10.5, 1005.0, 7.0], 1_000),
            ([10.5, 1005.0, 7.0], 1_000),
        ]
    }

    #[test]
    fn fixed_k_profiles_in_original_units() {
        let rows = two_groups();
        let c = cluster(&points(&rows), &fixed(2)).unwrap();
        // Cluster 0 = the larger group (4 points): centroid
        // ((10+11+10.5+10.5)/4, (1000+1010+1005+1005)/4, 7) = (10.5, 1005, 7);
        // revenue 4000 of 4300. Cluster 1: (1.5, 105, 7), 300 of 4300.
        assert_eq!(c.k, 2);
        assert_eq!(c.labels, [1, 1, 1, 0, 0, 0, 0]);
        let p0 = &c.profiles[0];
        assert_eq!((p0.cluster, p0.size, p0.revenue), (0, 4, 4_000));
        assert_eq!(p0.centroid, [10.5, 1005.0, 7.0]);
        assert!((p0.revenue_share.unwrap() - 4_000.0 / 4_300.0).abs() < 1e-12);
        let p1 = &c.profiles[1];
        assert_eq!((p1.size, p1.revenue), (3, 300));
        assert_eq!(p1.centroid, [1.5, 105.0, 7.0]);
        assert_eq!((c.silhouette, c.candidates.len()), (None, 0));
    }

    #[test]
    fn silhouette_chooses_two_groups() {
        let rows = two_groups();
        let settings = ClusteringSettings {
            clusters: ClusterCount::BySilhouette { min_k: 2, max_k: 4 },
            ..ClusteringSettings::default()
        };
        let c = cluster(&points(&rows), &settings).unwrap();
        assert_eq!(c.k, 2);
        let ks: Vec<usize> = c.candidates.iter().map(|x| x.k).collect();
        assert_eq!(ks, [2, 3, 4]);
        let best = c.silhouette.unwrap();
        assert!(best > 0.8, "{best}");
        assert!(c.candidates.iter().all(|x| x.silhouette <= best));
    }

    #[test]
    fn silhouettes_of_several_labellings_by_hand() {
        // Points 0, 1, 10, 11 on a line.
        let z = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 10.0, 11.0]).expect("shape");
        let two = [0, 0, 1, 1];
        let three = [0, 1, 2, 2];
        let scores = silhouettes(&z, &[(&two, 2), (&three, 3)], &[0, 1, 2, 3]);
        // k = 2: a = 1 for everybody; b = 10.5, 9.5, 9.5, 10.5.
        let expected_two = (9.5 / 10.5 + 8.5 / 9.5) / 2.0;
        // k = 3: the singletons score 0; 10 and 11 have a = 1, b = 9 and 10.
        let expected_three = (8.0 / 9.0 + 9.0 / 10.0) / 4.0;
        assert!((scores[0] - expected_two).abs() < 1e-12, "{scores:?}");
        assert!((scores[1] - expected_three).abs() < 1e-12, "{scores:?}");
        assert_eq!(silhouettes(&z, &[(&two, 2)], &[]), vec![0.0]);
        assert_eq!(silhouettes(&z, &[], &[0, 1, 2, 3]), Vec::<f64>::new());
    }

    #[test]
    fn fewer_points_than_k() {
        let rows = [([1.0, 2.0, 3.0], 1), ([4.0, 5.0, 6.0], 1)];
        assert_eq!(cluster(&points(&rows), &fixed(3)), Err(ClusteringError::TooFewPoints { k: 3, distinct_points: 2 }));
        // Silhouette range 2..=8 is clamped to 2..=2.
        let c = cluster(&points(&rows), &ClusteringSettings::default()).unwrap();
        assert_eq!((c.k, c.candidates.len()), (2, 1));
        // Two singletons: silhouette 0 by convention.
        assert_eq!(c.silhouette, Some(0.0));
    }

    #[test]
    fn distinct_rows_are_counted_up_to_what_is_needed() {
        // Rows (1, 2), (1, 2), (3, 4), (1, 2), (5, 6): three distinct.
        let z = Array2::from_shape_vec((5, 2), vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 5.0, 6.0]).expect("shape");
        assert_eq!(distinct_rows(&z, 8), 3);
        assert_eq!(distinct_rows(&z, 2), 2);
    }

    #[test]
    fn identical_points_form_one_cluster_only() {
        let rows = [([1.0, 1.0, 1.0], 5); 4];
        assert_eq!(cluster(&points(&rows), &fixed(2)), Err(ClusteringError::TooFewPoints { k: 2, distinct_points: 1 }));
        assert_eq!(
            cluster(&points(&rows), &ClusteringSettings::default()),
            Err(ClusteringError::TooFewPoints { k: 2, distinct_points: 1 })
        );
        let c = cluster(&points(&rows), &fixed(1)).unwrap();
        assert_eq!(c.labels, [0; 4]);
        assert_eq!(c.profiles[0].centroid, [1.0, 1.0, 1.0]);
        assert_eq!(c.profiles[0].revenue_share, Some(1.0));
    }

    #[test]
    fn input_errors() {
        assert_eq!(cluster(&[], &fixed(1)), Err(ClusteringError::NoPoints));
        let empty: [f64; 0] = [];
        let p = [ClusterPoint { features: &empty, revenue: 0 }];
        assert_eq!(cluster(&p, &fixed(1)), Err(ClusteringError::NoFeatures));
        let (a, b) = ([1.0, 2.0], [1.0]);
        let p = [ClusterPoint { features: &a, revenue: 0 }, ClusterPoint { features: &b, revenue: 0 }];
        assert_eq!(cluster(&p, &fixed(1)), Err(ClusteringError::FeatureCount { point: 1, expected: 2, got: 1 }));
        let nan = [1.0, f64::NAN];
        let p = [ClusterPoint { features: &nan, revenue: 0 }];
        assert_eq!(cluster(&p, &fixed(1)), Err(ClusteringError::NonFinite { point: 0, feature: 1 }));
    }

    #[test]
    fn settings_validation() {
        assert_eq!(ClusteringSettings::default().validate(), Ok(()));
        let bad = ClusteringSettings {
            clusters: ClusterCount::BySilhouette { min_k: 1, max_k: 0 },
            runs: 0,
            tolerance: f64::NAN,
            silhouette_sample: 1,
            fit_sample: 999,
            ..ClusteringSettings::default()
        };
        let fields: Vec<String> = bad.validate().unwrap_err().0.into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            ["clusters.min_k", "clusters.max_k", "runs", "tolerance", "silhouette_sample", "fit_sample"]
        );
        assert!(matches!(cluster(&points(&two_groups()), &fixed(0)), Err(ClusteringError::InvalidSettings(_))));
    }

    /// `n` points around three centres far apart: (0, 0), (100, 0) and (0, 100),
    /// a third of them each, in an interleaved order; revenue 1 each.
    fn three_groups(n: usize) -> Vec<([f64; 3], Money)> {
        let centres = [(0.0, 0.0), (100.0, 0.0), (0.0, 100.0)];
        (0..n)
            .map(|i| {
                let (x, y) = centres[i % 3];
                let jitter = (i % 7) as f64 - 3.0;
                ([x + jitter, y - jitter, 1.0], 1)
            })
            .collect()
    }

    #[test]
    fn a_large_network_is_fitted_on_a_sample_then_on_everybody() {
        // 3 000 points, fitted on 1 000 of them: k = 3 is chosen, and the run
        // over everybody puts each point with its own centre.
        let rows = three_groups(3_000);
        let settings = ClusteringSettings {
            clusters: ClusterCount::BySilhouette { min_k: 2, max_k: 5 },
            fit_sample: 1_000,
            ..ClusteringSettings::default()
        };
        let c = cluster(&points(&rows), &settings).unwrap();
        assert_eq!(c.k, 3);
        assert_eq!(c.candidates.len(), 4);
        for (i, &label) in c.labels.iter().enumerate() {
            assert_eq!(label, c.labels[i % 3], "point {i}");
        }
        assert_eq!(c.profiles.iter().map(|p| p.size).collect::<Vec<_>>(), [1_000, 1_000, 1_000]);
        // The centroids are the population's: each group's jitter averages
        // to (0+1+..+6)/7 - 3 = 0 over 1 000 points up to rounding of the cycle.
        for p in &c.profiles {
            let (x, y) = (p.centroid[0], p.centroid[1]);
            let near = centres_near(x, y);
            assert!(near < 0.01, "centroid ({x}, {y}) is {near} from its centre");
        }
        // The same partition as a fit on everybody (fit_sample above n); the
        // numbers of equal-sized clusters may differ.
        let whole = cluster(&points(&rows), &ClusteringSettings { fit_sample: 10_000, ..settings }).unwrap();
        assert_eq!(whole.k, 3);
        assert!(rows.iter().enumerate().all(|(i, _)| whole.labels[i] == whole.labels[i % 3]));
        assert_eq!(cluster(&points(&rows), &settings).unwrap(), c, "deterministic for a seed");
    }

    fn centres_near(x: f64, y: f64) -> f64 {
        [(0.0, 0.0), (100.0, 0.0), (0.0, 100.0)]
            .iter()
            .map(|(cx, cy)| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt())
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn the_fitting_sample_is_seeded_distinct_and_ordered() {
        let a = random_sample(10_000, 1_000, 42);
        assert_eq!(a, random_sample(10_000, 1_000, 42));
        assert_ne!(a, random_sample(10_000, 1_000, 43));
        assert_eq!(a.len(), 1_000);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| i < 10_000));
        // Not a stride: every residue mod 3 is drawn about a third of the time.
        for residue in 0..3 {
            let count = a.iter().filter(|&&i| i % 3 == residue).count();
            assert!((250..420).contains(&count), "residue {residue}: {count}");
        }
        assert_eq!(random_sample(5, 10, 1), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn silhouette_sample_is_evenly_spaced() {
        assert_eq!(sample_indices(3, 10), [0, 1, 2]);
        assert_eq!(sample_indices(10, 4), [0, 2, 5, 7]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn deterministic_for_a_seed(
            rows in prop::collection::vec(((-50.0f64..50.0, 0.0f64..10.0, 0.0f64..1.0), -10i64..1000), 3..40),
            seed in any::<u64>(),
        ) {
            let rows: Vec<([f64; 3], Money)> = rows.into_iter().map(|((a, b, c), r)| ([a, b, c], r)).collect();
            let settings = ClusteringSettings {
                clusters: ClusterCount::BySilhouette { min_k: 2, max_k: 4 },
                seed,
                ..ClusteringSettings::default()
            };
            let a = cluster(&points(&rows), &settings);
            let b = cluster(&points(&rows), &settings);
            prop_assert_eq!(&a, &b);
            if let Ok(c) = a {
                prop_assert_eq!(c.labels.len(), rows.len());
                prop_assert_eq!(c.profiles.iter().map(|p| p.size).sum::<usize>(), rows.len());
                prop_assert!(c.labels.iter().all(|&l| l < c.k));
            }
        }
    }
}
