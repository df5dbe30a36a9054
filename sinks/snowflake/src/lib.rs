//! MillionX Snowflake sink.
//!
//! - [`schema`]: `ops/snowflake/schema-setup.sql` (tables, views, warehouse, roles, grants) and the
//!   `snowflake schema [--apply] [--dry-run]` command ([`run_schema`]).
//! - [`sql`]: method `sql_batch` — one `MERGE … USING (SELECT … FROM LATERAL FLATTEN(PARSE_JSON(?)))` per
//!   batch over Snowflake's client protocol, idempotent on each table's merge key.
//! - [`streaming`]: method `snowpipe_streaming` — the Snowpipe Streaming REST API, one channel per table and
//!   Kafka partition, offset tokens = Kafka offsets, batches acknowledged once committed.
//! - [`SnowflakeSink`] builds the writers ([`millionx_sink_util::BatchWriter`]) for the batching driver.
//!
//! Test tooling (the fakesnow harness, the Snowpipe Streaming double) is the `millionx-snowflake-testing`
//! crate in `testing/snowflake`.

pub mod config;
pub mod metrics;
pub mod schema;
pub mod sql;
pub mod streaming;
pub mod tables;

use std::sync::Arc;
use std::time::Duration;

use millionx_sink_util::{BatchPolicy, BatchWriter, Completion, EncodedBatch, Framing, SinkError};

pub use config::{Method, SnowflakeConfig};
pub use metrics::{Metrics, MetricsSnapshot};
pub use schema::{run_schema, SchemaArgs};
pub use tables::{Table, TableSchema};

use crate::sql::client::SqlClient;
use crate::sql::writer::SqlBatchWriter;
use crate::streaming::api::StreamingApi;
use crate::streaming::jwt::KeyPair;
use crate::streaming::writer::StreamingWriter;

/// `batch` re-framed with `framing`, or `None` when it already is. NDJSON items lose/gain their trailing
/// `\n`; the item order (and so every index) is kept.
pub fn reframe(batch: &EncodedBatch, framing: Framing) -> Option<EncodedBatch> {
    if batch.framing == framing {
        return None;
    }
    let mut out = EncodedBatch::new(batch.seq, framing);
    for (i, item) in batch.items.iter().enumerate() {
        let bytes = batch.item_bytes(i);
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        out.push_with(item.origin, item.ingest_ns, |o| {
            o.extend_from_slice(trimmed);
            if framing == Framing::NDJSON {
                o.push(b'\n');
            }
        });
    }
    out.close();
    Some(out)
}

/// Completed batches coming back from a writer's tasks, and how many submitted batches are not back yet.
pub(crate) struct Completions {
    tx: std::sync::mpsc::Sender<Completion>,
    rx: std::sync::mpsc::Receiver<Completion>,
    in_flight: usize,
}

impl Completions {
    pub(crate) fn new() -> Completions {
        let (tx, rx) = std::sync::mpsc::channel();
        Completions { tx, rx, in_flight: 0 }
    }

    /// Where a task sends its batch's completion.
    pub(crate) fn sender(&self) -> std::sync::mpsc::Sender<Completion> {
        self.tx.clone()
    }

    /// One more batch submitted.
    pub(crate) fn submitted(&mut self) {
        self.in_flight += 1;
    }

    /// Completions that arrived since the last call.
    pub(crate) fn poll(&mut self) -> Vec<Completion> {
        let done: Vec<Completion> = self.rx.try_iter().collect();
        self.in_flight -= done.len().min(self.in_flight);
        done
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }
}

enum Backend {
    Sql(Arc<SqlClient>),
    Streaming(Arc<StreamingApi>),
}

/// A connected Snowflake sink: one runtime and one client shared by the writers of every table and worker.
pub struct SnowflakeSink {
    config: SnowflakeConfig,
    runtime: Arc<tokio::runtime::Runtime>,
    backend: Backend,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SnowflakeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeSink").field("method", &self.config.method).finish_non_exhaustive()
    }
}

impl SnowflakeSink {
    /// Validates `config`, reads its secrets and checks the connection (`sql_batch`: logs in and runs
    /// `SELECT 1`; `snowpipe_streaming`: discovers the ingest host and exchanges the JWT for a scoped token),
    /// retrying transient failures.
    ///
    /// # Errors
    /// A [`SinkError`] (sink `snowflake`) naming the bad key, the unreadable secret, or the failed check.
    pub fn connect(config: &SnowflakeConfig) -> Result<SnowflakeSink, SinkError> {
        let fail = |message: String| SinkError { sink: "snowflake".into(), message };
        config.validate().map_err(|e| fail(e.to_string()))?;
        let credentials =
            config.resolve_credentials(&millionx_dataflow::config::Env::process()).map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("snowflake-sink")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("runtime: {e}")))?;
        let metrics = Arc::new(Metrics::default());
        let backend = match config.method {
            Method::SqlBatch => {
                let client =
                    SqlClient::new(config, credentials, Arc::clone(&metrics)).map_err(|e| fail(e.to_string()))?;
                runtime
                    .block_on(client.execute("SELECT 1", None))
                    .map_err(|e| fail(format!("connection check: {e}")))?;
                Backend::Sql(Arc::new(client))
            }
            Method::SnowpipeStreaming => {
                let config::Credentials::KeyPair { pem, passphrase } = credentials else {
                    return Err(fail("auth.type: snowpipe_streaming needs key_pair".into()));
                };
                let key = KeyPair::from_pem(pem.expose(), passphrase.as_ref().map(|p| p.expose()))
                    .map_err(|e| fail(format!("auth.private_key: {e}")))?;
                let api = StreamingApi::new(
                    &config.base_url(),
                    &config.account,
                    &config.user,
                    &config.database,
                    &config.schema,
                    key,
                    Duration::from_secs(60),
                )
                .map_err(fail)?;
                let api = Arc::new(api);
                let check = async {
                    use backon::Retryable;
                    (|| api.check())
                        .retry(config.retry.backoff())
                        .sleep(tokio::time::sleep)
                        .when(|e| matches!(e, streaming::api::ApiError::Transient { .. }))
                        .await
                };
                runtime.block_on(check).map_err(|e| fail(format!("connection check: {e}")))?;
                Backend::Streaming(api)
            }
        };
        Ok(SnowflakeSink { config: config.clone(), runtime: Arc::new(runtime), backend, metrics })
    }

    /// The framing to ask the encoder for ([`Method::framing`]).
    pub fn framing(&self) -> Framing {
        self.config.method.framing()
    }

    /// The flush policy from `[snowflake.batch]`.
    pub fn batch_policy(&self) -> BatchPolicy {
        self.config.batch_policy()
    }

    /// A writer for `table` (call once per table per worker).
    pub fn writer(&self, table: Table) -> SnowflakeWriter {
        let handle = self.runtime.handle().clone();
        let inner = match &self.backend {
            Backend::Sql(client) => WriterInner::Sql(SqlBatchWriter::new(
                table,
                &self.config.database,
                &self.config.schema,
                handle,
                Arc::clone(client),
                Arc::clone(&self.metrics),
                self.config.sql.max_in_flight,
            )),
            Backend::Streaming(api) => WriterInner::Streaming(StreamingWriter::new(
                table,
                &handle,
                Arc::clone(api),
                &self.config.streaming,
                self.config.retry,
                Arc::clone(&self.metrics),
            )),
        };
        SnowflakeWriter { inner, _runtime: Arc::clone(&self.runtime) }
    }

    /// The sink's counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }
}

enum WriterInner {
    Sql(SqlBatchWriter),
    Streaming(StreamingWriter),
}

/// A table's writer for the configured method; keeps the sink's runtime alive.
pub struct SnowflakeWriter {
    inner: WriterInner,
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SnowflakeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            WriterInner::Sql(w) => w.fmt(f),
            WriterInner::Streaming(w) => w.fmt(f),
        }
    }
}

impl BatchWriter for SnowflakeWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        match &mut self.inner {
            WriterInner::Sql(w) => w.submit(batch),
            WriterInner::Streaming(w) => w.submit(batch),
        }
    }
    fn poll(&mut self) -> Vec<Completion> {
        match &mut self.inner {
            WriterInner::Sql(w) => w.poll(),
            WriterInner::Streaming(w) => w.poll(),
        }
    }
    fn in_flight(&self) -> usize {
        match &self.inner {
            WriterInner::Sql(w) => w.in_flight(),
            WriterInner::Streaming(w) => w.in_flight(),
        }
    }
    fn max_in_flight(&self) -> usize {
        match &self.inner {
            WriterInner::Sql(w) => w.max_in_flight(),
            WriterInner::Streaming(w) => w.max_in_flight(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{Origin, StreamKind};

    #[test]
    fn sink_and_writers_cross_worker_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<SnowflakeSink>();
        send::<SnowflakeWriter>();
    }

    #[test]
    fn reframes_between_ndjson_and_json_array() {
        let mut b = EncodedBatch::new(5, Framing::NDJSON);
        for offset in [1, 2] {
            b.push_with(Origin { stream: StreamKind::Social, partition: 0, offset }, 9, |o| {
                o.extend_from_slice(format!("{{\"N\":{offset}}}\n").as_bytes())
            });
        }
        b.close();
        let a = reframe(&b, Framing::JSON_ARRAY).expect("re-framed");
        assert_eq!(a.body, b"[{\"N\":1},{\"N\":2}]");
        assert_eq!((a.seq, a.items[1].origin.offset), (5, 2));
        let back = reframe(&a, Framing::NDJSON).expect("re-framed");
        assert_eq!(back.body, b"{\"N\":1}\n{\"N\":2}\n");
        assert!(reframe(&back, Framing::NDJSON).is_none());
    }
}
