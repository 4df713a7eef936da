//! The transactional outbox and `WatchOutbox`.
//!
//! Events are written in the transaction of the change they announce, as
//! its last statement and under a transaction-scoped advisory lock: cursors
//! are then handed out in commit order, so a consumer that resumes after
//! cursor c can never miss an event committed later with a smaller cursor.
//! Watchers poll (other replicas' events) and are woken at once by commits
//! of this process. Delivery is at least once; consumers deduplicate by cursor.
use crate::Feedback;
use crate::store;
use branchscore_platform::AppError;
use branchscore_proto::feedback::v1::outbox_event::Payload;
use branchscore_proto::feedback::v1::{OutboxEvent, OutboxTopic, WatchOutboxResponse};
use prost::Message;
use sqlx::{Postgres, Transaction};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Wakes this process's watchers after a commit that wrote events.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn committed(&self) {
        self.0.notify_waiters();
    }
}

/// Serialises outbox writers until their commit ("fbox").
const OUTBOX_LOCK: i64 = 0x6662_6f78;
/// Events read per query while catching up.
const BATCH: i64 = 500;

/// Appends events; call it last in the transaction, then
/// [`OutboxSignal::committed`] after the commit.
pub async fn append(tx: &mut Transaction<'_, Postgres>, events: &[OutboxEvent]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(OUTBOX_LOCK).execute(&mut **tx).await?;
    let topics: Vec<i16> = events.iter().map(|e| e.topic as i16).collect();
    let branches: Vec<String> = events.iter().map(|e| e.branch_id.clone()).collect();
    let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.encode_to_vec()).collect();
    sqlx::query(
        "INSERT INTO outbox (topic, branch_id, payload)
         SELECT * FROM UNNEST($1::smallint[], $2::text[], $3::bytea[])",
    )
    .bind(topics)
    .bind(branches)
    .bind(payloads)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An event to append (its cursor and time are set by the database).
pub fn event(topic: OutboxTopic, branch_id: &str, payload: Payload) -> OutboxEvent {
    OutboxEvent {
        cursor: 0,
        topic: topic as i32,
        branch_id: branch_id.to_owned(),
        create_time: None,
        payload: Some(payload),
    }
}

/// Streams the events after `after` that the caller may see, then new ones
/// as they commit, until the caller goes away or the service shuts down.
pub fn watch(
    feedback: Feedback,
    scope: Option<Vec<String>>,
    topics: Vec<i16>,
    after: i64,
) -> ReceiverStream<Result<WatchOutboxResponse, Status>> {
    let (sender, receiver) = mpsc::channel(BATCH as usize);
    tokio::spawn(async move {
        let mut cursor = after;
        loop {
            // Registered before reading, so a commit between the read and the wait still wakes us.
            let notified = feedback.outbox.0.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let rows = match store::outbox::after(&feedback.pool, cursor, scope.as_deref(), &topics, BATCH).await {
                Ok(rows) => rows,
                Err(err) => {
                    let _ = sender.send(Err(Status::from(AppError::from(err)))).await;
                    return;
                }
            };
            if rows.is_empty() {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(feedback.config.outbox_poll_ms) => {}
                    _ = sender.closed() => return,
                    _ = feedback.shutdown.cancelled() => {
                        let _ = sender.send(Err(Status::unavailable("shutting down; resume from the last cursor"))).await;
                        return;
                    }
                }
                continue;
            }
            for row in rows {
                cursor = row.cursor;
                let event = match finished(&feedback, row) {
                    Ok(event) => event,
                    Err(err) => {
                        let _ = sender.send(Err(Status::from(err))).await;
                        return;
                    }
                };
                if sender.send(Ok(WatchOutboxResponse { event: Some(event) })).await.is_err() {
                    return;
                }
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// The stored event with its cursor, time and, for deliveries, the link
/// (derived now: the database never holds it).
fn finished(feedback: &Feedback, row: store::outbox::OutboxRow) -> Result<OutboxEvent, AppError> {
    let mut event = OutboxEvent::decode(row.payload.as_slice()).map_err(AppError::internal)?;
    event.cursor = row.cursor;
    event.create_time = Some(crate::convert::timestamp(row.created_at));
    if let Some(Payload::InvitationDelivery(delivery)) = &mut event.payload
        && let Some(id) = delivery.invitation.as_ref().and_then(|i| i.id.parse().ok())
    {
        delivery.link_url = feedback.links.url(&feedback.links.token(id));
    }
    Ok(event)
}
