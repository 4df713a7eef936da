//! What callers ask for, checked before any source is asked: date ranges,
//! granularities, branch filters and bonus periods. Every problem of a
//! request is collected (see [`Violations`]); field names carry a prefix so
//! that a report asked inside an export names its fields there
//! (`period_report.from`).
use branchscore_platform::validate::{Violations, is_valid_id};
use branchscore_proto::common::v1::{Date, Granularity};
use branchscore_proto::reporting::v1::GetKpiLeaderboardRequest;
use branchscore_scoring::periods::{self, Period};
use chrono::{Datelike, Days, Months, NaiveDate};

/// The longest range a report covers, as the sources allow it.
const MAX_RANGE_DAYS: i64 = 3 * 366;

/// A validated date range split into the report's periods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: Granularity,
    pub periods: Vec<Period>,
}

fn field(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

fn date(v: &mut Violations, prefix: &str, name: &str, value: Option<&Date>) -> Option<NaiveDate> {
    let parsed = value.and_then(Date::to_naive);
    v.check(parsed.is_some(), || field(prefix, name), "is required and must be a real calendar date");
    parsed
}

/// `from`..`to` inclusive, at most three years, split by `granularity`;
/// UNSPECIFIED takes `default` (the wire value sent on is the one used).
pub fn range(
    v: &mut Violations,
    prefix: &str,
    (from, to): (Option<&Date>, Option<&Date>),
    granularity: i32,
    default: Granularity,
) -> Option<Range> {
    let (from, to) = (date(v, prefix, "from", from), date(v, prefix, "to", to));
    let granularity = match Granularity::try_from(granularity) {
        Ok(Granularity::Unspecified) => Some(default),
        Ok(known) => Some(known),
        Err(_) => None,
    };
    v.check(granularity.is_some(), || field(prefix, "granularity"), "must be DAY, WEEK, MONTH or unspecified");
    let (from, to, granularity) = (from?, to?, granularity?);
    let ordered = from <= to;
    v.check(ordered, || field(prefix, "to"), "must not be before from");
    let short_enough = (to - from).num_days() <= MAX_RANGE_DAYS;
    v.check(short_enough, || field(prefix, "to"), "the range may span at most 3 years");
    let split = match granularity {
        Granularity::Day => periods::Granularity::Day,
        Granularity::Week => periods::Granularity::Week,
        Granularity::Month => periods::Granularity::Month,
        Granularity::Unspecified => periods::Granularity::Whole,
    };
    (ordered && short_enough).then(|| Range { from, to, granularity, periods: periods::split(from, to, split) })
}

/// An optional branch filter: empty, or an ERP id.
pub fn branch(v: &mut Violations, prefix: &str, name: &str, value: &str) {
    v.check(value.is_empty() || is_valid_id(value), || field(prefix, name), "must be empty or a branch id");
}

/// A bonus period as the KPI service computes them: whole months, at most a year.
pub fn bonus_period(v: &mut Violations, prefix: &str, from: Option<&Date>, to: Option<&Date>) -> Option<Range> {
    let (from, to) = (date(v, prefix, "from", from), date(v, prefix, "to", to));
    let (from, to) = (from?, to?);
    let first_of_month = from.day() == 1;
    v.check(first_of_month, || field(prefix, "from"), "must be the first day of a month");
    let last_of_month = to.checked_add_days(Days::new(1)).is_some_and(|next| next.day() == 1);
    v.check(last_of_month, || field(prefix, "to"), "must be the last day of a month");
    let within_year = from < to && from.checked_add_months(Months::new(12)).is_some_and(|limit| to < limit);
    v.check(within_year, || field(prefix, "to"), "must be after from and at most 12 months later");
    (first_of_month && last_of_month && within_year).then(|| Range {
        from,
        to,
        granularity: Granularity::Unspecified,
        periods: vec![Period { start: from, end: to }],
    })
}

/// A periodic report asked for: its range and branch filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periodic {
    pub range: Range,
    pub branch_id: String,
}

/// Checks a periodic report's request (`default` stands for UNSPECIFIED).
pub fn periodic(
    v: &mut Violations,
    prefix: &str,
    (from, to): (Option<&Date>, Option<&Date>),
    granularity: i32,
    default: Granularity,
    branch_id: &str,
) -> Option<Periodic> {
    let range = range(v, prefix, (from, to), granularity, default);
    branch(v, prefix, "branch_id", branch_id);
    Some(Periodic { range: range?, branch_id: branch_id.to_owned() })
}

/// A bonus period's leaderboard asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaderboard {
    pub range: Range,
    /// 0: the latest.
    pub version: i32,
    pub branch_id: String,
}

pub fn leaderboard(v: &mut Violations, prefix: &str, body: &GetKpiLeaderboardRequest) -> Option<Leaderboard> {
    let range = bonus_period(v, prefix, body.from.as_ref(), body.to.as_ref());
    v.check(body.version >= 0, || field(prefix, "version"), "must be a version number, or 0 for the latest");
    branch(v, prefix, "branch_id", &body.branch_id);
    Some(Leaderboard { range: range?, version: body.version, branch_id: body.branch_id.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i32, month: i32, day: i32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    fn fields(v: Violations) -> Vec<String> {
        v.into_vec().into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn ranges_are_split_by_the_asked_or_default_granularity() {
        let mut v = Violations::new();
        let weeks = range(&mut v, "", (d(2026, 7, 1).as_ref(), d(2026, 7, 31).as_ref()), 2, Granularity::Month);
        let weeks = weeks.expect("valid");
        // 1 July 2026 is a Wednesday: 1-5, 6-12, 13-19, 20-26, 27-31.
        assert_eq!((weeks.granularity, weeks.periods.len()), (Granularity::Week, 5));
        let whole = range(&mut v, "", (d(2026, 7, 1).as_ref(), d(2026, 9, 30).as_ref()), 0, Granularity::Unspecified);
        assert_eq!(whole.expect("valid").periods.len(), 1);
        assert!(v.is_empty());
    }

    #[test]
    fn every_problem_is_named_with_its_prefix() {
        let mut v = Violations::new();
        assert!(range(&mut v, "r.", (d(2026, 2, 30).as_ref(), None), 9, Granularity::Month).is_none());
        assert_eq!(fields(v), ["r.from", "r.to", "r.granularity"]);
        let mut v = Violations::new();
        assert!(range(&mut v, "", (d(2026, 9, 1).as_ref(), d(2026, 8, 1).as_ref()), 0, Granularity::Month).is_none());
        assert!(range(&mut v, "", (d(2020, 1, 1).as_ref(), d(2026, 1, 1).as_ref()), 0, Granularity::Month).is_none());
        branch(&mut v, "", "branch_id", "no spaces");
        branch(&mut v, "", "branch_id", "");
        assert_eq!(fields(v), ["to", "to", "branch_id"]);
    }

    #[test]
    fn bonus_periods_are_whole_months_within_a_year() {
        let mut v = Violations::new();
        let quarter = bonus_period(&mut v, "", d(2026, 7, 1).as_ref(), d(2026, 9, 30).as_ref()).expect("Q3");
        assert_eq!(quarter.periods, [Period { start: quarter.from, end: quarter.to }]);
        assert!(bonus_period(&mut v, "k.", d(2026, 7, 2).as_ref(), d(2026, 9, 29).as_ref()).is_none());
        assert!(bonus_period(&mut v, "", d(2026, 1, 1).as_ref(), d(2027, 1, 31).as_ref()).is_none());
        assert_eq!(fields(v), ["k.from", "k.to", "to"]);
    }
}
