//! Complaints (domain.md section 3, ISO 9001 style): which answers open one,
//! the workflow a complaint moves through, escalation when a state's
//! deadline passes, and the age buckets of open complaints.
//!
//! **Triggers.** Any 1-5 answer (an item or CSAT) of 2 or lower is explicit
//! dissatisfaction; a 3 is hidden dissatisfaction; an NPS answer of 0-6 (a
//! detractor) opens one too unless configured off. A response opens at most
//! one complaint, marked with the worst trigger (explicit, then hidden, then
//! detractor) and listing every low answer.
//!
//! **Workflow.** registered -> investigating -> cause identified -> cause
//! removed -> process fixed -> closed, one step at a time, never back, never
//! out of closed. Entering a state needs: investigating an owner; cause
//! identified a root-cause category and the cause; cause removed and process
//! fixed a note of what was done; closed a note and the client told.
//!
//! **Escalation.** Each state has a deadline from the moment it is entered.
//! Once it passes the complaint is escalated (level 1), and again each time
//! another deadline's length passes in the same state, up to level 3.
use crate::nps::NpsGroup;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Answers at or below this are explicit dissatisfaction.
pub const EXPLICIT_AT_MOST: u8 = 2;
/// An answer of exactly this is hidden dissatisfaction.
pub const HIDDEN_AT: u8 = 3;
/// Escalation stops at this level.
pub const MAX_ESCALATION_LEVEL: u8 = 3;

/// What opened a complaint, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintSource {
    Explicit,
    Hidden,
    NpsDetractor,
    Direct,
}

/// One answer that contributed to a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowAnswer<'a> {
    Item { code: &'a str, score: u8 },
    Csat(u8),
    Nps(u8),
}

/// A response's answers as the triggers read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TriggerInput<'a> {
    /// (item code, 1-5 score).
    pub items: &'a [(&'a str, u8)],
    pub csat: Option<u8>,
    pub nps: Option<u8>,
}

/// A complaint the answers open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger<'a> {
    pub source: ComplaintSource,
    pub answers: Vec<LowAnswer<'a>>,
}

impl Trigger<'_> {
    /// The low answers in words, e.g. "delivery_speed 2/5; NPS 4/10".
    pub fn describe(&self) -> String {
        self.answers
            .iter()
            .map(|answer| match answer {
                LowAnswer::Item { code, score } => format!("{code} {score}/5"),
                LowAnswer::Csat(score) => format!("overall satisfaction {score}/5"),
                LowAnswer::Nps(score) => format!("NPS {score}/10"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The complaint `input` opens, if any. `nps_detractors_open` is the
/// configurable part of the rule (default on).
pub fn trigger<'a>(input: &TriggerInput<'a>, nps_detractors_open: bool) -> Option<Trigger<'a>> {
    let mut answers = Vec::new();
    let mut worst: Option<ComplaintSource> = None;
    let mut note = |source: ComplaintSource, answer: LowAnswer<'a>| {
        answers.push(answer);
        worst = Some(worst.map_or(source, |w| w.min(source)));
    };
    let scale_source = |score: u8| match score {
        s if s <= EXPLICIT_AT_MOST => Some(ComplaintSource::Explicit),
        HIDDEN_AT => Some(ComplaintSource::Hidden),
        _ => None,
    };
    for &(code, score) in input.items {
        if let Some(source) = scale_source(score) {
            note(source, LowAnswer::Item { code, score });
        }
    }
    if let Some(score) = input.csat
        && let Some(source) = scale_source(score)
    {
        note(source, LowAnswer::Csat(score));
    }
    if let Some(score) = input.nps
        && nps_detractors_open
        && NpsGroup::of(score) == Some(NpsGroup::Detractor)
    {
        note(ComplaintSource::NpsDetractor, LowAnswer::Nps(score));
    }
    worst.map(|source| Trigger { source, answers })
}

/// The states of the workflow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintState {
    Registered,
    Investigating,
    CauseIdentified,
    CauseRemoved,
    ProcessFixed,
    Closed,
}

impl ComplaintState {
    pub const ALL: [ComplaintState; 6] = [
        ComplaintState::Registered,
        ComplaintState::Investigating,
        ComplaintState::CauseIdentified,
        ComplaintState::CauseRemoved,
        ComplaintState::ProcessFixed,
        ComplaintState::Closed,
    ];

    /// The only state this one may move to.
    pub fn next(self) -> Option<ComplaintState> {
        match self {
            ComplaintState::Registered => Some(ComplaintState::Investigating),
            ComplaintState::Investigating => Some(ComplaintState::CauseIdentified),
            ComplaintState::CauseIdentified => Some(ComplaintState::CauseRemoved),
            ComplaintState::CauseRemoved => Some(ComplaintState::ProcessFixed),
            ComplaintState::ProcessFixed => Some(ComplaintState::Closed),
            ComplaintState::Closed => None,
        }
    }

    pub fn is_open(self) -> bool {
        self != ComplaintState::Closed
    }

    pub fn name(self) -> &'static str {
        match self {
            ComplaintState::Registered => "registered",
            ComplaintState::Investigating => "investigating",
            ComplaintState::CauseIdentified => "cause identified",
            ComplaintState::CauseRemoved => "cause removed",
            ComplaintState::ProcessFixed => "process fixed",
            ComplaintState::Closed => "closed",
        }
    }
}

/// What a complaint will hold once the transition is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransitionFacts {
    pub has_owner: bool,
    pub has_root_cause: bool,
    pub has_cause: bool,
    pub has_note: bool,
    pub client_informed: bool,
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionRefused {
    #[error("a closed complaint cannot change state")]
    Closed,
    #[error("a complaint {} can only move to {}", from.name(), allowed.name())]
    NotNext { from: ComplaintState, allowed: ComplaintState },
    #[error("to enter {}, {}", to.name(), missing.join(", "))]
    Missing { to: ComplaintState, missing: Vec<&'static str> },
}

/// Checks moving from `from` to `to` with `facts`.
pub fn check_transition(
    from: ComplaintState,
    to: ComplaintState,
    facts: &TransitionFacts,
) -> Result<(), TransitionRefused> {
    let allowed = from.next().ok_or(TransitionRefused::Closed)?;
    if to != allowed {
        return Err(TransitionRefused::NotNext { from, allowed });
    }
    let mut missing = Vec::new();
    match to {
        ComplaintState::Investigating if !facts.has_owner => missing.push("assign an owner"),
        ComplaintState::CauseIdentified => {
            if !facts.has_root_cause {
                missing.push("give the root-cause category");
            }
            if !facts.has_cause {
                missing.push("describe the cause");
            }
        }
        ComplaintState::CauseRemoved | ComplaintState::ProcessFixed if !facts.has_note => {
            missing.push("note what was done")
        }
        ComplaintState::Closed => {
            if !facts.has_note {
                missing.push("note the outcome");
            }
            if !facts.client_informed {
                missing.push("tell the client (client_informed)");
            }
        }
        _ => {}
    }
    if missing.is_empty() { Ok(()) } else { Err(TransitionRefused::Missing { to, missing }) }
}

/// Whether a complaint in a state entered with deadline `due_at` and a
/// deadline length of `step`, already escalated `level` times, is due
/// another escalation at `now`.
pub fn escalation_due(now: DateTime<Utc>, due_at: DateTime<Utc>, step: Duration, level: u8) -> bool {
    if level >= MAX_ESCALATION_LEVEL {
        return false;
    }
    // Level 0 escalates at the deadline, level 1 one step later, and so on.
    match step.checked_mul(i32::from(level)).and_then(|offset| due_at.checked_add_signed(offset)) {
        Some(at) => now >= at,
        None => false,
    }
}

/// Age buckets of open complaints, in days since registration.
pub const AGE_BUCKETS: [(i64, Option<i64>); 5] =
    [(0, Some(2)), (3, Some(7)), (8, Some(14)), (15, Some(30)), (31, None)];

/// The index into [`AGE_BUCKETS`] for an age in whole days.
pub fn age_bucket(age_days: i64) -> usize {
    AGE_BUCKETS.iter().rposition(|(min, _)| age_days >= *min).unwrap_or(0)
}

/// "0-2 days", "31+ days".
pub fn age_bucket_label(index: usize) -> String {
    match AGE_BUCKETS.get(index) {
        Some((min, Some(max))) => format!("{min}-{max} days"),
        Some((min, None)) => format!("{min}+ days"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items<'a>(scores: &'a [(&'a str, u8)]) -> TriggerInput<'a> {
        TriggerInput { items: scores, csat: None, nps: None }
    }

    #[test]
    fn a_two_or_lower_is_explicit_a_three_hidden_and_four_or_more_nothing() {
        let explicit = trigger(&items(&[("look", 5), ("delivery", 2), ("payment", 3)]), true).expect("opens");
        assert_eq!(explicit.source, ComplaintSource::Explicit);
        assert_eq!(
            explicit.answers,
            [LowAnswer::Item { code: "delivery", score: 2 }, LowAnswer::Item { code: "payment", score: 3 }]
        );
        assert_eq!(explicit.describe(), "delivery 2/5; payment 3/5");
        assert_eq!(trigger(&items(&[("look", 1)]), true).map(|t| t.source), Some(ComplaintSource::Explicit));
        let hidden = trigger(&items(&[("look", 4), ("payment", 3)]), true).expect("opens");
        assert_eq!(hidden.source, ComplaintSource::Hidden);
        assert_eq!(trigger(&items(&[("look", 4), ("payment", 5)]), true), None);
    }

    #[test]
    fn csat_counts_like_an_item_and_nps_detractors_are_configurable() {
        let csat = TriggerInput { items: &[], csat: Some(2), nps: Some(9) };
        assert_eq!(trigger(&csat, true).map(|t| t.source), Some(ComplaintSource::Explicit));
        let detractor = TriggerInput { items: &[("look", 4)], csat: Some(4), nps: Some(6) };
        let opened = trigger(&detractor, true).expect("detractor opens");
        assert_eq!(opened.source, ComplaintSource::NpsDetractor);
        assert_eq!(opened.describe(), "NPS 6/10");
        assert_eq!(trigger(&detractor, false), None);
        let passive = TriggerInput { items: &[], csat: None, nps: Some(7) };
        assert_eq!(trigger(&passive, true), None);
        // The worst trigger names the complaint; every low answer is listed.
        let both = TriggerInput { items: &[("look", 3)], csat: None, nps: Some(2) };
        let opened = trigger(&both, true).expect("opens");
        assert_eq!(opened.source, ComplaintSource::Hidden);
        assert_eq!(opened.answers.len(), 2);
    }

    #[test]
    fn the_workflow_moves_one_step_forward_with_what_each_state_needs() {
        use ComplaintState::*;
        let all = TransitionFacts {
            has_owner: true,
            has_root_cause: true,
            has_cause: true,
            has_note: true,
            client_informed: true,
        };
        for pair in ComplaintState::ALL.windows(2) {
            assert_eq!(check_transition(pair[0], pair[1], &all), Ok(()));
        }
        assert_eq!(
            check_transition(Registered, CauseIdentified, &all),
            Err(TransitionRefused::NotNext { from: Registered, allowed: Investigating })
        );
        assert_eq!(
            check_transition(CauseRemoved, Investigating, &all),
            Err(TransitionRefused::NotNext { from: CauseRemoved, allowed: ProcessFixed })
        );
        assert_eq!(check_transition(Closed, Registered, &all), Err(TransitionRefused::Closed));
        assert!(check_transition(Registered, Registered, &all).is_err());
        let none = TransitionFacts::default();
        let missing = |to| match check_transition(ComplaintState::ALL[to as usize - 1], to, &none) {
            Err(TransitionRefused::Missing { missing, .. }) => missing,
            other => panic!("{other:?}"),
        };
        assert_eq!(missing(Investigating), ["assign an owner"]);
        assert_eq!(missing(CauseIdentified), ["give the root-cause category", "describe the cause"]);
        assert_eq!(missing(CauseRemoved), ["note what was done"]);
        assert_eq!(missing(ProcessFixed), ["note what was done"]);
        assert_eq!(missing(Closed), ["note the outcome", "tell the client (client_informed)"]);
        let refused = check_transition(ProcessFixed, Closed, &TransitionFacts { has_note: true, ..none });
        assert_eq!(
            refused.expect_err("client not told").to_string(),
            "to enter closed, tell the client (client_informed)"
        );
    }

    #[test]
    fn escalation_starts_at_the_deadline_repeats_each_step_and_stops_at_three() {
        let due = DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z").expect("time").with_timezone(&Utc);
        let day = Duration::days(1);
        assert!(!escalation_due(due - Duration::seconds(1), due, day, 0));
        assert!(escalation_due(due, due, day, 0));
        assert!(!escalation_due(due + Duration::hours(23), due, day, 1));
        assert!(escalation_due(due + day, due, day, 1));
        assert!(escalation_due(due + Duration::days(2), due, day, 2));
        assert!(!escalation_due(due + Duration::days(30), due, day, 3));
    }

    #[test]
    fn ages_fall_into_their_buckets() {
        assert_eq!(age_bucket(0), 0);
        assert_eq!(age_bucket(2), 0);
        assert_eq!(age_bucket(3), 1);
        assert_eq!(age_bucket(14), 2);
        assert_eq!(age_bucket(30), 3);
        assert_eq!(age_bucket(31), 4);
        assert_eq!(age_bucket(400), 4);
        assert_eq!(age_bucket_label(0), "0-2 days");
        assert_eq!(age_bucket_label(4), "31+ days");
    }

    fn state() -> impl Strategy<Value = ComplaintState> {
        (0usize..6).prop_map(|i| ComplaintState::ALL[i])
    }

    proptest! {
        #[test]
        fn only_the_next_state_is_ever_allowed(from in state(), to in state()) {
            let all = TransitionFacts {
                has_owner: true, has_root_cause: true, has_cause: true, has_note: true, client_informed: true,
            };
            prop_assert_eq!(check_transition(from, to, &all).is_ok(), from.next() == Some(to));
        }

        #[test]
        fn answers_of_four_and_up_never_open_a_complaint(
            scores in proptest::collection::vec(4u8..=5, 0..8),
            csat in proptest::option::of(4u8..=5),
            nps in proptest::option::of(7u8..=10),
        ) {
            let named: Vec<(&str, u8)> = scores.iter().map(|&s| ("item", s)).collect();
            prop_assert_eq!(trigger(&TriggerInput { items: &named, csat, nps }, true), None);
        }

        #[test]
        fn any_answer_of_two_or_less_makes_it_explicit(
            scores in proptest::collection::vec(1u8..=5, 1..8),
            low in 1u8..=2,
            nps in proptest::option::of(0u8..=10),
        ) {
            let mut named: Vec<(&str, u8)> = scores.iter().map(|&s| ("item", s)).collect();
            named.push(("low", low));
            let opened = trigger(&TriggerInput { items: &named, csat: None, nps }, true);
            prop_assert_eq!(opened.map(|t| t.source), Some(ComplaintSource::Explicit));
        }
    }
}
