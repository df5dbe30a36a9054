//! The metric catalog: every metric MillionX exports, with its exposition name, type, labels, unit,
//! meaning, bucket bounds and the code that emits it. `ops/METRICS.md` is generated from [`CATALOG`]
//! (a test fails when it is stale) and every `millionx_*` name in the dashboards and alert rules must be here.
//!
//! Names follow `millionx_<component>_<name>_<unit>`; counters end in `_total` exactly once. The
//! OpenTelemetry instrument is created with the name minus `_total` and minus the unit suffix, plus the UCUM
//! unit (`s`, `By`, `1`), and the Prometheus exporter appends the unit suffix and `_total` again
//! (OpenTelemetry "Prometheus and OpenMetrics Compatibility" spec), so the exposed name is exactly
//! [`MetricSpec::name`].

/// The instrument type as exposed to Prometheus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter (`_total`); query with `rate()` / `increase()`.
    Counter,
    /// Last-value gauge.
    Gauge,
    /// Explicit-bucket histogram (`_bucket`, `_sum`, `_count`); query with `histogram_quantile()`.
    Histogram,
}

impl Kind {
    /// The Prometheus `# TYPE` word: `counter`, `gauge`, `histogram`.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric of the catalog.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricSpec {
    /// Exposition name, e.g. `millionx_sink_request_duration_seconds`.
    pub name: &'static str,
    /// Instrument type.
    pub kind: Kind,
    /// UCUM unit given to the OpenTelemetry instrument: `s`, `By`, `1` (ratio), or an annotation such
    /// as `{record}` that adds no suffix.
    pub unit: &'static str,
    /// Label names, in the order the emitting method takes them. Values are bounded (see `ops/METRICS.md`).
    pub labels: &'static [&'static str],
    /// Meaning (the `# HELP` text).
    pub help: &'static str,
    /// The code that emits it (crate / operator).
    pub emitted_by: &'static str,
    /// Histogram bucket upper bounds in the metric's unit; empty for counters and gauges.
    pub buckets: &'static [f64],
}

impl MetricSpec {
    /// The exposition suffix the exporter derives from [`MetricSpec::unit`] (`_seconds`, `_bytes`,
    /// `_ratio`), or `""` for annotations.
    pub fn unit_suffix(&self) -> &'static str {
        match self.unit {
            "s" => "_seconds",
            "By" => "_bytes",
            "1" => "_ratio",
            _ => "",
        }
    }

    /// The OpenTelemetry instrument name: [`MetricSpec::name`] without `_total` (counters) and without
    /// the unit suffix, which the exporter adds back.
    pub fn instrument_name(&self) -> &'static str {
        let mut name = self.name;
        if self.kind == Kind::Counter {
            name = name.strip_suffix("_total").unwrap_or(name);
        }
        name.strip_suffix(self.unit_suffix()).unwrap_or(name)
    }
}

/// Sink request latency bounds, s: 5 ms (a local file flush) to 60 s (a Snowflake MERGE of a full batch).
pub const SINK_REQUEST_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Embedding call latency bounds, s. 0.2 s is a bound: it is the EmbeddingServiceHighLatency threshold,
/// so `histogram_quantile` decides that alert from bucket counts, not from interpolation across it.
pub const EMBEDDING_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0];
/// Kafka offset-commit latency bounds, s (a commit is one broker round trip; 10 s is the client timeout range).
pub const COMMIT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Read → sink-acknowledgement latency bounds, s. 60 s (the default batch `max_age_ms`) is a bound.
pub const EVENT_TO_SINK_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Ingestion lag (processing time − event time) bounds, s: 1 s to 7 days (the de-duplication horizon).
/// 60 s is a bound: it is the HighIngestionLag threshold. 10,800 s is the 3 h allowed lateness.
pub const INGESTION_LAG_BUCKETS: &[f64] =
    &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 86400.0, 604800.0];

/// A counter or gauge (no buckets).
const fn scalar(
    kind: Kind,
    name: &'static str,
    unit: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    emitted_by: &'static str,
) -> MetricSpec {
    MetricSpec { name, kind, unit, labels, help, emitted_by, buckets: &[] }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    emitted_by: &'static str,
    buckets: &'static [f64],
) -> MetricSpec {
    MetricSpec { name, kind: Kind::Histogram, unit: "s", labels, help, emitted_by, buckets }
}

/// `millionx_pipeline_records_in_total{stream}`
pub const RECORDS_IN: MetricSpec = scalar(
    Kind::Counter,
    "millionx_pipeline_records_in_total",
    "{record}",
    &["stream"],
    "Messages read by the sources (Kafka messages, JSON Lines lines), before validation.",
    "sources (Kafka reader, file replay), per read batch",
);
/// `millionx_pipeline_records_rejected_total{stream,reason}`
pub const RECORDS_REJECTED: MetricSpec = scalar(
    Kind::Counter,
    "millionx_pipeline_records_rejected_total",
    "{record}",
    &["stream", "reason"],
    "Dead letters by reason: validation reasons of PIPELINE.md, source reasons (too_large, missing_key; a non-UTF-8 payload is parse_error) and sink_rejected:<sink>:<code>.",
    "graph dead-letter output, per batch: validation, source and sink (permanent per-record failure) dead letters",
);
/// `millionx_pipeline_records_out_total{stream}`
pub const RECORDS_OUT: MetricSpec = scalar(
    Kind::Counter,
    "millionx_pipeline_records_out_total",
    "{record}",
    &["stream"],
    "Valid, de-duplicated records that left the enrichment stages for the sinks.",
    "graph observations (Emitted), per batch",
);
/// `millionx_pipeline_ingestion_lag_seconds{stream}`
pub const INGESTION_LAG: MetricSpec = histogram(
    "millionx_pipeline_ingestion_lag_seconds",
    &["stream"],
    "Processing time minus event time when a record enters its data-quality window (PIPELINE.md ingestion lag); negative lags count as 0.",
    "operators quality windows",
    INGESTION_LAG_BUCKETS,
);
/// `millionx_pipeline_event_to_sink_latency_seconds{sink}`
pub const EVENT_TO_SINK_LATENCY: MetricSpec = histogram(
    "millionx_pipeline_event_to_sink_latency_seconds",
    &["sink"],
    "From a source reading a record (RawLine.ingest_ns) to the sink acknowledging the batch holding it; the exported view of the hdrhistogram latency profile.",
    "sink driver (sinks/util), per acknowledged batch item",
    EVENT_TO_SINK_BUCKETS,
);
/// `millionx_dedup_duplicates_total{stream}`
pub const DUPLICATES: MetricSpec = scalar(
    Kind::Counter,
    "millionx_dedup_duplicates_total",
    "{record}",
    &["stream"],
    "Valid records dropped because their id was already seen (first one wins).",
    "operators dedup",
);
/// `millionx_pii_detected_records_total{stream}`
pub const PII_DETECTED: MetricSpec = scalar(
    Kind::Counter,
    "millionx_pii_detected_records_total",
    "{record}",
    &["stream"],
    "Records whose free text held a phone number or e-mail address (piiDetected = true).",
    "operators anonymise",
);
/// `millionx_pii_fields_anonymized_total{stream,field}`
pub const PII_FIELDS: MetricSpec = scalar(
    Kind::Counter,
    "millionx_pii_fields_anonymized_total",
    "{field}",
    &["stream", "field"],
    "Personal fields dropped or replaced, by field (the piiFields entries: authorId, authorName, customerId, customerPhone, customerEmail, content).",
    "operators anonymise",
);
/// `millionx_category_records_total{stream,category}`
pub const CATEGORY: MetricSpec = scalar(
    Kind::Counter,
    "millionx_category_records_total",
    "{record}",
    &["stream", "category"],
    "Records by assigned product category (fashion … sports, unknown).",
    "operators categorise",
);
/// `millionx_weather_enriched_records_total{stream}`
pub const WEATHER_ENRICHED: MetricSpec = scalar(
    Kind::Counter,
    "millionx_weather_enriched_records_total",
    "{record}",
    &["stream"],
    "Records the weather as-of join enriched (enriched = true); coverage = this / records_out.",
    "operators weather as-of join",
);
/// `millionx_weather_fetch_total{result,reason}`
pub const WEATHER_FETCH: MetricSpec = scalar(
    Kind::Counter,
    "millionx_weather_fetch_total",
    "{fetch}",
    &["result", "reason"],
    "Weather fetches per city and round by result and reason (sources/weather FetchCounters): ok/none, skipped/unchanged|late, retried/<FailureReason>, error/<FailureReason> (unauthorized, not_found, rate_limited, server_error, timeout, …).",
    "sources/weather fetcher",
);
/// `millionx_embedding_texts_total{stream}`
pub const EMBEDDING_TEXTS: MetricSpec = scalar(
    Kind::Counter,
    "millionx_embedding_texts_total",
    "{text}",
    &["stream"],
    "Texts embedded (one per record that got a vector); coverage = this / records_out.",
    "operators embed",
);
/// `millionx_embedding_duration_seconds`
pub const EMBEDDING_DURATION: MetricSpec = histogram(
    "millionx_embedding_duration_seconds",
    &[],
    "Latency of one embedding call (a batch of texts through all-MiniLM-L6-v2).",
    "operators embed",
    EMBEDDING_BUCKETS,
);
/// `millionx_embedding_backlog_records`
pub const EMBEDDING_BACKLOG: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_embedding_backlog_records",
    "{record}",
    &[],
    "Records the embed operators of this process hold, waiting for their vector (they leave with one, or without at the deadline). Rising: embedding is not keeping up.",
    "operators embed (sampled by the worker loop)",
);
/// `millionx_embedding_backend_info{backend,precision}`
pub const EMBEDDING_BACKEND: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_embedding_backend_info",
    "{encoder}",
    &["backend", "precision"],
    "1 for the encoder that computes the vectors of this process: backend openvino or candle, precision bf16 or f32 (absent while embeddings are off).",
    "operators embed (set at start)",
);
/// `millionx_quality_score_ratio{stream}`
pub const QUALITY_SCORE: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_quality_score_ratio",
    "1",
    &["stream"],
    "quality_score of the last closed data-quality window (0.4 × valid/received + 0.3 × embedding coverage + 0.3 × (1 − rejected/received)).",
    "operators quality windows, when a window closes",
);
/// `millionx_quality_weather_coverage_ratio{stream}`
pub const QUALITY_WEATHER_COVERAGE: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_quality_weather_coverage_ratio",
    "1",
    &["stream"],
    "Weather coverage (enriched / valid) of the last closed data-quality window.",
    "operators quality windows, when a window closes",
);
/// `millionx_quality_embedding_coverage_ratio{stream}`
pub const QUALITY_EMBEDDING_COVERAGE: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_quality_embedding_coverage_ratio",
    "1",
    &["stream"],
    "Embedding coverage (embedded / valid) of the last closed data-quality window.",
    "operators quality windows, when a window closes",
);
/// `millionx_quality_windows_closed_total{stream}`
pub const QUALITY_WINDOWS_CLOSED: MetricSpec = scalar(
    Kind::Counter,
    "millionx_quality_windows_closed_total",
    "{window}",
    &["stream"],
    "Data-quality windows (one event-time hour) closed by the watermark.",
    "operators quality windows",
);
/// `millionx_sink_rows_written_total{sink,stream}`
pub const SINK_ROWS: MetricSpec = scalar(
    Kind::Counter,
    "millionx_sink_rows_written_total",
    "{row}",
    &["sink", "stream"],
    "Table rows acknowledged by a table sink (Snowflake, file).",
    "sinks snowflake, file (after the write is acknowledged)",
);
/// `millionx_sink_objects_written_total{sink,stream}`
pub const SINK_OBJECTS: MetricSpec = scalar(
    Kind::Counter,
    "millionx_sink_objects_written_total",
    "{object}",
    &["sink", "stream"],
    "Vector objects acknowledged by a vector sink (Weaviate).",
    "sinks weaviate (after the batch is acknowledged)",
);
/// `millionx_sink_batches_written_total{sink}`
pub const SINK_BATCHES: MetricSpec = scalar(
    Kind::Counter,
    "millionx_sink_batches_written_total",
    "{batch}",
    &["sink"],
    "Batches acknowledged by the sink's service.",
    "sink driver (sinks/util)",
);
/// `millionx_sink_written_bytes_total{sink}`
pub const SINK_BYTES: MetricSpec = scalar(
    Kind::Counter,
    "millionx_sink_written_bytes_total",
    "By",
    &["sink"],
    "Encoded request-body bytes of acknowledged batches.",
    "sink driver (sinks/util)",
);
/// `millionx_sink_errors_total{sink,reason}`
pub const SINK_ERRORS: MetricSpec = scalar(
    Kind::Counter,
    "millionx_sink_errors_total",
    "{error}",
    &["sink", "reason"],
    "Failed write attempts by reason (timeout, connect, http_429, http_5xx, http_4xx, auth, rejected).",
    "sink services (snowflake, weaviate, file)",
);
/// `millionx_sink_retries_total{sink}`
pub const SINK_RETRIES: MetricSpec = scalar(
    Kind::Counter,
    "millionx_sink_retries_total",
    "{retry}",
    &["sink"],
    "Write attempts repeated after a transient error (jittered exponential backoff).",
    "sink driver retry logic (sinks/util)",
);
/// `millionx_sink_request_duration_seconds{sink}`
pub const SINK_REQUEST_DURATION: MetricSpec = histogram(
    "millionx_sink_request_duration_seconds",
    &["sink"],
    "Latency of one sink request (one attempt: HTTP round trip or file write + fsync).",
    "sink services (snowflake, weaviate, file)",
    SINK_REQUEST_BUCKETS,
);
/// `millionx_kafka_consumer_lag_messages{topic,partition}`
pub const KAFKA_LAG: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_kafka_consumer_lag_messages",
    "{message}",
    &["topic", "partition"],
    "High watermark minus the next offset to read, per assigned partition.",
    "sources/kafka reader (from the client's statistics or watermark queries)",
);
/// `millionx_kafka_commit_duration_seconds{worker}`
pub const KAFKA_COMMIT_DURATION: MetricSpec = histogram(
    "millionx_kafka_commit_duration_seconds",
    &["worker"],
    "Latency of one offset commit (the resume frontier of a worker's partitions).",
    "offset-commit coordinator (dataflow)",
    COMMIT_BUCKETS,
);
/// `millionx_kafka_commit_errors_total{reason}`
pub const KAFKA_COMMIT_ERRORS: MetricSpec = scalar(
    Kind::Counter,
    "millionx_kafka_commit_errors_total",
    "{error}",
    &["reason"],
    "Failed offset commits by reason (the Kafka error code name, e.g. rebalance_in_progress, request_timed_out).",
    "offset-commit coordinator (dataflow)",
);
/// `millionx_dataflow_epochs_in_flight{worker}`
pub const EPOCHS_IN_FLIGHT: MetricSpec = scalar(
    Kind::Gauge,
    "millionx_dataflow_epochs_in_flight",
    "{epoch}",
    &["worker"],
    "Epochs a worker's sources have started that not every sink has acknowledged (backpressure stops at max_epochs_in_flight).",
    "sources / progress probe (dataflow)",
);

/// Every metric, in catalog order.
pub const CATALOG: &[MetricSpec] = &[
    RECORDS_IN,
    RECORDS_REJECTED,
    RECORDS_OUT,
    INGESTION_LAG,
    EVENT_TO_SINK_LATENCY,
    DUPLICATES,
    PII_DETECTED,
    PII_FIELDS,
    CATEGORY,
    WEATHER_ENRICHED,
    WEATHER_FETCH,
    EMBEDDING_TEXTS,
    EMBEDDING_DURATION,
    EMBEDDING_BACKLOG,
    EMBEDDING_BACKEND,
    QUALITY_SCORE,
    QUALITY_WEATHER_COVERAGE,
    QUALITY_EMBEDDING_COVERAGE,
    QUALITY_WINDOWS_CLOSED,
    SINK_ROWS,
    SINK_OBJECTS,
    SINK_BATCHES,
    SINK_BYTES,
    SINK_ERRORS,
    SINK_RETRIES,
    SINK_REQUEST_DURATION,
    KAFKA_LAG,
    KAFKA_COMMIT_DURATION,
    KAFKA_COMMIT_ERRORS,
    EPOCHS_IN_FLIGHT,
];

/// Looks a metric up by exposition name; histogram series names (`_bucket`, `_sum`, `_count`) resolve
/// to their histogram.
pub fn find(series_name: &str) -> Option<&'static MetricSpec> {
    CATALOG.iter().find(|m| m.name == series_name).or_else(|| {
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = series_name.strip_suffix(suffix)?;
            CATALOG.iter().find(|m| m.kind == Kind::Histogram && m.name == base)
        })
    })
}

/// The catalog as a Markdown table (the generated part of `ops/METRICS.md`).
pub fn markdown_table() -> String {
    let mut out = String::from("| name | type | labels | unit | meaning | emitted by |\n|---|---|---|---|---|---|\n");
    for m in CATALOG {
        let labels = if m.labels.is_empty() { "—".to_owned() } else { m.labels.join(", ") };
        let unit = match m.unit {
            "s" => "seconds".to_owned(),
            "By" => "bytes".to_owned(),
            "1" => "ratio 0–1".to_owned(),
            other => other.trim_matches(|c| c == '{' || c == '}').to_owned() + "s",
        };
        let mut meaning = m.help.to_owned();
        if !m.buckets.is_empty() {
            let bounds: Vec<String> = m.buckets.iter().map(|b| b.to_string()).collect();
            meaning.push_str(&format!(" Buckets (s): {}.", bounds.join(", ")));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            m.name,
            m.kind.prometheus_type(),
            labels,
            unit,
            meaning.replace('|', "\\|"),
            m.emitted_by
        ));
    }
    out
}
