//! Segment x product matrix ("ideal client portrait", seed 003), client
//! maturity and the cross-sell list.
//!
//! Each target segment lists the products a client of that segment should
//! ideally use. For every (client, targeted product) the managed sales
//! process records a state: not offered, offered (date), refused (reason),
//! contracted (date) or using.
//!
//! * **Maturity** = targeted products the client uses / products targeted for
//!   its segment (0..=1). Products used but not targeted do not count, so a
//!   client cannot exceed 100 %; a segment without targets has no maturity.
//! * **Cross-sell list** = targeted products not yet sold: not offered first
//!   (fresh opportunities), then offered (follow up), then refused (retry
//!   later); contracted products are sold and only wait to be used.
//!
//! Ids are the caller's (`S` for segments, `P` for products, any `Ord`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// State of one targeted product for one client, in process order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ProductState {
    /// Nobody has offered it yet.
    NotOffered,
    /// Offered on a date, no answer yet.
    Offered {
        /// When it was offered.
        on: NaiveDate,
    },
    /// The client said no.
    Refused {
        /// Reason given.
        reason: String,
    },
    /// Contract signed on a date, not in use yet.
    Contracted {
        /// Contract date.
        on: NaiveDate,
    },
    /// In use.
    Using,
}

impl ProductState {
    /// Process stage, used to pick the most advanced state when a product is
    /// listed twice for a client.
    fn stage(&self) -> u8 {
        match self {
            Self::NotOffered => 0,
            Self::Offered { .. } => 1,
            Self::Refused { .. } => 2,
            Self::Contracted { .. } => 3,
            Self::Using => 4,
        }
    }

    /// Order on the cross-sell list (`None` = not on it).
    fn cross_sell_rank(&self) -> Option<u8> {
        match self {
            Self::NotOffered => Some(0),
            Self::Offered { .. } => Some(1),
            Self::Refused { .. } => Some(2),
            Self::Contracted { .. } | Self::Using => None,
        }
    }
}

/// The ideal client portrait: target products per segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMatrix<S, P> {
    targets: BTreeMap<S, Vec<P>>,
}

impl<S: Ord, P: Ord> TargetMatrix<S, P> {
    /// Builds the matrix; products are sorted and de-duplicated per segment,
    /// a segment listed twice gets the union.
    pub fn new(rows: impl IntoIterator<Item = (S, Vec<P>)>) -> Self {
        let mut targets: BTreeMap<S, Vec<P>> = BTreeMap::new();
        for (segment, products) in rows {
            targets.entry(segment).or_default().extend(products);
        }
        for products in targets.values_mut() {
            products.sort_unstable();
            products.dedup();
        }
        Self { targets }
    }

    /// Products targeted for a segment (sorted; empty if unknown).
    pub fn targets(&self, segment: &S) -> &[P] {
        self.targets.get(segment).map_or(&[], Vec::as_slice)
    }
}

/// One client's segment and the states recorded for its products.
#[derive(Debug, Clone, Copy)]
pub struct ClientProducts<'a, S, P> {
    /// Target segment.
    pub segment: &'a S,
    /// Recorded states; products not listed are *not offered*. If a product
    /// is listed twice the most advanced state wins.
    pub states: &'a [(P, ProductState)],
}

/// A targeted product with its state for the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetedProduct<'a, P> {
    /// Product id.
    pub product: &'a P,
    /// Its state.
    pub state: &'a ProductState,
}

/// Maturity of one client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaturityAssessment<'a, P> {
    /// Products targeted for the segment.
    pub targeted: usize,
    /// Targeted products in use.
    pub used: usize,
    /// used / targeted; `None` when nothing is targeted.
    pub maturity: Option<f64>,
    /// Every targeted product with its state, in product order (the row of
    /// the managed-process table).
    pub products: Vec<TargetedProduct<'a, P>>,
}

impl<'a, P> MaturityAssessment<'a, P> {
    /// The cross-sell list: not offered, then offered, then refused; product
    /// order within each group.
    pub fn cross_sell(&self) -> Vec<TargetedProduct<'a, P>> {
        let mut gaps: Vec<_> =
            self.products.iter().filter_map(|p| p.state.cross_sell_rank().map(|rank| (rank, p))).collect();
        // Stable sort keeps product order inside a group.
        gaps.sort_by_key(|(rank, _)| *rank);
        gaps.into_iter().map(|(_, p)| TargetedProduct { product: p.product, state: p.state }).collect()
    }
}

static NOT_OFFERED: ProductState = ProductState::NotOffered;

/// Maturity of one client (O(s log s + t log s) for s states, t targets).
pub fn assess<'a, S: Ord, P: Ord>(
    matrix: &'a TargetMatrix<S, P>,
    client: &ClientProducts<'a, S, P>,
) -> MaturityAssessment<'a, P> {
    let targets = matrix.targets(client.segment);
    // Sorted by product, most advanced stage first within a product.
    let mut states: Vec<&'a (P, ProductState)> = client.states.iter().collect();
    states.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.stage().cmp(&a.1.stage())));
    let products: Vec<TargetedProduct<'a, P>> = targets
        .iter()
        .map(|product| {
            let i = states.partition_point(|(p, _)| p < product);
            let state = match states.get(i) {
                Some((p, state)) if p == product => state,
                _ => &NOT_OFFERED,
            };
            TargetedProduct { product, state }
        })
        .collect();
    let used = products.iter().filter(|p| matches!(p.state, ProductState::Using)).count();
    let targeted = targets.len();
    MaturityAssessment { targeted, used, maturity: (targeted > 0).then(|| used as f64 / targeted as f64), products }
}

/// Maturity of every client, aligned with `clients`.
pub fn assess_all<'a, S: Ord, P: Ord>(
    matrix: &'a TargetMatrix<S, P>,
    clients: &[ClientProducts<'a, S, P>],
) -> Vec<MaturityAssessment<'a, P>> {
    clients.iter().map(|c| assess(matrix, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn matrix() -> TargetMatrix<&'static str, u32> {
        // Segment "retail" targets products 1..=4 (given unsorted, with a
        // duplicate); "industry" targets 5 and 6; "empty" nothing.
        TargetMatrix::new([("retail", vec![3, 1, 2, 4, 1]), ("industry", vec![6, 5]), ("empty", vec![])])
    }

    #[test]
    fn maturity_and_cross_sell_list() {
        let m = matrix();
        let states = [
            (4, ProductState::Refused { reason: "price".into() }),
            (1, ProductState::Using),
            (2, ProductState::Offered { on: d(2026, 10, 1) }),
            (9, ProductState::Using), // not targeted: ignored
        ];
        let a = assess(&m, &ClientProducts { segment: &"retail", states: &states });
        // Targets 1,2,3,4; uses 1 -> maturity 1/4 = 0.25.
        assert_eq!((a.targeted, a.used, a.maturity), (4, 1, Some(0.25)));
        let row: Vec<(u32, u8)> = a.products.iter().map(|p| (*p.product, p.state.stage())).collect();
        assert_eq!(row, [(1, 4), (2, 1), (3, 0), (4, 2)]);
        // Cross-sell: 3 (not offered), 2 (offered), 4 (refused).
        let gaps: Vec<u32> = a.cross_sell().iter().map(|p| *p.product).collect();
        assert_eq!(gaps, [3, 2, 4]);
    }

    #[test]
    fn contracted_is_not_a_gap_and_duplicates_take_most_advanced() {
        let m = matrix();
        let states = [
            (5, ProductState::Offered { on: d(2026, 1, 1) }),
            (5, ProductState::Contracted { on: d(2026, 2, 1) }),
            (6, ProductState::Using),
        ];
        let a = assess(&m, &ClientProducts { segment: &"industry", states: &states });
        // 6 used of 5,6 -> 1/2; 5 contracted -> no gap.
        assert_eq!(a.maturity, Some(0.5));
        assert!(a.cross_sell().is_empty());
        assert_eq!(a.products[0].state, &ProductState::Contracted { on: d(2026, 2, 1) });
    }

    #[test]
    fn full_maturity_no_targets_and_unknown_segment() {
        let m = matrix();
        let all = [(5, ProductState::Using), (6, ProductState::Using)];
        let clients = [
            ClientProducts { segment: &"industry", states: &all },
            ClientProducts { segment: &"empty", states: &all },
            ClientProducts { segment: &"unknown", states: &[] },
        ];
        let out = assess_all(&m, &clients);
        assert_eq!(out[0].maturity, Some(1.0));
        assert_eq!((out[1].targeted, out[1].maturity), (0, None));
        assert_eq!((out[2].targeted, out[2].maturity), (0, None));
    }

    #[test]
    fn nothing_recorded_means_everything_not_offered() {
        let m = matrix();
        let a = assess(&m, &ClientProducts { segment: &"retail", states: &[] });
        assert_eq!(a.maturity, Some(0.0));
        let gaps: Vec<u32> = a.cross_sell().iter().map(|p| *p.product).collect();
        assert_eq!(gaps, [1, 2, 3, 4]);
    }
}
