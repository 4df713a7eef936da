//! The `branchscore.clients.v1.ClientsService` implementation: validate,
//! authorise, call the store, map errors.
use crate::explain;
use crate::ingest::{self, KnownReferences};
use crate::latest_run::LatestRun;
use crate::score_cache::{Cached, ScoreCache};
use crate::store::{self, Catalogue, ClientFilter};
use branchscore_platform::coalesce::Coalescer;
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::clients::v1::clients_service_server::ClientsService;
use branchscore_proto::clients::v1::*;
use branchscore_proto::convert;
use chrono::Datelike;
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most items one batch call takes.
pub const MAX_BATCH: usize = 1000;
/// Most lines one `ImportTransactionsRequest` message carries.
pub const MAX_LINES_PER_MESSAGE: usize = 10_000;
/// Insert transactions of one import stream running at once.
const INSERTS_IN_FLIGHT: usize = 3;
/// Refusals listed in the import reply (all are counted).
const MAX_LISTED_REJECTIONS: usize = 1000;
/// Postgres reads of cache-missed scores running at once; misses arriving
/// meanwhile join the next read. Fewer, larger reads cost Postgres less per
/// score: at 5 000 misses a second on 2 cores, 2 gave a p50 of 2.1 ms, 4 gave
/// 2.8-4.1 ms (docs/benchmarks.md).
const SCORE_READS_IN_FLIGHT: usize = 2;

const READERS: &[Role] = &Role::ALL;
const MASTER_DATA_WRITERS: &[Role] = &[Role::Admin, Role::ErpIntegration];
const STAFF_WRITERS: &[Role] = &[Role::Admin, Role::ErpIntegration, Role::BranchManager];
const CLIENT_WRITERS: &[Role] = &[Role::Admin, Role::ErpIntegration, Role::BranchManager, Role::BranchStaff];

/// The clients service.
#[derive(Debug, Clone)]
pub struct ClientsApi {
    pool: PgPool,
    score_cache: ScoreCache,
    company: CompanyConfig,
    stored_scores: Coalescer<String, ClientScore>,
    latest_run: LatestRun,
}

impl ClientsApi {
    /// Call within a Tokio runtime: it starts the task that coalesces score reads.
    pub fn new(pool: PgPool, score_cache: ScoreCache, company: CompanyConfig, latest_run: LatestRun) -> Self {
        let stored_scores = stored_scores(pool.clone(), score_cache.clone());
        ClientsApi { pool, score_cache, company, stored_scores, latest_run }
    }

    /// Scores of `ids` within the caller's scope: cache first, Postgres for
    /// the misses (which then fill the cache). A cached score of a run not
    /// finished is a miss: the run may still be writing it, or have failed.
    async fn scores(&self, ids: &[String], principal: &Principal) -> AppResult<Vec<ClientScore>> {
        let runs = self.latest_run.get().await?;
        let cached = self.score_cache.get_many(ids).await;
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        // Cached records that will never be served, to replace after the read.
        let mut unservable = Vec::new();
        for (id, cached) in ids.iter().zip(cached) {
            let Some(Cached { record, score }) = cached else {
                missing.push(id.clone());
                continue;
            };
            match score {
                Some(score) if runs.hold(score.compute_time.as_ref()) => found.push(score),
                Some(score) if !runs.dead(score.compute_time.as_ref()) => missing.push(id.clone()),
                // A dead run's score, or a record that does not decode.
                _ => {
                    unservable.push((id.clone(), record));
                    missing.push(id.clone());
                }
            }
        }
        if !missing.is_empty() {
            let stored = self.stored_scores.get(missing).await?;
            if !unservable.is_empty() {
                self.score_cache.replace_unservable(unservable, &stored).await;
            }
            found.extend(stored);
        }
        found.retain(|score| principal.can_access(&score.branch_id));
        if let Some(run) = runs.newest {
            let started = convert::timestamp(run.started_at);
            // A score computed before the newest run was found unchanged by it.
            for score in &mut found {
                if score.compute_time.is_none_or(|t| (t.seconds, t.nanos) < (started.seconds, started.nanos)) {
                    explain::rebase(score, run.as_of, started);
                }
            }
        }
        Ok(found)
    }
}

/// Counts one finished insert task (offered, inserted) into the reply.
fn add_inserted(
    reply: &mut ImportTransactionsResponse,
    joined: Option<Result<sqlx::Result<(u64, u64)>, tokio::task::JoinError>>,
) -> AppResult<()> {
    let Some(joined) = joined else { return Ok(()) };
    let (offered, inserted) = joined.map_err(AppError::internal)??;
    reply.accepted += inserted as i64;
    reply.duplicates += (offered - inserted) as i64;
    Ok(())
}

/// Stored scores of cache misses, read together with the misses of other
/// calls in flight, and put in the cache. The whole network's rows are read so
/// the cache is filled for every caller; `ClientsApi::scores` applies the
/// caller's scope to cached and stored scores alike.
fn stored_scores(pool: PgPool, score_cache: ScoreCache) -> Coalescer<String, ClientScore> {
    let read = move |ids: Vec<String>| {
        let (pool, score_cache) = (pool.clone(), score_cache.clone());
        Box::pin(async move {
            let stored = store::scores_by_ids(&pool, &ids, None).await?;
            score_cache.fill(&stored).await;
            Ok(stored.into_iter().map(|s| (s.client_id.clone(), s)).collect())
        }) as futures::future::BoxFuture<'static, AppResult<_>>
    };
    Coalescer::new("client_scores", SCORE_READS_IN_FLIGHT, MAX_BATCH, Arc::new(read))
}

fn scope(principal: &Principal) -> Option<Vec<String>> {
    principal.branch_filter()
}

fn check_batch_size(field: &str, len: usize) -> AppResult<()> {
    if len == 0 || len > MAX_BATCH {
        return Err(AppError::invalid_field(field, format!("must hold 1-{MAX_BATCH} items, got {len}")));
    }
    Ok(())
}

fn check_unique<'a>(violations: &mut Violations, field: &str, ids: impl Iterator<Item = &'a String>) {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            violations.add(format!("{field}[{i}].id"), format!("repeats id {id:?} within the batch"));
        }
    }
}

fn check_enum<E: TryFrom<i32>>(violations: &mut Violations, field: impl FnOnce() -> String, value: i32) {
    violations.check(value != 0 && E::try_from(value).is_ok(), field, "must be one of the enum's named values");
}

#[tonic::async_trait]
impl ClientsService for ClientsApi {
    async fn batch_upsert_branches(
        &self,
        request: Request<BatchUpsertBranchesRequest>,
    ) -> Result<Response<BatchUpsertBranchesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(MASTER_DATA_WRITERS)?;
        let branches = &request.get_ref().branches;
        check_batch_size("branches", branches.len())?;
        let mut v = Violations::new();
        check_unique(&mut v, "branches", branches.iter().map(|b| &b.id));
        for (i, branch) in branches.iter().enumerate() {
            v.id(|| format!("branches[{i}].id"), &branch.id);
            v.text(|| format!("branches[{i}].name"), &branch.name, 200);
            v.check(
                branch.currency.len() == 3 && branch.currency.bytes().all(|b| b.is_ascii_uppercase()),
                || format!("branches[{i}].currency"),
                "must be an ISO 4217 code such as PLN",
            );
        }
        v.finish()?;
        for branch in branches {
            principal.ensure_branch(&branch.id)?;
        }
        store::upsert_branches(&self.pool, branches).await.map_err(AppError::from)?;
        Ok(Response::new(BatchUpsertBranchesResponse { branches: request.into_inner().branches }))
    }

    async fn list_branches(
        &self,
        request: Request<ListBranchesRequest>,
    ) -> Result<Response<ListBranchesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let branches = store::list_branches(&self.pool, scope(principal).as_deref()).await.map_err(AppError::from)?;
        Ok(Response::new(ListBranchesResponse { branches }))
    }

    async fn batch_upsert_employees(
        &self,
        request: Request<BatchUpsertEmployeesRequest>,
    ) -> Result<Response<BatchUpsertEmployeesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(STAFF_WRITERS)?;
        let employees = &request.get_ref().employees;
        check_batch_size("employees", employees.len())?;
        let mut v = Violations::new();
        check_unique(&mut v, "employees", employees.iter().map(|e| &e.id));
        let branch_ids: Vec<String> = employees.iter().map(|e| e.branch_id.clone()).collect();
        let known_branches =
            store::existing(&self.pool, Catalogue::Branches, &branch_ids).await.map_err(AppError::from)?;
        let lead_ids: Vec<String> =
            employees.iter().map(|e| e.team_lead_id.clone()).filter(|id| !id.is_empty()).collect();
        let mut lead_branches = store::employee_branches(&self.pool, &lead_ids).await.map_err(AppError::from)?;
        lead_branches.extend(employees.iter().map(|e| (e.id.clone(), e.branch_id.clone())));
        for (i, employee) in employees.iter().enumerate() {
            v.id(|| format!("employees[{i}].id"), &employee.id);
            v.text(|| format!("employees[{i}].full_name"), &employee.full_name, 200);
            check_enum::<branchscore_proto::common::v1::EmployeeRole>(
                &mut v,
                || format!("employees[{i}].role"),
                employee.role,
            );
            v.check(
                known_branches.contains(&employee.branch_id),
                || format!("employees[{i}].branch_id"),
                "unknown branch",
            );
            if !employee.team_lead_id.is_empty() {
                match lead_branches.get(&employee.team_lead_id) {
                    None => v.add(format!("employees[{i}].team_lead_id"), "unknown employee"),
                    Some(branch) if *branch != employee.branch_id => {
                        v.add(format!("employees[{i}].team_lead_id"), "the team lead works at another branch")
                    }
                    Some(_) => v.check(
                        employee.team_lead_id != employee.id,
                        || format!("employees[{i}].team_lead_id"),
                        "an employee cannot lead themselves",
                    ),
                }
            }
        }
        v.finish()?;
        for employee in employees {
            principal.ensure_branch(&employee.branch_id)?;
        }
        let mut tx = self.pool.begin().await.map_err(AppError::from)?;
        let refused =
            store::upsert_employees(&mut tx, employees, scope(principal).as_deref()).await.map_err(AppError::from)?;
        if !refused.is_empty() {
            return Err(
                AppError::permission_denied(format!("employees {refused:?} belong to branches outside yours")).into()
            );
        }
        tx.commit().await.map_err(AppError::from)?;
        Ok(Response::new(BatchUpsertEmployeesResponse { employees: request.into_inner().employees }))
    }

    async fn list_employees(
        &self,
        request: Request<ListEmployeesRequest>,
    ) -> Result<Response<ListEmployeesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let branch_id = &request.get_ref().branch_id;
        if !branch_id.is_empty() {
            principal.ensure_branch(branch_id)?;
        }
        let employees =
            store::list_employees(&self.pool, scope(principal).as_deref(), branch_id).await.map_err(AppError::from)?;
        Ok(Response::new(ListEmployeesResponse { employees }))
    }

    async fn batch_upsert_products(
        &self,
        request: Request<BatchUpsertProductsRequest>,
    ) -> Result<Response<BatchUpsertProductsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(MASTER_DATA_WRITERS)?;
        let body = request.get_ref();
        check_batch_size("products", body.products.len() + body.product_lines.len())?;
        let mut v = Violations::new();
        check_unique(&mut v, "product_lines", body.product_lines.iter().map(|l| &l.id));
        check_unique(&mut v, "products", body.products.iter().map(|p| &p.id));
        for (i, line) in body.product_lines.iter().enumerate() {
            v.id(|| format!("product_lines[{i}].id"), &line.id);
            v.text(|| format!("product_lines[{i}].name"), &line.name, 200);
        }
        let line_ids: Vec<String> = body.products.iter().map(|p| p.product_line_id.clone()).collect();
        let mut known_lines =
            store::existing(&self.pool, Catalogue::ProductLines, &line_ids).await.map_err(AppError::from)?;
        known_lines.extend(body.product_lines.iter().map(|l| l.id.clone()));
        for (i, product) in body.products.iter().enumerate() {
            v.id(|| format!("products[{i}].id"), &product.id);
            v.text(|| format!("products[{i}].name"), &product.name, 200);
            v.check(
                known_lines.contains(&product.product_line_id),
                || format!("products[{i}].product_line_id"),
                "unknown product line",
            );
        }
        v.finish()?;
        let mut tx = self.pool.begin().await.map_err(AppError::from)?;
        store::upsert_products(&mut tx, &body.product_lines, &body.products).await.map_err(AppError::from)?;
        tx.commit().await.map_err(AppError::from)?;
        let body = request.into_inner();
        Ok(Response::new(BatchUpsertProductsResponse { product_lines: body.product_lines, products: body.products }))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let (product_lines, products) = store::list_products(&self.pool).await.map_err(AppError::from)?;
        Ok(Response::new(ListProductsResponse { product_lines, products }))
    }

    async fn batch_upsert_clients(
        &self,
        request: Request<BatchUpsertClientsRequest>,
    ) -> Result<Response<BatchUpsertClientsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(CLIENT_WRITERS)?;
        let clients = &request.get_ref().clients;
        check_batch_size("clients", clients.len())?;
        let today = self.company.today().map_err(AppError::internal)?;
        let branch_ids: Vec<String> = clients.iter().map(|c| c.branch_id.clone()).collect();
        let known_branches =
            store::existing(&self.pool, Catalogue::Branches, &branch_ids).await.map_err(AppError::from)?;
        let owner_ids: Vec<String> =
            clients.iter().map(|c| c.owner_employee_id.clone()).filter(|id| !id.is_empty()).collect();
        let owner_branches = store::employee_branches(&self.pool, &owner_ids).await.map_err(AppError::from)?;
        let mut v = Violations::new();
        check_unique(&mut v, "clients", clients.iter().map(|c| &c.id));
        for (i, client) in clients.iter().enumerate() {
            v.id(|| format!("clients[{i}].id"), &client.id);
            v.text(|| format!("clients[{i}].name"), &client.name, 300);
            check_enum::<branchscore_proto::common::v1::ClientKind>(
                &mut v,
                || format!("clients[{i}].kind"),
                client.kind,
            );
            v.check(
                branchscore_proto::common::v1::SizeBand::try_from(client.size_band).is_ok(),
                || format!("clients[{i}].size_band"),
                "must be one of the enum's values",
            );
            v.check(
                client.founding_year == 0 || (1800..=today.year()).contains(&client.founding_year),
                || format!("clients[{i}].founding_year"),
                "must be 0 (unknown) or a year between 1800 and this year",
            );
            v.check(known_branches.contains(&client.branch_id), || format!("clients[{i}].branch_id"), "unknown branch");
            if !client.owner_employee_id.is_empty() {
                v.check(
                    owner_branches.get(&client.owner_employee_id) == Some(&client.branch_id),
                    || format!("clients[{i}].owner_employee_id"),
                    "must be an employee of the client's branch",
                );
            }
            match client.known_since.as_ref().map(|d| d.to_naive()) {
                Some(Some(date)) => {
                    v.check(date <= today, || format!("clients[{i}].known_since"), "must not be in the future")
                }
                Some(None) => v.add(format!("clients[{i}].known_since"), "must be a real calendar date"),
                None => v.add(format!("clients[{i}].known_since"), "is required"),
            }
            v.check(
                client.lifecycle_status == 0 && client.abc_class == 0,
                || format!("clients[{i}]"),
                "lifecycle_status and abc_class are output only",
            );
        }
        v.finish()?;
        for client in clients {
            principal.ensure_branch(&client.branch_id)?;
        }
        let mut tx = self.pool.begin().await.map_err(AppError::from)?;
        let outcome =
            store::upsert_clients(&mut tx, clients, scope(principal).as_deref()).await.map_err(AppError::from)?;
        if !outcome.out_of_scope.is_empty() {
            return Err(AppError::permission_denied(format!(
                "clients {:?} belong to branches outside yours",
                outcome.out_of_scope
            ))
            .into());
        }
        tx.commit().await.map_err(AppError::from)?;
        // A moved client's cached score names its old branch. Purged now;
        // if Redis fails, every replica keeps trying (`ScoreCache::keep_settling`).
        if !outcome.owed_purges.is_empty()
            && let Err(error) = self.score_cache.settle(&outcome.owed_purges).await
        {
            tracing::warn!(%error, "purges of moved clients' cached scores stay owed");
        }
        let ids: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
        let stored = store::clients_by_ids(&self.pool, &ids, None).await.map_err(AppError::from)?;
        Ok(Response::new(BatchUpsertClientsResponse { clients: stored, created_count: outcome.created as i32 }))
    }

    async fn get_client(&self, request: Request<GetClientRequest>) -> Result<Response<GetClientResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let id = &request.get_ref().id;
        let mut v = Violations::new();
        v.id(|| "id".into(), id);
        v.finish()?;
        let client = store::clients_by_ids(&self.pool, std::slice::from_ref(id), scope(principal).as_deref())
            .await
            .map_err(AppError::from)?
            .pop()
            .ok_or_else(|| AppError::not_found(format!("client {id}")))?;
        Ok(Response::new(GetClientResponse { client: Some(client) }))
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let body = request.get_ref();
        let mut v = Violations::new();
        v.check((0..=1000).contains(&body.page_size), || "page_size".into(), "must be between 0 and 1000");
        let after = page_token::decode(&body.page_token);
        v.check(after.is_some(), || "page_token".into(), "is not a token this service issued");
        v.finish()?;
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let limit = if body.page_size == 0 { 100 } else { i64::from(body.page_size) };
        let filter = ClientFilter {
            branch_id: body.branch_id.clone(),
            owner_employee_id: body.owner_employee_id.clone(),
            lifecycle_status: body.lifecycle_status,
            abc_class: body.abc_class,
        };
        let mut clients = store::list_clients(
            &self.pool,
            &filter,
            scope(principal).as_deref(),
            &after.unwrap_or_default(),
            limit + 1,
        )
        .await
        .map_err(AppError::from)?;
        let next_page_token = if clients.len() as i64 > limit {
            clients.truncate(limit as usize);
            clients.last().map(|c| page_token::encode(&c.id)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListClientsResponse { clients, next_page_token }))
    }

    async fn list_first_purchases(
        &self,
        request: Request<ListFirstPurchasesRequest>,
    ) -> Result<Response<ListFirstPurchasesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let body = request.get_ref();
        let (from, to) = (body.from.and_then(|d| d.to_naive()), body.to.and_then(|d| d.to_naive()));
        let mut v = Violations::new();
        v.check(from.is_some(), || "from".into(), "is required and must be a real calendar date");
        v.check(to.is_some(), || "to".into(), "is required and must be a real calendar date");
        v.check(from.zip(to).is_none_or(|(from, to)| from <= to), || "to".into(), "must not be before from");
        v.check(
            (0..=5000).contains(&body.page_size),
            || "page_size".into(),
            "must be between 0 (default 500) and 5000",
        );
        let after = page_token::decode(&body.page_token);
        v.check(after.is_some(), || "page_token".into(), "is not a token this service issued");
        v.finish()?;
        let (Some(from), Some(to), Some(after)) = (from, to, after) else {
            return Err(AppError::internal(anyhow::anyhow!("validated request incomplete")).into());
        };
        if !body.branch_id.is_empty() {
            principal.ensure_branch(&body.branch_id)?;
        }
        let after = after.split_once('\n').unwrap_or((after.as_str(), ""));
        let limit = if body.page_size == 0 { 500 } else { i64::from(body.page_size) };
        let mut purchases = store::first_purchases(
            &self.pool,
            from,
            to,
            scope(principal).as_deref(),
            &body.branch_id,
            after,
            limit + 1,
        )
        .await
        .map_err(AppError::from)?;
        let next_page_token = if purchases.len() as i64 > limit {
            purchases.truncate(limit as usize);
            purchases
                .last()
                .map(|p| page_token::encode(&format!("{}\n{}", p.client_id, p.product_id)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListFirstPurchasesResponse { purchases, next_page_token }))
    }

    async fn import_transactions(
        &self,
        request: Request<Streaming<ImportTransactionsRequest>>,
    ) -> Result<Response<ImportTransactionsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(&[Role::Admin, Role::ErpIntegration])?;
        let today = self.company.today().map_err(AppError::internal)?;
        let mut stream = request.into_inner();
        let mut known = KnownReferences::default();
        let mut seen = HashSet::new();
        let mut reply = ImportTransactionsResponse::default();
        let mut position = 0i64;
        let mut inserts: JoinSet<sqlx::Result<(u64, u64)>> = JoinSet::new();
        while let Some(message) = stream.next().await {
            let lines = message?.lines;
            if lines.len() > MAX_LINES_PER_MESSAGE {
                return Err(AppError::invalid_field(
                    "lines",
                    format!("at most {MAX_LINES_PER_MESSAGE} lines per message, got {}", lines.len()),
                )
                .into());
            }
            self.learn_references(&lines, &mut known).await?;
            let count = lines.len() as i64;
            let ruling = ingest::rule(lines, position, &known, &principal, &self.company.currency, today, &mut seen);
            position += count;
            reply.duplicates += ruling.repeated_in_stream as i64;
            reply.rejected += ruling.rejected.len() as i64;
            let room = MAX_LISTED_REJECTIONS.saturating_sub(reply.rejections.len());
            reply.rejections.extend(ruling.rejected.into_iter().take(room));
            // Insert while the next message is read and checked; bounded so a
            // fast sender cannot take every pooled connection.
            if inserts.len() >= INSERTS_IN_FLIGHT {
                add_inserted(&mut reply, inserts.join_next().await)?;
            }
            let pool = self.pool.clone();
            inserts.spawn(async move {
                let mut tx = pool.begin().await?;
                let inserted = store::insert_transaction_lines(&mut tx, &ruling.accepted).await?;
                store::rollups::mark_imported(&mut tx, &ruling.accepted).await?;
                tx.commit().await?;
                Ok((ruling.accepted.len() as u64, inserted))
            });
        }
        // The reply promises durability: every insert must have committed.
        while !inserts.is_empty() {
            add_inserted(&mut reply, inserts.join_next().await)?;
        }
        metrics::counter!("transaction_lines_accepted_total").increment(reply.accepted as u64);
        metrics::counter!("transaction_lines_rejected_total").increment(reply.rejected as u64);
        tracing::info!(
            accepted = reply.accepted,
            duplicates = reply.duplicates,
            rejected = reply.rejected,
            "import finished"
        );
        Ok(Response::new(reply))
    }

    async fn get_client_score(
        &self,
        request: Request<GetClientScoreRequest>,
    ) -> Result<Response<GetClientScoreResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let id = &request.get_ref().client_id;
        let mut v = Violations::new();
        v.id(|| "client_id".into(), id);
        v.finish()?;
        let score = self.scores(std::slice::from_ref(id), principal).await?.pop();
        match score {
            Some(score) => Ok(Response::new(GetClientScoreResponse { score: Some(score) })),
            None => {
                let visible = store::clients_by_ids(&self.pool, std::slice::from_ref(id), scope(principal).as_deref())
                    .await
                    .map_err(AppError::from)?;
                let what = if visible.is_empty() {
                    format!("client {id}")
                } else {
                    format!("score of client {id} (not computed yet)")
                };
                Err(AppError::not_found(what).into())
            }
        }
    }

    async fn batch_get_client_scores(
        &self,
        request: Request<BatchGetClientScoresRequest>,
    ) -> Result<Response<BatchGetClientScoresResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(READERS)?;
        let ids = &request.get_ref().client_ids;
        check_batch_size("client_ids", ids.len())?;
        let mut v = Violations::new();
        for (i, id) in ids.iter().enumerate() {
            v.id(|| format!("client_ids[{i}]"), id);
        }
        v.finish()?;
        let unique: Vec<String> = ids.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let scores = self.scores(&unique, principal).await?;
        let found: HashSet<&str> = scores.iter().map(|s| s.client_id.as_str()).collect();
        let missing_client_ids = unique.iter().filter(|id| !found.contains(id.as_str())).cloned().collect();
        Ok(Response::new(BatchGetClientScoresResponse { scores, missing_client_ids }))
    }
}

impl ClientsApi {
    /// Loads the referenced ids this stream has not looked up yet.
    async fn learn_references(&self, lines: &[TransactionLine], known: &mut KnownReferences) -> AppResult<()> {
        let unseen = |ids: &mut dyn Iterator<Item = &String>, has: &dyn Fn(&String) -> bool| -> Vec<String> {
            let set: HashSet<&String> = ids.filter(|id| !has(id)).collect();
            set.into_iter().cloned().collect()
        };
        let clients = unseen(&mut lines.iter().map(|l| &l.client_id), &|id| known.clients.contains_key(id));
        let products = unseen(&mut lines.iter().map(|l| &l.product_id), &|id| known.products.contains(id));
        let employees = unseen(&mut lines.iter().map(|l| &l.employee_id), &|id| known.employees.contains(id));
        let branches = unseen(&mut lines.iter().map(|l| &l.branch_id), &|id| known.branches.contains(id));
        if !clients.is_empty() {
            known.clients.extend(store::client_branches(&self.pool, &clients).await?);
        }
        if !products.is_empty() {
            known.products.extend(store::existing(&self.pool, Catalogue::Products, &products).await?);
        }
        if !employees.is_empty() {
            known.employees.extend(store::existing(&self.pool, Catalogue::Employees, &employees).await?);
        }
        if !branches.is_empty() {
            known.branches.extend(store::existing(&self.pool, Catalogue::Branches, &branches).await?);
        }
        Ok(())
    }
}

/// Page tokens are the hex of the last id returned: opaque to callers, and
/// a token that does not decode is refused rather than restarting the list.
mod page_token {
    pub fn encode(last_id: &str) -> String {
        last_id.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// `Some("")` for the first page, `None` for a token we never issued.
    pub fn decode(token: &str) -> Option<String> {
        if !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> =
            (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
        String::from_utf8(bytes?).ok()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn tokens_round_trip_and_garbage_is_refused() {
            assert_eq!(super::decode(&super::encode("C-0042")), Some("C-0042".into()));
            assert_eq!(super::decode(""), Some(String::new()));
            assert_eq!(super::decode("zz"), None);
            assert_eq!(super::decode("abc"), None);
        }
    }
}
