//! Basket analysis (seed 002): which products go together, to feed the
//! cross-sell list.
//!
//! Two views, same measures:
//! * **within one transaction**: a basket is one transaction's products;
//! * **across a client's transactions**: a basket is every product the client
//!   bought in any transaction (complementary purchases spread over time).
//!
//! For a rule "bought X -> also bought Y" over N baskets:
//! support = n(X and Y) / N, confidence = n(X and Y) / n(X),
//! lift = confidence / (n(Y) / N) = n(X and Y)·N / (n(X)·n(Y)); lift > 1
//! means Y is more likely with X than without. Pairs below the minimum
//! support are dropped (rare pairs are noise). A product counts once per
//! basket however many times it appears.
//!
//! Rules are sorted by lift, then confidence, then support (all descending),
//! then antecedent and consequent ids, so the output is deterministic and
//! independent of input order. Cost: O(Σ k² log) for baskets of k products.

use serde::{Deserialize, Serialize};

/// One transaction: who bought which products.
#[derive(Debug, Clone, Copy)]
pub struct Purchase<'a, C, P> {
    /// Client id (only used for the across-transactions view).
    pub client: C,
    /// Products in the transaction (duplicates allowed).
    pub products: &'a [P],
}

/// Invalid minimum support.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("minimum support must be in (0, 1], got {0}")]
pub struct InvalidMinSupport(pub f64);

/// How often a product appears in baskets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSupport<P> {
    /// Product id.
    pub product: P,
    /// Baskets containing it.
    pub baskets: u64,
    /// baskets / N.
    pub support: f64,
}

/// "Bought `antecedent` -> also bought `consequent`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRule<P> {
    /// X.
    pub antecedent: P,
    /// Y.
    pub consequent: P,
    /// Baskets with both.
    pub baskets: u64,
    /// n(X and Y) / N.
    pub support: f64,
    /// n(X and Y) / n(X).
    pub confidence: f64,
    /// n(X and Y)·N / (n(X)·n(Y)).
    pub lift: f64,
}

/// Result of a basket analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BasketAnalysis<P> {
    /// Number of non-empty baskets N.
    pub baskets: u64,
    /// Every product with its support, most frequent first (ties by id):
    /// the "most bought products".
    pub items: Vec<ItemSupport<P>>,
    /// Rules with support >= the minimum, both directions of each pair.
    pub rules: Vec<PairRule<P>>,
}

/// Pairs within each transaction.
pub fn within_transactions<C, P: Ord + Clone>(
    purchases: &[Purchase<'_, C, P>],
    min_support: f64,
) -> Result<BasketAnalysis<P>, InvalidMinSupport> {
    check(min_support)?;
    let catalog = Catalog::new(purchases.iter().flat_map(|p| p.products));
    let mut counter = PairCounter::new(catalog.len());
    let mut basket = Vec::new();
    for purchase in purchases {
        basket.clear();
        basket.extend(purchase.products.iter().filter_map(|p| catalog.index(p)));
        counter.add_basket(&mut basket);
    }
    Ok(counter.finish(&catalog, min_support))
}

/// Pairs across all transactions of each client (one basket per client).
pub fn across_client_transactions<C: Ord, P: Ord + Clone>(
    purchases: &[Purchase<'_, C, P>],
    min_support: f64,
) -> Result<BasketAnalysis<P>, InvalidMinSupport> {
    check(min_support)?;
    let catalog = Catalog::new(purchases.iter().flat_map(|p| p.products));
    let mut by_client: Vec<&Purchase<'_, C, P>> = purchases.iter().collect();
    by_client.sort_by(|a, b| a.client.cmp(&b.client));
    let mut counter = PairCounter::new(catalog.len());
    let mut basket = Vec::new();
    for group in by_client.chunk_by(|a, b| a.client == b.client) {
        basket.clear();
        for purchase in group {
            basket.extend(purchase.products.iter().filter_map(|p| catalog.index(p)));
        }
        counter.add_basket(&mut basket);
    }
    Ok(counter.finish(&catalog, min_support))
}

fn check(min_support: f64) -> Result<(), InvalidMinSupport> {
    if min_support > 0.0 && min_support <= 1.0 { Ok(()) } else { Err(InvalidMinSupport(min_support)) }
}

/// Sorted distinct products, so the counting works on dense u32 indices.
struct Catalog<P> {
    products: Vec<P>,
}

impl<P: Ord + Clone> Catalog<P> {
    fn new<'p>(all: impl Iterator<Item = &'p P>) -> Self
    where
        P: 'p,
    {
        let mut products: Vec<P> = all.cloned().collect();
        products.sort_unstable();
        products.dedup();
        Self { products }
    }

    fn len(&self) -> usize {
        self.products.len()
    }

    fn index(&self, product: &P) -> Option<u32> {
        let i = self.products.binary_search(product).ok()?;
        u32::try_from(i).ok()
    }
}

struct PairCounter {
    baskets: u64,
    items: Vec<u64>,
    /// (lower index << 32 | higher index), one entry per basket and pair.
    pairs: Vec<u64>,
}

impl PairCounter {
    fn new(products: usize) -> Self {
        Self { baskets: 0, items: vec![0; products], pairs: Vec::new() }
    }

    fn add_basket(&mut self, basket: &mut Vec<u32>) {
        basket.sort_unstable();
        basket.dedup();
        if basket.is_empty() {
            return;
        }
        self.baskets += 1;
        for (i, &a) in basket.iter().enumerate() {
            if let Some(count) = self.items.get_mut(a as usize) {
                *count += 1;
            }
            for &b in &basket[i + 1..] {
                self.pairs.push((u64::from(a) << 32) | u64::from(b));
            }
        }
    }

    fn finish<P: Clone>(mut self, catalog: &Catalog<P>, min_support: f64) -> BasketAnalysis<P> {
        let n = self.baskets as f64;
        let mut items: Vec<ItemSupport<P>> = catalog
            .products
            .iter()
            .zip(&self.items)
            .filter(|(_, count)| **count > 0)
            .map(|(product, &count)| ItemSupport {
                product: product.clone(),
                baskets: count,
                support: count as f64 / n,
            })
            .collect();
        // Catalog order is id order, so a stable sort breaks ties by id.
        items.sort_by_key(|item| std::cmp::Reverse(item.baskets));

        self.pairs.sort_unstable();
        let mut rules = Vec::new();
        for run in self.pairs.chunk_by(|a, b| a == b) {
            let both = run.len() as u64;
            let support = both as f64 / n;
            if support < min_support {
                continue;
            }
            let (a, b) = ((run[0] >> 32) as usize, (run[0] & 0xffff_ffff) as usize);
            let (Some(&na), Some(&nb)) = (self.items.get(a), self.items.get(b)) else {
                continue;
            };
            for (x, nx, y, ny) in [(a, na, b, nb), (b, nb, a, na)] {
                let rule = PairRule {
                    antecedent: catalog.products[x].clone(),
                    consequent: catalog.products[y].clone(),
                    baskets: both,
                    support,
                    confidence: both as f64 / nx as f64,
                    lift: (both as f64 * n) / (nx as f64 * ny as f64),
                };
                // Catalog indices (id order) kept for the tie-break.
                rules.push((rule, x, y));
            }
        }
        rules.sort_by(|(ra, xa, ya), (rb, xb, yb)| {
            rb.lift
                .total_cmp(&ra.lift)
                .then(rb.confidence.total_cmp(&ra.confidence))
                .then(rb.support.total_cmp(&ra.support))
                .then(xa.cmp(xb))
                .then(ya.cmp(yb))
        });
        BasketAnalysis { baskets: self.baskets, items, rules: rules.into_iter().map(|(rule, _, _)| rule).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchases<'a>(rows: &'a [(u32, &'a [&'static str])]) -> Vec<Purchase<'a, u32, &'static str>> {
        rows.iter().map(|(client, products)| Purchase { client: *client, products }).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn within_transactions_hand_computed() {
        // T1 {bread, milk}, T2 {bread, butter}, T3 {bread, milk, butter},
        // T4 {milk, milk}. N = 4; n(bread)=3, n(milk)=3, n(butter)=2.
        // bread&milk = 2, bread&butter = 2, milk&butter = 1.
        let rows: [(u32, &[&str]); 4] = [
            (1, &["bread", "milk"]),
            (1, &["butter", "bread"]),
            (2, &["bread", "milk", "butter"]),
            (3, &["milk", "milk"]),
        ];
        let a = within_transactions(&purchases(&rows), 0.3).unwrap();
        assert_eq!(a.baskets, 4);
        let items: Vec<_> = a.items.iter().map(|i| (i.product, i.baskets)).collect();
        assert_eq!(items, [("bread", 3), ("milk", 3), ("butter", 2)]);
        // milk&butter support 1/4 < 0.3: dropped. Remaining 4 rules:
        // butter->bread: conf 2/2 = 1, lift 2*4/(2*3) = 4/3, support 0.5
        // bread->butter: conf 2/3, lift 4/3
        // bread->milk, milk->bread: conf 2/3, lift 2*4/(3*3) = 8/9
        let rules: Vec<_> = a.rules.iter().map(|r| (r.antecedent, r.consequent)).collect();
        assert_eq!(rules, [("butter", "bread"), ("bread", "butter"), ("bread", "milk"), ("milk", "bread")]);
        let r = &a.rules[0];
        assert!(close(r.support, 0.5) && close(r.confidence, 1.0) && close(r.lift, 4.0 / 3.0));
        let r = &a.rules[2];
        assert!(close(r.confidence, 2.0 / 3.0) && close(r.lift, 8.0 / 9.0));
    }

    #[test]
    fn across_client_transactions_hand_computed() {
        // Same rows per client: client 1 {bread, milk, butter},
        // client 2 {bread, milk, butter}, client 3 {milk}. N = 3.
        // n(bread)=2, n(milk)=3, n(butter)=2; bread&butter 2,
        // bread&milk 2, milk&butter 2.
        // bread->butter: support 2/3, conf 1, lift 2*3/(2*2) = 1.5.
        // bread->milk: conf 1, lift 2*3/(2*3) = 1; milk->bread conf 2/3, lift 1.
        let rows: [(u32, &[&str]); 4] = [
            (1, &["bread", "milk"]),
            (2, &["bread", "milk", "butter"]),
            (1, &["butter", "bread"]),
            (3, &["milk", "milk"]),
        ];
        let a = across_client_transactions(&purchases(&rows), 0.5).unwrap();
        assert_eq!(a.baskets, 3);
        let top = &a.rules[0];
        assert_eq!((top.antecedent, top.consequent), ("bread", "butter"));
        assert!(close(top.support, 2.0 / 3.0) && close(top.lift, 1.5));
        assert_eq!(a.rules.len(), 6);
        let last = a.rules.last().unwrap();
        assert_eq!((last.antecedent, last.consequent), ("milk", "butter"));
        assert!(close(last.confidence, 2.0 / 3.0) && close(last.lift, 1.0));
    }

    #[test]
    fn empty_input_and_bad_min_support() {
        let empty: Vec<Purchase<'_, u32, u32>> = Vec::new();
        let a = within_transactions(&empty, 0.1).unwrap();
        assert_eq!((a.baskets, a.items.len(), a.rules.len()), (0, 0, 0));
        let a = across_client_transactions(&empty, 1.0).unwrap();
        assert_eq!(a.baskets, 0);
        assert!(within_transactions(&empty, 0.0).is_err());
        assert!(within_transactions(&empty, f64::NAN).is_err());
        assert!(across_client_transactions(&empty, 1.5).is_err());
    }

    #[test]
    fn independent_of_input_order() {
        let rows: [(u32, &[&str]); 4] = [(1, &["a", "b"]), (2, &["b", "c", "a"]), (1, &["c"]), (3, &["a", "c"])];
        let mut reversed = rows;
        reversed.reverse();
        for min in [0.1, 0.5] {
            assert_eq!(within_transactions(&purchases(&rows), min), within_transactions(&purchases(&reversed), min));
            assert_eq!(
                across_client_transactions(&purchases(&rows), min),
                across_client_transactions(&purchases(&reversed), min)
            );
        }
    }
}
