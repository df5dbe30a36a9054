//! The run configuration: one TOML file, unknown keys rejected, validated before any I/O.
//!
//! ```toml
//! [input]
//! dir = "data/sample"          # social.jsonl, market.jsonl, weather.jsonl
//! epoch_lines = 4096           # file replay: lines per epoch
//! max_epochs_in_flight = 8     # backpressure: a source waits while this many epochs are unfinished
//!
//! [output]
//! dir = "out"
//!
//! [batch]                      # every sink; per-sink tables may override
//! max_records = 1000
//! max_bytes = 8388608          # 8 MiB
//! max_age_ms = 60000
//! linger_ms = 500              # a batch whose oldest epoch is complete upstream waits at most this long
//!
//! [dedup]
//! horizon_hours = 168          # state older than this (event time) is forgotten
//!
//! [watermark]
//! social_lateness_ms = 10800000
//! market_lateness_ms = 10800000
//! weather_lateness_ms = 0
//!
//! [join]
//! max_weather_age_ms = 10800000  # a reading older than 3 h does not enrich
//!
//! [state]                      # Kafka source: durable operator state (see `crate::checkpoint`)
//! # dir = "out/state"          # default: <output.dir>/state
//! checkpoint_epochs = 4        # a snapshot every this many epochs
//! ```

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::record::StreamKind;

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
    fn new(key: &str, reason: impl Into<String>) -> ConfigError {
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
        if let Some(unknown) = reason.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
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
    /// Default batch policy of every sink.
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

/// A sink's batch policy: a batch is flushed when any limit is reached.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Records per batch (≥ 1). Default 1,000.
    pub max_records: usize,
    /// Encoded bytes per batch (≥ 1 KiB). Default 8 MiB.
    pub max_bytes: usize,
    /// Age of the oldest record in an open batch before it is flushed, ms (≥ 1). Default 60,000.
    pub max_age_ms: u64,
    /// Age after which an open batch is flushed once its oldest epoch is complete upstream (the batch then
    /// holds back the acknowledged frontier, hence the Kafka commits), ms (≥ 1, ≤ `max_age_ms` to matter).
    /// Default 500: offsets commit about every 0.5 s plus a write, and a sink filling `max_records` within
    /// 0.5 s keeps full batches.
    pub linger_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_records: 1000, max_bytes: 8 << 20, max_age_ms: 60_000, linger_ms: 500 }
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

    /// Takes the already-parsed file (connector tables removed) and validates it, as [`Config::from_toml`].
    pub fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
        let config: Config = from_toml_value(toml::Value::Table(table))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text)
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
        self.batch.validate("batch")?;
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

impl BatchConfig {
    /// Checks the limits; `prefix` is the key path used in errors (`batch`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.max_records == 0 {
            return Err(ConfigError::new(&format!("{prefix}.max_records"), "must be at least 1"));
        }
        if self.max_bytes < 1024 {
            return Err(ConfigError::new(&format!("{prefix}.max_bytes"), "must be at least 1024"));
        }
        if self.max_age_ms == 0 {
            return Err(ConfigError::new(&format!("{prefix}.max_age_ms"), "must be at least 1"));
        }
        if self.linger_ms == 0 {
            return Err(ConfigError::new(&format!("{prefix}.linger_ms"), "must be at least 1"));
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
        assert_eq!(e, ConfigError::new("batch.max_records", "must be at least 1"));
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
    fn wrong_type_is_an_error() {
        let e = Config::from_toml("[dedup]\nhorizon_hours = \"week\"\n").expect_err("string");
        assert_eq!(e.key, "dedup.horizon_hours");
        assert!(e.reason.contains("invalid type"), "{e}");
        let e = Config::from_toml("[batch\n").expect_err("syntax");
        assert_eq!(e.key, "(syntax)");
        assert!(e.reason.contains("line 1"), "{e}");
    }
}
