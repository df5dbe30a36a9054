//! A Snowflake SQL session over the client protocol (login-request / query-request, via
//! `snowflake-connector-rs`), with error classification and retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use snowflake_connector_rs::{
    AuthConfig as SfAuth, Client, ClientConfig, EndpointConfig, ErrorKind, KeyPairConfig, PasswordConfig, QueryConfig,
    Session, SessionConfig, Statement,
};
use tokio::sync::Mutex;

use millionx_dataflow::config::RetryConfig;

use crate::config::{Credentials, SnowflakeConfig};
use crate::metrics::Metrics;

/// Value of the `QUERY_TAG` session parameter, so the sink's statements can be found in query history.
pub const QUERY_TAG: &str = "millionx-sink";

/// What a failed statement means for the batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// Worth retrying: network, timeout, HTTP 429/5xx, expired session, Snowflake's transient codes.
    #[error("transient failure {code}: {message}")]
    Transient {
        /// Snowflake error code, or `network` / `timeout` / `http_<status>`.
        code: String,
        /// What happened.
        message: String,
    },
    /// Snowflake rejected the data (codes 100000–100999: a value that does not convert, a NULL key,
    /// a document too large); a smaller batch without the offending row can succeed.
    #[error("rejected {code}: {message}")]
    Rejected {
        /// Snowflake error code, e.g. `100038`.
        code: String,
        /// Snowflake's message.
        message: String,
    },
    /// Retrying cannot help: compilation errors, missing objects, bad credentials, protocol errors.
    #[error("failed {code}: {message}")]
    Fatal {
        /// Snowflake error code or the connector's error kind.
        code: String,
        /// What happened.
        message: String,
    },
}

impl SqlError {
    /// The code part.
    pub fn code(&self) -> &str {
        match self {
            SqlError::Transient { code, .. } | SqlError::Rejected { code, .. } | SqlError::Fatal { code, .. } => code,
        }
    }

    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SqlError::Transient { .. })
    }
}

/// Snowflake codes that are worth a retry: session/token expiry (390112, 390114), a session unknown to
/// the server (390104, e.g. after a failover), statement queued/timeout (000630, 000625), and the
/// service's internal error (000603). Source: Snowflake error code reference and the drivers' retry lists.
const TRANSIENT_CODES: &[&str] = &["390104", "390112", "390114", "000603", "000625", "000630"];

/// Classifies a connector error.
pub fn classify(e: &snowflake_connector_rs::Error) -> SqlError {
    let message = e.snowflake_message().map(str::to_owned).unwrap_or_else(|| e.to_string());
    match e.kind() {
        ErrorKind::Network => {
            // Non-2xx HTTP answers are reported as network errors; their text carries the status.
            let text = e.to_string();
            let status = (400..600u16).find(|s| text.contains(&s.to_string()));
            match status {
                Some(s) if s == 429 || s == 408 || s >= 500 || s == 401 => {
                    SqlError::Transient { code: format!("http_{s}"), message }
                }
                Some(s) => SqlError::Fatal { code: format!("http_{s}"), message },
                None => SqlError::Transient { code: "network".into(), message },
            }
        }
        ErrorKind::Timeout => SqlError::Transient { code: "timeout".into(), message },
        ErrorKind::SessionExpired => SqlError::Transient { code: "390112".into(), message },
        ErrorKind::Server => {
            let code = e.snowflake_code().unwrap_or("server").to_owned();
            if TRANSIENT_CODES.contains(&code.as_str()) {
                SqlError::Transient { code, message }
            } else if code.len() == 6 && code.starts_with("100") {
                SqlError::Rejected { code, message }
            } else {
                SqlError::Fatal { code, message }
            }
        }
        kind => SqlError::Fatal { code: format!("{kind:?}").to_ascii_lowercase(), message },
    }
}

/// One logged-in client; statements share the session and log in again when it is lost.
pub struct SqlClient {
    client: Client,
    session: Mutex<Option<Arc<Session>>>,
    retry: RetryConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SqlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlClient").field("client", &self.client).finish_non_exhaustive()
    }
}

/// A statement's rows, each a JSON object keyed by column name (numbers as JSON numbers, decimals and
/// times as strings).
pub type Rows = Vec<serde_json::Map<String, serde_json::Value>>;

impl SqlClient {
    /// Builds the client (no I/O: the first statement logs in).
    ///
    /// # Errors
    /// [`SqlError::Fatal`] when the connector rejects the endpoint or key configuration.
    pub fn new(config: &SnowflakeConfig, credentials: Credentials, metrics: Arc<Metrics>) -> Result<Self, SqlError> {
        let fatal =
            |e: snowflake_connector_rs::Error| SqlError::Fatal { code: "config".into(), message: e.to_string() };
        let auth = match credentials {
            Credentials::Password(p) => SfAuth::password(PasswordConfig::new(p.expose())),
            Credentials::KeyPair { pem, passphrase: None } => SfAuth::key_pair(KeyPairConfig::from_pem(pem.expose())),
            Credentials::KeyPair { pem, passphrase: Some(pass) } => {
                SfAuth::key_pair(KeyPairConfig::from_encrypted_pem(pem.expose(), pass.expose().as_bytes().to_vec()))
            }
        };
        let url = reqwest::Url::parse(&config.base_url())
            .map_err(|e| SqlError::Fatal { code: "config".into(), message: format!("host: {e}") })?;
        let session = SessionConfig::new()
            .with_role(&config.role)
            .with_warehouse(&config.warehouse)
            .with_database(&config.database)
            .with_schema(&config.schema)
            .with_session_parameter("QUERY_TAG", QUERY_TAG.into());
        let query =
            QueryConfig::new().with_query_response_timeout(Duration::from_millis(config.sql.statement_timeout_ms));
        let client = Client::new(
            ClientConfig::new(&config.user, &config.account, auth)
                .with_session(session)
                .with_query(query)
                .with_endpoint(EndpointConfig::custom_base_url(url)),
        )
        .map_err(fatal)?;
        Ok(SqlClient { client, session: Mutex::new(None), retry: config.retry, metrics })
    }

    async fn session(&self) -> Result<Arc<Session>, SqlError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(self.client.create_session().await.map_err(|e| match classify(&e) {
            // A login that fails for a server-side reason other than transient is a credentials problem.
            SqlError::Rejected { code, message } => SqlError::Fatal { code, message },
            other => other,
        })?);
        *guard = Some(Arc::clone(&s));
        Ok(s)
    }

    async fn forget_session(&self, stale: &Arc<Session>) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| Arc::ptr_eq(s, stale)) {
            *guard = None;
        }
    }

    /// Runs one statement once (no retry), with an optional single text bind.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn execute_once(&self, sql: &str, bind: Option<&str>) -> Result<Rows, SqlError> {
        let session = self.session().await?;
        let started = Instant::now();
        let result = match bind {
            Some(b) => session.query(Statement::new(sql.to_owned()).bind(b.to_owned())).await,
            None => session.query(Statement::new(sql.to_owned())).await,
        };
        let rows = match result {
            Ok(cursor) => cursor.collect::<Vec<_>>().await,
            Err(e) => Err(e),
        };
        self.metrics.statement_latency(started.elapsed());
        match rows {
            Ok(rows) => Ok(rows.into_iter().filter_map(|r| r.into_json_object().ok()).collect()),
            Err(e) => {
                let err = classify(&e);
                self.metrics.error(err.code());
                if err.is_transient() {
                    // The session may be gone (server restart, expiry): log in again on the next try.
                    self.forget_session(&session).await;
                }
                Err(err)
            }
        }
    }

    /// Runs one statement, retrying transient failures with jittered exponential backoff
    /// ([`RetryConfig::backoff`]).
    ///
    /// # Errors
    /// The first non-transient failure, or the last transient one when retries run out. Returns the
    /// rows and the number of retries made.
    pub async fn execute(&self, sql: &str, bind: Option<&str>) -> Result<(Rows, u32), SqlError> {
        let retries = std::sync::atomic::AtomicU32::new(0);
        let rows = (|| self.execute_once(sql, bind))
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(SqlError::is_transient)
            .notify(|_, _| {
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.metrics.retry();
            })
            .await?;
        Ok((rows, retries.into_inner()))
    }
}
