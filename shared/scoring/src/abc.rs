//! ABC class (value) by *prior share*.
//!
//! Only clients with window revenue > 0 are classed. A client's prior share is
//! the revenue of all clients with **strictly greater** revenue divided by the
//! total; A if prior share < 50 %, B if < 80 %, else C (configurable, e.g.
//! 80/95). Using the prior share (not the cumulative share including the
//! client) keeps the client that crosses a boundary in the upper class, makes
//! the top client always A and gives tied clients the same class, so the
//! result does not depend on input order.
//!
//! Comparisons are exact integer arithmetic (`prior * 10 000 < bp * total` in
//! i128), so a client exactly on a threshold is classed as the rule says.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::settings::{FieldViolation, InvalidSettings, into_result};
use crate::{BasisPoints, FULL_SHARE_BP, Money};

/// Value class of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AbcClass {
    /// Clients bringing the first half (default) of revenue.
    A,
    /// The next 30 % (default).
    B,
    /// The tail.
    C,
}

/// Thresholds on the prior share, in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbcThresholds {
    /// A if prior share < this (default 5 000 bp = 50 %).
    pub a_prior_share_below_bp: BasisPoints,
    /// B if prior share < this (default 8 000 bp = 80 %), else C.
    pub b_prior_share_below_bp: BasisPoints,
}

impl Default for AbcThresholds {
    fn default() -> Self {
        Self { a_prior_share_below_bp: 5_000, b_prior_share_below_bp: 8_000 }
    }
}

impl AbcThresholds {
    /// Requires 0 < A < B <= 100 %: the top client must be able to be A and B
    /// must be a non-empty band.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut out = Vec::new();
        self.collect_violations("", &mut out);
        into_result(out)
    }

    pub(crate) fn collect_violations(&self, prefix: &str, out: &mut Vec<FieldViolation>) {
        let (a, b) = (self.a_prior_share_below_bp, self.b_prior_share_below_bp);
        if a == 0 || a >= FULL_SHARE_BP {
            out.push(FieldViolation::new(
                prefix,
                "a_prior_share_below_bp",
                format!("must be between 1 and 9999 basis points, got {a}"),
            ));
        }
        if b > FULL_SHARE_BP {
            out.push(FieldViolation::new(
                prefix,
                "b_prior_share_below_bp",
                format!("must be at most 10000 basis points, got {b}"),
            ));
        } else if b <= a {
            out.push(FieldViolation::new(
                prefix,
                "b_prior_share_below_bp",
                format!("must be greater than a_prior_share_below_bp ({a}), got {b}"),
            ));
        }
    }

    fn class_for(&self, prior: i128, total: i128) -> AbcClass {
        let scaled = prior * i128::from(FULL_SHARE_BP);
        if scaled < i128::from(self.a_prior_share_below_bp) * total {
            AbcClass::A
        } else if scaled < i128::from(self.b_prior_share_below_bp) * total {
            AbcClass::B
        } else {
            AbcClass::C
        }
    }
}

/// The revenue a client would need to reach the next class up, all other
/// clients unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextAbcClass {
    /// Class reached at `revenue` (normally the next one up; can skip B when a
    /// large client sits just above).
    pub class: AbcClass,
    /// Minimal window revenue that reaches it.
    pub revenue: Money,
    /// `revenue` minus the client's current revenue.
    pub gap: Money,
}

/// The sorted revenue distribution of the classed clients: classes and
/// nearest thresholds are answered in O(log n) from it.
#[derive(Debug, Clone)]
pub struct AbcDistribution {
    thresholds: AbcThresholds,
    /// Distinct positive revenues, descending.
    levels: Vec<Money>,
    /// `above[i]` = revenue of all clients with revenue > `levels[i]`;
    /// `above[levels.len()]` = total.
    above: Vec<i128>,
}

impl AbcDistribution {
    /// Builds the distribution from every client's window revenue (O(n log n)).
    pub fn new(revenues: &[Money], thresholds: &AbcThresholds) -> Result<Self, InvalidSettings> {
        thresholds.validate()?;
        let mut positive: Vec<Money> = revenues.iter().copied().filter(|&r| r > 0).collect();
        positive.sort_unstable_by_key(|&r| Reverse(r));
        let mut levels = Vec::new();
        let mut above = Vec::new();
        let mut running: i128 = 0;
        let mut i = 0;
        while i < positive.len() {
            let level = positive[i];
            let mut group: i128 = 0;
            while i < positive.len() && positive[i] == level {
                group += i128::from(level);
                i += 1;
            }
            levels.push(level);
            above.push(running);
            running += group;
        }
        above.push(running);
        Ok(Self { thresholds: *thresholds, levels, above })
    }

    /// Total revenue of the classed clients.
    pub fn total(&self) -> i128 {
        self.above.last().copied().unwrap_or(0)
    }

    /// Index of the first level <= `revenue`.
    fn level_index(&self, revenue: Money) -> usize {
        self.levels.partition_point(|&v| v > revenue)
    }

    /// Revenue of all classed clients with revenue strictly greater than `revenue`.
    pub fn revenue_above(&self, revenue: Money) -> i128 {
        self.above.get(self.level_index(revenue)).copied().unwrap_or(0)
    }

    /// Prior share of a client of this distribution with `revenue`, as a
    /// fraction (for display); `None` when not classed.
    pub fn prior_share(&self, revenue: Money) -> Option<f64> {
        if revenue <= 0 || self.total() <= 0 {
            return None;
        }
        Some(self.revenue_above(revenue) as f64 / self.total() as f64)
    }

    /// Class of a client of this distribution with `revenue`; `None` if
    /// revenue <= 0 (not classed) or the distribution is empty.
    pub fn class_of(&self, revenue: Money) -> Option<AbcClass> {
        if revenue <= 0 || self.total() <= 0 {
            return None;
        }
        Some(self.thresholds.class_for(self.revenue_above(revenue), self.total()))
    }

    /// Classes for a batch of revenues, aligned by index.
    pub fn classify(&self, revenues: &[Money]) -> Vec<Option<AbcClass>> {
        revenues.iter().map(|&r| self.class_of(r)).collect()
    }

    /// The nearest threshold for a client of this distribution with
    /// `revenue`: the minimal revenue (others unchanged, so the total grows by
    /// the same amount) that puts it in a higher class. `None` for class A
    /// and for unclassed clients (any positive revenue classes them).
    ///
    /// With revenue R' the client's prior share is S(R') / (T_o + R'), where
    /// T_o is the others' total and S(R') the others' revenue above R'; it only
    /// falls as R' grows, so the answer is found by a binary search over the
    /// levels above the client and one exact division inside the last
    /// interval (O(log n)).
    pub fn next_class(&self, revenue: Money) -> Option<NextAbcClass> {
        let target_bp = match self.class_of(revenue)? {
            AbcClass::A => return None,
            AbcClass::B => self.thresholds.a_prior_share_below_bp,
            AbcClass::C => self.thresholds.b_prior_share_below_bp,
        };
        let t = i128::from(target_bp);
        let full = i128::from(FULL_SHARE_BP);
        let others_total = self.total() - i128::from(revenue);
        // Levels strictly above the client: 0..higher.
        let higher = self.level_index(revenue);
        // At R' = levels[j] the others above are levels 0..j, i.e. above[j].
        let reaches_at_level = |j: usize| -> bool {
            let r_prime = i128::from(self.levels[j]);
            self.above[j] * full < t * (others_total + r_prime)
        };
        // True for j = 0 (nobody above the top revenue) and monotone in j:
        // binary search for the first level where it fails.
        let (mut lo, mut hi) = (0, higher);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if reaches_at_level(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let j_star = lo.checked_sub(1)?;
        // Inside [lower, levels[j*]) the others above are levels 0..=j*.
        let lower = if j_star + 1 < higher { i128::from(self.levels[j_star + 1]) } else { i128::from(revenue) + 1 };
        let s = self.above[j_star + 1];
        // s * full < t * (others_total + R')  <=>  R' > (s*full - t*others_total) / t
        let min_r = (s * full - t * others_total).div_euclid(t) + 1;
        let candidate = min_r.max(lower);
        let level = i128::from(self.levels[j_star]);
        let needed = if candidate < level { candidate } else { level };
        let needed = Money::try_from(needed).ok()?;
        let total_after = others_total + i128::from(needed);
        let above_after = self.revenue_above(needed);
        Some(NextAbcClass {
            class: self.thresholds.class_for(above_after, total_after),
            revenue: needed,
            gap: needed - revenue,
        })
    }
}

/// ABC class of every client, aligned with `revenues` (O(n log n)).
pub fn classify(revenues: &[Money], thresholds: &AbcThresholds) -> Result<Vec<Option<AbcClass>>, InvalidSettings> {
    Ok(AbcDistribution::new(revenues, thresholds)?.classify(revenues))
}

/// How a client's ABC class moved from one recompute to a later one: the
/// "client class and its changes" KPI of seed 003 counts moves up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassMove {
    /// Towards A (C -> B, B -> A, C -> A).
    Up,
    /// Towards C, or out of the classes (no revenue in the window any more).
    Down,
    /// The same class, or a first class (a client entering the classes is
    /// counted as a new or restored client, not as a move).
    None,
}

/// The move from `previous` to `current` (`None`: unclassified).
pub fn class_move(previous: Option<AbcClass>, current: Option<AbcClass>) -> ClassMove {
    match (previous, current) {
        (Some(before), Some(after)) if after < before => ClassMove::Up,
        (Some(before), Some(after)) if after > before => ClassMove::Down,
        (Some(_), None) => ClassMove::Down,
        _ => ClassMove::None,
    }
}

#[cfg(test)]
mod tests {
    use super::AbcClass::{A, B, C};
    use super::*;
    use proptest::prelude::*;

    fn classes(revenues: &[Money]) -> Vec<Option<AbcClass>> {
        classify(revenues, &AbcThresholds::default()).unwrap()
    }

    #[test]
    fn exactly_on_thresholds_stays_upper_class_rule() {
        // total 100. 50: prior 0 -> A. 30: prior 50/100 = 50 %, not < 50 -> B.
        // 20: prior 80/100 = 80 %, not < 80 -> C.
        assert_eq!(classes(&[30, 50, 20]), [Some(B), Some(A), Some(C)]);
    }

    #[test]
    fn zero_and_negative_revenue_not_classed() {
        // Returns exceed sales for the third client: net -20, not classed and
        // not part of the total (total = 100, so 100 is A alone).
        assert_eq!(classes(&[100, 0, -20]), [Some(A), None, None]);
        assert_eq!(classes(&[0, -5]), [None, None]);
    }

    #[test]
    fn one_client_and_empty_input() {
        assert_eq!(classes(&[7]), [Some(A)]);
        assert_eq!(classes(&[]), []);
        let dist = AbcDistribution::new(&[], &AbcThresholds::default()).unwrap();
        assert_eq!(dist.total(), 0);
        assert_eq!(dist.class_of(10), None); // not a client of this distribution
        assert_eq!(dist.next_class(10), None);
    }

    #[test]
    fn all_equal_clients_share_class_a() {
        // Nobody has strictly greater revenue: every prior share is 0.
        assert_eq!(classes(&[10, 10, 10, 10]), [Some(A); 4]);
    }

    #[test]
    fn ties_share_class_and_can_sit_exactly_on_a_threshold() {
        // total 100. 40: prior 0 -> A; both 20s: prior 40 % -> A;
        // both 10s: prior 80 % -> C (B needs < 80 %).
        assert_eq!(classes(&[10, 20, 40, 20, 10]), [Some(C), Some(A), Some(A), Some(A), Some(C)]);
    }

    #[test]
    fn configurable_80_95() {
        let t = AbcThresholds { a_prior_share_below_bp: 8_000, b_prior_share_below_bp: 9_500 };
        // total 100: 60 prior 0 A; 25 prior 60 % A; 10 prior 85 % B;
        // 5 prior 95 % -> C.
        assert_eq!(classify(&[60, 25, 10, 5], &t).unwrap(), [Some(A), Some(A), Some(B), Some(C)]);
    }

    #[test]
    fn invalid_thresholds_rejected() {
        let bad = AbcThresholds { a_prior_share_below_bp: 0, b_prior_share_below_bp: 10_001 };
        let err = classify(&[1], &bad).unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a_prior_share_below_bp", "b_prior_share_below_bp"]);
        let equal = AbcThresholds { a_prior_share_below_bp: 5_000, b_prior_share_below_bp: 5_000 };
        assert!(equal.validate().is_err());
    }

    #[test]
    fn prior_share_for_display() {
        let dist = AbcDistribution::new(&[50, 30, 20], &AbcThresholds::default()).unwrap();
        assert_eq!(dist.prior_share(30), Some(0.5));
        assert_eq!(dist.prior_share(0), None);
    }

    #[test]
    fn next_class_b_to_a() {
        // [50, 30, 20]: 30 is B. Others total 70, 50 above it.
        // A needs 50 * 10000 < 5000 * (70 + R')  <=>  R' > 30  -> 31.
        // Check: [50, 31, 20], total 101, prior 50/101 = 49.5 % -> A.
        let dist = AbcDistribution::new(&[50, 30, 20], &AbcThresholds::default()).unwrap();
        assert_eq!(dist.next_class(30), Some(NextAbcClass { class: A, revenue: 31, gap: 1 }));
        assert_eq!(dist.next_class(50), None); // already A
        assert_eq!(dist.next_class(0), None); // not classed
    }

    #[test]
    fn next_class_c_to_b() {
        // [50, 30, 20]: 20 is C. Others total 80, all 80 above it below 30.
        // B needs 80 * 10000 < 8000 * (80 + R')  <=>  R' > 20  -> 21.
        // Check: [50, 30, 21], total 101, prior 80/101 = 79.2 % -> B.
        let dist = AbcDistribution::new(&[50, 30, 20], &AbcThresholds::default()).unwrap();
        assert_eq!(dist.next_class(20), Some(NextAbcClass { class: B, revenue: 21, gap: 1 }));
        // [1000, 10, 1] total 1011: 10 has prior 1000/1011 = 98.9 % -> C.
        // B needs 1000 * 10000 < 8000 * (1001 + R')  <=>  R' > 249 -> 250.
        // Check: 1000 / 1251 = 79.94 % -> B; at 249: 1000/1250 = 80 % -> C.
        let dist = AbcDistribution::new(&[1000, 10, 1], &AbcThresholds::default()).unwrap();
        assert_eq!(dist.next_class(10), Some(NextAbcClass { class: B, revenue: 250, gap: 240 }));
    }

    #[test]
    fn next_class_can_jump_straight_to_a() {
        // Ten clients at 10 and one at 1: total 101, the 1 has prior
        // 100/101 -> C. Below 10 its prior is >= 100/109 = 91.7 % (still C);
        // at 10 it ties with everybody, prior 0 -> A.
        let mut revenues = vec![10; 10];
        revenues.push(1);
        let dist = AbcDistribution::new(&revenues, &AbcThresholds::default()).unwrap();
        assert_eq!(dist.class_of(1), Some(C));
        assert_eq!(dist.next_class(1), Some(NextAbcClass { class: A, revenue: 10, gap: 9 }));
    }

    fn revenues() -> impl Strategy<Value = Vec<Money>> {
        prop::collection::vec(-1_000i64..1_000_000, 0..60)
    }

    #[test]
    fn class_moves_hand_computed() {
        use AbcClass::*;
        assert_eq!(class_move(Some(B), Some(A)), ClassMove::Up);
        assert_eq!(class_move(Some(C), Some(A)), ClassMove::Up);
        assert_eq!(class_move(Some(A), Some(C)), ClassMove::Down);
        assert_eq!(class_move(Some(C), None), ClassMove::Down);
        assert_eq!(class_move(Some(B), Some(B)), ClassMove::None);
        assert_eq!(class_move(None, Some(C)), ClassMove::None);
        assert_eq!(class_move(None, None), ClassMove::None);
    }

    proptest! {
        #[test]
        fn every_positive_client_gets_exactly_one_class(revenues in revenues()) {
            let classes = classes(&revenues);
            prop_assert_eq!(classes.len(), revenues.len());
            for (r, c) in revenues.iter().zip(&classes) {
                prop_assert_eq!(*r > 0, c.is_some());
            }
            // The top client is always A.
            if let Some((i, _)) = revenues.iter().enumerate().filter(|(_, r)| **r > 0).max_by_key(|(_, r)| **r) {
                prop_assert_eq!(classes[i], Some(A));
            }
        }

        #[test]
        fn a_share_exceeds_threshold_by_at_most_one_client(
            distinct in prop::collection::btree_set(1i64..1_000_000, 1..60)
        ) {
            // With distinct revenues only the crossing client (the smallest A)
            // can push the A share over the threshold.
            let revenues: Vec<Money> = distinct.into_iter().collect();
            let classes = classes(&revenues);
            let total: i128 = revenues.iter().map(|&r| i128::from(r)).sum();
            let a: Vec<i128> = revenues.iter().zip(&classes)
                .filter(|(_, c)| **c == Some(A)).map(|(&r, _)| i128::from(r)).collect();
            let a_sum: i128 = a.iter().sum();
            let smallest_a = a.iter().copied().min().unwrap_or(0);
            prop_assert!(a_sum * 10_000 < 5_000 * total + smallest_a * 10_000);
        }

        #[test]
        fn a_share_with_ties_exceeds_by_at_most_one_tie_group(revenues in revenues()) {
            let classes = classes(&revenues);
            let total: i128 = revenues.iter().filter(|&&r| r > 0).map(|&r| i128::from(r)).sum();
            let a_sum: i128 = revenues.iter().zip(&classes)
                .filter(|(_, c)| **c == Some(A)).map(|(&r, _)| i128::from(r)).sum();
            let smallest_a = revenues.iter().zip(&classes)
                .filter(|(_, c)| **c == Some(A)).map(|(&r, _)| r).min();
            if let Some(level) = smallest_a {
                let group: i128 = revenues.iter().filter(|&&r| r == level).map(|&r| i128::from(r)).sum();
                prop_assert!(a_sum * 10_000 < 5_000 * total + group * 10_000);
            }
        }

        #[test]
        fn classes_independent_of_input_order(
            (revenues, shuffled) in revenues().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let a = classes(&revenues);
            let b = classes(&shuffled);
            let mut pa: Vec<_> = revenues.iter().copied().zip(a).collect();
            let mut pb: Vec<_> = shuffled.iter().copied().zip(b).collect();
            pa.sort();
            pb.sort();
            prop_assert_eq!(pa, pb);
        }

        #[test]
        fn next_class_is_minimal_and_reaches_a_higher_class(
            revenues in prop::collection::vec(1i64..2_000, 1..25),
            pick in any::<prop::sample::Index>(),
        ) {
            let t = AbcThresholds::default();
            let i = pick.index(revenues.len());
            let dist = AbcDistribution::new(&revenues, &t).unwrap();
            let current = dist.class_of(revenues[i]).unwrap();
            let with = |r: Money| {
                let mut v = revenues.clone();
                v[i] = r;
                classify(&v, &t).unwrap()[i].unwrap()
            };
            match dist.next_class(revenues[i]) {
                None => prop_assert_eq!(current, A),
                Some(next) => {
                    prop_assert!(next.class < current);
                    prop_assert_eq!(with(next.revenue), next.class);
                    prop_assert_eq!(next.gap, next.revenue - revenues[i]);
                    // One unit less does not reach a higher class.
                    prop_assert_eq!(with(next.revenue - 1), current);
                }
            }
        }
    }
}
