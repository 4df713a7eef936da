//! Conversions between wire types, stored codes and the domain rules' types.
//! Stored enum codes are the proto enum numbers.
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult};
use branchscore_proto::common::v1::{AbcClass, Date, Granularity};
use branchscore_proto::feedback::v1 as pb;
use branchscore_scoring::complaints::{ComplaintSource, ComplaintState};
use branchscore_scoring::periods;
use branchscore_scoring::quality::CriterionOutcome;
use chrono::{DateTime, NaiveDate, Utc};

/// Longest range a statistics call covers.
pub const MAX_RANGE_DAYS: i64 = 3 * 366;

pub use branchscore_proto::convert::timestamp;

pub fn optional_timestamp(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(timestamp)
}

pub fn date(day: NaiveDate) -> Option<Date> {
    Some(Date::from(day))
}

/// A stored enum code as the proto enum's number.
pub fn code(value: i16) -> i32 {
    i32::from(value)
}

pub fn abc_from_proto(class: i32) -> Option<branchscore_scoring::abc::AbcClass> {
    match AbcClass::try_from(class) {
        Ok(AbcClass::A) => Some(branchscore_scoring::abc::AbcClass::A),
        Ok(AbcClass::B) => Some(branchscore_scoring::abc::AbcClass::B),
        Ok(AbcClass::C) => Some(branchscore_scoring::abc::AbcClass::C),
        _ => None,
    }
}

/// "A", "B", "C" or "unclassed".
pub fn abc_name(class: i32) -> &'static str {
    match AbcClass::try_from(class) {
        Ok(AbcClass::A) => "A",
        Ok(AbcClass::B) => "B",
        Ok(AbcClass::C) => "C",
        _ => "unclassed",
    }
}

pub fn state_to_proto(state: ComplaintState) -> pb::ComplaintState {
    match state {
        ComplaintState::Registered => pb::ComplaintState::Registered,
        ComplaintState::Investigating => pb::ComplaintState::Investigating,
        ComplaintState::CauseIdentified => pb::ComplaintState::CauseIdentified,
        ComplaintState::CauseRemoved => pb::ComplaintState::CauseRemoved,
        ComplaintState::ProcessFixed => pb::ComplaintState::ProcessFixed,
        ComplaintState::Closed => pb::ComplaintState::Closed,
    }
}

pub fn state_from_proto(state: i32) -> Option<ComplaintState> {
    match pb::ComplaintState::try_from(state).ok()? {
        pb::ComplaintState::Unspecified => None,
        pb::ComplaintState::Registered => Some(ComplaintState::Registered),
        pb::ComplaintState::Investigating => Some(ComplaintState::Investigating),
        pb::ComplaintState::CauseIdentified => Some(ComplaintState::CauseIdentified),
        pb::ComplaintState::CauseRemoved => Some(ComplaintState::CauseRemoved),
        pb::ComplaintState::ProcessFixed => Some(ComplaintState::ProcessFixed),
        pb::ComplaintState::Closed => Some(ComplaintState::Closed),
    }
}

pub fn source_to_proto(source: ComplaintSource) -> pb::ComplaintSource {
    match source {
        ComplaintSource::Explicit => pb::ComplaintSource::Explicit,
        ComplaintSource::Hidden => pb::ComplaintSource::Hidden,
        ComplaintSource::NpsDetractor => pb::ComplaintSource::NpsDetractor,
        ComplaintSource::Direct => pb::ComplaintSource::Direct,
    }
}

pub fn outcome_from_proto(outcome: i32) -> Option<CriterionOutcome> {
    match pb::CriterionOutcome::try_from(outcome).ok()? {
        pb::CriterionOutcome::Met => Some(CriterionOutcome::Met),
        pb::CriterionOutcome::Missed => Some(CriterionOutcome::Missed),
        pb::CriterionOutcome::NotApplicable => Some(CriterionOutcome::NotApplicable),
        pb::CriterionOutcome::Unspecified => None,
    }
}

/// A validated inclusive date range split into reporting periods.
#[derive(Debug, Clone)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub periods: Vec<periods::Period>,
}

/// Checks `from`, `to` (at most three years apart) and the granularity
/// (`default` when unspecified) into `v`.
pub fn range(
    v: &mut Violations,
    from: Option<&Date>,
    to: Option<&Date>,
    granularity: i32,
    default: periods::Granularity,
) -> Option<Range> {
    let (from, to) = (from.and_then(Date::to_naive), to.and_then(Date::to_naive));
    v.check(from.is_some(), || "from".into(), "is required and must be a real calendar date");
    v.check(to.is_some(), || "to".into(), "is required and must be a real calendar date");
    let granularity = match Granularity::try_from(granularity) {
        Ok(Granularity::Day) => Some(periods::Granularity::Day),
        Ok(Granularity::Week) => Some(periods::Granularity::Week),
        Ok(Granularity::Month) => Some(periods::Granularity::Month),
        Ok(Granularity::Unspecified) => Some(default),
        Err(_) => None,
    };
    v.check(granularity.is_some(), || "granularity".into(), "must be DAY, WEEK, MONTH or unspecified");
    let (from, to, granularity) = (from?, to?, granularity?);
    v.check(from <= to, || "to".into(), "must not be before from");
    v.check((to - from).num_days() <= MAX_RANGE_DAYS, || "to".into(), "the range may span at most 3 years");
    (from <= to && (to - from).num_days() <= MAX_RANGE_DAYS).then(|| Range {
        from,
        to,
        periods: periods::split(from, to, granularity),
    })
}

/// An optional id filter: empty, or an ERP id.
pub fn optional_id(v: &mut Violations, field: &str, value: &str) {
    if !value.is_empty() {
        v.id(|| field.into(), value);
    }
}

/// A validated value that validation guarantees; its absence is a bug.
pub fn validated<T>(value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| AppError::internal(anyhow::anyhow!("a validated value is missing")))
}

/// Keyset page tokens: the hex of "<created micros>/<id>", opaque to callers;
/// a token we did not issue is refused rather than restarting the list.
pub mod page_token {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    pub fn encode(at: DateTime<Utc>, id: Uuid) -> String {
        format!("{}/{id}", at.timestamp_micros()).bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// `Some(None)` for the first page, `None` for a token we never issued.
    pub fn decode(token: &str) -> Option<Option<(DateTime<Utc>, Uuid)>> {
        if token.is_empty() {
            return Some(None);
        }
        if !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> =
            (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (micros, id) = text.split_once('/')?;
        Some(Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, id.parse().ok()?)))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn tokens_round_trip_and_garbage_is_refused() {
            let at = chrono::DateTime::from_timestamp_micros(1_780_000_000_123_456).expect("time");
            let id = uuid::Uuid::new_v4();
            assert_eq!(super::decode(&super::encode(at, id)), Some(Some((at, id))));
            assert_eq!(super::decode(""), Some(None));
            assert_eq!(super::decode("zz"), None);
            assert_eq!(super::decode("616263"), None);
        }
    }
}

/// Page size: 0 means the default, else at most `max`.
pub fn page_size(v: &mut Violations, value: i32, default: i64, max: i32) -> i64 {
    v.check((0..=max).contains(&value), || "page_size".into(), &format!("must be between 0 and {max}"));
    if value <= 0 { default } else { i64::from(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: i32, day: i32) -> Date {
        Date { year: y, month: m, day }
    }

    #[test]
    fn ranges_split_into_periods_and_name_every_problem() {
        let mut v = Violations::new();
        let split =
            range(&mut v, Some(&d(2026, 1, 15)), Some(&d(2026, 3, 3)), 0, periods::Granularity::Month).expect("valid");
        assert!(v.is_empty());
        assert_eq!(split.periods.len(), 3);
        let mut v = Violations::new();
        assert!(range_of(&mut v, d(2026, 3, 3), d(2026, 1, 1), 0).is_none());
        assert_eq!(fields(v), ["to"]);
        let mut v = Violations::new();
        assert!(range_of(&mut v, d(2020, 1, 1), d(2026, 1, 1), 9).is_none());
        assert_eq!(fields(v), ["granularity"]);
        let mut v = Violations::new();
        assert!(range_of(&mut v, d(2020, 1, 1), d(2026, 1, 1), 0).is_none());
        assert_eq!(fields(v), ["to"], "more than three years");
        let mut v = Violations::new();
        assert!(range(&mut v, None, Some(&d(2026, 2, 30)), 0, periods::Granularity::Whole).is_none());
        assert_eq!(fields(v), ["from", "to"]);
    }

    fn range_of(v: &mut Violations, from: Date, to: Date, granularity: i32) -> Option<Range> {
        range(v, Some(&from), Some(&to), granularity, periods::Granularity::Whole)
    }

    fn fields(v: Violations) -> Vec<String> {
        v.into_vec().into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn classes_and_states_map_both_ways() {
        assert_eq!(abc_name(AbcClass::A as i32), "A");
        assert_eq!(abc_name(0), "unclassed");
        for state in ComplaintState::ALL {
            assert_eq!(state_from_proto(state_to_proto(state) as i32), Some(state));
        }
        assert_eq!(state_from_proto(0), None);
        assert_eq!(
            outcome_from_proto(pb::CriterionOutcome::NotApplicable as i32),
            Some(CriterionOutcome::NotApplicable)
        );
    }
}
