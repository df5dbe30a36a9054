//! The typed [`Metrics`] handle: one method per catalog metric, so pipeline code never spells a metric name.
//!
//! Call the methods per batch, not per record (STYLE.md): every call looks up its label set in the SDK's
//! aggregation map (a hash of a few short strings), which is cheap per batch and wasteful per record.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};
use opentelemetry_sdk::Resource;
use prometheus::{Encoder as _, TextEncoder};

use crate::catalog::{self, MetricSpec};
use crate::label::{fixed, number, owned, shared};
use crate::MetricsError;

/// Series per metric before the SDK folds further label sets into one `otel_metric_overflow="true"` series.
/// Our largest label space is topics × partitions of the consumer-lag gauge.
pub const CARDINALITY_LIMIT: usize = 1000;

/// The instrumentation scope name (not exported as a label: scope labels are disabled).
const SCOPE: &str = "millionx";

/// What a sink writes: table rows (Snowflake, file, dead-letter file) or vector objects (Weaviate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkOutput {
    /// Rows: counted by [`SinkMetrics::rows_written`].
    Rows,
    /// Objects: counted by [`SinkMetrics::objects_written`].
    Objects,
}

/// A handle to every MillionX metric. Cheap to clone (one `Arc`); `Send + Sync`, so each timely worker
/// and each sink service thread keeps its own clone.
///
/// Counters take a count `n` so a caller adds a batch at once; latency methods take a [`Duration`]
/// (recorded in seconds); label arguments are `stream` (`social` | `market` | `weather`), `category`, `reason`, `topic`, `field`, `worker`,
/// `partition`; the sink metrics live on [`SinkMetrics`] ([`Metrics::sink`]). A label value outside
/// `[A-Za-z0-9_.:/-]{1,128}` is exported as `invalid` (see
/// [`crate::label`]); non-finite ratios are ignored.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    records_in: Counter<u64>,
    records_rejected: Counter<u64>,
    records_out: Counter<u64>,
    ingestion_lag: Histogram<f64>,
    event_to_sink_latency: Histogram<f64>,
    duplicates: Counter<u64>,
    pii_detected: Counter<u64>,
    pii_fields: Counter<u64>,
    category: Counter<u64>,
    weather_enriched: Counter<u64>,
    weather_fetch: Counter<u64>,
    embedding_texts: Counter<u64>,
    embedding_duration: Histogram<f64>,
    embedding_backlog: Gauge<u64>,
    embedding_backend: Gauge<u64>,
    quality_score: Gauge<f64>,
    quality_weather_coverage: Gauge<f64>,
    quality_embedding_coverage: Gauge<f64>,
    quality_windows_closed: Counter<u64>,
    sink_rows: Counter<u64>,
    sink_objects: Counter<u64>,
    sink_batches: Counter<u64>,
    sink_bytes: Counter<u64>,
    sink_errors: Counter<u64>,
    sink_retries: Counter<u64>,
    sink_request_duration: Histogram<f64>,
    kafka_lag: Gauge<u64>,
    kafka_commit_duration: Histogram<f64>,
    kafka_commit_errors: Counter<u64>,
    epochs_in_flight: Gauge<u64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nothing to flush (pull exporter); shutting down releases the reader. An error here only means
        // it was already shut down.
        let _ = self.provider.shutdown();
    }
}

fn counter(meter: &Meter, spec: &MetricSpec) -> Counter<u64> {
    meter.u64_counter(spec.instrument_name()).with_unit(spec.unit).with_description(spec.help).build()
}

fn histogram(meter: &Meter, spec: &MetricSpec) -> Histogram<f64> {
    meter
        .f64_histogram(spec.instrument_name())
        .with_unit(spec.unit)
        .with_description(spec.help)
        .with_boundaries(spec.buckets.to_vec())
        .build()
}

fn f64_gauge(meter: &Meter, spec: &MetricSpec) -> Gauge<f64> {
    meter.f64_gauge(spec.instrument_name()).with_unit(spec.unit).with_description(spec.help).build()
}

fn u64_gauge(meter: &Meter, spec: &MetricSpec) -> Gauge<u64> {
    meter.u64_gauge(spec.instrument_name()).with_unit(spec.unit).with_description(spec.help).build()
}

impl Metrics {
    /// Builds the OpenTelemetry meter provider, its Prometheus exporter (own registry, no scope labels,
    /// resource `service.name = millionx` exported as `target_info`) and every instrument of
    /// [`catalog::CATALOG`]. Nothing is served: see [`crate::MetricsServer`].
    ///
    /// Errors: [`MetricsError::Exporter`] when the exporter cannot be registered.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let limit_cardinality =
            |_: &Instrument| Stream::builder().with_cardinality_limit(CARDINALITY_LIMIT).build().ok();
        let provider = SdkMeterProvider::builder()
            .with_resource(Resource::builder_empty().with_service_name("millionx").build())
            .with_reader(exporter)
            .with_view(limit_cardinality)
            .build();
        let m = provider.meter(SCOPE);
        let inner = Inner {
            records_in: counter(&m, &catalog::RECORDS_IN),
            records_rejected: counter(&m, &catalog::RECORDS_REJECTED),
            records_out: counter(&m, &catalog::RECORDS_OUT),
            ingestion_lag: histogram(&m, &catalog::INGESTION_LAG),
            event_to_sink_latency: histogram(&m, &catalog::EVENT_TO_SINK_LATENCY),
            duplicates: counter(&m, &catalog::DUPLICATES),
            pii_detected: counter(&m, &catalog::PII_DETECTED),
            pii_fields: counter(&m, &catalog::PII_FIELDS),
            category: counter(&m, &catalog::CATEGORY),
            weather_enriched: counter(&m, &catalog::WEATHER_ENRICHED),
            weather_fetch: counter(&m, &catalog::WEATHER_FETCH),
            embedding_texts: counter(&m, &catalog::EMBEDDING_TEXTS),
            embedding_duration: histogram(&m, &catalog::EMBEDDING_DURATION),
            embedding_backlog: u64_gauge(&m, &catalog::EMBEDDING_BACKLOG),
            embedding_backend: u64_gauge(&m, &catalog::EMBEDDING_BACKEND),
            quality_score: f64_gauge(&m, &catalog::QUALITY_SCORE),
            quality_weather_coverage: f64_gauge(&m, &catalog::QUALITY_WEATHER_COVERAGE),
            quality_embedding_coverage: f64_gauge(&m, &catalog::QUALITY_EMBEDDING_COVERAGE),
            quality_windows_closed: counter(&m, &catalog::QUALITY_WINDOWS_CLOSED),
            sink_rows: counter(&m, &catalog::SINK_ROWS),
            sink_objects: counter(&m, &catalog::SINK_OBJECTS),
            sink_batches: counter(&m, &catalog::SINK_BATCHES),
            sink_bytes: counter(&m, &catalog::SINK_BYTES),
            sink_errors: counter(&m, &catalog::SINK_ERRORS),
            sink_retries: counter(&m, &catalog::SINK_RETRIES),
            sink_request_duration: histogram(&m, &catalog::SINK_REQUEST_DURATION),
            kafka_lag: u64_gauge(&m, &catalog::KAFKA_LAG),
            kafka_commit_duration: histogram(&m, &catalog::KAFKA_COMMIT_DURATION),
            kafka_commit_errors: counter(&m, &catalog::KAFKA_COMMIT_ERRORS),
            epochs_in_flight: u64_gauge(&m, &catalog::EPOCHS_IN_FLIGHT),
            provider,
            registry,
        };
        Ok(Metrics { inner: Arc::new(inner) })
    }

    /// The current values in the Prometheus text exposition format 0.0.4 (what `/metrics` serves).
    ///
    /// Errors: [`MetricsError::Encode`] if the encoder fails (it only writes to memory, so in practice
    /// only on a malformed metric family).
    pub fn render(&self) -> Result<String, MetricsError> {
        let families = self.inner.registry.gather();
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&families, &mut buf).map_err(|e| MetricsError::Encode(e.to_string()))?;
        String::from_utf8(buf).map_err(|e| MetricsError::Encode(e.to_string()))
    }

    // ---- zero-initialisation: a series exists (at 0) from the start, so `rate()` and the ratio rules are
    // defined before the first event and dashboards show 0 instead of "no data".

    /// Creates the per-stream counters of `stream` at 0. `enriched` (social, market: true; weather: false)
    /// also creates the PII, weather-join and embedding counters, which only posts and orders feed.
    pub fn init_stream(&self, stream: &'static str, enriched: bool) {
        let s = [fixed("stream", stream)];
        let i = &self.inner;
        for c in [&i.records_in, &i.records_out, &i.duplicates, &i.quality_windows_closed] {
            c.add(0, &s);
        }
        if enriched {
            for c in [&i.pii_detected, &i.weather_enriched, &i.embedding_texts] {
                c.add(0, &s);
            }
        }
    }

    /// Sets worker `worker`'s epochs-in-flight gauge to 0.
    pub fn init_worker(&self, worker: usize) {
        self.epochs_in_flight(worker, 0);
    }

    /// Creates `millionx_kafka_commit_errors_total{reason="request_timed_out"}` at 0 (the usual failure of a
    /// commit), so the commit-error panel shows 0 instead of "no data" before the first failure.
    pub fn init_kafka_commits(&self) {
        self.inner.kafka_commit_errors.add(0, &[fixed("reason", "request_timed_out")]);
    }

    /// Creates the weather fetcher's `{result="ok",reason="none"}` series at 0 (call where the fetcher runs).
    pub fn init_weather_fetch(&self) {
        self.weather_fetch("ok", "none", 0);
    }

    // ---- pipeline

    /// `millionx_pipeline_records_in_total{stream}` += `n`: messages read by a source, before validation.
    pub fn records_in(&self, stream: &'static str, n: u64) {
        self.inner.records_in.add(n, &[fixed("stream", stream)]);
    }

    /// `millionx_pipeline_records_rejected_total{stream,reason}` += `n`: dead letters; `reason` is the
    /// dead letter's reason string (`Reason::as_str()`, e.g. `missing_field:postId`).
    pub fn records_rejected(&self, stream: &'static str, reason: &str, n: u64) {
        self.inner.records_rejected.add(n, &[fixed("stream", stream), owned("reason", reason)]);
    }

    /// `millionx_pipeline_records_out_total{stream}` += `n`: valid, de-duplicated records passed on.
    pub fn records_out(&self, stream: &'static str, n: u64) {
        self.inner.records_out.add(n, &[fixed("stream", stream)]);
    }

    /// `millionx_pipeline_ingestion_lag_seconds{stream}` observes `lag` = processing time − event time
    /// (pass `Duration::ZERO` for a record from the future).
    pub fn ingestion_lag(&self, stream: &'static str, lag: Duration) {
        self.inner.ingestion_lag.record(lag.as_secs_f64(), &[fixed("stream", stream)]);
    }

    // ---- operators

    /// `millionx_dedup_duplicates_total{stream}` += `n`: later copies of an already seen id.
    pub fn duplicates(&self, stream: &'static str, n: u64) {
        self.inner.duplicates.add(n, &[fixed("stream", stream)]);
    }

    /// `millionx_pii_detected_records_total{stream}` += `n`: records with `piiDetected = true`.
    pub fn pii_detected(&self, stream: &'static str, n: u64) {
        self.inner.pii_detected.add(n, &[fixed("stream", stream)]);
    }

    /// `millionx_pii_fields_anonymized_total{stream,field}` += `n`: `field` (a `piiFields` entry, e.g.
    /// `customerPhone`) dropped or replaced `n` times.
    pub fn pii_fields_anonymized(&self, stream: &'static str, field: &'static str, n: u64) {
        self.inner.pii_fields.add(n, &[fixed("stream", stream), fixed("field", field)]);
    }

    /// `millionx_category_records_total{stream,category}` += `n`: records assigned `category`
    /// (`fashion`, `electronics`, `groceries`, `home`, `beauty`, `sports`, `unknown`).
    pub fn categorised(&self, stream: &'static str, category: &'static str, n: u64) {
        self.inner.category.add(n, &[fixed("stream", stream), fixed("category", category)]);
    }

    /// `millionx_weather_enriched_records_total{stream}` += `n`: records the as-of join enriched.
    pub fn weather_enriched(&self, stream: &'static str, n: u64) {
        self.inner.weather_enriched.add(n, &[fixed("stream", stream)]);
    }

    /// `millionx_embedding_texts_total{stream}` += `n`: texts that got a vector.
    pub fn embedding_texts(&self, stream: &'static str, n: u64) {
        self.inner.embedding_texts.add(n, &[fixed("stream", stream)]);
    }

    /// `millionx_embedding_duration_seconds` observes one embedding call's latency.
    pub fn embedding_duration(&self, latency: Duration) {
        self.inner.embedding_duration.record(latency.as_secs_f64(), &[]);
    }

    /// `millionx_quality_score_ratio{stream}` = `score` (0–1) of the window that just closed.
    pub fn quality_score(&self, stream: &'static str, score: f64) {
        if score.is_finite() {
            self.inner.quality_score.record(score, &[fixed("stream", stream)]);
        }
    }

    /// `millionx_quality_weather_coverage_ratio{stream}` = `coverage` (0–1) of the window that just closed.
    pub fn quality_weather_coverage(&self, stream: &'static str, coverage: f64) {
        if coverage.is_finite() {
            self.inner.quality_weather_coverage.record(coverage, &[fixed("stream", stream)]);
        }
    }

    /// `millionx_embedding_backend_info{backend,precision}` = 1: the encoder that runs (`openvino`/`candle`,
    /// `bf16`/`f32`).
    pub fn embedding_backend(&self, backend: &'static str, precision: &'static str) {
        self.inner.embedding_backend.record(1, &[fixed("backend", backend), fixed("precision", precision)]);
    }

    /// `millionx_embedding_backlog_records` = `records` held by the embed operators, waiting for a vector.
    pub fn embedding_backlog(&self, records: u64) {
        self.inner.embedding_backlog.record(records, &[]);
    }

    /// `millionx_quality_embedding_coverage_ratio{stream}` = `coverage` (0–1) of the window that just closed.
    pub fn quality_embedding_coverage(&self, stream: &'static str, coverage: f64) {
        if coverage.is_finite() {
            self.inner.quality_embedding_coverage.record(coverage, &[fixed("stream", stream)]);
        }
    }

    /// `millionx_quality_windows_closed_total{stream}` += 1.
    pub fn quality_window_closed(&self, stream: &'static str) {
        self.inner.quality_windows_closed.add(1, &[fixed("stream", stream)]);
    }

    // ---- sources

    /// `millionx_weather_fetch_total{result,reason}` += `n`. `result`: `ok` (reason `none`), `skipped`
    /// (`unchanged`, `late`), `retried` or `error` (reason = the fetcher's `FailureReason::as_str()`).
    pub fn weather_fetch(&self, result: &'static str, reason: &'static str, n: u64) {
        self.inner.weather_fetch.add(n, &[fixed("result", result), fixed("reason", reason)]);
    }

    /// `millionx_kafka_consumer_lag_messages{topic,partition}` = `lag` (high watermark − next offset).
    pub fn kafka_consumer_lag(&self, topic: &str, partition: u32, lag: u64) {
        self.inner.kafka_lag.record(lag, &[owned("topic", topic), number("partition", u64::from(partition))]);
    }

    // ---- progress and offsets

    /// `millionx_kafka_commit_duration_seconds{worker}` observes one offset commit's latency.
    pub fn kafka_commit_duration(&self, worker: usize, latency: Duration) {
        self.inner.kafka_commit_duration.record(latency.as_secs_f64(), &[number("worker", worker as u64)]);
    }

    /// `millionx_kafka_commit_errors_total{reason}` += 1 (the Kafka error code name in snake case).
    pub fn kafka_commit_error(&self, reason: &str) {
        self.inner.kafka_commit_errors.add(1, &[owned("reason", reason)]);
    }

    /// `millionx_dataflow_epochs_in_flight{worker}` = `epochs` started but not acknowledged by every sink.
    pub fn epochs_in_flight(&self, worker: usize, epochs: u64) {
        self.inner.epochs_in_flight.record(epochs, &[number("worker", worker as u64)]);
    }

    // ---- sinks

    /// The metrics of sink `name` (bounded: the sink's name, e.g. `snowflake/SOCIAL_POSTS`,
    /// `weaviate/SocialPost`, `dlq`, `quality`). Build it once per sink operator; its label is shared, so
    /// its calls do not allocate.
    pub fn sink(&self, name: &str) -> SinkMetrics {
        SinkMetrics { metrics: self.clone(), sink: shared("sink", name) }
    }
}

/// The metrics of one sink (from [`Metrics::sink`]): every `millionx_sink_*` metric and the event→sink
/// latency, labelled `sink` = the sink's name. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct SinkMetrics {
    metrics: Metrics,
    sink: KeyValue,
}

impl SinkMetrics {
    /// Creates this sink's counters at 0: batches, bytes, retries, errors `{reason="fatal"}`, and the rows (table sinks) or objects
    /// (vector sinks) of each stream in `streams`. A configured sink that never writes then shows a flat 0,
    /// which the WeaviateSlowIngestion rule needs to see a stalled sink.
    pub fn init(&self, output: SinkOutput, streams: &[&'static str]) {
        let i = &self.metrics.inner;
        let s = std::slice::from_ref(&self.sink);
        for c in [&i.sink_batches, &i.sink_bytes, &i.sink_retries] {
            c.add(0, s);
        }
        i.sink_errors.add(0, &[self.sink.clone(), fixed("reason", "fatal")]);
        let per_stream = match output {
            SinkOutput::Rows => &i.sink_rows,
            SinkOutput::Objects => &i.sink_objects,
        };
        for stream in streams {
            per_stream.add(0, &[self.sink.clone(), fixed("stream", stream)]);
        }
    }

    /// `millionx_sink_rows_written_total{sink,stream}` += `n`: rows a table sink's service acknowledged.
    pub fn rows_written(&self, stream: &'static str, n: u64) {
        self.metrics.inner.sink_rows.add(n, &[self.sink.clone(), fixed("stream", stream)]);
    }

    /// `millionx_sink_objects_written_total{sink,stream}` += `n`: objects a vector sink acknowledged.
    pub fn objects_written(&self, stream: &'static str, n: u64) {
        self.metrics.inner.sink_objects.add(n, &[self.sink.clone(), fixed("stream", stream)]);
    }

    /// `millionx_sink_batches_written_total{sink}` += `n`: batches the sink's service acknowledged.
    pub fn batches_written(&self, n: u64) {
        self.metrics.inner.sink_batches.add(n, std::slice::from_ref(&self.sink));
    }

    /// `millionx_sink_written_bytes_total{sink}` += `bytes`: encoded body bytes of acknowledged batches
    /// (`EncodedBatch::body.len()`).
    pub fn written_bytes(&self, bytes: u64) {
        self.metrics.inner.sink_bytes.add(bytes, std::slice::from_ref(&self.sink));
    }

    /// `millionx_sink_errors_total{sink,reason}` += 1: a failed write attempt (`timeout`, `connect`,
    /// `http_429`, `http_5xx`, `http_4xx`, `auth`, `rejected`, `io`).
    pub fn error(&self, reason: &str) {
        self.metrics.inner.sink_errors.add(1, &[self.sink.clone(), owned("reason", reason)]);
    }

    /// `millionx_sink_retries_total{sink}` += `n`: attempts repeated after transient errors
    /// (`WriteOutcome::retries`).
    pub fn retries(&self, n: u64) {
        self.metrics.inner.sink_retries.add(n, std::slice::from_ref(&self.sink));
    }

    /// `millionx_sink_request_duration_seconds{sink}` observes one request attempt's latency.
    pub fn request_duration(&self, latency: Duration) {
        self.metrics.inner.sink_request_duration.record(latency.as_secs_f64(), std::slice::from_ref(&self.sink));
    }

    /// `millionx_pipeline_event_to_sink_latency_seconds{sink}` observes `latency` = acknowledgement time −
    /// the record's `ingest_ns` (the same sample the hdrhistogram profile records).
    pub fn event_to_sink_latency(&self, latency: Duration) {
        self.metrics.inner.event_to_sink_latency.record(latency.as_secs_f64(), std::slice::from_ref(&self.sink));
    }
}
