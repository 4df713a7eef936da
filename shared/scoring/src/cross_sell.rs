//! "What else should I sell this client?": the segment gaps of the maturity
//! assessment and the products that clients with the same purchases also
//! buy (basket rules), merged into one ranked list with reasons.
//!
//! Ranking: segment gaps first (not offered, then offered, then refused, as
//! in [`crate::maturity`]), each ordered by the best lift a basket rule gives
//! it; then products only the basket rules suggest, by lift. A product the
//! client already uses or has contracted is never suggested; basket rules
//! with lift <= 1 say nothing and are ignored.
use crate::basket::PairRule;
use crate::maturity::{ProductState, TargetedProduct};
use std::collections::{BTreeMap, BTreeSet};

/// Why a product is suggested.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason<P> {
    /// Targeted for the client's segment and not yet sold.
    SegmentGap { state: ProductState, basket: Option<BasketEvidence<P>> },
    /// Bought by clients who bought what this client bought.
    Basket(BasketEvidence<P>),
}

/// The strongest rule behind a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct BasketEvidence<P> {
    /// What the client bought that points to the product.
    pub because_of: P,
    pub confidence: f64,
    pub lift: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion<P> {
    pub product: P,
    pub reason: Reason<P>,
}

/// Ranked suggestions for one client; at most `limit`.
pub fn suggest<P: Ord + Clone>(
    gaps: &[TargetedProduct<'_, P>],
    owned: &BTreeSet<P>,
    rules: &[PairRule<P>],
    limit: usize,
) -> Vec<Suggestion<P>> {
    let mut evidence: BTreeMap<&P, BasketEvidence<P>> = BTreeMap::new();
    for rule in rules.iter().filter(|r| r.lift > 1.0 && owned.contains(&r.antecedent) && !owned.contains(&r.consequent))
    {
        let better = evidence.get(&rule.consequent).is_none_or(|e| rule.lift > e.lift);
        if better {
            let found =
                BasketEvidence { because_of: rule.antecedent.clone(), confidence: rule.confidence, lift: rule.lift };
            evidence.insert(&rule.consequent, found);
        }
    }
    let lift = |e: &Option<BasketEvidence<P>>| e.as_ref().map_or(0.0, |e| e.lift);
    let stage = |state: &ProductState| match state {
        ProductState::NotOffered => 0,
        ProductState::Offered { .. } => 1,
        _ => 2,
    };
    let mut from_segment: Vec<Suggestion<P>> = gaps
        .iter()
        .filter(|gap| !owned.contains(gap.product))
        .map(|gap| Suggestion {
            product: gap.product.clone(),
            reason: Reason::SegmentGap { state: gap.state.clone(), basket: evidence.get(gap.product).cloned() },
        })
        .collect();
    from_segment.sort_by(|a, b| match (&a.reason, &b.reason) {
        (Reason::SegmentGap { state: sa, basket: ba }, Reason::SegmentGap { state: sb, basket: bb }) => {
            stage(sa).cmp(&stage(sb)).then(lift(bb).total_cmp(&lift(ba))).then_with(|| a.product.cmp(&b.product))
        }
        _ => std::cmp::Ordering::Equal,
    });
    let targeted: BTreeSet<&P> = gaps.iter().map(|g| g.product).collect();
    let mut from_baskets: Vec<Suggestion<P>> = evidence
        .into_iter()
        .filter(|(product, _)| !targeted.contains(product))
        .map(|(product, e)| Suggestion { product: product.clone(), reason: Reason::Basket(e) })
        .collect();
    from_baskets.sort_by(|a, b| match (&a.reason, &b.reason) {
        (Reason::Basket(ea), Reason::Basket(eb)) => eb.lift.total_cmp(&ea.lift).then_with(|| a.product.cmp(&b.product)),
        _ => std::cmp::Ordering::Equal,
    });
    from_segment.into_iter().chain(from_baskets).take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn rule(x: &'static str, y: &'static str, confidence: f64, lift: f64) -> PairRule<&'static str> {
        PairRule { antecedent: x, consequent: y, baskets: 10, support: 0.1, confidence, lift }
    }

    #[test]
    fn gaps_first_by_stage_and_lift_then_basket_only_products() {
        let offered = ProductState::Offered { on: NaiveDate::from_ymd_opt(2026, 10, 1).expect("date") };
        let not_offered = ProductState::NotOffered;
        let (p_toner, p_labels, p_banner) = ("toner", "labels", "banner");
        let gaps = [
            TargetedProduct { product: &p_banner, state: &offered },
            TargetedProduct { product: &p_labels, state: &not_offered },
            TargetedProduct { product: &p_toner, state: &not_offered },
        ];
        let owned: BTreeSet<&str> = ["paper", "cards"].into_iter().collect();
        let rules = [
            rule("paper", "toner", 0.6, 2.5),
            rule("cards", "toner", 0.4, 1.8),
            rule("cards", "brochures", 0.3, 1.5),
            rule("paper", "boxes", 0.2, 0.9),      // lift below 1: no evidence
            rule("stamps", "gift wrap", 0.9, 4.0), // the client has no stamps
            rule("paper", "cards", 0.5, 2.0),      // already owned
        ];
        let got = suggest(&gaps, &owned, &rules, 10);
        let products: Vec<&str> = got.iter().map(|s| s.product).collect();
        // Not offered (toner has lift 2.5, labels none), then offered, then basket-only.
        assert_eq!(products, ["toner", "labels", "banner", "brochures"]);
        assert!(matches!(
            &got[0].reason,
            Reason::SegmentGap { basket: Some(BasketEvidence { because_of: "paper", lift, .. }), .. } if *lift == 2.5
        ));
        assert_eq!(suggest(&gaps, &owned, &rules, 2).len(), 2);
    }
}
