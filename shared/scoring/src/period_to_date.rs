//! One client's share of the lifecycle counts a period report shows per
//! owner, kept as day deltas so that a store can add them up per (day,
//! branch, owner) instead of replaying every client on every report.
//!
//! A [`Frame`] is a kind of calendar period: a day, an ISO week (from
//! Monday), a month. For a day d in the frame's period F = [s, e] the
//! period-to-date counts of a client are ([`to_date`]):
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
//! day of each of the frame's periods. So for d in F: the sum of the deltas
//! of the days of [s, d] has F's events and buying to date, and the sum of
//! the deltas of every day up to d has the census as of d (the same in
//! every frame).
use crate::lifecycle::{self, LifecycleEvent, LifecycleFacts, LifecycleStatus};
use crate::periods::Period;
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

/// A kind of calendar period the counts are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frame {
    Day,
    /// ISO weeks, from Monday.
    Week,
    Month,
}

impl Frame {
    pub const ALL: [Frame; 3] = [Frame::Day, Frame::Week, Frame::Month];

    /// The first day of the frame's period holding `day`.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Frame::Day => day,
            Frame::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Frame::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The last day of the frame's period starting on `start`.
    pub fn end_from(self, start: NaiveDate) -> NaiveDate {
        let next = match self {
            Frame::Day => start.succ_opt(),
            Frame::Week => start.checked_add_days(Days::new(7)),
            Frame::Month => start.checked_add_months(Months::new(1)),
        };
        next.and_then(|next| next.pred_opt()).unwrap_or(start)
    }

    /// The frame whose periods `periods` are: each starting where one of
    /// its periods starts, each whole but the last, which may end early.
    /// Months first (fewest rows to read), then weeks, then days.
    pub fn of_periods(periods: &[Period]) -> Option<Frame> {
        let (last, whole) = periods.split_last()?;
        [Frame::Month, Frame::Week, Frame::Day].into_iter().find(|frame| {
            let starts = |p: &Period| frame.start_of(p.start) == p.start;
            whole.iter().all(|p| starts(p) && p.end == frame.end_from(p.start))
                && starts(last)
                && last.end <= frame.end_from(last.start)
        })
    }
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

/// The client's counts over its frame's period to date, ending on `day`.
pub fn to_date(client: &ClientLifecycle<'_>, frame: Frame, day: NaiveDate) -> Result<LifecycleCounts, WindowError> {
    let from = frame.start_of(day);
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

/// The days on which the client's counts to date may change other than on
/// the first day of a period: when it becomes known, buys, or a purchase
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
/// census change, and the events and buying to date (from zero on the
/// first day of a period).
fn delta_on(client: &ClientLifecycle<'_>, frame: Frame, day: NaiveDate) -> Result<LifecycleCounts, WindowError> {
    let now = to_date(client, frame, day)?;
    let Some(yesterday) = day.pred_opt() else { return Ok(now) };
    let before = to_date(client, frame, yesterday)?;
    let before = if frame.start_of(day) == day { before.census() } else { before };
    Ok(now - before)
}

/// The client's non-zero day deltas in `frame` (see the module), by day.
pub fn day_deltas(
    client: &ClientLifecycle<'_>,
    frame: Frame,
) -> Result<Vec<(NaiveDate, LifecycleCounts)>, WindowError> {
    let mut deltas = Vec::new();
    for day in change_days(client) {
        let delta = delta_on(client, frame, day)?;
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

    /// What a store adds up for a month to date ending on `day`: the
    /// month's events and buying, the census of every day so far.
    fn from_deltas(deltas: &[(NaiveDate, LifecycleCounts)], day: NaiveDate) -> LifecycleCounts {
        let start = Frame::Month.start_of(day);
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
        let deltas = day_deltas(&client, Frame::Month).expect("deltas");
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
        for frame in Frame::ALL {
            assert!(to_date(&client, frame, d(2026, 4, 30)).expect("counts").is_zero());
            assert_eq!(day_deltas(&client, frame).expect("deltas").len(), 1);
        }
    }

    #[test]
    fn the_frame_of_some_periods() {
        use crate::periods::{Granularity, split};
        // A year by month up to the 23rd: months, the last cut short.
        assert_eq!(Frame::of_periods(&split(d(2025, 12, 1), d(2026, 11, 23), Granularity::Month)), Some(Frame::Month));
        // From Thursday 15 January by month: the first period starts no month nor week, and is not one day.
        assert_eq!(Frame::of_periods(&split(d(2026, 1, 15), d(2026, 3, 3), Granularity::Month)), None);
        // Weeks from Monday 2 February 2026; from a Thursday, none.
        assert_eq!(Frame::of_periods(&split(d(2026, 2, 2), d(2026, 3, 3), Granularity::Week)), Some(Frame::Week));
        assert_eq!(Frame::of_periods(&split(d(2026, 2, 5), d(2026, 3, 3), Granularity::Week)), None);
        assert_eq!(Frame::of_periods(&split(d(2026, 2, 5), d(2026, 3, 3), Granularity::Day)), Some(Frame::Day));
        // The whole range as one period: a month to date, a week, one day; a quarter has no frame.
        assert_eq!(Frame::of_periods(&split(d(2026, 3, 1), d(2026, 3, 20), Granularity::Whole)), Some(Frame::Month));
        assert_eq!(Frame::of_periods(&split(d(2026, 2, 2), d(2026, 2, 8), Granularity::Whole)), Some(Frame::Week));
        assert_eq!(Frame::of_periods(&split(d(2026, 2, 5), d(2026, 2, 5), Granularity::Whole)), Some(Frame::Day));
        assert_eq!(Frame::of_periods(&split(d(2026, 7, 1), d(2026, 9, 30), Granularity::Whole)), None);
        assert_eq!(Frame::of_periods(&[]), None);
    }

    #[test]
    fn a_day_frame_holds_each_days_own_counts() {
        // Won on Tuesday 3 February 2026, P = 3 months.
        let days = [d(2026, 2, 3)];
        let client = ClientLifecycle { known_since: d(2026, 1, 10), purchase_days: &days, period_months: 3 };
        let counted = to_date(&client, Frame::Day, d(2026, 2, 3)).expect("counts");
        assert_eq!((counted.acquired, counted.buying, counted.initial_stage, counted.potential), (1, 1, 1, 0));
        assert_eq!(to_date(&client, Frame::Day, d(2026, 2, 4)).expect("counts").acquired, 0);
        // The week of Monday 2 February to date, on Sunday 8 February: acquired that week.
        assert_eq!(Frame::Week.start_of(d(2026, 2, 8)), d(2026, 2, 2));
        assert_eq!(to_date(&client, Frame::Week, d(2026, 2, 8)).expect("counts").acquired, 1);
    }

    fn client_strategy() -> impl Strategy<Value = (i64, Vec<i64>, u32, usize)> {
        (0i64..900, proptest::collection::vec(0i64..900, 0..8), 1u32..7, 0usize..3)
    }

    proptest! {
        /// Adding up the deltas as a store does gives the counts judged
        /// directly, on every day of four years, in every frame.
        #[test]
        fn deltas_add_up_to_the_direct_counts((known, bought, months, frame) in client_strategy()) {
            let frame = Frame::ALL[frame];
            let base = d(2024, 1, 1);
            let at = |offset: i64| base + chrono::Duration::days(offset);
            let mut days: Vec<NaiveDate> = bought.into_iter().map(at).collect();
            days.sort_unstable();
            days.dedup();
            let client = ClientLifecycle { known_since: at(known), purchase_days: &days, period_months: months };
            let deltas = day_deltas(&client, frame).expect("deltas");
            let (mut period, mut census) = (LifecycleCounts::default(), LifecycleCounts::default());
            for offset in 0..1461 {
                let day = at(offset);
                if frame.start_of(day) == day {
                    period = LifecycleCounts::default();
                }
                if let Some((_, delta)) = deltas.iter().find(|(d, _)| *d == day) {
                    period += *delta;
                    census += delta.census();
                }
                let mut added = period - period.census();
                added += census;
                prop_assert_eq!(added, to_date(&client, frame, day).expect("direct"), "on {}", day);
            }
        }
    }
}
