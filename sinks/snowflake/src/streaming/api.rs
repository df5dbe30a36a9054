//! Snowpipe Streaming REST API client (high-performance architecture).
//!
//! Contract (Snowflake docs, "Snowpipe Streaming REST API endpoints"):
//! - `GET {account}/v2/streaming/hostname` with the key-pair JWT → the ingest host name.
//! - `POST {account}/oauth/token` (form: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//!   `scope=<ingest host>`) with the JWT → a scoped token for the ingest host.
//! - `PUT {ingest}/v2/streaming/databases/{db}/schemas/{schema}/pipes/{pipe}/channels/{channel}` → opens (or
//!   re-opens, bumping the client sequencer) a channel: `next_continuation_token`, `channel_status`.
//! - `POST {ingest}/v2/streaming/data/databases/{db}/schemas/{schema}/pipes/{pipe}/channels/{channel}/rows
//!   ?continuationToken=…&offsetToken=…` with an NDJSON body (rows ≤ 4 MB, request ≤ 16 MB) →
//!   `next_continuation_token`.
//! - `POST {ingest}/v2/streaming/databases/{db}/schemas/{schema}/pipes/{pipe}:bulk-channel-status` with
//!   `{"channel_names": [...]}` → `channel_statuses` (with `last_committed_offset_token`).
//! - Errors: `{"code": "...", "message": "..."}`, e.g. `STALE_CONTINUATION_TOKEN_SEQUENCER`.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::streaming::jwt::KeyPair;

/// Largest NDJSON rows payload of one append request: 4 MB (Snowflake's documented limit for `rows`).
pub const MAX_APPEND_BYTES: usize = 4_000_000;

/// Scoped tokens are exchanged again after this long (Snowflake's tokens last about an hour).
const TOKEN_REFRESH: Duration = Duration::from_secs(50 * 60);

/// What a failed request means.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Retry after a backoff: network, timeout, HTTP 429 / 5xx, an expired token (401, refreshed first).
    #[error("transient {code}: {message}")]
    Transient {
        /// `network`, `timeout`, `http_<status>` or the service's code.
        code: String,
        /// What happened.
        message: String,
    },
    /// The continuation token is stale or invalid: re-open the channel and resend after its committed token.
    #[error("reopen channel ({code}): {message}")]
    Reopen {
        /// The service's code.
        code: String,
        /// Its message.
        message: String,
    },
    /// Retrying cannot help (bad request, missing pipe, forbidden).
    #[error("failed {code}: {message}")]
    Fatal {
        /// The service's code or `http_<status>`.
        code: String,
        /// Its message.
        message: String,
    },
}

impl ApiError {
    /// The code part.
    pub fn code(&self) -> &str {
        match self {
            ApiError::Transient { code, .. } | ApiError::Reopen { code, .. } | ApiError::Fatal { code, .. } => code,
        }
    }
}

/// One channel's status (`channel_status` / `channel_statuses[name]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ChannelStatus {
    /// e.g. `ACTIVE`.
    pub channel_status_code: Option<String>,
    /// Latest committed offset token.
    pub last_committed_offset_token: Option<String>,
    /// Rows inserted.
    pub rows_inserted: Option<u64>,
    /// Rows parsed.
    pub rows_parsed: Option<u64>,
    /// Rows rejected, as open-channel answers name it.
    pub rows_error_count: Option<u64>,
    /// Rows rejected, as bulk-channel-status names it.
    pub rows_errors: Option<u64>,
    /// Message of the latest error (customer data redacted by Snowflake).
    pub last_error_message: Option<String>,
    /// The latest error sits at or before this committed offset token.
    pub last_error_offset_upper_bound: Option<String>,
}

impl ChannelStatus {
    /// Rows rejected so far (whichever name the endpoint used).
    pub fn errors(&self) -> u64 {
        self.rows_error_count.or(self.rows_errors).unwrap_or(0)
    }

    /// The committed offset token as a Kafka offset (tokens this sink writes are decimal offsets).
    pub fn committed_offset(&self) -> Option<u64> {
        self.last_committed_offset_token.as_deref().and_then(|t| t.parse().ok())
    }
}

/// Open-channel answer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct OpenChannel {
    /// Token for the first append.
    pub next_continuation_token: String,
    /// Channel status at open.
    #[serde(default)]
    pub channel_status: ChannelStatus,
}

#[derive(Deserialize)]
struct NextToken {
    next_continuation_token: String,
}

#[derive(Deserialize)]
struct Statuses {
    #[serde(default)]
    channel_statuses: HashMap<String, ChannelStatus>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

struct Scoped {
    ingest: Url,
    token: String,
    obtained: Instant,
}

/// The REST client; one per sink, shared by its writers.
pub struct StreamingApi {
    http: reqwest::Client,
    account_url: Url,
    account: String,
    user: String,
    database: String,
    schema: String,
    key: KeyPair,
    scoped: Mutex<Option<Scoped>>,
}

impl std::fmt::Debug for StreamingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingApi").field("account_url", &self.account_url.as_str()).finish_non_exhaustive()
    }
}

fn seg(s: &str) -> String {
    // Path segments: identifiers and channel names are [A-Za-z0-9_$-]; escape anything else.
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.$".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn from_reqwest(e: &reqwest::Error) -> ApiError {
    let code = if e.is_timeout() { "timeout" } else { "network" };
    ApiError::Transient { code: code.into(), message: e.to_string() }
}

fn from_status(status: StatusCode, body: &[u8]) -> ApiError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed.code.unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = parsed.message.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    if code.contains("CONTINUATION_TOKEN") {
        ApiError::Reopen { code, message }
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::UNAUTHORIZED
        || status.is_server_error()
    {
        ApiError::Transient { code, message }
    } else {
        ApiError::Fatal { code, message }
    }
}

/// Sends an account-endpoint request authenticated with the key-pair JWT; the body text on success.
async fn with_jwt(req: reqwest::RequestBuilder, jwt: &str) -> Result<String, ApiError> {
    let resp = req
        .bearer_auth(jwt)
        .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
        .send()
        .await
        .map_err(|e| from_reqwest(&e))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| from_reqwest(&e))?;
    match from_status(status, body.as_bytes()) {
        _ if status.is_success() => Ok(body),
        // A JWT the account refuses is a key or user problem, not a passing one.
        ApiError::Transient { code, message } if status == StatusCode::UNAUTHORIZED => {
            Err(ApiError::Fatal { code, message })
        }
        e => Err(e),
    }
}

/// A token in a body that is either `{"<field>": "..."}` or the bare value (both are seen in practice).
fn token_field(body: &str, field: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(field).and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().trim_matches('"').to_owned())
}

impl StreamingApi {
    /// A client for the account at `account_url` (`https://<account>.snowflakecomputing.com/`, or a double's
    /// URL; the ingest host is reached with the same scheme).
    ///
    /// # Errors
    /// When the URL does not parse or the HTTP client cannot be built.
    pub fn new(
        account_url: &str,
        account: &str,
        user: &str,
        database: &str,
        schema: &str,
        key: KeyPair,
        request_timeout: Duration,
    ) -> Result<StreamingApi, String> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("millionx-sink-snowflake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(StreamingApi {
            http,
            account_url: Url::parse(account_url).map_err(|e| format!("host: {e}"))?,
            account: account.to_owned(),
            user: user.to_owned(),
            database: database.to_owned(),
            schema: schema.to_owned(),
            key,
            scoped: Mutex::new(None),
        })
    }

    fn jwt(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        self.key.jwt(&self.account, &self.user, now, 3540)
    }

    /// Discovers the ingest host and exchanges the JWT for a scoped token (cached; refreshed on 401 or age).
    async fn scoped(&self) -> Result<(Url, String), ApiError> {
        let mut guard = self.scoped.lock().await;
        if let Some(s) = guard.as_ref() {
            if s.obtained.elapsed() < TOKEN_REFRESH {
                return Ok((s.ingest.clone(), s.token.clone()));
            }
        }
        let jwt = self.jwt();
        let url = self.account_url.join("v2/streaming/hostname").map_err(|e| fatal_url(&e))?;
        let body = with_jwt(self.http.get(url), &jwt).await?;
        let hostname = token_field(&body, "hostname");
        let ingest = Url::parse(&format!("{}://{hostname}/", self.account_url.scheme()))
            .map_err(|e| ApiError::Fatal { code: "bad_hostname".into(), message: format!("{hostname:?}: {e}") })?;
        let url = self.account_url.join("oauth/token").map_err(|e| fatal_url(&e))?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("scope", hostname.as_str())];
        let body = with_jwt(self.http.post(url).form(&form), &jwt).await?;
        let token = token_field(&body, "token");
        *guard = Some(Scoped { ingest: ingest.clone(), token: token.clone(), obtained: Instant::now() });
        Ok((ingest, token))
    }

    /// Discovers the ingest host and obtains a scoped token: the connection and credentials check.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn check(&self) -> Result<(), ApiError> {
        self.scoped().await.map(|_| ())
    }

    async fn forget_token(&self) {
        *self.scoped.lock().await = None;
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Vec<u8>, ApiError> {
        let (ingest, token) = self.scoped().await?;
        let mut url = ingest.join(path).map_err(|e| fatal_url(&e))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("requestId", &uuid::Uuid::new_v4().to_string());
        }
        let mut req =
            self.http.request(method, url).bearer_auth(token).header("X-Snowflake-Authorization-Token-Type", "OAUTH");
        if let Some((content_type, bytes)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|e| from_reqwest(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| from_reqwest(&e))?;
        if status == StatusCode::UNAUTHORIZED {
            self.forget_token().await;
        }
        if !status.is_success() {
            return Err(from_status(status, &bytes));
        }
        Ok(bytes.to_vec())
    }

    fn pipe_path(&self, pipe: &str) -> String {
        format!("v2/streaming/databases/{}/schemas/{}/pipes/{}", seg(&self.database), seg(&self.schema), seg(pipe))
    }

    /// Opens or re-opens `channel` on `pipe`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn open_channel(&self, pipe: &str, channel: &str) -> Result<OpenChannel, ApiError> {
        let path = format!("{}/channels/{}", self.pipe_path(pipe), seg(channel));
        let body = self.call(Method::PUT, &path, &[], Some(("application/json", b"{}".to_vec()))).await?;
        serde_json::from_slice(&body).map_err(|e| bad_body("open channel", &e))
    }

    /// Appends NDJSON `rows` (each line ending in `\n`, ≤ [`MAX_APPEND_BYTES`]) and returns the next
    /// continuation token.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn append_rows(
        &self,
        pipe: &str,
        channel: &str,
        continuation_token: &str,
        offset_token: &str,
        rows: Vec<u8>,
    ) -> Result<String, ApiError> {
        let path = format!(
            "v2/streaming/data/databases/{}/schemas/{}/pipes/{}/channels/{}/rows",
            seg(&self.database),
            seg(&self.schema),
            seg(pipe),
            seg(channel)
        );
        let query = [("continuationToken", continuation_token), ("offsetToken", offset_token)];
        let body = self.call(Method::POST, &path, &query, Some(("application/x-ndjson", rows))).await?;
        serde_json::from_slice::<NextToken>(&body)
            .map(|t| t.next_continuation_token)
            .map_err(|e| bad_body("append rows", &e))
    }

    /// Reads the status of `channels` on `pipe` (channels unknown to the service are absent).
    ///
    /// # Errors
    /// The classified failure.
    pub async fn channel_status(
        &self,
        pipe: &str,
        channels: &[String],
    ) -> Result<HashMap<String, ChannelStatus>, ApiError> {
        let path = format!("{}:bulk-channel-status", self.pipe_path(pipe));
        let req = serde_json::to_vec(&serde_json::json!({ "channel_names": channels }))
            .map_err(|e| bad_body("channel status request", &e))?;
        let body = self.call(Method::POST, &path, &[], Some(("application/json", req))).await?;
        serde_json::from_slice::<Statuses>(&body)
            .map(|s| s.channel_statuses)
            .map_err(|e| bad_body("channel status", &e))
    }
}

fn fatal_url(e: &impl std::fmt::Display) -> ApiError {
    ApiError::Fatal { code: "bad_url".into(), message: e.to_string() }
}

fn bad_body(what: &str, e: &serde_json::Error) -> ApiError {
    ApiError::Fatal { code: "bad_response".into(), message: format!("{what}: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_status_and_code() {
        let stale = br#"{"code":"STALE_CONTINUATION_TOKEN_SEQUENCER","message":"reopen"}"#;
        assert!(matches!(from_status(StatusCode::BAD_REQUEST, stale), ApiError::Reopen { .. }));
        assert!(matches!(from_status(StatusCode::TOO_MANY_REQUESTS, b""), ApiError::Transient { .. }));
        assert!(matches!(from_status(StatusCode::SERVICE_UNAVAILABLE, b"busy"), ApiError::Transient { .. }));
        let e = from_status(StatusCode::NOT_FOUND, br#"{"code":"PIPE_NOT_FOUND","message":"no pipe"}"#);
        assert_eq!(e, ApiError::Fatal { code: "PIPE_NOT_FOUND".into(), message: "no pipe".into() });
        assert_eq!(from_status(StatusCode::FORBIDDEN, b"no").code(), "http_403");
    }

    #[test]
    fn tokens_in_json_or_plain_bodies() {
        assert_eq!(token_field(r#"{"token":"abc"}"#, "token"), "abc");
        assert_eq!(token_field("abc\n", "token"), "abc");
        assert_eq!(token_field(r#"{"hostname":"h.example:1"}"#, "hostname"), "h.example:1");
        assert_eq!(seg("SOCIAL_POSTS-STREAMING"), "SOCIAL_POSTS-STREAMING");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}
