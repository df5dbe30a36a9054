//! The embedding pool: model threads off the timely workers, a bounded queue, a cache by text hash.
//!
//! A caller (one per operator instance) holds an [`EmbedClient`]. [`EmbedClient::submit`] never blocks: it
//! answers a text from the cache at once, joins a text already queued or running (the same text is never
//! embedded twice at the same time), or queues it while the queue has room, and stops at the first text that
//! finds the queue full (the caller keeps the rest and tries again later). Results come back through
//! [`EmbedClient::poll`]; the client's `notify` callback runs after each delivery so a timely operator can be
//! woken by a `SyncActivator`. Each model thread takes up to `max_batch` queued texts at once and embeds them as
//! one batch.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use lru::LruCache;

use crate::error::EmbedError;
use crate::model::TextEncoder;

/// A 128-bit XXH3 hash of a text: the cache and de-duplication key.
pub type TextKey = u128;

/// The key of `text` (XXH3-128 of its UTF-8 bytes).
pub fn text_key(text: &str) -> TextKey {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// Called on the model thread after every successful batch with its latency (queue exit to vectors ready)
/// and its number of texts, e.g. to feed `millionx_embedding_duration_seconds`. Must be cheap and must not block.
pub type BatchObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

/// Pool settings. Defaults: threads = available cores, queue 4,096 texts, batches of 32, cache 50,000 vectors
/// (≈ 77 MB: 384 × 4 bytes each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Model threads (each runs one batch at a time). At least 1.
    pub threads: usize,
    /// Most texts waiting in the queue (not yet taken by a thread); submissions beyond it are refused.
    pub queue_capacity: usize,
    /// Most texts a thread takes from the queue for one batch. At least 1.
    pub max_batch: usize,
    /// Vectors kept in the least-recently-used cache; 0 turns the cache off.
    pub cache_capacity: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            queue_capacity: 4096,
            max_batch: 32,
            cache_capacity: 50_000,
        }
    }
}

impl PoolConfig {
    /// Checks the settings; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 {
            return Err("embed.threads: must be at least 1".into());
        }
        if self.max_batch == 0 {
            return Err("embed.max_batch: must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return Err("embed.queue_capacity: must be at least 1".into());
        }
        Ok(())
    }
}

/// A finished request: the caller's id and the vector, `None` when the model failed on the batch or the pool
/// shut down before running it.
pub type Completion = (u64, Option<Arc<[f32]>>);

/// Counters of a pool, read with [`EmbedPool::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Texts offered to [`EmbedClient::submit`] and accepted.
    pub submitted: u64,
    /// Accepted texts answered from the cache.
    pub cache_hits: u64,
    /// Accepted texts that joined an identical text already queued or running.
    pub coalesced: u64,
    /// Texts refused because the queue was full (the caller retries or gives up on them).
    pub refused: u64,
    /// Texts the model embedded.
    pub embedded: u64,
    /// Texts whose batch failed (or that were dropped at shutdown).
    pub failed: u64,
    /// Batches the model ran.
    pub batches: u64,
    /// Backlog: texts waiting in the queue now.
    pub queued: u64,
    /// Texts being embedded now.
    pub running: u64,
    /// Vectors in the cache now.
    pub cached: u64,
    /// Batch latency p50, µs (queue exit to vectors ready), 0 before the first batch.
    pub batch_p50_us: u64,
    /// Batch latency p95, µs.
    pub batch_p95_us: u64,
    /// Batch latency p99, µs.
    pub batch_p99_us: u64,
}

struct Job {
    key: TextKey,
    text: String,
}

struct Waiter {
    id: u64,
    client: Arc<ClientShared>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Waiters per text queued or running.
    inflight: HashMap<TextKey, Vec<Waiter>>,
    running: u64,
    shutdown: bool,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    cache_hits: AtomicU64,
    coalesced: AtomicU64,
    refused: AtomicU64,
    embedded: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
}

struct Shared {
    encoder: Arc<dyn TextEncoder>,
    config: PoolConfig,
    state: Mutex<State>,
    work: Condvar,
    cache: Option<Mutex<LruCache<TextKey, Arc<[f32]>>>>,
    counters: Counters,
    /// Batch latency, µs, 1 µs – 1 h, 3 significant digits.
    latency: Mutex<Histogram<u64>>,
    observer: Option<BatchObserver>,
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (state stays consistent: every
/// critical section here leaves it valid at each step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The pool: a cheap, clonable handle on the model threads. The threads stop when the last handle and the
/// last [`EmbedClient`] are dropped (texts still queued then are answered `None`).
#[derive(Clone)]
pub struct EmbedPool {
    shared: Arc<Shared>,
    owner: Arc<Threads>,
}

/// Owns the model threads; shuts them down when dropped.
struct Threads {
    shared: Arc<Shared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for EmbedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedPool").field("config", &self.shared.config).finish()
    }
}

impl EmbedPool {
    /// Starts `config.threads` model threads sharing `encoder` (normally an [`crate::Embedder`]).
    ///
    /// Errors: [`EmbedError::PoolStart`] with the [`PoolConfig::validate`] message, or the OS refusing a thread.
    pub fn start(encoder: Arc<dyn TextEncoder>, config: PoolConfig) -> Result<EmbedPool, EmbedError> {
        Self::start_observed(encoder, config, None)
    }

    /// [`EmbedPool::start`] with a [`BatchObserver`] called after every successful batch.
    ///
    /// Errors: as [`EmbedPool::start`].
    pub fn start_observed(
        encoder: Arc<dyn TextEncoder>,
        config: PoolConfig,
        observer: Option<BatchObserver>,
    ) -> Result<EmbedPool, EmbedError> {
        config.validate().map_err(EmbedError::PoolStart)?;
        let cache = NonZeroUsize::new(config.cache_capacity).map(|c| Mutex::new(LruCache::new(c)));
        let latency =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| EmbedError::PoolStart(e.to_string()))?;
        let shared = Arc::new(Shared {
            encoder,
            config: config.clone(),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            cache,
            counters: Counters::default(),
            latency: Mutex::new(latency),
            observer,
        });
        let mut threads = Vec::with_capacity(config.threads);
        for i in 0..config.threads {
            let s = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name(format!("embed-{i}"))
                .spawn(move || model_thread(&s))
                .map_err(|e| EmbedError::PoolStart(format!("cannot start a model thread: {e}")))?;
            threads.push(t);
        }
        let owner = Arc::new(Threads { shared: Arc::clone(&shared), handles: Mutex::new(threads) });
        Ok(EmbedPool { shared, owner })
    }

    /// A new client. `notify` runs on a model thread after results for this client were delivered (and on the
    /// calling thread when [`EmbedClient::submit`] answers from the cache); it must be cheap and must not block.
    pub fn client(&self, notify: Option<Box<dyn Fn() + Send + Sync>>) -> EmbedClient {
        let (tx, rx) = channel();
        EmbedClient {
            shared: Arc::clone(&self.shared),
            _owner: Arc::clone(&self.owner),
            inner: Arc::new(ClientShared { tx, notify }),
            rx,
        }
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The model the pool runs.
    pub fn encoder(&self) -> &Arc<dyn TextEncoder> {
        &self.shared.encoder
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let (queued, running) = {
            let st = lock(&self.shared.state);
            (st.queue.len() as u64, st.running)
        };
        let cached = self.shared.cache.as_ref().map_or(0, |m| lock(m).len() as u64);
        let h = lock(&self.shared.latency);
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        PoolStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            embedded: c.embedded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            queued,
            running,
            cached,
            batch_p50_us: q(0.50),
            batch_p95_us: q(0.95),
            batch_p99_us: q(0.99),
        }
    }

    /// A copy of the batch latency histogram (µs), e.g. to merge into a run's report.
    pub fn latency_histogram(&self) -> Histogram<u64> {
        lock(&self.shared.latency).clone()
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        let dropped: Vec<Job> = {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            st.queue.drain(..).collect()
        };
        fail_jobs(&self.shared, dropped);
        self.shared.work.notify_all();
        for t in lock(&self.handles).drain(..) {
            let _ = t.join();
        }
    }
}

struct ClientShared {
    tx: Sender<Completion>,
    notify: Option<Box<dyn Fn() + Send + Sync>>,
}

impl ClientShared {
    fn wake(&self) {
        if let Some(n) = &self.notify {
            n();
        }
    }
}

/// One caller's handle on the pool: submit texts, poll results.
pub struct EmbedClient {
    shared: Arc<Shared>,
    /// Keeps the model threads running while this client exists.
    _owner: Arc<Threads>,
    inner: Arc<ClientShared>,
    rx: Receiver<Completion>,
}

impl std::fmt::Debug for EmbedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedClient").finish_non_exhaustive()
    }
}

impl EmbedClient {
    /// Offers `(id, text)` pairs in order; returns how many of them (a prefix) were accepted. Never blocks.
    ///
    /// A text is accepted when the cache holds its vector (delivered at once), when an identical text is
    /// queued or running (it shares that result), or when the queue has room. Each accepted id later comes
    /// back exactly once from [`EmbedClient::poll`]. Errors: [`EmbedError::PoolClosed`] after the pool shut down.
    pub fn submit<S: AsRef<str>>(&mut self, items: &[(u64, S)]) -> Result<usize, EmbedError> {
        let sh = &*self.shared;
        let mut accepted = 0;
        let mut hits = 0u64;
        let mut coalesced = 0u64;
        let mut queued_any = false;
        {
            let mut st = lock(&sh.state);
            if st.shutdown {
                return Err(EmbedError::PoolClosed);
            }
            for (id, text) in items {
                let text = text.as_ref();
                let key = text_key(text);
                if let Some(waiters) = st.inflight.get_mut(&key) {
                    waiters.push(Waiter { id: *id, client: Arc::clone(&self.inner) });
                    coalesced += 1;
                } else if let Some(v) = sh.cache.as_ref().and_then(|c| lock(c).get(&key).cloned()) {
                    // Send cannot fail: this client owns the receiver.
                    let _ = self.inner.tx.send((*id, Some(v)));
                    hits += 1;
                } else if st.queue.len() < sh.config.queue_capacity {
                    st.queue.push_back(Job { key, text: text.to_owned() });
                    st.inflight.insert(key, vec![Waiter { id: *id, client: Arc::clone(&self.inner) }]);
                    queued_any = true;
                } else {
                    sh.counters.refused.fetch_add((items.len() - accepted) as u64, Ordering::Relaxed);
                    break;
                }
                accepted += 1;
            }
        }
        let c = &sh.counters;
        c.submitted.fetch_add(accepted as u64, Ordering::Relaxed);
        c.cache_hits.fetch_add(hits, Ordering::Relaxed);
        c.coalesced.fetch_add(coalesced, Ordering::Relaxed);
        if queued_any {
            sh.work.notify_all();
        }
        if hits > 0 {
            self.inner.wake();
        }
        Ok(accepted)
    }

    /// Moves every completion delivered so far into `out`; returns how many were added. Never blocks.
    pub fn poll(&mut self, out: &mut Vec<Completion>) -> usize {
        let before = out.len();
        out.extend(self.rx.try_iter());
        out.len() - before
    }

    /// Waits up to `timeout` for one completion (for command-line use, not inside a timely operator).
    pub fn wait(&mut self, timeout: std::time::Duration) -> Option<Completion> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// Sends `None` to every waiter of `jobs` (batch failed, or pool shutting down).
fn fail_jobs(sh: &Shared, jobs: Vec<Job>) {
    let mut wake: Vec<Arc<ClientShared>> = Vec::new();
    {
        let mut st = lock(&sh.state);
        for job in &jobs {
            for w in st.inflight.remove(&job.key).unwrap_or_default() {
                let _ = w.client.tx.send((w.id, None));
                sh.counters.failed.fetch_add(1, Ordering::Relaxed);
                push_unique(&mut wake, w.client);
            }
        }
    }
    wake.iter().for_each(|c| c.wake());
}

fn push_unique(list: &mut Vec<Arc<ClientShared>>, c: Arc<ClientShared>) {
    if !list.iter().any(|x| Arc::ptr_eq(x, &c)) {
        list.push(c);
    }
}

fn model_thread(sh: &Shared) {
    let mut jobs: Vec<Job> = Vec::with_capacity(sh.config.max_batch);
    let mut said_error = false;
    loop {
        {
            let mut st = lock(&sh.state);
            while st.queue.is_empty() && !st.shutdown {
                st = sh.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.shutdown {
                return;
            }
            let n = st.queue.len().min(sh.config.max_batch);
            jobs.extend(st.queue.drain(..n));
            st.running += n as u64;
        }
        let started = Instant::now();
        let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
        // A panic inside the model fails this batch only; the thread keeps serving.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sh.encoder.embed_batch(&texts)))
            .unwrap_or_else(|_| Err(EmbedError::Inference("the model panicked".into())));
        drop(texts);
        let n = jobs.len() as u64;
        match result {
            Ok(vectors) => {
                let took = started.elapsed();
                let elapsed = took.as_micros().min(u64::MAX as u128) as u64;
                let _ = lock(&sh.latency).record(elapsed.max(1));
                if let Some(observe) = &sh.observer {
                    observe(took, jobs.len());
                }
                sh.counters.batches.fetch_add(1, Ordering::Relaxed);
                sh.counters.embedded.fetch_add(n, Ordering::Relaxed);
                let arcs: Vec<Arc<[f32]>> = vectors.into_iter().map(Arc::from).collect();
                // Cache first, then retire the in-flight entry: a concurrent submit finds one or the other.
                if let Some(cache) = &sh.cache {
                    let mut c = lock(cache);
                    for (job, v) in jobs.iter().zip(&arcs) {
                        c.put(job.key, Arc::clone(v));
                    }
                }
                let mut wake: Vec<Arc<ClientShared>> = Vec::new();
                {
                    let mut st = lock(&sh.state);
                    st.running -= n;
                    for (job, v) in jobs.iter().zip(&arcs) {
                        for w in st.inflight.remove(&job.key).unwrap_or_default() {
                            let _ = w.client.tx.send((w.id, Some(Arc::clone(v))));
                            push_unique(&mut wake, w.client);
                        }
                    }
                }
                wake.iter().for_each(|c| c.wake());
                jobs.clear();
            }
            Err(e) => {
                if !said_error {
                    // The message names the failure, never the texts (they may hold personal data).
                    eprintln!("embed: a batch of {n} texts failed: {e} (further failures are only counted)");
                    said_error = true;
                }
                lock(&sh.state).running -= n;
                fail_jobs(sh, std::mem::take(&mut jobs));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_field() {
        let bad = PoolConfig { threads: 0, ..PoolConfig::default() };
        assert_eq!(bad.validate().expect_err("invalid"), "embed.threads: must be at least 1");
        let bad = PoolConfig { max_batch: 0, ..PoolConfig::default() };
        assert_eq!(bad.validate().expect_err("invalid"), "embed.max_batch: must be at least 1");
        let bad = PoolConfig { queue_capacity: 0, ..PoolConfig::default() };
        assert_eq!(bad.validate().expect_err("invalid"), "embed.queue_capacity: must be at least 1");
        assert!(PoolConfig::default().validate().is_ok());
    }

    #[test]
    fn text_keys_differ_and_repeat() {
        assert_eq!(text_key("Hilsa Fish 1kg groceries"), text_key("Hilsa Fish 1kg groceries"));
        assert_ne!(text_key("Hilsa Fish 1kg groceries"), text_key("Hilsa Fish 1kg groceries "));
    }
}
