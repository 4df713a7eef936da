//! Turns the scoring crate's results into the records people read: the
//! explained `ClientScore` and readable cluster profiles. Pure.
use branchscore_proto::clients::v1 as pb;
use branchscore_proto::common::v1::{self as common, Date, Money};
use branchscore_scoring::abc::AbcClass;
use branchscore_scoring::batch::ClientEvaluation;
use branchscore_scoring::clustering::ClusterProfile;
use branchscore_scoring::lifecycle::LifecycleStatus;
use branchscore_scoring::xyz::XyzClass;
use chrono::NaiveDate;

pub fn abc_class(class: Option<AbcClass>) -> common::AbcClass {
    match class {
        Some(AbcClass::A) => common::AbcClass::A,
        Some(AbcClass::B) => common::AbcClass::B,
        Some(AbcClass::C) => common::AbcClass::C,
        None => common::AbcClass::Unspecified,
    }
}

/// The class of a stored class code (`abc_class` columns hold the proto values).
pub fn abc_of_stored(code: i16) -> Option<AbcClass> {
    match common::AbcClass::try_from(i32::from(code)) {
        Ok(common::AbcClass::A) => Some(AbcClass::A),
        Ok(common::AbcClass::B) => Some(AbcClass::B),
        Ok(common::AbcClass::C) => Some(AbcClass::C),
        _ => None,
    }
}

pub fn xyz_class(class: Option<XyzClass>) -> common::XyzClass {
    match class {
        Some(XyzClass::X) => common::XyzClass::X,
        Some(XyzClass::Y) => common::XyzClass::Y,
        Some(XyzClass::Z) => common::XyzClass::Z,
        None => common::XyzClass::Unspecified,
    }
}

pub fn lifecycle_status(status: LifecycleStatus) -> common::LifecycleStatus {
    match status {
        LifecycleStatus::Potential => common::LifecycleStatus::Potential,
        LifecycleStatus::New => common::LifecycleStatus::New,
        LifecycleStatus::Regular => common::LifecycleStatus::Regular,
        LifecycleStatus::Restored => common::LifecycleStatus::Restored,
        LifecycleStatus::Lost => common::LifecycleStatus::Lost,
    }
}

/// Where a client's score record comes from.
#[derive(Debug, Clone, Copy)]
pub struct ScoreContext<'a> {
    pub as_of: NaiveDate,
    pub settings_version: i64,
    pub currency: &'a str,
    pub compute_time: prost_types::Timestamp,
}

/// The explained score of one client.
pub fn client_score(
    client_id: &str,
    branch_id: &str,
    segment_id: &str,
    e: &ClientEvaluation<'_>,
    cx: &ScoreContext<'_>,
) -> pb::ClientScore {
    let money = |minor_units: i64| Some(Money { minor_units, currency: cx.currency.to_owned() });
    let mut notes = Vec::new();
    if e.abc.is_none() {
        notes.push("abc: no positive revenue in the analysis window".to_owned());
    }
    if let Err(reason) = &e.xyz {
        notes.push(format!("xyz: {reason}"));
    }
    if e.rfm.is_none() {
        notes.push("rfm: no purchase in the analysis window".to_owned());
    }
    let components = e
        .score
        .components
        .iter()
        .map(|c| pb::ScoreComponent {
            component: c.component.name().to_owned(),
            weight: c.weight,
            effective_weight: c.effective_weight,
            component_score: c.score.unwrap_or(0.0),
            contribution: c.contribution,
            present: c.score.is_some(),
        })
        .collect();
    let nearest = &e.score.nearest;
    pb::ClientScore {
        client_id: client_id.to_owned(),
        branch_id: branch_id.to_owned(),
        as_of: Some(Date::from(cx.as_of)),
        score: e.score.total,
        score_class: e.score.band.to_owned(),
        abc_class: abc_class(e.abc) as i32,
        xyz_class: xyz_class(e.xyz.as_ref().ok().map(|o| o.class)) as i32,
        rfm_code: e.rfm.map(|r| r.code.to_string()).unwrap_or_default(),
        rfm_segment: e.rfm.map(|r| r.segment().name().to_owned()).unwrap_or_default(),
        lifecycle_status: lifecycle_status(e.lifecycle) as i32,
        components,
        window_revenue: money(e.window_revenue),
        settings_version: cx.settings_version,
        compute_time: Some(cx.compute_time),
        outlook: Some(pb::ScoreOutlook {
            next_score_class: nearest.next_band.unwrap_or_default().to_owned(),
            points_needed: nearest.points_needed.unwrap_or(0.0),
            next_abc_class: abc_class(nearest.abc.map(|n| n.class)) as i32,
            revenue_needed: nearest.abc.and_then(|n| money(n.gap)),
        }),
        recency_days: e.rfm.map_or(0, |r| r.recency_days),
        frequency: e.rfm.map_or(0, |r| i64::from(r.frequency)),
        xyz_cv: e.xyz.as_ref().map_or(0.0, |o| o.cv),
        cluster: e.cluster.map_or(-1, |c| i32::try_from(c).unwrap_or(i32::MAX)),
        notes,
        segment_id: segment_id.to_owned(),
        last_purchase: e.last_purchase.map(Date::from),
    }
}

/// A stored score read after a later run that found its content unchanged
/// and so did not rewrite it (`store::write_scores`): the same score as of
/// that run, with the run's date and time, and recency counted to that date
/// as `rfm::score` counts it.
pub fn rebase(score: &mut pb::ClientScore, as_of: NaiveDate, compute_time: prost_types::Timestamp) {
    score.as_of = Some(Date::from(as_of));
    score.compute_time = Some(compute_time);
    if let Some(last) = score.last_purchase.and_then(|d| d.to_naive())
        && !score.rfm_code.is_empty()
    {
        score.recency_days = (as_of - last).num_days().max(0);
    }
}

/// Cluster profiles with a label read off each centroid against the
/// clustered clients' overall means (features in `batch::FEATURES` order).
pub fn cluster_profiles(profiles: &[ClusterProfile], currency: &str) -> Vec<pb::ClusterProfile> {
    let members: f64 = profiles.iter().map(|p| p.size as f64).sum();
    let mean = |feature: usize| -> f64 {
        profiles.iter().map(|p| p.centroid.get(feature).copied().unwrap_or(0.0) * p.size as f64).sum::<f64>()
            / members.max(1.0)
    };
    let overall: Vec<f64> = (0..6).map(mean).collect();
    let money = |units: f64| Some(Money { minor_units: units.round() as i64, currency: currency.to_owned() });
    profiles
        .iter()
        .map(|p| {
            let at = |feature: usize| p.centroid.get(feature).copied().unwrap_or(0.0);
            pb::ClusterProfile {
                cluster: i32::try_from(p.cluster).unwrap_or(i32::MAX),
                clients: i64::try_from(p.size).unwrap_or(i64::MAX),
                revenue_share: p.revenue_share.unwrap_or(0.0),
                recency_days: at(0),
                frequency: at(1),
                monetary: money(at(2)),
                average_ticket: money(at(3)),
                purchase_interval_days: at(4),
                product_lines: at(5),
                label: cluster_label(&p.centroid, &overall),
            }
        })
        .collect()
}

/// "recent frequent big spenders", "lapsed rare small spenders", ...: each
/// word says how far the cluster sits from the overall mean.
pub fn cluster_label(centroid: &[f64], overall: &[f64]) -> String {
    let ratio = |feature: usize| {
        let (value, mean) =
            (centroid.get(feature).copied().unwrap_or(0.0), overall.get(feature).copied().unwrap_or(0.0));
        if mean > 0.0 { value / mean } else { 1.0 }
    };
    let mut words = Vec::new();
    match ratio(0) {
        r if r <= 0.5 => words.push("recent"),
        r if r >= 1.5 => words.push("lapsed"),
        _ => {}
    }
    match ratio(1) {
        r if r >= 1.5 => words.push("frequent"),
        r if r <= 0.5 => words.push("rare"),
        _ => {}
    }
    words.push(match ratio(2) {
        r if r >= 2.0 => "big spenders",
        r if r <= 0.5 => "small spenders",
        _ => "average spenders",
    });
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_compare_each_centroid_with_the_overall_mean() {
        let overall = [60.0, 10.0, 1000.0];
        assert_eq!(cluster_label(&[20.0, 20.0, 3000.0], &overall), "recent frequent big spenders");
        assert_eq!(cluster_label(&[200.0, 2.0, 300.0], &overall), "lapsed rare small spenders");
        assert_eq!(cluster_label(&[60.0, 10.0, 1000.0], &overall), "average spenders");
    }

    #[test]
    fn a_rebased_score_counts_recency_to_the_new_date() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        let later = prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 };
        let stored = pb::ClientScore {
            as_of: Some(Date::from(d(2026, 11, 23))),
            rfm_code: "545".into(),
            recency_days: 18,
            last_purchase: Some(Date::from(d(2026, 11, 5))),
            ..pb::ClientScore::default()
        };
        let mut score = stored.clone();
        rebase(&mut score, d(2026, 11, 30), later);
        assert_eq!(
            (score.as_of, score.recency_days, score.compute_time),
            (Some(Date::from(d(2026, 11, 30))), 25, Some(later))
        );
        // As rfm::score counts it: a purchase after the date is recency 0.
        let mut past = stored.clone();
        rebase(&mut past, d(2026, 11, 1), later);
        assert_eq!(past.recency_days, 0);
        // Without RFM (no purchase in the window) recency stays 0.
        let mut unscored = pb::ClientScore { rfm_code: String::new(), recency_days: 0, ..stored };
        rebase(&mut unscored, d(2026, 11, 30), later);
        assert_eq!(unscored.recency_days, 0);
    }

    #[test]
    fn class_mappings_cover_absence() {
        assert_eq!(abc_class(None), common::AbcClass::Unspecified);
        assert_eq!(xyz_class(Some(XyzClass::Y)), common::XyzClass::Y);
        assert_eq!(lifecycle_status(LifecycleStatus::Restored), common::LifecycleStatus::Restored);
    }
}
