//! How MillionX records look on the wire of each sink. Pure: no I/O.
//!
//! - [`snowflake`]: one JSON object per row, keys = Snowflake column names (PIPELINE.md field names in
//!   upper snake case), for `SOCIAL_POSTS`, `MARKET_ORDERS`, `PRICE_HISTORY`, `WEATHER_LOGS`.
//! - [`weaviate`]: objects of a `POST /v1/batch/objects` body, ids UUIDv5 per PIPELINE.md.
//! - [`dlq`]: dead letters; [`quality`]: closed data-quality windows.
//!
//! The same encoders feed the file sinks (embedded default) and the network sinks, so the files under
//! `out/` are byte for byte what the services receive (apart from `INGESTED_AT`).

pub mod dlq;
pub mod json;
pub mod quality;
pub mod snowflake;
pub mod weaviate;

/// How source coordinates are named in outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceNaming {
    /// JSON Lines replay: `{"file": "social.jsonl", "line": N}` (line = offset + 1).
    File,
    /// Kafka: `{"topic": .., "partition": .., "offset": ..}`.
    Kafka,
}
