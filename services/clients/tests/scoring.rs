//! The scoring service over real gRPC, Postgres and Redis: a small network
//! whose classes are computed by hand below.
use branchscore_clients::latest_run::REREAD_AFTER;
use branchscore_clients::recompute::RunLock;
use branchscore_platform::Role;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{AbcClass, ClientKind, Date, Granularity, LifecycleStatus, XyzClass};
use branchscore_testkit::{authorized, eventually};
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

mod common;
use common::*;

/// D = 2026-11-23: window 2025-11-01..2026-10-31, C = (2026-08-23, D], V = (2026-05-23, 2026-08-23].
fn as_of() -> Option<Date> {
    date(2026, 11, 23)
}

fn sale(id: &str, client: &str, branch: &str, on: (i32, i32, i32), amount: i64) -> TransactionLine {
    let employee = if branch == "WAW" { "E-WAW" } else { "E-KRK" };
    TransactionLine { business_date: date(on.0, on.1, on.2), ..line(id, client, branch, employee, amount) }
}

/// Six clients, one of each kind:
/// * C-WAW-1 600.00 on the 10th of every window month and on 2026-11-05: regular, X;
/// * C-KRK-1 300.00 every window month: regular, X;
/// * C-WAW-2 one 100.00 purchase on 2026-10-01: new (no XYZ);
/// * C-WAW-3 500.00 in 2025-12 and 2026-01 only: lost, Z;
/// * C-KRK-2 bought in 2025-01, then 200.00 on 2026-10-20: restored, Z;
/// * C-WAW-4 never bought: potential.
///
/// ABC over window revenue 7200, 3600, 1000, 200, 100 (total 12 100): prior
/// shares 0 (A), 59.5% (B), 89.3%, 97.5%, 99.2% (C).
/// RFM (n = 5): recency 18, 44, 53, 312, 34 days; frequency 12, 12, 1, 2, 1;
/// monetary as above -> C-WAW-1 545, C-KRK-1 344, C-WAW-2 211, C-WAW-3 133, C-KRK-2 412.
async fn network() -> (Harness, ScoringServiceClient<Channel>) {
    let mut h = start().await;
    seed(&mut h).await;
    let admin = h.admin.clone();
    let more = ["C-WAW-2", "C-WAW-3", "C-WAW-4"]
        .iter()
        .map(|id| client(id, "WAW", "E-WAW"))
        .chain([client("C-KRK-2", "KRK", "E-KRK")]);
    h.client
        .batch_upsert_clients(authorized(&admin, BatchUpsertClientsRequest { clients: more.collect() }))
        .await
        .expect("clients");
    let mut lines = Vec::new();
    for (n, (year, month)) in [(2025, 11), (2025, 12)].into_iter().chain((1..=10).map(|m| (2026, m))).enumerate() {
        lines.push(sale(&format!("W1-{n}"), "C-WAW-1", "WAW", (year, month, 10), 60_000));
        lines.push(sale(&format!("K1-{n}"), "C-KRK-1", "KRK", (year, month, 10), 30_000));
    }
    lines.push(sale("W1-NOV", "C-WAW-1", "WAW", (2026, 11, 5), 60_000));
    lines.push(sale("W2-1", "C-WAW-2", "WAW", (2026, 10, 1), 10_000));
    lines.push(sale("W3-1", "C-WAW-3", "WAW", (2025, 12, 15), 50_000));
    lines.push(sale("W3-2", "C-WAW-3", "WAW", (2026, 1, 15), 50_000));
    lines.push(sale("K2-1", "C-KRK-2", "KRK", (2025, 1, 10), 40_000));
    lines.push(sale("K2-2", "C-KRK-2", "KRK", (2026, 10, 20), 20_000));
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    let reply = h
        .client
        .import_transactions(authorized(&erp, tokio_stream::iter([ImportTransactionsRequest { lines }])))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(reply.rejected, 0, "{:?}", reply.rejections);
    let scoring = ScoringServiceClient::new(branchscore_testkit::channel(h.addr).await);
    (h, scoring)
}

/// Runs a recompute and returns every progress message.
async fn recompute(
    scoring: &mut ScoringServiceClient<Channel>,
    token: &str,
    as_of: Option<Date>,
) -> Result<Vec<RecomputeScoresResponse>, tonic::Status> {
    let mut stream = scoring.recompute_scores(authorized(token, RecomputeScoresRequest { as_of })).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// How many scores a run put in the cache.
fn caching_total(messages: &[RecomputeScoresResponse]) -> Option<i64> {
    messages.iter().filter(|m| m.phase() == RecomputePhase::Caching).map(|m| m.total).max()
}

async fn score(h: &mut Harness, id: &str) -> ClientScore {
    let token = h.admin.clone();
    h.client
        .get_client_score(authorized(&token, GetClientScoreRequest { client_id: id.into() }))
        .await
        .expect("score")
        .into_inner()
        .score
        .expect("score present")
}

#[tokio::test]
async fn recompute_classifies_the_network_as_computed_by_hand() {
    let (mut h, mut scoring) = network().await;
    let admin = h.admin.clone();
    let messages = recompute(&mut scoring, &admin, as_of()).await.expect("recompute");
    let phases: Vec<i32> = messages.iter().map(|m| m.phase).collect();
    let order = |phase: RecomputePhase| phases.iter().position(|p| *p == phase as i32).expect("phase reported");
    assert!(order(RecomputePhase::Aggregating) < order(RecomputePhase::Classifying));
    assert!(order(RecomputePhase::Classifying) < order(RecomputePhase::Writing));
    assert!(order(RecomputePhase::Writing) < order(RecomputePhase::RecordingHistory));
    assert!(order(RecomputePhase::RecordingHistory) < order(RecomputePhase::Storing));
    // The cache takes the scores while Postgres writes them.
    assert!(order(RecomputePhase::Writing) < order(RecomputePhase::Caching));
    let last =
        |phase: RecomputePhase| messages.iter().rev().find(|m| m.phase == phase as i32).map(|m| (m.done, m.total));
    assert_eq!(last(RecomputePhase::Storing), Some((6, 6)));
    assert_eq!(last(RecomputePhase::Caching), Some((6, 6)));
    let summary = messages.last().and_then(|m| m.summary).expect("summary last");
    assert_eq!((summary.clients, summary.changed, summary.scores_rewritten, summary.settings_version), (6, 6, 6, 0));

    let expected = [
        ("C-WAW-1", AbcClass::A, XyzClass::X, LifecycleStatus::Regular, "545"),
        ("C-KRK-1", AbcClass::B, XyzClass::X, LifecycleStatus::Regular, "344"),
        ("C-WAW-2", AbcClass::C, XyzClass::Unspecified, LifecycleStatus::New, "211"),
        ("C-WAW-3", AbcClass::C, XyzClass::Z, LifecycleStatus::Lost, "133"),
        ("C-KRK-2", AbcClass::C, XyzClass::Z, LifecycleStatus::Restored, "412"),
        ("C-WAW-4", AbcClass::Unspecified, XyzClass::Unspecified, LifecycleStatus::Potential, ""),
    ];
    let mut first_scores = Vec::new();
    for (id, abc, xyz, lifecycle, rfm) in expected {
        let s = score(&mut h, id).await;
        assert_eq!(
            (s.abc_class(), s.xyz_class(), s.lifecycle_status(), s.rfm_code.as_str()),
            (abc, xyz, lifecycle, rfm),
            "{id}"
        );
        let explained: f64 = s.components.iter().map(|c| c.contribution).sum();
        assert!((explained - s.score).abs() < 1e-9, "{id}: contributions {explained} vs score {}", s.score);
        assert_eq!(s.settings_version, 0);
        first_scores.push(s);
    }
    let w1 = &first_scores[0];
    assert_eq!(w1.window_revenue.as_ref().map(|m| m.minor_units), Some(720_000));
    assert_eq!((w1.recency_days, w1.frequency, w1.xyz_cv), (18, 12, 0.0));
    let k1 = &first_scores[1];
    let outlook = k1.outlook.as_ref().expect("outlook");
    assert_eq!(outlook.next_abc_class(), AbcClass::A);
    // A needs 720 000 / (850 000 + R) < 1/2, i.e. R > 590 000: 590 001 - 360 000 more.
    assert_eq!(outlook.revenue_needed.as_ref().map(|m| m.minor_units), Some(230_001));
    let potential = &first_scores[5];
    assert!(
        potential.notes.iter().any(|n| n.starts_with("abc:")) && potential.notes.iter().any(|n| n.starts_with("rfm:"))
    );

    // The cache holds what Postgres holds.
    assert_eq!(cached(&h, "C-WAW-1").await.as_ref(), Some(&first_scores[0]), "the recompute refreshed the cache");

    // The same date again: same scores, no new history.
    let again = recompute(&mut scoring, &admin, as_of()).await.expect("again");
    assert_eq!(again.last().and_then(|m| m.summary.as_ref()).map(|s| s.changed), Some(0));
    for before in &first_scores {
        let after = score(&mut h, &before.client_id).await;
        assert_eq!((after.score, &after.rfm_code, after.cluster), (before.score, &before.rfm_code, before.cluster));
    }
    let history = scoring
        .get_client_history(authorized(&admin, GetClientHistoryRequest { client_id: "C-KRK-2".into(), limit: 0 }))
        .await
        .expect("history")
        .into_inner()
        .entries;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].lifecycle_status(), LifecycleStatus::Restored);
    assert_eq!(history[0].previous_lifecycle_status(), LifecycleStatus::Unspecified);

    let matrix = scoring
        .get_abc_xyz_matrix(authorized(&admin, GetAbcXyzMatrixRequest::default()))
        .await
        .expect("matrix")
        .into_inner();
    assert_eq!(matrix.as_of, as_of());
    let cell = |abc: AbcClass, xyz: XyzClass| {
        matrix.cells.iter().find(|c| c.abc_class() == abc && c.xyz_class() == xyz).map_or(0, |c| c.clients)
    };
    assert_eq!(cell(AbcClass::A, XyzClass::X), 1);
    assert_eq!(cell(AbcClass::B, XyzClass::X), 1);
    assert_eq!(cell(AbcClass::C, XyzClass::Z), 2);
    assert_eq!(cell(AbcClass::C, XyzClass::Unspecified), 1);
    assert_eq!(cell(AbcClass::Unspecified, XyzClass::Unspecified), 1);

    let clusters = scoring
        .list_cluster_profiles(authorized(&admin, ListClusterProfilesRequest {}))
        .await
        .expect("profiles")
        .into_inner();
    let members: i64 = clusters.profiles.iter().map(|p| p.clients).sum();
    assert_eq!(members, 5, "every client with revenue is clustered");
    assert!(clusters.profiles.iter().all(|p| !p.label.is_empty()));
}

/// The cached record of a client's score, decoded as stored (not rebased).
async fn cached(h: &Harness, id: &str) -> Option<ClientScore> {
    let mut redis = redis::Client::open(h.env.platform.redis.url.as_str())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = format!("{}client_score:{id}", h.env.platform.redis.key_prefix);
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut redis).await.expect("GET");
    bytes.map(|b| prost::Message::decode(b.as_slice()).expect("a ClientScore"))
}

/// Clients whose stored score run `run_id` wrote.
async fn rewritten_by(h: &Harness, run_id: i64) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("db");
    let ids = sqlx::query_scalar("SELECT client_id FROM client_scores WHERE run_id = $1 ORDER BY client_id")
        .bind(run_id)
        .fetch_all(&pool)
        .await
        .expect("rewritten");
    pool.close().await;
    ids
}

/// The night after D nothing changes but the date: no stored score is
/// rewritten or re-cached, yet every score reads as of the new night with
/// recency counted to it. A client who then buys is rewritten and re-cached.
#[tokio::test]
async fn a_later_run_rewrites_only_the_scores_whose_content_changed() {
    let (mut h, mut scoring) = network().await;
    let admin = h.admin.clone();
    // A second replica on the same database and Redis, which runs nothing itself.
    let config =
        branchscore_clients::Config { server: h.env.server(), database: h.env.database.clone(), ..Default::default() };
    let replica = branchscore_clients::run(&config, &h.env.platform, h.env.shutdown.clone()).await.expect("replica");
    branchscore_testkit::wait_serving(replica.addr).await;
    let mut other = ClientsServiceClient::new(branchscore_testkit::channel(replica.addr).await);
    recompute(&mut scoring, &admin, as_of()).await.expect("first run");
    let first: Vec<ClientScore> = {
        let mut scores = Vec::new();
        for id in ["C-WAW-1", "C-WAW-2", "C-WAW-4"] {
            scores.push(score(&mut h, id).await);
        }
        scores
    };
    assert_eq!(first[0].last_purchase, date(2026, 11, 5));
    assert_eq!(first[2].last_purchase, None, "a potential client never bought");

    // The other replica has read the first run.
    let ask = || authorized(&admin, GetClientScoreRequest { client_id: "C-WAW-4".into() });
    let there = other.get_client_score(ask()).await.expect("replica read").into_inner().score;
    assert_eq!(there.and_then(|s| s.as_of), as_of());

    let next = date(2026, 11, 24);
    let quiet = recompute(&mut scoring, &admin, next).await.expect("next night").pop().and_then(|m| m.summary);
    let quiet = quiet.expect("summary");
    assert_eq!((quiet.clients, quiet.changed, quiet.scores_rewritten), (6, 0, 0));
    assert_eq!(rewritten_by(&h, quiet.run_id).await, Vec::<String>::new());
    for before in &first {
        let after = score(&mut h, &before.client_id).await;
        assert_eq!(after.as_of, next, "{}", before.client_id);
        let instant = |s: &ClientScore| s.compute_time.map(|t| (t.seconds, t.nanos));
        assert!(instant(&after) > instant(before), "{}: the new run's time", before.client_id);
        let expected_recency = if before.rfm_code.is_empty() { 0 } else { before.recency_days + 1 };
        assert_eq!(after.recency_days, expected_recency, "{}", before.client_id);
        let unchanged = |s: &ClientScore| (s.score, s.rfm_code.clone(), s.lifecycle_status, s.cluster, s.last_purchase);
        assert_eq!(unchanged(&after), unchanged(before), "{}", before.client_id);
        // Redis still holds the first run's record: right in content, brought up to date on read.
        assert_eq!(cached(&h, &before.client_id).await.and_then(|c| c.as_of), as_of());
    }
    let batch = h
        .client
        .batch_get_client_scores(authorized(
            &admin,
            BatchGetClientScoresRequest { client_ids: vec!["C-WAW-1".into(), "C-KRK-1".into()] },
        ))
        .await
        .expect("batch")
        .into_inner();
    assert!(batch.scores.iter().all(|s| s.as_of == next), "batch reads are brought up to date too");
    // The other replica learns of the new run within about a second.
    let seen = eventually(Duration::from_secs(5), async || {
        let read = other.get_client_score(ask()).await.expect("replica read").into_inner().score;
        read.filter(|s| s.as_of == next)
    })
    .await;
    assert!(seen.is_some(), "the other replica reads the newest run");

    // C-WAW-2 buys on the 24th: its recency and R score change, so its score is rewritten.
    // C-WAW-5, new, buys too: its first score and history row go in beside the rewrite.
    let newcomer = BatchUpsertClientsRequest { clients: vec![client("C-WAW-5", "WAW", "E-WAW")] };
    h.client.batch_upsert_clients(authorized(&admin, newcomer)).await.expect("new client");
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    let lines = vec![
        sale("W2-2", "C-WAW-2", "WAW", (2026, 11, 24), 5_000),
        sale("W5-1", "C-WAW-5", "WAW", (2026, 11, 24), 7_000),
    ];
    h.client
        .import_transactions(authorized(&erp, tokio_stream::iter([ImportTransactionsRequest { lines }])))
        .await
        .expect("import");
    let bought = recompute(&mut scoring, &admin, next).await.expect("again").pop().and_then(|m| m.summary);
    let bought = bought.expect("summary");
    let rewritten = rewritten_by(&h, bought.run_id).await;
    assert_eq!(bought.scores_rewritten, rewritten.len() as i64);
    assert!(rewritten.contains(&"C-WAW-2".to_owned()), "{rewritten:?}");
    assert!(!rewritten.contains(&"C-WAW-4".to_owned()), "a potential client's score cannot change: {rewritten:?}");
    let w2 = score(&mut h, "C-WAW-2").await;
    assert_eq!((w2.recency_days, w2.last_purchase, w2.as_of), (0, next, next));
    assert_eq!(cached(&h, "C-WAW-2").await.map(|c| (c.recency_days, c.as_of)), Some((0, next)), "re-cached");
    assert!(rewritten.contains(&"C-WAW-5".to_owned()), "{rewritten:?}");
    let w5 = score(&mut h, "C-WAW-5").await;
    assert_eq!((w5.lifecycle_status(), w5.last_purchase, w5.as_of), (LifecycleStatus::New, next, next));
    assert_eq!(cached(&h, "C-WAW-5").await.map(|c| c.as_of), Some(next), "cached");
    let history = scoring
        .get_client_history(authorized(&admin, GetClientHistoryRequest { client_id: "C-WAW-5".into(), limit: 0 }))
        .await
        .expect("history")
        .into_inner()
        .entries;
    let first_entry = history.iter().map(|e| (e.as_of, e.lifecycle_status(), e.previous_lifecycle_status()));
    assert_eq!(first_entry.collect::<Vec<_>>(), [(next, LifecycleStatus::New, LifecycleStatus::Unspecified)]);
    assert!(bought.changed >= 1, "the newcomer's first history row counts: {bought:?}");
}

#[tokio::test]
async fn a_second_recompute_is_refused_while_one_runs() {
    let (h, mut scoring) = network().await;
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    let held = RunLock::acquire(&pool).await.expect("lock");
    let refused = recompute(&mut scoring, &h.admin, as_of()).await.expect_err("refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    drop(held);
    // The lock goes with its connection; the next run may start.
    let finished =
        eventually(Duration::from_secs(5), async || match recompute(&mut scoring, &h.admin, as_of()).await {
            Ok(messages) => Some(messages.last().and_then(|m| m.summary)),
            Err(status) if status.code() == Code::FailedPrecondition => None,
            Err(status) => panic!("{status:?}"),
        })
        .await;
    assert_eq!(finished.flatten().map(|s| s.clients), Some(6));
}

/// A run puts its scores in the cache while Postgres writes them, so a
/// cached score is served only once its run has finished: cached scores of
/// a run still writing, of a run that died after caching, and of a run
/// whose write failed are read from Postgres instead.
#[tokio::test]
async fn cached_scores_of_runs_not_finished_are_not_served() {
    let (mut h, mut scoring) = network().await;
    let admin = h.admin.clone();
    recompute(&mut scoring, &admin, as_of()).await.expect("first run");
    let truth = score(&mut h, "C-WAW-1").await;
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    let mut redis = redis::Client::open(h.env.platform.redis.url.as_str())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");

    // A run on another replica has cached C-WAW-1's new score and is still writing.
    let run_lock = RunLock::acquire(&pool).await.expect("the lock of a run writing");
    let writing: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "INSERT INTO recompute_runs (as_of, settings_version, requested_by) VALUES ('2026-11-23', 0, 'elsewhere')
         RETURNING started_at",
    )
    .fetch_one(&pool)
    .await
    .expect("a run writing");
    let uncommitted = ClientScore {
        score: 1.0,
        score_class: "basic".into(),
        compute_time: Some(branchscore_proto::convert::timestamp(writing)),
        ..truth.clone()
    };
    let key = format!("{}client_score:C-WAW-1", h.env.platform.redis.key_prefix);
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(prost::Message::encode_to_vec(&uncommitted))
        .query_async(&mut redis)
        .await
        .expect("SET");
    // Over twice the time a replica takes to learn of a run, reads serve
    // the truth and leave the running run's score in the cache.
    let watched_until = tokio::time::Instant::now() + 2 * REREAD_AFTER;
    while tokio::time::Instant::now() < watched_until {
        assert_eq!(score(&mut h, "C-WAW-1").await.score, truth.score, "a run still writing");
        assert_eq!(cached(&h, "C-WAW-1").await, Some(uncommitted.clone()), "a running run's score stays cached");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // That run dies with its process: its connection, and so the lock, goes.
    // Within a second reads know, and a read replaces the dead run's score
    // in the cache by the truth (a fill would not: the key is taken).
    drop(run_lock);
    let replaced = eventually(Duration::from_secs(10), async || {
        assert_eq!(score(&mut h, "C-WAW-1").await.score, truth.score, "a run that died");
        cached(&h, "C-WAW-1").await.filter(|cached| *cached != uncommitted)
    })
    .await
    .expect("the dead run's score replaced in the cache");
    assert_eq!((replaced.score, replaced.compute_time), (truth.score, truth.compute_time));

    // The next run finds C-WAW-1 unchanged, but caches every score (over
    // any the dead run left), and its own are served from the cache.
    let next_run = recompute(&mut scoring, &admin, as_of()).await.expect("the next run");
    let summary = next_run.last().and_then(|m| m.summary).expect("summary");
    assert_eq!(summary.scores_rewritten, 0, "nothing changed");
    assert_eq!(caching_total(&next_run), Some(summary.clients), "every score cached");
    let replaced = cached(&h, "C-WAW-1").await.expect("cached by the next run");
    let next_start: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT started_at FROM recompute_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the next run finished");
    assert_eq!(replaced.compute_time, Some(branchscore_proto::convert::timestamp(next_start)));
    assert_eq!(replaced.score, truth.score);
    assert_eq!(score(&mut h, "C-WAW-1").await.score, truth.score, "a run that never finished");

    // C-WAW-2 buys on the 24th, and the run that would rewrite its score
    // fails in Postgres: it is refused, and the score before it is served.
    let before = score(&mut h, "C-WAW-2").await;
    let lines = vec![sale("W2-2", "C-WAW-2", "WAW", (2026, 11, 24), 5_000)];
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    h.client
        .import_transactions(authorized(&erp, tokio_stream::iter([ImportTransactionsRequest { lines }])))
        .await
        .expect("import");
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_scores() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'no space left on device (a test)'; END $$;
         CREATE TRIGGER refuse_scores BEFORE INSERT OR UPDATE ON client_scores
             FOR EACH ROW EXECUTE FUNCTION refuse_scores();",
    )
    .execute(&pool)
    .await
    .expect("a failing write");
    let next = date(2026, 11, 24);
    let failed = recompute(&mut scoring, &admin, next).await.expect_err("the write fails");
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    let failed_start: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT started_at FROM recompute_runs WHERE finished_at IS NULL AND requested_by <> 'elsewhere'",
    )
    .fetch_one(&pool)
    .await
    .expect("the failed run is not finished");
    let left = cached(&h, "C-WAW-2").await.and_then(|c| c.compute_time);
    assert_ne!(left, Some(branchscore_proto::convert::timestamp(failed_start)), "the failed run's score is dropped");
    let served = score(&mut h, "C-WAW-2").await;
    assert_eq!((served.last_purchase, served.as_of), (before.last_purchase, as_of()));

    // Once Postgres writes again, the next run serves the new score, and
    // caches every score over what the failed run may have left.
    sqlx::raw_sql("DROP TRIGGER refuse_scores ON client_scores").execute(&pool).await.expect("drop trigger");
    let writes = recompute(&mut scoring, &admin, next).await.expect("a run that writes");
    let summary = writes.last().and_then(|m| m.summary).expect("summary");
    assert_eq!(caching_total(&writes), Some(summary.clients), "every score cached after a failed run");
    let served = score(&mut h, "C-WAW-2").await;
    assert_eq!((served.last_purchase, served.as_of), (next, next));
    assert_eq!(cached(&h, "C-WAW-2").await.and_then(|c| c.last_purchase), next, "cached by the run");
}

#[tokio::test]
async fn unfinished_runs_are_known_while_their_cached_scores_may_live() {
    let h = start().await;
    let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
    // Runs started 10 h ago (died), 9 h (finished), 2 h (died), 1 h (the
    // newest finished) and 10 minutes ago (still writing).
    sqlx::raw_sql(
        "INSERT INTO recompute_runs (as_of, settings_version, requested_by, started_at, finished_at) VALUES
             ('2026-11-20', 0, 'test', now() - interval '10 hours', NULL),
             ('2026-11-21', 0, 'test', now() - interval '9 hours', now() - interval '9 hours'),
             ('2026-11-22', 0, 'test', now() - interval '2 hours', NULL),
             ('2026-11-23', 0, 'test', now() - interval '1 hour', now() - interval '1 hour'),
             ('2026-11-24', 0, 'test', now() - interval '10 minutes', NULL)",
    )
    .execute(&pool)
    .await
    .expect("runs");
    let hours = |n: u64| Duration::from_secs(n * 3600);
    let runs = branchscore_clients::store::known_runs(&pool, hours(5)).await.expect("runs");
    assert_eq!(runs.newest.map(|(as_of, _)| as_of), Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("date")));
    // Keys live 5 h: the run of 10 h ago set its own before the next began, 9 h ago.
    assert_eq!(runs.unfinished.len(), 2, "{:?}", runs.unfinished);
    let runs = branchscore_clients::store::known_runs(&pool, hours(12)).await.expect("runs");
    assert_eq!(runs.unfinished.len(), 3, "{:?}", runs.unfinished);
}

#[tokio::test]
async fn settings_versions_are_validated_and_apply_from_their_date() {
    let (mut h, mut scoring) = network().await;
    let admin = h.admin.clone();
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let wider_abc = ScoringSettings {
        abc: Some(AbcThresholds { a_prior_share_below_bp: 8_000, b_prior_share_below_bp: 9_500 }),
        ..ScoringSettings::default()
    };
    let create = |token: &str, settings: ScoringSettings, effective_from: Option<Date>| {
        authorized(
            token,
            CreateScoringSettingsRequest { effective_from, settings: Some(settings), comment: "80/95".into() },
        )
    };
    let denied =
        scoring.create_scoring_settings(create(&staff, wider_abc.clone(), date(2026, 11, 1))).await.expect_err("staff");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let bad = ScoringSettings {
        window_months: 500,
        weights: Some(ScoreWeights { rfm: -1.0, ..ScoreWeights::default() }),
        ..ScoringSettings::default()
    };
    let invalid = scoring.create_scoring_settings(create(&admin, bad, None)).await.expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        invalid.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    for field in ["effective_from", "settings.window_months", "settings.weights.rfm"] {
        assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
    }
    let versions = scoring
        .list_scoring_settings(authorized(&admin, ListScoringSettingsRequest {}))
        .await
        .expect("list")
        .into_inner()
        .versions;
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [0], "nothing was written");

    let created = scoring
        .create_scoring_settings(create(&admin, wider_abc, date(2026, 11, 1)))
        .await
        .expect("create")
        .into_inner()
        .settings
        .expect("version");
    assert_eq!(created.version, 1);
    let in_effect = |on: Option<Date>| GetScoringSettingsRequest { as_of: on };
    let before = scoring
        .get_scoring_settings(authorized(&admin, in_effect(date(2026, 10, 31))))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(before.settings.map(|s| s.version), Some(0));
    let after = scoring.get_scoring_settings(authorized(&admin, in_effect(as_of()))).await.expect("get").into_inner();
    assert_eq!(after.settings.as_ref().map(|s| s.version), Some(1));
    assert_eq!(after.settings.and_then(|s| s.settings).map(|s| s.window_months), Some(12));

    let summary = recompute(&mut scoring, &admin, as_of()).await.expect("recompute").pop().and_then(|m| m.summary);
    assert_eq!(summary.map(|s| s.settings_version), Some(1));
    // 59.5% prior share is below the new 80%: C-KRK-1 is an A client now.
    let k1 = score(&mut h, "C-KRK-1").await;
    assert_eq!((k1.abc_class(), k1.settings_version), (AbcClass::A, 1));
}

#[tokio::test]
async fn scoring_respects_roles_branches_and_dates() {
    let (h, mut scoring) = network().await;
    let admin = h.admin.clone();
    recompute(&mut scoring, &admin, as_of()).await.expect("recompute");
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);

    let refused = recompute(&mut scoring, &staff, as_of()).await.expect_err("staff cannot recompute");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let future = recompute(&mut scoring, &admin, date(2999, 1, 1)).await.expect_err("future");
    assert_eq!(future.code(), Code::InvalidArgument);

    let other_branch = scoring
        .get_client_history(authorized(&staff, GetClientHistoryRequest { client_id: "C-KRK-1".into(), limit: 0 }))
        .await
        .expect_err("KRK client");
    assert_eq!(other_branch.code(), Code::NotFound);
    let own = scoring
        .get_client_history(authorized(&staff, GetClientHistoryRequest { client_id: "C-WAW-1".into(), limit: 0 }))
        .await
        .expect("own client");
    assert_eq!(own.into_inner().entries.len(), 1);

    let krk = scoring
        .get_abc_xyz_matrix(authorized(&staff, GetAbcXyzMatrixRequest { branch_id: "KRK".into() }))
        .await
        .expect_err("KRK matrix");
    assert_eq!(krk.code(), Code::PermissionDenied);
    let own = scoring.get_abc_xyz_matrix(authorized(&staff, GetAbcXyzMatrixRequest::default())).await.expect("matrix");
    assert_eq!(own.into_inner().cells.iter().map(|c| c.clients).sum::<i64>(), 4, "only the WAW clients");

    let unauthenticated = scoring.list_cluster_profiles(ListClusterProfilesRequest {}).await.expect_err("no token");
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
}

/// The ideal client portrait: one B2B segment targeting four products.
/// Baskets over the window: W1 {LOAN, CARD}, K1 {LOAN, CARD, LEASE},
/// W2 {LOAN}, W3 {LOAN}, K2 {LOAN, CARD, LEASE}: CARD -> LEASE has
/// confidence 2/3 and lift (2 x 5) / (3 x 2) = 1.67.
#[tokio::test]
async fn segments_product_states_and_cross_sell() {
    let (mut h, mut scoring) = network().await;
    let admin = h.admin.clone();
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let products = ["P-CARD", "P-LEASE", "P-INSURE"]
        .iter()
        .map(|id| Product { id: (*id).into(), product_line_id: "PL-CREDIT".into(), name: id.replace("P-", "") })
        .collect();
    h.client
        .batch_upsert_products(authorized(&admin, BatchUpsertProductsRequest { product_lines: vec![], products }))
        .await
        .expect("products");
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    let extra = vec![
        TransactionLine { product_id: "P-CARD".into(), ..sale("W1-CARD", "C-WAW-1", "WAW", (2026, 3, 10), 1_000) },
        TransactionLine { product_id: "P-CARD".into(), ..sale("K1-CARD", "C-KRK-1", "KRK", (2026, 3, 10), 1_000) },
        TransactionLine { product_id: "P-LEASE".into(), ..sale("K1-LEASE", "C-KRK-1", "KRK", (2026, 4, 10), 1_000) },
        TransactionLine { product_id: "P-CARD".into(), ..sale("K2-CARD", "C-KRK-2", "KRK", (2026, 10, 20), 1_000) },
        TransactionLine { product_id: "P-LEASE".into(), ..sale("K2-LEASE", "C-KRK-2", "KRK", (2026, 10, 20), 1_000) },
    ];
    let stream = tokio_stream::iter([ImportTransactionsRequest { lines: extra }]);
    h.client.import_transactions(authorized(&erp, stream)).await.expect("import");

    let segment = Segment {
        id: "b2b".into(),
        name: "Business clients".into(),
        priority: 1,
        kinds: vec![ClientKind::B2b as i32],
        target_product_ids: vec!["P-LOAN".into(), "P-CARD".into(), "P-LEASE".into(), "P-INSURE".into()],
        ..Segment::default()
    };
    let upsert = |token: &str, segments: Vec<Segment>| authorized(token, BatchUpsertSegmentsRequest { segments });
    let denied = scoring.batch_upsert_segments(upsert(&staff, vec![segment.clone()])).await.expect_err("staff");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = Segment { kinds: vec![9], target_product_ids: vec!["P-NOPE".into()], ..segment.clone() };
    let invalid = scoring.batch_upsert_segments(upsert(&admin, vec![bad])).await.expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        invalid.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["segments[0].kinds[0]"]);
    let unknown = Segment { target_product_ids: vec!["P-NOPE".into()], ..segment.clone() };
    let invalid = scoring.batch_upsert_segments(upsert(&admin, vec![unknown])).await.expect_err("unknown product");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let listed = scoring.list_segments(authorized(&admin, ListSegmentsRequest {})).await.expect("list").into_inner();
    assert!(listed.segments.is_empty(), "nothing was written");
    scoring.batch_upsert_segments(upsert(&admin, vec![segment])).await.expect("segments");

    let summary = recompute(&mut scoring, &admin, as_of()).await.expect("recompute").pop().and_then(|m| m.summary);
    assert!(summary.is_some());
    let w1 = score(&mut h, "C-WAW-1").await;
    assert_eq!(w1.segment_id, "b2b");
    let maturity = w1.components.iter().find(|c| c.component == "maturity").expect("maturity component");
    assert!(maturity.present && (maturity.component_score - 50.0).abs() < 1e-9, "{maturity:?}");

    let portrait = scoring
        .get_client_products(authorized(&staff, GetClientProductsRequest { client_id: "C-WAW-1".into() }))
        .await
        .expect("products")
        .into_inner();
    assert_eq!((portrait.segment_id.as_str(), portrait.targeted, portrait.used, portrait.maturity), ("b2b", 4, 2, 0.5));

    let suggest = |token: &str| authorized(token, SuggestCrossSellRequest { client_id: "C-WAW-1".into(), limit: 0 });
    let suggestions = scoring.suggest_cross_sell(suggest(&staff)).await.expect("suggest").into_inner().suggestions;
    let ranked: Vec<&str> = suggestions.iter().map(|s| s.product_id.as_str()).collect();
    // Both gaps are not offered; the basket evidence puts LEASE first.
    assert_eq!(ranked, ["P-LEASE", "P-INSURE"]);
    assert_eq!(suggestions[0].because_of_product_id, "P-CARD");
    assert!((suggestions[0].lift - 5.0 / 3.0).abs() < 1e-9, "{:?}", suggestions[0]);
    assert!(suggestions[0].explanation.contains("Business clients"), "{}", suggestions[0].explanation);

    let set = |token: &str, client: &str, state: ProductStateKind, on: Option<Date>, reason: &str| {
        authorized(
            token,
            SetProductStateRequest {
                client_id: client.into(),
                product_id: "P-INSURE".into(),
                state: state as i32,
                date: on,
                reason: reason.into(),
            },
        )
    };
    let no_reason = scoring.set_product_state(set(&staff, "C-WAW-1", ProductStateKind::Refused, None, " ")).await;
    assert_eq!(no_reason.expect_err("reason needed").code(), Code::InvalidArgument);
    let future =
        scoring.set_product_state(set(&staff, "C-WAW-1", ProductStateKind::Offered, date(2999, 1, 1), "")).await;
    assert_eq!(future.expect_err("future").code(), Code::InvalidArgument);
    let elsewhere = scoring.set_product_state(set(&staff, "C-KRK-1", ProductStateKind::Offered, as_of(), "")).await;
    assert_eq!(elsewhere.expect_err("other branch").code(), Code::NotFound);
    for _ in 0..2 {
        let stored = scoring
            .set_product_state(set(&staff, "C-WAW-1", ProductStateKind::Offered, as_of(), ""))
            .await
            .expect("offered")
            .into_inner()
            .state
            .expect("state");
        assert_eq!((stored.state(), stored.date), (ProductStateKind::Offered, as_of()));
    }
    let suggestions = scoring.suggest_cross_sell(suggest(&staff)).await.expect("suggest").into_inner().suggestions;
    let offered = suggestions.iter().find(|s| s.product_id == "P-INSURE").expect("still a gap");
    assert_eq!(offered.state(), ProductStateKind::Offered);
    scoring
        .set_product_state(set(&staff, "C-WAW-1", ProductStateKind::Contracted, as_of(), ""))
        .await
        .expect("contracted");
    let suggestions = scoring.suggest_cross_sell(suggest(&staff)).await.expect("suggest").into_inner().suggestions;
    assert!(suggestions.iter().all(|s| s.product_id != "P-INSURE"), "a contracted product is not suggested");
    let hidden = scoring
        .suggest_cross_sell(authorized(&staff, SuggestCrossSellRequest { client_id: "C-KRK-2".into(), limit: 0 }))
        .await
        .expect_err("other branch");
    assert_eq!(hidden.code(), Code::NotFound);
}

/// October 2026 of the hand-computed network, month granularity, P = 3 months:
/// * E-WAW: C-WAW-2 won (first purchase 1 Oct: primary 100.00), C-WAW-1 buys
///   again in a known line (repeat 600.00); C-WAW-2 new and C-WAW-4 potential
///   are at the initial stage; C-WAW-3 was already lost on 30 September.
/// * E-KRK: C-KRK-2, lost on 30 September, buys on 20 October: restored;
///   repeat sales 300.00 + 200.00 in two documents.
#[tokio::test]
async fn client_facts_per_employee_and_period() {
    let (h, mut scoring) = network().await;
    let admin = h.admin.clone();
    let october = |token: &str, branch: &str| {
        authorized(
            token,
            GetClientFactsRequest {
                from: date(2026, 10, 1),
                to: date(2026, 10, 31),
                granularity: Granularity::Month as i32,
                branch_id: branch.into(),
                employee_id: String::new(),
                include_sources: false,
            },
        )
    };
    let facts = scoring.get_client_facts(october(&admin, "")).await.expect("facts").into_inner().facts;
    let of = |employee: &str| facts.iter().find(|f| f.employee_id == employee).cloned().expect("row");
    let amount =
        |fact: &Option<SalesFact>| fact.as_ref().map(|s| (s.documents, s.amount.as_ref().map_or(0, |m| m.minor_units)));
    let waw = of("E-WAW");
    assert_eq!((waw.period_start, waw.period_end), (date(2026, 10, 1), date(2026, 10, 31)));
    assert_eq!((waw.new_clients, waw.lost_clients, waw.restored_clients), (1, 0, 0));
    assert_eq!((waw.clients_at_initial_stage, waw.potential_clients), (2, 1));
    assert_eq!(amount(&waw.primary_sales), Some((1, 10_000)));
    assert_eq!(amount(&waw.repeat_sales), Some((1, 60_000)));
    assert_eq!(amount(&waw.new_direction_sales), Some((0, 0)));
    // Buyers: C-WAW-1 came back (bought since 2025), C-WAW-2 made its first purchase.
    assert_eq!((waw.buying_clients, waw.repeat_buyers), (2, 1));
    let krk = of("E-KRK");
    assert_eq!((krk.new_clients, krk.lost_clients, krk.restored_clients), (0, 0, 1));
    // C-KRK-1 and C-KRK-2 both bought before October.
    assert_eq!((krk.buying_clients, krk.repeat_buyers), (2, 2));
    assert_eq!(amount(&krk.repeat_sales), Some((2, 50_000)));
    assert_eq!(facts.len(), 2);

    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let own = scoring.get_client_facts(october(&staff, "")).await.expect("own").into_inner().facts;
    assert_eq!(own.iter().map(|f| f.branch_id.as_str()).collect::<Vec<_>>(), ["WAW"]);
    let other = scoring.get_client_facts(october(&staff, "KRK")).await.expect_err("other branch");
    assert_eq!(other.code(), Code::PermissionDenied);
    let backwards = GetClientFactsRequest { from: date(2026, 10, 31), to: date(2026, 10, 1), ..Default::default() };
    let invalid = scoring.get_client_facts(authorized(&admin, backwards)).await.expect_err("backwards");
    assert_eq!(invalid.code(), Code::InvalidArgument);
}

/// Each counter of a facts row with the kind of record behind it.
fn counters(row: &ClientFacts) -> [(&'static str, &'static str, i64); 12] {
    let documents = |fact: &Option<SalesFact>| fact.as_ref().map_or(0, |s| s.documents);
    [
        ("new_clients", "client", row.new_clients),
        ("lost_clients", "client", row.lost_clients),
        ("restored_clients", "client", row.restored_clients),
        ("clients_at_initial_stage", "client", row.clients_at_initial_stage),
        ("potential_clients", "client", row.potential_clients),
        ("buying_clients", "client", row.buying_clients),
        ("repeat_buyers", "client", row.repeat_buyers),
        ("primary_sales", "document", documents(&row.primary_sales)),
        ("repeat_sales", "document", documents(&row.repeat_sales)),
        ("new_direction_sales", "document", documents(&row.new_direction_sales)),
        ("class_upgrades", "class_move", row.class_upgrades),
        ("class_downgrades", "class_move", row.class_downgrades),
    ]
}

/// The ids listed behind `fact`, sorted.
fn sources_of<'a>(row: &'a ClientFacts, fact: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = row.sources.iter().filter(|s| s.fact == fact).map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

/// April to October 2026 of the hand-computed network as one period, plus
/// two June documents of two lines each: C-KRK-1's DOC-K1-MIX (a loan, a
/// repeat, and a lease, a new direction) and C-WAW-1's DOC-W1-TWO (two
/// loans, one repeat document). On 31 March C-WAW-3 was still regular and
/// C-KRK-2 already lost.
#[tokio::test]
async fn client_facts_list_the_clients_and_documents_they_count() {
    let (mut h, mut scoring) = network().await;
    let admin = h.admin.clone();
    let products = BatchUpsertProductsRequest {
        product_lines: vec![ProductLine { id: "PL-LEASING".into(), name: "Leasing".into() }],
        products: vec![Product { id: "P-LEASE".into(), product_line_id: "PL-LEASING".into(), name: "Lease".into() }],
    };
    h.client.batch_upsert_products(authorized(&admin, products)).await.expect("products");
    let in_document = |id: &str, client: &str, branch: &str, document: &str, product: &str| TransactionLine {
        document_id: document.into(),
        product_id: product.into(),
        ..sale(id, client, branch, (2026, 6, 15), 5_000)
    };
    let lines = vec![
        in_document("K1-MIX-A", "C-KRK-1", "KRK", "DOC-K1-MIX", "P-LOAN"),
        in_document("K1-MIX-B", "C-KRK-1", "KRK", "DOC-K1-MIX", "P-LEASE"),
        in_document("W1-TWO-A", "C-WAW-1", "WAW", "DOC-W1-TWO", "P-LOAN"),
        in_document("W1-TWO-B", "C-WAW-1", "WAW", "DOC-W1-TWO", "P-LOAN"),
    ];
    let erp = h.env.token(Role::ErpIntegration, &["*"]);
    let reply = h
        .client
        .import_transactions(authorized(&erp, tokio_stream::iter([ImportTransactionsRequest { lines }])))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(reply.rejected, 0, "{:?}", reply.rejections);
    let ask = |token: &str, granularity: Granularity, include_sources: bool| {
        authorized(
            token,
            GetClientFactsRequest {
                from: date(2026, 4, 1),
                to: date(2026, 10, 31),
                granularity: granularity as i32,
                include_sources,
                ..Default::default()
            },
        )
    };

    let facts = scoring.get_client_facts(ask(&admin, Granularity::Unspecified, true)).await.expect("facts");
    let facts = facts.into_inner().facts;
    assert_eq!(facts.len(), 2);
    let of = |employee: &str| facts.iter().find(|f| f.employee_id == employee).expect("row");
    let months = |prefix: &str| (5..=11).map(|n| format!("DOC-{prefix}-{n}")).collect::<Vec<_>>();
    let waw = of("E-WAW");
    assert_eq!(sources_of(waw, "new_clients"), ["C-WAW-2"]);
    assert_eq!(sources_of(waw, "lost_clients"), ["C-WAW-3"]);
    assert_eq!(sources_of(waw, "clients_at_initial_stage"), ["C-WAW-2", "C-WAW-4"]);
    assert_eq!(sources_of(waw, "potential_clients"), ["C-WAW-4"]);
    assert_eq!(sources_of(waw, "primary_sales"), ["DOC-W2-1"]);
    let mut repeat = months("W1");
    repeat.push("DOC-W1-TWO".into());
    repeat.sort_unstable();
    assert_eq!(sources_of(waw, "repeat_sales"), repeat);
    let krk = of("E-KRK");
    assert_eq!(sources_of(krk, "restored_clients"), ["C-KRK-2"]);
    let mut repeat = months("K1");
    repeat.extend(["DOC-K1-MIX".into(), "DOC-K2-2".into()]);
    repeat.sort_unstable();
    assert_eq!(sources_of(krk, "repeat_sales"), repeat);
    assert_eq!(sources_of(krk, "new_direction_sales"), ["DOC-K1-MIX"]);

    // Month by month, every counter of every row is exactly its sources.
    let monthly = scoring.get_client_facts(ask(&admin, Granularity::Month, true)).await.expect("monthly");
    let monthly = monthly.into_inner().facts;
    assert_eq!(monthly.len(), 14);
    for row in facts.iter().chain(&monthly) {
        let counters = counters(row);
        for (fact, kind, count) in counters {
            let listed: Vec<&str> = row.sources.iter().filter(|s| s.fact == fact).map(|s| s.kind.as_str()).collect();
            assert_eq!(listed.len() as i64, count, "{fact} of {row:?}");
            assert!(listed.iter().all(|k| *k == kind), "{fact} of {row:?}");
        }
        assert_eq!(row.sources.len() as i64, counters.iter().map(|c| c.2).sum::<i64>(), "{row:?}");
    }

    // Without the flag: the same facts, no sources.
    let plain = scoring.get_client_facts(ask(&admin, Granularity::Month, false)).await.expect("plain");
    let without_sources: Vec<ClientFacts> =
        monthly.iter().map(|row| ClientFacts { sources: Vec::new(), ..row.clone() }).collect();
    assert_eq!(plain.into_inner().facts, without_sources);

    // A branch sees its own rows with their sources, and nothing of the other branch.
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let own = scoring.get_client_facts(ask(&staff, Granularity::Unspecified, true)).await.expect("own");
    assert_eq!(own.into_inner().facts, std::slice::from_ref(waw));
}

/// The network recomputed on three dates, window = the 12 months before D's month:
/// * 2025-12-15 (window 2024-12..2025-11): C-WAW-1 600 A, C-KRK-2 400 (prior
///   46%) A, C-KRK-1 300 (prior 77%) B; C-WAW-3 has no revenue yet.
/// * 2026-01-15 (2025-01..2025-12): C-WAW-1 1200 A, C-KRK-1 600 (prior 44%)
///   A: up; C-WAW-3 500 (67%) B: a first class, no move; C-KRK-2 400 (85%)
///   C: down.
/// * 2026-02-15 (2025-02..2026-01): C-WAW-1 1800 A, C-WAW-3 1000 (prior
///   49%) A: up; C-KRK-1 900 (76%) B: down; C-KRK-2 no revenue: down (out).
#[tokio::test]
async fn class_moves_per_owner_and_month() {
    let (h, mut scoring) = network().await;
    let admin = h.admin.clone();
    for as_of in [date(2025, 12, 15), date(2026, 1, 15), date(2026, 2, 15)] {
        recompute(&mut scoring, &admin, as_of).await.expect("recompute");
    }
    let ask = |include_sources: bool| {
        authorized(
            &admin,
            GetClientFactsRequest {
                from: date(2025, 12, 1),
                to: date(2026, 2, 28),
                granularity: Granularity::Month as i32,
                include_sources,
                ..Default::default()
            },
        )
    };
    let facts = scoring.get_client_facts(ask(true)).await.expect("facts").into_inner().facts;
    let moves = |month: u32, employee: &str| {
        let row = facts
            .iter()
            .find(|f| f.employee_id == employee && f.period_start.as_ref().is_some_and(|d| d.month == month as i32))
            .expect("row");
        (
            row.class_upgrades,
            row.class_downgrades,
            sources_of(row, "class_upgrades"),
            sources_of(row, "class_downgrades"),
        )
    };
    assert_eq!(moves(12, "E-WAW"), (0, 0, vec![], vec![]));
    assert_eq!(moves(12, "E-KRK"), (0, 0, vec![], vec![]));
    assert_eq!(moves(1, "E-WAW"), (0, 0, vec![], vec![]));
    assert_eq!(moves(1, "E-KRK"), (1, 1, vec!["C-KRK-1@2026-01-15"], vec!["C-KRK-2@2026-01-15"]));
    assert_eq!(moves(2, "E-WAW"), (1, 0, vec!["C-WAW-3@2026-02-15"], vec![]));
    assert_eq!(moves(2, "E-KRK"), (0, 2, vec![], vec!["C-KRK-1@2026-02-15", "C-KRK-2@2026-02-15"]));
    // Recomputing a date again records no move twice.
    recompute(&mut scoring, &admin, date(2026, 2, 15)).await.expect("again");
    let again = scoring.get_client_facts(ask(true)).await.expect("again").into_inner().facts;
    assert_eq!(again, facts);
    // A branch sees the moves of its own clients only.
    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let own = scoring.get_client_facts(authorized(&staff, ask(false).into_inner())).await.expect("own").into_inner();
    assert_eq!(own.facts.iter().map(|f| f.class_downgrades).sum::<i64>(), 0);
    assert_eq!(own.facts.iter().map(|f| f.class_upgrades).sum::<i64>(), 1);
}

#[tokio::test]
async fn first_purchases_of_each_product_page_by_page_within_scope() {
    let (mut h, _) = network().await;
    let admin = h.admin.clone();
    let ask = |token: &str, from, to, page_token: String| {
        authorized(token, ListFirstPurchasesRequest { from, to, branch_id: String::new(), page_size: 1, page_token })
    };
    let october = h
        .client
        .list_first_purchases(ask(&admin, date(2026, 10, 1), date(2026, 10, 31), String::new()))
        .await
        .expect("october")
        .into_inner();
    // C-KRK-2 bought again in October, but its first purchase was in 2025-01.
    let got: Vec<(&str, bool)> =
        october.purchases.iter().map(|p| (p.client_id.as_str(), p.first_purchase_of_client)).collect();
    assert_eq!(got, [("C-WAW-2", true)]);

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = h
            .client
            .list_first_purchases(ask(&admin, date(2025, 11, 1), date(2025, 11, 30), token))
            .await
            .expect("page")
            .into_inner();
        pages.extend(page.purchases.into_iter().map(|p| p.client_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, ["C-KRK-1", "C-WAW-1"]);

    let staff = h.env.token(Role::BranchStaff, &["WAW"]);
    let own = h
        .client
        .list_first_purchases(ask(&staff, date(2025, 11, 1), date(2025, 11, 30), String::new()))
        .await
        .expect("own")
        .into_inner();
    assert_eq!(own.purchases.iter().map(|p| p.client_id.as_str()).collect::<Vec<_>>(), ["C-WAW-1"]);
    let bad = h.client.list_first_purchases(ask(&staff, date(2025, 11, 30), date(2025, 11, 1), String::new())).await;
    assert_eq!(bad.expect_err("backwards").code(), Code::InvalidArgument);
}
