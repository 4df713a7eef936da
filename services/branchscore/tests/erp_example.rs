//! The example ERP integration (`examples/erp-python/erp.py`, grpcio with
//! stubs generated from `proto/`) against `branchscore serve`, through the
//! gateway with an API key: it loads master data and sales, re-sends a batch,
//! and after head office approves a quarter pulls the bonuses for payroll.
mod common;

use branchscore_platform::Role;
use branchscore_proto::common::v1::{Date, EmployeeRole, Money};
use branchscore_proto::gateway::v1 as gateway;
use branchscore_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use branchscore_proto::kpi::v1::kpi_service_client::KpiServiceClient;
use branchscore_proto::kpi::v1::*;
use branchscore_testkit::authorized;
use common::{World, text};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example's virtualenv (created on first use by the shared venv script).
fn erp_python() -> String {
    let root = repository();
    let output = Command::new("bash")
        .arg(root.join("tests/python/setup-venv.sh"))
        .arg(root.join("examples/erp-python/requirements.txt"))
        .env("BRANCHSCORE_PY_VENV", "/var/tmp/bs-erp-venv")
        .output()
        .expect("run setup-venv.sh");
    assert!(output.status.success(), "setup-venv.sh failed: {}", text(&output.stderr));
    text(&output.stdout).lines().last().expect("python path").trim().to_owned()
}

/// Runs the example and returns the JSON summary it prints last.
fn erp(python: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python)
        .arg(repository().join("examples/erp-python/erp.py"))
        .args(args)
        .output()
        .expect("run erp.py");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "erp.py {args:?} failed: {}\n{stdout}", text(&output.stderr));
    serde_json::from_str(stdout.lines().last().expect("summary line")).expect("JSON summary")
}

#[test]
fn the_example_erp_loads_sales_idempotently_and_pulls_approved_bonuses() {
    let world = World::new();
    let _serving = world.serve();
    let python = erp_python();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // An administrator issues the ERP its key; the secret is shown once.
    let admin = world.gateway.0.token(Role::Admin, &[]);
    let api_key = runtime.block_on(async {
        let mut keys = GatewayServiceClient::new(branchscore_testkit::channel(world.gateway.1).await);
        let asked = gateway::CreateApiKeyRequest {
            request_id: "erp-production".into(),
            display_name: "ERP production".into(),
            subject: "erp-main".into(),
            role: gateway::Role::ErpIntegration as i32,
            branch_ids: vec!["*".into()],
        };
        keys.create_api_key(authorized(&admin, asked)).await.expect("api key").into_inner().secret
    });
    let gateway = world.gateway.1.to_string();

    let loaded = erp(&python, &["--target", &gateway, "--api-key", &api_key, "load", "--until", "2026-09-30"]);
    let lines = loaded["lines"].as_i64().expect("lines");
    assert!(lines > 100, "{loaded}");
    assert_eq!((loaded["accepted"].as_i64(), loaded["rejected"].as_i64()), (Some(lines), Some(0)), "{loaded}");
    // The re-sent batch: every line a duplicate, nothing stored twice.
    assert_eq!(loaded["resent_accepted"].as_i64(), Some(0), "{loaded}");
    assert_eq!(loaded["resent_duplicates"], loaded["resent"], "{loaded}");

    // Head office sets a scorecard and approves the third quarter.
    let (from, to) = (Some(Date { year: 2026, month: 7, day: 1 }), Some(Date { year: 2026, month: 9, day: 30 }));
    let hq = world.kpi.0.token(Role::HqAnalyst, &[]);
    let approved = runtime.block_on(async {
        let mut kpi = KpiServiceClient::new(branchscore_testkit::channel(world.kpi.1).await);
        let scorecard = Scorecard {
            role: EmployeeRole::Sales as i32,
            effective_from: Some(Date { year: 2026, month: 1, day: 1 }),
            lines: vec![ScorecardLine { kpi_code: "sales_amount".into(), weight_bp: 10_000, plan: 500_000.0 }],
            monthly_base_bonus: Some(Money { minor_units: 200_000, currency: "PLN".into() }),
            ..Scorecard::default()
        };
        let card = CreateScorecardVersionRequest { scorecard: Some(scorecard) };
        kpi.create_scorecard_version(authorized(&hq, card)).await.expect("scorecard");
        let computed = kpi.compute_period(authorized(&hq, ComputePeriodRequest { from, to })).await.expect("compute");
        let version = computed.into_inner().period.expect("period").version;
        let approve = ApprovePeriodRequest { from, to, version };
        kpi.approve_period(authorized(&hq, approve)).await.expect("approve").into_inner().period.expect("period")
    });
    assert_eq!(approved.lines.len(), 4, "the example's four sellers");

    let csv = std::env::temp_dir().join(format!("bs-erp-payroll-{}.csv", std::process::id()));
    let pulled = erp(
        &python,
        &[
            "--target",
            &gateway,
            "--api-key",
            &api_key,
            "bonuses",
            "--from",
            "2026-07-01",
            "--to",
            "2026-09-30",
            "--csv",
            csv.to_str().expect("utf-8 path"),
        ],
    );
    let total: i64 = approved.lines.iter().filter_map(|l| l.bonus.as_ref()).map(|m| m.minor_units).sum();
    assert_eq!(pulled["lines"].as_i64(), Some(4), "{pulled}");
    assert_eq!(pulled["total_minor_units"].as_i64(), Some(total), "{pulled}");
    assert_eq!(pulled["csv_rows"].as_i64(), Some(4), "{pulled}");
    let written = std::fs::read_to_string(&csv).expect("csv written");
    assert!(written.starts_with("employee_id,full_name,branch_id"), "{written}");
    let _ = std::fs::remove_file(csv);
}
