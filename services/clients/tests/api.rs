//! The clients service over real gRPC on 127.0.0.1 against real Postgres and Redis.
use branchscore_clients::score_cache::ScoreCache;
use branchscore_clients::store::ScoreRow;
use branchscore_platform::Role;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{AbcClass, LifecycleStatus, Money, XyzClass};
use branchscore_testkit::{PrivateRedis, TestEnv, authorized, eventually};
use prost::Message;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

mod common;
use common::*;

fn sample_score(client_id: &str, branch: &str) -> ClientScore {
    ClientScore {
        client_id: client_id.into(),
        branch_id: branch.into(),
        as_of: date(2026, 11, 1),
        score: 72.5,
        score_class: "silver".into(),
        abc_class: AbcClass::A as i32,
        xyz_class: XyzClass::Y as i32,
        rfm_code: "545".into(),
        rfm_segment: "champions".into(),
        lifecycle_status: LifecycleStatus::Regular as i32,
        components: vec![ScoreComponent {
            component: "value".into(),
            weight: 0.3,
            effective_weight: 0.3,
            component_score: 100.0,
            contribution: 30.0,
            present: true,
        }],
        window_revenue: Some(Money { minor_units: 1_234_500, currency: "PLN".into() }),
        settings_version: 1,
        compute_time: None,
        ..ClientScore::default()
    }
}

/// Stores scores as a finished run would (the cache serves only scores of
/// finished runs; these, without a compute time, predate it).
async fn save_scores(pool: &sqlx::PgPool, scores: &[ClientScore]) {
    let rows: Vec<ScoreRow> = scores.iter().map(ScoreRow::from).collect();
    let mut tx = pool.begin().await.expect("begin");
    branchscore_clients::store::write_scores(&mut tx, None, &rows, |_, _| {}).await.expect("save scores");
    sqlx::query(
        "INSERT INTO recompute_runs (as_of, settings_version, requested_by, finished_at)
         VALUES ('2026-11-01', 0, 'test', now())",
    )
    .execute(&mut *tx)
    .await
    .expect("finished run");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn master_data_round_trips_and_lists_page_by_page() {
    let mut h = start().await;
    seed(&mut h).await;
    let admin = h.admin.clone();
    let more: Vec<Client> = (0..5).map(|i| client(&format!("C-WAW-P{i}"), "WAW", "E-WAW")).collect();
    h.client
        .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients: more }))
        .await
        .expect("upsert");
    let got = h.client.get_client(authorized(&admin, GetClientRequest { id: "C-WAW-1".into() })).await.expect("get");
    let got = got.into_inner().client.expect("client");
    assert_eq!(got.name, "Client C-WAW-1");
    assert_eq!(got.known_since, date(2024, 1, 15));
    assert_eq!(got.owner_employee_id, "E-WAW");

    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListClientsRequest {
            page_size: 2,
            page_token: token.clone(),
            branch_id: "WAW".into(),
            ..Default::default()
        };
        let page = h.client.list_clients(authorized(&admin, request)).await.expect("list").into_inner();
        assert!(page.clients.len() <= 2);
        ids.extend(page.clients.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(ids, ["C-WAW-1", "C-WAW-P0", "C-WAW-P1", "C-WAW-P2", "C-WAW-P3", "C-WAW-P4"]);

    // Upserting again is idempotent: nothing new is created.
    let again = vec![client("C-WAW-1", "WAW", "E-WAW")];
    let reply = h
        .client
        .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients: again }))
        .await
        .expect("again");
    assert_eq!(reply.get_ref().created_count, 0);
    assert_eq!(count(&h, "clients").await, 7);

    let branches = h.client.list_branches(authorized(&admin, ListBranchesRequest {})).await.expect("branches");
    assert_eq!(branches.get_ref().branches.len(), 2);
    let catalogue = h.client.list_products(authorized(&admin, ListProductsRequest {})).await.expect("products");
    assert_eq!(catalogue.get_ref().products[0].product_line_id, "PL-CREDIT");
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field_and_write_nothing() {
    let mut h = start().await;
    seed(&mut h).await;
    let admin = h.admin.clone();
    let mut bad = client("bad id", "NOWHERE", "E-KRK");
    bad.kind = 0;
    bad.known_since = date(2999, 1, 1);
    let good = client("C-WAW-NEW", "WAW", "E-WAW");
    let err = h
        .client
        .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients: vec![good, bad] }))
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let fields: Vec<String> =
        details.bad_request().expect("bad request").field_violations.iter().map(|v| v.field.clone()).collect();
    for expected in [
        "clients[1].id",
        "clients[1].kind",
        "clients[1].branch_id",
        "clients[1].owner_employee_id",
        "clients[1].known_since",
    ] {
        assert!(fields.contains(&expected.to_string()), "{expected} missing from {fields:?}");
    }
    assert_eq!(count(&h, "clients").await, 2, "the good client of a refused batch is not written either");

    let err =
        h.client.get_client(authorized(&admin, GetClientRequest { id: String::new() })).await.expect_err("empty id");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h
        .client
        .list_clients(authorized(&admin, ListClientsRequest { page_token: "not-a-token".into(), ..Default::default() }))
        .await
        .expect_err("bad token");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err =
        h.client.get_client(authorized(&admin, GetClientRequest { id: "C-NONE".into() })).await.expect_err("absent");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn import_accepts_good_lines_reports_bad_ones_and_is_idempotent() {
    let mut h = start().await;
    seed(&mut h).await;
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    let mut negative = line("L-NEG", "C-WAW-1", "WAW", "E-WAW", -100);
    negative.kind = LineKind::Sale as i32;
    let mut future = line("L-FUT", "C-WAW-1", "WAW", "E-WAW", 100);
    future.business_date = date(2999, 1, 1);
    let batches = vec![
        ImportTransactionsRequest {
            lines: vec![
                line("L1", "C-WAW-1", "WAW", "E-WAW", 10_000),
                line("L-UNKNOWN", "C-GHOST", "WAW", "E-WAW", 500),
            ],
        },
        ImportTransactionsRequest {
            lines: vec![
                negative,
                future,
                line("L2", "C-KRK-1", "KRK", "E-KRK", 25_050),
                line("L1", "C-WAW-1", "WAW", "E-WAW", 10_000),
            ],
        },
    ];
    let reply = h
        .client
        .import_transactions(authorized(&erp, tokio_stream::iter(batches.clone())))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates, reply.rejected), (2, 1, 3));
    let reasons: Vec<(i64, &str, &str)> =
        reply.rejections.iter().map(|r| (r.index, r.id.as_str(), r.field.as_str())).collect();
    assert_eq!(
        reasons,
        [(1, "L-UNKNOWN", "client_id"), (2, "L-NEG", "amount.minor_units"), (3, "L-FUT", "business_date")]
    );
    assert_eq!(count(&h, "transaction_lines").await, 2);

    // The ERP re-sends the whole stream: nothing changes.
    let reply = h
        .client
        .import_transactions(authorized(&erp, tokio_stream::iter(batches)))
        .await
        .expect("re-import")
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates, reply.rejected), (0, 3, 3));
    assert_eq!(count(&h, "transaction_lines").await, 2);

    // Staff may not import at all.
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let stream =
        tokio_stream::iter(vec![ImportTransactionsRequest { lines: vec![line("L9", "C-WAW-1", "WAW", "E-WAW", 1)] }]);
    let err = h.client.import_transactions(authorized(&staff, stream)).await.expect_err("staff");
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_branch_never_reads_or_writes_another_branch() {
    let mut h = start().await;
    seed(&mut h).await;
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let c = &mut h.client;

    let err =
        c.get_client(authorized(&staff, GetClientRequest { id: "C-KRK-1".into() })).await.expect_err("other branch");
    assert_eq!(err.code(), Code::NotFound);
    let listed = c.list_clients(authorized(&staff, ListClientsRequest::default())).await.expect("list").into_inner();
    assert_eq!(listed.clients.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["C-WAW-1"]);
    let err = c
        .list_clients(authorized(&staff, ListClientsRequest { branch_id: "KRK".into(), ..Default::default() }))
        .await
        .expect_err("filter on other branch");
    assert_eq!(err.code(), Code::PermissionDenied);
    let branches = c.list_branches(authorized(&staff, ListBranchesRequest {})).await.expect("branches").into_inner();
    assert_eq!(branches.branches.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["WAW"]);
    let employees =
        c.list_employees(authorized(&staff, ListEmployeesRequest::default())).await.expect("employees").into_inner();
    assert_eq!(employees.employees.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["E-WAW"]);
    let err = c
        .list_employees(authorized(&staff, ListEmployeesRequest { branch_id: "KRK".into() }))
        .await
        .expect_err("employees of KRK");
    assert_eq!(err.code(), Code::PermissionDenied);

    // Writing into another branch, or taking a client over from it, is refused.
    let err = c
        .batch_upsert_clients(authorized(
            &staff,
            BatchUpsertClientsRequest { clients: vec![client("C-KRK-2", "KRK", "E-KRK")] },
        ))
        .await
        .expect_err("write KRK");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .batch_upsert_clients(authorized(
            &staff,
            BatchUpsertClientsRequest { clients: vec![client("C-KRK-1", "WAW", "E-WAW")] },
        ))
        .await
        .expect_err("take over KRK client");
    assert_eq!(err.code(), Code::PermissionDenied);
    let got = c.get_client(authorized(&h.admin, GetClientRequest { id: "C-KRK-1".into() })).await.expect("still KRK");
    assert_eq!(got.into_inner().client.expect("client").branch_id, "KRK");
    let err = c
        .batch_upsert_branches(authorized(
            &staff,
            BatchUpsertBranchesRequest {
                branches: vec![Branch {
                    id: "WAW".into(),
                    name: "x".into(),
                    region: String::new(),
                    currency: "PLN".into(),
                }],
            },
        ))
        .await
        .expect_err("staff edits branches");
    assert_eq!(err.code(), Code::PermissionDenied);

    // An ERP scoped to WAW cannot import KRK sales.
    let erp_waw = h.env.token(Role::ErpIntegration, &["WAW"]);
    let stream = tokio_stream::iter(vec![ImportTransactionsRequest {
        lines: vec![line("L-KRK", "C-KRK-1", "KRK", "E-KRK", 100)],
    }]);
    let reply = c.import_transactions(authorized(&erp_waw, stream)).await.expect("import").into_inner();
    assert_eq!((reply.accepted, reply.rejected), (0, 1));
    assert_eq!(reply.rejections[0].field, "branch_id");

    // Scores: the KRK score is invisible to WAW staff, through Postgres and through the cache.
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    save_scores(&pool, &[sample_score("C-WAW-1", "WAW"), sample_score("C-KRK-1", "KRK")]).await;
    for _ in 0..2 {
        let err = c
            .get_client_score(authorized(&staff, GetClientScoreRequest { client_id: "C-KRK-1".into() }))
            .await
            .expect_err("KRK score");
        assert_eq!(err.code(), Code::NotFound);
        c.get_client_score(authorized(&h.admin, GetClientScoreRequest { client_id: "C-KRK-1".into() }))
            .await
            .expect("admin fills the cache");
    }
    let batch = c
        .batch_get_client_scores(authorized(
            &staff,
            BatchGetClientScoresRequest { client_ids: vec!["C-WAW-1".into(), "C-KRK-1".into()] },
        ))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.scores.iter().map(|s| s.client_id.as_str()).collect::<Vec<_>>(), ["C-WAW-1"]);
    assert_eq!(batch.missing_client_ids, ["C-KRK-1"]);
}

#[tokio::test]
async fn missing_or_bad_tokens_are_unauthenticated_but_health_is_open() {
    let h = start().await;
    let mut c = h.client.clone();
    let err = c.list_branches(tonic::Request::new(ListBranchesRequest {})).await.expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c.list_branches(authorized("not.a.jwt", ListBranchesRequest {})).await.expect_err("garbage");
    assert_eq!(err.code(), Code::Unauthenticated);
    let other = branchscore_platform::auth::TokenIssuer::new(&branchscore_platform::auth::AuthConfig {
        hs256_secret: "a-different-secret-of-enough-length-000".into(),
        ..Default::default()
    });
    let forged = other.mint("eve", Role::Admin, &[], Duration::from_secs(60)).expect("mint");
    let err = c.list_branches(authorized(&forged, ListBranchesRequest {})).await.expect_err("forged");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        branchscore_testkit::health(h.addr).await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

/// The service with `redis` as its cache, seeded.
async fn start_with_redis(redis: &PrivateRedis) -> Harness {
    let mut env = TestEnv::new();
    env.platform.redis.url = redis.url.clone();
    env.platform.redis.reconnect_backoff_ms = Duration::from_millis(100);
    let config =
        branchscore_clients::Config { server: env.server(), database: env.database.clone(), ..Default::default() };
    let mut h = start_with(env, config).await;
    seed(&mut h).await;
    h
}

async fn holds(redis: &PrivateRedis, key: &str) -> bool {
    let exists: bool = redis::cmd("EXISTS").arg(key).query_async(&mut redis.connection().await).await.expect("EXISTS");
    exists
}

/// Whether Redis holds `key`; then snapshots it with a canary key beside.
async fn snapshot_holding(redis: &PrivateRedis, key: &str) -> bool {
    let () = redis::cmd("SET").arg("canary").arg(1).query_async(&mut redis.connection().await).await.expect("SET");
    let held = holds(redis, key).await;
    redis.save().await;
    held
}

/// Restarts Redis from its snapshot; the canary shows the snapshot was
/// loaded (the service may purge what it owes at any moment after).
async fn restart_from_snapshot(redis: &mut PrivateRedis) {
    redis.restart().await;
    assert!(holds(redis, "canary").await, "Redis came back from its snapshot");
}

/// Waits (up to 10 s) until no cached score is owed a purge.
async fn until_no_purge_is_owed(h: &Harness) {
    let settled =
        eventually(Duration::from_secs(10), async || (count(h, "score_cache_purges").await == 0).then_some(()));
    assert!(settled.await.is_some(), "owed purges of cached scores were not settled");
}

#[tokio::test]
async fn scores_are_served_from_redis_and_from_postgres_when_redis_is_down() {
    // A Redis of this test's own, so stopping it disturbs no other test.
    let mut redis = PrivateRedis::start().await;
    let mut conn = redis.connection().await;

    let mut h = start_with_redis(&redis).await;
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    save_scores(&pool, &[sample_score("C-WAW-1", "WAW")]).await;
    let admin = h.admin.clone();
    let ask = || authorized(&admin, GetClientScoreRequest { client_id: "C-WAW-1".into() });

    // Miss: read from Postgres, then cached.
    let first = h.client.get_client_score(ask()).await.expect("score").into_inner().score.expect("score");
    assert_eq!(first.rfm_code, "545");
    assert_eq!(first.window_revenue.as_ref().map(|m| m.minor_units), Some(1_234_500));
    let key = format!("{}client_score:C-WAW-1", h.env.platform.redis.key_prefix);
    let cached: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.expect("GET");
    assert!(cached.is_some(), "the miss filled the cache");

    // Hit: served from Redis even though Postgres now says otherwise, once
    // the service has read that a run finished (within about a second).
    let changed = ClientScore { score: 10.0, score_class: "basic".into(), ..sample_score("C-WAW-1", "WAW") };
    save_scores(&pool, &[changed]).await;
    let hit = eventually(Duration::from_secs(5), async || {
        let read = h.client.get_client_score(ask()).await.expect("hit").into_inner().score;
        read.filter(|s| s.score == 72.5)
    });
    assert!(hit.await.is_some(), "the cached score is served");

    // Redis dies: reads fall back to Postgres and keep working.
    redis.stop();
    for _ in 0..3 {
        let fallback =
            h.client.get_client_score(ask()).await.expect("served from Postgres").into_inner().score.expect("score");
        assert_eq!(fallback.score, 10.0);
    }
    let batch = h
        .client
        .batch_get_client_scores(authorized(
            &admin,
            BatchGetClientScoresRequest { client_ids: vec!["C-WAW-1".into(), "C-KRK-1".into()] },
        ))
        .await
        .expect("batch without redis")
        .into_inner();
    assert_eq!(batch.scores.len(), 1);
    assert_eq!(batch.missing_client_ids, ["C-KRK-1"]);
    let err = h
        .client
        .get_client_score(authorized(&admin, GetClientScoreRequest { client_id: "C-KRK-1".into() }))
        .await
        .expect_err("unscored");
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("not computed yet"), "{}", err.message());
}

#[tokio::test]
async fn health_turns_serving_only_after_migrations() {
    let env = TestEnv::new();
    let mut database = env.database.clone();
    database.migrate_on_start = false;
    let config = branchscore_clients::Config { server: env.server(), database: database.clone(), ..Default::default() };
    let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await.expect("starts");
    use tonic_health::pb::health_check_response::ServingStatus;
    // The database gets created, but the schema is not there: NOT_SERVING, and it stays so.
    for _ in 0..10 {
        assert_eq!(branchscore_testkit::health(running.addr).await, ServingStatus::NotServing);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What `branchscore migrate` does.
    let pool = branchscore_platform::db::connect(&database).await.expect("connect");
    branchscore_platform::db::migrate(&pool, &branchscore_clients::MIGRATOR).await.expect("migrate");
    branchscore_testkit::wait_serving(running.addr).await;
    // Shutdown: NOT_SERVING from the first moment, then the server stops.
    env.shutdown.cancel();
    running.task.await.expect("join").expect("clean shutdown");
}

#[tokio::test]
async fn a_moved_clients_cached_score_is_purged_even_if_redis_was_down_at_the_move() {
    let mut redis = PrivateRedis::start().await;
    let mut h = start_with_redis(&redis).await;
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    save_scores(&pool, &[sample_score("C-WAW-1", "WAW")]).await;
    let warsaw = h.env.token(Role::BranchStaff, &["WAW"]);
    let krakow = h.env.token(Role::BranchStaff, &["KRK"]);
    let ask = |token: &str| authorized(token, GetClientScoreRequest { client_id: "C-WAW-1".into() });
    let key = format!("{}client_score:C-WAW-1", h.env.platform.redis.key_prefix);

    // Warsaw reads its client's score, which is now cached (naming Warsaw),
    // and Redis keeps a snapshot of it.
    h.client.get_client_score(ask(&warsaw)).await.expect("Warsaw reads its client");
    assert!(snapshot_holding(&redis, &key).await, "the read cached the score");

    // The client moves to Kraków while Redis is down, which comes back with the snapshot.
    redis.stop();
    let moved = BatchUpsertClientsRequest { clients: vec![client("C-WAW-1", "KRK", "E-KRK")] };
    h.client.batch_upsert_clients(authorized(&h.admin, moved)).await.expect("moved while Redis is down");
    assert_eq!(count(&h, "score_cache_purges").await, 1, "the purge is owed with the move");
    restart_from_snapshot(&mut redis).await;

    // Within about a second the service purges it: Warsaw no longer reads
    // the client, Kraków does.
    until_no_purge_is_owed(&h).await;
    assert!(!holds(&redis, &key).await, "the purge was settled by deleting the key");
    let refused = h.client.get_client_score(ask(&warsaw)).await.expect_err("Warsaw's former client");
    assert!(matches!(refused.code(), Code::NotFound | Code::PermissionDenied), "{refused:?}");
    let score = h.client.get_client_score(ask(&krakow)).await.expect("Kraków reads it").into_inner().score;
    assert_eq!(score.expect("score").branch_id, "KRK");

    // Upserting the same client again moves nothing and owes nothing.
    let again = BatchUpsertClientsRequest { clients: vec![client("C-WAW-1", "KRK", "E-KRK")] };
    h.client.batch_upsert_clients(authorized(&h.admin, again)).await.expect("same data again");
    assert_eq!(count(&h, "score_cache_purges").await, 0);
}

#[tokio::test]
async fn scores_a_recompute_could_not_cache_are_purged_once_redis_is_back() {
    let mut redis = PrivateRedis::start().await;
    let h = start_with_redis(&redis).await;
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    let mut config = h.env.platform.redis.clone();
    config.reconnect_backoff_ms = Duration::from_millis(100);
    let score_cache = ScoreCache::new(
        branchscore_platform::cache::Cache::from_config(&config).expect("cache"),
        pool.clone(),
        Duration::from_secs(3600),
    );
    let older = sample_score("C-KRK-1", "KRK");
    score_cache.fill(std::slice::from_ref(&older)).await;
    let key = format!("{}client_score:C-KRK-1", h.env.platform.redis.key_prefix);
    assert!(snapshot_holding(&redis, &key).await, "the older score is cached");

    // A run rewrote the score while Redis was down, then Redis came back
    // from its snapshot holding the older one.
    redis.stop();
    let newer = ClientScore { score: 10.0, score_class: "basic".into(), ..older };
    let record = newer.encode_to_vec();
    let mut reported = Vec::new();
    score_cache.replace(&[("C-KRK-1", record.as_slice())], |done| reported.push(done)).await;
    assert_eq!(reported, [1], "progress is reported per pipeline");
    assert_eq!(count(&h, "score_cache_purges").await, 1, "the failed refresh is owed a purge");
    // A refresh of several pipelines owes every score it could not cache.
    let others: Vec<String> = (0..2_500).map(|n| format!("C-OTHER-{n}")).collect();
    let others: Vec<(&str, &[u8])> = others.iter().map(|id| (id.as_str(), record.as_slice())).collect();
    let mut reported = Vec::new();
    score_cache.replace(&others, |done| reported.push(done)).await;
    assert_eq!(reported.last(), Some(&2_500));
    assert_eq!(count(&h, "score_cache_purges").await, 2_501);
    restart_from_snapshot(&mut redis).await;

    // The service's own replica settles it; this one then finds nothing owed.
    // (Read from Redis directly: this cache's own read connection broke
    // with the restart, and a failed read is a miss too.)
    until_no_purge_is_owed(&h).await;
    assert!(!holds(&redis, &key).await, "the older score is purged");
    assert_eq!(score_cache.settle_owed().await.expect("settle"), 0);

    // With Redis up, a refresh is cached and owes nothing.
    score_cache.replace(&[("C-KRK-1", record.as_slice())], |_| {}).await;
    let cached: Option<Vec<u8>> =
        redis::cmd("GET").arg(&key).query_async(&mut redis.connection().await).await.expect("GET");
    assert_eq!(cached, Some(record), "the newer score is cached");
    assert_eq!(count(&h, "score_cache_purges").await, 0);
}
