//! What every MillionX Kafka client shares: the `[kafka]` table ([`KafkaConfig`]) with the librdkafka
//! consumer and idempotent-producer settings derived from it, a delivery-counting producer context
//! ([`CountingContext`]) and the watermark-marker header ([`WATERMARK_HEADER`]).
//!
//! Its users are siblings that may not import each other (`ops/CONTEXT.md`): the Kafka source
//! (`sources/kafka`), the DLQ producer (`sinks/kafka`) and the weather fetcher's producer
//! (`sources/weather`). It sits beside `dataflow/` so that each of them can depend on it.

pub mod config;
pub mod delivery;

pub use config::{KafkaArgs, KafkaConfig, OffsetReset};
pub use delivery::CountingContext;

/// Header naming a watermark marker: a message with a null payload whose header value is an event time in
/// Unix ms (decimal ASCII) that no later message of the same partition undercuts. The weather fetcher
/// (`millionx weather fetch --kafka-brokers`) writes one to every partition of its topic after each round;
/// the Kafka source turns it into a watermark report of that partition instead of a line.
pub const WATERMARK_HEADER: &str = "millionx-watermark";
