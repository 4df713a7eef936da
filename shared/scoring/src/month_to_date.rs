//! One client's share of the lifecycle counts a monthly period report
//! shows per owner, kept as day deltas so that a store can add them up per
//! (day, branch, owner) instead of replaying every client on every report.
//!
//! For a day d in month M = [s, e] the month-to-date counts of a client are
//! ([`month_to_date`]):
//! - its lifecycle event between the status as of s - 1 and as of d
//!   ([`lifecycle::transition`]): acquired, lost or restored;
//! - whether it bought in [s, d], and whether that makes it a repeat buyer
//!   (its first purchase in the range is not its first ever, or it bought
//!   on two days of the range);
//! - the census as of d: known (known since, or bought by, d), at the
//!   initial stage (potential or new), potential.
//!
//! [`day_deltas`] gives, per day, the change of those counts from the day
//! before, with the event and buying part starting from zero on the first
//! of each month. So for d in M: the sum of the deltas of the days of
//! [s, d] has M's month-to-date events and buying, and the sum of the
//! deltas of every day up to d has the census as of d.
use crate::lifecycle::{self, LifecycleEvent, LifecycleFacts, LifecycleStatus};
use crate::window::{LifecyclePeriods, WindowError};
use chrono::{Datelike, Days, Months, NaiveDate};
use std::ops::{Add, AddAssign, Sub};

/// Lifecycle counts of some clients over a month-to-date range (events,
/// buyers) and as of its last day (census); or a change of those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifecycleCounts {
    pub acquired: i64,
    pub lost: i64,
    pub restored: i64,
    pub buying: i64,
    pub repeat_buyers: i64,
    pub clients: i64,
    pub initial_stage: i64,
    pub potential: i64,
}

impl LifecycleCounts {
    /// The census part alone (events and buyers zero).
    pub fn census(self) -> Self {
        LifecycleCounts {
            clients: self.clients,
            initial_stage: self.initial_stage,
            potential: self.potential,
            ..Self::default()
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Every count multiplied by `factor` (-1 takes a client's counts back out).
    pub fn times(self, factor: i64) -> Self {
        LifecycleCounts {
            acquired: self.acquired * factor,
            lost: self.lost * factor,
            restored: self.restored * factor,
            buying: self.buying * factor,
            repeat_buyers: self.repeat_buyers * factor,
            clients: self.clients * factor,
            initial_stage: self.initial_stage * factor,
            potential: self.potential * factor,
        }
    }
}

impl Add for LifecycleCounts {
    type Output = Self;
    fn add(mut self, other: Self) -> Self {
        self += other;
        self
    }
}

impl AddAssign for LifecycleCounts {
    fn add_assign(&mut self, other: Self) {
        self.acquired += other.acquired;
        self.lost += other.lost;
        self.restored += other.restored;
        self.buying += other.buying;
        self.repeat_buyers += other.repeat_buyers;
        self.clients += other.clients;
        self.initial_stage += other.initial_stage;
        self.potential += other.potential;
    }
}

impl Sub for LifecycleCounts {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        self + other.times(-1)
    }
}

/// What the counts of one client are judged on.
#[derive(Debug, Clone, Copy)]
pub struct ClientLifecycle<'a> {
    pub known_since: NaiveDate,
    /// Distinct purchase days, sorted.
    pub purchase_days: &'a [NaiveDate],
    /// The lifecycle period P, in months.
    pub period_months: u32,
}

impl ClientLifecycle<'_> {
    /// The first day the client counts: known, or buying before it was registered.
    pub fn known_from(&self) -> NaiveDate {
        self.purchase_days.first().map_or(self.known_since, |first| (*first).min(self.known_since))
    }

    /// Status as of the day `periods` are taken at (potential before the first purchase).
    pub fn status(&self, periods: &LifecyclePeriods) -> LifecycleStatus {
        lifecycle::status(periods, &LifecycleFacts::from_sorted_dates(periods, self.purchase_days))
    }

    /// The purchase days within `[from, to]`.
    fn bought(&self, from: NaiveDate, to: NaiveDate) -> &[NaiveDate] {
        let days = self.purchase_days;
        &days[days.partition_point(|d| *d < from)..days.partition_point(|d| *d <= to)]
    }
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The client's counts over a range: its events and purchases from the day
/// after `before`'s as-of date (`from`) to `after`'s, the census as of
/// `after`'s. `before` is `None` when `from` is the first day there is.
pub fn counts_between(
    client: &ClientLifecycle<'_>,
    before: Option<&LifecyclePeriods>,
    from: NaiveDate,
    after: &LifecyclePeriods,
) -> LifecycleCounts {
    let to = after.as_of_date();
    if client.known_from() > to {
        return LifecycleCounts::default();
    }
    let (before, after) = (before.map_or(LifecycleStatus::Potential, |b| client.status(b)), client.status(after));
    let event = lifecycle::transition(before, after).event;
    let bought = client.bought(from, to);
    let repeat = bought.first().is_some_and(|first| Some(first) != client.purchase_days.first() || bought.len() > 1);
    LifecycleCounts {
        acquired: i64::from(event == LifecycleEvent::Acquired),
        lost: i64::from(event == LifecycleEvent::Lost),
        restored: i64::from(event == LifecycleEvent::Restored),
        buying: i64::from(!bought.is_empty()),
        repeat_buyers: i64::from(repeat),
        clients: 1,
        initial_stage: i64::from(matches!(after, LifecycleStatus::Potential | LifecycleStatus::New)),
        potential: i64::from(after == LifecycleStatus::Potential),
    }
}

/// The client's counts over the month-to-date ending on `day`.
pub fn month_to_date(client: &ClientLifecycle<'_>, day: NaiveDate) -> Result<LifecycleCounts, WindowError> {
    let from = month_start(day);
    let before = from.pred_opt().map(|d| LifecyclePeriods::as_of(d, client.period_months)).transpose()?;
    let after = LifecyclePeriods::as_of(day, client.period_months)?;
    Ok(counts_between(client, before.as_ref(), from, &after))
}

/// The first day whose lifecycle boundary `months` back reaches `day`:
/// from then on `day` lies at or before `as_of - months`. Month ends are
/// clamped (31 May - 3 months = 28 February), so the day is searched near
/// `day + months` rather than computed.
fn boundary_reaches(day: NaiveDate, months: u32) -> Option<NaiveDate> {
    let back = |d: NaiveDate| d.checked_sub_months(Months::new(months));
    let mut candidate = day.checked_add_months(Months::new(months))?.checked_sub_days(Days::new(4))?;
    while back(candidate)? < day {
        candidate = candidate.succ_opt()?;
    }
    Some(candidate)
}

/// The days on which the client's month-to-date counts may change other
/// than on the first of a month: when it becomes known, buys, or a purchase
/// leaves the current or the previous lifecycle period. Sorted, distinct.
fn change_days(client: &ClientLifecycle<'_>) -> Vec<NaiveDate> {
    let p = client.period_months;
    let mut days = vec![client.known_from()];
    for &day in client.purchase_days {
        days.push(day);
        days.extend(boundary_reaches(day, p));
        days.extend(boundary_reaches(day, p * 2));
    }
    days.sort_unstable();
    days.dedup();
    days
}

/// The client's counts on `day` less those on the day before: the whole
/// census change, and the month-to-date events and buying (from zero on
/// the first of a month).
fn delta_on(client: &ClientLifecycle<'_>, day: NaiveDate) -> Result<LifecycleCounts, WindowError> {
    let now = month_to_date(client, day)?;
    let Some(yesterday) = day.pred_opt() else { return Ok(now) };
    let before = month_to_date(client, yesterday)?;
    let before = if day.day() == 1 { before.census() } else { before };
    Ok(now - before)
}

/// The client's non-zero day deltas (see the module), by day.
pub fn day_deltas(client: &ClientLifecycle<'_>) -> Result<Vec<(NaiveDate, LifecycleCounts)>, WindowError> {
    let mut deltas = Vec::new();
    for day in change_days(client) {
        let delta = delta_on(client, day)?;
        if !delta.is_zero() {
            deltas.push((day, delta));
        }
    }
    Ok(deltas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn sum_over(deltas: &[(NaiveDate, LifecycleCounts)], keep: impl Fn(NaiveDate) -> bool) -> LifecycleCounts {
        let mut total = LifecycleCounts::default();
        for (_, delta) in deltas.iter().filter(|(day, _)| keep(*day)) {
            total += *delta;
        }
        total
    }

    /// What a store adds up for a month-to-date ending on `day`: the
    /// month's events and buying, the census of every day so far.
    fn from_deltas(deltas: &[(NaiveDate, LifecycleCounts)], day: NaiveDate) -> LifecycleCounts {
        let start = month_start(day);
        let month = sum_over(deltas, |d| d >= start && d <= day);
        let mut counts = month - month.census();
        counts += sum_over(deltas, |d| d <= day).census();
        counts
    }

    #[test]
    fn a_new_client_lost_and_restored_hand_computed() {
        // P = 3. Known since 2026-01-10; bought 2026-02-05 and 2026-09-15.
        let days = [d(2026, 2, 5), d(2026, 9, 15)];
        let client = ClientLifecycle { known_since: d(2026, 1, 10), purchase_days: &days, period_months: 3 };
        let deltas = day_deltas(&client).expect("deltas");
        let on = |day| deltas.iter().find(|(d, _)| *d == day).map(|(_, c)| *c).unwrap_or_default();
        // Known on 10 January as a potential client.
        assert_eq!(
            on(d(2026, 1, 10)),
            LifecycleCounts { clients: 1, initial_stage: 1, potential: 1, ..Default::default() }
        );
        // Won on 5 February: acquired and buying this month, no longer potential (still at the initial stage).
        assert_eq!(on(d(2026, 2, 5)), LifecycleCounts { acquired: 1, buying: 1, potential: -1, ..Default::default() });
        // 5 May - 3 months = 5 February: the purchase leaves C, the client is lost (and leaves the initial stage).
        assert_eq!(on(d(2026, 5, 5)), LifecycleCounts { lost: 1, initial_stage: -1, ..Default::default() });
        // Back on 15 September: restored, buying; no V purchase -> restored, a repeat buyer (not its first purchase).
        assert_eq!(
            on(d(2026, 9, 15)),
            LifecycleCounts { restored: 1, buying: 1, repeat_buyers: 1, ..Default::default() }
        );
        // 15 December: the September purchase leaves C -> lost again.
        assert_eq!(on(d(2026, 12, 15)).lost, 1);
        // Month totals: February acquired 1, May lost 1, no event in June.
        assert_eq!(from_deltas(&deltas, d(2026, 2, 28)).acquired, 1);
        assert_eq!(from_deltas(&deltas, d(2026, 6, 30)), LifecycleCounts { clients: 1, ..Default::default() });
        // Census on 31 March: known, new (first purchase within 3 months): initial stage, not potential.
        assert_eq!(
            from_deltas(&deltas, d(2026, 3, 31)),
            LifecycleCounts { clients: 1, initial_stage: 1, ..Default::default() }
        );
    }

    #[test]
    fn boundaries_are_found_across_clamped_month_ends() {
        // 30 November + 3 months clamps to 28 February, whose boundary is 28 November: the purchase
        // leaves C on 1 March (1 March - 3 months = 1 December).
        assert_eq!(boundary_reaches(d(2025, 11, 30), 3), Some(d(2026, 3, 1)));
        assert_eq!(boundary_reaches(d(2026, 2, 28), 3), Some(d(2026, 5, 28)));
        assert_eq!(boundary_reaches(d(2026, 1, 31), 1), Some(d(2026, 3, 1)));
    }

    #[test]
    fn a_client_not_yet_known_counts_nothing() {
        let client = ClientLifecycle { known_since: d(2026, 5, 1), purchase_days: &[], period_months: 3 };
        assert!(month_to_date(&client, d(2026, 4, 30)).expect("counts").is_zero());
        assert_eq!(day_deltas(&client).expect("deltas").len(), 1);
    }

    fn client_strategy() -> impl Strategy<Value = (i64, Vec<i64>, u32)> {
        (0i64..900, proptest::collection::vec(0i64..900, 0..8), 1u32..7)
    }

    proptest! {
        /// Adding up the deltas as a store does gives the counts judged
        /// directly, on every day of four years.
        #[test]
        fn deltas_add_up_to_the_direct_counts((known, bought, months) in client_strategy()) {
            let base = d(2024, 1, 1);
            let at = |offset: i64| base + chrono::Duration::days(offset);
            let mut days: Vec<NaiveDate> = bought.into_iter().map(at).collect();
            days.sort_unstable();
            days.dedup();
            let client = ClientLifecycle { known_since: at(known), purchase_days: &days, period_months: months };
            let deltas = day_deltas(&client).expect("deltas");
            let (mut month, mut census) = (LifecycleCounts::default(), LifecycleCounts::default());
            for offset in 0..1461 {
                let day = at(offset);
                if day.day() == 1 {
                    month = LifecycleCounts::default();
                }
                if let Some((_, delta)) = deltas.iter().find(|(d, _)| *d == day) {
                    month += *delta;
                    census += delta.census();
                }
                let mut added = month - month.census();
                added += census;
                prop_assert_eq!(added, month_to_date(&client, day).expect("direct"), "on {}", day);
            }
        }
    }
}
