//! The gateway over real gRPC on 127.0.0.1, in front of a real clients
//! service, with real Postgres and Redis.
use branchscore_gateway::Config;
use branchscore_gateway::rate_limit::RateLimitConfig;
use branchscore_platform::Role;
use branchscore_platform::auth::{AuthConfig, TokenIssuer};
use branchscore_platform::config::PeersConfig;
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Money, SizeBand};
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use branchscore_proto::feedback::v1::survey_link_service_client::SurveyLinkServiceClient;
use branchscore_proto::feedback::v1::{ListSurveysRequest, OpenSurveyRequest};
use branchscore_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use branchscore_proto::gateway::v1::{
    ApiKey, CreateApiKeyRequest, ListApiKeysRequest, RevokeApiKeyRequest, Role as KeyRole, RotateApiKeyRequest,
};
use branchscore_proto::pipeline::v1::ListPipelinesRequest;
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_testkit::{TestEnv, authorized};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const BROWSER_ORIGIN: &str = "https://crm.example.com";

/// A clients service with two branches, and a gateway in front of it.
struct Harness {
    gateway_env: TestEnv,
    clients_env: TestEnv,
    clients_addr: SocketAddr,
    addr: SocketAddr,
    channel: Channel,
    admin: String,
    hq: String,
    waw: String,
    erp: String,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut Config)) -> Harness {
        Harness::start_in(TestEnv::new(), TestEnv::new(), adjust).await
    }

    /// People sign in with an identity provider's RS256 tokens; the gateway
    /// signs API-key callers' tokens with a key of the deployment's own.
    async fn start_rs256() -> Harness {
        const KEYS: &str = "../../shared/platform/testdata";
        let pem = |name: &str| std::fs::read_to_string(format!("{KEYS}/{name}")).expect("test key");
        let idp = AuthConfig {
            rs256_public_key_pem: pem("idp-rs256.pub.pem"),
            rs256_signing_key_pem: pem("idp-rs256.key.pem"),
            ..AuthConfig::default()
        };
        let people = || TokenIssuer::for_deployment(&idp).expect("idp key").expect("idp issuer");
        let deployment = AuthConfig {
            hs256_secret: String::new(),
            rs256_public_key_pem: format!("{}{}", pem("idp-rs256.pub.pem"), pem("own-rs256.pub.pem")),
            rs256_signing_key_pem: pem("own-rs256.key.pem"),
            ..AuthConfig::default()
        };
        let env = || TestEnv::new().with_auth(deployment.clone(), people());
        Harness::start_in(env(), env(), |_| {}).await
    }

    async fn start_in(clients_env: TestEnv, gateway_env: TestEnv, adjust: impl FnOnce(&mut Config)) -> Harness {
        let clients_addr = start_clients(&clients_env).await;
        let addr = start_gateway(&gateway_env, |peers| peers.clients = format!("http://{clients_addr}"), adjust).await;
        Harness {
            admin: gateway_env.token(Role::Admin, &[]),
            hq: gateway_env.token(Role::HqAnalyst, &[]),
            waw: gateway_env.token(Role::BranchStaff, &["WAW"]),
            erp: gateway_env.token(Role::ErpIntegration, &["*"]),
            channel: branchscore_testkit::channel(addr).await,
            gateway_env,
            clients_env,
            clients_addr,
            addr,
        }
    }

    fn clients(&self) -> ClientsServiceClient<Channel> {
        ClientsServiceClient::new(self.channel.clone())
    }

    fn keys(&self) -> GatewayServiceClient<Channel> {
        GatewayServiceClient::new(self.channel.clone())
    }
}

async fn start_gateway(
    env: &TestEnv,
    route: impl FnOnce(&mut PeersConfig),
    adjust: impl FnOnce(&mut Config),
) -> SocketAddr {
    let mut platform = env.platform.clone();
    route(&mut platform.peers);
    let mut config = Config {
        server: env.server(),
        database: env.database.clone(),
        cors_allowed_origins: vec![BROWSER_ORIGIN.into()],
        ..Config::default()
    };
    adjust(&mut config);
    let running = branchscore_gateway::run(&config, &platform, env.shutdown.clone()).await.expect("gateway");
    branchscore_testkit::wait_serving(running.addr).await;
    running.addr
}

/// Seeded directly, not through the gateway: the tests are about what passes it.
async fn start_clients(env: &TestEnv) -> SocketAddr {
    start_clients_at(env, env.server().listen).await
}

async fn start_clients_at(env: &TestEnv, listen: SocketAddr) -> SocketAddr {
    let server = branchscore_platform::config::ServerConfig { listen, ..env.server() };
    let config = branchscore_clients::Config { server, database: env.database.clone(), ..Default::default() };
    let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await.expect("clients");
    branchscore_testkit::wait_serving(running.addr).await;
    let admin = env.token(Role::Admin, &[]);
    let mut c = ClientsServiceClient::new(branchscore_testkit::channel(running.addr).await);
    let branches = ["WAW", "KRK"].map(|id| Branch {
        id: id.into(),
        name: id.into(),
        region: String::new(),
        currency: "PLN".into(),
    });
    c.batch_upsert_branches(authorized(&admin, BatchUpsertBranchesRequest { branches: branches.to_vec() }))
        .await
        .expect("branches");
    let employees = ["WAW", "KRK"].map(|b| Employee {
        id: format!("E-{b}"),
        branch_id: b.into(),
        full_name: format!("Seller {b}"),
        role: EmployeeRole::Sales as i32,
        team_lead_id: String::new(),
        active: true,
    });
    c.batch_upsert_employees(authorized(&admin, BatchUpsertEmployeesRequest { employees: employees.to_vec() }))
        .await
        .expect("employees");
    let products = BatchUpsertProductsRequest {
        product_lines: vec![ProductLine { id: "PL-PRINT".into(), name: "Print".into() }],
        products: vec![Product {
            id: "P-CARDS".into(),
            product_line_id: "PL-PRINT".into(),
            name: "Business cards".into(),
        }],
    };
    c.batch_upsert_products(authorized(&admin, products)).await.expect("products");
    let client = |id: &str, branch: &str| Client {
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
        BatchUpsertClientsRequest { clients: vec![client("C-WAW", "WAW"), client("C-KRK", "KRK")] },
    ))
    .await
    .expect("clients");
    running.addr
}

fn sale(id: &str, client: &str, branch: &str, month: i32) -> TransactionLine {
    TransactionLine {
        id: id.into(),
        document_id: format!("DOC-{id}"),
        client_id: client.into(),
        product_id: "P-CARDS".into(),
        amount: Some(Money { minor_units: 125_000, currency: "PLN".into() }),
        business_date: Some(Date { year: 2025, month, day: 10 }),
        branch_id: branch.into(),
        employee_id: format!("E-{branch}"),
        kind: LineKind::Sale as i32,
    }
}

fn with_api_key<T>(secret: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-api-key", secret.parse().expect("ascii secret"));
    request
}

fn list_in(branch: &str) -> ListClientsRequest {
    ListClientsRequest { branch_id: branch.into(), ..Default::default() }
}

fn client_ids(reply: ListClientsResponse) -> Vec<String> {
    reply.clients.into_iter().map(|client| client.id).collect()
}

#[tokio::test]
async fn calls_pass_through_in_both_stream_directions_with_a_request_id() {
    let h = Harness::start().await;
    let reply = h.clients().list_branches(authorized(&h.hq, ListBranchesRequest::default())).await.expect("unary");
    assert_eq!(reply.get_ref().branches.len(), 2);
    let generated = reply.metadata().get("x-request-id").expect("a request id is made").to_str().expect("ascii");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let mut asked = authorized(&h.hq, ListBranchesRequest::default());
    asked.metadata_mut().insert("x-request-id", "erp-batch-42".parse().expect("ascii"));
    let reply = h.clients().list_branches(asked).await.expect("unary");
    assert_eq!(reply.metadata().get("x-request-id").map(|id| id.to_str().ok()), Some(Some("erp-batch-42")));

    // Client streaming: three messages in, one answer out.
    let batches = (1..=3).map(|month| ImportTransactionsRequest {
        lines: vec![
            sale(&format!("L-WAW-{month}"), "C-WAW", "WAW", month),
            sale(&format!("L-KRK-{month}"), "C-KRK", "KRK", month),
        ],
    });
    let imported = h
        .clients()
        .import_transactions(authorized(&h.erp, tokio_stream::iter(batches)))
        .await
        .expect("import through the gateway")
        .into_inner();
    assert_eq!((imported.accepted, imported.duplicates, imported.rejected), (6, 0, 0));

    // Server streaming: progress messages, the summary last.
    let mut scoring = ScoringServiceClient::new(h.channel.clone());
    let mut progress = scoring
        .recompute_scores(authorized(
            &h.admin,
            RecomputeScoresRequest { as_of: Some(Date { year: 2025, month: 6, day: 30 }) },
        ))
        .await
        .expect("recompute through the gateway")
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = progress.message().await.expect("stream") {
        messages.push(message);
    }
    assert!(messages.len() > 1, "several progress messages: {messages:?}");
    let summary = messages.last().and_then(|last| last.summary).expect("summary last");
    assert_eq!(summary.clients, 2);
}

#[tokio::test]
async fn callers_without_a_valid_credential_are_refused_at_the_edge() {
    let h = Harness::start().await;
    let anonymous = h.clients().list_branches(ListBranchesRequest::default()).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert!(anonymous.metadata().get("x-request-id").is_some(), "refusals carry the request id");
    let garbage = h.clients().list_branches(authorized("not-a-jwt", ListBranchesRequest::default())).await;
    assert_eq!(garbage.expect_err("bad token").code(), Code::Unauthenticated);
    let forged = branchscore_platform::auth::TokenIssuer::new(&branchscore_platform::auth::AuthConfig {
        hs256_secret: "someone-elses-secret-that-is-long-enough".into(),
        ..Default::default()
    })
    .mint("eve", Role::Admin, &[], Duration::from_secs(60))
    .expect("mint");
    let forged = h.clients().list_branches(authorized(&forged, ListBranchesRequest::default())).await;
    assert_eq!(forged.expect_err("forged token").code(), Code::Unauthenticated);
    let unknown_key = h.clients().list_branches(with_api_key("bsk_nope", ListBranchesRequest::default())).await;
    assert_eq!(unknown_key.expect_err("unknown key").code(), Code::Unauthenticated);
    let mut both = with_api_key("bsk_nope", ListBranchesRequest::default());
    both.metadata_mut().insert("authorization", format!("Bearer {}", h.hq).parse().expect("ascii"));
    assert_eq!(h.clients().list_branches(both).await.expect_err("two credentials").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn branch_scope_is_still_enforced_by_the_service_behind_the_gateway() {
    let h = Harness::start().await;
    let own = h.clients().list_clients(authorized(&h.waw, list_in("WAW"))).await.expect("own branch");
    assert_eq!(client_ids(own.into_inner()), ["C-WAW"]);
    let other = h.clients().list_clients(authorized(&h.waw, list_in("KRK"))).await.expect_err("other branch");
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    let hidden = h.clients().get_client(authorized(&h.waw, GetClientRequest { id: "C-KRK".into() })).await;
    assert_eq!(hidden.expect_err("another branch's client").code(), Code::NotFound);
}

fn new_key(request_id: &str, role: KeyRole, branches: &[&str]) -> CreateApiKeyRequest {
    CreateApiKeyRequest {
        request_id: request_id.into(),
        display_name: "ERP Warszawa".into(),
        subject: "erp-waw".into(),
        role: role as i32,
        branch_ids: branches.iter().map(|branch| branch.to_string()).collect(),
    }
}

#[tokio::test]
async fn api_keys_work_where_people_sign_in_with_an_identity_providers_rs256_tokens() {
    let h = Harness::start_rs256().await;
    let created = h
        .keys()
        .create_api_key(authorized(&h.admin, new_key("k-1", KeyRole::BranchManager, &["WAW"])))
        .await
        .expect("an admin's identity-provider token")
        .into_inner();
    let own = h.clients().list_clients(with_api_key(&created.secret, list_in("WAW"))).await.expect("with the key");
    assert_eq!(client_ids(own.into_inner()), ["C-WAW"]);
    let other = h.clients().list_clients(with_api_key(&created.secret, list_in("KRK"))).await;
    assert_eq!(other.expect_err("outside the key's branches").code(), Code::PermissionDenied);
    // An HS256 token signed with the development secret is nobody here.
    let dev = TokenIssuer::new(&AuthConfig::default()).mint("eve", Role::Admin, &[], Duration::from_secs(60));
    let refused = h.clients().list_branches(authorized(&dev.expect("mint"), ListBranchesRequest::default())).await;
    assert_eq!(refused.expect_err("HS256").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn api_keys_act_as_their_principal_and_only_admins_manage_them() {
    let h = Harness::start().await;
    let mut keys = h.keys();
    let created = keys
        .create_api_key(authorized(&h.admin, new_key("k-1", KeyRole::BranchManager, &["WAW"])))
        .await
        .expect("create")
        .into_inner();
    let key = created.api_key.expect("key");
    assert!(created.secret.starts_with("bsk_"));
    assert_eq!(
        (key.role(), key.branch_ids.as_slice(), key.secrets.len()),
        (KeyRole::BranchManager, &["WAW".to_string()][..], 1)
    );

    // The key's principal: a manager of WAW, not of KRK.
    let own = h.clients().list_clients(with_api_key(&created.secret, list_in("WAW"))).await.expect("with the key");
    assert_eq!(client_ids(own.into_inner()), ["C-WAW"]);
    let other = h.clients().list_clients(with_api_key(&created.secret, list_in("KRK"))).await;
    assert_eq!(other.expect_err("outside the key's branches").code(), Code::PermissionDenied);
    // Its calls reach the gateway's own API too, where a manager is no admin.
    let listed = keys.list_api_keys(with_api_key(&created.secret, ListApiKeysRequest::default())).await;
    assert_eq!(listed.expect_err("not an admin").code(), Code::PermissionDenied);

    // A retry returns the same key without showing the secret again; another request with that id is refused.
    let retried = keys
        .create_api_key(authorized(&h.admin, new_key("k-1", KeyRole::BranchManager, &["WAW"])))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!((retried.api_key.map(|k| k.id), retried.secret.as_str()), (Some(key.id.clone()), ""));
    let reused = keys.create_api_key(authorized(&h.admin, new_key("k-1", KeyRole::BranchStaff, &["KRK"]))).await;
    assert_eq!(reused.expect_err("request id reused").code(), Code::AlreadyExists);

    let refused = keys.create_api_key(authorized(&h.hq, new_key("k-2", KeyRole::Admin, &[]))).await;
    assert_eq!(refused.expect_err("head office, not admin").code(), Code::PermissionDenied);
    let invalid = keys
        .create_api_key(authorized(&h.admin, new_key("k-3", KeyRole::BranchStaff, &["*"])))
        .await
        .expect_err("staff cannot hold every branch");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let violations = invalid.get_error_details().bad_request().cloned().expect("field violations").field_violations;
    assert_eq!(violations[0].field, "branch_ids");

    let stored: Vec<u8> = {
        let pool = sqlx::PgPool::connect(&h.gateway_env.database.url).await.expect("pool");
        let hash = sqlx::query_scalar("SELECT hash FROM api_key_secrets").fetch_one(&pool).await.expect("hash");
        pool.close().await;
        hash
    };
    assert_ne!(stored, created.secret.as_bytes(), "only the hash is stored");
}

async fn list_branches_with(h: &Harness, secret: &str) -> Result<(), Code> {
    h.clients()
        .list_branches(with_api_key(secret, ListBranchesRequest::default()))
        .await
        .map(drop)
        .map_err(|s| s.code())
}

#[tokio::test]
async fn a_rotated_key_keeps_its_old_secret_until_the_grace_deadline_and_revocation_ends_all() {
    let h = Harness::start().await;
    let mut keys = h.keys();
    let created = keys
        .create_api_key(authorized(&h.admin, new_key("k-1", KeyRole::ErpIntegration, &["*"])))
        .await
        .expect("create")
        .into_inner();
    let id = created.api_key.expect("key").id;
    let old = created.secret;
    list_branches_with(&h, &old).await.expect("the first secret works");

    let grace = chrono::Utc::now() + chrono::Duration::seconds(2);
    let rotated = keys
        .rotate_api_key(authorized(
            &h.admin,
            RotateApiKeyRequest {
                api_key_id: id.clone(),
                previous_secret_expire_time: Some(branchscore_proto::convert::timestamp(grace)),
            },
        ))
        .await
        .expect("rotate")
        .into_inner();
    let new = rotated.secret;
    let key: ApiKey = rotated.api_key.expect("key");
    assert_eq!(key.secrets.len(), 2, "both secrets live during the grace period");
    assert!(key.secrets[0].expire_time.is_none() && key.secrets[1].expire_time.is_some(), "newest first");
    list_branches_with(&h, &old).await.expect("the old secret works until the deadline");
    list_branches_with(&h, &new).await.expect("the new secret works");

    tokio::time::sleep((grace - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300)).await;
    assert_eq!(list_branches_with(&h, &old).await, Err(Code::Unauthenticated), "past the grace deadline");
    list_branches_with(&h, &new).await.expect("the new secret still works");

    let revoked = keys
        .revoke_api_key(authorized(&h.admin, RevokeApiKeyRequest { api_key_id: id.clone() }))
        .await
        .expect("revoke")
        .into_inner()
        .api_key
        .expect("key");
    assert!(revoked.revoke_time.is_some() && revoked.secrets.is_empty());
    assert_eq!(list_branches_with(&h, &new).await, Err(Code::Unauthenticated), "revoked at once");
    let again = keys.revoke_api_key(authorized(&h.admin, RevokeApiKeyRequest { api_key_id: id.clone() })).await;
    assert_eq!(
        again.expect("revoking twice changes nothing").into_inner().api_key.and_then(|k| k.revoke_time),
        revoked.revoke_time
    );
    let rotate_revoked = keys
        .rotate_api_key(authorized(&h.admin, RotateApiKeyRequest { api_key_id: id, previous_secret_expire_time: None }))
        .await;
    assert_eq!(rotate_revoked.expect_err("revoked").code(), Code::FailedPrecondition);

    let listed = |show_revoked| ListApiKeysRequest { show_revoked, ..Default::default() };
    assert!(
        keys.list_api_keys(authorized(&h.admin, listed(false))).await.expect("list").into_inner().api_keys.is_empty()
    );
    assert_eq!(
        keys.list_api_keys(authorized(&h.admin, listed(true))).await.expect("list").into_inner().api_keys.len(),
        1
    );
}

fn tight_limit(config: &mut Config) {
    config.rate_limit = RateLimitConfig { calls_per_second: 0.5, burst: 2 };
}

async fn exhaust(channel: Channel, token: &str) -> tonic::Status {
    let mut clients = ClientsServiceClient::new(channel);
    for _ in 0..2 {
        clients.list_branches(authorized(token, ListBranchesRequest::default())).await.expect("within the burst");
    }
    clients.list_branches(authorized(token, ListBranchesRequest::default())).await.expect_err("burst spent")
}

#[tokio::test]
async fn callers_over_their_rate_are_told_when_to_retry_with_or_without_redis() {
    let h = Harness::start_with(tight_limit).await;
    let refused = exhaust(h.channel.clone(), &h.hq).await;
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let retry = refused.get_error_details().retry_info().cloned().expect("retry hint").retry_delay.expect("delay");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(2), "{retry:?}");
    h.clients().list_branches(authorized(&h.admin, ListBranchesRequest::default())).await.expect("another caller");
    // The bucket is in Redis, shared by every gateway replica.
    let mut redis = redis::Client::open(branchscore_testkit::redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let bucket = format!("{}rate:test-hq_analyst", h.gateway_env.platform.redis.key_prefix);
    let exists: bool = redis::cmd("EXISTS").arg(&bucket).query_async(&mut redis).await.expect("exists");
    assert!(exists, "{bucket} in Redis");

    // Redis is a cache, never required: without it each replica limits on its own.
    let mut without_redis = TestEnv::new();
    without_redis.platform.redis.url = "redis://127.0.0.1:1".into();
    let clients_addr = h.clients_addr;
    let addr =
        start_gateway(&without_redis, |peers| peers.clients = format!("http://{clients_addr}"), tight_limit).await;
    let refused = exhaust(branchscore_testkit::channel(addr).await, &h.hq).await;
    assert_eq!(refused.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn browsers_call_with_grpc_web_from_allowed_origins() {
    let h = Harness::start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut framed = vec![0, 0, 0, 0, 0];
    framed.extend(ListBranchesRequest::default().encode_to_vec());
    let request = http::Request::post(format!("http://{}/branchscore.clients.v1.ClientsService/ListBranches", h.addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", BROWSER_ORIGIN)
        .header("authorization", format!("Bearer {}", h.hq))
        .body(Full::new(Bytes::from(framed)))
        .expect("request");
    let response = client.request(request).await.expect("HTTP/1.1 answer");
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.status(), http::StatusCode::OK);
    let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    assert_eq!(header("content-type").as_deref(), Some("application/grpc-web+proto"));
    assert_eq!(header("access-control-allow-origin").as_deref(), Some(BROWSER_ORIGIN));
    let body = response.into_body().collect().await.expect("body").to_bytes();
    // A message frame, then the trailers as a frame flagged 0x80.
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let reply = ListBranchesResponse::decode(&body[5..5 + length]).expect("message");
    assert_eq!(reply.branches.len(), 2);
    let trailers = &body[5 + length..];
    assert_eq!(trailers[0], 0x80);
    assert!(String::from_utf8_lossy(&trailers[5..]).contains("grpc-status:0"), "{trailers:?}");

    let preflight = |origin: &str| {
        http::Request::options(format!("http://{}/branchscore.clients.v1.ClientsService/ListBranches", h.addr))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web,authorization")
            .body(Full::new(Bytes::new()))
            .expect("preflight")
    };
    let allowed = client.request(preflight(BROWSER_ORIGIN)).await.expect("preflight answer");
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(BROWSER_ORIGIN.as_bytes())
    );
    let foreign = client.request(preflight("https://evil.example.com")).await.expect("preflight answer");
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn health_and_reflection_show_what_is_routed_and_unrouted_packages_are_unimplemented() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let h = Harness::start().await;
    let mut reflection = ServerReflectionClient::new(h.channel.clone());
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        reflection.server_reflection_info(tokio_stream::iter([ask])).await.expect("reflection").into_inner();
    let Some(MessageResponse::ListServicesResponse(listed)) =
        answers.message().await.expect("answer").and_then(|answer| answer.message_response)
    else {
        panic!("a list of services");
    };
    let names: Vec<String> = listed.service.into_iter().map(|service| service.name).collect();
    for routed in [
        "branchscore.clients.v1.ClientsService",
        "branchscore.clients.v1.ScoringService",
        "branchscore.gateway.v1.GatewayService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|name| name == routed), "{routed} missing from {names:?}");
    }
    assert!(!names.iter().any(|name| name.starts_with("branchscore.pipeline.")), "pipeline is not routed: {names:?}");

    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel.clone());
    let routed = health
        .check(tonic_health::pb::HealthCheckRequest { service: "branchscore.clients.v1.ClientsService".into() })
        .await
        .expect("health without a token");
    assert_eq!(routed.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

    let unrouted = PipelineServiceClient::new(h.channel.clone())
        .list_pipelines(authorized(&h.admin, ListPipelinesRequest::default()))
        .await
        .expect_err("no pipeline behind this gateway");
    assert_eq!(unrouted.code(), Code::Unimplemented);
}

#[tokio::test]
async fn oversized_messages_are_refused_before_they_reach_the_service() {
    let h = Harness::start_with(|config| config.server.max_message_bytes = 1024).await;
    let huge = GetClientRequest { id: "C".repeat(4096) };
    let refused = h.clients().get_client(authorized(&h.hq, huge)).await.expect_err("too big");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("4099 bytes"), "{}", refused.message());
    let fine = h.clients().get_client(authorized(&h.hq, GetClientRequest { id: "C-WAW".into() })).await;
    assert_eq!(fine.expect("small enough").into_inner().client.map(|c| c.id).as_deref(), Some("C-WAW"));
}

#[tokio::test]
async fn survey_links_reach_the_feedback_service_without_a_token() {
    let feedback_env = TestEnv::new();
    let mut platform = feedback_env.platform.clone();
    // Never asked here: opening a link needs no client data.
    platform.peers.clients = "http://127.0.0.1:1".into();
    let config = branchscore_feedback::Config {
        server: feedback_env.server(),
        database: feedback_env.database.clone(),
        ..Default::default()
    };
    let feedback =
        branchscore_feedback::run(&config, &platform, feedback_env.shutdown.clone()).await.expect("feedback");
    branchscore_testkit::wait_serving(feedback.addr).await;
    let env = TestEnv::new();
    let addr = start_gateway(&env, |peers| peers.feedback = format!("http://{}", feedback.addr), |_| {}).await;
    let channel = branchscore_testkit::channel(addr).await;

    let link = SurveyLinkServiceClient::new(channel.clone())
        .open_survey(OpenSurveyRequest { token: "not-a-link".into() })
        .await
        .expect_err("an unknown link");
    assert_eq!(link.code(), Code::Unauthenticated);
    assert_eq!(link.message(), "this survey link is not valid", "the feedback service judged the link");
    let staff = FeedbackServiceClient::new(channel)
        .list_surveys(ListSurveysRequest::default())
        .await
        .expect_err("staff calls need a token");
    assert_eq!(staff.code(), Code::Unauthenticated);
    assert!(staff.message().contains("Bearer"), "{}", staff.message());
}

#[tokio::test]
async fn a_service_that_restarts_is_unavailable_while_down_and_reached_again_once_up() {
    let mut h = Harness::start().await;
    let branches = |h: &Harness| {
        let mut clients = h.clients();
        let request = authorized(&h.hq, ListBranchesRequest::default());
        async move { clients.list_branches(request).await.map(|reply| reply.into_inner().branches.len()) }
    };
    assert_eq!(branches(&h).await.expect("up"), 2);

    h.clients_env.shutdown.cancel();
    let mut down = None;
    for _ in 0..100 {
        match branches(&h).await {
            Err(status) => {
                down = Some(status);
                break;
            }
            // Calls in flight finish before the service stops.
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let down = down.expect("the service stopped");
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(down.message().contains("retry later"), "{}", down.message());

    // The same address again, as after a restart: the gateway reconnects on its own.
    h.clients_env = TestEnv::new();
    start_clients_at(&h.clients_env, h.clients_addr).await;
    assert_eq!(branches(&h).await.expect("up again"), 2);
}

#[tokio::test]
async fn a_service_that_does_not_answer_is_a_deadline_exceeded_at_the_capped_deadline() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let env = TestEnv::new();
    let cap = |config: &mut Config| config.max_deadline_ms = Duration::from_millis(300);
    let addr = start_gateway(&env, |peers| peers.clients = format!("http://{silent_addr}"), cap).await;
    let started = std::time::Instant::now();
    let refused = ClientsServiceClient::new(branchscore_testkit::channel(addr).await)
        .list_branches(authorized(&env.token(Role::HqAnalyst, &[]), ListBranchesRequest::default()))
        .await
        .expect_err("no answer");
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert!(refused.message().contains("did not answer within the deadline"), "{}", refused.message());
    assert!(started.elapsed() >= Duration::from_millis(300), "not before the deadline: {:?}", started.elapsed());
}
