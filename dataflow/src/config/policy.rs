//! The batch and retry policies every sink and connector shares, with one set of key names, and how a
//! connector's own `[<table>.batch]` / `[<table>.retry]` layer over its defaults and the file's `[batch]`.
//!
//! Layering (each layer sets only the keys it names): the connector's defaults, then the file's `[batch]`
//! (batch only), then the connector's own sub-table. Each layer is checked for unknown keys and types on its
//! own, so an error names the layer's key (`batch.max_records` or `weaviate.batch.max_records`).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{from_toml_value, ConfigError};

/// A batch policy (`[batch]`, `[<sink>.batch]`): a batch is flushed when any limit is reached.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Records per batch (≥ 1; a sink may allow fewer). Default 1,000.
    pub max_records: usize,
    /// Encoded bytes per batch (≥ 1 KiB; a sink may allow fewer). Default 8 MiB.
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

impl BatchConfig {
    /// Checks the limits: `max_records` 1..=`max_records_cap`, `max_bytes` 1024..=`max_bytes_cap`, both ages
    /// ≥ 1. `prefix` is the key path used in errors (`batch`, `snowflake.batch`).
    pub fn validate(&self, prefix: &str, max_records_cap: usize, max_bytes_cap: usize) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if !(1..=max_records_cap).contains(&self.max_records) {
            let range =
                if max_records_cap == usize::MAX { "at least 1".to_owned() } else { format!("1..={max_records_cap}") };
            return Err(ConfigError::new(&key("max_records"), format!("must be {range}, got {}", self.max_records)));
        }
        if !(1024..=max_bytes_cap).contains(&self.max_bytes) {
            let range = if max_bytes_cap == usize::MAX {
                "at least 1024".to_owned()
            } else {
                format!("1024..={max_bytes_cap}")
            };
            return Err(ConfigError::new(&key("max_bytes"), format!("must be {range}, got {}", self.max_bytes)));
        }
        if self.max_age_ms == 0 {
            return Err(ConfigError::new(&key("max_age_ms"), "must be at least 1"));
        }
        if self.linger_ms == 0 {
            return Err(ConfigError::new(&key("linger_ms"), "must be at least 1"));
        }
        Ok(())
    }

    /// `max_age_ms` as a duration.
    pub fn max_age(&self) -> Duration {
        Duration::from_millis(self.max_age_ms)
    }

    /// `linger_ms` as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

/// Longest backoff any connector accepts, ms (1 h).
pub const MAX_BACKOFF_CAP_MS: u64 = 3_600_000;

/// A retry policy (`[<connector>.retry]`): jittered exponential backoff (factor 2, full jitter: a random
/// extra delay in `[0, delay)`), via `backon`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt (0..=a connector's cap); then the operation fails. Default 10.
    pub max_retries: u32,
    /// First backoff, ms (1..=3,600,000). Default 200.
    pub initial_backoff_ms: u64,
    /// Backoff cap, ms (`initial_backoff_ms`..=3,600,000). Default 30,000.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_retries: 10, initial_backoff_ms: 200, max_backoff_ms: 30_000 }
    }
}

impl RetryConfig {
    /// Checks the values; `prefix` is the key path used in errors (`weaviate.retry`), `max_retries_cap` the
    /// connector's largest `max_retries`.
    pub fn validate(&self, prefix: &str, max_retries_cap: u32) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if self.max_retries > max_retries_cap {
            return Err(ConfigError::new(
                &key("max_retries"),
                format!("must be 0..={max_retries_cap}, got {}", self.max_retries),
            ));
        }
        if !(1..=MAX_BACKOFF_CAP_MS).contains(&self.initial_backoff_ms) {
            return Err(ConfigError::new(
                &key("initial_backoff_ms"),
                format!("must be 1..={MAX_BACKOFF_CAP_MS} ms, got {}", self.initial_backoff_ms),
            ));
        }
        if !(self.initial_backoff_ms..=MAX_BACKOFF_CAP_MS).contains(&self.max_backoff_ms) {
            return Err(ConfigError::new(
                &key("max_backoff_ms"),
                format!(
                    "must be initial_backoff_ms ({})..={MAX_BACKOFF_CAP_MS} ms, got {}",
                    self.initial_backoff_ms, self.max_backoff_ms
                ),
            ));
        }
        Ok(())
    }

    /// The backoff: from `initial_backoff_ms`, doubling, capped at `max_backoff_ms`, full jitter, at most
    /// `max_retries` delays.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.initial_backoff_ms))
            .with_max_delay(Duration::from_millis(self.max_backoff_ms))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_retries as usize)
    }
}

/// The run file's tables that connectors layer under their own: the raw `[batch]` table (only the keys the
/// file sets; absent: none).
#[derive(Clone, Copy, Debug, Default)]
pub struct Shared<'a> {
    /// The file's `[batch]` table as written.
    pub batch: Option<&'a toml::Value>,
}

impl Shared<'_> {
    /// A connector's batch policy: `defaults`, then the file's `[batch]`, then `own` (the connector's
    /// `batch` sub-table, whose errors are named `<table>.batch.KEY`). Not validated.
    pub fn batch(
        &self,
        table: &str,
        defaults: BatchConfig,
        own: Option<toml::Value>,
    ) -> Result<BatchConfig, ConfigError> {
        let shared = layer(defaults, self.batch.cloned(), "batch")?;
        layer(shared, own, &format!("{table}.batch"))
    }
}

/// A connector's retry policy: `defaults`, then `own` (its `retry` sub-table, errors named
/// `<table>.retry.KEY`). Not validated.
pub fn retry(table: &str, defaults: RetryConfig, own: Option<toml::Value>) -> Result<RetryConfig, ConfigError> {
    layer(defaults, own, &format!("{table}.retry"))
}

/// `base` with the keys of `over` (a TOML table) set on it. Errors name `prefix.KEY`: `over` not a table,
/// an unknown key, a wrong type.
fn layer<T: Serialize + DeserializeOwned>(base: T, over: Option<toml::Value>, prefix: &str) -> Result<T, ConfigError> {
    let Some(over) = over else { return Ok(base) };
    let toml::Value::Table(over) = over else { return Err(ConfigError::new(prefix, "must be a table")) };
    let mut merged = match toml::Value::try_from(&base) {
        Ok(toml::Value::Table(t)) => t,
        _ => return Err(ConfigError::new(prefix, "defaults are not a table")),
    };
    merged.extend(over);
    from_toml_value(toml::Value::Table(merged)).map_err(|e| e.within(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> toml::Value {
        toml::Value::Table(toml::from_str(text).expect("toml"))
    }

    #[test]
    fn own_table_overrides_the_shared_batch_which_overrides_the_defaults() {
        let defaults = BatchConfig { max_records: 100, max_age_ms: 5_000, ..BatchConfig::default() };
        let file_batch = value("max_records = 7\nlinger_ms = 20\n");
        let shared = Shared { batch: Some(&file_batch) };
        let b = shared.batch("weaviate", defaults, Some(value("linger_ms = 30\n"))).expect("valid");
        assert_eq!(b, BatchConfig { max_records: 7, max_bytes: 8 << 20, max_age_ms: 5_000, linger_ms: 30 });
        assert_eq!(Shared::default().batch("weaviate", defaults, None).expect("defaults"), defaults);
    }

    #[test]
    fn layer_errors_name_the_layer_key() {
        let shared = Shared::default();
        let e = shared.batch("snowflake", BatchConfig::default(), Some(value("max_recods = 1\n"))).expect_err("typo");
        assert_eq!(e.key, "snowflake.batch.max_recods");
        let e = retry("weaviate", RetryConfig::default(), Some(value("max_retries = \"many\"\n"))).expect_err("type");
        assert_eq!(e.key, "weaviate.retry.max_retries");
        let e = retry("weather", RetryConfig::default(), Some(toml::Value::Integer(1))).expect_err("not a table");
        assert_eq!(e.key, "weather.retry");
    }

    #[test]
    fn validation_names_the_key_and_the_cap() {
        let b = BatchConfig { max_records: 20_000, ..BatchConfig::default() };
        let e = b.validate("weaviate.batch", 10_000, 256 << 20).expect_err("too many");
        assert_eq!(e.key, "weaviate.batch.max_records");
        assert!(e.reason.contains("1..=10000"), "{e}");
        let r = RetryConfig { max_retries: 11, ..RetryConfig::default() };
        assert_eq!(r.validate("weather.retry", 10).expect_err("cap").key, "weather.retry.max_retries");
        let r = RetryConfig { initial_backoff_ms: 500, max_backoff_ms: 100, ..RetryConfig::default() };
        assert_eq!(r.validate("snowflake.retry", 100).expect_err("order").key, "snowflake.retry.max_backoff_ms");
        RetryConfig::default().validate("x.retry", 10).expect("defaults are valid");
    }

    #[test]
    fn backoff_doubles_from_the_initial_delay_up_to_the_cap() {
        use backon::BackoffBuilder as _;
        let r = RetryConfig { max_retries: 4, initial_backoff_ms: 100, max_backoff_ms: 300 };
        let delays: Vec<u128> = r.backoff().build().map(|d| d.as_millis()).collect();
        assert_eq!(delays.len(), 4);
        // Jitter adds [0, delay): bounds 100..200, 200..400, 300..600, 300..600.
        for (d, lo) in delays.iter().zip([100, 200, 300, 300]) {
            assert!((lo..2 * lo).contains(d), "{delays:?}");
        }
    }
}
