//! The `branchscore` binary as an operator runs it: a real process, real
//! Postgres and Redis, gRPC on 127.0.0.1.
mod common;

use branchscore_platform::Role;
use branchscore_platform::auth::Authenticator;
use common::{World, branchscore, run, terminate, text};

#[test]
fn dump_config_shows_file_and_environment_layers() {
    let dir = std::env::temp_dir().join(format!("bs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("branchscore.toml");
    std::fs::write(&file, "[company]\ncurrency = \"EUR\"\n[clients.server]\nconcurrency_limit = 7\n").expect("write");
    let output = run(branchscore()
        .args(["--config", file.to_str().expect("utf-8"), "serve", "--dump-config"])
        .env("BRANCHSCORE_CLIENTS__SERVER__LISTEN", "0.0.0.0:6001"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let dumped = text(&output.stdout);
    assert!(dumped.contains("currency = \"EUR\""), "{dumped}");
    assert!(dumped.contains("concurrency_limit = 7"), "{dumped}");
    assert!(dumped.contains("listen = \"0.0.0.0:6001\""), "{dumped}");
}

#[test]
fn a_bad_configuration_exits_2_naming_the_problem() {
    let output = run(branchscore().args(["serve"]).env("BRANCHSCORE_COMPANY__TIME_ZONE", "Mars/Olympus"));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("Mars/Olympus"), "{}", text(&output.stderr));

    let output = run(branchscore().args(["serve"]).env("BRANCHSCORE_CLIENTS__SERVER__CONCURRENCY_LIMIT", "many"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).to_lowercase().contains("clients.server.concurrency_limit"),
        "{}",
        text(&output.stderr)
    );

    let output = run(branchscore().args(["--config", "/nonexistent/branchscore.toml", "migrate"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("does not exist"), "{}", text(&output.stderr));
}

#[test]
fn token_mints_what_the_services_accept_and_refuses_what_they_would_not() {
    let output = run(branchscore().args(["token", "--role", "branch_manager", "--branch", "WAW", "--subject", "anna"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let token = text(&output.stdout).trim().to_owned();
    let principal =
        Authenticator::new(&Default::default()).expect("authenticator").verify(&token).expect("valid token");
    assert_eq!(principal.subject, "anna");
    assert_eq!(principal.role, Role::BranchManager);
    assert!(principal.can_access("WAW") && !principal.can_access("KRK"));

    let output = run(branchscore().args(["token", "--role", "branch_staff"]));
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("must name its branches"), "{}", text(&output.stderr));
    let output = run(branchscore().args(["token", "--role", "janitor"]));
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("unknown role"), "{}", text(&output.stderr));
}

#[test]
fn migrate_then_serve_then_demo_then_drain_on_sigterm() {
    let world = World::new();
    let grpc = world.gateway.1;
    let metrics = world.metrics;

    let mut serving = world.serve();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let demo_args = ["demo", "--target", &format!("http://{grpc}"), "--branches", "3", "--clients", "120"];
    let demo_args = [&demo_args[..], &["--months", "6", "--seed", "5", "--as-of", "2026-10-31"]].concat();
    let first = run(world.apply(branchscore().args(&demo_args)));
    assert!(first.status.success(), "demo failed: {}", text(&first.stderr));
    let first = text(&first.stdout);
    let accepted = imported(&first, "accepted");
    assert!(accepted > 100, "{first}");
    assert_eq!(imported(&first, "rejected"), 0, "{first}");
    assert!(first.contains("3 broken lines sent on purpose, 3 refused"), "{first}");
    assert!(first.contains("ABC x XYZ") && first.contains("Funnel (schiffman pipeline"), "{first}");
    assert!(first.contains("Feedback:") && first.contains("NPS"), "{first}");
    assert!(first.contains("Bonuses 2026-07-01 to 2026-09-30 (version 1, approved"), "{first}");
    assert!(first.contains("payroll export:"), "{first}");
    assert!(first.contains("Period report 2026-07-01 to 2026-09-30 by branch"), "{first}");
    assert!(first.contains("Bonus forecast 2026-10-01 to 2026-12-31"), "{first}");
    assert!(first.contains(".xlsx ("), "{first}");
    // The same network again: every line is a duplicate, nothing changes.
    let again = run(world.apply(branchscore().args(&demo_args)));
    assert!(again.status.success(), "demo again failed: {}", text(&again.stderr));
    let again = text(&again.stdout);
    assert_eq!(imported(&again, "accepted"), 0, "{again}");
    assert_eq!(imported(&again, "duplicates"), accepted, "{again}");
    // The approved quarter is not overwritten: the recomputation is its next version.
    assert!(again.contains("Bonuses 2026-07-01 to 2026-09-30 (version 2, approved"), "{again}");

    let scrape = runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(metrics).await.expect("metrics port");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").await.expect("request");
        let mut body = String::new();
        stream.read_to_string(&mut body).await.expect("response");
        body
    });
    assert!(scrape.contains("grpc_server_requests_total"), "{scrape}");
    assert!(scrape.contains("ImportTransactions"), "{scrape}");

    let status = terminate(&mut serving.0);
    assert!(status.success(), "serve exited with {status}");
}

/// `import replies: 10 accepted, 0 duplicates, 0 rejected` -> the number before `word`.
fn imported(summary: &str, word: &str) -> i64 {
    let line = summary.lines().find(|l| l.contains("import replies:")).expect("import summary line");
    let before = line.split(&format!(" {word}")).next().expect("word");
    before.rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).expect("number")
}
