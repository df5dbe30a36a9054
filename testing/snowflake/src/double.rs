//! A double of the Snowpipe Streaming REST API, written from Snowflake's documented contract (see
//! [`millionx_sink_snowflake::streaming::api`]). It validates what a client sends and behaves as the service is
//! documented to:
//! - the account endpoints (`/v2/streaming/hostname`, `/oauth/token`) need a valid RS256 key-pair JWT for
//!   the configured account, user and public key; data endpoints need the scoped token it issued;
//! - pipes are `<TABLE><suffix>` for the four tables; database and schema must match;
//! - open channel bumps the client sequencer, discards rows of older sequencers not yet committed and
//!   returns the committed offset token; an append must carry the latest continuation token
//!   (`STALE_CONTINUATION_TOKEN_SEQUENCER` / `INVALID_CONTINUATION_TOKEN` otherwise), an NDJSON body
//!   (`Content-Type: application/x-ndjson`, each line a JSON object ending in `\n`, ≤ 4 MB);
//! - rows are checked against the table's columns and types (unknown column, wrong type, NULL key →
//!   counted in `rows_error_count` with a message, not inserted); accepted rows are committed, and the
//!   offset token advanced, `commit_delay` after the append;
//! - faults: every n-th append can answer 429 or 503 without applying anything.

// Handlers return ready-made error responses from their checks; they are test tooling, not a hot path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use millionx_sink_snowflake::streaming::jwt;
use millionx_sink_snowflake::tables::{Table, TableSchema};

/// What the double expects and how it behaves.
#[derive(Clone, Debug)]
pub struct DoubleConfig {
    /// Account identifier the JWT must name.
    pub account: String,
    /// User the JWT must name.
    pub user: String,
    /// SPKI PEM of the user's registered public key.
    pub public_key_pem: String,
    /// Database (case-insensitive).
    pub database: String,
    /// Schema (case-insensitive).
    pub schema: String,
    /// Pipe suffix after the table name.
    pub pipe_suffix: String,
    /// Delay between an append and its commit.
    pub commit_delay: Duration,
}

impl DoubleConfig {
    /// The double the test tooling uses: account `testorg-acct`, user `millionx`, `MILLIONX.RAW_DATA`, pipes
    /// `<TABLE>-STREAMING` (what [`crate::fakesnow::streaming_config`] points at).
    pub fn for_tests(public_key_pem: String, commit_delay: Duration) -> DoubleConfig {
        DoubleConfig {
            account: "testorg-acct".into(),
            user: "millionx".into(),
            public_key_pem,
            database: "MILLIONX".into(),
            schema: "RAW_DATA".into(),
            pipe_suffix: "-STREAMING".into(),
            commit_delay,
        }
    }
}

/// Injected failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every n-th append (counting all appends) fails with `status` without being applied; 0 = never.
    pub every_nth_append: u64,
    /// 429 or 503.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Channel {
    client_seq: u64,
    row_seq: u64,
    committed_token: Option<String>,
    pending: Vec<Pending>,
    rows_inserted: u64,
    rows_parsed: u64,
    rows_errors: u64,
    last_error_message: Option<String>,
    last_error_offset_upper_bound: Option<String>,
    created_on_ms: u64,
}

#[derive(Debug)]
struct Pending {
    ready_at: Instant,
    client_seq: u64,
    rows: Vec<Value>,
    token: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    scoped_tokens: Vec<String>,
    channels: HashMap<(String, String), Channel>,
    tables: HashMap<Table, Vec<Value>>,
    appends: u64,
    faults: Faults,
}

struct Shared {
    config: DoubleConfig,
    host: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn table_of(&self, pipe: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| pipe.eq_ignore_ascii_case(&format!("{}{}", t.name(), self.config.pipe_suffix)))
    }
}

/// A running double on 127.0.0.1; stops on drop.
pub struct StreamingDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for StreamingDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingDouble").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "code": code, "message": message.into() }))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn check_jwt(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = bearer(headers).ok_or_else(|| error(StatusCode::UNAUTHORIZED, "MISSING_TOKEN", "no bearer token"))?;
    let claims = jwt::verify(token, &shared.config.public_key_pem)
        .map_err(|e| error(StatusCode::UNAUTHORIZED, "INVALID_JWT", e))?;
    let fp = jwt::fingerprint(
        &<rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_pem(&shared.config.public_key_pem)
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "DOUBLE_KEY", e.to_string()))?,
    )
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "DOUBLE_KEY", e))?;
    let qualified =
        format!("{}.{}", jwt::claim_account(&shared.config.account), shared.config.user.to_ascii_uppercase());
    if claims.sub != qualified || claims.iss != format!("{qualified}.{fp}") {
        return Err(error(StatusCode::UNAUTHORIZED, "INVALID_JWT", "iss/sub do not name this account, user and key"));
    }
    let now = now_s();
    if claims.exp <= now || claims.iat > now + 60 || claims.exp - claims.iat > 3600 {
        return Err(error(StatusCode::UNAUTHORIZED, "JWT_EXPIRED", "token expired or lifetime over 1 h"));
    }
    Ok(())
}

fn check_scoped(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = bearer(headers).ok_or_else(|| error(StatusCode::UNAUTHORIZED, "MISSING_TOKEN", "no bearer token"))?;
    if shared.lock().scoped_tokens.iter().any(|t| t == token) {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", "unknown scoped token"))
    }
}

/// A data-endpoint request: the scoped token, then the database, schema and pipe names.
fn authorize(shared: &Shared, headers: &HeaderMap, db: &str, schema: &str, pipe: &str) -> Result<Table, Response> {
    check_scoped(shared, headers)?;
    check_names(shared, db, schema, pipe)
}

fn check_names(shared: &Shared, db: &str, schema: &str, pipe: &str) -> Result<Table, Response> {
    if !db.eq_ignore_ascii_case(&shared.config.database) || !schema.eq_ignore_ascii_case(&shared.config.schema) {
        return Err(error(StatusCode::NOT_FOUND, "DATABASE_OR_SCHEMA_NOT_FOUND", format!("{db}.{schema}")));
    }
    shared.table_of(pipe).ok_or_else(|| error(StatusCode::NOT_FOUND, "PIPE_NOT_FOUND", format!("pipe {pipe}")))
}

/// Commits every pending append whose delay has passed.
fn promote(state: &mut State, now: Instant, table_of: impl Fn(&str) -> Option<Table>) {
    for ((pipe, _), ch) in state.channels.iter_mut() {
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut ch.pending).into_iter().partition(|p| p.ready_at <= now);
        ch.pending = waiting;
        for p in ready {
            ch.rows_inserted += p.rows.len() as u64;
            if let Some(t) = table_of(pipe) {
                state.tables.entry(t).or_default().extend(p.rows);
            }
            if p.token.is_some() {
                ch.committed_token = p.token;
            }
        }
    }
}

/// A channel's status; the error count is named `rows_error_count` in open-channel answers and `rows_errors`
/// in bulk-channel-status answers, as the documentation shows them.
fn status_json(db: &str, schema: &str, pipe: &str, name: &str, ch: &Channel, bulk: bool) -> Value {
    let mut v = json!({
        "database_name": db.to_ascii_uppercase(), "schema_name": schema.to_ascii_uppercase(),
        "pipe_name": pipe.to_ascii_uppercase(), "channel_name": name,
        "channel_status_code": "ACTIVE", "last_committed_offset_token": ch.committed_token,
        "created_on_ms": ch.created_on_ms, "rows_inserted": ch.rows_inserted, "rows_parsed": ch.rows_parsed,
        "last_error_offset_upper_bound": ch.last_error_offset_upper_bound,
        "last_error_message": ch.last_error_message, "snowflake_avg_processing_latency_ms": 0,
    });
    v[if bulk { "rows_errors" } else { "rows_error_count" }] = json!(ch.rows_errors);
    v
}

async fn hostname(AxState(shared): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = check_jwt(&shared, &headers) {
        return r;
    }
    Json(json!({ "hostname": shared.host })).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    scope: String,
}

async fn oauth_token(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Err(r) = check_jwt(&shared, &headers) {
        return r;
    }
    if form.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return error(StatusCode::BAD_REQUEST, "UNSUPPORTED_GRANT_TYPE", form.grant_type);
    }
    if form.scope != shared.host {
        return error(StatusCode::BAD_REQUEST, "INVALID_SCOPE", "scope must be the ingest host name");
    }
    let token = format!("scoped-{}", uuid::Uuid::new_v4());
    shared.lock().scoped_tokens.push(token.clone());
    // Snowflake answers with the bare token.
    token.into_response()
}

async fn open_channel(
    AxState(shared): AxState<Arc<Shared>>,
    Path((db, schema, pipe, channel)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &db, &schema, &pipe) {
        return r;
    }
    let table_of = |p: &str| shared.table_of(p);
    let mut state = shared.lock();
    promote(&mut state, Instant::now(), table_of);
    let ch = state.channels.entry((pipe.to_ascii_uppercase(), channel.clone())).or_default();
    if ch.created_on_ms == 0 {
        ch.created_on_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1);
    }
    ch.client_seq += 1;
    ch.row_seq = 0;
    let seq = ch.client_seq;
    // Rows appended under an older sequencer and not yet committed are discarded.
    ch.pending.retain(|p| p.client_seq == seq);
    Json(json!({
        "next_continuation_token": format!("{}_{}", ch.client_seq, ch.row_seq),
        "channel_status": status_json(&db, &schema, &pipe, &channel, ch, false),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct AppendQuery {
    #[serde(rename = "continuationToken")]
    continuation_token: Option<String>,
    #[serde(rename = "offsetToken")]
    offset_token: Option<String>,
}

/// Why a row does not fit `table`.
fn row_error(table: Table, row: &Value) -> Option<String> {
    let Some(obj) = row.as_object() else {
        return Some("row is not a JSON object".into());
    };
    for (key, value) in obj {
        match table.columns().iter().find(|(c, _)| c == key) {
            None => return Some(format!("unknown column {key}")),
            Some((_, t)) if !t.accepts(value) => return Some(format!("column {key}: wrong type")),
            _ => {}
        }
    }
    table
        .key_columns()
        .iter()
        .find(|k| obj.get(**k).is_none_or(Value::is_null))
        .map(|k| format!("NULL result in a non-nullable column {k}"))
}

async fn append_rows(
    AxState(shared): AxState<Arc<Shared>>,
    Path((db, schema, pipe, channel)): Path<(String, String, String, String)>,
    Query(q): Query<AppendQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let table = match authorize(&shared, &headers, &db, &schema, &pipe) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-ndjson") {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "INVALID_CONTENT_TYPE", "use application/x-ndjson");
    }
    if body.len() > 4_000_000 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "rows over 4 MB");
    }
    let Some(token) = q.continuation_token else {
        return error(StatusCode::BAD_REQUEST, "MISSING_CONTINUATION_TOKEN", "continuationToken is required");
    };
    let table_of = |p: &str| shared.table_of(p);
    let mut state = shared.lock();
    state.appends += 1;
    let faults = state.faults;
    if faults.every_nth_append > 0 && state.appends % faults.every_nth_append == 0 {
        let status = StatusCode::from_u16(faults.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return error(status, if faults.status == 429 { "THROTTLED" } else { "SERVICE_UNAVAILABLE" }, "injected fault");
    }
    promote(&mut state, Instant::now(), table_of);
    let Some(ch) = state.channels.get_mut(&(pipe.to_ascii_uppercase(), channel)) else {
        return error(StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND", "open the channel first");
    };
    let (seq, row_seq) = match token.split_once('_').map(|(a, b)| (a.parse::<u64>(), b.parse::<u64>())) {
        Some((Ok(a), Ok(b))) => (a, b),
        _ => return error(StatusCode::BAD_REQUEST, "INVALID_CONTINUATION_TOKEN", "malformed continuation token"),
    };
    if seq != ch.client_seq {
        return error(
            StatusCode::BAD_REQUEST,
            "STALE_CONTINUATION_TOKEN_SEQUENCER",
            "Channel sequencer in the continuation token is stale. Please reopen the channel",
        );
    }
    if row_seq != ch.row_seq {
        return error(StatusCode::BAD_REQUEST, "INVALID_CONTINUATION_TOKEN", "row sequencer does not match");
    }
    if body.is_empty() || !body.ends_with(b"\n") {
        return error(StatusCode::BAD_REQUEST, "INVALID_NDJSON", "each JSON text must end with a newline");
    }
    let mut rows = Vec::new();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, "INVALID_NDJSON", format!("not RFC 8259 JSON: {e}")),
        };
        ch.rows_parsed += 1;
        match row_error(table, &value) {
            Some(msg) => {
                ch.rows_errors += 1;
                ch.last_error_message = Some(msg);
                ch.last_error_offset_upper_bound = q.offset_token.clone();
            }
            None => rows.push(value),
        }
    }
    ch.row_seq += 1;
    let delay = shared.config.commit_delay;
    ch.pending.push(Pending {
        ready_at: Instant::now() + delay,
        client_seq: ch.client_seq,
        rows,
        token: q.offset_token,
    });
    Json(json!({ "next_continuation_token": format!("{}_{}", ch.client_seq, ch.row_seq) })).into_response()
}

#[derive(Deserialize)]
struct StatusBody {
    channel_names: Vec<String>,
}

async fn bulk_status(
    AxState(shared): AxState<Arc<Shared>>,
    Path((db, schema, pipe_op)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<StatusBody>,
) -> Response {
    let Some(pipe) = pipe_op.strip_suffix(":bulk-channel-status") else {
        return error(StatusCode::NOT_FOUND, "UNKNOWN_OPERATION", pipe_op);
    };
    if let Err(r) = authorize(&shared, &headers, &db, &schema, pipe) {
        return r;
    }
    let table_of = |p: &str| shared.table_of(p);
    let mut state = shared.lock();
    promote(&mut state, Instant::now(), table_of);
    let mut out = serde_json::Map::new();
    for name in body.channel_names {
        if let Some(ch) = state.channels.get(&(pipe.to_ascii_uppercase(), name.clone())) {
            out.insert(name.clone(), status_json(&db, &schema, pipe, &name, ch, true));
        }
    }
    Json(json!({ "channel_statuses": out })).into_response()
}

async fn drop_channel(
    AxState(shared): AxState<Arc<Shared>>,
    Path((db, schema, pipe, channel)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &db, &schema, &pipe) {
        return r;
    }
    shared.lock().channels.remove(&(pipe.to_ascii_uppercase(), channel));
    StatusCode::OK.into_response()
}

impl StreamingDouble {
    /// Starts the double on a free port of 127.0.0.1, on its own thread and runtime.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub fn start(config: DoubleConfig) -> Result<StreamingDouble, String> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared { config, host: addr.to_string(), state: Mutex::new(State::default()) });
        let base = "/v2/streaming/databases/{db}/schemas/{schema}/pipes";
        let app = Router::new()
            .route("/v2/streaming/hostname", get(hostname))
            .route("/oauth/token", post(oauth_token))
            .route(&format!("{base}/{{pipe}}/channels/{{channel}}"), put(open_channel).delete(drop_channel))
            .route(&format!("{base}/{{pipe}}"), post(bulk_status))
            .route(
                "/v2/streaming/data/databases/{db}/schemas/{schema}/pipes/{pipe}/channels/{channel}/rows",
                post(append_rows),
            )
            .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
            .with_state(Arc::clone(&shared));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("snowpipe-double".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(StreamingDouble { addr, shared, shutdown: Some(tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>` (account URL and ingest host are the same server).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the injected failures.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// Committed rows of `table`, in commit order.
    pub fn rows(&self, table: Table) -> Vec<Value> {
        let mut state = self.shared.lock();
        promote(&mut state, Instant::now(), |p| self.shared.table_of(p));
        state.tables.get(&table).cloned().unwrap_or_default()
    }

    /// Committed offset token of a channel on `table`'s pipe.
    pub fn committed_token(&self, table: Table, channel: &str) -> Option<String> {
        let mut state = self.shared.lock();
        promote(&mut state, Instant::now(), |p| self.shared.table_of(p));
        let pipe = format!("{}{}", table.name(), self.shared.config.pipe_suffix).to_ascii_uppercase();
        state.channels.get(&(pipe, channel.to_owned())).and_then(|c| c.committed_token.clone())
    }

    /// Appends received so far (including failed ones).
    pub fn appends(&self) -> u64 {
        self.shared.lock().appends
    }
}

impl Drop for StreamingDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
