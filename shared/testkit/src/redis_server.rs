//! A Redis server of one test's own, for tests that stop or restart Redis
//! without disturbing the other tests, which share the machine's Redis.
use redis::aio::MultiplexedConnection;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `redis-server` on a free port of 127.0.0.1, saving only when told to
/// (into a directory of its own); stopped and removed when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    dir: PathBuf,
    server: Option<Child>,
}

impl PrivateRedis {
    /// Starts it and waits until it answers.
    pub async fn start() -> PrivateRedis {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let dir = std::env::temp_dir().join(format!("bs-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis directory");
        let mut redis = PrivateRedis { url: format!("redis://127.0.0.1:{port}"), port, dir, server: None };
        redis.restart().await;
        redis
    }

    /// A connection of the test's own (not the service's).
    pub async fn connection(&self) -> MultiplexedConnection {
        let client = redis::Client::open(self.url.as_str()).expect("url");
        client.get_multiplexed_async_connection().await.expect("private redis answers")
    }

    /// Writes what it holds to its snapshot (`SAVE`), which `restart` loads.
    pub async fn save(&self) {
        let () = redis::cmd("SAVE").query_async(&mut self.connection().await).await.expect("SAVE");
    }

    /// Stops the server: connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Starts the server again on the same port, with what the last `save`
    /// wrote, and waits (up to 5 s) until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let server = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.server = Some(server);
        let client = redis::Client::open(self.url.as_str()).expect("url");
        for _ in 0..100 {
            if client.get_multiplexed_async_connection().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
