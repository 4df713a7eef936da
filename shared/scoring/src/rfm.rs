//! RFM: recency, frequency, monetary, each scored 1-5 against the other
//! clients, and the named segment of the resulting code.
//!
//! Scored are the clients with at least one transaction in the window.
//! * recency = days from the last purchase on or before D to D (lower is
//!   better; the current partial month counts here),
//! * frequency = number of distinct transactions in the window,
//! * monetary = revenue in the window.
//!
//! Each is scored `1 + floor(5·w / n)`, n = number of scored clients, w = how
//! many of them have a strictly worse value: ties share a score, 5 is best,
//! and the score does not depend on input order. (So with a single client, or
//! all clients equal, everybody scores 1: nobody is worse.)
//!
//! # Segments
//!
//! The code concatenates R, F, M ("545"). Segments follow the classic R x F
//! grid, with F replaced by the combined FM = ceil((F + M) / 2) so that money
//! counts too (545: FM = ceil(9/2) = 5). The grid is total: each of the 125
//! codes 111..555 maps to exactly one segment.
//!
//! | R \ FM | 1 | 2 | 3 | 4 | 5 |
//! |---|---|---|---|---|---|
//! | **5** | new | potential loyalist | potential loyalist | champions | champions |
//! | **4** | promising | potential loyalist | potential loyalist | loyal | loyal |
//! | **3** | about to sleep | about to sleep | need attention | loyal | loyal |
//! | **2** | hibernating | hibernating | at risk | at risk | cannot lose |
//! | **1** | lost | lost | at risk | at risk | cannot lose |
//!
//! Read: recent and frequent/big are champions; recent but small are new
//! (R5) or promising (R4); big but long ago are "cannot lose"; neither
//! recent nor big are hibernating (R2) or lost (R1).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Money;

/// What RFM needs to know about one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmInput {
    /// Last purchase on or before D (may be in D's partial month).
    pub last_purchase: Option<NaiveDate>,
    /// Distinct transactions in the analysis window.
    pub transactions: u32,
    /// Net revenue in the analysis window.
    pub revenue: Money,
}

/// An RFM code such as "545"; each digit 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RfmCode {
    r: u8,
    f: u8,
    m: u8,
}

impl RfmCode {
    /// A code from three scores, each 1..=5.
    pub fn new(r: u8, f: u8, m: u8) -> Option<Self> {
        let ok = |x: u8| (1..=5).contains(&x);
        (ok(r) && ok(f) && ok(m)).then_some(Self { r, f, m })
    }

    /// Recency score.
    pub fn r(self) -> u8 {
        self.r
    }

    /// Frequency score.
    pub fn f(self) -> u8 {
        self.f
    }

    /// Monetary score.
    pub fn m(self) -> u8 {
        self.m
    }

    /// Combined frequency-monetary score ceil((F + M) / 2).
    pub fn fm(self) -> u8 {
        (self.f + self.m).div_ceil(2)
    }

    /// Named segment (see the module table).
    pub fn segment(self) -> RfmSegment {
        use RfmSegment::*;
        match (self.r, self.fm()) {
            (5, 1) => New,
            (5, 2 | 3) | (4, 2 | 3) => PotentialLoyalist,
            (5, _) => Champions,
            (4, 1) => Promising,
            (4, _) | (3, 4 | 5) => Loyal,
            (3, 3) => NeedAttention,
            (3, _) => AboutToSleep,
            (_, 5) => CannotLose,
            (_, 3 | 4) => AtRisk,
            (2, _) => Hibernating,
            _ => Lost,
        }
    }

    /// All 125 codes, 111 first.
    pub fn all() -> impl Iterator<Item = RfmCode> {
        (1..=5u8).flat_map(|r| (1..=5u8).flat_map(move |f| (1..=5u8).map(move |m| RfmCode { r, f, m })))
    }
}

impl fmt::Display for RfmCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.r, self.f, self.m)
    }
}

/// A string that is not a code 111..555.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFM code (three digits 1-5): {0:?}")]
pub struct BadRfmCode(pub String);

impl FromStr for RfmCode {
    type Err = BadRfmCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRfmCode(s.to_owned());
        let digits: Vec<u8> = s
            .chars()
            .map(|c| c.to_digit(10).and_then(|d| u8::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        match digits[..] {
            [r, f, m] => RfmCode::new(r, f, m).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

/// Named RFM segments (business names; see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RfmSegment {
    /// Bought recently, often and a lot.
    Champions,
    /// Regular buyers with good volume.
    Loyal,
    /// Recent, average volume: could become loyal.
    PotentialLoyalist,
    /// Bought very recently, little so far.
    New,
    /// Recent, little so far.
    Promising,
    /// Average on everything.
    NeedAttention,
    /// Average recency, low volume: slipping away.
    AboutToSleep,
    /// Good volume, but not for a while.
    AtRisk,
    /// Top volume, but not for a while.
    CannotLose,
    /// Low volume, not for a while.
    Hibernating,
    /// Lowest recency and low volume.
    Lost,
}

impl RfmSegment {
    /// The snake_case name used in APIs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Champions => "champions",
            Self::Loyal => "loyal",
            Self::PotentialLoyalist => "potential_loyalist",
            Self::New => "new",
            Self::Promising => "promising",
            Self::NeedAttention => "need_attention",
            Self::AboutToSleep => "about_to_sleep",
            Self::AtRisk => "at_risk",
            Self::CannotLose => "cannot_lose",
            Self::Hibernating => "hibernating",
            Self::Lost => "lost",
        }
    }
}

/// RFM of one scored client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmScore {
    /// Days since the last purchase.
    pub recency_days: i64,
    /// Distinct transactions in the window.
    pub frequency: u32,
    /// Window revenue.
    pub monetary: Money,
    /// The 1-5 scores.
    pub code: RfmCode,
}

impl RfmScore {
    /// Named segment of the code.
    pub fn segment(&self) -> RfmSegment {
        self.code.segment()
    }
}

/// `1 + floor(5·w / n)`; w < n so the result is 1..=5.
fn quintile(worse: usize, n: usize) -> u8 {
    let q = (5 * worse).checked_div(n).unwrap_or(0).min(4);
    // q <= 4, so the cast cannot truncate.
    1 + q as u8
}

/// RFM of every client as of D, aligned with `inputs`; `None` for clients
/// without a transaction in the window (O(n log n)). A last purchase after D
/// counts as recency 0.
pub fn score(as_of: NaiveDate, inputs: &[RfmInput]) -> Vec<Option<RfmScore>> {
    let recency = |input: &RfmInput| -> Option<i64> {
        if input.transactions == 0 {
            return None;
        }
        input.last_purchase.map(|last| (as_of - last).num_days().max(0))
    };
    let mut days: Vec<i64> = Vec::with_capacity(inputs.len());
    let mut freqs: Vec<u32> = Vec::with_capacity(inputs.len());
    let mut money: Vec<Money> = Vec::with_capacity(inputs.len());
    for input in inputs {
        if let Some(r) = recency(input) {
            days.push(r);
            freqs.push(input.transactions);
            money.push(input.revenue);
        }
    }
    days.sort_unstable();
    freqs.sort_unstable();
    money.sort_unstable();
    let n = days.len();
    inputs
        .par_iter()
        .map(|input| {
            let recency_days = recency(input)?;
            // Worse recency = more days; worse F/M = smaller value.
            let r_worse = n - days.partition_point(|&x| x <= recency_days);
            let f_worse = freqs.partition_point(|&x| x < input.transactions);
            let m_worse = money.partition_point(|&x| x < input.revenue);
            Some(RfmScore {
                recency_days,
                frequency: input.transactions,
                monetary: input.revenue,
                code: RfmCode { r: quintile(r_worse, n), f: quintile(f_worse, n), m: quintile(m_worse, n) },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const AS_OF: (i32, u32, u32) = (2026, 11, 23);

    fn as_of() -> NaiveDate {
        d(AS_OF.0, AS_OF.1, AS_OF.2)
    }

    fn client(last: NaiveDate, transactions: u32, revenue: Money) -> RfmInput {
        RfmInput { last_purchase: Some(last), transactions, revenue }
    }

    fn codes(out: &[Option<RfmScore>]) -> Vec<Option<String>> {
        out.iter().map(|s| s.map(|s| s.code.to_string())).collect()
    }

    #[test]
    fn hand_computed_five_clients() {
        // n = 5 scored clients (the 6th has no transaction in the window).
        // recency days: 3, 10, 30, 90, 0 (D = 2026-11-23)
        //   0 days: w = 4 worse -> 1 + floor(20/5) = 5; 3: w=3 -> 4;
        //   10: w=2 -> 3; 30: w=1 -> 2; 90: w=0 -> 1.
        // frequency: 10, 5, 5, 1, 20
        //   20: w=4 -> 5; 10: w=3 -> 4; 5 and 5 tie: w=1 -> 1+floor(5/5)=2;
        //   1: w=0 -> 1.
        // monetary: 1000, 500, 200, 50, 5000 -> 4, 3, 2, 1, 5.
        let inputs = [
            client(d(2026, 11, 20), 10, 1_000),
            client(d(2026, 11, 13), 5, 500),
            client(d(2026, 10, 24), 5, 200),
            client(d(2026, 8, 25), 1, 50),
            client(d(2026, 11, 23), 20, 5_000),
            RfmInput { last_purchase: Some(d(2024, 1, 1)), transactions: 0, revenue: 0 },
        ];
        let out = score(as_of(), &inputs);
        assert_eq!(
            codes(&out),
            [Some("444".into()), Some("323".into()), Some("222".into()), Some("111".into()), Some("555".into()), None]
        );
        let segments: Vec<_> = out.iter().flatten().map(|s| s.segment()).collect();
        // 444: R4 FM4 loyal; 323: R3 FM ceil(5/2)=3 need attention;
        // 222 hibernating; 111 lost; 555 champions.
        assert_eq!(
            segments,
            [
                RfmSegment::Loyal,
                RfmSegment::NeedAttention,
                RfmSegment::Hibernating,
                RfmSegment::Lost,
                RfmSegment::Champions
            ]
        );
        let first = out[0].unwrap();
        assert_eq!((first.recency_days, first.frequency, first.monetary), (3, 10, 1_000));
    }

    #[test]
    fn four_clients_best_scores_four() {
        // n = 4: best has w = 3 -> 1 + floor(15/4) = 4 (no 5 with n = 4).
        let inputs = [
            client(d(2026, 11, 20), 3, 30),
            client(d(2026, 11, 19), 2, 20),
            client(d(2026, 11, 18), 1, 10),
            client(d(2026, 11, 17), 1, 5),
        ];
        // recency w: 3,2,1,0 -> 4,3,2,1; frequency: 3 (w=3) 4, 2 (w=2) 3,
        // 1,1 (w=0) 1; monetary 4,3,2,1.
        assert_eq!(
            codes(&score(as_of(), &inputs)),
            [Some("444".into()), Some("333".into()), Some("212".into()), Some("111".into())]
        );
    }

    #[test]
    fn one_client_and_all_equal_score_one() {
        // Nobody is strictly worse: w = 0 -> 1.
        let one = score(as_of(), &[client(d(2026, 11, 1), 4, 100)]);
        assert_eq!(codes(&one), [Some("111".into())]);
        let same = score(as_of(), &[client(d(2026, 11, 1), 4, 100); 3]);
        assert_eq!(codes(&same), vec![Some("111".to_string()); 3]);
        assert!(score(as_of(), &[]).is_empty());
    }

    #[test]
    fn negative_revenue_and_partial_month_purchase() {
        // Client 0 bought today (in D's partial month: recency 0) but returned
        // more than it bought in the window (-50); client 1 sits at 0.
        // recency: 0 (w=1) -> 1+floor(5/2) = 3; 5 days (w=0) -> 1.
        // monetary: -50 (w=0) -> 1; 0 (w=1) -> 3.
        let inputs = [client(d(2026, 11, 23), 1, -50), client(d(2026, 11, 18), 1, 0)];
        assert_eq!(codes(&score(as_of(), &inputs)), [Some("311".into()), Some("113".into())]);
        // Last purchase after D is treated as today.
        let future = score(as_of(), &[client(d(2026, 12, 1), 1, 1)]);
        assert_eq!(future[0].map(|s| s.recency_days), Some(0));
    }

    #[test]
    fn no_transactions_or_no_date_not_scored() {
        let inputs = [RfmInput { last_purchase: None, transactions: 3, revenue: 10 }];
        assert_eq!(score(as_of(), &inputs), [None]);
    }

    #[test]
    fn segment_table_is_total_and_matches_doc() {
        use RfmSegment::*;
        let table = [
            [Lost, Lost, AtRisk, AtRisk, CannotLose],
            [Hibernating, Hibernating, AtRisk, AtRisk, CannotLose],
            [AboutToSleep, AboutToSleep, NeedAttention, Loyal, Loyal],
            [Promising, PotentialLoyalist, PotentialLoyalist, Loyal, Loyal],
            [New, PotentialLoyalist, PotentialLoyalist, Champions, Champions],
        ];
        let mut count = 0;
        for code in RfmCode::all() {
            let expected = table[usize::from(code.r() - 1)][usize::from(code.fm() - 1)];
            assert_eq!(code.segment(), expected, "{code}");
            count += 1;
        }
        assert_eq!(count, 125);
        let c = |s: &str| s.parse::<RfmCode>().unwrap().segment();
        assert_eq!(c("545"), Champions); // FM = ceil(9/2) = 5
        assert_eq!(c("511"), New);
        assert_eq!(c("155"), CannotLose);
        assert_eq!(c("111"), Lost);
        assert_eq!(c("333"), NeedAttention);
        assert_eq!(Champions.name(), "champions");
    }

    #[test]
    fn code_parse_and_display() {
        let code: RfmCode = "545".parse().unwrap();
        assert_eq!((code.r(), code.f(), code.m()), (5, 4, 5));
        assert_eq!(code.to_string(), "545");
        for bad in ["", "55", "5555", "605", "5a5", "０１２"] {
            assert!(bad.parse::<RfmCode>().is_err(), "{bad}");
        }
        assert_eq!(RfmCode::new(0, 1, 1), None);
    }

    fn inputs() -> impl Strategy<Value = Vec<RfmInput>> {
        prop::collection::vec(
            (0i64..400, 0u32..20, -100i64..10_000).prop_map(|(days, tx, rev)| RfmInput {
                last_purchase: as_of().checked_sub_signed(chrono::TimeDelta::days(days)),
                transactions: tx,
                revenue: rev,
            }),
            0..60,
        )
    }

    proptest! {
        #[test]
        fn independent_of_input_order(
            (inputs, perm) in inputs().prop_flat_map(|v| {
                let n = v.len();
                (Just(v), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
        ) {
            let a = score(as_of(), &inputs);
            let shuffled: Vec<RfmInput> = perm.iter().map(|&i| inputs[i]).collect();
            let b = score(as_of(), &shuffled);
            for (j, &i) in perm.iter().enumerate() {
                prop_assert_eq!(a[i], b[j]);
            }
        }

        #[test]
        fn scores_in_range_and_better_never_scores_lower(inputs in inputs()) {
            let out = score(as_of(), &inputs);
            for (x, sx) in inputs.iter().zip(&out) {
                prop_assert_eq!(sx.is_some(), x.transactions > 0);
                let Some(sx) = sx else { continue };
                for (y, sy) in inputs.iter().zip(&out) {
                    let Some(sy) = sy else { continue };
                    if x.revenue >= y.revenue { prop_assert!(sx.code.m() >= sy.code.m()); }
                    if x.transactions >= y.transactions { prop_assert!(sx.code.f() >= sy.code.f()); }
                    if sx.recency_days <= sy.recency_days { prop_assert!(sx.code.r() >= sy.code.r()); }
                }
            }
        }
    }
}
