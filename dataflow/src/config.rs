//! The run configuration: one TOML file, unknown keys rejected, validated before any I/O. This is the
//! reference of every key and default of the run file (`millionx run|validate --config`); the connector
//! tables are parsed by their crates through [`ConnectorConfig`], the core tables here.
//!
//! Rules every table follows:
//! - an error is one [`ConfigError`] naming the key by its dotted path from the file's root
//!   (`snowflake.batch.max_records`), the flag (`--brokers`) or the environment variable;
//! - one batch policy ([`BatchConfig`]: `max_records`, `max_bytes`, `max_age_ms`, `linger_ms`) and one retry
//!   policy ([`RetryConfig`]: `max_retries`, `initial_backoff_ms`, `max_backoff_ms`) with the same keys
//!   everywhere. A sink's `[<sink>.batch]` sets keys over the file's `[batch]`, which sets keys over the
//!   sink's own defaults ([`policy`]);
//! - environment overlays are read through one [`Env`] (tests inject one); secrets come only from the
//!   environment or a file, never from the TOML itself;
//! - flags override the environment, which overrides the file, except that `WEAVIATE_URL` only applies when
//!   the file has no `[weaviate]` table.
//!
//! ```toml
//! [input]
//! dir = "data/sample"          # social.jsonl, market.jsonl, weather.jsonl (--input overrides)
//! epoch_lines = 4096           # file replay: lines per epoch (≥ 1)
//! max_epochs_in_flight = 8     # backpressure: a source waits while this many epochs are unfinished (≥ 1)
//! max_message_bytes = 1048576  # a longer line is a dead letter `too_large` (≥ 1024)
//!
//! [output]
//! dir = "out"                  # --out overrides
//!
//! [batch]                      # the file sinks; every other sink layers its [<sink>.batch] over these keys
//! max_records = 1000           # ≥ 1
//! max_bytes = 8388608          # 8 MiB, ≥ 1024
//! max_age_ms = 60000           # ≥ 1
//! linger_ms = 500              # a batch whose oldest epoch is complete upstream waits at most this long
//!
//! [dedup]
//! horizon_hours = 168          # state older than this (event time) is forgotten (≥ 1)
//!
//! [watermark]                  # allowed lateness, ms (≤ 7 days)
//! social_lateness_ms = 10800000
//! market_lateness_ms = 10800000
//! weather_lateness_ms = 0
//!
//! [join]
//! max_weather_age_ms = 10800000  # a reading older than 3 h does not enrich (≥ 1)
//!
//! [metrics]
//! enabled = true
//! listen = "127.0.0.1:9464"    # IP:port; MILLIONX_METRICS_LISTEN, then --metrics-listen / --no-metrics override
//!
//! [embed]                      # operators/embed/src/config.rs
//! mode = "auto"                # auto | on | off (--embed overrides)
//! backend = "auto"             # auto | openvino | candle (--embed-backend overrides)
//! deadline_ms = 60000          # 1..=3600000; a record waits at most this long for its vector (--embed-deadline-ms)
//! batch_size = 32              # texts per submission to the pool (≥ 1)
//! max_batch_delay_ms = 50      # a text waits at most this long for its submission to fill
//! max_submit_per_activation = 512  # ≥ 1
//! threads = 2                  # model threads (≥ 1); default: the number of CPUs
//! queue_capacity = 4096        # texts waiting for a model thread (≥ 1)
//! max_batch = 32               # texts per model batch (≥ 1)
//! cache_capacity = 50000       # vectors in the LRU cache; 0 = off
//! # model_dir = "/models/all-MiniLM-L6-v2"  # MILLIONX_MODEL_DIR overrides; unset: ~/.cache/millionx/...
//!
//! [kafka]                      # dataflow/kafka/src/config.rs (--source kafka; --brokers, --group override)
//! brokers = "127.0.0.1:9092"
//! group = "millionx"
//! social_topic = "validated.social"
//! market_topic = "validated.market"
//! weather_topic = "context.weather"
//! dlq_topic = "dlq.millionx"
//! produce_dlq = false          # dead letters to dlq_topic instead of files (--produce-dlq)
//! dlq_brokers = ""             # empty: brokers
//! auto_offset_reset = "earliest"  # earliest | latest
//! epoch_messages = 4096        # ≥ 1
//! max_poll_records = 1024      # ≥ 1
//! max_epochs_unacknowledged = 8  # ≥ 1
//! idle_ms = 5000               # ≥ 1
//! exit_at_end = false          # --exit-at-end
//! fetch_buffer_kib = 16384     # ≥ 1
//! fetch_wait_max_ms = 500      # 1..=10000
//! fetch_min_bytes = 1          # 1..=100000000
//! request_timeout_ms = 10000   # ≥ 100
//! delivery_timeout_ms = 300000 # 1000..=900000
//!
//! [weaviate]                   # sinks/weaviate/src/config.rs (absent: defaults, url from WEAVIATE_URL)
//! url = "http://127.0.0.1:8080"
//! # api_key_file = "/run/secrets/weaviate-api-key"  # else WEAVIATE_API_KEY; unset: no auth
//! # consistency_level = "QUORUM"  # ONE | QUORUM | ALL; unset: the server's default
//! max_in_flight = 2            # 1..=64
//! connect_timeout_ms = 5000    # 1..=600000
//! request_timeout_ms = 60000   # connect_timeout_ms..=3600000
//! vector_dimensions = 384      # 1..=65536
//! split_after_timeouts = 2     # consecutive timeouts before a request is halved (≥ 1)
//! [weaviate.batch]             # over [batch]; max_records ≤ 10000, max_bytes ≤ 256 MiB
//! max_records = 100
//! max_bytes = 8388608
//! max_age_ms = 5000
//! linger_ms = 500
//! [weaviate.retry]             # max_retries ≤ 1000, per batch
//! max_retries = 10
//! initial_backoff_ms = 200
//! max_backoff_ms = 30000
//!
//! [snowflake]                  # sinks/snowflake/src/config.rs (required with --sink snowflake)
//! account = "myorg-account1"   # required
//! user = "MILLIONX_LOADER"     # required
//! # host = "https://myorg-account1.snowflakecomputing.com"  # default from account
//! role = "MILLIONX_LOADER"
//! warehouse = "MILLIONX_WH"
//! database = "MILLIONX"
//! schema = "RAW_DATA"
//! method = "sql_batch"         # sql_batch | snowpipe_streaming (needs key_pair)
//! [snowflake.auth]             # required
//! type = "key_pair"            # key_pair | password
//! private_key = { file = "/run/secrets/snowflake_rsa_key.p8" }  # or { env = "VAR" }
//! # passphrase = { env = "SNOWFLAKE_KEY_PASSPHRASE" }
//! # password = { env = "SNOWFLAKE_PASSWORD" }               # with type = "password"
//! [snowflake.batch]            # over [batch]; max_records ≤ 100000, max_bytes ≤ 15 MiB (16 MB VARIANT limit)
//! max_records = 1000
//! max_bytes = 8388608
//! max_age_ms = 60000
//! linger_ms = 500
//! [snowflake.retry]            # max_retries ≤ 100
//! max_retries = 10
//! initial_backoff_ms = 200
//! max_backoff_ms = 10000
//! [snowflake.sql]
//! max_in_flight = 2            # 1..=16
//! statement_timeout_ms = 120000  # ≥ 1000
//! [snowflake.streaming]
//! pipe_suffix = "-STREAMING"
//! channel_prefix = "MILLIONX"
//! commit_poll_ms = 250         # ≥ 10
//! commit_timeout_ms = 120000   # ≥ 1000
//! max_in_flight = 4            # 1..=64
//!
//! [weather]                    # sources/weather/src/config.rs (run --weather owm, weather fetch)
//! base_url = "https://api.openweathermap.org"  # http only to loopback (--weather-base-url / --base-url)
//! timeout_ms = 10000           # 1..=300000
//! connect_timeout_ms = 5000    # 1..=300000
//! spacing_ms = 1100            # 0..=3600000, between request starts
//! max_retry_after_ms = 120000  # 0..=3600000
//! max_distance_km = 25.0       # (0, 500]
//! every = "1h"                 # ≥ 1m (--weather-every)
//! cities = ["Dhaka", "Chittagong", "Sylhet", "Khulna", "Rajshahi", "Barisal", "Rangpur", "Mymensingh"]
//! [weather.city_ids]           # optional: Dhaka = 1185241
//! [weather.retry]              # max_retries ≤ 10
//! max_retries = 3
//! initial_backoff_ms = 1000
//! max_backoff_ms = 30000
//!
//! [state]                      # Kafka source: durable operator state (see `crate::checkpoint`)
//! # dir = "out/state"          # default: <output.dir>/state
//! checkpoint_epochs = 4        # a snapshot every this many epochs
//! ```
//!
//! Every retry policy also caps `initial_backoff_ms` and `max_backoff_ms` at 3,600,000 (1 h).
//! Secrets from the environment: `MILLIONX_PII_KEY` / `MILLIONX_PII_KEY_FILE`, `WEAVIATE_API_KEY`,
//! `OPENWEATHER_API_KEY` / `OPENWEATHER_API_KEY_FILE`, and the variables `[snowflake.auth]` names.

mod connector;
mod env;
pub mod policy;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::record::StreamKind;

pub use connector::{parse_table, table_of, ConnectorConfig};
pub use env::Env;
pub use policy::{BatchConfig, RetryConfig, Shared};

/// Environment variable overriding `metrics.listen` (containers, parallel test runs); the
/// `--metrics-listen` / `--no-metrics` flags override it in turn.
pub const METRICS_LISTEN_ENV: &str = "MILLIONX_METRICS_LISTEN";

/// Sets `metrics.listen` from [`METRICS_LISTEN_ENV`] when that is set (the overlay of every command that
/// serves `/metrics`).
pub fn apply_metrics_env(metrics: &mut millionx_metrics::MetricsConfig, env: &Env) {
    if let Some(listen) = env.get(METRICS_LISTEN_ENV) {
        metrics.listen = listen;
    }
}

/// A configuration error: the offending key (dotted path) and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config key `{key}`: {reason}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `batch.max_records`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error for `key` (dotted path, flag or environment variable).
    pub fn new(key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError { key: key.to_owned(), reason: reason.into() }
    }

    /// The same error with `table.` in front of its key (a connector's table inside the run file).
    pub fn within(self, table: &str) -> ConfigError {
        ConfigError { key: format!("{table}.{}", self.key), reason: self.reason }
    }
}

/// Deserializes TOML text into `T`. Errors: a syntax error (key `(syntax)`, the reason gives line and
/// column), or what [`from_toml_value`] reports.
pub fn from_toml_text<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let value: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::new("(syntax)", e.to_string().replace('\n', " ").trim().to_owned()))?;
    from_toml_value(toml::Value::Table(value))
}

/// Deserializes an already-parsed TOML table into `T`, naming the failing key by its dotted path from
/// the table's root (`batch.max_records`; for an unknown key, the unknown key itself:
/// `batch.max_recods`). Errors: unknown keys (under `deny_unknown_fields`), wrong types, bad values
/// rejected by a field's own `Deserialize`.
pub fn from_toml_value<T: DeserializeOwned>(value: toml::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let reason = e.inner().message().replace('\n', " ").trim().to_owned();
        let mut key = String::new();
        let mut last = None;
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                other => {
                    let name = other.to_string();
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(&name);
                    last = Some(name);
                }
            }
        }
        let named = ["unknown field `", "missing field `"].iter().find_map(|p| reason.strip_prefix(p));
        if let Some(unknown) = named.and_then(|r| r.split('`').next()) {
            if last.as_deref() != Some(unknown) {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(unknown);
            }
        }
        if key.is_empty() {
            key.push_str("(root)");
        }
        ConfigError { key, reason }
    })
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Input settings.
    pub input: InputConfig,
    /// Output settings.
    pub output: OutputConfig,
    /// `[batch]`: the file sinks' batch policy, and the keys every other sink layers under its own
    /// `[<sink>.batch]` ([`policy`]).
    pub batch: BatchConfig,
    /// De-duplication.
    pub dedup: DedupConfig,
    /// Watermarks.
    pub watermark: WatermarkConfig,
    /// Weather join.
    pub join: JoinConfig,
    /// `[metrics]`: whether and where `/metrics` is served (`enabled`, `listen`; see `millionx_metrics::config`).
    pub metrics: millionx_metrics::MetricsConfig,
    /// `[state]`: checkpoints of the operator state (Kafka source).
    pub state: StateConfig,
}

/// `[state]`: where and how often the operator state of a Kafka-fed run is checkpointed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Folder of the snapshot files (`p<process>.redb`); `None`: `<output.dir>/state`.
    pub dir: Option<PathBuf>,
    /// Epochs between two snapshots (1–1,000,000). Default 4.
    pub checkpoint_epochs: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { dir: None, checkpoint_epochs: 4 }
    }
}

/// `[input]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Folder holding `social.jsonl`, `market.jsonl`, `weather.jsonl`.
    pub dir: PathBuf,
    /// Lines per epoch in file replay (≥ 1).
    pub epoch_lines: u64,
    /// Epochs a source may run ahead of the slowest finished stage (≥ 1).
    pub max_epochs_in_flight: u64,
    /// Largest accepted message, bytes (a longer line is a dead letter `too_large`).
    pub max_message_bytes: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            dir: PathBuf::from("data/sample"),
            epoch_lines: 4096,
            max_epochs_in_flight: 8,
            max_message_bytes: 1 << 20,
        }
    }
}

/// `[output]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Output folder of the file sinks.
    pub dir: PathBuf,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { dir: PathBuf::from("out") }
    }
}

/// `[dedup]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Event-time horizon of the de-duplication state, hours (≥ 1). Default 168 (7 days).
    pub horizon_hours: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig { horizon_hours: 168 }
    }
}

/// `[watermark]`: allowed lateness per stream, ms.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkConfig {
    /// Social posts. Default 3 h (the reference data's late records are up to 3 h behind).
    pub social_lateness_ms: u64,
    /// Market orders. Default 3 h.
    pub market_lateness_ms: u64,
    /// Weather readings. Default 0 (the fetcher publishes in order).
    pub weather_lateness_ms: u64,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig { social_lateness_ms: 3 * 3_600_000, market_lateness_ms: 3 * 3_600_000, weather_lateness_ms: 0 }
    }
}

impl WatermarkConfig {
    /// Allowed lateness per stream in ms, for [`crate::watermark::Watermarks::new`].
    pub fn lateness(&self) -> [(StreamKind, i64); 3] {
        [
            (StreamKind::Social, self.social_lateness_ms as i64),
            (StreamKind::Market, self.market_lateness_ms as i64),
            (StreamKind::Weather, self.weather_lateness_ms as i64),
        ]
    }
}

/// `[join]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// Oldest reading that may enrich a record, ms before its event time. Default 3 h (PIPELINE.md).
    pub max_weather_age_ms: u64,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig { max_weather_age_ms: 3 * 3_600_000 }
    }
}

const MAX_LATENESS_MS: u64 = 7 * 24 * 3_600_000;

impl Config {
    /// Parses TOML text. Errors: syntax, unknown keys, wrong types (the message names the key),
    /// then [`Config::validate`].
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = from_toml_text(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Takes the already-parsed file (connector tables removed), applies the environment overlay
    /// ([`Config::apply_env`]) and validates it, as [`Config::from_toml`].
    pub fn from_table(table: toml::Table, env: &Env) -> Result<Config, ConfigError> {
        let mut config: Config = from_toml_value(toml::Value::Table(table))?;
        config.apply_env(env);
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text)
    }

    /// The environment overlay: `MILLIONX_METRICS_LISTEN` ([`apply_metrics_env`]).
    pub fn apply_env(&mut self, env: &Env) {
        apply_metrics_env(&mut self.metrics, env);
    }

    /// Checks every value's range. Pure: no I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.input.epoch_lines == 0 {
            return Err(ConfigError::new("input.epoch_lines", "must be at least 1"));
        }
        if self.input.max_epochs_in_flight == 0 {
            return Err(ConfigError::new("input.max_epochs_in_flight", "must be at least 1"));
        }
        if self.input.max_message_bytes < 1024 {
            return Err(ConfigError::new("input.max_message_bytes", "must be at least 1024"));
        }
        self.batch.validate("batch", usize::MAX, usize::MAX)?;
        if self.dedup.horizon_hours == 0 {
            return Err(ConfigError::new("dedup.horizon_hours", "must be at least 1"));
        }
        for (key, v) in [
            ("watermark.social_lateness_ms", self.watermark.social_lateness_ms),
            ("watermark.market_lateness_ms", self.watermark.market_lateness_ms),
            ("watermark.weather_lateness_ms", self.watermark.weather_lateness_ms),
        ] {
            if v > MAX_LATENESS_MS {
                return Err(ConfigError::new(key, format!("must be at most {MAX_LATENESS_MS} (7 days)")));
            }
        }
        if self.join.max_weather_age_ms == 0 {
            return Err(ConfigError::new("join.max_weather_age_ms", "must be at least 1"));
        }
        if !(1..=1_000_000).contains(&self.state.checkpoint_epochs) {
            return Err(ConfigError::new("state.checkpoint_epochs", "must be between 1 and 1000000"));
        }
        if let Err(e) = self.metrics.listen_addr() {
            let reason = match e {
                millionx_metrics::MetricsError::Config { reason, .. } => reason,
                other => other.to_string(),
            };
            return Err(ConfigError::new("metrics.listen", reason));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::from_toml("").expect("defaults are valid");
        assert_eq!(
            c.batch,
            BatchConfig { max_records: 1000, max_bytes: 8 * 1024 * 1024, max_age_ms: 60_000, linger_ms: 500 }
        );
        assert_eq!(c.dedup.horizon_hours, 168);
        assert_eq!(c.join.max_weather_age_ms, 10_800_000);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[batch]\nmax_recods = 5\n").expect_err("typo");
        assert_eq!(e.key, "batch.max_recods");
        assert!(e.reason.contains("unknown field"), "{}", e.reason);
        assert_eq!(Config::from_toml("[bacth]\nmax_records = 5\n").expect_err("typo").key, "bacth");
    }

    #[test]
    fn out_of_range_value_is_named() {
        let e = Config::from_toml("[batch]\nmax_records = 0\n").expect_err("zero");
        assert_eq!(e, ConfigError::new("batch.max_records", "must be at least 1, got 0"));
    }

    #[test]
    fn metrics_table_is_read_and_checked() {
        let c = Config::from_toml("[metrics]\nenabled = false\nlisten = \"[::1]:0\"\n").expect("valid");
        assert_eq!(c.metrics, millionx_metrics::MetricsConfig { enabled: false, listen: "[::1]:0".to_owned() });
        assert_eq!(Config::default().metrics.listen, "127.0.0.1:9464");
        let e = Config::from_toml("[metrics]\nlisten = \"localhost:9464\"\n").expect_err("host name");
        assert_eq!(e.key, "metrics.listen");
        assert!(e.reason.contains("is not IP:port"), "{}", e.reason);
    }

    #[test]
    fn metrics_listen_comes_from_the_injected_environment() {
        let mut c = Config::default();
        c.apply_env(&Env::from_pairs([(METRICS_LISTEN_ENV, "127.0.0.1:0")]));
        assert_eq!(c.metrics.listen, "127.0.0.1:0");
        let mut c = Config::default();
        c.apply_env(&Env::empty());
        assert_eq!(c.metrics.listen, "127.0.0.1:9464");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let e = Config::from_toml("[dedup]\nhorizon_hours = \"week\"\n").expect_err("string");
        assert_eq!(e.key, "dedup.horizon_hours");
        assert!(e.reason.contains("invalid type"), "{e}");
        let e = Config::from_toml("[batch\n").expect_err("syntax");
        assert_eq!(e.key, "(syntax)");
        assert!(e.reason.contains("line 1"), "{e}");
    }
}
