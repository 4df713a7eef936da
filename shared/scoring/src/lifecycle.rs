//! Lifecycle status of a client as of D (seed 003 definitions), and the
//! change between two dates that reports count (new, lost, restored clients
//! per employee and branch per period).
//!
//! With C = (D - P, D] and V = (D - 2P, D - P] (see
//! [`LifecyclePeriods`]):
//!
//! | status | rule |
//! |---|---|
//! | potential | no transaction ever (up to D) |
//! | new | first-ever transaction in C |
//! | regular | transactions in C and in V (first one before C) |
//! | restored | transactions in C, none in V, some before V |
//! | lost | transactions before C, none in C |
//!
//! Whether a return (negative amount) counts as a transaction is the
//! caller's choice when building [`LifecycleFacts`]; the seeds speak of
//! "mutual settlements", which includes returns.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::window::LifecyclePeriods;

/// Lifecycle status as of D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStatus {
    /// Known, never bought; no ABC/XYZ.
    Potential,
    /// First purchase in the current period; ABC but no XYZ yet.
    New,
    /// Bought in the current and the previous period.
    Regular,
    /// Came back in the current period after a gap over the previous one.
    Restored,
    /// Nothing in the current period.
    Lost,
}

/// Per-client facts the status is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifecycleFacts {
    /// First-ever transaction date; `None` = never.
    pub first_purchase: Option<NaiveDate>,
    /// Any transaction in C = (D - P, D].
    pub purchased_in_current: bool,
    /// Any transaction in V = (D - 2P, D - P].
    pub purchased_in_previous: bool,
}

impl LifecycleFacts {
    /// Facts from a client's transaction dates (any order).
    pub fn from_dates(periods: &LifecyclePeriods, dates: impl IntoIterator<Item = NaiveDate>) -> Self {
        let mut facts = Self::default();
        for date in dates {
            if date > periods.as_of_date() {
                continue;
            }
            facts.first_purchase = Some(facts.first_purchase.map_or(date, |f| f.min(date)));
            facts.purchased_in_current |= periods.in_current(date);
            facts.purchased_in_previous |= periods.in_previous(date);
        }
        facts
    }

    /// The same facts from dates sorted ascending, found by binary search:
    /// a report judges a million clients at every period end.
    pub fn from_sorted_dates(periods: &LifecyclePeriods, sorted: &[NaiveDate]) -> Self {
        let Some(&first) = sorted.first().filter(|&&f| f <= periods.as_of_date()) else {
            return Self::default();
        };
        let any_in = |after: NaiveDate, through: NaiveDate| {
            sorted.get(sorted.partition_point(|d| *d <= after)).is_some_and(|d| *d <= through)
        };
        Self {
            first_purchase: Some(first),
            purchased_in_current: any_in(periods.current_after(), periods.as_of_date()),
            purchased_in_previous: any_in(periods.previous_after(), periods.current_after()),
        }
    }
}

/// Status of one client. The first purchase itself counts as a purchase in
/// its period, so slightly inconsistent facts still give a sensible status.
pub fn status(periods: &LifecyclePeriods, facts: &LifecycleFacts) -> LifecycleStatus {
    let Some(first) = facts.first_purchase.filter(|&f| f <= periods.as_of_date()) else {
        return LifecycleStatus::Potential;
    };
    if periods.in_current(first) {
        return LifecycleStatus::New;
    }
    let in_current = facts.purchased_in_current;
    let in_previous = facts.purchased_in_previous || periods.in_previous(first);
    match (in_current, in_previous) {
        (false, _) => LifecycleStatus::Lost,
        (true, true) => LifecycleStatus::Regular,
        // First purchase before C and not in V, so it is before V.
        (true, false) => LifecycleStatus::Restored,
    }
}

/// Status of every client, aligned with `facts`.
pub fn statuses(periods: &LifecyclePeriods, facts: &[LifecycleFacts]) -> Vec<LifecycleStatus> {
    facts.iter().map(|f| status(periods, f)).collect()
}

/// What happened to a client between an earlier and a later date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// Nothing to count.
    None,
    /// Became a client (was potential; counted as a new client).
    Acquired,
    /// Became lost.
    Lost,
    /// Came back: was lost and is active again, or became restored.
    Restored,
}

/// A status change between two dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// Status at the earlier date.
    pub from: LifecycleStatus,
    /// Status at the later date.
    pub to: LifecycleStatus,
    /// The event reports count.
    pub event: LifecycleEvent,
}

/// The change from the status at an earlier date to the status at a later
/// one. Rules, first match wins:
/// 1. same status: none;
/// 2. potential -> any other: acquired (even if the client already became
///    regular or lost by the later date: it was won in between);
/// 3. any -> lost: lost;
/// 4. lost -> new/regular/restored, or any -> restored: restored;
/// 5. otherwise (new -> regular, regular -> new, back to potential, which
///    cannot happen going forward): none.
pub fn transition(from: LifecycleStatus, to: LifecycleStatus) -> StatusChange {
    use LifecycleStatus as S;
    let event = match (from, to) {
        _ if from == to => LifecycleEvent::None,
        (S::Potential, _) => LifecycleEvent::Acquired,
        (_, S::Lost) => LifecycleEvent::Lost,
        (S::Lost, S::New | S::Regular) | (_, S::Restored) => LifecycleEvent::Restored,
        _ => LifecycleEvent::None,
    };
    StatusChange { from, to, event }
}

/// Counts of events, e.g. per employee and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventCounts {
    /// New clients won.
    pub acquired: u64,
    /// Clients lost.
    pub lost: u64,
    /// Clients restored.
    pub restored: u64,
}

impl EventCounts {
    /// Adds one change.
    pub fn add(&mut self, change: &StatusChange) {
        match change.event {
            LifecycleEvent::None => {}
            LifecycleEvent::Acquired => self.acquired += 1,
            LifecycleEvent::Lost => self.lost += 1,
            LifecycleEvent::Restored => self.restored += 1,
        }
    }
}

impl<'a> FromIterator<&'a StatusChange> for EventCounts {
    fn from_iter<I: IntoIterator<Item = &'a StatusChange>>(iter: I) -> Self {
        let mut counts = Self::default();
        for change in iter {
            counts.add(change);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleStatus::*;
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// D = 2026-11-23, P = 3: C = (2026-08-23, 2026-11-23],
    /// V = (2026-05-23, 2026-08-23].
    fn periods() -> LifecyclePeriods {
        LifecyclePeriods::as_of(d(2026, 11, 23), 3).unwrap()
    }

    fn of(dates: &[NaiveDate]) -> LifecycleStatus {
        let p = periods();
        status(&p, &LifecycleFacts::from_dates(&p, dates.iter().copied()))
    }

    #[test]
    fn each_status_from_dates() {
        assert_eq!(of(&[]), Potential);
        // Only purchase after D: still potential as of D.
        assert_eq!(of(&[d(2026, 11, 24)]), Potential);
        // First purchase 2026-08-24 is in C (day after D - P).
        assert_eq!(of(&[d(2026, 8, 24)]), New);
        assert_eq!(of(&[d(2026, 11, 23), d(2026, 11, 1)]), New);
        // 2026-08-23 = D - P belongs to V; plus a purchase in C -> regular.
        assert_eq!(of(&[d(2026, 8, 23), d(2026, 9, 1)]), Regular);
        // First purchase in V, again in C -> regular.
        assert_eq!(of(&[d(2026, 7, 1), d(2026, 10, 1)]), Regular);
        // Before V (2026-05-23 = D - 2P), nothing in V, again in C -> restored.
        assert_eq!(of(&[d(2026, 5, 23), d(2026, 10, 1)]), Restored);
        // Bought in V only -> lost (nothing in C).
        assert_eq!(of(&[d(2026, 6, 1)]), Lost);
        // Long ago only -> lost.
        assert_eq!(of(&[d(2020, 1, 1)]), Lost);
    }

    #[test]
    fn inconsistent_facts_use_first_purchase_as_a_purchase() {
        let p = periods();
        // First purchase in V but the flag says no purchase in V.
        let facts = LifecycleFacts {
            first_purchase: Some(d(2026, 7, 1)),
            purchased_in_current: true,
            purchased_in_previous: false,
        };
        assert_eq!(status(&p, &facts), Regular);
        assert_eq!(statuses(&p, &[facts, LifecycleFacts::default()]), [Regular, Potential]);
    }

    #[test]
    fn transitions() {
        let e = |a, b| transition(a, b).event;
        assert_eq!(e(Potential, New), LifecycleEvent::Acquired);
        assert_eq!(e(Potential, Lost), LifecycleEvent::Acquired);
        assert_eq!(e(Regular, Lost), LifecycleEvent::Lost);
        assert_eq!(e(New, Lost), LifecycleEvent::Lost);
        assert_eq!(e(Lost, Restored), LifecycleEvent::Restored);
        assert_eq!(e(Lost, Regular), LifecycleEvent::Restored);
        assert_eq!(e(Regular, Restored), LifecycleEvent::Restored);
        assert_eq!(e(New, Regular), LifecycleEvent::None);
        assert_eq!(e(Lost, Lost), LifecycleEvent::None);
        assert_eq!(e(Regular, Potential), LifecycleEvent::None);
    }

    #[test]
    fn quarter_over_quarter_counts() {
        // Status at 2026-08-23 and 2026-11-23 (P = 3 months apart).
        let earlier = LifecyclePeriods::as_of(d(2026, 8, 23), 3).unwrap();
        let later = periods();
        let clients: [&[NaiveDate]; 4] = [
            &[d(2026, 9, 10)],                 // potential -> new: acquired
            &[d(2026, 4, 1), d(2026, 7, 1)],   // regular -> lost
            &[d(2025, 12, 1), d(2026, 10, 1)], // lost -> restored
            &[d(2026, 7, 1), d(2026, 10, 1)],  // new -> regular: nothing
        ];
        let changes: Vec<StatusChange> = clients
            .iter()
            .map(|dates| {
                let s = |p: &LifecyclePeriods| status(p, &LifecycleFacts::from_dates(p, dates.iter().copied()));
                transition(s(&earlier), s(&later))
            })
            .collect();
        let pairs: Vec<_> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(pairs, [(Potential, New), (Regular, Lost), (Lost, Restored), (New, Regular)]);
        let counts: EventCounts = changes.iter().collect();
        assert_eq!(counts, EventCounts { acquired: 1, lost: 1, restored: 1 });
    }

    proptest::proptest! {
        /// The binary search finds the same facts as the scan, as of any day
        /// and with any lifecycle period.
        #[test]
        fn sorted_search_agrees_with_the_scan(
            offsets in proptest::collection::vec(0u32..1500, 0..20),
            as_of_offset in 0u32..1600,
            months in 1u32..=6,
        ) {
            let base = d(2023, 1, 1);
            let mut dates: Vec<NaiveDate> = offsets.iter().map(|o| base + chrono::Days::new(u64::from(*o))).collect();
            dates.sort();
            dates.dedup();
            let periods = LifecyclePeriods::as_of(base + chrono::Days::new(u64::from(as_of_offset)), months).unwrap();
            proptest::prop_assert_eq!(
                LifecycleFacts::from_sorted_dates(&periods, &dates),
                LifecycleFacts::from_dates(&periods, dates.iter().copied())
            );
        }
    }
}
