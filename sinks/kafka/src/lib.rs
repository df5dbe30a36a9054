//! MillionX Kafka sink: [`dlq::KafkaWriter`], a `BatchWriter` producing dead letters to the DLQ topic
//! (`kafka.dlq_topic`) with an idempotent producer, reason and source coordinates as headers.
//!
//! The producer settings come from the `[kafka]` table of `millionx_kafka_client`, which the Kafka source
//! shares: a sink never imports a source (`ops/CONTEXT.md`).

pub mod dlq;

pub use dlq::KafkaWriter;
