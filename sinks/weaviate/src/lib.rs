//! The MillionX Weaviate sink.
//!
//! - [`config`]: the `[weaviate]` table (URL, API key from `WEAVIATE_API_KEY` or a file, consistency
//!   level, batch policy, concurrency, timeouts, retries) with a pure `ConnectorConfig::validate`.
//! - [`service`]: [`WeaviateWriter`], the [`millionx_sink_util::BatchWriter`] that sends
//!   `POST /v1/batch/objects` bodies, reads every object's `result.errors`, retries transient failures
//!   with jittered exponential backoff, splits on repeated timeouts, and turns permanent per-object
//!   failures into `sink_rejected:weaviate:<kind>` rejections carrying Weaviate's message.
//! - [`query`]: [`near_vector`], a GraphQL `Get` with `nearVector` (`POST /v1/graphql`) for `millionx search`.
//! - [`schema`]: `millionx weaviate schema [--verify-only | --force-recreate] [--yes] [--url URL]`
//!   ([`SchemaArgs`], [`run_schema`]) over the class definitions in `ops/weaviate/`.
//!
//! Objects are `{"class","id","properties"[,"vector"]}` with `id` = UUIDv5(NAMESPACE_DNS,
//! `"social:" + postId` / `"market:" + orderId`), so a replay overwrites instead of duplicating.

pub mod client;
pub mod config;
pub mod query;
pub mod schema;
pub mod service;

pub use config::{ConsistencyLevel, WeaviateConfig};
pub use query::{near_vector, NearHit, QueryError};
pub use schema::{run_schema, SchemaArgs};
pub use service::{WeaviateMetrics, WeaviateWriter};
