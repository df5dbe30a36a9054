//! Readings to Kafka (`context.weather`): [`KafkaSink`], an idempotent producer built from the `[kafka]`
//! table's producer settings ([`KafkaConfig::producer_config`]: `enable.idempotence`, `acks=all`,
//! `message.timeout.ms` = `kafka.delivery_timeout_ms`).
//!
//! - Each reading is one message: key = our city name (`Dhaka`), payload = the reading's JSON line, exactly
//!   what `--out FILE` writes and what `run --source kafka` consumes. The default partitioner hashes the
//!   key, so a city always lands on the same partition (while the partition count stays the same).
//! - A round counts as published only when the broker acknowledged every message of it (the producer is
//!   flushed and every delivery report checked); a failed delivery is a [`SinkError`] (exit 1).
//! - After each round, a watermark marker goes to **every** partition: null payload, key `watermark`, header
//!   [`WATERMARK_HEADER`] = the round's watermark in Unix ms. The Kafka source turns it into that partition's
//!   watermark report, so the as-of join of a Kafka-fed pipeline is released up to the round start, not
//!   only up to the newest reading's `dt` (a partition that got no reading this round advances too).
//! - No re-publishing across runs: [`newest_in_topic`] reads back the last [`READ_BACK_MESSAGES`] messages
//!   of every partition at start and seeds the fetcher's newest `timestamp` per city. A reading older than
//!   that window is re-published at worst; the pipeline's dedup (`city` + `timestamp`) absorbs it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use millionx_dataflow::config::ConfigError;
use millionx_dataflow::City;
use millionx_kafka_client::{CountingContext, KafkaConfig, WATERMARK_HEADER};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::reading::Reading;
use crate::sink::{ReadingSink, SinkError};

/// Messages read back per partition at start to find each city's newest published reading: 8 readings and
/// one marker per round at most, so ≥ 113 rounds (≈ 4.7 days of hourly rounds) on a single partition.
pub const READ_BACK_MESSAGES: i64 = 1024;

/// Key of the watermark markers.
pub const MARKER_KEY: &str = "watermark";

fn sink_error(what: &str, message: impl Into<String>) -> SinkError {
    SinkError { what: what.to_owned(), source: std::io::Error::other(message.into()) }
}

fn config_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_owned(), reason: reason.into() }
}

/// The partition ids of `topic`. Errors (key `--topic`): the broker cannot be reached or the topic does not
/// exist (it is never auto-created).
fn partitions_of<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    config: &KafkaConfig,
) -> Result<Vec<i32>, ConfigError> {
    let topic = &config.weather_topic;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| config_error("--kafka-brokers", format!("metadata of `{topic}` from {}: {e}", config.brokers)))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        return Err(config_error(
            "--topic",
            format!("topic `{topic}` does not exist on {} (create it first)", config.brokers),
        ));
    }
    Ok(parts)
}

/// Publishes readings and per-round watermark markers to `config.weather_topic`.
pub struct KafkaSink {
    producer: BaseProducer<CountingContext>,
    topic: String,
    partitions: Vec<i32>,
    flush_timeout: Duration,
    name: String,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").field("topic", &self.topic).field("partitions", &self.partitions).finish()
    }
}

impl KafkaSink {
    /// Creates the producer (one message per produce request, `batch.num.messages = 1`: a round is at most
    /// 8 readings + one marker per partition, and it keeps tansu's high watermark exact for the read-back)
    /// and checks the topic exists.
    ///
    /// Errors (named by flag): the producer cannot be created, the broker cannot be reached within
    /// `kafka.request_timeout_ms`, or the topic does not exist.
    pub fn connect(config: &KafkaConfig) -> Result<KafkaSink, ConfigError> {
        let producer: BaseProducer<CountingContext> = config
            .producer_config("millionx-weather")
            .set("batch.num.messages", "1")
            .create_with_context(CountingContext::default())
            .map_err(|e| config_error("--kafka-brokers", format!("creating the producer: {e}")))?;
        let partitions = partitions_of(producer.client(), config)?;
        Ok(KafkaSink {
            producer,
            topic: config.weather_topic.clone(),
            partitions,
            // Every delivery report arrives within message.timeout.ms; the margin covers the last poll.
            flush_timeout: Duration::from_millis(config.delivery_timeout_ms) + Duration::from_secs(5),
            name: format!("produce to {} on {}", config.weather_topic, config.brokers),
        })
    }

    /// The topic's partitions (as found at connect).
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn send(&self, record: BaseRecord<'_, str, [u8]>) -> Result<(), SinkError> {
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(sink_error(&self.name, format!("produce: {e}"))),
            }
        }
    }

    /// Flushes and checks that the `sent` messages since the last call were all acknowledged (the delivery
    /// counters are reset here).
    fn await_delivery(&self, sent: u64) -> Result<(), SinkError> {
        let ctx = self.producer.context();
        self.producer
            .flush(self.flush_timeout)
            .map_err(|e| sink_error(&self.name, format!("waiting for delivery: {e}")))?;
        let failed = ctx.failed.swap(0, Ordering::Relaxed);
        let delivered = ctx.delivered.swap(0, Ordering::Relaxed);
        if failed > 0 || delivered < sent {
            return Err(sink_error(
                &self.name,
                format!("{failed} of {sent} messages were not delivered (acknowledged: {delivered})"),
            ));
        }
        Ok(())
    }
}

impl ReadingSink for KafkaSink {
    fn publish(&mut self, readings: &[Reading]) -> Result<(), SinkError> {
        if readings.is_empty() {
            return Ok(());
        }
        for r in readings {
            let payload = serde_json::to_string(r).map_err(|e| sink_error(&self.name, e.to_string()))?;
            self.send(BaseRecord::to(&self.topic).key(r.city.name()).payload(payload.as_bytes()))?;
            self.producer.poll(Duration::ZERO);
        }
        self.await_delivery(readings.len() as u64)
    }

    fn round_complete(&mut self, watermark: Timestamp) -> Result<(), SinkError> {
        let ms = watermark.as_millisecond().to_string();
        for p in &self.partitions {
            let headers = OwnedHeaders::new().insert(Header { key: WATERMARK_HEADER, value: Some(ms.as_bytes()) });
            self.send(BaseRecord::to(&self.topic).key(MARKER_KEY).partition(*p).headers(headers))?;
        }
        self.await_delivery(self.partitions.len() as u64)
    }
}

/// The newest reading `timestamp` per city among the last [`READ_BACK_MESSAGES`] messages of every partition
/// of `config.weather_topic` (markers and lines that are not readings are skipped). Reads with a consumer
/// of `config.group` that never commits.
///
/// Errors (named by flag): the broker or topic is unreachable, or the partitions' ends were not reached
/// within `kafka.request_timeout_ms` × 3.
pub fn newest_in_topic(config: &KafkaConfig) -> Result<BTreeMap<City, Timestamp>, ConfigError> {
    let consumer: BaseConsumer = config
        .consumer_config("millionx-weather-read-back")
        .create()
        .map_err(|e| config_error("--kafka-brokers", format!("creating the consumer: {e}")))?;
    let partitions = partitions_of(consumer.client(), config)?;
    let topic = &config.weather_topic;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let mut todo: BTreeMap<i32, (i64, i64)> = BTreeMap::new(); // partition → (next, end)
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| config_error("--kafka-brokers", format!("offsets of {topic}[{p}]: {e}")))?;
        let start = low.max(high - READ_BACK_MESSAGES);
        if start < high {
            todo.insert(p, (start, high));
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| config_error("--topic", format!("{topic}[{p}]: {e}")))?;
        }
    }
    let mut newest = BTreeMap::new();
    if todo.is_empty() {
        return Ok(newest);
    }
    consumer.assign(&tpl).map_err(|e| config_error("--topic", format!("assigning {topic}: {e}")))?;
    #[derive(serde::Deserialize)]
    struct Key {
        city: City,
        timestamp: Timestamp,
    }
    let deadline = Instant::now() + timeout * 3;
    while todo.values().any(|(next, end)| next < end) {
        if Instant::now() > deadline {
            let left: Vec<String> = todo
                .iter()
                .filter(|(_, (n, e))| n < e)
                .map(|(p, (n, e))| format!("{topic}[{p}] at {n} of {e}"))
                .collect();
            return Err(config_error("--kafka-brokers", format!("reading back timed out: {}", left.join(", "))));
        }
        let Some(result) = consumer.poll(Duration::from_millis(100)) else { continue };
        let msg = result.map_err(|e| config_error("--kafka-brokers", format!("reading back {topic}: {e}")))?;
        if let Some(slot) = todo.get_mut(&msg.partition()) {
            slot.0 = slot.0.max(msg.offset() + 1);
        }
        if let Some(k) = msg.payload().and_then(|b| serde_json::from_slice::<Key>(b).ok()) {
            let e = newest.entry(k.city).or_insert(k.timestamp);
            *e = (*e).max(k.timestamp);
        }
    }
    Ok(newest)
}
