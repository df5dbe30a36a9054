//! The Kafka source of MillionX, and `millionx produce`. The `[kafka]` table and the client settings are
//! `millionx_kafka_client`'s (shared with the DLQ producer, `sinks/kafka`, and the weather fetcher).
//!
//! - [`source::kafka_source`]: one rdkafka consumer per timely worker. The partitions of the three input
//!   topics are assigned to workers deterministically ([`assign::assignment`]; manual `assign`, no group
//!   rebalances), starting at the group's committed offsets (else `auto.offset.reset`).
//! - Epochs come from offsets: a message at offset `o` belongs to epoch `max(o / epoch_messages, c)`, where `c`
//!   is the source's capability. For data already in the topics this is `o / epoch_messages`, the same rule as
//!   the file source's `line / epoch_lines`, so a replay from Kafka gives the file replay's results.
//!   The capability follows the slowest partition that still has data; once every partition is caught up it
//!   moves past everything emitted, so those epochs complete and get committed.
//! - Offsets are committed ([`ledger::OffsetLedger`]) as the next offset to read, per partition, only once
//!   the sinks' acknowledged frontier (a probe on every sink's dead-letter output) has passed every epoch that
//!   holds an earlier message, and (with durable state) not beyond the newest stored checkpoint. Auto-commit
//!   and the offset store are off.
//! - Checkpoints (`millionx_dataflow::checkpoint`): at every boundary the source contributes its next offset
//!   per partition; a restored run starts at the snapshot's offsets and capability instead of the group's.
//! - Backpressure: a partition is paused while its next epoch is more than `max_epochs_unacknowledged`
//!   ahead of the acknowledged frontier; librdkafka's prefetch is bounded by `fetch_buffer_kib`.
//! - Dead letters at the source: tombstones (`parse_error`), oversize (`too_large`), key-less (`missing_key`),
//!   non-UTF-8 (`parse_error`, detail `not UTF-8: …`). Empty payloads are passed on and fail validation as
//!   `parse_error`.
//! - Watermark markers: a null-payload message with header [`millionx_kafka_client::WATERMARK_HEADER`] (Unix ms)
//!   becomes a watermark report of its partition, not a dead letter (the weather fetcher writes one per
//!   partition after each round, so its round watermark reaches a Kafka-fed pipeline).
//! - [`produce::run_produce`]: `millionx produce`, loads a data set into the topics.

pub mod assign;
pub mod highs;
pub mod ledger;
pub mod produce;
pub mod source;

/// The `[kafka]` table this source is configured by.
pub use millionx_kafka_client::{KafkaArgs, KafkaConfig, OffsetReset};
pub use produce::{run_produce, ProduceArgs};
pub use source::{kafka_source, kafka_source_for, KafkaSourceError, KafkaSourceHandle, KafkaStreams, SourceControl};
