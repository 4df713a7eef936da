//! Per-caller rate limits: a token bucket per caller, refilled at a steady
//! rate up to a burst. The buckets live in Redis so every gateway replica
//! draws from the same one (one Lua script checks and takes atomically, on
//! Redis's clock); while Redis is unavailable each replica keeps buckets in
//! process, so a caller may then get the rate once per replica.
//!
//! A replica takes tokens from Redis a few at a time (a lease of about 50 ms
//! of the caller's rate, at most a tenth of the burst) and spends them on the
//! caller's next calls without asking Redis again. Once half a lease is
//! spent the next one is asked for in the background, so a caller at a
//! steady rate waits for Redis on its first call only, and a busy caller
//! costs one Redis round trip per lease rather than per call. The limit is
//! never exceeded (a token is taken from the shared bucket before it is
//! spent); a replica holds at most one and a half leases per caller, and a
//! lease unused for a second lapses, so a replica that holds one only makes
//! the others a little stricter for that long.
use branchscore_platform::cache::Cache;
use branchscore_platform::{AppError, AppResult};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How fast one caller may call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Calls per second, on average; fractions allowed (0.5 = one call every 2 s).
    pub calls_per_second: f64,
    /// Calls allowed at once after a quiet spell.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { calls_per_second: 100.0, burst: 200 }
    }
}

impl RateLimitConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.calls_per_second.is_finite() && self.calls_per_second > 0.0,
            "gateway.rate_limit.calls_per_second must be a positive number"
        );
        anyhow::ensure!(self.burst >= 1, "gateway.rate_limit.burst must be at least 1");
        Ok(())
    }
}

/// KEYS[1] the caller's bucket; ARGV[1] calls per second, ARGV[2] burst,
/// ARGV[3] tokens wanted. Returns {tokens granted (at least 1, at most the
/// wanted ones), 0}, or {0, milliseconds until one token is there}.
const TAKE_TOKENS: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local granted, wait = math.min(wanted, math.floor(tokens)), 0
if granted >= 1 then
  tokens = tokens - granted
else
  granted = 0
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}
";

/// In-process buckets (or leases) beyond which full (idle) ones are forgotten.
const MAX_LOCAL_BUCKETS: usize = 10_000;
/// A lease is about this much of the caller's rate...
const LEASE_SPAN: Duration = Duration::from_millis(50);
/// ...and at most this many tokens, and at most a tenth of the burst.
const MAX_LEASE: u32 = 100;
/// Leased tokens not spent by then go back to nobody.
const LEASE_TTL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct RateLimiter {
    cache: Cache,
    config: RateLimitConfig,
    /// Tokens asked of Redis at a time.
    lease_size: u32,
    /// Tokens taken from Redis and not spent yet, per caller; shared with the
    /// refills running in the background.
    leases: Arc<Mutex<HashMap<String, Lease>>>,
    /// Buckets while Redis is unavailable.
    local: Mutex<HashMap<String, Bucket>>,
}

/// Tokens taken from a caller's shared bucket for this replica.
#[derive(Debug, Clone, Copy)]
struct Lease {
    tokens: u32,
    until: Instant,
    /// A refill is on its way from Redis.
    refilling: bool,
}

/// Where a call's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This replica's lease: no wait.
    Lease,
    /// The shared bucket in Redis, waited for.
    Redis,
    /// The in-process bucket, Redis being unavailable.
    Local,
}

impl RateLimiter {
    pub fn new(cache: Cache, config: RateLimitConfig) -> Self {
        RateLimiter { cache, config, lease_size: lease_size(&config), leases: Arc::default(), local: Mutex::default() }
    }

    /// Takes one call from `caller`'s bucket; RESOURCE_EXHAUSTED with the
    /// time to wait when it is empty.
    pub async fn take(&self, caller: &str) -> AppResult<()> {
        self.take_from(caller).await.map(|_| ())
    }

    async fn take_from(&self, caller: &str) -> AppResult<Source> {
        if self.spend_leased(caller) {
            return Ok(Source::Lease);
        }
        metrics::counter!("gateway_rate_limit_waits_total").increment(1);
        let wait = match take_tokens(&self.cache, &self.config, caller, self.lease_size).await {
            Some((granted, _)) if granted >= 1 => {
                credit(&self.leases, caller, u32::try_from(granted - 1).unwrap_or(0));
                return Ok(Source::Redis);
            }
            Some((_, wait_ms)) => Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0).max(1)),
            None => match self.take_locally(caller) {
                Ok(()) => return Ok(Source::Local),
                Err(wait) => wait,
            },
        };
        Err(AppError::resource_exhausted(
            format!(
                "rate limit of {} calls per second (burst {}) reached; retry in {} ms",
                self.config.calls_per_second,
                self.config.burst,
                wait.as_millis()
            ),
            wait,
        ))
    }

    /// Spends a token of `caller`'s lease, if it holds one. Once half of a
    /// lease is spent the next one is asked for in the background, so a
    /// caller at a steady rate never waits for Redis.
    fn spend_leased(&self, caller: &str) -> bool {
        let mut leases = lock(&self.leases);
        let Some(lease) = leases.get_mut(caller) else { return false };
        if lease.tokens == 0 || Instant::now() >= lease.until {
            return false;
        }
        lease.tokens -= 1;
        if lease.refilling || lease.tokens > self.lease_size / 2 {
            return true;
        }
        lease.refilling = true;
        drop(leases);
        let (cache, config, wanted, leases) = (self.cache.clone(), self.config, self.lease_size, self.leases.clone());
        let caller = caller.to_owned();
        tokio::spawn(async move {
            let granted = match take_tokens(&cache, &config, &caller, wanted).await {
                Some((granted, _)) => u32::try_from(granted).unwrap_or(0),
                None => 0,
            };
            credit(&leases, &caller, granted);
        });
        true
    }

    fn take_locally(&self, caller: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = lock(&self.local);
        if buckets.len() >= MAX_LOCAL_BUCKETS {
            buckets.retain(|_, bucket| !bucket.is_full(now, &self.config));
        }
        buckets.entry(caller.to_owned()).or_insert_with(|| Bucket::full(now, &self.config)).take(now, &self.config)
    }
}

/// Tokens asked of Redis at a time: 50 ms of the rate, at most a tenth of
/// the burst and 100, at least 1.
fn lease_size(config: &RateLimitConfig) -> u32 {
    let span = (config.calls_per_second * LEASE_SPAN.as_secs_f64()).floor();
    let size = if span >= f64::from(MAX_LEASE) { MAX_LEASE } else { span as u32 };
    size.min(config.burst / 10).max(1)
}

/// Takes up to `wanted` tokens from `caller`'s shared bucket: `(granted, 0)`
/// or `(0, milliseconds to wait)`; `None` while Redis is unavailable.
async fn take_tokens(cache: &Cache, config: &RateLimitConfig, caller: &str, wanted: u32) -> Option<(i64, i64)> {
    let args = [config.calls_per_second.to_string(), config.burst.to_string(), wanted.to_string()];
    cache.eval::<(i64, i64)>(TAKE_TOKENS, &[format!("rate:{caller}")], &args).await
}

/// Adds `tokens` taken from Redis to `caller`'s lease (a lapsed lease's own
/// are gone) and ends its refill.
fn credit(leases: &Mutex<HashMap<String, Lease>>, caller: &str, tokens: u32) {
    let now = Instant::now();
    let mut leases = lock(leases);
    if tokens > 0 && leases.len() >= MAX_LOCAL_BUCKETS {
        leases.retain(|_, lease| lease.refilling || (lease.tokens > 0 && now < lease.until));
    }
    match leases.get_mut(caller) {
        Some(lease) => {
            lease.refilling = false;
            if tokens > 0 {
                let kept = if now < lease.until { lease.tokens } else { 0 };
                *lease = Lease { tokens: kept.saturating_add(tokens), until: now + LEASE_TTL, refilling: false };
            }
        }
        None if tokens > 0 => {
            leases.insert(caller.to_owned(), Lease { tokens, until: now + LEASE_TTL, refilling: false });
        }
        None => {}
    }
}

/// A poisoned map only means a panic elsewhere mid-update; its entries are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The in-process twin of the Lua script's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(now: Instant, config: &RateLimitConfig) -> Self {
        Bucket { tokens: f64::from(config.burst), at: now }
    }

    fn refilled(&self, now: Instant, config: &RateLimitConfig) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * config.calls_per_second).min(f64::from(config.burst))
    }

    fn is_full(&self, now: Instant, config: &RateLimitConfig) -> bool {
        self.refilled(now, config) >= f64::from(config.burst)
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant, config: &RateLimitConfig) -> Result<(), Duration> {
        self.tokens = self.refilled(now, config);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / config.calls_per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_PER_SECOND: RateLimitConfig = RateLimitConfig { calls_per_second: 2.0, burst: 3 };

    #[test]
    fn a_bucket_allows_the_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(start, &TWO_PER_SECOND);
        for _ in 0..3 {
            bucket.take(start, &TWO_PER_SECOND).expect("within the burst");
        }
        let wait = bucket.take(start, &TWO_PER_SECOND).expect_err("burst spent");
        assert_eq!(wait, Duration::from_millis(500));
        let later = start + Duration::from_millis(500);
        bucket.take(later, &TWO_PER_SECOND).expect("refilled one");
        assert!(bucket.take(later, &TWO_PER_SECOND).is_err());
        assert!(bucket.is_full(later + Duration::from_secs(2), &TWO_PER_SECOND));
    }

    #[test]
    fn a_lease_is_50_ms_of_the_rate_within_a_tenth_of_the_burst() {
        let size = |calls_per_second, burst| lease_size(&RateLimitConfig { calls_per_second, burst });
        assert_eq!(size(100.0, 200), 5); // the default: 100/s x 0.05 s
        assert_eq!(size(400.0, 100), 10); // 20, capped at a tenth of the burst
        assert_eq!(size(1e9, u32::MAX), 100); // capped at MAX_LEASE
        assert_eq!(size(2.0, 3), 1); // slow callers ask for one at a time
    }

    /// The local Redis under a prefix of the test's own.
    fn test_redis() -> branchscore_platform::config::RedisConfig {
        branchscore_platform::config::RedisConfig {
            url: branchscore_testkit::redis_url(),
            key_prefix: format!("rate-test-{}:", uuid::Uuid::now_v7()),
            ..branchscore_platform::config::RedisConfig::default()
        }
    }

    #[tokio::test]
    async fn replicas_sharing_redis_never_pass_more_than_the_bucket_holds() {
        // Two gateway replicas on one Redis bucket: 400/s, burst 100, leases of 10.
        let config = RateLimitConfig { calls_per_second: 400.0, burst: 100 };
        let redis = test_redis();
        let replicas = [
            RateLimiter::new(Cache::from_config(&redis).expect("redis"), config),
            RateLimiter::new(Cache::from_config(&redis).expect("redis"), config),
        ];
        let started = Instant::now();
        let (mut passed, mut refusal) = (0u32, None);
        for call in 0..400 {
            match replicas[call % 2].take("erp").await {
                Ok(()) => passed += 1,
                Err(refused) => refusal = refusal.or(Some(refused)),
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        // What the bucket held, plus what refilled meanwhile: leases never add tokens.
        let most = 100.0 + 400.0 * elapsed;
        assert!(f64::from(passed) <= most.floor(), "{passed} passed in {elapsed:.3} s, at most {most:.1}");
        // And they lose little: at most one and a half leases of 10 per replica are held back.
        assert!(f64::from(passed) >= 100.0 - 2.0 * 15.0, "{passed} passed");
        let refused = refusal.expect("the bucket ran dry");
        assert!(refused.retry_after.is_some_and(|wait| wait > Duration::ZERO));
        let cache = Cache::from_config(&redis).expect("redis");
        cache.delete(&["rate:erp".to_owned()]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_at_a_steady_rate_waits_for_redis_only_on_its_first_call() {
        // 2 000/s, burst 2 000: leases of 100, the next one asked for with 50 left.
        let redis = test_redis();
        let limiter = RateLimiter::new(
            Cache::from_config(&redis).expect("redis"),
            RateLimitConfig { calls_per_second: 2000.0, burst: 2000 },
        );
        // 500 calls a second: half a lease lasts 100 ms, ample for a refill.
        // A late tick delays the calls after it rather than bunching them up.
        let mut pace = tokio::time::interval(Duration::from_millis(2));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sources = Vec::new();
        for _ in 0..250 {
            pace.tick().await;
            sources.push(limiter.take_from("erp").await.expect("under the rate"));
        }
        let waited: Vec<usize> = (0..sources.len()).filter(|&call| sources[call] != Source::Lease).collect();
        assert_eq!(waited, [0], "calls that waited: {waited:?}");
        assert_eq!(sources[0], Source::Redis);
        Cache::from_config(&redis).expect("redis").delete(&["rate:erp".to_owned()]).await;
    }

    #[tokio::test]
    async fn without_redis_callers_are_limited_in_process_and_apart() {
        let limiter =
            RateLimiter::new(Cache::InProcess(branchscore_platform::cache::InProcessCache::new("t:")), TWO_PER_SECOND);
        for _ in 0..3 {
            limiter.take("erp").await.expect("within the burst");
        }
        let refused = limiter.take("erp").await.expect_err("burst spent");
        assert_eq!(refused.code, branchscore_platform::error::ErrorCode::ResourceExhausted);
        assert!(refused.retry_after.is_some_and(|wait| wait > Duration::ZERO));
        limiter.take("someone-else").await.expect("a bucket per caller");
    }
}
