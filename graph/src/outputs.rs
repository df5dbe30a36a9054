//! The graph's outputs: every [`Target`], resolved once to its writer (files by default, Snowflake,
//! Weaviate or the Kafka DLQ topic when configured), each a batching sink.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use millionx_dataflow::{DeadLetter, Epoch};
use millionx_metrics::{Metrics, SinkOutput};
use millionx_sink_file::FileWriter;
use millionx_sink_format::snowflake::Table;
use millionx_sink_format::weaviate::Class;
use millionx_sink_kafka::KafkaWriter;
use millionx_sink_snowflake::SnowflakeSink;
use millionx_sink_util::{BatchPolicy, BatchSink, Encoder, Framing, SinkContext, SinkError, SinkRecord, SinkStats};
use millionx_sink_weaviate::{WeaviateConfig, WeaviateWriter};
use millionx_source_kafka::KafkaConfig;
use timely::dataflow::Stream;

/// One output of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Snowflake table.
    Table(Table),
    /// A Weaviate class.
    Class(Class),
    /// Closed quality windows.
    Quality,
    /// The dead-letter output: rejected lines and the sinks' own per-record failures.
    DeadLetters,
}

impl Target {
    /// The sink's name in errors, counters and the summary, and its folder under `--out`:
    /// `snowflake/<TABLE>`, `weaviate/<Class>`, `quality`, `dlq`.
    pub fn name(self) -> String {
        match self {
            Target::Table(t) => format!("snowflake/{}", t.name()),
            Target::Class(c) => format!("weaviate/{}", c.name()),
            Target::Quality => "quality".to_owned(),
            Target::DeadLetters => "dlq".to_owned(),
        }
    }

    /// The streams whose rows or objects it writes (their metric series start at 0).
    fn streams(self) -> &'static [&'static str] {
        match self {
            Target::Table(Table::SocialPosts) | Target::Class(Class::SocialPost) => &["social"],
            Target::Table(Table::MarketOrders | Table::PriceHistory) | Target::Class(Class::MarketOrder) => &["market"],
            Target::Table(Table::WeatherLogs) => &["weather"],
            Target::Quality | Target::DeadLetters => &["social", "market", "weather"],
        }
    }

    fn output(self) -> SinkOutput {
        match self {
            Target::Class(_) => SinkOutput::Objects,
            _ => SinkOutput::Rows,
        }
    }

    /// File name extension of its batch files: one request body per Weaviate file, NDJSON otherwise.
    fn extension(self) -> &'static str {
        match self {
            Target::Class(_) => "json",
            _ => "ndjson",
        }
    }

    /// Whether its items count in the run's read→sink latency (the post and order rows and objects).
    fn records_latency(self) -> bool {
        matches!(
            self,
            Target::Table(Table::SocialPosts | Table::MarketOrders)
                | Target::Class(Class::SocialPost | Class::MarketOrder)
        )
    }
}

/// The network services configured for a run; a target without one is written to files.
#[derive(Clone, Debug, Default)]
pub struct Services {
    /// The Snowflake tables go to this account.
    pub snowflake: Option<Arc<SnowflakeSink>>,
    /// The Weaviate classes go to this server.
    pub weaviate: Option<WeaviateConfig>,
    /// Dead letters go to the DLQ topic of this cluster (`kafka.produce_dlq`).
    pub kafka_dlq: Option<Box<KafkaConfig>>,
}

/// Builds one worker's sinks and keeps their counters and acknowledged progress.
pub struct Outputs {
    out: PathBuf,
    worker: usize,
    policy: BatchPolicy,
    services: Services,
    errors: Arc<Mutex<Vec<SinkError>>>,
    /// read→sink latency (µs) of each sink that records it (the post and order rows and objects).
    latency: BTreeMap<String, Rc<RefCell<Histogram<u64>>>>,
    stats: BTreeMap<String, Rc<RefCell<SinkStats>>>,
    metrics: Metrics,
}

impl Outputs {
    /// Sinks of worker `worker` writing files under `out` with `policy`, or to `services`; fatal errors go to
    /// `errors`; the post and order sinks record their read→sink latency ([`Outputs::latency`]).
    pub fn new(
        out: PathBuf,
        worker: usize,
        policy: BatchPolicy,
        services: Services,
        errors: Arc<Mutex<Vec<SinkError>>>,
        metrics: Metrics,
    ) -> Outputs {
        Outputs { out, worker, policy, services, errors, latency: BTreeMap::new(), stats: BTreeMap::new(), metrics }
    }

    /// The read→sink latency (µs) of each post and order sink so far, by name.
    pub fn latency(&self) -> BTreeMap<String, Histogram<u64>> {
        self.latency.iter().map(|(k, v)| (k.clone(), v.borrow().clone())).collect()
    }

    /// The framing of Snowflake rows: the SQL batch loader binds a JSON array; files and Snowpipe Streaming
    /// take NDJSON.
    pub fn row_framing(&self) -> Framing {
        self.services.snowflake.as_ref().map_or(Framing::NDJSON, |s| s.framing())
    }

    /// Each sink's counters so far, by name.
    pub fn stats(&self) -> BTreeMap<String, SinkStats> {
        self.stats.iter().map(|(k, v)| (k.clone(), v.borrow().clone())).collect()
    }

    /// Writes `stream` to `target` with `encoder`. Returns the sink's dead letters; that stream's frontier is
    /// the sink's acknowledged progress.
    ///
    /// Errors: the writer cannot start (its I/O thread, or a bad Weaviate/Kafka client configuration); the
    /// message names the sink.
    pub fn sink<'scope, T, E>(
        &mut self,
        stream: Stream<'scope, Epoch, Vec<Arc<T>>>,
        target: Target,
        encoder: E,
    ) -> Result<Stream<'scope, Epoch, Vec<DeadLetter>>, String>
    where
        T: SinkRecord + 'static,
        E: Encoder<T> + 'static,
    {
        let name = target.name();
        let ctx = self.context(&name, target);
        let sink = match (target, &self.services) {
            (Target::Table(table), Services { snowflake: Some(sf), .. }) => {
                stream.batch_sink(ctx, sf.batch_policy(), encoder, sf.writer(table))
            }
            (Target::Class(_), Services { weaviate: Some(cfg), .. }) => {
                let writer = WeaviateWriter::new(cfg).map_err(|e| format!("{name}: {e}"))?;
                stream.batch_sink(ctx, cfg.batch_policy(), encoder, writer)
            }
            (Target::DeadLetters, Services { kafka_dlq: Some(kafka), .. }) => {
                let writer = KafkaWriter::new(&name, kafka, self.worker).map_err(|e| format!("{name}: {e}"))?;
                stream.batch_sink(ctx, self.policy, encoder, writer)
            }
            _ => {
                let writer = FileWriter::new(&name, self.out.join(&name), self.worker, target.extension())
                    .map_err(|e| format!("{name}: cannot start the I/O thread: {e}"))?;
                stream.batch_sink(ctx, self.policy, encoder, writer)
            }
        };
        Ok(sink)
    }

    /// The counters, latency histogram, error list and metrics of the sink `name`.
    fn context(&mut self, name: &str, target: Target) -> SinkContext {
        let stats = Rc::new(RefCell::new(SinkStats::default()));
        self.stats.insert(name.to_owned(), Rc::clone(&stats));
        let metrics = self.metrics.sink(name);
        metrics.init(target.output(), target.streams());
        let latency = target.records_latency().then(|| {
            let h = Rc::new(RefCell::new(crate::worker::latency_histogram()));
            self.latency.insert(name.to_owned(), Rc::clone(&h));
            h
        });
        SinkContext {
            name: name.to_owned(),
            stats,
            latency,
            errors: Arc::clone(&self.errors),
            metrics: Some((metrics, target.output())),
        }
    }
}
