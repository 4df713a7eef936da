//! NPS, CSAT and a client's satisfaction (domain.md section 3).
//!
//! * NPS answers are 0-10: 9-10 promoters, 7-8 passives, 0-6 detractors;
//!   NPS = % promoters - % detractors, from -100 to 100.
//! * CSAT answers are 1-5: CSAT % is the share of 4 and 5 answers; the mean
//!   is reported beside it.
//! * A response's satisfaction on 0-100 is its CSAT answer if it has one,
//!   else the mean of its item answers (both on the 1-5 scale, mapped by
//!   [`satisfaction_from_csat`]), else its NPS answer
//!   ([`satisfaction_from_nps`]). A client's satisfaction is the mean over its
//!   responses: the score's satisfaction component.
use crate::score::{satisfaction_from_csat, satisfaction_from_nps};
use serde::Serialize;

/// Highest NPS answer.
pub const NPS_MAX: u8 = 10;
/// The 1-5 scale of items and CSAT.
pub const SCALE_MIN: u8 = 1;
pub const SCALE_MAX: u8 = 5;

/// Where an NPS answer puts the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NpsGroup {
    Detractor,
    Passive,
    Promoter,
}

impl NpsGroup {
    /// The group of a 0-10 answer; `None` above 10.
    pub fn of(answer: u8) -> Option<NpsGroup> {
        match answer {
            0..=6 => Some(NpsGroup::Detractor),
            7..=8 => Some(NpsGroup::Passive),
            9..=NPS_MAX => Some(NpsGroup::Promoter),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NpsGroup::Detractor => "detractor",
            NpsGroup::Passive => "passive",
            NpsGroup::Promoter => "promoter",
        }
    }
}

/// NPS answers counted by group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NpsTally {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
}

impl NpsTally {
    /// Counts one answer; answers above 10 are ignored.
    pub fn add(&mut self, answer: u8) {
        match NpsGroup::of(answer) {
            Some(NpsGroup::Promoter) => self.promoters += 1,
            Some(NpsGroup::Passive) => self.passives += 1,
            Some(NpsGroup::Detractor) => self.detractors += 1,
            None => {}
        }
    }

    pub fn merge(&mut self, other: &NpsTally) {
        self.promoters += other.promoters;
        self.passives += other.passives;
        self.detractors += other.detractors;
    }

    pub fn answers(&self) -> u64 {
        self.promoters + self.passives + self.detractors
    }

    /// % promoters - % detractors; `None` without answers.
    pub fn score(&self) -> Option<f64> {
        let n = self.answers();
        (n > 0).then(|| (self.promoters as f64 - self.detractors as f64) / n as f64 * 100.0)
    }
}

/// Answers on the 1-5 scale (CSAT, or survey items).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleTally {
    pub answers: u64,
    /// Answers of 4 or 5.
    pub satisfied: u64,
    pub sum: u64,
}

impl ScaleTally {
    /// Counts one answer; answers outside 1-5 are ignored.
    pub fn add(&mut self, answer: u8) {
        if !(SCALE_MIN..=SCALE_MAX).contains(&answer) {
            return;
        }
        self.answers += 1;
        self.sum += u64::from(answer);
        if answer >= 4 {
            self.satisfied += 1;
        }
    }

    pub fn merge(&mut self, other: &ScaleTally) {
        self.answers += other.answers;
        self.satisfied += other.satisfied;
        self.sum += other.sum;
    }

    /// Share of 4-5 answers, 0-100; `None` without answers.
    pub fn satisfied_percent(&self) -> Option<f64> {
        (self.answers > 0).then(|| self.satisfied as f64 / self.answers as f64 * 100.0)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.answers > 0).then(|| self.sum as f64 / self.answers as f64)
    }
}

/// The answers of one response that satisfaction is read from.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseAnswers<'a> {
    /// Item answers, 1-5.
    pub items: &'a [u8],
    pub nps: Option<u8>,
    pub csat: Option<u8>,
}

/// The response's satisfaction on 0-100: CSAT, else the item mean, else NPS.
pub fn response_satisfaction(answers: &ResponseAnswers<'_>) -> Option<f64> {
    if let Some(csat) = answers.csat {
        return Some(satisfaction_from_csat(f64::from(csat)));
    }
    let mut items = ScaleTally::default();
    answers.items.iter().for_each(|&a| items.add(a));
    if let Some(mean) = items.mean() {
        return Some(satisfaction_from_csat(mean));
    }
    answers.nps.map(|nps| satisfaction_from_nps(f64::from(nps)))
}

/// A client's satisfaction: the mean of its responses' satisfaction; `None`
/// when no response says anything.
pub fn client_satisfaction<'a>(responses: impl IntoIterator<Item = &'a ResponseAnswers<'a>>) -> Option<f64> {
    let (sum, n) = responses
        .into_iter()
        .filter_map(response_satisfaction)
        .fold((0.0, 0u32), |(sum, n), satisfaction| (sum + satisfaction, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn groups_follow_the_standard_cut_offs() {
        assert_eq!(NpsGroup::of(0), Some(NpsGroup::Detractor));
        assert_eq!(NpsGroup::of(6), Some(NpsGroup::Detractor));
        assert_eq!(NpsGroup::of(7), Some(NpsGroup::Passive));
        assert_eq!(NpsGroup::of(8), Some(NpsGroup::Passive));
        assert_eq!(NpsGroup::of(9), Some(NpsGroup::Promoter));
        assert_eq!(NpsGroup::of(10), Some(NpsGroup::Promoter));
        assert_eq!(NpsGroup::of(11), None);
    }

    #[test]
    fn nps_by_hand() {
        // 5 promoters, 3 passives, 2 detractors of 10: 50% - 20% = 30.
        let mut tally = NpsTally::default();
        for answer in [10, 9, 9, 10, 9, 8, 7, 7, 6, 0] {
            tally.add(answer);
        }
        assert_eq!(tally, NpsTally { promoters: 5, passives: 3, detractors: 2 });
        assert_eq!(tally.score(), Some(30.0));
        assert_eq!(NpsTally::default().score(), None);
        let mut only_detractors = NpsTally::default();
        only_detractors.add(3);
        assert_eq!(only_detractors.score(), Some(-100.0));
    }

    #[test]
    fn csat_by_hand() {
        // 5, 4, 4, 3, 1: 3 of 5 satisfied = 60%, mean 17 / 5 = 3.4.
        let mut tally = ScaleTally::default();
        for answer in [5, 4, 4, 3, 1, 0, 6] {
            tally.add(answer);
        }
        assert_eq!(tally.answers, 5);
        assert_eq!(tally.satisfied_percent(), Some(60.0));
        assert_eq!(tally.mean(), Some(3.4));
    }

    #[test]
    fn satisfaction_prefers_csat_then_items_then_nps() {
        let csat = ResponseAnswers { items: &[1, 1], nps: Some(0), csat: Some(4) };
        assert_eq!(response_satisfaction(&csat), Some(75.0));
        // Items 5, 4, 3: mean 4 -> (4 - 1) / 4 = 75.
        let items = ResponseAnswers { items: &[5, 4, 3], nps: Some(0), csat: None };
        assert_eq!(response_satisfaction(&items), Some(75.0));
        let nps = ResponseAnswers { items: &[], nps: Some(7), csat: None };
        assert_eq!(response_satisfaction(&nps), Some(70.0));
        assert_eq!(response_satisfaction(&ResponseAnswers::default()), None);
        // Mean of 75 and 70; the empty response says nothing.
        let empty = ResponseAnswers::default();
        assert_eq!(client_satisfaction([&csat, &nps, &empty]), Some(72.5));
        assert_eq!(client_satisfaction([&empty]), None);
    }

    proptest! {
        #[test]
        fn nps_stays_within_its_range_and_a_promoter_never_lowers_it(
            answers in proptest::collection::vec(0u8..=10, 1..200)
        ) {
            let mut tally = NpsTally::default();
            answers.iter().for_each(|&a| tally.add(a));
            let before = tally.score().expect("answers");
            prop_assert!((-100.0..=100.0).contains(&before));
            tally.add(10);
            prop_assert!(tally.score().expect("answers") >= before);
            let mut merged = NpsTally::default();
            merged.merge(&tally);
            prop_assert_eq!(merged, tally);
        }

        #[test]
        fn satisfaction_is_a_0_to_100_number(
            items in proptest::collection::vec(1u8..=5, 0..10),
            nps in proptest::option::of(0u8..=10),
            csat in proptest::option::of(1u8..=5),
        ) {
            let answers = ResponseAnswers { items: &items, nps, csat };
            if let Some(s) = response_satisfaction(&answers) {
                prop_assert!((0.0..=100.0).contains(&s));
            } else {
                prop_assert!(items.is_empty() && nps.is_none() && csat.is_none());
            }
        }
    }
}
