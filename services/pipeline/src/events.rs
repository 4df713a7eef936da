//! Stage events out of the outbox: to gRPC watchers (resumable from a
//! cursor) and, when Redis is configured, to the `pipeline:stage_events`
//! Redis Stream. Both deliver at least once; consumers deduplicate by event id.
use crate::store::{self, EventRow};
use branchscore_platform::cache::Cache;
use branchscore_platform::shutdown::CancellationToken;
use branchscore_proto::convert::timestamp;
use branchscore_proto::pipeline::v1::{StageEvent, WatchEventsResponse};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tonic::Status;

/// The Redis Stream (under the configured key prefix) the relay appends to.
pub const STREAM: &str = "pipeline:stage_events";
const BATCH: i64 = 500;
/// A watcher with nothing new checks the outbox at least this often, so
/// events written by other replicas arrive too.
const POLL: Duration = Duration::from_millis(250);

pub fn message(row: &EventRow) -> StageEvent {
    StageEvent {
        cursor: row.cursor,
        event_id: row.event_id.clone(),
        kind: i32::from(row.kind),
        deal_id: row.deal_id.clone(),
        client_id: row.client_id.clone(),
        branch_id: row.branch_id.clone(),
        stage: row.stage.clone(),
        event_time: Some(timestamp(row.created_at)),
    }
}

/// Streams events after `cursor` within `scope` until the watcher goes away.
pub async fn watch(
    pool: PgPool,
    written: Arc<Notify>,
    mut cursor: i64,
    scope: Option<Vec<String>>,
    sender: mpsc::Sender<Result<WatchEventsResponse, Status>>,
) {
    loop {
        let rows = match store::events_after(&pool, cursor, scope.as_deref(), BATCH).await {
            Ok(rows) => rows,
            Err(err) => {
                let _ = sender.send(Err(branchscore_platform::AppError::from(err).into())).await;
                return;
            }
        };
        for row in &rows {
            cursor = row.cursor;
            if sender.send(Ok(WatchEventsResponse { event: Some(message(row)) })).await.is_err() {
                return;
            }
        }
        if rows.len() as i64 == BATCH {
            continue;
        }
        tokio::select! {
            _ = sender.closed() => return,
            _ = written.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Appends new outbox events to the Redis Stream, remembering how far it got
/// in Postgres; an unreachable Redis is retried on the next tick.
pub async fn relay(pool: PgPool, cache: Cache, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(err) = relay_once(&pool, &cache).await {
            // Before migrations, or Postgres briefly away: the next tick tries again.
            tracing::debug!(error = %err, "stage event relay paused");
        }
    }
}

async fn relay_once(pool: &PgPool, cache: &Cache) -> sqlx::Result<()> {
    loop {
        let cursor = store::relay_cursor(pool).await?;
        let rows = store::events_after(pool, cursor, None, BATCH).await?;
        let Some(last) = rows.last().map(|r| r.cursor) else { return Ok(()) };
        let entries: Vec<Vec<(&str, String)>> = rows
            .iter()
            .map(|r| {
                vec![
                    ("event_id", r.event_id.clone()),
                    ("cursor", r.cursor.to_string()),
                    ("kind", r.kind.to_string()),
                    ("deal_id", r.deal_id.clone()),
                    ("client_id", r.client_id.clone()),
                    ("branch_id", r.branch_id.clone()),
                    ("stage", r.stage.clone()),
                    ("event_time", r.created_at.to_rfc3339()),
                ]
            })
            .collect();
        if !cache.append_to_stream(STREAM, &entries).await {
            return Ok(());
        }
        store::set_relay_cursor(pool, last).await?;
        if (rows.len() as i64) < BATCH {
            return Ok(());
        }
    }
}
