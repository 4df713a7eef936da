//! The stream of an exported file: its description, then its bytes in
//! chunks cut as the caller's connection takes them. While it lives it
//! renews the export's lease; when it is dropped (finished, or cut off by
//! the caller) the audit records whether the last chunk went out. A process
//! that stops mid-stream records nothing: its lease runs out instead.
use crate::export::CHUNK_BYTES;
use crate::store;
use branchscore_proto::reporting::v1::{ExportFile, ExportReportResponse, ExportStatus, export_report_response};
use chrono::Utc;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tonic::Status;
use uuid::Uuid;

/// How long a streaming export's lease runs: renewed every third of it
/// while the stream lives, so a process that stops leaves its exports
/// streaming for at most this long before they read as interrupted.
pub const EXPORT_LEASE: Duration = Duration::from_secs(60);

/// An export on its way to the caller.
#[derive(Debug)]
pub struct ExportStream {
    description: Option<ExportFile>,
    file: Vec<u8>,
    sent: usize,
    pool: sqlx::PgPool,
    id: Uuid,
    renewal: JoinHandle<()>,
}

impl ExportStream {
    /// The stream of export `id`, recorded with a lease of `lease`, which
    /// it renews until it is dropped. Call within the runtime.
    pub fn new(description: ExportFile, file: Vec<u8>, pool: sqlx::PgPool, id: Uuid, lease: Duration) -> Self {
        let renewal = tokio::spawn(renew(pool.clone(), id, lease));
        ExportStream { description: Some(description), file, sent: 0, pool, id, renewal }
    }

    fn delivered(&self) -> bool {
        self.description.is_none() && self.sent == self.file.len()
    }
}

impl Stream for ExportStream {
    type Item = Result<ExportReportResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let content = if let Some(description) = self.description.take() {
            export_report_response::Content::File(description)
        } else if self.sent < self.file.len() {
            let end = (self.sent + CHUNK_BYTES).min(self.file.len());
            let chunk = self.file[self.sent..end].to_vec();
            self.sent = end;
            export_report_response::Content::Chunk(chunk)
        } else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(Ok(ExportReportResponse { content: Some(content) })))
    }
}

/// Renews the lease of export `id` every third of `lease`, for ever (the
/// stream aborts it); a failed renewal is retried on the next turn.
async fn renew(pool: sqlx::PgPool, id: Uuid, lease: Duration) {
    let mut turns = tokio::time::interval(lease / 3);
    turns.tick().await;
    loop {
        turns.tick().await;
        if let Err(err) = store::renew_lease(&pool, id, lease).await {
            tracing::warn!(export = %id, error = %err, "could not renew the lease of an export");
        }
    }
}

impl Drop for ExportStream {
    fn drop(&mut self) {
        self.renewal.abort();
        let status = if self.delivered() { ExportStatus::Delivered } else { ExportStatus::Interrupted };
        let (pool, id) = (self.pool.clone(), self.id);
        // Dropped by tonic inside the runtime; a drop elsewhere (a test, a
        // shutdown) leaves the record to its lease.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            if let Err(err) = store::finish_export(&pool, id, status, Utc::now()).await {
                tracing::warn!(export = %id, error = %err, "could not record the end of an export");
            }
        });
    }
}
