//! MillionX metrics: OpenTelemetry SDK instruments, exported by the OpenTelemetry Prometheus exporter and
//! served on `/metrics` (default `127.0.0.1:9464`).
//!
//! - [`Metrics`]: the typed handle, one method per metric of [`catalog::CATALOG`]; clone it into every worker.
//!   [`SinkMetrics`] ([`Metrics::sink`]) carries the `millionx_sink_*` metrics of one sink.
//! - [`MetricsServer`]: the HTTP endpoint (tiny_http, one thread).
//! - [`MetricsConfig`] / [`MetricsArgs`]: the `[metrics]` TOML table and `--metrics-listen` / `--no-metrics`.
//! - [`start`]: all three together, the entry point the binary calls.
//!
//! ```
//! use std::time::Duration;
//! let metrics = millionx_metrics::Metrics::new()?;
//! metrics.init_stream("social", true);
//! metrics.records_in("social", 512);
//! metrics.records_rejected("social", "missing_field:postId", 3);
//! let snowflake = metrics.sink("snowflake/SOCIAL_POSTS");
//! snowflake.request_duration(Duration::from_millis(180));
//! let text = metrics.render()?;
//! assert!(text.contains("millionx_pipeline_records_in_total{stream=\"social\"} 512"));
//! assert!(text.contains("millionx_sink_request_duration_seconds_bucket{sink=\"snowflake/SOCIAL_POSTS\",le=\"0.25\"} 1"));
//! # Ok::<(), millionx_metrics::MetricsError>(())
//! ```
//!
//! The catalog with every name, label and meaning is `ops/METRICS.md` (generated from [`catalog`]).

pub mod catalog;
pub mod config;
mod handle;
pub mod label;
pub mod server;

pub use config::{MetricsArgs, MetricsConfig, DEFAULT_LISTEN};
pub use handle::{Metrics, SinkMetrics, SinkOutput, CARDINALITY_LIMIT};
pub use server::MetricsServer;

/// Errors of this crate. None carries personal data: messages hold addresses, keys and library errors.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A configuration value is wrong; `key` is the dotted TOML key or the flag.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// `metrics.listen`, `--metrics-listen`, …
        key: String,
        /// What is wrong and what a valid value looks like.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot serve /metrics on {addr}: {reason}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The operating system's reason (address in use, permission denied, …).
        reason: String,
    },
    /// The OpenTelemetry Prometheus exporter could not be built.
    #[error("metrics exporter: {0}")]
    Exporter(String),
    /// The text encoder failed.
    #[error("metrics encoding: {0}")]
    Encode(String),
    /// The server thread could not be spawned.
    #[error("metrics server thread: {0}")]
    Thread(String),
}

/// Builds the [`Metrics`] handle and, when `config.enabled`, serves it on `config.listen`. Call once at
/// start, after config validation and before the dataflow starts; keep the server alive for the run (drop
/// it after the final flush so the last scrape sees the final counts).
///
/// Errors: [`MetricsError::Config`] for a bad `metrics.listen`, [`MetricsError::Bind`] when the address
/// cannot be bound, [`MetricsError::Exporter`] / [`MetricsError::Thread`] otherwise.
pub fn start(config: &MetricsConfig) -> Result<(Metrics, Option<MetricsServer>), MetricsError> {
    let listen = config.listen_addr()?;
    let metrics = Metrics::new()?;
    let server = if config.enabled { Some(MetricsServer::start(listen, metrics.clone())?) } else { None };
    Ok((metrics, server))
}
