//! Client scores in Redis: their keys, the recompute's refresh, the fill
//! after a miss, and the promise behind them: a cached score that went out
//! of date is dropped even when Redis failed at the moment it should have
//! been. A drop Redis could not take is owed in Postgres
//! (`score_cache_purges`), and every replica settles what is owed within
//! about a second of Redis answering again.
use crate::store::{self, OwedPurge};
use branchscore_platform::AppResult;
use branchscore_platform::cache::Cache;
use branchscore_platform::shutdown::{CancellationToken, Ticks};
use branchscore_proto::clients::v1::ClientScore;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use prost::Message;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;

/// Scores per Redis pipeline, and owed purges settled per round.
const CHUNK: usize = 1_000;
/// Pipelines a refresh keeps in flight: Redis works through one while the
/// next is encoded and sent.
const PIPELINES_IN_FLIGHT: usize = 4;
/// How long a refresh's pipeline may take: nobody waits on it, and the
/// pipelines in flight queue behind each other in Redis.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a replica looks for owed purges.
pub const SETTLE_EVERY: Duration = Duration::from_secs(1);

/// A client's cached record as stored, and the score it holds; `None`
/// when it does not decode (written by a newer or broken build).
#[derive(Debug)]
pub struct Cached {
    pub record: Vec<u8>,
    pub score: Option<ClientScore>,
}

/// The score cache of one replica; cheap to clone.
#[derive(Debug, Clone)]
pub struct ScoreCache {
    cache: Cache,
    /// The same Redis on a connection of its own for the recompute's
    /// refresh, so reads at the counter never queue behind its pipelines.
    refresh: Cache,
    pool: PgPool,
    ttl: Duration,
}

impl ScoreCache {
    pub fn new(cache: Cache, pool: PgPool, ttl: Duration) -> Self {
        let refresh = cache.bulk(REFRESH_TIMEOUT);
        ScoreCache { cache, pool, ttl, refresh }
    }

    /// Redis key of a client's score.
    pub fn key(client_id: &str) -> String {
        format!("client_score:{client_id}")
    }

    /// What the cache holds for `ids`, in order; `None` for a miss.
    pub async fn get_many(&self, ids: &[String]) -> Vec<Option<Cached>> {
        let keys: Vec<String> = ids.iter().map(|id| Self::key(id)).collect();
        let cached = self.cache.get_many(&keys).await;
        let read = |record: Vec<u8>| Cached { score: ClientScore::decode(record.as_slice()).ok(), record };
        cached.into_iter().map(|bytes| bytes.map(read)).collect()
    }

    /// Replaces cached records that will never be served (a dead run's
    /// scores, records that do not decode) by the scores just read from
    /// Postgres, where the key still holds the record seen: a fill would
    /// never replace them, and every read of those clients would go to
    /// Postgres until they expire. `seen` is (client id, record).
    pub async fn replace_unservable(&self, seen: Vec<(String, Vec<u8>)>, stored: &[ClientScore]) {
        let by_client: HashMap<&str, &ClientScore> = stored.iter().map(|s| (s.client_id.as_str(), s)).collect();
        let entries: Vec<(String, Vec<u8>, Vec<u8>)> = seen
            .into_iter()
            .filter_map(|(id, record)| Some((Self::key(&id), record, by_client.get(id.as_str())?.encode_to_vec())))
            .collect();
        self.cache.replace_seen(&entries, self.ttl).await;
    }

    /// Caches scores just read from Postgres after a miss. A key already
    /// holding a score keeps it: a recompute may have stored a newer one
    /// while these were being read.
    pub async fn fill(&self, scores: &[ClientScore]) {
        let entries: Vec<(String, Vec<u8>)> =
            scores.iter().map(|s| (Self::key(&s.client_id), s.encode_to_vec())).collect();
        self.cache.fill_many(&entries, self.ttl).await;
    }

    /// Replaces cached scores by the newer `(client id, record)` a recompute
    /// stored, reporting the clients done after each pipeline. A later run
    /// may not rewrite an unchanged score, so scores Redis did not take are
    /// owed a purge: an older cached score must not outlive this run. After
    /// the first pipeline that fails, the rest are not sent but owed at once:
    /// a Redis that stopped answering would otherwise cost a timeout each.
    pub async fn replace(&self, scores: &[(&str, &[u8])], mut done: impl FnMut(u64)) {
        let mut chunks = scores.chunks(CHUNK);
        let mut in_flight = FuturesOrdered::new();
        let (mut replaced, mut not_cached, mut failed) = (0u64, Vec::new(), false);
        loop {
            while !failed && in_flight.len() < PIPELINES_IN_FLIGHT {
                let Some(chunk) = chunks.next() else { break };
                in_flight.push_back(self.refresh_pipeline(chunk));
            }
            let Some((chunk, cached)) = in_flight.next().await else { break };
            if !cached {
                failed = true;
                not_cached.extend(chunk.iter().map(|(id, _)| (*id).to_owned()));
            }
            replaced += chunk.len() as u64;
            done(replaced);
        }
        not_cached.extend(chunks.flatten().map(|(id, _)| (*id).to_owned()));
        if let Err(error) = store::owe_cache_purges(&self.pool, &not_cached).await {
            // Nothing else knows these keys: they are served until they expire.
            tracing::error!(%error, clients = not_cached.len(), "cached scores out of date and their purge not owed");
        }
        if replaced < scores.len() as u64 {
            done(scores.len() as u64);
        }
    }

    /// Drops the scores a run cached before its write failed. They would
    /// never be served (their run never finished), but they keep reads of
    /// these clients from filling the cache until they expire.
    pub async fn forget(&self, client_ids: &[&str]) {
        for chunk in client_ids.chunks(CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|id| Self::key(id)).collect();
            if !self.refresh.delete(&keys).await {
                tracing::warn!(
                    clients = client_ids.len(),
                    "scores of a failed run left in the cache until they expire"
                );
                return;
            }
        }
    }

    /// One pipeline of a refresh: the chunk, and whether Redis took it.
    async fn refresh_pipeline<'a>(&self, chunk: &'a [(&'a str, &'a [u8])]) -> (&'a [(&'a str, &'a [u8])], bool) {
        let entries: Vec<(String, &[u8])> = chunk.iter().map(|(id, record)| (Self::key(id), *record)).collect();
        (chunk, self.refresh.set_many(&entries, self.ttl).await)
    }

    /// Purges owed cached scores, the oldest first, until none is owed or
    /// Redis fails; returns how many were settled.
    pub async fn settle_owed(&self) -> AppResult<u64> {
        let mut settled = 0;
        loop {
            let owed = store::owed_cache_purges(&self.pool, CHUNK as i64).await?;
            if owed.is_empty() || !self.settle(&owed).await? {
                return Ok(settled);
            }
            settled += owed.len() as u64;
        }
    }

    /// Purges these owed cached scores; `false` when Redis did not take
    /// them, which then stay owed.
    pub async fn settle(&self, owed: &[OwedPurge]) -> AppResult<bool> {
        let keys: Vec<String> = owed.iter().map(|purge| Self::key(&purge.client_id)).collect();
        if !self.cache.delete(&keys).await {
            return Ok(false);
        }
        store::settle_cache_purges(&self.pool, owed).await?;
        metrics::counter!("score_cache_purges_settled_total").increment(owed.len() as u64);
        Ok(true)
    }

    /// Settles owed purges every `SETTLE_EVERY` until `shutdown`.
    pub async fn keep_settling(self, shutdown: CancellationToken) {
        let mut ticks = Ticks::new(SETTLE_EVERY, shutdown);
        while ticks.next().await {
            match self.settle_owed().await {
                Ok(0) => {}
                Ok(settled) => tracing::info!(settled, "owed score cache purges settled"),
                Err(error) => tracing::warn!(%error, "owed score cache purges not read; trying again"),
            }
        }
    }
}
