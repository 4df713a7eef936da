//! Escalation of overdue complaints: a periodic sweep in every replica.
//! Rows are locked with SKIP LOCKED and the level is re-checked under the
//! lock, so replicas sweeping together escalate each complaint once.
use crate::Feedback;
use crate::complaints::{SYSTEM, change_event};
use crate::outbox;
use crate::store;
use crate::store::complaints::proto_state;
use branchscore_platform::shutdown::{CancellationToken, Ticks};
use branchscore_proto::feedback::v1::{ComplaintEvent, ComplaintEventKind};
use branchscore_scoring::complaints::escalation_due;
use chrono::{Duration, Utc};

/// Complaints escalated per transaction.
const BATCH: i64 = 200;

/// Sweeps until shutdown, once the schema is in place.
pub async fn run(feedback: Feedback, shutdown: CancellationToken) {
    let mut ticks = Ticks::new(feedback.config.complaints.escalation_check_ms, shutdown);
    while ticks.next().await {
        match branchscore_platform::db::is_migrated(&feedback.pool, &crate::MIGRATOR).await {
            Ok(true) => {}
            Ok(false) | Err(_) => continue,
        }
        match sweep(&feedback).await {
            Ok(0) => {}
            Ok(escalated) => tracing::info!(escalated, "overdue complaints escalated"),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "escalation sweep failed; retrying next tick"),
        }
    }
}

/// Escalates every complaint due an escalation now; returns how many.
pub async fn sweep(feedback: &Feedback) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let now = Utc::now();
        let mut tx = feedback.pool.begin().await?;
        let candidates = store::complaints::overdue(&mut tx, now, BATCH).await?;
        let mut events = Vec::new();
        for mut complaint in candidates.iter().cloned() {
            let (Some(due_at), Some(state)) = (complaint.due_at, complaint.state()) else { continue };
            let step = Duration::milliseconds(complaint.deadline_ms);
            let level = u8::try_from(complaint.escalation_level).unwrap_or(u8::MAX);
            if !escalation_due(now, due_at, step, level) {
                continue;
            }
            complaint.escalation_level += 1;
            store::complaints::update(&mut tx, &complaint).await?;
            let event = ComplaintEvent {
                sequence: 0,
                kind: ComplaintEventKind::Escalated as i32,
                from_state: proto_state(state),
                to_state: proto_state(state),
                actor: SYSTEM.to_owned(),
                owner: complaint.owner.clone(),
                note: format!("{} past its deadline in state {}", complaint.id, state.name()),
                escalation_level: i32::from(complaint.escalation_level),
                time: Some(crate::convert::timestamp(now)),
            };
            let sequence = store::complaints::append_event(&mut tx, complaint.id, &event, now).await?;
            events.push(change_event(&complaint, ComplaintEvent { sequence, ..event }, now));
        }
        let escalated = events.len() as u64;
        outbox::append(&mut tx, &events).await?;
        tx.commit().await?;
        if escalated > 0 {
            feedback.outbox.committed();
            metrics::counter!("complaints_escalated_total").increment(escalated);
        }
        total += escalated;
        // A full batch may leave more behind it.
        if candidates.len() < BATCH as usize || escalated == 0 {
            return Ok(total);
        }
    }
}
