//! Per-caller rate limits: a token bucket per caller, refilled at a steady
//! rate up to a burst. The buckets live in Redis so every gateway replica
//! draws from the same one (one Lua script checks and takes atomically, on
//! Redis's clock); while Redis is unavailable each replica keeps buckets in
//! process, so a caller may then get the rate once per replica.
use branchscore_platform::cache::Cache;
use branchscore_platform::{AppError, AppResult};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
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

/// KEYS[1] the caller's bucket; ARGV[1] calls per second, ARGV[2] burst.
/// Returns {1, 0} when the call may pass, else {0, milliseconds to wait}.
const TAKE_TOKEN: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local passed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  passed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {passed, wait}
";

/// In-process buckets beyond which full (idle) ones are forgotten.
const MAX_LOCAL_BUCKETS: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    cache: Cache,
    config: RateLimitConfig,
    local: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(cache: Cache, config: RateLimitConfig) -> Self {
        RateLimiter { cache, config, local: Mutex::default() }
    }

    /// Takes one call from `caller`'s bucket; RESOURCE_EXHAUSTED with the
    /// time to wait when it is empty.
    pub async fn take(&self, caller: &str) -> AppResult<()> {
        let args = [self.config.calls_per_second.to_string(), self.config.burst.to_string()];
        let wait = match self.cache.eval::<(i64, i64)>(TAKE_TOKEN, &[format!("rate:{caller}")], &args).await {
            Some((1, _)) => return Ok(()),
            Some((_, wait_ms)) => Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0).max(1)),
            None => match self.take_locally(caller) {
                Ok(()) => return Ok(()),
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

    fn take_locally(&self, caller: &str) -> Result<(), Duration> {
        let now = Instant::now();
        // A poisoned map only means a panic elsewhere mid-update; the buckets are still usable.
        let mut buckets = self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_LOCAL_BUCKETS {
            buckets.retain(|_, bucket| !bucket.is_full(now, &self.config));
        }
        buckets.entry(caller.to_owned()).or_insert_with(|| Bucket::full(now, &self.config)).take(now, &self.config)
    }
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
