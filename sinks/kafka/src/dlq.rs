//! Dead letters to Kafka: a [`BatchWriter`] over an idempotent producer.
//!
//! Each record of a batch (the DLQ encoder's JSON) becomes one message on the DLQ topic, keyed by its source
//! coordinates `topic/partition/offset`, with headers `reason`, `source.topic`, `source.partition`,
//! `source.offset`. A batch completes when the broker acknowledged every message of it (acks=all); a delivery
//! that fails after librdkafka's retries (`message.timeout.ms`) is a fatal [`SinkError`]: nothing of the batch
//! is acknowledged, so no input offset behind it is committed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, SinkError, WriteOutcome};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use millionx_kafka_client::KafkaConfig;

#[derive(Default)]
struct Progress {
    /// seq → (messages not yet acknowledged, first delivery error)
    open: BTreeMap<u64, (usize, Option<String>)>,
}

/// Routes delivery reports to their batch.
pub struct DlqContext {
    progress: Arc<Mutex<Progress>>,
}

impl ClientContext for DlqContext {}

impl ProducerContext for DlqContext {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        if let Ok(mut p) = self.progress.lock() {
            if let Some((left, error)) = p.open.get_mut(&seq) {
                *left = left.saturating_sub(1);
                if let Err((e, _)) = result {
                    error.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Produces DLQ batches to a Kafka topic.
pub struct KafkaWriter {
    name: String,
    topic: String,
    producer: BaseProducer<DlqContext>,
    progress: Arc<Mutex<Progress>>,
    batches: BTreeMap<u64, EncodedBatch>,
}

impl KafkaWriter {
    /// A writer for sink `name` producing to `config.dlq_topic` on `dlq_brokers` (else `brokers`).
    ///
    /// Errors: the producer cannot be created (invalid client settings).
    pub fn new(name: &str, config: &KafkaConfig, worker: usize) -> Result<KafkaWriter, SinkError> {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let producer = config
            .dlq_producer_config(&format!("millionx-dlq-w{worker}"))
            .create_with_context(DlqContext { progress: Arc::clone(&progress) })
            .map_err(|e| SinkError { sink: name.to_owned(), message: format!("creating the producer: {e}") })?;
        Ok(KafkaWriter {
            name: name.to_owned(),
            topic: config.dlq_topic.clone(),
            producer,
            progress,
            batches: BTreeMap::new(),
        })
    }

    fn fail(&self, message: String) -> SinkError {
        SinkError { sink: self.name.clone(), message }
    }
}

/// The `reason` field of one DLQ encoder record (it is the first key the encoder writes).
fn reason_of(record: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct R {
        reason: String,
    }
    serde_json::from_slice::<R>(record).map(|r| r.reason).unwrap_or_else(|_| "unknown".to_owned())
}

impl BatchWriter for KafkaWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        let seq = batch.seq;
        if let Ok(mut p) = self.progress.lock() {
            p.open.insert(seq, (batch.items.len(), None));
        }
        for item in &batch.items {
            let record = batch.body.get(item.span.clone()).unwrap_or_default();
            let o = item.origin;
            let (partition, offset) = (o.partition.to_string(), o.offset.to_string());
            let key = format!("{}/{partition}/{offset}", o.stream.topic());
            let reason = reason_of(record);
            let headers = OwnedHeaders::new()
                .insert(Header { key: "reason", value: Some(reason.as_str()) })
                .insert(Header { key: "source.topic", value: Some(o.stream.topic()) })
                .insert(Header { key: "source.partition", value: Some(partition.as_str()) })
                .insert(Header { key: "source.offset", value: Some(offset.as_str()) });
            let mut rec =
                BaseRecord::with_opaque_to(&self.topic, Box::new(seq)).key(&key).payload(record).headers(headers);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        if let Ok(mut p) = self.progress.lock() {
                            if let Some((left, error)) = p.open.get_mut(&seq) {
                                *left = left.saturating_sub(1);
                                error.get_or_insert_with(|| e.to_string());
                            }
                        }
                        break;
                    }
                }
            }
        }
        self.batches.insert(seq, batch);
    }

    fn poll(&mut self) -> Vec<Completion> {
        self.producer.poll(Duration::ZERO);
        let done: Vec<(u64, Option<String>)> = match self.progress.lock() {
            Ok(mut p) => {
                let seqs: Vec<u64> = p.open.iter().filter(|(_, (left, _))| *left == 0).map(|(s, _)| *s).collect();
                seqs.into_iter().filter_map(|s| p.open.remove(&s).map(|(_, e)| (s, e))).collect()
            }
            Err(_) => Vec::new(),
        };
        let mut out = Vec::new();
        for (seq, error) in done {
            let Some(batch) = self.batches.remove(&seq) else { continue };
            let result = match error {
                None => Ok(WriteOutcome::default()),
                Some(e) => Err(self.fail(format!("producing to `{}`: {e}", self.topic))),
            };
            out.push(Completion { seq, result, batch });
        }
        out
    }

    fn in_flight(&self) -> usize {
        self.batches.len()
    }

    fn max_in_flight(&self) -> usize {
        4
    }
}

impl Drop for KafkaWriter {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(10));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_read_from_the_encoded_record() {
        assert_eq!(reason_of(br#"{"reason":"missing_field:postId","source":{"topic":"t"}}"#), "missing_field:postId");
        assert_eq!(reason_of(b"not json"), "unknown");
    }
}
