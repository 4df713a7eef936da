//! The Rust scoring and the independent Python reference (pandas and
//! scikit-learn, `tests/python/reference_scoring.py`) must agree on a demo
//! network: every class of every client, and the clusters as partitions.
use branchscore::demo::load;
use branchscore::demo::network::{self, NetworkSpec};
use branchscore_platform::Role;
use branchscore_platform::client::{CallCredentials, ClientConfig, RetryPolicy};
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::*;
use branchscore_proto::common::v1::{AbcClass, Date, LifecycleStatus, XyzClass};
use branchscore_testkit::TestEnv;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// The reference's virtualenv, created on first use (`tests/python/setup-venv.sh`).
fn reference_python() -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/setup-venv.sh");
    let output = Command::new("bash").arg(&script).output().expect("run setup-venv.sh");
    assert!(output.status.success(), "setup-venv.sh failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().last().expect("python path").trim().to_owned()
}

/// One row of the reference's CSV.
#[derive(Debug)]
struct Reference {
    window_revenue: i64,
    abc: String,
    xyz: String,
    rfm_code: String,
    lifecycle: String,
    recency_days: String,
    frequency: String,
    cluster: Option<usize>,
}

fn read_reference(path: &PathBuf) -> HashMap<String, Reference> {
    let text = std::fs::read_to_string(path).expect("reference csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(
        header,
        [
            "client_id",
            "window_revenue",
            "abc",
            "xyz",
            "cv",
            "recency_days",
            "frequency",
            "monetary",
            "rfm_code",
            "lifecycle",
            "cluster"
        ]
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let row = Reference {
                window_revenue: f[1].parse().expect("revenue"),
                abc: f[2].into(),
                xyz: f[3].into(),
                recency_days: f[5].into(),
                frequency: f[6].into(),
                rfm_code: f[8].into(),
                lifecycle: f[9].into(),
                cluster: f[10].parse().ok(),
            };
            (f[0].to_owned(), row)
        })
        .collect()
}

fn letter(abc: AbcClass, xyz: XyzClass) -> (&'static str, &'static str) {
    let abc = match abc {
        AbcClass::A => "A",
        AbcClass::B => "B",
        AbcClass::C => "C",
        AbcClass::Unspecified => "",
    };
    let xyz = match xyz {
        XyzClass::X => "X",
        XyzClass::Y => "Y",
        XyzClass::Z => "Z",
        XyzClass::Unspecified => "",
    };
    (abc, xyz)
}

fn lifecycle(status: LifecycleStatus) -> &'static str {
    match status {
        LifecycleStatus::Potential => "potential",
        LifecycleStatus::New => "new",
        LifecycleStatus::Regular => "regular",
        LifecycleStatus::Restored => "restored",
        LifecycleStatus::Lost => "lost",
        LifecycleStatus::Unspecified => "",
    }
}

/// Adjusted Rand index of two labelings of the same items (1 = same partition).
fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<usize, f64>, HashMap<usize, f64>) = Default::default();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| pairs(n)).sum();
    let (row_sum, col_sum): (f64, f64) =
        (rows.values().map(|&n| pairs(n)).sum(), cols.values().map(|&n| pairs(n)).sum());
    let expected = row_sum * col_sum / pairs(a.len() as f64);
    let max = (row_sum + col_sum) / 2.0;
    if (max - expected).abs() < f64::EPSILON { 1.0 } else { (index - expected) / (max - expected) }
}

#[test]
fn adjusted_rand_index_ignores_label_names() {
    assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
    assert!(adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]) < 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_and_the_python_reference_agree_on_every_client() {
    let python = tokio::task::spawn_blocking(reference_python).await.expect("venv");
    let env = TestEnv::new();
    let config =
        branchscore_clients::Config { server: env.server(), database: env.database.clone(), ..Default::default() };
    let running = branchscore_clients::run(&config, &env.platform, env.shutdown.clone()).await.expect("starts");
    branchscore_testkit::wait_serving(running.addr).await;
    let channel = branchscore_testkit::channel(running.addr).await;
    let credentials = CallCredentials::bearer(&env.token(Role::ErpIntegration, &["*"])).expect("token");
    let clients = ClientsServiceClient::with_interceptor(channel.clone(), credentials.clone());
    let as_of = NaiveDate::from_ymd_opt(2026, 10, 31).expect("date");
    let network = network::generate(&NetworkSpec {
        seed: 11,
        branches: 4,
        clients: 1500,
        months: 20,
        as_of,
        currency: "PLN".into(),
    });
    load::load(&clients, &RetryPolicy::new(&ClientConfig::default()), &network).await.expect("load");

    let mut scoring = ScoringServiceClient::with_interceptor(channel, credentials);
    let mut stream = scoring
        .recompute_scores(RecomputeScoresRequest { as_of: Some(Date::from(as_of)) })
        .await
        .expect("recompute")
        .into_inner();
    let mut summary = None;
    while let Some(message) = stream.message().await.expect("progress") {
        summary = message.summary.or(summary);
    }
    let summary = summary.expect("summary");
    assert!(summary.clusters >= 2, "{summary:?}");

    let ids: Vec<String> = network.clients.iter().map(|c| c.id.clone()).collect();
    let mut scores = Vec::new();
    for chunk in ids.chunks(1000) {
        let request = BatchGetClientScoresRequest { client_ids: chunk.to_vec() };
        scores.extend(clients.clone().batch_get_client_scores(request).await.expect("scores").into_inner().scores);
    }
    let out = std::env::temp_dir().join(format!("bs-reference-{}.csv", env.database_name()));
    let given = std::env::temp_dir().join(format!("bs-rust-clusters-{}.csv", env.database_name()));
    let rust_labels: String =
        scores.iter().filter(|s| s.cluster >= 0).map(|s| format!("{},{}\n", s.client_id, s.cluster)).collect();
    std::fs::write(&given, format!("client_id,cluster\n{rust_labels}")).expect("write labels");
    let run = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/reference_scoring.py"))
        .args(["--database-url", &env.database.url, "--as-of", &as_of.to_string()])
        .args(["--k", &summary.clusters.to_string(), "--out"])
        .arg(&out)
        .arg("--given-labels")
        .arg(&given)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run the reference");
    assert!(run.status.success(), "reference failed: {}", String::from_utf8_lossy(&run.stderr));
    let reference = read_reference(&out);
    let _ = (std::fs::remove_file(&out), std::fs::remove_file(&given));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("reference json");
    let inertia = |key: &str| report[key].as_f64().unwrap_or_else(|| panic!("{key} in {report}"));

    assert_eq!(scores.len(), reference.len(), "both score the same population");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for s in &scores {
        let r = reference.get(&s.client_id).unwrap_or_else(|| panic!("{} missing from the reference", s.client_id));
        let (abc, xyz) = letter(s.abc_class(), s.xyz_class());
        let id = &s.client_id;
        assert_eq!(s.window_revenue.as_ref().map(|m| m.minor_units), Some(r.window_revenue), "{id} revenue");
        assert_eq!((abc, xyz), (r.abc.as_str(), r.xyz.as_str()), "{id} ABC/XYZ");
        assert_eq!(s.rfm_code, r.rfm_code, "{id} RFM");
        assert_eq!(lifecycle(s.lifecycle_status()), r.lifecycle, "{id} lifecycle");
        if !s.rfm_code.is_empty() {
            assert_eq!(
                (s.recency_days.to_string(), s.frequency.to_string()),
                (r.recency_days.clone(), r.frequency.clone()),
                "{id}"
            );
        }
        match (usize::try_from(s.cluster).ok(), r.cluster) {
            (Some(a), Some(b)) => {
                ours.push(a);
                theirs.push(b);
            }
            (None, None) => {}
            other => panic!("{id}: clustered by one side only: {other:?}"),
        }
    }
    // k-means optima are not unique: the partitions must match, or ours must
    // be at least as tight as scikit-learn's on the same standardised features.
    let ari = adjusted_rand_index(&ours, &theirs);
    let (ours_inertia, theirs_inertia) = (inertia("given_inertia"), inertia("inertia"));
    eprintln!(
        "clusters: adjusted Rand index {ari:.3}, inertia linfa {ours_inertia:.1} vs scikit-learn {theirs_inertia:.1}"
    );
    assert!(
        ari > 0.9 || ours_inertia <= theirs_inertia * 1.001,
        "linfa's clusters differ from scikit-learn's (adjusted Rand index {ari:.3}) and are looser \
         (inertia {ours_inertia:.1} vs {theirs_inertia:.1})"
    );
    env.shutdown.cancel();
    let _ = running.task.await;
}
