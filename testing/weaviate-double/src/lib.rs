//! An in-process Weaviate REST double for MillionX tests (no Weaviate server runs on the build machines).
//!
//! [`WeaviateDouble::start`] serves `http://127.0.0.1:<port>` from a background thread until dropped. It
//! behaves as Weaviate's REST API does (facts from `../shared/reference/weaviate/CONTRACT.md`, which names
//! the server code they come from):
//! - every request body is validated against MillionX's own JSON Schemas for those bodies (`schemas/`,
//!   written from the Swagger 2.0 spec), with the go-openapi framework's status codes and
//!   `{"code":N,"message":"..."}` shape: 400 for a body that does not parse into the model (wrong JSON
//!   types), 422 with codes ≥ 600 for format and enum failures (an `id` that is not a UUID rejects the
//!   whole batch);
//! - `POST /v1/batch/objects` answers 200 with one `ObjectsGetResponse` per object, failures inside
//!   (`result.errors.error[].message`); property values are checked against the class schema with the
//!   server's messages; the first vector written to a class fixes its dimension; duplicate ids inside a
//!   batch: the last one is written and the earlier ones are reported `SUCCESS`; an existing id is
//!   overwritten (idempotent upsert);
//! - auto-schema (on by default, as `AUTOSCHEMA_ENABLED` is): an unknown class or property is created
//!   with inferred types (string → `text`, RFC 3339 string → `date`, UUID string → `uuid`, number →
//!   `number`, bool → `boolean`);
//! - schema endpoints `GET/POST /v1/schema`, `GET/DELETE /v1/schema/{class}` with the server's
//!   defaults filled in, class names upper-cased and property names lower-cased on the first letter;
//! - `GET /v1/objects?class=C&limit=N&after=ID[&include=vector]` (cursor by id) and
//!   `GET /v1/objects/{class}/{id}`, so tests inspect the double and a real server the same way;
//! - `POST /v1/graphql` `Get` queries with `nearVector` (exact cosine search over the stored objects, distance
//!   `1 − cos`, ascending), `limit`, `offset`, properties and `_additional { id distance certainty vector }`,
//!   GraphQL errors inside a 200 answer as the server gives them (see `graphql.rs`);
//! - bearer auth when [`DoubleOptions::api_key`] is set (401 in the framework shape);
//! - faults on demand: [`Fault`] for the next batch requests, [`WeaviateDouble::fail_object`] for
//!   chosen objects.

mod class;
mod graphql;
mod server;
mod validate;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

pub use class::{fill_class_defaults, lowercase_first, uppercase_first, HNSW_DEFAULTS};

/// How the double is set up.
#[derive(Clone, Debug)]
pub struct DoubleOptions {
    /// When set, every request but `/v1/.well-known/*` needs `Authorization: Bearer <key>`
    /// (`AUTHENTICATION_APIKEY_ENABLED=true`, anonymous access off).
    pub api_key: Option<String>,
    /// Auto-schema (`AUTOSCHEMA_ENABLED`, default true): unknown classes and properties are created
    /// from the data. Off: they fail per object with the server's messages.
    pub auto_schema: bool,
}

impl Default for DoubleOptions {
    fn default() -> Self {
        DoubleOptions { api_key: None, auto_schema: true }
    }
}

/// A request-level fault, applied to the next `POST /v1/batch/objects` (one fault per request, in the
/// order pushed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Process and store the batch, then wait this long before answering: a server slower than the
    /// client's timeout, whose writes still happened.
    Delay(Duration),
    /// Answer with this status without processing: 429 with a `UsageLimitExceededResponse`, 500 with an
    /// `ErrorResponse`, any other (502, 503, 504: a proxy in front) with an empty body.
    Status(u16),
    /// Close the connection without an answer; with `after_write` the batch is stored first.
    Drop {
        /// Store the batch before dropping the connection.
        after_write: bool,
    },
}

/// An object as the double stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredObject {
    /// Class name (upper-cased first letter).
    pub class: String,
    /// Object id.
    pub id: Uuid,
    /// Property values, names lower-cased on the first letter; null values are not stored.
    pub properties: Map<String, Value>,
    /// The object's vector, if it had one.
    pub vector: Option<Vec<f64>>,
    /// First write, ms since the Unix epoch.
    pub creation_time_unix: i64,
    /// Last write, ms since the Unix epoch.
    pub last_update_time_unix: i64,
}

/// What the double has seen, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoubleStats {
    /// `POST /v1/batch/objects` requests received (authorised ones, faults included).
    pub batch_requests: u64,
    /// Objects in each batch request whose body was valid, in arrival order.
    pub batch_sizes: Vec<usize>,
    /// Object writes (an overwrite counts again).
    pub writes: u64,
    /// Objects answered `FAILED`.
    pub failed_objects: u64,
    /// Request faults applied.
    pub faults_applied: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Batch bodies rejected whole (400/422).
    pub rejected_bodies: u64,
}

struct ObjectFault {
    id: Uuid,
    message: String,
    remaining: Option<u32>,
}

#[derive(Default)]
struct Db {
    /// Class definitions as the server returns them, by name.
    classes: BTreeMap<String, Value>,
    /// Vector dimension per class, fixed by the first vector written.
    dims: HashMap<String, usize>,
    /// Objects per class, by id (cursor order).
    objects: HashMap<String, BTreeMap<Uuid, StoredObject>>,
    faults: VecDeque<Fault>,
    object_faults: Vec<ObjectFault>,
    stats: DoubleStats,
    generated_ids: u128,
}

struct Shared {
    options: DoubleOptions,
    db: Mutex<Db>,
    addr: SocketAddr,
}

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running double; stops when dropped.
pub struct WeaviateDouble {
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WeaviateDouble {
    /// Starts a double with default options (no auth, auto-schema on) on 127.0.0.1:0.
    /// Errors: binding the socket or building the runtime failed.
    pub fn start() -> std::io::Result<WeaviateDouble> {
        WeaviateDouble::start_with(DoubleOptions::default())
    }

    /// Starts a double with `options` on 127.0.0.1:0.
    pub fn start_with(options: DoubleOptions) -> std::io::Result<WeaviateDouble> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let shared = Arc::new(Shared { options, db: Mutex::new(Db::default()), addr });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("weaviate-double".into())
            .spawn(move || runtime.block_on(server::serve(listener, serving, rx)))?;
        Ok(WeaviateDouble { shared, shutdown: Some(tx), thread: Some(thread) })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Queues a fault for the next batch request not yet faulted.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.db().faults.push_back(fault);
    }

    /// Makes writes of object `id` fail with `message` (inside a 200 answer), `times` times or forever.
    pub fn fail_object(&self, id: Uuid, message: &str, times: Option<u32>) {
        self.shared.db().object_faults.push(ObjectFault { id, message: message.to_owned(), remaining: times });
    }

    /// The stored object `id` of `class`.
    pub fn object(&self, class: &str, id: Uuid) -> Option<StoredObject> {
        self.shared.db().objects.get(&uppercase_first(class)).and_then(|m| m.get(&id)).cloned()
    }

    /// Every stored object of `class`, by id.
    pub fn objects(&self, class: &str) -> Vec<StoredObject> {
        self.shared.db().objects.get(&uppercase_first(class)).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Number of stored objects of `class`.
    pub fn count(&self, class: &str) -> usize {
        self.shared.db().objects.get(&uppercase_first(class)).map_or(0, BTreeMap::len)
    }

    /// The class definition as `GET /v1/schema/{class}` returns it.
    pub fn class(&self, class: &str) -> Option<Value> {
        self.shared.db().classes.get(&uppercase_first(class)).cloned()
    }

    /// The vector dimension fixed for `class` by its first vector.
    pub fn vector_dimensions(&self, class: &str) -> Option<usize> {
        self.shared.db().dims.get(&uppercase_first(class)).copied()
    }

    /// What the double has seen so far.
    pub fn stats(&self) -> DoubleStats {
        self.shared.db().stats.clone()
    }
}

impl Drop for WeaviateDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
