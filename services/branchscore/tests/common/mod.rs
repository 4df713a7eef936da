//! What the tests of the `branchscore` binary share: the real process, and a
//! world of one database and port per service on 127.0.0.1.
#![allow(dead_code)] // each test file uses a different part of it

use branchscore_testkit::TestEnv;
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn branchscore() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_branchscore"));
    command.env_remove("BRANCHSCORE_CONFIG").env("RUST_LOG", "warn,branchscore=info");
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run branchscore")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nobody listens on right now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr")
}

/// A database and a port per service, and the metrics port.
pub struct World {
    pub clients: (TestEnv, SocketAddr),
    pub pipeline: (TestEnv, SocketAddr),
    pub feedback: (TestEnv, SocketAddr),
    pub kpi: (TestEnv, SocketAddr),
    pub reporting: (TestEnv, SocketAddr),
    pub gateway: (TestEnv, SocketAddr),
    pub metrics: SocketAddr,
}

impl World {
    pub fn new() -> Self {
        World {
            clients: (TestEnv::new(), free_addr()),
            pipeline: (TestEnv::new(), free_addr()),
            feedback: (TestEnv::new(), free_addr()),
            kpi: (TestEnv::new(), free_addr()),
            reporting: (TestEnv::new(), free_addr()),
            gateway: (TestEnv::new(), free_addr()),
            metrics: free_addr(),
        }
    }

    /// The process environment that points every service at this world.
    pub fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        let (clients, pipeline, feedback, kpi) = (&self.clients, &self.pipeline, &self.feedback, &self.kpi);
        command
            .env("BRANCHSCORE_CLIENTS__SERVER__LISTEN", clients.1.to_string())
            .env("BRANCHSCORE_CLIENTS__DATABASE__URL", &clients.0.database.url)
            .env("BRANCHSCORE_CLIENTS__DATABASE__MIGRATE_ON_START", "false")
            .env("BRANCHSCORE_PIPELINE__SERVER__LISTEN", pipeline.1.to_string())
            .env("BRANCHSCORE_PIPELINE__DATABASE__URL", &pipeline.0.database.url)
            .env("BRANCHSCORE_PIPELINE__DATABASE__MIGRATE_ON_START", "false")
            .env("BRANCHSCORE_FEEDBACK__SERVER__LISTEN", feedback.1.to_string())
            .env("BRANCHSCORE_FEEDBACK__DATABASE__URL", &feedback.0.database.url)
            .env("BRANCHSCORE_FEEDBACK__DATABASE__MIGRATE_ON_START", "false")
            .env("BRANCHSCORE_KPI__SERVER__LISTEN", kpi.1.to_string())
            .env("BRANCHSCORE_KPI__DATABASE__URL", &kpi.0.database.url)
            .env("BRANCHSCORE_KPI__DATABASE__MIGRATE_ON_START", "false")
            .env("BRANCHSCORE_PEERS__FEEDBACK", format!("http://{}", feedback.1))
            .env("BRANCHSCORE_PEERS__KPI", format!("http://{}", kpi.1))
            .env("BRANCHSCORE_REPORTING__SERVER__LISTEN", self.reporting.1.to_string())
            .env("BRANCHSCORE_REPORTING__DATABASE__URL", &self.reporting.0.database.url)
            .env("BRANCHSCORE_REPORTING__DATABASE__MIGRATE_ON_START", "false")
            .env("BRANCHSCORE_PEERS__REPORTING", format!("http://{}", self.reporting.1))
            .env("BRANCHSCORE_GATEWAY__SERVER__LISTEN", self.gateway.1.to_string())
            .env("BRANCHSCORE_GATEWAY__DATABASE__URL", &self.gateway.0.database.url)
            .env("BRANCHSCORE_GATEWAY__DATABASE__MIGRATE_ON_START", "false")
            // The demo answers a thousand surveys in seconds from one address.
            .env("BRANCHSCORE_GATEWAY__RATE_LIMIT__CALLS_PER_SECOND", "100000")
            .env("BRANCHSCORE_GATEWAY__RATE_LIMIT__BURST", "100000")
            .env("BRANCHSCORE_PEERS__CLIENTS", format!("http://{}", clients.1))
            .env("BRANCHSCORE_PEERS__PIPELINE", format!("http://{}", pipeline.1))
            .env("BRANCHSCORE_REDIS__URL", &clients.0.platform.redis.url)
            .env("BRANCHSCORE_REDIS__KEY_PREFIX", &clients.0.platform.redis.key_prefix)
            .env("BRANCHSCORE_TELEMETRY__METRICS_LISTEN", self.metrics.to_string())
    }
}

pub struct Serving(pub Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "branchscore did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl World {
    /// Migrates every database, starts `branchscore serve` and waits until
    /// every service reports SERVING.
    pub fn serve(&self) -> Serving {
        let output = run(self.apply(branchscore().arg("migrate")));
        assert!(output.status.success(), "migrate failed: {}", text(&output.stderr));
        let mut serve = branchscore();
        self.apply(serve.arg("serve").stdout(Stdio::null()).stderr(Stdio::null()));
        let serving = Serving(serve.spawn().expect("spawn serve"));
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            for addr in [self.clients.1, self.pipeline.1, self.feedback.1, self.kpi.1, self.reporting.1, self.gateway.1]
            {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("uri").connect_lazy();
                branchscore_platform::client::wait_serving(channel, Duration::from_secs(30)).await.expect("serving");
            }
        });
        serving
    }
}
