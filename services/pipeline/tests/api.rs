//! The pipeline service over real gRPC on 127.0.0.1, with the clients
//! service it checks deals against, real Postgres and real Redis.
use branchscore_platform::Role;
use branchscore_platform::config::CompanyConfig;
use branchscore_proto::clients::v1 as clients;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Granularity, Money, SizeBand};
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::pipeline::v1::*;
use branchscore_testkit::{TestEnv, authorized, eventually};
use std::net::SocketAddr;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

struct Harness {
    pipeline_env: TestEnv,
    _clients_env: TestEnv,
    pipeline: PipelineServiceClient<Channel>,
    admin: String,
    waw: String,
    krk: String,
}

async fn start_clients(env: &TestEnv) -> SocketAddr {
    let config =
        branchscore_clients::Config { server: env.server(), database: env.database.clone(), ..Default::default() };
    let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await.expect("clients");
    branchscore_testkit::wait_serving(running.addr).await;
    let admin = env.token(Role::Admin, &[]);
    let mut c = ClientsServiceClient::new(branchscore_testkit::channel(running.addr).await);
    let branches = ["WAW", "KRK"].map(|id| clients::Branch {
        id: id.into(),
        name: id.into(),
        region: String::new(),
        currency: "PLN".into(),
    });
    c.batch_upsert_branches(authorized(&admin, clients::BatchUpsertBranchesRequest { branches: branches.to_vec() }))
        .await
        .expect("branches");
    let employees = ["WAW", "KRK"].map(|b| clients::Employee {
        id: format!("E-{b}"),
        branch_id: b.into(),
        full_name: format!("Seller {b}"),
        role: EmployeeRole::Sales as i32,
        team_lead_id: String::new(),
        active: true,
    });
    c.batch_upsert_employees(authorized(
        &admin,
        clients::BatchUpsertEmployeesRequest { employees: employees.to_vec() },
    ))
    .await
    .expect("employees");
    let client = |id: &str, branch: &str| clients::Client {
        id: id.into(),
        name: id.into(),
        kind: ClientKind::B2b as i32,
        size_band: SizeBand::Small as i32,
        branch_id: branch.into(),
        owner_employee_id: format!("E-{branch}"),
        known_since: Some(Date { year: 2025, month: 1, day: 1 }),
        ..Default::default()
    };
    c.batch_upsert_clients(authorized(
        &admin,
        clients::BatchUpsertClientsRequest { clients: vec![client("C-WAW", "WAW"), client("C-KRK", "KRK")] },
    ))
    .await
    .expect("clients");
    running.addr
}

async fn start_with(clients_url: Option<String>) -> Harness {
    let clients_env = TestEnv::new();
    let clients_url = match clients_url {
        Some(url) => url,
        None => format!("http://{}", start_clients(&clients_env).await),
    };
    let mut env = TestEnv::new();
    env.platform.peers.clients = clients_url;
    let config = branchscore_pipeline::Config {
        server: env.server(),
        database: env.database.clone(),
        relay_interval_ms: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let running = branchscore_pipeline::run(&config, &env.platform, env.shutdown.clone()).await.expect("pipeline");
    branchscore_testkit::wait_serving(running.addr).await;
    let pipeline = PipelineServiceClient::new(branchscore_testkit::channel(running.addr).await);
    Harness {
        admin: env.token(Role::Admin, &[]),
        waw: env.token(Role::BranchStaff, &["WAW"]),
        krk: env.token(Role::BranchStaff, &["KRK"]),
        pipeline_env: env,
        _clients_env: clients_env,
        pipeline,
    }
}

async fn start() -> Harness {
    start_with(None).await
}

fn pln(minor_units: i64) -> Option<Money> {
    Some(Money { minor_units, currency: "PLN".into() })
}

/// The date `days` from today in the company's zone.
fn in_days(days: i64) -> Option<Date> {
    Some(Date::from(CompanyConfig::default().today().expect("company zone") + chrono::Duration::days(days)))
}

fn days_ago(days: i64) -> Option<prost_types::Timestamp> {
    let at = chrono::Utc::now() - chrono::Duration::days(days);
    Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
}

fn new_deal(request_id: &str, client: &str, branch: &str) -> CreateDealRequest {
    CreateDealRequest {
        request_id: request_id.into(),
        client_id: client.into(),
        branch_id: branch.into(),
        owner_employee_id: format!("E-{branch}"),
        amount: pln(1_000_000),
        expected_close_date: in_days(20),
        ..Default::default()
    }
}

async fn create(h: &mut Harness, token: &str, request: CreateDealRequest) -> Deal {
    h.pipeline.create_deal(authorized(token, request)).await.expect("create deal").into_inner().deal.expect("deal")
}

async fn count(h: &Harness, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&h.pipeline_env.database.url).await.expect("pool");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

fn all_facts() -> Qualification {
    Qualification { right_person: true, right_plan: true, right_budget: true, right_timeline: true }
}

#[tokio::test]
async fn the_gate_names_what_is_missing_and_history_keeps_every_move() {
    let mut h = start().await;
    let waw = h.waw.clone();
    let deal = create(&mut h, &waw, new_deal("r-1", "C-WAW", "WAW")).await;
    assert_eq!(
        (deal.stage.as_str(), deal.probability_percent, deal.pipeline_id.as_str()),
        ("meeting", 25, "schiffman")
    );
    assert_eq!(deal.control_points.len(), 2, "the meeting stage's control points start");

    let to = |stage: &str| authorized(&waw, MoveDealRequest { deal_id: deal.id.clone(), to_stage: stage.into() });
    let refused = h.pipeline.move_deal(to("qualified")).await.expect_err("no facts");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    for fact in ["right person", "plan", "budget", "timeline"] {
        assert!(refused.message().contains(fact), "{fact} missing from {:?}", refused.message());
    }
    let three = Qualification { right_budget: false, ..all_facts() };
    h.pipeline
        .qualify_deal(authorized(&waw, QualifyDealRequest { deal_id: deal.id.clone(), qualification: Some(three) }))
        .await
        .expect("qualify");
    let refused = h.pipeline.move_deal(to("qualified")).await.expect_err("no budget");
    assert!(refused.message().contains("budget") && !refused.message().contains("plan"), "{}", refused.message());
    // Jumping past the gate is refused too.
    assert_eq!(
        h.pipeline.move_deal(to("verbal_yes")).await.expect_err("past the gate").code(),
        Code::FailedPrecondition
    );

    h.pipeline
        .qualify_deal(authorized(
            &waw,
            QualifyDealRequest { deal_id: deal.id.clone(), qualification: Some(all_facts()) },
        ))
        .await
        .expect("qualify");
    h.pipeline.move_deal(to("qualified")).await.expect("qualified");
    h.pipeline.move_deal(to("verbal_yes")).await.expect("verbal yes");
    assert_eq!(h.pipeline.move_deal(to("signed")).await.expect_err("won by WinDeal").code(), Code::InvalidArgument);
    assert_eq!(h.pipeline.move_deal(to("nowhere")).await.expect_err("unknown").code(), Code::InvalidArgument);
    let won = h
        .pipeline
        .win_deal(authorized(&waw, WinDealRequest { deal_id: deal.id.clone() }))
        .await
        .expect("won")
        .into_inner()
        .deal
        .expect("deal");
    assert_eq!((won.status(), won.probability_percent), (DealStatus::Won, 100));
    let moves: Vec<(&str, &str)> = won.history.iter().map(|t| (t.from_stage.as_str(), t.to_stage.as_str())).collect();
    assert_eq!(
        moves,
        [("", "meeting"), ("meeting", "qualified"), ("qualified", "verbal_yes"), ("verbal_yes", "signed")]
    );
    assert!(won.history.iter().all(|t| t.by == "test-branch_staff"));
    assert_eq!(h.pipeline.move_deal(to("meeting")).await.expect_err("closed").code(), Code::FailedPrecondition);

    // A deal won 10 days after opening makes the average cycle 10 days: 4 cycles allow 40.
    let old = CreateDealRequest {
        create_time: days_ago(10),
        expected_close_date: in_days(5),
        ..new_deal("r-2", "C-WAW", "WAW")
    };
    let old = create(&mut h, &waw, old).await;
    h.pipeline.win_deal(authorized(&waw, WinDealRequest { deal_id: old.id.clone() })).await.expect("won");
    let far = CreateDealRequest { expected_close_date: in_days(60), ..new_deal("r-3", "C-WAW", "WAW") };
    let far = create(&mut h, &waw, far).await;
    h.pipeline
        .qualify_deal(authorized(
            &waw,
            QualifyDealRequest { deal_id: far.id.clone(), qualification: Some(all_facts()) },
        ))
        .await
        .expect("qualify");
    let refused = h
        .pipeline
        .move_deal(authorized(&waw, MoveDealRequest { deal_id: far.id.clone(), to_stage: "qualified".into() }))
        .await
        .expect_err("timeline");
    assert!(refused.message().contains("expected close is 60 days after opening"), "{}", refused.message());
}

#[tokio::test]
async fn creating_twice_with_one_request_id_creates_once() {
    let mut h = start().await;
    let waw = h.waw.clone();
    let first = create(&mut h, &waw, new_deal("same", "C-WAW", "WAW")).await;
    let again = create(&mut h, &waw, new_deal("same", "C-WAW", "WAW")).await;
    assert_eq!(first.id, again.id);
    assert_eq!(count(&h, "deals").await, 1);
    assert_eq!(count(&h, "deal_transitions").await, 1);
    let lead = || CreateLeadRequest {
        request_id: "lead-1".into(),
        branch_id: "WAW".into(),
        owner_employee_id: "E-WAW".into(),
        channel: LeadChannel::Phone as i32,
        contact_name: "Jan".into(),
        ..Default::default()
    };
    let a = h.pipeline.create_lead(authorized(&waw, lead())).await.expect("lead").into_inner().lead.expect("lead");
    let b = h.pipeline.create_lead(authorized(&waw, lead())).await.expect("lead").into_inner().lead.expect("lead");
    assert_eq!(a.id, b.id);
    assert_eq!(count(&h, "leads").await, 1);
}

#[tokio::test]
async fn bad_requests_are_refused_and_write_nothing() {
    let mut h = start().await;
    let (admin, waw) = (h.admin.clone(), h.waw.clone());
    let bad = CreateDealRequest {
        request_id: "bad id".into(),
        amount: Some(Money { minor_units: -5, currency: "EUR".into() }),
        expected_close_date: None,
        ..new_deal("x", "C-WAW", "WAW")
    };
    let err = h.pipeline.create_deal(authorized(&waw, bad)).await.expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        err.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    for field in ["request_id", "amount.minor_units", "amount.currency", "expected_close_date"] {
        assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
    }
    let unknown = h.pipeline.create_deal(authorized(&waw, new_deal("u", "C-NOPE", "WAW"))).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let elsewhere =
        h.pipeline.create_deal(authorized(&admin, new_deal("e", "C-KRK", "WAW"))).await.expect_err("branch");
    assert_eq!(elsewhere.code(), Code::FailedPrecondition);
    let bad_lead = CreateLeadRequest {
        request_id: "l".into(),
        branch_id: "WAW".into(),
        owner_employee_id: "E-WAW".into(),
        ..Default::default()
    };
    assert_eq!(
        h.pipeline.create_lead(authorized(&waw, bad_lead)).await.expect_err("channel").code(),
        Code::InvalidArgument
    );
    let deal = create(&mut h, &waw, new_deal("ok", "C-WAW", "WAW")).await;
    let lose = |reason: &str| authorized(&waw, LoseDealRequest { deal_id: deal.id.clone(), reason: reason.into() });
    assert_eq!(h.pipeline.lose_deal(lose("bad weather")).await.expect_err("reason").code(), Code::InvalidArgument);
    assert_eq!((count(&h, "deals").await, count(&h, "leads").await, count(&h, "stage_events").await), (1, 0, 1));
    let lost = h.pipeline.lose_deal(lose("price")).await.expect("lost").into_inner().deal.expect("deal");
    assert_eq!((lost.status(), lost.loss_reason.as_str()), (DealStatus::Lost, "price"));
}

#[tokio::test]
async fn a_branch_never_sees_or_touches_another_branch() {
    let mut h = start().await;
    let (waw, krk) = (h.waw.clone(), h.krk.clone());
    let deal = create(&mut h, &waw, new_deal("w", "C-WAW", "WAW")).await;
    let get = h.pipeline.get_deal(authorized(&krk, GetDealRequest { deal_id: deal.id.clone() })).await;
    assert_eq!(get.expect_err("hidden").code(), Code::NotFound);
    let moved = h
        .pipeline
        .move_deal(authorized(&krk, MoveDealRequest { deal_id: deal.id.clone(), to_stage: "meeting".into() }))
        .await;
    assert_eq!(moved.expect_err("hidden").code(), Code::NotFound);
    let create_there = h.pipeline.create_deal(authorized(&krk, new_deal("k", "C-WAW", "WAW"))).await;
    assert_eq!(create_there.expect_err("not their branch").code(), Code::PermissionDenied);
    let forecast = h.pipeline.get_forecast(authorized(&krk, GetForecastRequest::default())).await.expect("forecast");
    assert!(forecast.into_inner().lines.is_empty());
    let theirs = h
        .pipeline
        .get_forecast(authorized(&krk, GetForecastRequest { branch_id: "WAW".into(), ..Default::default() }))
        .await;
    assert_eq!(theirs.expect_err("other branch").code(), Code::PermissionDenied);
    let none = h.pipeline.list_pipelines(ListPipelinesRequest {}).await.expect_err("no token");
    assert_eq!(none.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_unavailable_clients_service_means_unavailable_and_nothing_written() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let mut h = start_with(Some(format!("http://{closed}"))).await;
    let waw = h.waw.clone();
    let err = h.pipeline.create_deal(authorized(&waw, new_deal("x", "C-WAW", "WAW"))).await.expect_err("down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(count(&h, "deals").await, 0);
}

#[tokio::test]
async fn events_reach_a_restarted_watcher_and_the_redis_stream() {
    let mut h = start().await;
    let waw = h.waw.clone();
    let deal = create(&mut h, &waw, new_deal("e1", "C-WAW", "WAW")).await;
    let mut watch = h
        .pipeline
        .watch_events(authorized(&waw, WatchEventsRequest { after_cursor: 0 }))
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("stream").and_then(|m| m.event).expect("event");
    assert_eq!(
        (first.kind(), first.deal_id.as_str(), first.stage.as_str()),
        (StageEventKind::StageEntered, deal.id.as_str(), "meeting")
    );
    drop(watch);

    h.pipeline
        .lose_deal(authorized(&waw, LoseDealRequest { deal_id: deal.id.clone(), reason: "timing".into() }))
        .await
        .expect("lost");
    let other = create(&mut h, &waw, new_deal("e2", "C-WAW", "WAW")).await;
    let mut resumed = h
        .pipeline
        .watch_events(authorized(&waw, WatchEventsRequest { after_cursor: first.cursor }))
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), resumed.message())
            .await
            .expect("in time")
            .expect("stream")
            .and_then(|m| m.event)
            .expect("event");
        seen.push((event.kind(), event.deal_id));
    }
    assert_eq!(seen, [(StageEventKind::Lost, deal.id.clone()), (StageEventKind::StageEntered, other.id.clone())]);
    // Staff of another branch do not see these events.
    let krk = h.krk.clone();
    let mut theirs = h
        .pipeline
        .watch_events(authorized(&krk, WatchEventsRequest { after_cursor: 0 }))
        .await
        .expect("watch")
        .into_inner();
    let nothing = tokio::time::timeout(std::time::Duration::from_millis(600), theirs.message()).await;
    assert!(nothing.is_err(), "no WAW event reaches KRK");

    // The relay publishes every event to the Redis Stream.
    let redis = redis::Client::open(h.pipeline_env.platform.redis.url.as_str()).expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("redis");
    let stream = format!("{}pipeline:stage_events", h.pipeline_env.platform.redis.key_prefix);
    let published = eventually(std::time::Duration::from_secs(5), async || {
        let length: u64 = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await.expect("XLEN");
        (length == 3).then_some(())
    });
    assert!(published.await.is_some(), "the three events are in the stream");
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await.expect("DEL");
}

#[tokio::test]
async fn leads_sla_conversion_funnel_forecast_plan_and_facts() {
    let mut h = start().await;
    let (waw, admin) = (h.waw.clone(), h.admin.clone());
    let lead = |id: &str, channel: LeadChannel, hours_ago: i64| CreateLeadRequest {
        request_id: id.into(),
        branch_id: "WAW".into(),
        owner_employee_id: "E-WAW".into(),
        channel: channel as i32,
        receive_time: {
            let at = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
            Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
        },
        contact_name: id.into(),
        ..Default::default()
    };
    let late = h.pipeline.create_lead(authorized(&waw, lead("late", LeadChannel::Phone, 1))).await.expect("lead");
    let late = late.into_inner().lead.expect("lead");
    let quick = h.pipeline.create_lead(authorized(&waw, lead("quick", LeadChannel::Email, 0))).await.expect("lead");
    let quick = quick.into_inner().lead.expect("lead");
    assert_eq!((late.priority, late.sla_seconds, quick.priority), (1, 300, 4));
    h.pipeline
        .respond_to_lead(authorized(&waw, RespondToLeadRequest { lead_id: quick.id.clone(), response_time: None }))
        .await
        .expect("respond");
    let breaches =
        h.pipeline.list_sla_breaches(authorized(&waw, ListSlaBreachesRequest::default())).await.expect("breaches");
    assert_eq!(breaches.into_inner().leads.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [late.id.as_str()]);
    let answered = h
        .pipeline
        .respond_to_lead(authorized(&waw, RespondToLeadRequest { lead_id: late.id.clone(), response_time: None }))
        .await
        .expect("respond")
        .into_inner()
        .lead
        .expect("lead");
    assert!((3590..3700).contains(&answered.response_seconds), "{}", answered.response_seconds);

    // Three deals: won (from the late lead), lost at the meeting for price, open at 50%.
    let won =
        create(&mut h, &waw, CreateDealRequest { lead_id: late.id.clone(), ..new_deal("d1", "C-WAW", "WAW") }).await;
    let again = h
        .pipeline
        .create_deal(authorized(&waw, CreateDealRequest { lead_id: late.id.clone(), ..new_deal("d9", "C-WAW", "WAW") }))
        .await;
    assert_eq!(again.expect_err("converted already").code(), Code::FailedPrecondition);
    h.pipeline.win_deal(authorized(&waw, WinDealRequest { deal_id: won.id.clone() })).await.expect("won");
    let lost = create(&mut h, &waw, new_deal("d2", "C-WAW", "WAW")).await;
    h.pipeline
        .lose_deal(authorized(&waw, LoseDealRequest { deal_id: lost.id.clone(), reason: "price".into() }))
        .await
        .expect("lost");
    let open = create(&mut h, &waw, CreateDealRequest { amount: pln(333), ..new_deal("d3", "C-WAW", "WAW") }).await;
    h.pipeline
        .qualify_deal(authorized(
            &waw,
            QualifyDealRequest { deal_id: open.id.clone(), qualification: Some(all_facts()) },
        ))
        .await
        .expect("qualify");
    // The only won deal took 0 days: 4 x 0 allows no time at all, so the gate refuses on timing.
    let refused = h
        .pipeline
        .move_deal(authorized(&waw, MoveDealRequest { deal_id: open.id.clone(), to_stage: "qualified".into() }))
        .await;
    assert!(refused.expect_err("timeline").message().contains("expected close"));

    let forecast = h
        .pipeline
        .get_forecast(authorized(&admin, GetForecastRequest::default()))
        .await
        .expect("forecast")
        .into_inner();
    // 333 x 25% = 83.25 -> 83.
    assert_eq!(forecast.total_weighted_forecast.map(|m| m.minor_units), Some(83));

    let funnel =
        h.pipeline.get_funnel(authorized(&admin, GetFunnelRequest::default())).await.expect("funnel").into_inner();
    let reached: Vec<i64> = funnel.stages.iter().map(|s| s.reached).collect();
    assert_eq!(reached, [3, 0, 0], "every deal reached the meeting, none the later stages by moving");
    assert_eq!((funnel.won, funnel.lost, funnel.leads, funnel.converted_leads), (1, 1, 2, 1));
    assert_eq!(
        funnel.losses.iter().map(|l| (l.stage.as_str(), l.reason.as_str(), l.deals)).collect::<Vec<_>>(),
        [("meeting", "price", 1)]
    );
    assert_eq!(funnel.bottleneck_stage, "meeting");

    let plan = h
        .pipeline
        .calculate_plan(authorized(
            &admin,
            CalculatePlanRequest { revenue_target: pln(10_000_000), branch_id: String::new() },
        ))
        .await
        .expect("plan")
        .into_inner();
    // 10 000 000 / 1 000 000 = 10 deals; win rate 1/3 -> 30 meetings; 1 of 2 leads converted -> 60 leads.
    assert_eq!((plan.deals_to_win, plan.first_meetings, plan.leads), (10, 30, 60));

    // Facts are dated in the company's zone (Warsaw): just before midnight UTC it is already tomorrow there.
    let today = Some(Date::from(CompanyConfig::default().today().expect("company zone")));
    let facts = h
        .pipeline
        .get_pipeline_facts(authorized(
            &admin,
            GetPipelineFactsRequest {
                from: today,
                to: today,
                granularity: Granularity::Day as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("facts")
        .into_inner()
        .facts;
    let mine = facts.iter().find(|f| f.employee_id == "E-WAW").expect("E-WAW");
    assert_eq!(
        (mine.deals_won, mine.deals_lost, mine.won_amount.as_ref().map(|m| m.minor_units)),
        (1, 1, Some(1_000_000))
    );
    // The late lead was received an hour ago, which may be yesterday in Warsaw just after midnight.
    assert!(mine.leads >= 1 && mine.sla_breaches <= mine.leads);
}

/// Each counter of a facts row with the kind of record behind it.
fn counters(row: &PipelineFacts) -> [(&'static str, &'static str, i64); 7] {
    [
        ("leads", "lead", row.leads),
        ("answered_leads", "lead", row.answered_leads),
        ("sla_breaches", "lead", row.sla_breaches),
        ("converted_leads", "lead", row.converted_leads),
        ("deals_won", "deal", row.deals_won),
        ("deals_lost", "deal", row.deals_lost),
        ("overdue_control_points", "control_point", row.overdue_control_points),
    ]
}

/// The ids listed behind `fact`, sorted.
fn sources_of<'a>(row: &'a PipelineFacts, fact: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = row.sources.iter().filter(|s| s.fact == fact).map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

fn sorted<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = ids.into_iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids
}

/// Two days ago WAW received a phone lead (answered after 10 minutes: a
/// breach, then won as a deal), an e-mail (answered after a minute) and a
/// site lead (never answered: a breach); KRK a walk-in (never answered).
/// Today a second WAW deal is lost and a third stays open with its meeting
/// control points backdated: notes due 4 days ago and still open, the next
/// contact due 3 days ago and done today, both overdue. The lost deal's notes,
/// due 5 days ago and done the day before, were on time.
#[tokio::test]
async fn pipeline_facts_list_the_leads_deals_and_control_points_they_count() {
    let mut h = start().await;
    let (waw, krk, admin) = (h.waw.clone(), h.krk.clone(), h.admin.clone());
    let received = chrono::Utc::now() - chrono::Duration::days(2);
    let at = |after_seconds: i64| {
        let at = received + chrono::Duration::seconds(after_seconds);
        Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
    };
    let lead = |id: &str, branch: &str, channel: LeadChannel| CreateLeadRequest {
        request_id: id.into(),
        branch_id: branch.into(),
        owner_employee_id: format!("E-{branch}"),
        channel: channel as i32,
        receive_time: at(0),
        contact_name: id.into(),
        ..Default::default()
    };
    let mut leads = Vec::new();
    for (token, request) in [
        (&waw, lead("phone", "WAW", LeadChannel::Phone)),
        (&waw, lead("email", "WAW", LeadChannel::Email)),
        (&waw, lead("site", "WAW", LeadChannel::Site)),
        (&krk, lead("walk-in", "KRK", LeadChannel::WalkIn)),
    ] {
        let created = h.pipeline.create_lead(authorized(token, request)).await.expect("lead").into_inner();
        leads.push(created.lead.expect("lead").id);
    }
    let [phone, email, site, walk_in] = <[String; 4]>::try_from(leads).expect("four leads");
    for (id, after) in [(&phone, 600), (&email, 60)] {
        h.pipeline
            .respond_to_lead(authorized(&waw, RespondToLeadRequest { lead_id: id.clone(), response_time: at(after) }))
            .await
            .expect("respond");
    }
    let won =
        create(&mut h, &waw, CreateDealRequest { lead_id: phone.clone(), ..new_deal("won", "C-WAW", "WAW") }).await;
    h.pipeline.win_deal(authorized(&waw, WinDealRequest { deal_id: won.id.clone() })).await.expect("won");
    let lost = create(&mut h, &waw, new_deal("lost", "C-WAW", "WAW")).await;
    h.pipeline
        .lose_deal(authorized(&waw, LoseDealRequest { deal_id: lost.id.clone(), reason: "price".into() }))
        .await
        .expect("lost");
    let open = create(&mut h, &waw, new_deal("open", "C-WAW", "WAW")).await;
    let point = |deal: &Deal, kind: &str| {
        deal.control_points.iter().find(|p| p.kind == kind).map(|p| p.id.clone()).expect("control point")
    };
    let (open_notes, open_contact, lost_notes) =
        (point(&open, "meeting_notes_sent"), point(&open, "next_contact"), point(&lost, "meeting_notes_sent"));
    // The service dates everything now: move the due dates into the past.
    let pool = sqlx::PgPool::connect(&h.pipeline_env.database.url).await.expect("pool");
    for (id, due_days_ago, completed_days_ago) in
        [(&open_notes, 4, None), (&open_contact, 3, None), (&lost_notes, 5, Some(6))]
    {
        sqlx::query(
            "UPDATE control_points SET due_date = current_date - $2::int,
                    completed_at = now() - make_interval(days => $3::int)
             WHERE id = $1",
        )
        .bind(id)
        .bind(due_days_ago)
        .bind(completed_days_ago)
        .execute(&pool)
        .await
        .expect("backdate");
    }
    pool.close().await;
    h.pipeline
        .complete_control_point(authorized(
            &waw,
            CompleteControlPointRequest { control_point_id: open_contact.clone() },
        ))
        .await
        .expect("complete");

    let today = chrono::Utc::now().date_naive();
    let ask = |token: &str, include_sources: bool| {
        authorized(
            token,
            GetPipelineFactsRequest {
                from: Some(Date::from(today - chrono::Duration::days(30))),
                // A day ahead: today in Warsaw may be tomorrow in UTC.
                to: Some(Date::from(today + chrono::Duration::days(1))),
                include_sources,
                ..Default::default()
            },
        )
    };
    let facts = h.pipeline.get_pipeline_facts(ask(&admin, true)).await.expect("facts").into_inner().facts;
    assert_eq!(facts.len(), 2);
    let of = |employee: &str| facts.iter().find(|f| f.employee_id == employee).expect("row");
    let mine = of("E-WAW");
    assert_eq!(sources_of(mine, "leads"), sorted([&phone, &email, &site]));
    assert_eq!(sources_of(mine, "answered_leads"), sorted([&phone, &email]));
    assert_eq!(sources_of(mine, "sla_breaches"), sorted([&phone, &site]));
    assert_eq!(sources_of(mine, "converted_leads"), [phone.as_str()]);
    assert_eq!(sources_of(mine, "deals_won"), [won.id.as_str()]);
    assert_eq!(sources_of(mine, "deals_lost"), [lost.id.as_str()]);
    assert_eq!(sources_of(mine, "overdue_control_points"), sorted([&open_notes, &open_contact]));
    let theirs = of("E-KRK");
    assert_eq!(sources_of(theirs, "leads"), [walk_in.as_str()]);
    assert_eq!(sources_of(theirs, "sla_breaches"), [walk_in.as_str()]);
    for row in &facts {
        let counters = counters(row);
        for (fact, kind, count) in counters {
            let listed: Vec<&str> = row.sources.iter().filter(|s| s.fact == fact).map(|s| s.kind.as_str()).collect();
            assert_eq!(listed.len() as i64, count, "{fact} of {row:?}");
            assert!(listed.iter().all(|k| *k == kind), "{fact} of {row:?}");
        }
        assert_eq!(row.sources.len() as i64, counters.iter().map(|c| c.2).sum::<i64>(), "{row:?}");
    }

    // Without the flag: the same facts, no sources.
    let plain = h.pipeline.get_pipeline_facts(ask(&admin, false)).await.expect("plain").into_inner().facts;
    let without_sources: Vec<PipelineFacts> =
        facts.iter().map(|row| PipelineFacts { sources: Vec::new(), ..row.clone() }).collect();
    assert_eq!(plain, without_sources);

    // A branch sees its own row with its sources, and nothing of the other branch.
    let own = h.pipeline.get_pipeline_facts(ask(&waw, true)).await.expect("own").into_inner().facts;
    assert_eq!(own, std::slice::from_ref(mine));
}

#[tokio::test]
async fn the_funnel_counts_by_the_company_date_not_the_utc_date() {
    let mut h = start().await;
    let (waw, admin) = (h.waw.clone(), h.admin.clone());
    // 23:30 UTC on 10 March is 00:30 on 11 March in Warsaw.
    let late_evening_utc = Some(prost_types::Timestamp { seconds: 1_773_185_400, nanos: 0 });
    let lead = CreateLeadRequest {
        request_id: "midnight-lead".into(),
        branch_id: "WAW".into(),
        owner_employee_id: "E-WAW".into(),
        channel: LeadChannel::Phone as i32,
        receive_time: late_evening_utc,
        contact_name: "Ola".into(),
        ..Default::default()
    };
    h.pipeline.create_lead(authorized(&waw, lead)).await.expect("lead");
    let deal = CreateDealRequest { create_time: late_evening_utc, ..new_deal("midnight-deal", "C-WAW", "WAW") };
    create(&mut h, &waw, deal).await;
    let on = |day: i32| {
        let date = Some(Date { year: 2026, month: 3, day });
        authorized(&admin, GetFunnelRequest { from: date, to: date, ..Default::default() })
    };
    let march_11 = h.pipeline.get_funnel(on(11)).await.expect("funnel").into_inner();
    assert_eq!((march_11.leads, march_11.stages.first().map(|s| s.reached)), (1, Some(1)));
    let march_10 = h.pipeline.get_funnel(on(10)).await.expect("funnel").into_inner();
    assert_eq!((march_10.leads, march_10.stages.first().map(|s| s.reached)), (0, Some(0)));
}

#[tokio::test]
async fn pipelines_are_versioned_and_the_default_can_change() {
    let mut h = start().await;
    let (admin, waw) = (h.admin.clone(), h.waw.clone());
    let listed = h.pipeline.list_pipelines(authorized(&waw, ListPipelinesRequest {})).await.expect("list").into_inner();
    let ids: Vec<(&str, bool)> = listed.pipelines.iter().map(|p| (p.id.as_str(), p.is_default)).collect();
    assert_eq!(ids, [("schiffman", true), ("agency", false)]);
    let agency = listed.pipelines[1].clone();
    let probabilities: Vec<i32> = agency.stages.iter().map(|s| s.probability_percent).collect();
    assert_eq!(probabilities, [25, 40, 50, 75, 90, 100]);

    let mut changed = Pipeline { is_default: true, ..agency.clone() };
    changed.stages[0].name = "Proposal in the works".into();
    let store = |token: &str, pipeline: Pipeline| authorized(token, CreatePipelineRequest { pipeline: Some(pipeline) });
    let denied = h.pipeline.create_pipeline(store(&waw, changed.clone())).await.expect_err("staff");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut broken = changed.clone();
    broken.stages.last_mut().expect("stage").probability_percent = 95;
    let invalid = h.pipeline.create_pipeline(store(&admin, broken)).await.expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let stored =
        h.pipeline.create_pipeline(store(&admin, changed)).await.expect("v2").into_inner().pipeline.expect("p");
    assert_eq!((stored.id.as_str(), stored.version, stored.is_default), ("agency", 2, true));

    // New deals open in the new default; a deal keeps the version it was opened in.
    let deal = create(&mut h, &waw, new_deal("in-default", "C-WAW", "WAW")).await;
    assert_eq!(
        (deal.pipeline_id.as_str(), deal.pipeline_version, deal.stage.as_str()),
        ("agency", 2, "proposal_writing")
    );
    let listed = h.pipeline.list_pipelines(authorized(&waw, ListPipelinesRequest {})).await.expect("list").into_inner();
    assert_eq!(listed.pipelines[0].id, "agency");
}
