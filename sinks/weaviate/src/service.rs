//! The batch writer: `POST /v1/batch/objects` on an internal tokio runtime, behind the driver's
//! [`BatchWriter`] interface.
//!
//! Per batch:
//! 1. Local checks of every object before sending: a JSON object, and a `vector` (when present) of
//!    exactly `vector_dimensions` finite numbers. Failures are rejected without a request
//!    (`sink_rejected:weaviate:vector_length`, `…:vector_not_finite`, `…:malformed_object`).
//! 2. One request for the rest. HTTP 200 is read item by item (the server answers 200 even when objects
//!    inside failed): `SUCCESS` is written; a failure whose message is transient (deadline exceeded,
//!    replicas unreachable, rate limits) is retried; any other failure is a permanent rejection with the
//!    server's message and a reason from [`reason_kind`].
//! 3. Transient request failures (timeouts, connection errors, 408/429/500/502/503/504, an unreadable
//!    answer) are retried after a jittered exponential backoff (`backon`), at most
//!    `retry.max_retries` times per batch; `split_after_timeouts` consecutive timeouts of a request
//!    halve it (the Weaviate clients' "shrink the batch" advice), and so does 413.
//! 4. A 400/422 for the whole body (e.g. an `id` that is not a UUID) is traced to the object: the one the
//!    message names (`objects.N.`), else by halving until the offending object is alone; it is rejected
//!    (`…:invalid_object`) and the others are written. If every object of the batch (≥ 2) is refused
//!    that way, the refusal is taken as systemic and the batch fails instead (step 5).
//! 5. 401/403, an unknown consistency level, another 4xx, or retries exhausted: the batch completes with
//!    a [`SinkError`] and nothing in it counts as written (the run stops; replays overwrite by id).
//!
//! Memory: at most `max_in_flight` requests run at once (a semaphore shared by all batches and their
//! splits); each batch holds its body plus at most one re-framed copy of a subset.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff};
use hdrhistogram::Histogram;
use millionx_dataflow::config::ConfigError;
use millionx_dataflow::Reason;
use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, ItemRejection, SinkError, WriteOutcome};
use serde::Deserialize;

use crate::client::{build_client, error_message};
use millionx_dataflow::config::{ConnectorConfig as _, RetryConfig};

use crate::config::WeaviateConfig;

/// Sink name used in [`SinkError::sink`] and metrics.
pub const SINK_NAME: &str = "weaviate";

/// Counters of one writer (plain values; the observability layer exports them).
#[derive(Clone, Debug)]
pub struct WeaviateMetrics {
    /// Objects the server acknowledged (`SUCCESS`).
    pub objects_written: u64,
    /// Objects rejected permanently, by reason (`sink_rejected:weaviate:<kind>`).
    pub objects_failed: BTreeMap<String, u64>,
    /// Batches completed with an outcome.
    pub batches_written: u64,
    /// Batches completed with a fatal [`SinkError`].
    pub batches_failed: u64,
    /// HTTP requests sent (retries and splits included).
    pub requests: u64,
    /// Requests that failed as a whole (transport error or non-200 status).
    pub requests_failed: u64,
    /// Retries after a transient failure (request-level or per-object).
    pub retries: u64,
    /// Requests halved (repeated timeouts, 413, or tracing a 400/422 to its object).
    pub splits: u64,
    /// Request latency, µs (send to last byte of the answer), 1 µs–1 h, 3 significant digits.
    pub request_latency_us: Histogram<u64>,
}

impl Default for WeaviateMetrics {
    fn default() -> Self {
        WeaviateMetrics {
            objects_written: 0,
            objects_failed: BTreeMap::new(),
            batches_written: 0,
            batches_failed: 0,
            requests: 0,
            requests_failed: 0,
            retries: 0,
            splits: 0,
            request_latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfigs is valid"))),
        }
    }
}

struct Ctx {
    client: reqwest::Client,
    batch_url: String,
    vector_dimensions: usize,
    retry: RetryConfig,
    split_after_timeouts: u32,
    permits: tokio::sync::Semaphore,
    metrics: Mutex<WeaviateMetrics>,
}

impl Ctx {
    fn metrics(&self) -> MutexGuard<'_, WeaviateMetrics> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backoff(&self) -> ExponentialBackoff {
        self.retry.backoff().build()
    }
}

/// Writes encoded batches (`{"objects":[...]}` bodies) to Weaviate. See the module docs.
pub struct WeaviateWriter {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    in_flight: usize,
    max_in_flight: usize,
}

impl WeaviateWriter {
    /// Validates `config`, reads the API key (file or `WEAVIATE_API_KEY`), builds the client and an
    /// I/O runtime of ≤ 2 threads. Errors name the config key. No network I/O happens here.
    pub fn new(config: &WeaviateConfig) -> Result<WeaviateWriter, ConfigError> {
        config.validate()?;
        let key = config.resolve_api_key(&millionx_dataflow::config::Env::process())?;
        let client = build_client(
            key.as_ref(),
            Duration::from_millis(config.connect_timeout_ms),
            Duration::from_millis(config.request_timeout_ms),
        )
        .map_err(|reason| ConfigError { key: "weaviate.api_key_file".into(), reason })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.max_in_flight.clamp(1, 2))
            .thread_name("weaviate-io")
            .enable_all()
            .build()
            .map_err(|e| ConfigError {
                key: "weaviate".into(),
                reason: format!("cannot start the I/O runtime: {e}"),
            })?;
        let mut batch_url = format!("{}/v1/batch/objects", config.base_url());
        if let Some(level) = config.consistency_level {
            batch_url.push_str("?consistency_level=");
            batch_url.push_str(level.as_str());
        }
        let (done_tx, done_rx) = channel();
        let ctx = Arc::new(Ctx {
            client,
            batch_url,
            vector_dimensions: config.vector_dimensions,
            retry: config.retry,
            split_after_timeouts: config.split_after_timeouts,
            permits: tokio::sync::Semaphore::new(config.max_in_flight),
            metrics: Mutex::new(WeaviateMetrics::default()),
        });
        Ok(WeaviateWriter { runtime, ctx, done_tx, done_rx, in_flight: 0, max_in_flight: config.max_in_flight })
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> WeaviateMetrics {
        self.ctx.metrics().clone()
    }

    /// Waits up to `timeout` for at least one completion, then returns all available (for tests, tools
    /// and shutdown; the driver uses [`BatchWriter::poll`]).
    pub fn wait(&mut self, timeout: Duration) -> Vec<Completion> {
        let mut out = Vec::new();
        if self.in_flight > 0 {
            if let Ok(first) = self.done_rx.recv_timeout(timeout) {
                out.push(first);
            }
        }
        out.extend(self.done_rx.try_iter());
        self.in_flight -= out.len().min(self.in_flight);
        out
    }

    /// Waits until every submitted batch completed or `timeout` passed; returns the completions.
    pub fn drain(&mut self, timeout: Duration) -> Vec<Completion> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            out.extend(self.wait(left));
        }
        out
    }
}

impl BatchWriter for WeaviateWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        self.in_flight += 1;
        let ctx = Arc::clone(&self.ctx);
        let tx = self.done_tx.clone();
        self.runtime.spawn(async move {
            let result = write_batch(&ctx, &batch).await;
            {
                let mut m = ctx.metrics();
                match &result {
                    Ok(outcome) => {
                        m.batches_written += 1;
                        m.objects_written += (batch.len() - outcome.rejected.len()) as u64;
                        for r in &outcome.rejected {
                            *m.objects_failed.entry(r.reason.0.clone()).or_default() += 1;
                        }
                    }
                    Err(_) => m.batches_failed += 1,
                }
            }
            let _ = tx.send(Completion { seq: batch.seq, result, batch });
        });
    }

    fn poll(&mut self) -> Vec<Completion> {
        let out: Vec<Completion> = self.done_rx.try_iter().collect();
        self.in_flight -= out.len().min(self.in_flight);
        out
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

/// The reason kind of a per-object message from the server: `vector_dimension`, `invalid_property`,
/// `unknown_property`, `unknown_class`, else `object_error`.
pub fn reason_kind(message: &str) -> &'static str {
    if message.contains("vector dimensions do not match") {
        "vector_dimension"
    } else if message.contains("no such prop with name") {
        "unknown_property"
    } else if message.contains("not present in schema") || message.contains("object has an empty class") {
        "unknown_class"
    } else if message.starts_with("invalid ") && message.contains(" property '") {
        "invalid_property"
    } else {
        "object_error"
    }
}

/// True for per-object messages that a retry may cure (timeouts, replication, rate limits, shutdown).
/// Messages of a known permanent kind (see [`reason_kind`]) never are, whatever names they quote.
pub fn is_transient_message(message: &str) -> bool {
    if reason_kind(message) != "object_error" {
        return false;
    }
    const MARKERS: &[&str] = &[
        "context deadline exceeded",
        "timeout",
        "timed out",
        "connection refused",
        "connection reset",
        "cannot achieve consistency level",
        "cannot reach enough replicas",
        "too many requests",
        "rate limit",
        "temporarily unavailable",
        "service unavailable",
        "shutting down",
        "try again",
    ];
    let lower = message.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

fn rejection(index: usize, kind: &str, message: String) -> ItemRejection {
    ItemRejection { index, reason: Reason(format!("sink_rejected:{SINK_NAME}:{kind}")), message }
}

/// Local checks of one encoded object: a JSON object whose `vector`, if any, has `dims` finite numbers.
fn check_object(bytes: &[u8], dims: usize) -> Result<(), (&'static str, String)> {
    #[derive(Deserialize)]
    struct View {
        vector: Option<Vec<serde_json::Value>>,
    }
    let view: View = serde_json::from_slice(bytes)
        .map_err(|e| ("malformed_object", format!("the encoded object is not a valid JSON object: {e}")))?;
    let Some(vector) = view.vector else { return Ok(()) };
    if vector.len() != dims {
        return Err(("vector_length", format!("vector has {} dimensions, the class needs {dims}", vector.len())));
    }
    if let Some(at) = vector.iter().position(|v| v.as_f64().is_none_or(|f| !f.is_finite())) {
        return Err(("vector_not_finite", format!("vector element {at} is not a finite number: {}", vector[at])));
    }
    Ok(())
}

/// The index an error message names as `objects.N.` (go-openapi names body fields that way).
fn index_named(message: &str) -> Option<usize> {
    let rest = &message[message.find("objects.")? + "objects.".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One answer item of `POST /v1/batch/objects` (`ObjectsGetResponse`; other fields are skipped).
#[derive(Deserialize)]
struct AnswerItem {
    result: Option<AnswerResult>,
}

#[derive(Deserialize)]
struct AnswerResult {
    status: Option<String>,
    errors: Option<AnswerErrors>,
}

#[derive(Deserialize)]
struct AnswerErrors {
    #[serde(default)]
    error: Option<Vec<AnswerError>>,
}

#[derive(Deserialize)]
struct AnswerError {
    message: Option<String>,
}

impl AnswerItem {
    /// The failure message, if the item failed.
    fn failure(&self) -> Option<String> {
        let result = self.result.as_ref()?;
        let messages: Vec<String> = result
            .errors
            .as_ref()
            .and_then(|e| e.error.as_ref())
            .map(|list| list.iter().filter_map(|e| e.message.clone()).collect())
            .unwrap_or_default();
        if !messages.is_empty() {
            Some(messages.join("; "))
        } else if result.status.as_deref() == Some("FAILED") {
            Some("FAILED without a message".into())
        } else {
            None
        }
    }
}

/// What a request came to.
enum Sent {
    /// HTTP 200: one item per object.
    Items(Vec<AnswerItem>),
    /// Retry later; `timeout` when the request timed out.
    Transient { timeout: bool, message: String },
    /// 400/422: the body was rejected whole.
    Invalid(String),
    /// 413: the body is too large.
    TooLarge(String),
    /// Stop the run.
    Fatal(String),
}

async fn send(ctx: &Ctx, body: Vec<u8>) -> Sent {
    let Ok(_permit) = ctx.permits.acquire().await else {
        return Sent::Fatal("writer shut down".into());
    };
    let started = Instant::now();
    let sent = request(ctx, body).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
    let mut m = ctx.metrics();
    m.requests += 1;
    if !matches!(sent, Sent::Items(_)) {
        m.requests_failed += 1;
    }
    let _ = m.request_latency_us.record(micros.min(3_600_000_000));
    sent
}

async fn request(ctx: &Ctx, body: Vec<u8>) -> Sent {
    let transport = |e: reqwest::Error| {
        if e.is_builder() {
            Sent::Fatal(format!("cannot build the request: {e}"))
        } else {
            Sent::Transient { timeout: e.is_timeout(), message: format!("request failed: {e}") }
        }
    };
    let response = match ctx
        .client
        .post(&ctx.batch_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return transport(e),
    };
    let status = response.status().as_u16();
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return transport(e),
    };
    match status {
        200 => match serde_json::from_slice::<Vec<AnswerItem>>(&bytes) {
            Ok(items) => Sent::Items(items),
            Err(e) => Sent::Transient { timeout: false, message: format!("unreadable 200 answer: {e}") },
        },
        400 => {
            let message = error_message(&bytes);
            if message.starts_with("unrecognized consistency level") {
                Sent::Fatal(format!("HTTP 400: {message} (check weaviate.consistency_level)"))
            } else {
                Sent::Invalid(message)
            }
        }
        422 => Sent::Invalid(error_message(&bytes)),
        413 => Sent::TooLarge(error_message(&bytes)),
        401 | 403 => Sent::Fatal(format!(
            "HTTP {status}: {} (check WEAVIATE_API_KEY / weaviate.api_key_file)",
            error_message(&bytes)
        )),
        408 | 429 | 500 | 502 | 503 | 504 => {
            Sent::Transient { timeout: false, message: format!("HTTP {status}: {}", error_message(&bytes)) }
        }
        other => Sent::Fatal(format!("unexpected HTTP {other}: {}", error_message(&bytes))),
    }
}

/// A set of objects (indices into the batch) sent together.
struct Group {
    indices: Vec<usize>,
    timeouts: u32,
}

fn halves(indices: &[usize]) -> (Group, Group) {
    let (a, b) = indices.split_at(indices.len() / 2);
    (Group { indices: a.to_vec(), timeouts: 0 }, Group { indices: b.to_vec(), timeouts: 0 })
}

async fn write_batch(ctx: &Ctx, batch: &EncodedBatch) -> Result<WriteOutcome, SinkError> {
    let fatal = |message: String| SinkError { sink: SINK_NAME.into(), message };
    let mut outcome = WriteOutcome::default();
    let mut good = Vec::with_capacity(batch.len());
    for i in 0..batch.len() {
        match check_object(batch.item_bytes(i), ctx.vector_dimensions) {
            Ok(()) => good.push(i),
            Err((kind, message)) => outcome.rejected.push(rejection(i, kind, message)),
        }
    }
    let mut backoff = ctx.backoff();
    let mut queue = VecDeque::new();
    if !good.is_empty() {
        queue.push_back(Group { indices: good, timeouts: 0 });
    }
    // Next backoff delay, or the fatal error once retries are exhausted.
    let mut retry = |outcome: &mut WriteOutcome, why: &str| match backoff.next() {
        Some(delay) => {
            outcome.retries += 1;
            ctx.metrics().retries += 1;
            Ok(delay)
        }
        None => Err(fatal(format!(
            "batch {}: gave up after {} retries; last error: {why}",
            batch.seq, ctx.retry.max_retries
        ))),
    };
    while let Some(mut group) = queue.pop_front() {
        let body = if group.indices.len() == batch.len() {
            batch.body.clone()
        } else {
            batch.subset(batch.seq, &group.indices).body
        };
        match send(ctx, body).await {
            Sent::Items(items) => {
                if items.len() != group.indices.len() {
                    return Err(fatal(format!(
                        "batch {}: the answer has {} items for {} objects",
                        batch.seq,
                        items.len(),
                        group.indices.len()
                    )));
                }
                let mut again = Vec::new();
                let mut last_transient = String::new();
                for (item, &index) in items.iter().zip(&group.indices) {
                    match item.failure() {
                        None => {}
                        Some(message) if is_transient_message(&message) => {
                            again.push(index);
                            last_transient = message;
                        }
                        Some(message) => outcome.rejected.push(rejection(index, reason_kind(&message), message)),
                    }
                }
                if !again.is_empty() {
                    let delay = retry(&mut outcome, &last_transient)?;
                    tokio::time::sleep(delay).await;
                    queue.push_back(Group { indices: again, timeouts: 0 });
                }
            }
            Sent::Transient { timeout, message } => {
                let delay = retry(&mut outcome, &message)?;
                group.timeouts = if timeout { group.timeouts + 1 } else { 0 };
                if group.timeouts >= ctx.split_after_timeouts && group.indices.len() > 1 {
                    ctx.metrics().splits += 1;
                    let (a, b) = halves(&group.indices);
                    queue.push_front(b);
                    queue.push_front(a);
                } else {
                    queue.push_front(group);
                }
                tokio::time::sleep(delay).await;
            }
            Sent::TooLarge(message) => {
                if let [index] = group.indices[..] {
                    outcome.rejected.push(rejection(index, "too_large", message));
                } else {
                    ctx.metrics().splits += 1;
                    let (a, b) = halves(&group.indices);
                    queue.push_front(b);
                    queue.push_front(a);
                }
            }
            Sent::Invalid(message) => match index_named(&message).filter(|&k| k < group.indices.len()) {
                _ if group.indices.len() == 1 => {
                    outcome.rejected.push(rejection(group.indices[0], "invalid_object", message));
                }
                Some(k) => {
                    let index = group.indices.remove(k);
                    outcome.rejected.push(rejection(index, "invalid_object", message));
                    group.timeouts = 0;
                    queue.push_front(group);
                }
                None => {
                    ctx.metrics().splits += 1;
                    let (a, b) = halves(&group.indices);
                    queue.push_front(b);
                    queue.push_front(a);
                }
            },
            Sent::Fatal(message) => return Err(fatal(format!("batch {}: {message}", batch.seq))),
        }
    }
    let sent = batch.len() - outcome.rejected.iter().filter(|r| !r.reason.0.ends_with(":invalid_object")).count();
    let invalid = outcome.rejected.iter().filter(|r| r.reason.0.ends_with(":invalid_object")).count();
    if sent >= 2 && invalid == sent {
        // Every object rejected as invalid on its own: far likelier a systemic 400/422 (a proxy, a
        // server change) than a whole batch of bad objects; stop rather than dead-letter everything.
        let message = outcome.rejected.last().map(|r| r.message.clone()).unwrap_or_default();
        return Err(fatal(format!("batch {}: all {sent} objects rejected with HTTP 400/422: {message}", batch.seq)));
    }
    outcome.rejected.sort_by_key(|r| r.index);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_checks_catch_bad_vectors() {
        let ok = br#"{"class":"A","id":"x","vector":[0.5,1,-2]}"#;
        assert_eq!(check_object(ok, 3), Ok(()));
        assert_eq!(check_object(br#"{"class":"A"}"#, 3), Ok(()));
        assert_eq!(check_object(ok, 384).map_err(|e| e.0), Err("vector_length"));
        assert_eq!(check_object(br#"{"vector":[0.5,null,1]}"#, 3).map_err(|e| e.0), Err("vector_not_finite"));
        assert_eq!(check_object(br#"{"vector":[0.5,"x",1]}"#, 3).map_err(|e| e.0), Err("vector_not_finite"));
        assert_eq!(check_object(b"[1]", 3).map_err(|e| e.0), Err("malformed_object"));
    }

    #[test]
    fn messages_map_to_reasons() {
        assert_eq!(
            reason_kind("invalid integer property 'p' on class 'C': requires an integer, the given value is '1.5'"),
            "invalid_property"
        );
        assert_eq!(
            reason_kind("insert to vector index: vector dimensions do not match the index dimensions: x"),
            "vector_dimension"
        );
        assert_eq!(reason_kind("class 'X' not present in schema"), "unknown_class");
        assert_eq!(reason_kind("no such prop with name 'p' found in class 'C' in the schema."), "unknown_property");
        assert!(is_transient_message("put object: context deadline exceeded"));
        assert!(!is_transient_message("invalid date property 'd' on class 'C'"));
        assert!(!is_transient_message("invalid text property 'timeout' on class 'C': not a string, but bool"));
        assert_eq!(index_named("body.objects.12.id in body must be of type uuid: \"x\""), Some(12));
        assert_eq!(index_named("id in body must be of type uuid: \"x\""), None);
    }
}
