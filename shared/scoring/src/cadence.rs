//! Who is asked for feedback, when, and how (domain.md section 3).
//!
//! * **Every client at least once a year**: a client who has bought and was
//!   not invited in the last `annual_interval_days` (default 365) is due the
//!   general survey.
//! * **A new client at every first sale of a product**: a client's first
//!   purchase of a product on day d is due that product's survey when the
//!   client is new on d, i.e. its first purchase of anything falls in
//!   (d - P, d], P = `new_client_months` (default 3, the lifecycle period).
//!   A client asked about a product now is not also asked the general survey.
//! * **Channel**: printed forms for A+ clients (ABC class A with a client
//!   score of at least `a_plus_min_score`, default 80, the top band) and
//!   international clients; everyone else gets the digital channel asked for.
use crate::abc::AbcClass;
use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The configurable part of the cadence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CadenceRules {
    pub annual_interval_days: u32,
    pub new_client_months: u32,
    pub a_plus_min_score: f64,
}

impl Default for CadenceRules {
    fn default() -> Self {
        CadenceRules { annual_interval_days: 365, new_client_months: 3, a_plus_min_score: 80.0 }
    }
}

/// A client as the cadence sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CadenceClient<'a> {
    pub id: &'a str,
    /// Potential clients (never bought) have nothing to rate.
    pub has_bought: bool,
    /// The day of its latest invitation that was not a failed delivery.
    pub last_invited: Option<NaiveDate>,
}

/// A client's first purchase of a product (the clients service's `FirstPurchase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstPurchase<'a> {
    pub client: &'a str,
    pub product: &'a str,
    pub date: NaiveDate,
    /// Also the client's first purchase of anything.
    pub first_of_client: bool,
}

/// An invitation the cadence asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due<'a> {
    /// The general survey.
    Annual { client: &'a str },
    /// The survey of the product bought; `purchase` indexes the input.
    FirstPurchase { client: &'a str, product: &'a str, purchase: usize },
}

/// The invitations due as of `as_of`: first purchases on or after `from`
/// (pass every first purchase from `from` minus P months on, so each new
/// client's first purchase is among them), skipping `(client, product)`
/// pairs already invited, then the yearly ones.
pub fn plan<'a>(
    rules: &CadenceRules,
    as_of: NaiveDate,
    from: NaiveDate,
    clients: &[CadenceClient<'a>],
    purchases: &[FirstPurchase<'a>],
    already_asked_about: &HashSet<(&str, &str)>,
) -> Vec<Due<'a>> {
    let mut became_client: HashMap<&str, NaiveDate> = HashMap::new();
    for purchase in purchases.iter().filter(|p| p.first_of_client) {
        let day = became_client.entry(purchase.client).or_insert(purchase.date);
        *day = (*day).min(purchase.date);
    }
    let known: HashSet<&str> = clients.iter().map(|c| c.id).collect();
    let mut due = Vec::new();
    let mut asked_now: HashSet<&str> = HashSet::new();
    for (i, purchase) in purchases.iter().enumerate() {
        if purchase.date < from || purchase.date > as_of || !known.contains(purchase.client) {
            continue;
        }
        let is_new = became_client.get(purchase.client).is_some_and(|first| {
            purchase.date.checked_sub_months(Months::new(rules.new_client_months)).is_none_or(|start| *first > start)
        });
        if is_new && !already_asked_about.contains(&(purchase.client, purchase.product)) {
            due.push(Due::FirstPurchase { client: purchase.client, product: purchase.product, purchase: i });
            asked_now.insert(purchase.client);
        }
    }
    for client in clients {
        let asked_within_a_year =
            client.last_invited.is_some_and(|last| (as_of - last).num_days() < i64::from(rules.annual_interval_days));
        if client.has_bought && !asked_within_a_year && !asked_now.contains(client.id) {
            due.push(Due::Annual { client: client.id });
        }
    }
    due
}

/// How an invitation reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Printed,
    Digital,
}

/// Printed for A+ and international clients, digital otherwise.
pub fn delivery(rules: &CadenceRules, abc: Option<AbcClass>, score: Option<f64>, international: bool) -> Delivery {
    let a_plus = abc == Some(AbcClass::A) && score.is_some_and(|s| s >= rules.a_plus_min_score);
    if a_plus || international { Delivery::Printed } else { Delivery::Digital }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn bought(id: &str, last_invited: Option<NaiveDate>) -> CadenceClient<'_> {
        CadenceClient { id, has_bought: true, last_invited }
    }

    #[test]
    fn new_clients_are_asked_about_each_product_they_start_buying() {
        let rules = CadenceRules::default();
        let (as_of, from) = (d(2026, 11, 26), d(2026, 10, 27));
        let purchases = [
            // NEW became a client on 2026-09-10: new until 2026-12-10 (P = 3 months).
            FirstPurchase { client: "NEW", product: "loan", date: d(2026, 9, 10), first_of_client: true },
            FirstPurchase { client: "NEW", product: "card", date: d(2026, 11, 2), first_of_client: false },
            // OLD's first purchase is before the range: not new.
            FirstPurchase { client: "OLD", product: "card", date: d(2026, 11, 3), first_of_client: false },
            // FRESH became a client inside the range.
            FirstPurchase { client: "FRESH", product: "loan", date: d(2026, 11, 20), first_of_client: true },
            FirstPurchase { client: "FRESH", product: "card", date: d(2026, 11, 20), first_of_client: true },
            // LATE: new on 2026-08-01, so 2026-11-01 is exactly P later and no longer new.
            FirstPurchase { client: "LATE", product: "loan", date: d(2026, 8, 1), first_of_client: true },
            FirstPurchase { client: "LATE", product: "card", date: d(2026, 11, 1), first_of_client: false },
        ];
        let clients = [
            bought("NEW", Some(d(2026, 9, 12))),
            bought("OLD", Some(d(2026, 3, 1))),
            bought("FRESH", None),
            bought("LATE", Some(d(2026, 8, 3))),
        ];
        let due = plan(&rules, as_of, from, &clients, &purchases, &HashSet::new());
        assert_eq!(
            due,
            [
                Due::FirstPurchase { client: "NEW", product: "card", purchase: 1 },
                Due::FirstPurchase { client: "FRESH", product: "loan", purchase: 3 },
                Due::FirstPurchase { client: "FRESH", product: "card", purchase: 4 },
            ]
        );
        // Asked before about FRESH's loan: only the card remains.
        let asked = HashSet::from([("FRESH", "loan")]);
        let due = plan(&rules, as_of, from, &clients, &purchases, &asked);
        assert!(!due.contains(&Due::FirstPurchase { client: "FRESH", product: "loan", purchase: 3 }));
        assert!(due.contains(&Due::FirstPurchase { client: "FRESH", product: "card", purchase: 4 }));
    }

    #[test]
    fn every_client_who_bought_is_asked_at_least_once_a_year() {
        let rules = CadenceRules::default();
        let as_of = d(2026, 11, 26);
        let clients = [
            bought("NEVER", None),
            // 2025-11-26 is 365 days before: due again.
            bought("YEAR", Some(d(2025, 11, 26))),
            bought("RECENT", Some(d(2025, 11, 27))),
            CadenceClient { id: "POTENTIAL", has_bought: false, last_invited: None },
        ];
        let due = plan(&rules, as_of, as_of, &clients, &[], &HashSet::new());
        assert_eq!(due, [Due::Annual { client: "NEVER" }, Due::Annual { client: "YEAR" }]);
    }

    #[test]
    fn a_plus_and_international_clients_get_printed_forms() {
        let rules = CadenceRules::default();
        assert_eq!(delivery(&rules, Some(AbcClass::A), Some(80.0), false), Delivery::Printed);
        assert_eq!(delivery(&rules, Some(AbcClass::A), Some(79.9), false), Delivery::Digital);
        assert_eq!(delivery(&rules, Some(AbcClass::B), Some(95.0), false), Delivery::Digital);
        assert_eq!(delivery(&rules, None, None, true), Delivery::Printed);
        assert_eq!(delivery(&rules, Some(AbcClass::A), None, false), Delivery::Digital);
    }

    proptest! {
        #[test]
        fn a_client_is_due_at_most_once_per_product_and_never_twice_a_year(
            days in proptest::collection::vec((0u8..4, 0u8..3, 0i64..200, any::<bool>()), 0..40),
            invited in proptest::collection::vec(proptest::option::of(0i64..800), 4),
        ) {
            let as_of = d(2026, 11, 26);
            let ids = ["a", "b", "c", "e"];
            let products = ["p", "q", "r"];
            let mut seen = HashSet::new();
            let purchases: Vec<FirstPurchase> = days
                .iter()
                .filter(|(c, p, _, _)| seen.insert((*c, *p)))
                .map(|&(c, p, back, first)| FirstPurchase {
                    client: ids[c as usize],
                    product: products[p as usize],
                    date: as_of - chrono::Duration::days(back),
                    first_of_client: first,
                })
                .collect();
            let clients: Vec<CadenceClient> = ids
                .iter()
                .zip(&invited)
                .map(|(id, back)| bought(id, back.map(|b| as_of - chrono::Duration::days(b))))
                .collect();
            let due = plan(&CadenceRules::default(), as_of, as_of - chrono::Duration::days(30), &clients, &purchases, &HashSet::new());
            let mut pairs = HashSet::new();
            let mut annual = HashSet::new();
            for item in &due {
                match item {
                    Due::FirstPurchase { client, product, purchase } => {
                        prop_assert!(pairs.insert((*client, *product)));
                        prop_assert!(purchases[*purchase].date >= as_of - chrono::Duration::days(30));
                        prop_assert!(!annual.contains(client));
                    }
                    Due::Annual { client } => {
                        prop_assert!(annual.insert(*client));
                        prop_assert!(!pairs.iter().any(|(c, _)| c == client));
                    }
                }
            }
        }
    }
}
