//! The sales pipeline's rules (domain.md section 2, seed 004): the
//! qualification gate, the sales cycle it is judged against, the weighted
//! forecast, the funnel and the plan calculator.
use crate::Money;

/// The four facts a gated stage (50% in Schiffman's pipeline) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Qualification {
    pub right_person: bool,
    pub right_plan: bool,
    pub right_budget: bool,
    pub right_timeline: bool,
}

/// The deal's timing, in days counted from its creation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Days since the deal was opened.
    pub age_days: i64,
    /// Days from opening to the expected close.
    pub expected_close_days: i64,
    /// Mean days from opening to winning of recently won deals; `None`
    /// without history (then only the declared fact counts).
    pub average_cycle_days: Option<f64>,
    /// How many average cycles a deal may take (default 4).
    pub cycle_multiple: f64,
}

/// What keeps a deal out of a gated stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    RightPerson,
    RightPlan,
    RightBudget,
    RightTimeline,
    /// Older than the cycle allows.
    DealTooOld {
        age_days: i64,
        limit_days: f64,
    },
    /// Expected to close later than the cycle allows.
    CloseTooFar {
        close_days: i64,
        limit_days: f64,
    },
}

impl Missing {
    pub fn describe(&self) -> String {
        match self {
            Missing::RightPerson => "right person (decision maker or influencer) not confirmed".into(),
            Missing::RightPlan => "no plan tied to the client's goals shown".into(),
            Missing::RightBudget => "budget not confirmed".into(),
            Missing::RightTimeline => "timeline not agreed".into(),
            Missing::DealTooOld { age_days, limit_days } => {
                format!("the deal is {age_days} days old, more than {limit_days:.0} (the sales cycle allows)")
            }
            Missing::CloseTooFar { close_days, limit_days } => {
                format!("expected close is {close_days} days after opening, more than {limit_days:.0}")
            }
        }
    }
}

/// Every reason the deal may not pass the gate (empty = it may).
pub fn gate(qualification: &Qualification, timing: &Timing) -> Vec<Missing> {
    let mut missing = Vec::new();
    for (held, fact) in [
        (qualification.right_person, Missing::RightPerson),
        (qualification.right_plan, Missing::RightPlan),
        (qualification.right_budget, Missing::RightBudget),
        (qualification.right_timeline, Missing::RightTimeline),
    ] {
        if !held {
            missing.push(fact);
        }
    }
    if let Some(cycle) = timing.average_cycle_days {
        let limit_days = cycle * timing.cycle_multiple;
        if timing.age_days as f64 > limit_days {
            missing.push(Missing::DealTooOld { age_days: timing.age_days, limit_days });
        }
        if timing.expected_close_days as f64 > limit_days {
            missing.push(Missing::CloseTooFar { close_days: timing.expected_close_days, limit_days });
        }
    }
    missing
}

/// Deals the branch must have won recently before its own cycle counts.
pub const MIN_BRANCH_WINS: usize = 20;

/// The average sales cycle: the branch's when it won at least
/// [`MIN_BRANCH_WINS`] deals, else the network's; `None` without wins.
pub fn average_cycle(branch_cycles: &[i64], network_cycles: &[i64]) -> Option<f64> {
    let mean = |days: &[i64]| (!days.is_empty()).then(|| days.iter().sum::<i64>() as f64 / days.len() as f64);
    if branch_cycles.len() >= MIN_BRANCH_WINS { mean(branch_cycles) } else { mean(network_cycles) }
}

/// Amount x probability, rounded half away from zero to a minor unit.
pub fn weighted(amount: Money, probability_percent: u8) -> Money {
    let product = i128::from(amount) * i128::from(probability_percent);
    let rounded = if product >= 0 { (product + 50) / 100 } else { (product - 50) / 100 };
    Money::try_from(rounded).unwrap_or(if product >= 0 { Money::MAX } else { Money::MIN })
}

/// One deal's way through the open stages (indices into the pipeline).
#[derive(Debug, Clone, PartialEq)]
pub struct DealPath {
    /// The furthest open stage reached.
    pub reached: usize,
    pub won: bool,
    /// The stage it was lost at.
    pub lost_at: Option<usize>,
    /// (stage, days spent there) for every stage the deal has left.
    pub stays: Vec<(usize, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStage {
    pub reached: u64,
    /// reached(next) / reached(this); for the last open stage, won / reached.
    pub conversion_to_next: f64,
    pub average_days: f64,
    pub lost_here: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub stages: Vec<FunnelStage>,
    pub won: u64,
    pub lost: u64,
    /// The stage with the lowest conversion among those reached.
    pub bottleneck: Option<usize>,
}

/// The funnel of `deals` over a pipeline of `stages` open stages.
pub fn funnel(stages: usize, deals: &[DealPath]) -> Funnel {
    let mut reached = vec![0u64; stages];
    let mut lost_here = vec![0u64; stages];
    let mut days = vec![(0.0, 0u64); stages];
    let (mut won, mut lost) = (0, 0);
    for deal in deals {
        for count in reached.iter_mut().take(deal.reached.min(stages.saturating_sub(1)) + 1) {
            *count += 1;
        }
        won += u64::from(deal.won);
        if let Some(stage) = deal.lost_at.filter(|s| *s < stages) {
            lost += 1;
            lost_here[stage] += 1;
        }
        for &(stage, stay) in &deal.stays {
            if let Some(slot) = days.get_mut(stage) {
                slot.0 += stay;
                slot.1 += 1;
            }
        }
    }
    let stages: Vec<FunnelStage> = (0..stages)
        .map(|i| {
            let next = if i + 1 < stages { reached[i + 1] } else { won };
            FunnelStage {
                reached: reached[i],
                conversion_to_next: if reached[i] == 0 { 0.0 } else { next as f64 / reached[i] as f64 },
                average_days: if days[i].1 == 0 { 0.0 } else { days[i].0 / days[i].1 as f64 },
                lost_here: lost_here[i],
            }
        })
        .collect();
    let bottleneck = stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.reached > 0)
        .min_by(|a, b| a.1.conversion_to_next.total_cmp(&b.1.conversion_to_next))
        .map(|(i, _)| i);
    Funnel { stages, won, lost, bottleneck }
}

/// What a revenue target takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub deals_to_win: u64,
    pub first_meetings: u64,
    pub leads: u64,
}

/// From a target and the measured average won amount, win rate (won /
/// reached the first stage) and lead conversion (deals / leads), rounding up
/// at each step; `None` when a measure is zero (nothing to extrapolate from).
pub fn plan(target: Money, average_won: Money, win_rate: f64, lead_conversion: f64) -> Option<Plan> {
    if target <= 0 || average_won <= 0 || win_rate <= 0.0 || lead_conversion <= 0.0 {
        return None;
    }
    let deals_to_win = (target as f64 / average_won as f64).ceil() as u64;
    let first_meetings = (deals_to_win as f64 / win_rate).ceil() as u64;
    let leads = (first_meetings as f64 / lead_conversion).ceil() as u64;
    Some(Plan { deals_to_win, first_meetings, leads })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn timing(age_days: i64, expected_close_days: i64, cycle: Option<f64>) -> Timing {
        Timing { age_days, expected_close_days, average_cycle_days: cycle, cycle_multiple: 4.0 }
    }

    #[test]
    fn the_gate_names_every_missing_fact_and_the_seed_timeline() {
        let all = Qualification { right_person: true, right_plan: true, right_budget: true, right_timeline: true };
        assert!(gate(&all, &timing(10, 30, Some(15.0))).is_empty());
        // The seed: a 15-day cycle, a deal over 2 months old may not sit at 50% (4 x 15 = 60 days).
        assert_eq!(gate(&all, &timing(61, 30, Some(15.0))), [Missing::DealTooOld { age_days: 61, limit_days: 60.0 }]);
        assert_eq!(gate(&all, &timing(60, 60, Some(15.0))), []);
        assert_eq!(gate(&all, &timing(5, 75, Some(15.0))), [Missing::CloseTooFar { close_days: 75, limit_days: 60.0 }]);
        // Without history only the declared facts count.
        assert!(gate(&all, &timing(500, 500, None)).is_empty());
        let none = Qualification::default();
        assert_eq!(
            gate(&none, &timing(1, 1, None)),
            [Missing::RightPerson, Missing::RightPlan, Missing::RightBudget, Missing::RightTimeline]
        );
    }

    #[test]
    fn the_cycle_is_the_branch_s_only_with_enough_wins() {
        let network = [10, 20, 30];
        assert_eq!(average_cycle(&[100; 19], &network), Some(20.0));
        assert_eq!(average_cycle(&[100; 20], &network), Some(100.0));
        assert_eq!(average_cycle(&[], &[]), None);
    }

    #[test]
    fn weighted_forecast_rounds_to_minor_units() {
        assert_eq!(weighted(10_000, 25), 2_500);
        assert_eq!(weighted(333, 50), 167); // 166.5 rounds away from zero
        assert_eq!(weighted(-333, 50), -167);
        assert_eq!(weighted(Money::MAX, 100), Money::MAX);
    }

    #[test]
    fn funnel_hand_computed() {
        // Four stages (25/50/70/100 with the last being "won" in the pipeline;
        // here 3 open stages). 4 deals: won through all; lost at stage 1;
        // stuck at stage 0; lost at stage 0.
        let deals = [
            DealPath { reached: 2, won: true, lost_at: None, stays: vec![(0, 2.0), (1, 4.0), (2, 6.0)] },
            DealPath { reached: 1, won: false, lost_at: Some(1), stays: vec![(0, 4.0), (1, 10.0)] },
            DealPath { reached: 0, won: false, lost_at: None, stays: vec![] },
            DealPath { reached: 0, won: false, lost_at: Some(0), stays: vec![(0, 3.0)] },
        ];
        let f = funnel(3, &deals);
        assert_eq!(f.stages.iter().map(|s| s.reached).collect::<Vec<_>>(), [4, 2, 1]);
        assert_eq!(f.stages[0].conversion_to_next, 0.5);
        assert_eq!(f.stages[1].conversion_to_next, 0.5);
        assert_eq!(f.stages[2].conversion_to_next, 1.0);
        assert_eq!(f.stages[0].average_days, 3.0);
        assert_eq!((f.stages[0].lost_here, f.stages[1].lost_here), (1, 1));
        assert_eq!((f.won, f.lost), (1, 2));
        // Ties go to the earlier stage.
        assert_eq!(f.bottleneck, Some(0));
    }

    #[test]
    fn plan_rounds_up_at_each_step() {
        // 1 000 000 / 30 000 = 33.3 -> 34 deals; / 0.25 = 136 meetings; / 0.4 = 340 leads.
        assert_eq!(
            plan(1_000_000, 30_000, 0.25, 0.4),
            Some(Plan { deals_to_win: 34, first_meetings: 136, leads: 340 })
        );
        assert_eq!(plan(1_000_000, 30_000, 0.0, 0.4), None);
    }

    proptest! {
        #[test]
        fn funnel_counts_are_monotone(paths in proptest::collection::vec((0usize..4, any::<bool>()), 0..50)) {
            let deals: Vec<DealPath> = paths
                .iter()
                .map(|&(reached, won)| DealPath { reached, won: won && reached == 3, lost_at: None, stays: vec![] })
                .collect();
            let f = funnel(4, &deals);
            for pair in f.stages.windows(2) {
                prop_assert!(pair[0].reached >= pair[1].reached);
            }
            for stage in &f.stages {
                prop_assert!((0.0..=1.0).contains(&stage.conversion_to_next));
            }
        }

        #[test]
        fn weighted_never_exceeds_the_amount(amount in 0i64..1_000_000_000_000, p in 0u8..=100) {
            let w = weighted(amount, p);
            prop_assert!(w >= 0 && w <= amount);
        }
    }
}
