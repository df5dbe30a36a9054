//! `[snowflake]` configuration: parsed with unknown keys rejected, checked by a pure
//! [`SnowflakeConfig::validate`] before any network I/O, secrets resolved from env or a file at start.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use millionx_sink_util::{BatchPolicy, Framing};
use serde::Deserialize;

/// Snowflake's limit on a VARIANT value and on a statement's bind data is 16 MB; a batch stays below
/// 15 MiB of UTF-8 JSON so the JSON array bound to `PARSE_JSON(?)` always fits.
/// Source: Snowflake docs, "Semi-structured data size limitations" (16 MB compressed/uncompressed VARIANT).
pub const MAX_BATCH_BYTES: usize = 15 << 20;

/// Config problem, naming the key (`snowflake.<key>`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snowflake.{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key below `snowflake`.
    pub key: String,
    /// Why it is rejected.
    pub reason: String,
}

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_owned(), reason: reason.into() }
}

/// How rows reach Snowflake.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One `MERGE … USING (SELECT … FROM LATERAL FLATTEN(PARSE_JSON(?)))` statement per batch over the SQL
    /// API (login-request / query-request); idempotent upsert on the table's merge key.
    #[default]
    SqlBatch,
    /// Snowpipe Streaming REST API (high-performance architecture): one channel per table and Kafka
    /// partition, NDJSON appends with continuation and offset tokens.
    SnowpipeStreaming,
}

impl Method {
    /// The batch body framing this method's writer expects from the encoder: a JSON array for
    /// `sql_batch` (bound as one parameter), NDJSON for `snowpipe_streaming` (the append body).
    /// Writers re-frame a batch framed otherwise, at the cost of a copy.
    pub fn framing(self) -> Framing {
        match self {
            Method::SqlBatch => Framing::JSON_ARRAY,
            Method::SnowpipeStreaming => Framing::NDJSON,
        }
    }
}

/// `[snowflake]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeConfig {
    /// Account identifier, e.g. `myorg-account1` (used for the default host and in the JWT claims).
    pub account: String,
    /// Base URL or host name of the account. Default `https://<account>.snowflakecomputing.com`. A bare host
    /// gets `https://`; `http://127.0.0.1:PORT` reaches the emulator.
    #[serde(default)]
    pub host: Option<String>,
    /// Login name.
    pub user: String,
    /// Role used by the session. Default `MILLIONX_LOADER`.
    #[serde(default = "default_role")]
    pub role: String,
    /// Warehouse. Default `MILLIONX_WH`.
    #[serde(default = "default_warehouse")]
    pub warehouse: String,
    /// Database. Default `MILLIONX`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Schema. Default `RAW_DATA`.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Loading method. Default `sql_batch`.
    #[serde(default)]
    pub method: Method,
    /// Authentication.
    pub auth: AuthConfig,
    /// Flush policy.
    #[serde(default)]
    pub batch: BatchSettings,
    /// Transient-failure retries.
    #[serde(default)]
    pub retry: RetrySettings,
    /// `sql_batch` settings.
    #[serde(default)]
    pub sql: SqlSettings,
    /// `snowpipe_streaming` settings.
    #[serde(default)]
    pub streaming: StreamingSettings,
}

fn default_role() -> String {
    "MILLIONX_LOADER".into()
}
fn default_warehouse() -> String {
    "MILLIONX_WH".into()
}
fn default_database() -> String {
    "MILLIONX".into()
}
fn default_schema() -> String {
    "RAW_DATA".into()
}

/// Where a secret comes from: exactly one of an environment variable or a file (first line, trimmed).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding the secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// `[snowflake.auth]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// User + password (the emulator; real accounts enforce MFA on passwords, use `key_pair` there).
    Password {
        /// The password's source.
        password: SecretSource,
    },
    /// Key-pair JWT (RS256): `iss = ACCOUNT.USER.SHA256:<base64 SHA-256 of the public key DER>`,
    /// `sub = ACCOUNT.USER`. Required for `snowpipe_streaming`.
    KeyPair {
        /// PKCS#8 PEM private key's source (the file holds the whole PEM).
        private_key: SecretSource,
        /// Passphrase of an encrypted PKCS#8 key.
        #[serde(default)]
        passphrase: Option<SecretSource>,
    },
}

/// `[snowflake.batch]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Rows per batch (1..=100,000). Default 1,000.
    pub max_records: usize,
    /// UTF-8 bytes per batch body (1 KiB..=15 MiB, [`MAX_BATCH_BYTES`]). Default 8 MiB.
    pub max_bytes: usize,
    /// Age of the oldest row in an open batch before it is flushed, ms (≥ 1). Default 60,000.
    pub max_age_ms: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings { max_records: 1000, max_bytes: 8 << 20, max_age_ms: 60_000 }
    }
}

/// `[snowflake.retry]`: jittered exponential backoff for network errors, HTTP 429/5xx, expired
/// sessions and Snowflake's transient codes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retries after the first attempt (0..=100). Default 10.
    pub max_retries: usize,
    /// First backoff, ms (≥ 1). Default 200.
    pub initial_backoff_ms: u64,
    /// Longest backoff, ms (≥ initial). Default 10,000.
    pub max_backoff_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings { max_retries: 10, initial_backoff_ms: 200, max_backoff_ms: 10_000 }
    }
}

impl RetrySettings {
    /// The backoff policy: exponential ×2 from `initial_backoff_ms`, capped at `max_backoff_ms`, full jitter.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.initial_backoff_ms))
            .with_max_delay(Duration::from_millis(self.max_backoff_ms))
            .with_max_times(self.max_retries)
            .with_factor(2.0)
            .with_jitter()
    }
}

/// `[snowflake.sql]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SqlSettings {
    /// Statements in flight per writer (1..=16). Default 2.
    pub max_in_flight: usize,
    /// Client-side wait for one statement's response, ms (≥ 1,000). Default 120,000. A statement that
    /// times out is retried; the MERGE makes the retry idempotent.
    pub statement_timeout_ms: u64,
}

impl Default for SqlSettings {
    fn default() -> Self {
        SqlSettings { max_in_flight: 2, statement_timeout_ms: 120_000 }
    }
}

/// `[snowflake.streaming]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingSettings {
    /// Pipe name = table name + this suffix. Default `-STREAMING` (the default pipe Snowflake creates for
    /// every table in the high-performance architecture).
    pub pipe_suffix: String,
    /// Channel name = `<prefix>_<TABLE>_<partition>`. Default `MILLIONX`.
    pub channel_prefix: String,
    /// How often to read the committed offset token while a batch waits for its commit, ms (≥ 10).
    /// Default 250.
    pub commit_poll_ms: u64,
    /// Longest wait for a batch's rows to be committed, ms (≥ 1,000). Default 120,000; then the batch
    /// fails (nothing is acknowledged).
    pub commit_timeout_ms: u64,
    /// Batches queued per writer (1..=64). Default 4.
    pub max_in_flight: usize,
}

impl Default for StreamingSettings {
    fn default() -> Self {
        StreamingSettings {
            pipe_suffix: "-STREAMING".into(),
            channel_prefix: "MILLIONX".into(),
            commit_poll_ms: 250,
            commit_timeout_ms: 120_000,
            max_in_flight: 4,
        }
    }
}

/// A resolved secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Credentials after [`SnowflakeConfig::resolve_credentials`].
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Password login.
    Password(Secret),
    /// Key-pair JWT: PKCS#8 PEM and optional passphrase.
    KeyPair {
        /// PEM text.
        pem: Secret,
        /// Passphrase of an encrypted key.
        passphrase: Option<Secret>,
    },
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

impl SnowflakeConfig {
    /// Parses the `[snowflake]` table from TOML text (unknown keys rejected) and validates it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key.
    pub fn from_toml(text: &str) -> Result<SnowflakeConfig, ConfigError> {
        let config: SnowflakeConfig =
            millionx_dataflow::config::from_toml_text(text).map_err(|e| err(&e.key, e.reason))?;
        config.validate()?;
        Ok(config)
    }

    /// Takes the already-parsed `[snowflake]` table (e.g. from the pipeline's config file) and validates it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key.
    pub fn from_table(table: toml::Table) -> Result<SnowflakeConfig, ConfigError> {
        let config: SnowflakeConfig =
            millionx_dataflow::config::from_toml_value(toml::Value::Table(table)).map_err(|e| err(&e.key, e.reason))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every key without I/O (no env, no files, no network).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.account.trim().is_empty() || self.account.contains(['/', ':', ' ']) {
            return Err(err("account", "must be an account identifier such as myorg-account1"));
        }
        if let Some(host) = &self.host {
            let url = self.base_url_of(host);
            match reqwest::Url::parse(&url) {
                Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host_str().is_some() => {
                    if u.path() != "/" || u.query().is_some() {
                        return Err(err("host", "must be a host or base URL without a path or query"));
                    }
                }
                _ => return Err(err("host", format!("not a host name or http(s) URL: {host}"))),
            }
        }
        if self.user.trim().is_empty() {
            return Err(err("user", "must not be empty"));
        }
        for (key, value) in [
            ("role", &self.role),
            ("warehouse", &self.warehouse),
            ("database", &self.database),
            ("schema", &self.schema),
        ] {
            if !is_identifier(value) {
                return Err(err(key, format!("{value:?} is not an unquoted Snowflake identifier")));
            }
        }
        match &self.auth {
            AuthConfig::Password { password } => check_source("auth.password", password)?,
            AuthConfig::KeyPair { private_key, passphrase } => {
                check_source("auth.private_key", private_key)?;
                if let Some(p) = passphrase {
                    check_source("auth.passphrase", p)?;
                }
            }
        }
        if self.method == Method::SnowpipeStreaming && !matches!(self.auth, AuthConfig::KeyPair { .. }) {
            return Err(err("auth.type", "snowpipe_streaming needs key_pair authentication (JWT)"));
        }
        let b = &self.batch;
        if !(1..=100_000).contains(&b.max_records) {
            return Err(err("batch.max_records", "must be 1..=100000"));
        }
        if !(1024..=MAX_BATCH_BYTES).contains(&b.max_bytes) {
            return Err(err(
                "batch.max_bytes",
                format!("must be 1024..={MAX_BATCH_BYTES} (Snowflake's 16 MB VARIANT/request limit)"),
            ));
        }
        if b.max_age_ms == 0 {
            return Err(err("batch.max_age_ms", "must be ≥ 1"));
        }
        let r = &self.retry;
        if r.max_retries > 100 {
            return Err(err("retry.max_retries", "must be ≤ 100"));
        }
        if r.initial_backoff_ms == 0 {
            return Err(err("retry.initial_backoff_ms", "must be ≥ 1"));
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            return Err(err("retry.max_backoff_ms", "must be ≥ retry.initial_backoff_ms"));
        }
        if !(1..=16).contains(&self.sql.max_in_flight) {
            return Err(err("sql.max_in_flight", "must be 1..=16"));
        }
        if self.sql.statement_timeout_ms < 1000 {
            return Err(err("sql.statement_timeout_ms", "must be ≥ 1000"));
        }
        let s = &self.streaming;
        if s.pipe_suffix.contains(['/', '?', '#', ' ']) {
            return Err(err("streaming.pipe_suffix", "must not contain '/', '?', '#' or spaces"));
        }
        if !is_identifier(&s.channel_prefix) {
            return Err(err("streaming.channel_prefix", "must be letters, digits and '_'"));
        }
        if s.commit_poll_ms < 10 {
            return Err(err("streaming.commit_poll_ms", "must be ≥ 10"));
        }
        if s.commit_timeout_ms < 1000 {
            return Err(err("streaming.commit_timeout_ms", "must be ≥ 1000"));
        }
        if !(1..=64).contains(&s.max_in_flight) {
            return Err(err("streaming.max_in_flight", "must be 1..=64"));
        }
        Ok(())
    }

    fn base_url_of(&self, host: &str) -> String {
        let with_scheme =
            if host.contains("://") { host.trim_end_matches('/').to_owned() } else { format!("https://{host}") };
        format!("{with_scheme}/")
    }

    /// The account's base URL, ending in `/`.
    pub fn base_url(&self) -> String {
        match &self.host {
            Some(h) => self.base_url_of(h),
            None => format!("https://{}.snowflakecomputing.com/", self.account.to_ascii_lowercase()),
        }
    }

    /// The flush policy for the batching driver.
    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_records: self.batch.max_records,
            max_bytes: self.batch.max_bytes,
            max_age: Duration::from_millis(self.batch.max_age_ms),
            linger: BatchPolicy::DEFAULT_LINGER,
            segment_epochs: None,
        }
    }

    /// Reads the secrets from their env variables or files.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key whose variable is unset or whose file is unreadable (the secret
    /// itself is never part of the message).
    pub fn resolve_credentials(&self) -> Result<Credentials, ConfigError> {
        match &self.auth {
            AuthConfig::Password { password } => {
                Ok(Credentials::Password(read_secret("auth.password", password, true)?))
            }
            AuthConfig::KeyPair { private_key, passphrase } => Ok(Credentials::KeyPair {
                pem: read_secret("auth.private_key", private_key, false)?,
                passphrase: passphrase.as_ref().map(|p| read_secret("auth.passphrase", p, true)).transpose()?,
            }),
        }
    }
}

fn check_source(key: &str, s: &SecretSource) -> Result<(), ConfigError> {
    match (&s.env, &s.file) {
        (Some(e), None) if !e.is_empty() => Ok(()),
        (None, Some(f)) if !f.as_os_str().is_empty() => Ok(()),
        (Some(_), Some(_)) => Err(err(key, "set exactly one of env and file, not both")),
        _ => Err(err(key, "set env = \"VAR\" or file = \"path\" (secrets never go in the config itself)")),
    }
}

fn read_secret(key: &str, s: &SecretSource, first_line: bool) -> Result<Secret, ConfigError> {
    let raw = match (&s.env, &s.file) {
        (Some(var), _) => std::env::var(var).map_err(|_| err(key, format!("environment variable {var} is not set")))?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| err(key, format!("cannot read {}: {}", path.display(), e.kind())))?,
        (None, None) => return Err(err(key, "no source")),
    };
    let value = if first_line { raw.lines().next().unwrap_or("").trim().to_owned() } else { raw.trim().to_owned() };
    if value.is_empty() {
        return Err(err(key, "the secret is empty"));
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
account = "myorg-acct1"
user = "loader"
[auth]
type = "password"
password = { env = "SF_PW" }
"#;

    #[test]
    fn defaults_and_urls() {
        let c = SnowflakeConfig::from_toml(BASE).expect("valid");
        assert_eq!(c.method, Method::SqlBatch);
        assert_eq!(c.database, "MILLIONX");
        assert_eq!(c.base_url(), "https://myorg-acct1.snowflakecomputing.com/");
        assert_eq!(c.batch_policy().max_records, 1000);
        assert_eq!(c.batch_policy().max_age, Duration::from_secs(60));
        let c = SnowflakeConfig::from_toml(&format!("host = \"http://127.0.0.1:9000\"\n{BASE}")).expect("valid");
        assert_eq!(c.base_url(), "http://127.0.0.1:9000/");
        assert_eq!(Method::SnowpipeStreaming.framing(), Framing::NDJSON);
    }

    #[test]
    fn parses_from_an_embedded_table() {
        let table: toml::Table = toml::from_str(BASE).expect("toml");
        let c = SnowflakeConfig::from_table(table).expect("valid");
        assert_eq!(c.user, "loader");
        let mut table: toml::Table = toml::from_str(BASE).expect("toml");
        table.insert("method".into(), toml::Value::String("carrier_pigeon".into()));
        let e = SnowflakeConfig::from_table(table).expect_err("rejected");
        assert!(e.reason.contains("carrier_pigeon"), "{e}");
    }

    #[test]
    fn bad_keys_are_named() {
        let unknown = SnowflakeConfig::from_toml(&format!("colour = 1\n{BASE}")).expect_err("rejected");
        assert!(unknown.reason.contains("colour"), "{unknown}");
        assert_eq!(unknown.key, "colour");
        let wrong = SnowflakeConfig::from_toml(&format!("{BASE}[retry]\nmax_retries = \"many\"\n")).expect_err("type");
        assert_eq!(wrong.to_string().split(':').next(), Some("snowflake.retry.max_retries"), "{wrong}");
        let mut c = SnowflakeConfig::from_toml(BASE).expect("valid");
        c.batch.max_bytes = 32 << 20;
        assert_eq!(c.validate().expect_err("rejected").key, "batch.max_bytes");
        c.batch.max_bytes = 1 << 20;
        c.schema = "RAW DATA".into();
        assert_eq!(c.validate().expect_err("rejected").key, "schema");
        c.schema = "RAW_DATA".into();
        c.method = Method::SnowpipeStreaming;
        assert_eq!(c.validate().expect_err("rejected").key, "auth.type");
        c.method = Method::SqlBatch;
        c.auth = AuthConfig::Password { password: SecretSource { env: Some("A".into()), file: Some("b".into()) } };
        assert_eq!(c.validate().expect_err("rejected").key, "auth.password");
        c.auth = AuthConfig::Password { password: SecretSource::default() };
        assert_eq!(c.validate().expect_err("rejected").key, "auth.password");
        c.auth = AuthConfig::Password { password: SecretSource { env: Some("A".into()), file: None } };
        c.retry.max_backoff_ms = 1;
        assert_eq!(c.validate().expect_err("rejected").key, "retry.max_backoff_ms");
        c.retry = RetrySettings::default();
        c.host = Some("ftp://x".into());
        assert_eq!(c.validate().expect_err("rejected").key, "host");
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        let mut c = SnowflakeConfig::from_toml(BASE).expect("valid");
        c.auth = AuthConfig::Password { password: SecretSource { env: None, file: Some(path) } };
        let creds = c.resolve_credentials().expect("readable");
        match &creds {
            Credentials::Password(p) => assert_eq!(p.expose(), "s3cret"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{creds:?}").contains("s3cret"));
        c.auth = AuthConfig::Password {
            password: SecretSource { env: Some("MILLIONX_TEST_UNSET_VARIABLE_42".into()), file: None },
        };
        let e = c.resolve_credentials().expect_err("rejected");
        assert_eq!(e.key, "auth.password");
        assert!(e.reason.contains("MILLIONX_TEST_UNSET_VARIABLE_42"));
    }
}
