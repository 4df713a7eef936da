//! The recompute's view of the ideal client portrait: every client's segment
//! and maturity, and the basket rules of the network (one basket per client:
//! what it bought in the window). Pure; products are interned as indices so
//! a million clients fit in memory.
use crate::portrait;
use crate::store::{PopulationClient, RecordedState};
use branchscore_proto::clients::v1::Segment;
use branchscore_scoring::basket::{self, InvalidMinSupport, PairRule, Purchase};
use branchscore_scoring::maturity::{self, ClientProducts, ProductState, TargetMatrix};
use branchscore_scoring::segment::{BirthAttributes, Segmentation};
use std::collections::HashMap;

/// Product ids as dense indices.
#[derive(Debug, Default)]
pub struct Products {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl Products {
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        i
    }

    pub fn id(&self, index: u32) -> &str {
        self.ids.get(index as usize).map_or("", String::as_str)
    }
}

/// Per client (aligned with the population): its segment and maturity.
#[derive(Debug, Default)]
pub struct Portfolio {
    pub segments: Vec<Option<String>>,
    pub maturity: Vec<Option<f64>>,
    pub rules: Vec<PairRule<String>>,
}

/// Segments, maturity and basket rules of the population.
/// `purchased[i]` are the products client `i` bought in the window.
pub fn assess(
    population: &[PopulationClient],
    segments: &[Segment],
    recorded: &[RecordedState],
    purchased: &[Vec<u32>],
    products: &mut Products,
    min_support: f64,
) -> Result<Portfolio, InvalidMinSupport> {
    let segmentation = Segmentation::new(segments.iter().map(|s| (s.priority, s.id.clone(), portrait::criteria(s))));
    let matrix = TargetMatrix::new(
        segments.iter().map(|s| (s.id.clone(), s.target_product_ids.iter().map(|p| products.intern(p)).collect())),
    );
    let mut states_of: HashMap<&str, Vec<(u32, ProductState)>> = HashMap::new();
    for r in recorded {
        if let Some(state) = portrait::product_state(i32::from(r.state), r.date, &r.reason) {
            states_of.entry(r.client_id.as_str()).or_default().push((products.intern(&r.product_id), state));
        }
    }
    let mut portfolio = Portfolio::default();
    let mut states = Vec::new();
    for (client, bought) in population.iter().zip(purchased) {
        let attributes = BirthAttributes { kind: client.kind, size_band: client.size_band, industry: &client.industry };
        let segment = segmentation.segment_of(&attributes);
        let maturity = segment.and_then(|segment| {
            states.clear();
            states.extend(states_of.get(client.id.as_str()).into_iter().flatten().cloned());
            states.extend(bought.iter().map(|&p| (p, ProductState::Using)));
            maturity::assess(&matrix, &ClientProducts { segment, states: &states }).maturity
        });
        portfolio.segments.push(segment.cloned());
        portfolio.maturity.push(maturity);
    }
    let baskets: Vec<Purchase<'_, usize, u32>> =
        purchased.iter().enumerate().map(|(client, products)| Purchase { client, products }).collect();
    let analysis = basket::within_transactions(&baskets, min_support)?;
    portfolio.rules = analysis
        .rules
        .into_iter()
        .map(|r| PairRule {
            antecedent: products.id(r.antecedent).to_owned(),
            consequent: products.id(r.consequent).to_owned(),
            baskets: r.baskets,
            support: r.support,
            confidence: r.confidence,
            lift: r.lift,
        })
        .collect();
    Ok(portfolio)
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_proto::clients::v1::ProductStateKind;

    fn client(id: &str, kind: i32) -> PopulationClient {
        PopulationClient { id: id.into(), branch_id: "WAW".into(), kind, size_band: 2, industry: "retail".into() }
    }

    #[test]
    fn maturity_counts_purchases_and_recorded_use_and_baskets_span_clients() {
        let segments = [Segment {
            id: "b2b".into(),
            name: "Business".into(),
            priority: 1,
            kinds: vec![1],
            target_product_ids: vec!["paper".into(), "toner".into(), "labels".into(), "signs".into()],
            ..Segment::default()
        }];
        let population = [client("C1", 1), client("C2", 1), client("C3", 2)];
        let recorded = [RecordedState {
            client_id: "C1".into(),
            product_id: "signs".into(),
            state: ProductStateKind::Using as i16,
            date: None,
            reason: String::new(),
            updated_by: "anna".into(),
            updated_at: chrono::Utc::now(),
        }];
        let mut products = Products::default();
        let (paper, toner) = (products.intern("paper"), products.intern("toner"));
        let purchased = vec![vec![paper, toner], vec![paper], vec![paper, toner]];
        let portfolio = assess(&population, &segments, &recorded, &purchased, &mut products, 0.1).expect("assess");
        assert_eq!(portfolio.segments, [Some("b2b".into()), Some("b2b".into()), None]);
        // C1 uses paper, toner (bought) and signs (recorded) of 4 targets; C2 paper only.
        assert_eq!(portfolio.maturity, [Some(0.75), Some(0.25), None]);
        // Three baskets: paper in 3, toner in 2, both in 2: toner -> paper has confidence 1, lift 1.
        let toner_to_paper = portfolio.rules.iter().find(|r| r.antecedent == "toner").expect("rule");
        assert_eq!((toner_to_paper.consequent.as_str(), toner_to_paper.confidence), ("paper", 1.0));
        assert!((toner_to_paper.lift - 1.0).abs() < 1e-12);
    }
}
