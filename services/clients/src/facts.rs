//! `GetClientFacts` assembled from the store's raw material: lifecycle
//! events and client counts per owner, sales per seller, per period. Pure.
use crate::explain;
use crate::store::lifecycle::PeriodCounts;
use crate::store::{ClassMoves, ClientPurchaseDays, ClientPurchases, SaleKind, SellerSales};
use branchscore_proto::clients::v1::{ClientFacts, SalesFact};
use branchscore_proto::common::v1::{Date, FactSource, Money};
use branchscore_scoring::abc::{self, ClassMove};
use branchscore_scoring::period_to_date::{self, ClientLifecycle, LifecycleCounts};
use branchscore_scoring::periods::{self, Period};
use branchscore_scoring::window::{LifecyclePeriods, WindowError};
use std::collections::HashMap;

/// Counts of one (period, branch, employee).
#[derive(Debug, Default, Clone)]
struct Tally {
    counts: LifecycleCounts,
    class_upgrades: i64,
    class_downgrades: i64,
    sales: [(i64, i64); 3],
    /// The records counted; `None` when sources are not asked for.
    sources: Option<Vec<FactSource>>,
}

impl Tally {
    fn new(include_sources: bool) -> Self {
        Tally { sources: include_sources.then(Vec::new), ..Tally::default() }
    }

    /// Notes that `fact` counts the record `kind` `id`, if sources are listed.
    fn source(&mut self, fact: &str, kind: &str, id: &str) {
        if let Some(sources) = &mut self.sources {
            sources.push(FactSource { fact: fact.to_owned(), kind: kind.to_owned(), id: id.to_owned() });
        }
    }
}

/// Sources in one order whatever order the store returned rows in.
fn sorted(mut sources: Vec<FactSource>) -> Vec<FactSource> {
    sources.sort_unstable_by(|a, b| (&a.fact, &a.kind, &a.id).cmp(&(&b.fact, &b.kind, &b.id)));
    sources
}

/// Tallies per branch and employee, one per period, created when first counted.
type Tallies = HashMap<String, HashMap<String, Vec<Option<Tally>>>>;

/// The tallies of one branch and employee, one slot per period; ids are
/// copied only the first time they are seen.
fn row_of<'t>(tallies: &'t mut Tallies, periods: usize, branch: &str, employee: &str) -> &'t mut Vec<Option<Tally>> {
    if !tallies.contains_key(branch) {
        tallies.insert(branch.to_owned(), HashMap::new());
    }
    let employees = tallies.get_mut(branch).expect("inserted above");
    if !employees.contains_key(employee) {
        employees.insert(employee.to_owned(), vec![None; periods]);
    }
    employees.get_mut(employee).expect("inserted above")
}

/// Builds the facts of some periods from clients and sales fed one at a
/// time, so that a million clients can be counted as their rows arrive.
pub struct FactsBuilder<'p> {
    periods: &'p [Period],
    lifecycle_months: u32,
    /// The lifecycle periods as of the day before the first period, and as of each period's end.
    day_before: Option<LifecyclePeriods>,
    ends: Vec<LifecyclePeriods>,
    tallies: Tallies,
    include_sources: bool,
}

impl<'p> FactsBuilder<'p> {
    /// With `include_sources`, each row lists the clients and documents it
    /// counts (sales must then carry their document ids).
    pub fn new(periods: &'p [Period], lifecycle_months: u32, include_sources: bool) -> Result<Self, WindowError> {
        let day_before = periods
            .first()
            .and_then(|first| first.start.pred_opt())
            .map(|day| LifecyclePeriods::as_of(day, lifecycle_months))
            .transpose()?;
        let ends =
            periods.iter().map(|p| LifecyclePeriods::as_of(p.end, lifecycle_months)).collect::<Result<Vec<_>, _>>()?;
        Ok(FactsBuilder { periods, lifecycle_months, day_before, ends, tallies: Tallies::new(), include_sources })
    }

    /// Counts a client's lifecycle events, stage and purchases in every
    /// period, for its owner; its purchase days must be sorted.
    pub fn add_client(&mut self, client: ClientPurchases<'_>) {
        let lifecycle = ClientLifecycle {
            known_since: client.known_since,
            purchase_days: client.purchase_days,
            period_months: self.lifecycle_months,
        };
        let (periods, ends, include_sources) = (self.periods, &self.ends, self.include_sources);
        let row = row_of(&mut self.tallies, periods.len(), client.branch_id, client.owner_employee_id);
        let mut before = self.day_before.as_ref();
        for (i, (period, end)) in periods.iter().zip(ends).enumerate() {
            let counts = period_to_date::counts_between(&lifecycle, before, period.start, end);
            before = Some(end);
            if counts.clients == 0 {
                continue;
            }
            let tally = row[i].get_or_insert_with(|| Tally::new(include_sources));
            tally.counts += counts;
            for (counted, fact) in [
                (counts.acquired, "new_clients"),
                (counts.lost, "lost_clients"),
                (counts.restored, "restored_clients"),
                (counts.initial_stage, "clients_at_initial_stage"),
                (counts.potential, "potential_clients"),
                (counts.buying, "buying_clients"),
                (counts.repeat_buyers, "repeat_buyers"),
            ] {
                if counted != 0 {
                    tally.source(fact, "client", client.id);
                }
            }
        }
    }

    /// Counts the clients of one owner in one period, added up by the store.
    pub fn add_counts(&mut self, counted: PeriodCounts) {
        let include_sources = self.include_sources;
        let row = row_of(&mut self.tallies, self.periods.len(), &counted.branch_id, &counted.employee_id);
        if let Some(slot) = row.get_mut(counted.period) {
            slot.get_or_insert_with(|| Tally::new(include_sources)).counts += counted.counts;
        }
    }

    /// Counts ABC class moves of one owner's clients from one class to another.
    pub fn add_class_moves(&mut self, moves: &ClassMoves) {
        let Some(i) = periods::index_of(self.periods, moves.period_start) else { return };
        let class_move =
            abc::class_move(explain::abc_of_stored(moves.previous_abc_class), explain::abc_of_stored(moves.abc_class));
        let include_sources = self.include_sources;
        let row = row_of(&mut self.tallies, self.periods.len(), &moves.branch_id, &moves.employee_id);
        let tally = row[i].get_or_insert_with(|| Tally::new(include_sources));
        let fact = match class_move {
            ClassMove::Up => {
                tally.class_upgrades += moves.clients;
                "class_upgrades"
            }
            ClassMove::Down => {
                tally.class_downgrades += moves.clients;
                "class_downgrades"
            }
            ClassMove::None => return,
        };
        for id in &moves.moves {
            tally.source(fact, "class_move", id);
        }
    }

    /// Counts a period's (or a day's) sales of one kind for their seller.
    pub fn add_sale(&mut self, sale: &SellerSales) {
        let Some(i) = periods::index_of(self.periods, sale.day) else { return };
        let include_sources = self.include_sources;
        let row = row_of(&mut self.tallies, self.periods.len(), &sale.branch_id, &sale.employee_id);
        let tally = row[i].get_or_insert_with(|| Tally::new(include_sources));
        let (slot, fact) = match sale.kind {
            SaleKind::Primary => (0, "primary_sales"),
            SaleKind::Repeat => (1, "repeat_sales"),
            SaleKind::NewDirection => (2, "new_direction_sales"),
        };
        tally.sales[slot].0 += sale.documents;
        tally.sales[slot].1 += sale.amount_minor;
        for document in &sale.document_ids {
            tally.source(fact, "document", document);
        }
    }

    /// One row per (period, branch, employee) with anything to report, in that order.
    pub fn finish(self, currency: &str) -> Vec<ClientFacts> {
        let fact = |(documents, amount): (i64, i64)| {
            Some(SalesFact { documents, amount: Some(Money { minor_units: amount, currency: currency.to_owned() }) })
        };
        let mut counted: Vec<(usize, String, String, Tally)> = Vec::new();
        for (branch, employees) in self.tallies {
            for (employee, row) in employees {
                for (i, tally) in row.into_iter().enumerate() {
                    if let Some(tally) = tally {
                        counted.push((i, branch.clone(), employee.clone(), tally));
                    }
                }
            }
        }
        counted.sort_unstable_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
        let periods = self.periods;
        counted
            .into_iter()
            .map(|(i, branch_id, employee_id, t)| ClientFacts {
                period_start: Some(Date::from(periods[i].start)),
                period_end: Some(Date::from(periods[i].end)),
                branch_id,
                employee_id,
                new_clients: t.counts.acquired,
                lost_clients: t.counts.lost,
                restored_clients: t.counts.restored,
                clients_at_initial_stage: t.counts.initial_stage,
                potential_clients: t.counts.potential,
                buying_clients: t.counts.buying,
                repeat_buyers: t.counts.repeat_buyers,
                class_upgrades: t.class_upgrades,
                class_downgrades: t.class_downgrades,
                primary_sales: fact(t.sales[0]),
                repeat_sales: fact(t.sales[1]),
                new_direction_sales: fact(t.sales[2]),
                sources: t.sources.map(sorted).unwrap_or_default(),
            })
            .collect()
    }
}

/// The facts of `clients` and `sales` at once (see [`FactsBuilder`]).
pub fn assemble(
    periods: &[Period],
    lifecycle_months: u32,
    clients: &[ClientPurchaseDays],
    sales: &[SellerSales],
    currency: &str,
    include_sources: bool,
) -> Result<Vec<ClientFacts>, WindowError> {
    let mut builder = FactsBuilder::new(periods, lifecycle_months, include_sources)?;
    for client in clients {
        builder.add_client(client.borrowed());
    }
    for sale in sales {
        builder.add_sale(sale);
    }
    Ok(builder.finish(currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_scoring::periods::Granularity;
    use chrono::NaiveDate;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn client(id: &str, owner: &str, known_since: NaiveDate, days: &[NaiveDate]) -> ClientPurchaseDays {
        ClientPurchaseDays {
            id: id.into(),
            branch_id: "WAW".into(),
            owner_employee_id: owner.into(),
            known_since,
            purchase_days: days.to_vec(),
        }
    }

    #[test]
    fn events_and_counts_per_month_hand_computed() {
        // Q3 2026 by month, lifecycle period 3 months.
        let periods = periods::split(d(2026, 7, 1), d(2026, 9, 30), Granularity::Month);
        let clients = [
            // Prospect since 2026-01, first purchase 2026-08-10: new in August, initial stage from July to September.
            client("C1", "E1", d(2026, 1, 5), &[d(2026, 8, 10)]),
            // Bought 2026-03-20 only: lost once (D - 3 months) passes it, on 2026-06-20 -> already lost before July;
            // bought again 2026-09-02 -> restored in September.
            client("C2", "E1", d(2025, 1, 1), &[d(2026, 3, 20), d(2026, 9, 2)]),
            // Regular until its last purchase 2026-05-15 drops out of C on 2026-08-15: lost in August.
            client("C3", "E2", d(2025, 1, 1), &[d(2026, 2, 1), d(2026, 5, 15)]),
            // Never bought: potential all quarter.
            client("C4", "E2", d(2025, 6, 1), &[]),
            // First purchase 2026-07-05 and back on 2026-07-20: a repeat buyer in its very first month.
            client("C5", "E2", d(2025, 6, 1), &[d(2026, 7, 5), d(2026, 7, 20)]),
        ];
        let sales = [
            SellerSales {
                day: d(2026, 8, 10),
                branch_id: "WAW".into(),
                employee_id: "E1".into(),
                kind: SaleKind::Primary,
                documents: 1,
                amount_minor: 500,
                document_ids: Vec::new(),
            },
            SellerSales {
                day: d(2026, 9, 2),
                branch_id: "WAW".into(),
                employee_id: "E1".into(),
                kind: SaleKind::Repeat,
                documents: 1,
                amount_minor: 300,
                document_ids: Vec::new(),
            },
            SellerSales {
                day: d(2026, 9, 3),
                branch_id: "WAW".into(),
                employee_id: "E1".into(),
                kind: SaleKind::NewDirection,
                documents: 2,
                amount_minor: 700,
                document_ids: Vec::new(),
            },
            SellerSales {
                day: d(2026, 10, 1),
                branch_id: "WAW".into(),
                employee_id: "E1".into(),
                kind: SaleKind::Repeat,
                documents: 9,
                amount_minor: 999,
                document_ids: Vec::new(),
            },
        ];
        let rows = assemble(&periods, 3, &clients, &sales, "PLN", false).expect("assemble");
        let row = |month: u32, employee: &str| {
            rows.iter()
                .find(|r| {
                    r.period_start.and_then(|p| p.to_naive()).map(|p| p.month()) == Some(month)
                        && r.employee_id == employee
                })
                .cloned()
                .expect("row")
        };
        use chrono::Datelike;
        let (jul1, aug1, sep1) = (row(7, "E1"), row(8, "E1"), row(9, "E1"));
        assert_eq!((jul1.new_clients, jul1.lost_clients, jul1.clients_at_initial_stage), (0, 0, 1));
        assert_eq!((aug1.new_clients, aug1.clients_at_initial_stage), (1, 1));
        assert_eq!(
            aug1.primary_sales.as_ref().map(|s| (s.documents, s.amount.as_ref().map(|m| m.minor_units))),
            Some((1, Some(500)))
        );
        // The August newcomer is still new on 30 September (first purchase within the last 3 months).
        assert_eq!((sep1.restored_clients, sep1.clients_at_initial_stage), (1, 1));
        assert_eq!(sep1.repeat_sales.as_ref().map(|s| s.documents), Some(1));
        assert_eq!(sep1.new_direction_sales.as_ref().and_then(|s| s.amount.as_ref()).map(|m| m.minor_units), Some(700));
        let (jul2, aug2, sep2) = (row(7, "E2"), row(8, "E2"), row(9, "E2"));
        assert_eq!((jul2.lost_clients, aug2.lost_clients, sep2.lost_clients), (0, 1, 0));
        assert_eq!((jul2.potential_clients, sep2.potential_clients), (1, 1));
        // Buyers: C1 in August (its first purchase: no repeat), C2 back in
        // September (first bought in March), C5 twice in July.
        let buyers = |row: &ClientFacts| (row.buying_clients, row.repeat_buyers);
        assert_eq!((buyers(&jul1), buyers(&aug1), buyers(&sep1)), ((0, 0), (1, 0), (1, 1)));
        assert_eq!((buyers(&jul2), buyers(&aug2), buyers(&sep2)), ((1, 1), (0, 0), (0, 0)));
        // The October sale lies outside the range.
        assert_eq!(rows.len(), 6);
    }
}
