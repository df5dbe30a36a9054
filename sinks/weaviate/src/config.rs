//! `[weaviate]` configuration: parsed with unknown keys rejected, checked by a pure [`WeaviateConfig::validate`]
//! before any network I/O.
//!
//! ```toml
//! [weaviate]
//! url = "http://127.0.0.1:8080"      # base URL; the API key comes from WEAVIATE_API_KEY or api_key_file
//! # api_key_file = "/run/secrets/weaviate-api-key"
//! # consistency_level = "QUORUM"     # ONE | QUORUM | ALL; unset: the server's default (QUORUM)
//! max_in_flight = 2                  # batch requests in flight (concurrency)
//! connect_timeout_ms = 5000
//! request_timeout_ms = 60000
//! vector_dimensions = 384            # all-MiniLM-L6-v2
//!
//! [weaviate.batch]
//! max_records = 100                  # Weaviate's guidance for objects with vectors
//! max_bytes = 8388608
//! max_age_ms = 5000
//!
//! [weaviate.retry]
//! max_retries = 10                   # per batch, then the run stops (nothing acknowledged)
//! initial_backoff_ms = 200
//! max_backoff_ms = 30000
//! split_after_timeouts = 2           # consecutive timeouts before a batch is halved
//! ```

use std::path::PathBuf;
use std::time::Duration;

use millionx_dataflow::config::ConfigError;
use millionx_sink_util::BatchPolicy;
use serde::Deserialize;

/// Environment variable holding the Weaviate API key (sent as `Authorization: Bearer <key>`).
pub const API_KEY_ENV: &str = "WEAVIATE_API_KEY";

/// Environment variable naming the Weaviate base URL when neither `--url` nor the config sets one.
pub const URL_ENV: &str = "WEAVIATE_URL";

/// Vector length of all-MiniLM-L6-v2 (PIPELINE.md, Embedding).
pub const DEFAULT_VECTOR_DIMENSIONS: usize = 384;

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: format!("weaviate.{key}"), reason: reason.into() }
}

/// Replica acknowledgements a write needs (`?consistency_level=`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConsistencyLevel {
    /// One replica.
    One,
    /// A majority of replicas (the server's default).
    Quorum,
    /// Every replica.
    All,
}

impl ConsistencyLevel {
    /// The query-parameter value: `ONE`, `QUORUM` or `ALL`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsistencyLevel::One => "ONE",
            ConsistencyLevel::Quorum => "QUORUM",
            ConsistencyLevel::All => "ALL",
        }
    }
}

/// `[weaviate]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WeaviateConfig {
    /// Base URL, `http(s)://host[:port][/prefix]`, without credentials, query or fragment.
    /// Default `http://127.0.0.1:8080`.
    pub url: String,
    /// File holding the API key (first line, trimmed). Unset: `WEAVIATE_API_KEY` if set, else no auth.
    pub api_key_file: Option<PathBuf>,
    /// `consistency_level` of every batch request; unset sends none (server default QUORUM).
    pub consistency_level: Option<ConsistencyLevel>,
    /// Batch requests in flight at once, 1–64. Default 2.
    pub max_in_flight: usize,
    /// TCP/TLS connect timeout, ms (1–600,000). Default 5,000.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, ms (≥ connect timeout, ≤ 3,600,000). Default 60,000 (the Python client
    /// uses 90 s for inserts; a timeout is retried and, repeated, halves the batch).
    pub request_timeout_ms: u64,
    /// Required length of a `vector` when an object has one, 1–65,536. Default 384.
    pub vector_dimensions: usize,
    /// Batch policy.
    pub batch: WeaviateBatchConfig,
    /// Retry policy.
    pub retry: RetryConfig,
}

impl Default for WeaviateConfig {
    fn default() -> Self {
        WeaviateConfig {
            url: "http://127.0.0.1:8080".into(),
            api_key_file: None,
            consistency_level: None,
            max_in_flight: 2,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 60_000,
            vector_dimensions: DEFAULT_VECTOR_DIMENSIONS,
            batch: WeaviateBatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// `[weaviate.batch]`: a batch is flushed when any limit is reached.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WeaviateBatchConfig {
    /// Objects per batch, 1–10,000. Default 100 (Weaviate's guidance for objects carrying vectors).
    pub max_records: usize,
    /// Request body bytes, 1 KiB–256 MiB. Default 8 MiB.
    pub max_bytes: usize,
    /// Age of the oldest object in an open batch, ms (≥ 1). Default 5,000.
    pub max_age_ms: u64,
}

impl Default for WeaviateBatchConfig {
    fn default() -> Self {
        WeaviateBatchConfig { max_records: 100, max_bytes: 8 << 20, max_age_ms: 5_000 }
    }
}

/// `[weaviate.retry]`: jittered exponential backoff for transient failures.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries per batch (all its requests together), 0–1,000; then the batch fails the run.
    /// Default 10.
    pub max_retries: u32,
    /// First backoff, ms (≥ 1). Default 200.
    pub initial_backoff_ms: u64,
    /// Backoff cap, ms (≥ initial). Default 30,000.
    pub max_backoff_ms: u64,
    /// Consecutive timeouts of one request before its objects are split in two halves (≥ 1). Default 2.
    pub split_after_timeouts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_retries: 10, initial_backoff_ms: 200, max_backoff_ms: 30_000, split_after_timeouts: 2 }
    }
}

/// An API key; never printed (`Debug` shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself (for the `Authorization` header only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl WeaviateConfig {
    /// Parses a `[weaviate]` table given as TOML text (the table's own keys, as in tests).
    pub fn from_toml(text: &str) -> Result<WeaviateConfig, ConfigError> {
        let config: WeaviateConfig =
            millionx_dataflow::config::from_toml_text(text).map_err(|e| e.within("weaviate"))?;
        config.validate()?;
        Ok(config)
    }

    /// Takes the already-parsed `[weaviate]` table of the run file and validates it, as
    /// [`WeaviateConfig::from_toml`].
    pub fn from_table(table: toml::Table) -> Result<WeaviateConfig, ConfigError> {
        let config: WeaviateConfig =
            millionx_dataflow::config::from_toml_value(toml::Value::Table(table)).map_err(|e| e.within("weaviate"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value. Pure: reads neither files nor the network. Errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_url(&self.url).map_err(|reason| err("url", reason))?;
        if let Some(path) = &self.api_key_file {
            if path.as_os_str().is_empty() {
                return Err(err("api_key_file", "must not be empty (unset it to use WEAVIATE_API_KEY)"));
            }
        }
        if !(1..=64).contains(&self.max_in_flight) {
            return Err(err("max_in_flight", format!("must be 1–64, got {}", self.max_in_flight)));
        }
        if !(1..=600_000).contains(&self.connect_timeout_ms) {
            return Err(err("connect_timeout_ms", format!("must be 1–600000 ms, got {}", self.connect_timeout_ms)));
        }
        if self.request_timeout_ms < self.connect_timeout_ms || self.request_timeout_ms > 3_600_000 {
            return Err(err(
                "request_timeout_ms",
                format!(
                    "must be between connect_timeout_ms ({}) and 3600000 ms, got {}",
                    self.connect_timeout_ms, self.request_timeout_ms
                ),
            ));
        }
        if !(1..=65_536).contains(&self.vector_dimensions) {
            return Err(err("vector_dimensions", format!("must be 1–65536, got {}", self.vector_dimensions)));
        }
        let b = &self.batch;
        if !(1..=10_000).contains(&b.max_records) {
            return Err(err("batch.max_records", format!("must be 1–10000, got {}", b.max_records)));
        }
        if !(1024..=256 << 20).contains(&b.max_bytes) {
            return Err(err("batch.max_bytes", format!("must be 1024–268435456 bytes, got {}", b.max_bytes)));
        }
        if b.max_age_ms == 0 {
            return Err(err("batch.max_age_ms", "must be at least 1 ms"));
        }
        let r = &self.retry;
        if r.max_retries > 1_000 {
            return Err(err("retry.max_retries", format!("must be 0–1000, got {}", r.max_retries)));
        }
        if r.initial_backoff_ms == 0 {
            return Err(err("retry.initial_backoff_ms", "must be at least 1 ms"));
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            return Err(err(
                "retry.max_backoff_ms",
                format!("must be ≥ initial_backoff_ms ({}), got {}", r.initial_backoff_ms, r.max_backoff_ms),
            ));
        }
        if r.split_after_timeouts == 0 {
            return Err(err("retry.split_after_timeouts", "must be at least 1"));
        }
        Ok(())
    }

    /// The API key: the first line of `api_key_file` when set (errors name the key and never show
    /// the content), else `WEAVIATE_API_KEY` when set and non-empty, else none.
    pub fn resolve_api_key(&self) -> Result<Option<ApiKey>, ConfigError> {
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("api_key_file", format!("cannot read {}: {e}", path.display())))?;
            let key = text.lines().next().unwrap_or("").trim();
            if key.is_empty() {
                return Err(err("api_key_file", format!("{} is empty", path.display())));
            }
            return Ok(Some(ApiKey::new(key)));
        }
        Ok(std::env::var(API_KEY_ENV).ok().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).map(ApiKey::new))
    }

    /// The batch policy for the driver.
    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_records: self.batch.max_records,
            max_bytes: self.batch.max_bytes,
            max_age: Duration::from_millis(self.batch.max_age_ms),
            linger: BatchPolicy::DEFAULT_LINGER,
            segment_epochs: None,
        }
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }
}

/// Checks a base URL: http/https, a host, no credentials, query or fragment.
pub fn validate_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e}): {url:?}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme must be http or https, got {:?}", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("needs a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold credentials; put the API key in WEAVIATE_API_KEY or api_key_file".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = WeaviateConfig::from_toml("").expect("defaults");
        assert_eq!(c.batch.max_records, 100);
        assert_eq!(c.vector_dimensions, 384);
        assert_eq!(c.max_in_flight, 2);
        assert_eq!(c.batch_policy().max_age, Duration::from_millis(5_000));
    }

    #[test]
    fn a_partial_batch_table_keeps_the_weaviate_defaults() {
        let c = WeaviateConfig::from_toml("[batch]\nmax_bytes = 2048\n").expect("valid");
        assert_eq!((c.batch.max_records, c.batch.max_bytes), (100, 2048));
        let c = WeaviateConfig::from_toml("consistency_level = \"ALL\"\n").expect("valid");
        assert_eq!(c.consistency_level, Some(ConsistencyLevel::All));
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("url = \"ftp://x\"", "weaviate.url"),
            ("url = \"http://user:pw@host\"", "weaviate.url"),
            ("max_in_flight = 0", "weaviate.max_in_flight"),
            ("connect_timeout_ms = 10\nrequest_timeout_ms = 5", "weaviate.request_timeout_ms"),
            ("[batch]\nmax_records = 0", "weaviate.batch.max_records"),
            ("[retry]\nmax_backoff_ms = 1", "weaviate.retry.max_backoff_ms"),
            ("[retry]\nsplit_after_timeouts = 0", "weaviate.retry.split_after_timeouts"),
            ("api_key_file = \"\"", "weaviate.api_key_file"),
        ];
        for (text, key) in cases {
            let e = WeaviateConfig::from_toml(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = WeaviateConfig::from_toml("urll = \"http://x\"").expect_err("unknown key");
        assert_eq!(e.key, "weaviate.urll");
        let e = WeaviateConfig::from_toml("consistency_level = \"SOME\"").expect_err("bad level");
        assert!(e.reason.contains("unknown variant"), "{e}");
    }

    #[test]
    fn the_key_file_wins_and_is_never_shown() {
        let dir = std::env::temp_dir().join(format!("mx-weaviate-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("key");
        std::fs::write(&path, "s3cret-key\n").expect("write");
        let c = WeaviateConfig { api_key_file: Some(path.clone()), ..WeaviateConfig::default() };
        let key = c.resolve_api_key().expect("read").expect("some");
        assert_eq!(key.expose(), "s3cret-key");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        std::fs::write(&path, "\n").expect("write");
        let e = c.resolve_api_key().expect_err("empty");
        assert_eq!(e.key, "weaviate.api_key_file");
        let _ = std::fs::remove_dir_all(dir);
    }
}
