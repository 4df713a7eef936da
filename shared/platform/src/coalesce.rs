//! Coalesced reads: callers asking for keys at the same time share one fetch.
//!
//! A cache miss costs a database round trip. After a Redis flush or restart
//! the whole counter traffic misses, and thousands of one-key queries a
//! second saturate Postgres and the pool long before the rows themselves
//! cost anything. A [`Coalescer`] hands every ask to one task that gathers
//! what queued up while earlier fetches ran into one fetch (stopping once it
//! holds `max_keys`), with at most `in_flight` fetches at a time. An ask that
//! arrives when a slot is free is fetched at once, so batching adds no wait
//! at low load and batches grow by themselves as load grows.

use crate::error::{AppError, AppResult};
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Asks waiting to be gathered; past this, asking waits (the server's own
/// concurrency limit keeps it far from full).
const QUEUE: usize = 4096;

/// Fetches the values of distinct keys; keys without a value are left out.
pub type Fetch<K, V> = Arc<dyn Fn(Vec<K>) -> BoxFuture<'static, AppResult<HashMap<K, V>>> + Send + Sync>;

struct Ask<K, V> {
    keys: Vec<K>,
    reply: oneshot::Sender<AppResult<Vec<V>>>,
}

/// Hands asks to the gathering task; cheap to clone. The task ends when the
/// last clone is dropped.
pub struct Coalescer<K, V> {
    asks: mpsc::Sender<Ask<K, V>>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Coalescer { asks: self.asks.clone() }
    }
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").field("queued", &(QUEUE - self.asks.capacity())).finish()
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the gathering task (call within a Tokio runtime). `name` labels
    /// the `coalesced_fetch_keys` histogram.
    pub fn new(name: &'static str, in_flight: usize, max_keys: usize, fetch: Fetch<K, V>) -> Self {
        let (asks, queue) = mpsc::channel(QUEUE);
        tokio::spawn(gather(name, queue, Arc::new(Semaphore::new(in_flight.max(1))), max_keys.max(1), fetch));
        Coalescer { asks }
    }

    /// The values of `keys`, in their order; keys without a value are left out.
    pub async fn get(&self, keys: Vec<K>) -> AppResult<Vec<V>> {
        let (reply, answer) = oneshot::channel();
        let gone = || AppError::internal(anyhow::anyhow!("the coalesced read ended without an answer"));
        self.asks.send(Ask { keys, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn gather<K, V>(
    name: &'static str,
    mut queue: mpsc::Receiver<Ask<K, V>>,
    slots: Arc<Semaphore>,
    max_keys: usize,
    fetch: Fetch<K, V>,
) where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    while let Some(first) = queue.recv().await {
        // Waiting for a slot is what lets asks queue up behind running fetches.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut keys = first.keys.len();
        let mut batch = vec![first];
        while keys < max_keys {
            let Ok(ask) = queue.try_recv() else { break };
            keys += ask.keys.len();
            batch.push(ask);
        }
        let fetch = fetch.clone();
        tokio::spawn(async move {
            answer(name, batch, &fetch).await;
            drop(slot);
        });
    }
}

/// One fetch for the batch's distinct keys; each ask gets its own values.
/// A panicking fetch drops the replies: its askers get an internal error.
async fn answer<K, V>(name: &'static str, batch: Vec<Ask<K, V>>, fetch: &Fetch<K, V>)
where
    K: Clone + Eq + Hash,
    V: Clone,
{
    let distinct: HashSet<&K> = batch.iter().flat_map(|ask| &ask.keys).collect();
    let keys: Vec<K> = distinct.into_iter().cloned().collect();
    metrics::histogram!("coalesced_fetch_keys", "read" => name).record(keys.len() as f64);
    match fetch(keys).await {
        Ok(found) => {
            for ask in batch {
                let values = ask.keys.iter().filter_map(|key| found.get(key).cloned()).collect();
                let _ = ask.reply.send(Ok(values));
            }
        }
        Err(err) => {
            for ask in batch {
                let _ = ask.reply.send(Err(err.copied()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::sync::Mutex;

    /// A fetch that records the keys of each call and waits at `gate` first.
    fn recorded(gate: Arc<Semaphore>, calls: Arc<Mutex<Vec<Vec<u32>>>>) -> Fetch<u32, String> {
        Arc::new(move |mut keys: Vec<u32>| {
            let gate = gate.clone();
            let calls = calls.clone();
            Box::pin(async move {
                keys.sort_unstable();
                calls.lock().unwrap().push(keys.clone());
                gate.acquire().await.unwrap().forget();
                if keys.contains(&666) {
                    return Err(AppError::unavailable("the database is unavailable"));
                }
                if keys.contains(&13) {
                    panic!("a fetch that fails unexpectedly");
                }
                Ok(keys.into_iter().filter(|k| k % 10 != 9).map(|k| (k, format!("v{k}"))).collect())
            })
        })
    }

    fn queued<K, V>(reads: &Coalescer<K, V>) -> usize {
        QUEUE - reads.asks.capacity()
    }

    async fn until(mut done: impl FnMut() -> bool) {
        while !done() {
            tokio::task::yield_now().await;
        }
    }

    /// Sends the ask (polls its future once: the send completes, the answer waits).
    async fn sent<F: std::future::Future + Unpin>(mut ask: F) -> F {
        assert!(futures::poll!(&mut ask).is_pending());
        ask
    }

    #[tokio::test]
    async fn asks_queued_behind_a_running_fetch_share_the_next_one() {
        let gate = Arc::new(Semaphore::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let reads = Coalescer::new("test", 1, 1000, recorded(gate.clone(), calls.clone()));
        let first = sent(Box::pin(reads.get(vec![1]))).await;
        until(|| calls.lock().unwrap().len() == 1).await;
        // 50 asks over 40 distinct keys, two keys each, while the first fetch waits.
        let mut later = Vec::new();
        for i in 0..50u32 {
            later.push((i, sent(Box::pin(reads.get(vec![100 + i % 40, 200]))).await));
        }
        // The gatherer holds one of them while it waits for the slot.
        until(|| queued(&reads) == 49).await;
        gate.add_permits(2);
        assert_eq!(first.await.unwrap(), vec!["v1"]);
        for (i, ask) in later {
            let key = 100 + i % 40;
            let expected =
                if key % 10 == 9 { vec!["v200".to_string()] } else { vec![format!("v{key}"), "v200".into()] };
            assert_eq!(ask.await.unwrap(), expected, "ask {i}");
        }
        let calls = calls.lock().unwrap().clone();
        let mut second: Vec<u32> = (100..140).collect();
        second.push(200);
        assert_eq!(calls, vec![vec![1], second]);
    }

    #[tokio::test]
    async fn a_batch_stops_gathering_at_max_keys() {
        let gate = Arc::new(Semaphore::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let reads = Coalescer::new("test", 1, 5, recorded(gate.clone(), calls.clone()));
        let first = sent(Box::pin(reads.get(vec![0]))).await;
        until(|| calls.lock().unwrap().len() == 1).await;
        let mut later = Vec::new();
        for key in 1..12u32 {
            later.push(sent(Box::pin(reads.get(vec![key]))).await);
        }
        until(|| queued(&reads) == 10).await;
        gate.add_permits(4);
        first.await.unwrap();
        for ask in later {
            ask.await.unwrap();
        }
        let sizes: Vec<usize> = calls.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 5, 5, 1]);
    }

    #[tokio::test]
    async fn a_failed_fetch_fails_each_of_its_asks_with_its_code() {
        let gate = Arc::new(Semaphore::new(100));
        let reads = Coalescer::new("test", 2, 1000, recorded(gate, Arc::new(Mutex::new(Vec::new()))));
        let err = reads.get(vec![666, 1]).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert_eq!(err.message, "the database is unavailable");
        assert_eq!(reads.get(vec![2]).await.unwrap(), vec!["v2"]);
    }

    #[tokio::test]
    async fn a_panicking_fetch_is_an_internal_error_and_the_next_fetch_runs() {
        let gate = Arc::new(Semaphore::new(100));
        let reads = Coalescer::new("test", 1, 1000, recorded(gate, Arc::new(Mutex::new(Vec::new()))));
        let err = reads.get(vec![13]).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Internal);
        // The panicked fetch gave its slot back.
        assert_eq!(reads.get(vec![3, 9, 4]).await.unwrap(), vec!["v3", "v4"]);
    }
}
