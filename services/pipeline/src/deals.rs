//! Deals and leads as the API shows them, and the funnel paths of stored
//! deals. Pure.
use crate::store::{ControlPointRow, DealRow, FunnelDeal, LeadRow, TransitionRow};
use branchscore_proto::common::v1::{Date, Money};
use branchscore_proto::convert::timestamp;
use branchscore_proto::pipeline::v1 as pb;
use branchscore_scoring::pipeline::DealPath;
use chrono::{DateTime, Utc};

pub const OPEN: i16 = pb::DealStatus::Open as i16;
pub const WON: i16 = pb::DealStatus::Won as i16;
pub const LOST: i16 = pb::DealStatus::Lost as i16;

pub fn lead(row: &LeadRow) -> pb::Lead {
    pb::Lead {
        id: row.id.clone(),
        branch_id: row.branch_id.clone(),
        owner_employee_id: row.owner_employee_id.clone(),
        channel: i32::from(row.channel),
        priority: i32::from(row.priority),
        receive_time: Some(timestamp(row.received_at)),
        first_response_time: row.first_response_at.map(timestamp),
        response_seconds: row.first_response_at.map_or(0, |at| (at - row.received_at).num_seconds()),
        sla_seconds: row.sla_seconds,
        client_id: row.client_id.clone(),
        contact_name: row.contact_name.clone(),
        deal_id: row.deal_id.clone().unwrap_or_default(),
    }
}

pub fn control_point(row: &ControlPointRow) -> pb::ControlPoint {
    pb::ControlPoint {
        id: row.id.clone(),
        deal_id: row.deal_id.clone(),
        stage: row.stage.clone(),
        kind: row.kind.clone(),
        due_date: Some(Date::from(row.due_date)),
        status: if row.completed_at.is_some() { pb::ControlPointStatus::Done } else { pb::ControlPointStatus::Open }
            as i32,
        complete_time: row.completed_at.map(timestamp),
        owner_employee_id: row.owner_employee_id.clone(),
        branch_id: row.branch_id.clone(),
    }
}

pub fn deal(row: &DealRow, history: &[TransitionRow], control_points: &[ControlPointRow]) -> pb::Deal {
    pb::Deal {
        id: row.id.clone(),
        client_id: row.client_id.clone(),
        branch_id: row.branch_id.clone(),
        owner_employee_id: row.owner_employee_id.clone(),
        pipeline_id: row.pipeline_id.clone(),
        pipeline_version: row.pipeline_version,
        stage: row.stage.clone(),
        probability_percent: i32::from(row.probability),
        status: i32::from(row.status),
        amount: Some(Money { minor_units: row.amount_minor, currency: row.currency.clone() }),
        expected_close_date: Some(Date::from(row.expected_close)),
        qualification: Some(pb::Qualification {
            right_person: row.right_person,
            right_plan: row.right_plan,
            right_budget: row.right_budget,
            right_timeline: row.right_timeline,
        }),
        lead_id: row.lead_id.clone().unwrap_or_default(),
        loss_reason: row.loss_reason.clone().unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        close_time: row.closed_at.map(timestamp),
        history: history
            .iter()
            .map(|t| pb::StageTransition {
                from_stage: t.from_stage.clone(),
                to_stage: t.to_stage.clone(),
                by: t.by_subject.clone(),
                transition_time: Some(timestamp(t.at)),
            })
            .collect(),
        control_points: control_points.iter().map(control_point).collect(),
    }
}

fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_seconds().max(0) as f64 / 86_400.0
}

/// The funnel path of a stored deal in a pipeline with `open_stages` open
/// stages (the won stage excluded).
pub fn path(deal: &FunnelDeal, open_stages: usize) -> DealPath {
    let open = |index: i32| usize::try_from(index).ok().filter(|i| *i < open_stages);
    let reached = deal.entered.iter().filter_map(|(index, _)| open(*index)).max().unwrap_or(0);
    let mut stays = Vec::new();
    for (k, (index, at)) in deal.entered.iter().enumerate() {
        let Some(stage) = open(*index) else { continue };
        let left = deal.entered.get(k + 1).map(|(_, next)| *next).or(deal.closed_at);
        if let Some(left) = left {
            stays.push((stage, days(*at, left)));
        }
    }
    DealPath {
        reached,
        won: deal.status == WON,
        lost_at: (deal.status == LOST).then(|| usize::try_from(deal.stage_index).unwrap_or(0)),
        stays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, 12, 0, 0).single().expect("time")
    }

    #[test]
    fn paths_measure_the_time_spent_in_each_open_stage() {
        // Opened at stage 0 on the 1st, stage 1 on the 4th, won (stage 3 of 4) on the 10th.
        let won = FunnelDeal {
            status: WON,
            stage_index: 3,
            loss_reason: None,
            closed_at: Some(at(10)),
            entered: vec![(0, at(1)), (1, at(4)), (3, at(10))],
        };
        assert_eq!(path(&won, 3), DealPath { reached: 1, won: true, lost_at: None, stays: vec![(0, 3.0), (1, 6.0)] });
        // Lost at stage 0 on the 3rd: the lost transition carries no stage.
        let lost = FunnelDeal {
            status: LOST,
            stage_index: 0,
            loss_reason: Some("price".into()),
            closed_at: Some(at(3)),
            entered: vec![(0, at(1))],
        };
        assert_eq!(path(&lost, 3), DealPath { reached: 0, won: false, lost_at: Some(0), stays: vec![(0, 2.0)] });
        // Still open: no stay is counted for the current stage.
        let open =
            FunnelDeal { status: OPEN, stage_index: 0, loss_reason: None, closed_at: None, entered: vec![(0, at(1))] };
        assert_eq!(path(&open, 3).stays, []);
    }
}
