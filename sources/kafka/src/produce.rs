//! `millionx produce`: loads a JSON Lines data set (social.jsonl, market.jsonl, weather.jsonl) into the three
//! input topics with an idempotent producer. Line `i` of a file goes to partition `i % partitions` with the
//! record's id as key (`postId`, `orderId`, `city|timestamp`; the 1-based line number when the line has
//! none), so with one partition per topic offset `i` is line `i`, exactly as the file source numbers lines.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use millionx_dataflow::StreamKind;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use millionx_kafka_client::{CountingContext, KafkaConfig};

/// `millionx produce` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    /// Folder with social.jsonl, market.jsonl, weather.jsonl (e.g. from `millionx gen` or gen.py).
    #[arg(long)]
    pub input: PathBuf,
    /// Bootstrap servers, HOST:PORT[,HOST:PORT…].
    #[arg(long)]
    pub brokers: String,
    /// TOML configuration whose `[kafka]` table names the topics (default: the platform's topic names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Messages per produce batch (librdkafka `batch.num.messages`). The default 1 keeps every broker's
    /// high watermark exact: tansu 0.6's memory storage answers ListOffsets with the last batch's base
    /// offset + 1. Raise it (e.g. 10000) against a real Kafka cluster for speed.
    #[arg(long, default_value_t = 1)]
    pub batch_messages: u32,
}

fn key_of(stream: StreamKind, line: &str, line_number: u64) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(line).ok();
    let field = |k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(|x| x.as_str()).map(str::to_owned);
    let key = match stream {
        StreamKind::Social => field("postId"),
        StreamKind::Market => field("orderId"),
        StreamKind::Weather => field("city").zip(field("timestamp")).map(|(c, t)| format!("{c}|{t}")),
    };
    key.filter(|k| !k.is_empty()).unwrap_or_else(|| line_number.to_string())
}

/// Produces every line of the three files; prints one summary line per topic.
///
/// Errors: a file cannot be read, a topic is missing, or a delivery failed (count given).
pub fn run_produce(args: &ProduceArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("--config {}: {e}", p.display()))?;
            let mut table: toml::Table = toml::from_str(&text).map_err(|e| format!("--config {}: {e}", p.display()))?;
            KafkaConfig::from_table(table.remove("kafka"), &millionx_dataflow::config::Env::process())
                .map_err(|e| e.to_string())?
        }
        None => KafkaConfig::default(),
    };
    config.brokers = args.brokers.clone();
    config.validate().map_err(|e| format!("--brokers: {}", e.reason))?;
    let ctx = CountingContext::default();
    let (failed, delivered) = (Arc::clone(&ctx.failed), Arc::clone(&ctx.delivered));
    if args.batch_messages == 0 {
        return Err("--batch-messages: must be at least 1".to_owned());
    }
    let producer: BaseProducer<CountingContext> = config
        .producer_config("millionx-produce")
        .set("batch.num.messages", args.batch_messages.to_string())
        .create_with_context(ctx)
        .map_err(|e| format!("creating the producer: {e}"))?;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    for stream in StreamKind::ALL {
        let topic = config.topic(stream).to_owned();
        let path = args.input.join(stream.file_name());
        let file = std::fs::File::open(&path).map_err(|e| format!("--input: {}: {e}", path.display()))?;
        let md = producer
            .client()
            .fetch_metadata(Some(&topic), timeout)
            .map_err(|e| format!("metadata of `{topic}` from {}: {e}", config.brokers))?;
        let partitions = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("topic `{topic}` does not exist on {} (create it first)", config.brokers))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::new();
        let mut i: u64 = 0;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            let key = key_of(stream, &String::from_utf8_lossy(&buf), i + 1);
            let partition = (i % partitions as u64) as i32;
            loop {
                let record = BaseRecord::to(&topic).key(key.as_bytes()).payload(&buf[..]).partition(partition);
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(format!("producing line {} of {}: {e}", i + 1, path.display())),
                }
            }
            producer.poll(Duration::ZERO);
            i += 1;
        }
        producer.flush(Duration::from_secs(60)).map_err(|e| format!("flushing `{topic}`: {e}"))?;
        println!("{topic}: {i} messages from {}", path.display());
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} messages were not delivered ({} were)", delivered.load(Ordering::Relaxed)));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_record_ids_or_line_numbers() {
        assert_eq!(key_of(StreamKind::Social, r#"{"postId":"p1"}"#, 3), "p1");
        assert_eq!(key_of(StreamKind::Market, r#"{"orderId":"o9","x":1}"#, 3), "o9");
        assert_eq!(
            key_of(StreamKind::Weather, r#"{"city":"Dhaka","timestamp":"2026-01-01T00:00:00Z"}"#, 3),
            "Dhaka|2026-01-01T00:00:00Z"
        );
        assert_eq!(key_of(StreamKind::Social, "not json", 7), "7");
        assert_eq!(key_of(StreamKind::Social, r#"{"postId":""}"#, 8), "8");
    }
}
