//! Pure domain rules of branchscore (no IO).
//!
//! Each module holds one rule of `/work/shared/domain.md` section 1 ("Clients
//! and segmentation"); [`pipeline`] holds section 2's and [`kpi`] section
//! 4's ("KPI and motivation": the KPI catalogue, scorecard and bonus formulas
//! and plan split). Batch functions take slices of plain input structs and
//! return results aligned by index, so callers keep their own ids; results do
//! not depend on input order (except k-means labels, which depend on the seed)
//! and the batch paths are O(n log n), because the service runs them for about
//! a million clients at once.
//!
//! Money is [`Money`] (i64 minor units, net of returns); dates are
//! [`chrono::NaiveDate`] business dates in the company's time zone.
//!
//! ```
//! use branchscore_scoring::abc::{self, AbcClass};
//! use branchscore_scoring::score::{ScoreInput, Scorer};
//! use branchscore_scoring::ScoringSettings;
//!
//! let settings = ScoringSettings::default();
//! settings.validate().unwrap();
//! // Window revenue per client (minor units); ids stay with the caller.
//! let revenue = [50_00, 30_00, 20_00, 0];
//! let classes = abc::classify(&revenue, &settings.abc).unwrap();
//! assert_eq!(classes, [Some(AbcClass::A), Some(AbcClass::B), Some(AbcClass::C), None]);
//!
//! let scorer = Scorer::new(&settings.score).unwrap();
//! let score = scorer.score(&ScoreInput { abc: classes[1], ..ScoreInput::default() });
//! // Only value (B = 60) and RFM (no purchase data = 0) are present: weights
//! // 30 and 25 -> (60 x 30 + 0 x 25) / 55 = 32.7 -> band "weak".
//! assert_eq!(score.band, "weak");
//! ```

pub mod abc;
pub mod basket;
pub mod batch;
pub mod cadence;
pub mod clustering;
pub mod complaints;
pub mod coverage;
pub mod cross_sell;
pub mod kpi;
pub mod lifecycle;
pub mod maturity;
pub mod nps;
pub mod period_to_date;
pub mod periods;
pub mod pipeline;
pub mod quality;
pub mod rfm;
pub mod score;
pub mod segment;
pub mod settings;
pub mod touchpoints;
pub mod window;
pub mod xyz;

pub use settings::{FieldViolation, InvalidSettings, ScoringSettings};

/// An amount of money in minor units (e.g. kopecks, grosze), net of returns.
pub type Money = i64;

/// A share in basis points: 1 bp = 0.01 %, 10 000 bp = 100 %.
///
/// Thresholds are integers so that a value exactly on a threshold is classed
/// exactly as the business rule says (no floating-point rounding).
pub type BasisPoints = u32;

/// 100 % in basis points.
pub const FULL_SHARE_BP: BasisPoints = 10_000;
