//! `[weaviate]` configuration through [`ConnectorConfig`]: parsed with unknown keys rejected, checked by a pure
//! [`ConnectorConfig::validate`] before any network I/O. Every key and default is listed in
//! `millionx_dataflow::config` (the run file reference); `[weaviate.batch]` and `[weaviate.retry]` use the
//! shared [`BatchConfig`] / [`RetryConfig`] keys.

use std::path::PathBuf;

use millionx_dataflow::config::policy::retry;
use millionx_dataflow::config::{
    parse_table, table_of, BatchConfig, ConfigError, ConnectorConfig, Env, RetryConfig, Shared,
};
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
    /// Consecutive timeouts of one request before its objects are split in two halves (≥ 1). Default 2.
    pub split_after_timeouts: u32,
    /// `[weaviate.batch]` over `[batch]` over [`WeaviateConfig::DEFAULT_BATCH`]: max_records 1–10,000,
    /// max_bytes 1 KiB–256 MiB.
    #[serde(skip)]
    pub batch: BatchConfig,
    /// `[weaviate.retry]` over [`WeaviateConfig::DEFAULT_RETRY`]: retries per batch (all its requests
    /// together, 0–1,000), then the batch fails the run.
    #[serde(skip)]
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
            split_after_timeouts: 2,
            batch: WeaviateConfig::DEFAULT_BATCH,
            retry: WeaviateConfig::DEFAULT_RETRY,
        }
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

impl ConnectorConfig for WeaviateConfig {
    const TABLE: &'static str = "weaviate";

    fn from_value(value: toml::Value, shared: &Shared<'_>) -> Result<WeaviateConfig, ConfigError> {
        let mut table = table_of(value, Self::TABLE)?;
        let batch = shared.batch(Self::TABLE, Self::DEFAULT_BATCH, table.remove("batch"))?;
        let retry = retry(Self::TABLE, Self::DEFAULT_RETRY, table.remove("retry"))?;
        let config: WeaviateConfig = parse_table(table, Self::TABLE)?;
        Ok(WeaviateConfig { batch, retry, ..config })
    }

    /// Checks every value. Pure: reads neither files nor the network. Errors name the key.
    fn validate(&self) -> Result<(), ConfigError> {
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
        if self.split_after_timeouts == 0 {
            return Err(err("split_after_timeouts", "must be at least 1"));
        }
        self.batch.validate("weaviate.batch", 10_000, 256 << 20)?;
        self.retry.validate("weaviate.retry", 1_000)
    }
}

impl WeaviateConfig {
    /// Batch defaults: 100 objects (Weaviate's guidance for objects carrying vectors), 8 MiB, 5 s, linger 500 ms.
    pub const DEFAULT_BATCH: BatchConfig =
        BatchConfig { max_records: 100, max_bytes: 8 << 20, max_age_ms: 5_000, linger_ms: 500 };

    /// Retry defaults: 10 retries, 200 ms doubling to 30 s.
    pub const DEFAULT_RETRY: RetryConfig =
        RetryConfig { max_retries: 10, initial_backoff_ms: 200, max_backoff_ms: 30_000 };

    /// The configuration of a run whose file has no `[weaviate]` table: the defaults with `url` from
    /// `WEAVIATE_URL` when that is set (a table's `url` is never overridden).
    pub fn from_env(env: &Env) -> WeaviateConfig {
        let mut config = WeaviateConfig::default();
        if let Some(url) = env.get(URL_ENV) {
            config.url = url;
        }
        config
    }

    /// The API key: the first line of `api_key_file` when set (errors name the key and never show
    /// the content), else `WEAVIATE_API_KEY` from `env` when set and non-empty, else none.
    pub fn resolve_api_key(&self, env: &Env) -> Result<Option<ApiKey>, ConfigError> {
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("api_key_file", format!("cannot read {}: {e}", path.display())))?;
            let key = text.lines().next().unwrap_or("").trim();
            if key.is_empty() {
                return Err(err("api_key_file", format!("{} is empty", path.display())));
            }
            return Ok(Some(ApiKey::new(key)));
        }
        Ok(env.get(API_KEY_ENV).map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).map(ApiKey::new))
    }

    /// The batch policy for the driver.
    pub fn batch_policy(&self) -> BatchPolicy {
        self.batch.into()
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
    use std::time::Duration;

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
            ("split_after_timeouts = 0", "weaviate.split_after_timeouts"),
            ("[retry]\nmax_retries = 1001", "weaviate.retry.max_retries"),
            ("[retry]\nsplit_after_timeouts = 2", "weaviate.retry.split_after_timeouts"),
            ("[batch]\nmax_bytes = 300000000", "weaviate.batch.max_bytes"),
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
    fn the_shared_batch_table_layers_under_the_weaviate_one() {
        let file_batch = toml::Value::Table(toml::from_str("max_records = 500\nlinger_ms = 50\n").expect("toml"));
        let own = toml::Value::Table(toml::from_str("[batch]\nlinger_ms = 20\n").expect("toml"));
        let c = WeaviateConfig::load(own, &Shared { batch: Some(&file_batch) }, &Env::empty()).expect("valid");
        assert_eq!(c.batch, BatchConfig { max_records: 500, max_bytes: 8 << 20, max_age_ms: 5_000, linger_ms: 20 });
        assert_eq!(c.batch_policy().linger, Duration::from_millis(20));
    }

    #[test]
    fn the_environment_gives_the_url_and_the_api_key() {
        let env = Env::from_pairs([(URL_ENV, "http://10.1.2.3:8080"), (API_KEY_ENV, " k3y \n")]);
        let c = WeaviateConfig::from_env(&env);
        assert_eq!(c.url, "http://10.1.2.3:8080");
        assert_eq!(c.resolve_api_key(&env).expect("env").map(|k| k.expose().to_owned()).as_deref(), Some("k3y"));
        assert_eq!(WeaviateConfig::from_env(&Env::empty()).url, "http://127.0.0.1:8080");
        assert_eq!(c.resolve_api_key(&Env::empty()).expect("none"), None);
    }

    #[test]
    fn the_key_file_wins_and_is_never_shown() {
        let dir = std::env::temp_dir().join(format!("mx-weaviate-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("key");
        std::fs::write(&path, "s3cret-key\n").expect("write");
        let c = WeaviateConfig { api_key_file: Some(path.clone()), ..WeaviateConfig::default() };
        let key = c.resolve_api_key(&Env::empty()).expect("read").expect("some");
        assert_eq!(key.expose(), "s3cret-key");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        std::fs::write(&path, "\n").expect("write");
        let e = c.resolve_api_key(&Env::empty()).expect_err("empty");
        assert_eq!(e.key, "weaviate.api_key_file");
        let _ = std::fs::remove_dir_all(dir);
    }
}
