//! `[snowflake]` configuration through [`ConnectorConfig`]: parsed with unknown keys rejected, checked by a
//! pure [`ConnectorConfig::validate`] before any network I/O, secrets resolved from env or a file at start.
//! Every key and default is listed in `millionx_dataflow::config` (the run file reference);
//! `[snowflake.batch]` and `[snowflake.retry]` use the shared [`BatchConfig`] / [`RetryConfig`] keys.

use std::fmt;
use std::path::PathBuf;

use millionx_dataflow::config::policy::retry;
use millionx_dataflow::config::{
    parse_table, table_of, BatchConfig, ConfigError, ConnectorConfig, Env, RetryConfig, Shared,
};
use millionx_sink_util::{BatchPolicy, Framing};
use serde::Deserialize;

/// Snowflake's limit on a VARIANT value and on a statement's bind data is 16 MB; a batch stays below
/// 15 MiB of UTF-8 JSON so the JSON array bound to `PARSE_JSON(?)` always fits.
/// Source: Snowflake docs, "Semi-structured data size limitations" (16 MB compressed/uncompressed VARIANT).
pub const MAX_BATCH_BYTES: usize = 15 << 20;

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(&format!("snowflake.{key}"), reason)
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
    /// `[snowflake.batch]` over `[batch]` over [`SnowflakeConfig::DEFAULT_BATCH`]: max_records 1..=100,000,
    /// max_bytes 1 KiB..=[`MAX_BATCH_BYTES`].
    #[serde(skip)]
    pub batch: BatchConfig,
    /// `[snowflake.retry]` over [`SnowflakeConfig::DEFAULT_RETRY`] (max_retries ≤ 100): jittered exponential
    /// backoff for network errors, HTTP 429/5xx, expired sessions and Snowflake's transient codes.
    #[serde(skip)]
    pub retry: RetryConfig,
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

impl ConnectorConfig for SnowflakeConfig {
    const TABLE: &'static str = "snowflake";

    fn from_value(value: toml::Value, shared: &Shared<'_>) -> Result<SnowflakeConfig, ConfigError> {
        let mut table = table_of(value, Self::TABLE)?;
        let batch = shared.batch(Self::TABLE, Self::DEFAULT_BATCH, table.remove("batch"))?;
        let retry = retry(Self::TABLE, Self::DEFAULT_RETRY, table.remove("retry"))?;
        let config: SnowflakeConfig = parse_table(table, Self::TABLE)?;
        Ok(SnowflakeConfig { batch, retry, ..config })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        SnowflakeConfig::validate(self)
    }
}

impl SnowflakeConfig {
    /// Batch defaults: 1,000 rows, 8 MiB, 60 s, linger 500 ms.
    pub const DEFAULT_BATCH: BatchConfig =
        BatchConfig { max_records: 1000, max_bytes: 8 << 20, max_age_ms: 60_000, linger_ms: 500 };

    /// Retry defaults: 10 retries, 200 ms doubling to 10 s.
    pub const DEFAULT_RETRY: RetryConfig =
        RetryConfig { max_retries: 10, initial_backoff_ms: 200, max_backoff_ms: 10_000 };

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
        self.batch.validate("snowflake.batch", 100_000, MAX_BATCH_BYTES)?;
        self.retry.validate("snowflake.retry", 100)?;
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
        self.batch.into()
    }

    /// Reads the secrets from their variables in `env` or their files.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key whose variable is unset or whose file is unreadable (the secret
    /// itself is never part of the message).
    pub fn resolve_credentials(&self, env: &Env) -> Result<Credentials, ConfigError> {
        match &self.auth {
            AuthConfig::Password { password } => {
                Ok(Credentials::Password(read_secret("auth.password", password, true, env)?))
            }
            AuthConfig::KeyPair { private_key, passphrase } => Ok(Credentials::KeyPair {
                pem: read_secret("auth.private_key", private_key, false, env)?,
                passphrase: passphrase.as_ref().map(|p| read_secret("auth.passphrase", p, true, env)).transpose()?,
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

fn read_secret(key: &str, s: &SecretSource, first_line: bool, env: &Env) -> Result<Secret, ConfigError> {
    let raw = match (&s.env, &s.file) {
        (Some(var), _) => env.get(var).ok_or_else(|| err(key, format!("environment variable {var} is not set")))?,
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
    use std::time::Duration;

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
        let c = SnowflakeConfig::load(toml::Value::Table(table), &Shared::default(), &Env::empty()).expect("valid");
        assert_eq!(c.user, "loader");
        let mut table: toml::Table = toml::from_str(BASE).expect("toml");
        table.insert("method".into(), toml::Value::String("carrier_pigeon".into()));
        let e =
            SnowflakeConfig::load(toml::Value::Table(table), &Shared::default(), &Env::empty()).expect_err("rejected");
        assert!(e.reason.contains("carrier_pigeon"), "{e}");
    }

    #[test]
    fn bad_keys_are_named() {
        let unknown = SnowflakeConfig::from_toml(&format!("colour = 1\n{BASE}")).expect_err("rejected");
        assert!(unknown.reason.contains("colour"), "{unknown}");
        assert_eq!(unknown.key, "snowflake.colour");
        let wrong = SnowflakeConfig::from_toml(&format!("{BASE}[retry]\nmax_retries = \"many\"\n")).expect_err("type");
        assert_eq!(wrong.key, "snowflake.retry.max_retries", "{wrong}");
        let e = SnowflakeConfig::from_toml(&format!("{BASE}[batch]\nmax_records = 0\n")).expect_err("zero");
        assert_eq!(e.key, "snowflake.batch.max_records", "{e}");
        let e = SnowflakeConfig::from_toml(&format!("{BASE}[retry]\nmax_retries = 101\n")).expect_err("cap");
        assert_eq!(e.key, "snowflake.retry.max_retries", "{e}");
        let e = SnowflakeConfig::from_toml(&format!("{BASE}[batch]\nmax_bytes_ = 1\n")).expect_err("typo");
        assert_eq!(e.key, "snowflake.batch.max_bytes_", "{e}");
        let mut c = SnowflakeConfig::from_toml(BASE).expect("valid");
        c.batch.max_bytes = 32 << 20;
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.batch.max_bytes");
        c.batch.max_bytes = 1 << 20;
        c.schema = "RAW DATA".into();
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.schema");
        c.schema = "RAW_DATA".into();
        c.method = Method::SnowpipeStreaming;
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.auth.type");
        c.method = Method::SqlBatch;
        c.auth = AuthConfig::Password { password: SecretSource { env: Some("A".into()), file: Some("b".into()) } };
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.auth.password");
        c.auth = AuthConfig::Password { password: SecretSource::default() };
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.auth.password");
        c.auth = AuthConfig::Password { password: SecretSource { env: Some("A".into()), file: None } };
        c.retry.max_backoff_ms = 1;
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.retry.max_backoff_ms");
        c.retry = SnowflakeConfig::DEFAULT_RETRY;
        c.host = Some("ftp://x".into());
        assert_eq!(c.validate().expect_err("rejected").key, "snowflake.host");
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        let mut c = SnowflakeConfig::from_toml(BASE).expect("valid");
        c.auth = AuthConfig::Password { password: SecretSource { env: None, file: Some(path) } };
        let creds = c.resolve_credentials(&Env::empty()).expect("readable");
        match &creds {
            Credentials::Password(p) => assert_eq!(p.expose(), "s3cret"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{creds:?}").contains("s3cret"));
        c.auth = AuthConfig::Password {
            password: SecretSource { env: Some("MILLIONX_TEST_UNSET_VARIABLE_42".into()), file: None },
        };
        let e = c.resolve_credentials(&Env::empty()).expect_err("rejected");
        assert_eq!(e.key, "snowflake.auth.password");
        assert!(e.reason.contains("MILLIONX_TEST_UNSET_VARIABLE_42"));
        let env = Env::from_pairs([("MILLIONX_TEST_UNSET_VARIABLE_42", " pw-from-env \n")]);
        match c.resolve_credentials(&env).expect("from the injected env") {
            Credentials::Password(p) => assert_eq!(p.expose(), "pw-from-env"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
