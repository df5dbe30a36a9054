//! `[kafka]` configuration (TOML table and CLI flags) and the librdkafka client settings derived from it.

use std::collections::BTreeMap;

use millionx_dataflow::config::{ConfigError, ConnectorConfig, Shared};
use millionx_dataflow::StreamKind;
use serde::Deserialize;

/// Where a partition without a committed offset starts (librdkafka `auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest retained message (the default: nothing is skipped on a new group).
    #[default]
    Earliest,
    /// The partition's end: only messages produced after the start are read.
    Latest,
}

/// The `[kafka]` table. Every key is optional; unknown keys are rejected.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `HOST:PORT[,HOST:PORT…]` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group whose committed offsets the run resumes from and commits to.
    pub group: String,
    /// Topic of the social stream.
    pub social_topic: String,
    /// Topic of the market stream.
    pub market_topic: String,
    /// Topic of the weather stream.
    pub weather_topic: String,
    /// Dead-letter topic (`dlq.millionx`); used when `produce_dlq` is true.
    pub dlq_topic: String,
    /// Produce dead letters to `dlq_topic` instead of the DLQ file sink.
    pub produce_dlq: bool,
    /// Bootstrap servers of the DLQ cluster when it is not the input cluster (empty: `brokers`).
    pub dlq_brokers: String,
    /// Where a partition without a committed offset starts.
    pub auto_offset_reset: OffsetReset,
    /// Messages per epoch per partition: a message at offset `o` belongs to epoch `o / epoch_messages` (or later,
    /// see the crate docs). ≥ 1.
    pub epoch_messages: u64,
    /// Most messages read per source activation (bounded work per step). ≥ 1.
    pub max_poll_records: usize,
    /// A partition is paused while its next epoch is more than this many epochs ahead of the sinks'
    /// acknowledged frontier. ≥ 1.
    pub max_epochs_unacknowledged: u64,
    /// A caught-up partition without messages for this long (ms) is reported idle: it stops holding back the
    /// stream's watermark until it produces again. ≥ 1.
    pub idle_ms: u64,
    /// Stop once every assigned partition has reached the end it had at start (batch mode; tests, backfills).
    pub exit_at_end: bool,
    /// librdkafka `queued.max.messages.kbytes`: prefetch buffer per consumer, KiB. ≥ 1.
    pub fetch_buffer_kib: u32,
    /// librdkafka `fetch.wait.max.ms`: longest a broker may hold a fetch for more data, ms (1–10,000). Default 500
    /// (librdkafka's). tansu 0.6 also stops filling a fetch response at this deadline, after listing every stored
    /// batch of the partition first, so a short wait returns a handful of messages per fetch once a partition holds
    /// many batches (issue 15: 100k+100k records, `-w 2`, caught up in 128.5 s with 100 ms, 10.3 s with 500 ms).
    pub fetch_wait_max_ms: u32,
    /// librdkafka `fetch.min.bytes`: least data a broker gathers before it answers a fetch early, bytes
    /// (1–100,000,000, librdkafka's range). Default 1 (librdkafka's): answer as soon as any message is there.
    pub fetch_min_bytes: u32,
    /// Metadata / commit / watermark request timeout, ms. ≥ 100.
    pub request_timeout_ms: u64,
    /// librdkafka `message.timeout.ms` of every producer (DLQ, `produce`, the weather fetcher): how long a
    /// message may wait for the broker's acknowledgement, retries included, before its delivery fails,
    /// ms (1,000–900,000). Default 300,000 (librdkafka's).
    pub delivery_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            group: "millionx".to_owned(),
            social_topic: "validated.social".to_owned(),
            market_topic: "validated.market".to_owned(),
            weather_topic: "context.weather".to_owned(),
            dlq_topic: "dlq.millionx".to_owned(),
            produce_dlq: false,
            dlq_brokers: String::new(),
            auto_offset_reset: OffsetReset::Earliest,
            epoch_messages: 4096,
            max_poll_records: 1024,
            max_epochs_unacknowledged: 8,
            idle_ms: 5_000,
            exit_at_end: false,
            fetch_buffer_kib: 16 * 1024,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            request_timeout_ms: 10_000,
            delivery_timeout_ms: 300_000,
        }
    }
}

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(&format!("kafka.{key}"), reason)
}

fn check_brokers(key: &str, brokers: &str) -> Result<(), ConfigError> {
    if brokers.trim().is_empty() {
        return Err(err(key, "must name at least one HOST:PORT"));
    }
    for b in brokers.split(',') {
        let (host, port) = b.trim().rsplit_once(':').ok_or_else(|| err(key, format!("`{b}` is not HOST:PORT")))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(err(key, format!("`{b}` is not HOST:PORT")));
        }
    }
    Ok(())
}

impl ConnectorConfig for KafkaConfig {
    const TABLE: &'static str = "kafka";

    fn from_value(value: toml::Value, _shared: &Shared<'_>) -> Result<KafkaConfig, ConfigError> {
        millionx_dataflow::config::from_toml_value(value).map_err(|e| e.within(Self::TABLE))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        KafkaConfig::validate(self)
    }
}

impl KafkaConfig {
    /// The `[kafka]` table of a parsed TOML document through [`ConnectorConfig::load`] (absent: the validated
    /// defaults). Errors: unknown key, wrong type, or a value out of range (named as `kafka.KEY`).
    pub fn from_table(
        table: Option<toml::Value>,
        env: &millionx_dataflow::config::Env,
    ) -> Result<KafkaConfig, ConfigError> {
        match table {
            None => {
                let config = KafkaConfig::default();
                config.validate()?;
                Ok(config)
            }
            Some(v) => KafkaConfig::load(v, &Shared::default(), env),
        }
    }

    /// Checks ranges and names. Pure: no I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_brokers("brokers", &self.brokers)?;
        if !self.dlq_brokers.is_empty() {
            check_brokers("dlq_brokers", &self.dlq_brokers)?;
        }
        if self.group.trim().is_empty() {
            return Err(err("group", "must not be empty"));
        }
        let topics = [
            ("social_topic", &self.social_topic),
            ("market_topic", &self.market_topic),
            ("weather_topic", &self.weather_topic),
            ("dlq_topic", &self.dlq_topic),
        ];
        for (key, t) in topics {
            // Kafka's rule: 1–249 characters of [a-zA-Z0-9._-].
            if t.is_empty() || t.len() > 249 || !t.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)) {
                return Err(err(key, format!("`{t}` is not a valid topic name (1–249 of a-z A-Z 0-9 . _ -)")));
            }
        }
        let mut seen = BTreeMap::new();
        for (key, t) in topics {
            if let Some(other) = seen.insert(t.as_str(), key) {
                return Err(err(key, format!("same topic as kafka.{other}")));
            }
        }
        if self.epoch_messages == 0 {
            return Err(err("epoch_messages", "must be at least 1"));
        }
        if self.max_poll_records == 0 {
            return Err(err("max_poll_records", "must be at least 1"));
        }
        if self.max_epochs_unacknowledged == 0 {
            return Err(err("max_epochs_unacknowledged", "must be at least 1"));
        }
        if self.idle_ms == 0 {
            return Err(err("idle_ms", "must be at least 1"));
        }
        if self.fetch_buffer_kib == 0 {
            return Err(err("fetch_buffer_kib", "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.fetch_wait_max_ms) {
            return Err(err("fetch_wait_max_ms", "must be between 1 and 10000"));
        }
        if !(1..=100_000_000).contains(&self.fetch_min_bytes) {
            return Err(err("fetch_min_bytes", "must be between 1 and 100000000"));
        }
        if self.request_timeout_ms < 100 {
            return Err(err("request_timeout_ms", "must be at least 100"));
        }
        if !(1_000..=900_000).contains(&self.delivery_timeout_ms) {
            return Err(err("delivery_timeout_ms", "must be between 1000 and 900000"));
        }
        Ok(())
    }

    /// The topic of `stream`.
    pub fn topic(&self, stream: StreamKind) -> &str {
        match stream {
            StreamKind::Social => &self.social_topic,
            StreamKind::Market => &self.market_topic,
            StreamKind::Weather => &self.weather_topic,
        }
    }

    /// Consumer settings: manual assignment, no auto commit, no offset store, partition EOF off.
    pub fn consumer_config(&self, client_id: &str) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.auto_offset_reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                },
            )
            .set("queued.max.messages.kbytes", self.fetch_buffer_kib.to_string())
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string())
            .set("fetch.min.bytes", self.fetch_min_bytes.to_string())
            .set("socket.timeout.ms", self.request_timeout_ms.max(10).to_string());
        c
    }

    /// Idempotent producer settings (acks=all, ordered retries without duplicates) for the input cluster.
    pub fn producer_config(&self, client_id: &str) -> rdkafka::ClientConfig {
        self.producer_config_for(&self.brokers, client_id)
    }

    /// Idempotent producer settings for the DLQ cluster (`dlq_brokers`, else `brokers`).
    pub fn dlq_producer_config(&self, client_id: &str) -> rdkafka::ClientConfig {
        let brokers = if self.dlq_brokers.is_empty() { &self.brokers } else { &self.dlq_brokers };
        self.producer_config_for(brokers, client_id)
    }

    fn producer_config_for(&self, brokers: &str, client_id: &str) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Default 5 min (librdkafka's): a stalled broker is waited for before a delivery fails (fatal for a sink).
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string());
        c
    }
}

/// `--source kafka` flags of `millionx run` (they override the `[kafka]` table).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT…] (Kafka source and DLQ producer).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Consumer group (offsets are committed to it; a restart resumes from them) [default: millionx].
    #[arg(long)]
    pub group: Option<String>,
    /// Stop once every partition reached the end it had at start (batch mode).
    #[arg(long)]
    pub exit_at_end: bool,
    /// Produce dead letters to the DLQ topic (kafka.dlq_topic) instead of the DLQ file sink.
    #[arg(long)]
    pub produce_dlq: bool,
}

impl KafkaArgs {
    /// Applies the flags over `config` and validates the result.
    ///
    /// Errors: a flag's value is invalid (named as `--brokers` / `--group`).
    pub fn apply(&self, config: &mut KafkaConfig) -> Result<(), ConfigError> {
        if let Some(b) = &self.brokers {
            config.brokers = b.clone();
        }
        if let Some(g) = &self.group {
            config.group = g.clone();
        }
        config.exit_at_end |= self.exit_at_end;
        config.produce_dlq |= self.produce_dlq;
        config.validate().map_err(|e| match e.key.as_str() {
            "kafka.brokers" if self.brokers.is_some() => ConfigError::new("--brokers", e.reason),
            "kafka.group" if self.group.is_some() => ConfigError::new("--group", e.reason),
            _ => e,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use millionx_dataflow::config::Env;

    fn table(text: &str) -> Option<toml::Value> {
        let mut t: toml::Table = toml::from_str(text).unwrap();
        t.remove("kafka")
    }

    #[test]
    fn defaults_name_the_platform_topics() {
        let c = KafkaConfig::from_table(None, &Env::empty()).unwrap();
        assert_eq!(c.topic(StreamKind::Social), "validated.social");
        assert_eq!(c.topic(StreamKind::Market), "validated.market");
        assert_eq!(c.topic(StreamKind::Weather), "context.weather");
        assert_eq!(c.dlq_topic, "dlq.millionx");
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
    }

    #[test]
    fn table_values_and_errors_name_the_key() {
        let c = KafkaConfig::from_table(
            table("[kafka]\nbrokers = \"k1:9093,k2:9093\"\nauto_offset_reset = \"latest\"\n"),
            &Env::empty(),
        )
        .unwrap();
        assert_eq!(c.brokers, "k1:9093,k2:9093");
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        let e = KafkaConfig::from_table(table("[kafka]\nbrokrs = \"x:1\"\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.brokrs");
        let e = KafkaConfig::from_table(table("[kafka]\nauto_offset_reset = \"middle\"\n"), &Env::empty()).unwrap_err();
        assert!(e.reason.contains("middle"), "{e}");
        let e = KafkaConfig::from_table(table("[kafka]\nbrokers = \"nohost\"\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.brokers");
        let e = KafkaConfig::from_table(table("[kafka]\nepoch_messages = 0\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.epoch_messages");
        let e = KafkaConfig::from_table(table("[kafka]\nfetch_min_bytes = 0\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.fetch_min_bytes");
        let ok = KafkaConfig::from_table(table("[kafka]\nfetch_min_bytes = 262144\n"), &Env::empty()).unwrap();
        assert_eq!(ok.consumer_config("c").get("fetch.min.bytes"), Some("262144"));
        let e =
            KafkaConfig::from_table(table("[kafka]\ndlq_topic = \"validated.social\"\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.dlq_topic");
        let e = KafkaConfig::from_table(table("[kafka]\nsocial_topic = \"bad topic\"\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.social_topic");
        let e = KafkaConfig::from_table(table("[kafka]\ndelivery_timeout_ms = 10\n"), &Env::empty()).unwrap_err();
        assert_eq!(e.key, "kafka.delivery_timeout_ms");
        let c = KafkaConfig::from_table(table("[kafka]\ndelivery_timeout_ms = 2000\n"), &Env::empty()).unwrap();
        assert_eq!(c.producer_config("t").get("message.timeout.ms"), Some("2000"));
    }

    #[test]
    fn flags_override_and_are_named_in_errors() {
        let mut c = KafkaConfig::default();
        let args = KafkaArgs { brokers: Some("127.0.0.1:1".into()), group: Some("g".into()), ..Default::default() };
        args.apply(&mut c).unwrap();
        assert_eq!((c.brokers.as_str(), c.group.as_str()), ("127.0.0.1:1", "g"));
        let args = KafkaArgs { brokers: Some("127.0.0.1:notaport".into()), ..Default::default() };
        assert_eq!(args.apply(&mut c).unwrap_err().key, "--brokers");
    }
}
