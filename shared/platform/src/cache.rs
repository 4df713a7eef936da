//! The hot-score cache: Redis when configured, an in-process map otherwise.
//!
//! The cache is never the truth. Every failure (Redis down, slow, evicted)
//! is a miss: callers fall back to Postgres and a read never fails because
//! of the cache. Failures are logged and counted, and after one the Redis
//! connection is retried only after a back-off so a dead Redis costs requests
//! nothing.
use crate::config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// A byte cache keyed by string; cheap to clone.
#[derive(Clone, Debug)]
pub enum Cache {
    Redis(RedisCache),
    InProcess(InProcessCache),
}

impl Cache {
    /// Redis when `config.url` is set, else an in-process cache.
    pub fn from_config(config: &RedisConfig) -> anyhow::Result<Cache> {
        if config.url.trim().is_empty() {
            return Ok(Cache::InProcess(InProcessCache::new(&config.key_prefix)));
        }
        Ok(Cache::Redis(RedisCache::new(config)?))
    }

    /// The same cache on a Redis connection of its own, with a longer
    /// command timeout: for bulk writes nobody waits on, which then neither
    /// queue interactive reads behind their pipelines nor fail for taking
    /// longer than a read may.
    pub fn bulk(&self, command_timeout: Duration) -> Cache {
        match self {
            Cache::Redis(redis) => Cache::Redis(redis.with_command_timeout(command_timeout)),
            Cache::InProcess(local) => Cache::InProcess(local.clone()),
        }
    }

    /// Values for `keys` in order; `None` for misses and for any failure.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let values = match self {
            Cache::Redis(redis) => redis.get_many(keys).await,
            Cache::InProcess(local) => local.get_many(keys),
        };
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        metrics::counter!("cache_hits_total").increment(hits);
        metrics::counter!("cache_misses_total").increment(keys.len() as u64 - hits);
        values
    }

    /// Stores entries with a time to live; failures are logged. `false` when
    /// some may not be stored (Redis down, or slower than the command
    /// timeout): a caller replacing values it knows are out of date then
    /// deletes them.
    pub async fn set_many(&self, entries: &[(String, impl AsRef<[u8]>)], ttl: Duration) -> bool {
        self.store(entries, ttl, false).await
    }

    /// Stores entries only where a key holds nothing: for values read from
    /// the truth on a miss, which must not overwrite a newer value stored
    /// with `set_many` while they were being read. Failures are logged.
    pub async fn fill_many(&self, entries: &[(String, impl AsRef<[u8]>)], ttl: Duration) {
        self.store(entries, ttl, true).await;
    }

    /// Stores each `(key, seen, value)`'s value only where the key still
    /// holds exactly `seen`: for replacing a value the caller read and knows
    /// will never be served (so a fill would never replace it), without
    /// overwriting a value stored since. Failures are logged.
    pub async fn replace_seen(&self, entries: &[(String, Vec<u8>, Vec<u8>)], ttl: Duration) {
        match self {
            Cache::Redis(redis) => redis.replace_seen(entries, ttl).await,
            Cache::InProcess(local) => local.replace_seen(entries, ttl),
        }
    }

    async fn store(&self, entries: &[(String, impl AsRef<[u8]>)], ttl: Duration, only_absent: bool) -> bool {
        match self {
            Cache::Redis(redis) => redis.set_many(entries, ttl, only_absent).await,
            Cache::InProcess(local) => {
                local.set_many(entries, ttl, only_absent);
                true
            }
        }
    }

    /// Removes keys; failures are logged. `false` when some may still be
    /// there (Redis down, or slower than the command timeout): a caller
    /// whose entries went out of date then has to try again later.
    pub async fn delete(&self, keys: &[String]) -> bool {
        match self {
            Cache::Redis(redis) => redis.delete(keys).await,
            Cache::InProcess(local) => {
                local.delete(keys);
                true
            }
        }
    }

    /// Runs a Lua script atomically in Redis on `keys` (prefixed) with `args`.
    /// `None` without Redis and on any failure: the caller falls back to
    /// state of its own (e.g. a rate limit counted in-process).
    pub async fn eval<T: redis::FromRedisValue>(&self, script: &str, keys: &[String], args: &[String]) -> Option<T> {
        match self {
            Cache::Redis(redis) => redis.eval(script, keys, args).await,
            Cache::InProcess(_) => None,
        }
    }

    /// Appends entries (field/value pairs) to a Redis Stream, for consumers
    /// outside this process. `false` when they were not all appended (Redis
    /// down, or no Redis configured): the caller keeps them and tries again.
    pub async fn append_to_stream(&self, stream: &str, entries: &[Vec<(&str, String)>]) -> bool {
        match self {
            Cache::Redis(redis) => redis.append_to_stream(stream, entries).await,
            Cache::InProcess(_) => false,
        }
    }
}

/// Redis behind a [`ConnectionManager`] with short timeouts.
#[derive(Clone)]
pub struct RedisCache {
    client: redis::Client,
    prefix: Arc<str>,
    command_timeout: Duration,
    reconnect_backoff: Duration,
    state: Arc<RwLock<Connection>>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish()
    }
}

enum Connection {
    Disconnected { retry_after: Instant },
    Connected(ConnectionManager),
}

impl RedisCache {
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        Ok(RedisCache {
            client: redis::Client::open(config.url.as_str())?,
            prefix: config.key_prefix.as_str().into(),
            command_timeout: config.command_timeout_ms,
            reconnect_backoff: config.reconnect_backoff_ms,
            state: Arc::new(RwLock::new(Connection::Disconnected { retry_after: Instant::now() })),
        })
    }

    fn with_command_timeout(&self, command_timeout: Duration) -> RedisCache {
        RedisCache {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            command_timeout,
            reconnect_backoff: self.reconnect_backoff,
            state: Arc::new(RwLock::new(Connection::Disconnected { retry_after: Instant::now() })),
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Connection::Connected(manager) = &*self.state.read().await {
            return Some(manager.clone());
        }
        let mut state = self.state.write().await;
        match &*state {
            Connection::Connected(manager) => Some(manager.clone()),
            Connection::Disconnected { retry_after } if Instant::now() < *retry_after => None,
            Connection::Disconnected { .. } => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.command_timeout.max(Duration::from_millis(200))))
                    .set_response_timeout(Some(self.command_timeout))
                    .set_number_of_retries(1);
                match tokio::time::timeout(
                    self.command_timeout.max(Duration::from_millis(500)),
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                {
                    Ok(Ok(manager)) => {
                        *state = Connection::Connected(manager.clone());
                        Some(manager)
                    }
                    outcome => {
                        let reason = match outcome {
                            Ok(Err(err)) => err.to_string(),
                            _ => "connect timed out".to_owned(),
                        };
                        tracing::warn!(%reason, "redis unavailable; serving from Postgres");
                        *state = Connection::Disconnected { retry_after: Instant::now() + self.reconnect_backoff };
                        None
                    }
                }
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, command: &str, pipeline: redis::Pipeline) -> Option<T> {
        let mut connection = self.connection().await?;
        match tokio::time::timeout(self.command_timeout, pipeline.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => Some(value),
            outcome => {
                let (reason, broken) = match outcome {
                    Ok(Err(err)) => (
                        err.to_string(),
                        err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal(),
                    ),
                    _ => ("timed out".to_owned(), false),
                };
                metrics::counter!("cache_errors_total", "command" => command.to_owned()).increment(1);
                tracing::warn!(command, %reason, "redis command failed; treated as a miss");
                if broken {
                    *self.state.write().await =
                        Connection::Disconnected { retry_after: Instant::now() + self.reconnect_backoff };
                }
                None
            }
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let mut pipeline = redis::pipe();
        let command = pipeline.cmd("MGET");
        for key in keys {
            command.arg(self.key(key));
        }
        self.run::<(Vec<Option<Vec<u8>>>,)>("MGET", pipeline)
            .await
            .map(|(values,)| values)
            .filter(|values| values.len() == keys.len())
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    async fn set_many(&self, entries: &[(String, impl AsRef<[u8]>)], ttl: Duration, only_absent: bool) -> bool {
        if entries.is_empty() {
            return true;
        }
        let mut pipeline = redis::pipe();
        let millis = px(ttl);
        for (key, value) in entries {
            let command = pipeline.cmd("SET").arg(self.key(key)).arg(value.as_ref()).arg("PX").arg(millis);
            if only_absent {
                command.arg("NX");
            }
            command.ignore();
        }
        self.run::<()>("SET", pipeline).await.is_some()
    }

    /// EVAL rather than EVALSHA: Redis caches the compiled script either way,
    /// and EVAL needs no reload after a Redis restart.
    async fn eval<T: redis::FromRedisValue, A: redis::ToRedisArgs>(
        &self,
        script: &str,
        keys: &[String],
        args: &[A],
    ) -> Option<T> {
        let mut pipeline = redis::pipe();
        let command = pipeline.cmd("EVAL").arg(script).arg(keys.len());
        for key in keys {
            command.arg(self.key(key));
        }
        for arg in args {
            command.arg(arg);
        }
        self.run::<(T,)>("EVAL", pipeline).await.map(|(value,)| value)
    }

    async fn replace_seen(&self, entries: &[(String, Vec<u8>, Vec<u8>)], ttl: Duration) {
        if entries.is_empty() {
            return;
        }
        let keys: Vec<String> = entries.iter().map(|(key, _, _)| key.clone()).collect();
        let mut args: Vec<&[u8]> = Vec::with_capacity(1 + 2 * entries.len());
        let millis = px(ttl).to_string();
        args.push(millis.as_bytes());
        for (_, seen, value) in entries {
            args.push(seen);
            args.push(value);
        }
        self.eval::<i64, _>(REPLACE_SEEN, &keys, &args).await;
    }

    async fn append_to_stream(&self, stream: &str, entries: &[Vec<(&str, String)>]) -> bool {
        if entries.is_empty() {
            return true;
        }
        let mut pipeline = redis::pipe();
        for fields in entries {
            let command = pipeline.cmd("XADD").arg(self.key(stream)).arg("*");
            for (field, value) in fields {
                command.arg(*field).arg(value);
            }
            command.ignore();
        }
        self.run::<()>("XADD", pipeline).await.is_some()
    }

    async fn delete(&self, keys: &[String]) -> bool {
        if keys.is_empty() {
            return true;
        }
        let mut pipeline = redis::pipe();
        let command = pipeline.cmd("DEL");
        for key in keys {
            command.arg(self.key(key));
        }
        command.ignore();
        self.run::<()>("DEL", pipeline).await.is_some()
    }
}

/// A TTL as Redis's PX argument: whole milliseconds, at least 1 (PX 0 is refused).
fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `replace_seen` in one step: KEYS are the keys, ARGV the expiry in
/// milliseconds and then each key's seen value and new value.
const REPLACE_SEEN: &str = r"
local replaced = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2 * i] then
    redis.call('SET', key, ARGV[2 * i + 1], 'PX', ARGV[1])
    replaced = replaced + 1
  end
end
return replaced
";

/// Prefixed key -> (value, expiry).
type Entries = HashMap<String, (Vec<u8>, Instant)>;

/// A process-local cache for development and single-node use.
#[derive(Clone, Debug)]
pub struct InProcessCache {
    prefix: Arc<str>,
    entries: Arc<Mutex<Entries>>,
}

impl InProcessCache {
    pub fn new(prefix: &str) -> Self {
        InProcessCache { prefix: prefix.into(), entries: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A poisoned map only means a panic elsewhere mid-insert; the data is still a cache.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let now = Instant::now();
        let entries = self.lock();
        keys.iter()
            .map(|key| {
                entries
                    .get(&format!("{}{key}", self.prefix))
                    .filter(|(_, expires)| *expires > now)
                    .map(|(value, _)| value.clone())
            })
            .collect()
    }

    fn set_many(&self, new_entries: &[(String, impl AsRef<[u8]>)], ttl: Duration, only_absent: bool) {
        let expires = Instant::now() + ttl;
        let mut entries = self.lock();
        let now = Instant::now();
        entries.retain(|_, (_, at)| *at > now);
        for (key, value) in new_entries {
            let key = format!("{}{key}", self.prefix);
            if !(only_absent && entries.contains_key(&key)) {
                entries.insert(key, (value.as_ref().to_vec(), expires));
            }
        }
    }

    fn replace_seen(&self, new_entries: &[(String, Vec<u8>, Vec<u8>)], ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.lock();
        for (key, seen, value) in new_entries {
            if let Some(entry) = entries.get_mut(&format!("{}{key}", self.prefix))
                && entry.1 > now
                && entry.0 == *seen
            {
                *entry = (value.clone(), now + ttl);
            }
        }
    }

    fn delete(&self, keys: &[String]) {
        let mut entries = self.lock();
        for key in keys {
            entries.remove(&format!("{}{key}", self.prefix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_cache_expires_and_deletes() {
        let cache = Cache::InProcess(InProcessCache::new("t:"));
        cache.set_many(&[("a".into(), b"1".to_vec())], Duration::from_secs(60)).await;
        cache.set_many(&[("b".into(), b"2".to_vec())], Duration::ZERO).await;
        let values = cache.get_many(&["a".into(), "b".into(), "c".into()]).await;
        assert_eq!(values, vec![Some(b"1".to_vec()), None, None]);
        assert!(cache.delete(&["a".into()]).await);
        assert_eq!(cache.get_many(&["a".into()]).await, vec![None]);
    }

    #[tokio::test]
    async fn a_fill_never_overwrites_a_stored_value() {
        let cache = Cache::InProcess(InProcessCache::new("t:"));
        let ttl = Duration::from_secs(60);
        assert!(cache.set_many(&[("new".into(), b"2".to_vec())], ttl).await);
        cache.fill_many(&[("new".into(), b"1".to_vec()), ("absent".into(), b"1".to_vec())], ttl).await;
        let values = cache.get_many(&["new".into(), "absent".into()]).await;
        assert_eq!(values, vec![Some(b"2".to_vec()), Some(b"1".to_vec())]);
    }

    #[tokio::test]
    async fn a_value_is_replaced_only_where_its_key_still_holds_what_was_seen() {
        let cache = Cache::InProcess(InProcessCache::new("t:"));
        let ttl = Duration::from_secs(60);
        let stored = [("seen".into(), b"old".to_vec()), ("changed".into(), b"newer".to_vec())];
        assert!(cache.set_many(&stored, ttl).await);
        let replacing = |key: &str| (key.to_owned(), b"old".to_vec(), b"truth".to_vec());
        cache.replace_seen(&[replacing("seen"), replacing("changed"), replacing("absent")], ttl).await;
        let values = cache.get_many(&["seen".into(), "changed".into(), "absent".into()]).await;
        assert_eq!(values, vec![Some(b"truth".to_vec()), Some(b"newer".to_vec()), None]);
    }

    #[tokio::test]
    async fn scripts_run_only_in_redis() {
        let local = Cache::InProcess(InProcessCache::new("t:"));
        assert_eq!(local.eval::<i64>("return 1", &[], &[]).await, None);
        let config = RedisConfig {
            url: "redis://127.0.0.1:1".into(),
            command_timeout_ms: Duration::from_millis(50),
            ..RedisConfig::default()
        };
        let unreachable = Cache::from_config(&config).expect("valid url");
        assert_eq!(unreachable.eval::<i64>("return 1", &["k".into()], &[]).await, None);
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_miss_not_an_error() {
        let config = RedisConfig {
            url: "redis://127.0.0.1:1".into(),
            command_timeout_ms: Duration::from_millis(50),
            ..RedisConfig::default()
        };
        let cache = Cache::from_config(&config).expect("valid url");
        assert!(!cache.set_many(&[("k".into(), b"v".to_vec())], Duration::from_secs(1)).await);
        assert_eq!(cache.get_many(&["k".into()]).await, vec![None]);
        assert!(!cache.delete(&["k".into()]).await);
    }
}
