//! Loads a generated network through the public gRPC API, the way an ERP
//! integration would: master data in batches, sales as client streams.
use super::network::Network;
use branchscore_platform::client::{CallCredentials, RetryPolicy};
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{Date, Money};
use indicatif::{ProgressBar, ProgressStyle};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Clients = ClientsServiceClient<InterceptedService<Channel, CallCredentials>>;

/// Items per batch upsert (the service takes up to 1000).
const BATCH: usize = 500;
/// Lines per stream message, and messages per stream: each stream is one
/// committed unit, so progress counts only rows the service has made durable.
const LINES_PER_MESSAGE: usize = 5_000;
const MESSAGES_PER_STREAM: usize = 10;

/// What the service answered while loading.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub clients_created: i64,
    pub accepted: i64,
    pub duplicates: i64,
    pub rejected: i64,
    /// The first stream sent again: everything must come back as a duplicate.
    pub resend: ImportTransactionsResponse,
    /// Deliberately broken lines: each must be refused with its reason.
    pub broken: ImportTransactionsResponse,
}

fn bar(len: usize, message: &'static str) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{msg:>14} [{bar:40.cyan/blue}] {human_pos}/{human_len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    ProgressBar::new(len as u64).with_style(style).with_message(message)
}

/// Upserts the master data, then streams every sales line.
pub async fn load(clients: &Clients, retry: &RetryPolicy, network: &Network) -> anyhow::Result<LoadReport> {
    let mut report = LoadReport::default();
    let master = bar(
        network.branches.len() + network.employees.len() + network.products.len() + network.clients.len(),
        "master data",
    );
    let request = BatchUpsertBranchesRequest { branches: network.branches.clone() };
    retry
        .call_idempotent(|| call(clients, &request, |mut c, r| async move { c.batch_upsert_branches(r).await }))
        .await?;
    master.inc(network.branches.len() as u64);
    // Team leads first: a sales person's team lead must already exist.
    let (leads, others): (Vec<_>, Vec<_>) = network.employees.iter().cloned().partition(|e| e.team_lead_id.is_empty());
    for employees in [leads, others] {
        for chunk in employees.chunks(BATCH) {
            let request = BatchUpsertEmployeesRequest { employees: chunk.to_vec() };
            retry
                .call_idempotent(|| {
                    call(clients, &request, |mut c, r| async move { c.batch_upsert_employees(r).await })
                })
                .await?;
            master.inc(chunk.len() as u64);
        }
    }
    let request =
        BatchUpsertProductsRequest { product_lines: network.product_lines.clone(), products: network.products.clone() };
    retry
        .call_idempotent(|| call(clients, &request, |mut c, r| async move { c.batch_upsert_products(r).await }))
        .await?;
    master.inc(network.products.len() as u64);
    for chunk in network.clients.chunks(BATCH) {
        let request = BatchUpsertClientsRequest { clients: chunk.to_vec() };
        let reply = retry
            .call_idempotent(|| call(clients, &request, |mut c, r| async move { c.batch_upsert_clients(r).await }))
            .await?;
        report.clients_created += i64::from(reply.into_inner().created_count);
        master.inc(chunk.len() as u64);
    }
    master.finish();

    let sales = bar(network.lines.len(), "sales lines");
    for stream in network.lines.chunks(LINES_PER_MESSAGE * MESSAGES_PER_STREAM) {
        let reply = import(clients, stream).await?;
        report.accepted += reply.accepted;
        report.duplicates += reply.duplicates;
        report.rejected += reply.rejected;
        sales.inc(stream.len() as u64);
    }
    sales.finish();

    let first = &network.lines[..network.lines.len().min(LINES_PER_MESSAGE)];
    report.resend = import(clients, first).await?;
    report.broken = import(clients, &broken_lines(network)).await?;
    Ok(report)
}

/// One attempt of a unary call on a fresh handle (retries need owned arguments).
fn call<Req: Clone, Fut>(clients: &Clients, request: &Req, rpc: impl FnOnce(Clients, Req) -> Fut) -> Fut {
    rpc(clients.clone(), request.clone())
}

/// One client stream carrying `lines`; the reply arrives once they are committed.
async fn import(clients: &Clients, lines: &[TransactionLine]) -> anyhow::Result<ImportTransactionsResponse> {
    let messages: Vec<ImportTransactionsRequest> =
        lines.chunks(LINES_PER_MESSAGE).map(|chunk| ImportTransactionsRequest { lines: chunk.to_vec() }).collect();
    Ok(clients.clone().import_transactions(tokio_stream::iter(messages)).await?.into_inner())
}

/// Three lines an ERP might really send by mistake.
fn broken_lines(network: &Network) -> Vec<TransactionLine> {
    let Some(template) = network.lines.first() else { return Vec::new() };
    let future = Date { year: 2999, month: 1, day: 1 };
    vec![
        TransactionLine { id: "DEMO-BAD-DATE".into(), business_date: Some(future), ..template.clone() },
        TransactionLine { id: "DEMO-BAD-CLIENT".into(), client_id: "NO-SUCH-CLIENT".into(), ..template.clone() },
        TransactionLine {
            id: "DEMO-BAD-AMOUNT".into(),
            amount: template.amount.as_ref().map(|m| Money { minor_units: -m.minor_units.abs(), ..m.clone() }),
            ..template.clone()
        },
    ]
}
