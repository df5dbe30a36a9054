//! The MillionX graph, as every worker builds it, and the run loop.
//!
//! ```text
//! file sources ─► validate ─► dedup (exchange by id) ─► anonymise ─► categorise ─► weather as-of join ─► calendar ─► embed ─► sinks
//!      │              │           │                                                    ▲      ▲
//!      │              │           └── duplicates ───────────────┐                      │      │
//!      │              ├── watermark reports (broadcast) ────────┼──────────────────────┘      │
//!      │              │                                         ▼                             │
//!      └── dead letters ◄── rejected ──────────────────► observations ─► quality windows ─► quality sink
//!                                          weather readings (dedup, broadcast) ────────────────┘
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use millionx_dataflow::catalog::Category;
use millionx_dataflow::config::Config;
use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::record::{Enriched, EnrichedOrder, EnrichedPost, PiiReport, WeatherReading};
use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{DeadLetter, Epoch, EventTime, StreamKind};
use millionx_embed::{Embed, EmbedConfig, EmbedPool, EmbedStats};
use millionx_metrics::{Metrics, SinkOutput};
use millionx_operators::anonymise::Anonymiser;
use millionx_operators::calendar::LocalCalendar;
use millionx_operators::categorise::Categoriser;
use millionx_operators::dedup::Dedup;
use millionx_operators::quality::{Observation, QualityStats, QualityWindows};
use millionx_operators::validate::{market, social, weather, Validate};
use millionx_operators::watermark::WatermarkReports;
use millionx_operators::weather_join::WeatherJoin;
use millionx_sink_file::FileWriter;
use millionx_sink_format::dlq::DeadLetterEncoder;
use millionx_sink_format::quality::QualityEncoder;
use millionx_sink_format::snowflake::{RowEncoder, Table};
use millionx_sink_format::weaviate::{Class, ObjectEncoder};
use millionx_sink_format::SourceNaming;
use millionx_sink_kafka::KafkaWriter;
use millionx_sink_snowflake::SnowflakeSink;
use millionx_sink_util::BatchWriter;
use millionx_sink_util::{BatchPolicy, BatchSink, Encoder, Framing, SinkContext, SinkError, SinkRecord, SinkStats};
use millionx_sink_weaviate::{WeaviateConfig, WeaviateWriter};
use millionx_source_file::{file_source, FileSourceConfig};
use millionx_source_kafka::{kafka_source_for, KafkaConfig, KafkaSourceHandle, SourceControl};
use millionx_source_weather::live::{live_weather, start_feed, EndRule, FeedHandle, FeedReport, LiveStreams};
use millionx_source_weather::{ApiKey, WeatherConfig};
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Concat, Concatenate, Inspect, Probe};
use timely::dataflow::{ProbeHandle, Scope, Stream};
use timely::worker::Worker;

/// Everything a worker needs to build its graph (cloned into every worker).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The validated configuration (input and output folders included).
    pub config: Config,
    /// The HMAC key for anonymisation.
    pub pii_key: Vec<u8>,
    /// The Prometheus metrics every worker counts into (per batch).
    pub metrics: Metrics,
    /// Where the records come from.
    pub input: Input,
    /// Write the Weaviate classes to this server instead of files.
    pub weaviate: Option<WeaviateConfig>,
    /// Write the Snowflake tables to this account instead of files.
    pub snowflake: Option<Arc<SnowflakeSink>>,
    /// The embedding pool (model threads), when embeddings are on.
    pub embed: Option<EmbedPool>,
    /// Embedding batch and deadline settings.
    pub embed_config: EmbedConfig,
    /// `run --weather owm`: the weather stream comes from the live fetcher instead of the input.
    pub live_weather: Option<LiveWeather>,
    /// Embedding counters shared by every worker's `embed` operators (the backlog gauge reads them).
    pub embed_stats: Arc<EmbedStats>,
}

/// The live weather feed of a run (`--weather owm`), shared by the process's workers; worker 0 takes the
/// fetcher's handle and owns the source (see `millionx_source_weather::live`).
#[derive(Clone, Debug)]
pub struct LiveWeather {
    /// The fetcher thread's handle; `None` in processes other than 0 and once worker 0 took it.
    pub feed: Arc<Mutex<Option<FeedHandle>>>,
    /// File input: end once a round covers the records; Kafka input: end on SIGINT/SIGTERM.
    pub end: EndRule,
}

/// Starts the fetcher thread of `run --weather owm` in process 0 (`owner`); other processes get a
/// [`LiveWeather`] without a handle (their worker 0 does not exist: only global worker 0 owns the feed).
/// Fetches count into `metrics` (`millionx_weather_fetch_total`).
///
/// Errors: the HTTP client or the thread cannot be created.
pub fn start_live_weather(
    config: WeatherConfig,
    every: Duration,
    key: ApiKey,
    input: &Input,
    owner: bool,
    metrics: &Metrics,
) -> Result<LiveWeather, String> {
    let end = match input {
        Input::File => EndRule::Covered,
        Input::Kafka { .. } => EndRule::OnStop,
    };
    let feed = if owner {
        Some(start_feed(config, key, every, Some(metrics.clone())).map_err(|e| format!("--weather owm: {e}"))?)
    } else {
        None
    };
    Ok(LiveWeather { feed: Arc::new(Mutex::new(feed)), end })
}

/// The pipeline's input.
#[derive(Clone, Debug)]
pub enum Input {
    /// JSON Lines replay of `config.input.dir`.
    File,
    /// The Kafka topics of `config`; `control` carries the shutdown flag shared by every worker.
    Kafka {
        /// The `[kafka]` settings (flags applied).
        config: Box<KafkaConfig>,
        /// Shutdown flag and epoch hint shared by the process's workers.
        control: SourceControl,
    },
}

/// What one worker hands back when the run ends.
#[derive(Debug)]
pub struct WorkerReport {
    /// Quality windows this worker merged and wrote.
    pub windows: Vec<QualityWindow>,
    /// Observations that arrived after their window closed, by stream.
    pub late: BTreeMap<StreamKind, u64>,
    /// What those late observations counted, by stream (totals are the windows plus these).
    pub late_counts: Vec<QualityWindow>,
    /// Counters per sink name.
    pub sinks: BTreeMap<String, SinkStats>,
    /// read→write latency of records in the Snowflake and Weaviate outputs, µs.
    pub latency: Histogram<u64>,
    /// What the live weather feed did (worker 0 of a `--weather owm` run only).
    pub weather_feed: Option<FeedReport>,
}

/// A new latency histogram: 1 µs to 1 h, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

struct SinkFactory {
    out: PathBuf,
    worker: usize,
    policy: BatchPolicy,
    errors: Arc<Mutex<Vec<SinkError>>>,
    latency: Rc<RefCell<Histogram<u64>>>,
    stats: BTreeMap<String, Rc<RefCell<SinkStats>>>,
    metrics: Metrics,
    weaviate: Option<WeaviateConfig>,
    snowflake: Option<Arc<SnowflakeSink>>,
}

/// The streams a sink carries (its per-stream row/object series start at 0) and what it writes.
fn sink_shape(name: &str) -> (SinkOutput, &'static [&'static str]) {
    let output = if name.starts_with("weaviate/") { SinkOutput::Objects } else { SinkOutput::Rows };
    let streams: &'static [&'static str] = match name {
        "snowflake/SOCIAL_POSTS" | "weaviate/SocialPost" => &["social"],
        "snowflake/MARKET_ORDERS" | "snowflake/PRICE_HISTORY" | "weaviate/MarketOrder" => &["market"],
        "snowflake/WEATHER_LOGS" => &["weather"],
        _ => &["social", "market", "weather"],
    };
    (output, streams)
}

impl SinkFactory {
    /// The counters, latency histogram, error list and metrics of the sink `name`.
    fn context(&mut self, name: &str, record_latency: bool) -> SinkContext {
        let stats = Rc::new(RefCell::new(SinkStats::default()));
        self.stats.insert(name.to_owned(), Rc::clone(&stats));
        SinkContext {
            name: name.to_owned(),
            stats,
            latency: record_latency.then(|| Rc::clone(&self.latency)),
            errors: Arc::clone(&self.errors),
            metrics: Some({
                let (output, streams) = sink_shape(name);
                let m = self.metrics.sink(name);
                m.init(output, streams);
                (m, output)
            }),
        }
    }

    fn sink<'scope, T, E>(
        &mut self,
        stream: Stream<'scope, Epoch, Vec<Arc<T>>>,
        folder: &str,
        ext: &'static str,
        encoder: E,
        record_latency: bool,
    ) -> Result<Stream<'scope, Epoch, Vec<DeadLetter>>, String>
    where
        T: SinkRecord + 'static,
        E: Encoder<T> + 'static,
    {
        let ctx = self.context(folder, record_latency);
        let table =
            folder.strip_prefix("snowflake/").and_then(|name| Table::ALL.into_iter().find(|t| t.name() == name));
        if let (Some(sf), Some(table)) = (&self.snowflake, table) {
            return Ok(stream.batch_sink(ctx, sf.batch_policy(), encoder, sf.writer(table)));
        }
        if let (Some(cfg), true) = (&self.weaviate, folder.starts_with("weaviate/")) {
            let writer = WeaviateWriter::new(cfg).map_err(|e| format!("{folder}: {e}"))?;
            return Ok(stream.batch_sink(ctx, cfg.batch_policy(), encoder, writer));
        }
        let writer = FileWriter::new(folder, self.out.join(folder), self.worker, ext)
            .map_err(|e| format!("{folder}: cannot start the I/O thread: {e}"))?;
        Ok(stream.batch_sink(ctx, self.policy, encoder, writer))
    }

    /// A sink writing through `writer` (no file).
    fn sink_to<'scope, T, E, W>(
        &mut self,
        stream: Stream<'scope, Epoch, Vec<Arc<T>>>,
        name: &str,
        encoder: E,
        writer: W,
    ) -> Stream<'scope, Epoch, Vec<DeadLetter>>
    where
        T: SinkRecord + 'static,
        E: Encoder<T> + 'static,
        W: BatchWriter + 'static,
    {
        let ctx = self.context(name, false);
        stream.batch_sink(ctx, self.policy, encoder, writer)
    }
}

/// Passes `s` through unchanged, calling `f` on every batch (per-batch metrics; no copy of the data).
fn count<'scope, D: 'static>(
    s: Stream<'scope, Epoch, Vec<D>>,
    mut f: impl FnMut(&[D]) + 'static,
) -> Stream<'scope, Epoch, Vec<D>> {
    s.inspect_core(move |event| {
        if let Ok((_, data)) = event {
            f(data)
        }
    })
}

/// A per-batch callback adding the batch's length to `f` (a `Metrics` counter method) for `stream`.
fn batch_counter<D>(m: &Metrics, stream: StreamKind, f: fn(&Metrics, &'static str, u64)) -> impl FnMut(&[D]) + 'static {
    let m = m.clone();
    move |d| f(&m, stream.name(), d.len() as u64)
}

/// Counts a batch of emitted posts or orders: records out of the enrichment stages, PII detections and
/// fields, categories, weather enrichment, ingestion lag (one histogram sample per record, one clock read
/// per batch).
fn count_enriched<T: Enriched>(m: &Metrics, batch: &[Arc<T>]) {
    let stream = T::STREAM.name();
    let now_ms = (now_unix_ns() / 1_000_000) as i64;
    let (mut pii, mut enriched, mut embedded) = (0u64, 0u64, 0u64);
    let mut fields = [0u64; 8];
    let mut categories = [0u64; 8];
    for r in batch {
        let e = r.enrichment();
        pii += u64::from(e.pii.detected);
        enriched += u64::from(e.weather.is_some());
        embedded += u64::from(e.embedding.is_some());
        for (bit, n) in fields.iter_mut().enumerate() {
            *n += u64::from(e.pii.fields >> bit & 1);
        }
        if let Some(i) = Category::ALL.iter().position(|c| *c == e.category) {
            categories[i] += 1;
        }
        let lag = now_ms.saturating_sub(r.meta().event_time.0).max(0) as u64;
        m.ingestion_lag(stream, Duration::from_millis(lag));
    }
    m.pii_detected(stream, pii);
    m.weather_enriched(stream, enriched);
    m.embedding_texts(stream, embedded);
    for (name, n) in PiiReport::FIELDS.into_iter().zip(fields) {
        if n > 0 {
            m.pii_fields_anonymized(stream, name, n);
        }
    }
    for (c, n) in Category::ALL.into_iter().zip(categories) {
        if n > 0 {
            m.categorised(stream, c.name(), n);
        }
    }
}

/// Counts a batch of dead letters by stream and reason (few distinct reasons per batch).
fn count_dead_letters(m: &Metrics, batch: &[Arc<DeadLetter>]) {
    let mut by: Vec<(StreamKind, &str, u64)> = Vec::new();
    for d in batch {
        match by.iter_mut().find(|(s, r, _)| *s == d.origin.stream && *r == d.reason.as_str()) {
            Some(entry) => entry.2 += 1,
            None => by.push((d.origin.stream, d.reason.as_str(), 1)),
        }
    }
    for (stream, reason, n) in by {
        m.records_rejected(stream.name(), reason, n);
    }
}

fn observe<'scope, T: Clone + 'static>(
    s: &Stream<'scope, Epoch, Vec<T>>,
    f: impl Fn(T) -> Observation + 'static,
) -> Stream<'scope, Epoch, Vec<Observation>> {
    s.clone().map(f)
}

fn lag_ms(event_time: EventTime) -> u64 {
    let now_ms = (now_unix_ns() / 1_000_000) as i64;
    now_ms.saturating_sub(event_time.0).max(0) as u64
}

fn emitted<T: Enriched>(r: &T) -> Observation {
    let e = r.enrichment();
    Observation::Emitted {
        stream: T::STREAM,
        event_time: r.meta().event_time,
        category: e.category,
        pii_detected: e.pii.detected,
        enriched: e.weather.is_some(),
        embedded: e.embedding.is_some(),
        lag_ms: lag_ms(r.meta().event_time),
    }
}

fn first_error(errors: &Mutex<Vec<SinkError>>) -> Option<String> {
    errors.lock().ok().and_then(|e| e.first().map(ToString::to_string))
}

/// Drops the worker's dataflows after a fatal sink error and passes the error on. The failed sink keeps
/// the capabilities of its unacknowledged batches, so the dataflow can never complete, and timely's
/// `execute` steps a worker until its dataflows complete: without this the process would hang.
fn abandon(worker: &mut Worker, error: String) -> String {
    for id in worker.installed_dataflows() {
        worker.drop_dataflow(id);
    }
    error
}

/// Builds the graph on `worker` and runs it to completion (or to the first fatal sink error).
///
/// Errors: an input file cannot be opened; a sink failed fatally (the message names it).
pub fn run_worker(
    worker: &mut Worker,
    settings: &Settings,
    errors: Arc<Mutex<Vec<SinkError>>>,
) -> Result<WorkerReport, String> {
    let index = worker.index();
    let cfg = &settings.config;
    let windows = Rc::new(RefCell::new(Vec::new()));
    let quality_stats = Rc::new(RefCell::new(QualityStats::default()));
    let latency = Rc::new(RefCell::new(latency_histogram()));
    let mut sinks = SinkFactory {
        out: cfg.output.dir.clone(),
        worker: index,
        policy: cfg.batch.into(),
        errors: Arc::clone(&errors),
        latency: Rc::clone(&latency),
        stats: BTreeMap::new(),
        metrics: settings.metrics.clone(),
        weaviate: settings.weaviate.clone(),
        snowflake: settings.snowflake.clone(),
    };
    let probe = ProbeHandle::<Epoch>::new();
    // Epochs in flight: the newest epoch a source has started minus the sinks' acknowledged frontier.
    let metrics = settings.metrics.clone();
    let started = Rc::new(Cell::new(None::<Epoch>));
    metrics.init_worker(index);
    for (stream, enriched) in [("social", true), ("market", true), ("weather", false)] {
        metrics.init_stream(stream, enriched);
    }
    // Every sink's acknowledged progress (the frontier of its dead-letter output): Kafka offsets are committed
    // behind it.
    let ack = ProbeHandle::<Epoch>::new();
    let mut kafka_handle: Option<KafkaSourceHandle> = None;
    let live = settings.live_weather.as_ref();
    let mut feed_report: Option<Rc<RefCell<FeedReport>>> = None;

    worker.dataflow::<Epoch, _, _>(|scope: Scope<'_, Epoch>| -> Result<(), String> {
        let tracker = || Watermarks::new(cfg.watermark.lateness());
        let source = |stream: StreamKind| {
            let config = FileSourceConfig {
                path: cfg.input.dir.join(stream.file_name()),
                stream,
                epoch_lines: cfg.input.epoch_lines,
                max_epochs_in_flight: cfg.input.max_epochs_in_flight,
                max_message_bytes: cfg.input.max_message_bytes,
            };
            let (lines, bad) = file_source(scope, config, probe.clone()).map_err(|e| e.to_string())?;
            let (m, name, started) = (metrics.clone(), stream.name(), Rc::clone(&started));
            let lines = lines.inspect_core(move |event| match event {
                Ok((_, data)) => m.records_in(name, data.len() as u64),
                Err(frontier) => {
                    if let Some(&e) = frontier.iter().max() {
                        started.set(Some(started.get().map_or(e, |s| s.max(e))));
                    }
                }
            });
            let m = metrics.clone();
            let bad = count(bad, move |d| m.records_in(name, d.len() as u64));
            Ok::<_, String>((lines, bad))
        };
        let (social_lines, market_lines, weather_lines, source_bad, idle_reports, partitions) = match &settings.input {
            Input::File => {
                let (social_lines, social_bad) = source(StreamKind::Social)?;
                let (market_lines, market_bad) = source(StreamKind::Market)?;
                let (weather_lines, bad) = match live {
                    None => {
                        let (weather_lines, weather_bad) = source(StreamKind::Weather)?;
                        (Some(weather_lines), scope.concatenate([social_bad, market_bad, weather_bad]))
                    }
                    Some(_) => (None, scope.concatenate([social_bad, market_bad])),
                };
                let partitions: BTreeMap<StreamKind, Vec<u32>> =
                    StreamKind::ALL.iter().map(|s| (*s, vec![0])).collect();
                (social_lines, market_lines, weather_lines, bad, None, partitions)
            }
            Input::Kafka { config: kafka, control } => {
                // With the live feed, context.weather is not read.
                let streams: &[StreamKind] = match live {
                    None => &StreamKind::ALL,
                    Some(_) => &[StreamKind::Social, StreamKind::Market],
                };
                let (mut streams, handle) =
                    kafka_source_for(scope, kafka, streams, cfg.input.max_message_bytes, ack.clone(), control.clone())
                        .map_err(|e| e.to_string())?;
                kafka_handle = Some(handle);
                let mut take =
                    |s: StreamKind| streams.lines.remove(&s).ok_or_else(|| format!("no {} stream", s.name()));
                let (social, market, weather) =
                    (take(StreamKind::Social)?, take(StreamKind::Market)?, take(StreamKind::Weather)?);
                let weather = live.is_none().then_some(weather);
                (social, market, weather, streams.dead, Some(streams.idle_reports), streams.partitions)
            }
        };
        let parts = |s: StreamKind| partitions.get(&s).cloned().unwrap_or_default();

        // Each record stream has exactly one consumer (no copies); metas feed watermarks and counts.
        let (posts, posts_rejected, post_metas) = social_lines.validate(social::validate);
        let (orders, orders_rejected, order_metas) = market_lines.validate(market::validate);
        let reader = index as u32;
        let post_reports = post_metas.clone().watermark_reports(StreamKind::Social, parts(StreamKind::Social), reader);
        let order_reports =
            order_metas.clone().watermark_reports(StreamKind::Market, parts(StreamKind::Market), reader);
        let (weather_lines, live_reports, weather_parts) = match (weather_lines, live) {
            (Some(lines), _) => (lines, None, parts(StreamKind::Weather)),
            (None, live) => {
                let live = live_source(scope, live, &settings.input, index, &metrics, &post_reports, &order_reports);
                feed_report = (index == 0).then_some(live.report);
                let (lines, reports) = (live.lines, live.reports);
                // Worker 0 reads the feed's single partition.
                (lines, Some(reports), if index == 0 { vec![0] } else { Vec::new() })
            }
        };
        let (readings, readings_rejected, reading_metas) = weather_lines.validate(weather::validate);

        let mut report_streams = vec![
            post_reports,
            order_reports,
            reading_metas.clone().watermark_reports(StreamKind::Weather, weather_parts, reader),
        ];
        report_streams.extend(idle_reports);
        report_streams.extend(live_reports);
        let reports: Stream<'_, Epoch, Vec<WatermarkReport>> = scope.concatenate(report_streams).broadcast();

        let horizon_ms = cfg.dedup.horizon_hours as i64 * 3_600_000;
        let (posts_unique, posts_dup) = posts.dedup(reports.clone(), StreamKind::Social, tracker(), horizon_ms);
        let (orders_unique, orders_dup) = orders.dedup(reports.clone(), StreamKind::Market, tracker(), horizon_ms);
        let (readings_unique, readings_dup) =
            readings.dedup(reports.clone(), StreamKind::Weather, tracker(), horizon_ms);
        let posts_unique = count(posts_unique, batch_counter(&metrics, StreamKind::Social, Metrics::records_out));
        let orders_unique = count(orders_unique, batch_counter(&metrics, StreamKind::Market, Metrics::records_out));
        let m = metrics.clone();
        let readings_unique = count(readings_unique, move |d: &[WeatherReading]| {
            m.records_out("weather", d.len() as u64);
            let now_ms = (now_unix_ns() / 1_000_000) as i64;
            for r in d {
                m.ingestion_lag(
                    "weather",
                    Duration::from_millis(now_ms.saturating_sub(r.meta.event_time.0).max(0) as u64),
                );
            }
        });
        let posts_dup = count(posts_dup, batch_counter(&metrics, StreamKind::Social, Metrics::duplicates));
        let orders_dup = count(orders_dup, batch_counter(&metrics, StreamKind::Market, Metrics::duplicates));
        let readings_dup = count(readings_dup, batch_counter(&metrics, StreamKind::Weather, Metrics::duplicates));

        let embed_stats = &settings.embed_stats;
        let anonymiser = Anonymiser::new(&settings.pii_key);
        let categoriser = Categoriser::new();
        let calendar = LocalCalendar::dhaka();
        let max_age = cfg.join.max_weather_age_ms as i64;
        let weather_table = readings_unique.clone().broadcast();
        let readings_unique = readings_unique.map(Arc::new);

        let (a, c, cal) = (anonymiser.clone(), categoriser.clone(), calendar.clone());
        let posts_out: Stream<'_, Epoch, Vec<Arc<EnrichedPost>>> = posts_unique
            .map(move |p| {
                let mut p = a.post(p);
                let (category, confidence) = c.from_text(&p.content);
                p.enrichment.category = category;
                p.enrichment.category_confidence = confidence;
                p
            })
            .weather_join(weather_table.clone(), reports.clone(), tracker(), max_age)
            .map_in_place(move |p: &mut EnrichedPost| p.enrichment.calendar = cal.at(p.meta.event_time))
            .embed(settings.embed.as_ref(), settings.embed_config.clone(), Arc::clone(embed_stats))
            .map(Arc::new);
        let m = metrics.clone();
        let posts_out = count(posts_out, move |d| count_enriched(&m, d));
        let orders_out: Stream<'_, Epoch, Vec<Arc<EnrichedOrder>>> = orders_unique
            .map(move |o| {
                let mut o = anonymiser.order(o);
                let (category, confidence) = categoriser.from_product_id(&o.product_id);
                o.enrichment.category = category;
                o.enrichment.category_confidence = confidence;
                o
            })
            .weather_join(weather_table, reports.clone(), tracker(), max_age)
            .map_in_place(move |o: &mut EnrichedOrder| o.enrichment.calendar = calendar.at(o.meta.event_time))
            .embed(settings.embed.as_ref(), settings.embed_config.clone(), Arc::clone(embed_stats))
            .map(Arc::new);
        let m = metrics.clone();
        let orders_out = count(orders_out, move |d| count_enriched(&m, d));

        let rejected =
            scope.concatenate([source_bad, posts_rejected, orders_rejected, readings_rejected]).map(Arc::new);

        let observations = scope.concatenate([
            observe(&post_metas, |m| Observation::Valid { stream: StreamKind::Social, event_time: m.event_time }),
            observe(&order_metas, |m| Observation::Valid { stream: StreamKind::Market, event_time: m.event_time }),
            observe(&reading_metas, |m| Observation::Valid { stream: StreamKind::Weather, event_time: m.event_time }),
            observe(&rejected, |d: Arc<DeadLetter>| Observation::Rejected {
                stream: d.origin.stream,
                event_time: d.event_time_ms.map(EventTime),
                reason: d.reason.clone(),
            }),
            posts_dup.map(|r| Observation::Duplicate { stream: StreamKind::Social, event_time: r.meta.event_time }),
            orders_dup.map(|r| Observation::Duplicate { stream: StreamKind::Market, event_time: r.meta.event_time }),
            readings_dup.map(|r| Observation::Duplicate { stream: StreamKind::Weather, event_time: r.meta.event_time }),
            observe(&posts_out, |r| emitted(&*r)),
            observe(&orders_out, |r| emitted(&*r)),
            observe(&readings_unique, |r: Arc<WeatherReading>| Observation::Emitted {
                stream: StreamKind::Weather,
                event_time: r.meta.event_time,
                category: Default::default(),
                pii_detected: false,
                enriched: false,
                embedded: false,
                lag_ms: lag_ms(r.meta.event_time),
            }),
        ]);
        let collected = Rc::clone(&windows);
        let m = metrics.clone();
        let quality = observations
            .quality_windows(reports, tracker(), Rc::clone(&quality_stats))
            .inspect(move |w: &QualityWindow| {
                if let Some(stream) = w.stream.map(StreamKind::name) {
                    m.quality_window_closed(stream);
                    m.quality_score(stream, w.quality_score());
                    m.quality_weather_coverage(stream, w.weather_coverage());
                    m.quality_embedding_coverage(stream, w.embedding_coverage());
                }
                collected.borrow_mut().push(w.clone())
            })
            .map(Arc::new);

        // Backpressure watches processing, not the sinks (a sink may hold a partial batch for max_age).
        scope
            .concatenate([
                posts_out.clone().map(|_| ()),
                orders_out.clone().map(|_| ()),
                quality.clone().map(|_| ()),
                rejected.clone().map(|_| ()),
            ])
            .probe_with(&probe);

        // The SQL batch loader binds a JSON array; files and Snowpipe Streaming take NDJSON.
        let ndjson = settings.snowflake.as_ref().map_or(Framing::NDJSON, |s| s.framing());
        let sink_dead = vec![
            sinks.sink(
                posts_out.clone(),
                "snowflake/SOCIAL_POSTS",
                "ndjson",
                RowEncoder::new(Table::SocialPosts, ndjson),
                true,
            )?,
            sinks.sink(
                orders_out.clone(),
                "snowflake/MARKET_ORDERS",
                "ndjson",
                RowEncoder::new(Table::MarketOrders, ndjson),
                true,
            )?,
            sinks.sink(
                orders_out.clone(),
                "snowflake/PRICE_HISTORY",
                "ndjson",
                RowEncoder::new(Table::PriceHistory, ndjson),
                false,
            )?,
            sinks.sink(
                readings_unique,
                "snowflake/WEATHER_LOGS",
                "ndjson",
                RowEncoder::new(Table::WeatherLogs, ndjson),
                false,
            )?,
            sinks.sink(
                posts_out,
                &format!("weaviate/{}", Class::SocialPost.name()),
                "json",
                ObjectEncoder::new(),
                true,
            )?,
            sinks.sink(
                orders_out,
                &format!("weaviate/{}", Class::MarketOrder.name()),
                "json",
                ObjectEncoder::new(),
                true,
            )?,
            sinks.sink(quality, "quality", "ndjson", QualityEncoder, false)?,
        ];
        for d in &sink_dead {
            d.clone().probe_with(&ack);
        }
        let dead_letters = scope.concatenate(sink_dead).map(Arc::new).concat(rejected);
        let m = metrics.clone();
        let dead_letters = count(dead_letters, move |d| count_dead_letters(&m, d));
        let dlq_ack = match &settings.input {
            Input::File => {
                sinks.sink(dead_letters, "dlq", "ndjson", DeadLetterEncoder::new(SourceNaming::File), false)?
            }
            Input::Kafka { config: kafka, .. } if kafka.produce_dlq => {
                let writer = KafkaWriter::new("dlq", kafka, index).map_err(|e| e.to_string())?;
                sinks.sink_to(dead_letters, "dlq", DeadLetterEncoder::new(SourceNaming::Kafka), writer)
            }
            Input::Kafka { .. } => {
                sinks.sink(dead_letters, "dlq", "ndjson", DeadLetterEncoder::new(SourceNaming::Kafka), false)?
            }
        };
        dlq_ack.probe_with(&ack);
        Ok(())
    })?;

    let mut last_in_flight = 0u64;
    let mut last_backlog = u64::MAX; // first step exports the gauge (0) when embeddings are on
    while worker.step_or_park(Some(Duration::from_millis(20))) {
        let acked_from = ack.with_frontier(|f| f.iter().min().copied());
        let in_flight = match (started.get(), acked_from) {
            (Some(newest), Some(oldest)) => (newest + 1).saturating_sub(oldest),
            _ => 0,
        };
        if in_flight != last_in_flight {
            last_in_flight = in_flight;
            metrics.epochs_in_flight(index, in_flight);
        }
        if settings.embed.is_some() {
            let backlog = settings.embed_stats.pending.load(std::sync::atomic::Ordering::Relaxed);
            if backlog != last_backlog {
                last_backlog = backlog;
                metrics.embedding_backlog(backlog);
            }
        }
        if let Some(e) = first_error(&errors) {
            return Err(abandon(worker, e));
        }
    }
    if let Some(e) = first_error(&errors) {
        return Err(abandon(worker, e));
    }
    // Every sink flushed and acknowledged everything: commit the next offset of every partition read.
    if let Some(h) = kafka_handle {
        h.finish().map_err(|e| format!("kafka source: {e}"))?;
    }

    metrics.epochs_in_flight(index, 0);
    let latency = latency.borrow().clone();
    let late = quality_stats.borrow().late.clone();
    let late_counts = quality_stats.borrow().late_counts.values().cloned().collect();
    let windows = windows.borrow().clone();
    Ok(WorkerReport {
        windows,
        late,
        late_counts,
        sinks: sinks.stats.iter().map(|(k, v)| (k.clone(), v.borrow().clone())).collect(),
        latency,
        weather_feed: feed_report.map(|r| r.borrow().clone()).filter(|_| index == 0),
    })
}

/// The live weather source on this worker (`--weather owm`): lines (counted as read), round reports, and the
/// feed's report (filled on worker 0). Built from the social and market watermark reports.
fn live_source<'scope>(
    scope: Scope<'scope, Epoch>,
    live: Option<&LiveWeather>,
    input: &Input,
    index: usize,
    metrics: &Metrics,
    post_reports: &Stream<'scope, Epoch, Vec<WatermarkReport>>,
    order_reports: &Stream<'scope, Epoch, Vec<WatermarkReport>>,
) -> LiveStreams<'scope> {
    let feed = match (live, index) {
        (Some(l), 0) => l.feed.lock().ok().and_then(|mut f| f.take()),
        _ => None,
    };
    let end = live.map_or(EndRule::Covered, |l| l.end);
    let (stop, hint) = match input {
        Input::Kafka { control, .. } => (Arc::clone(&control.stop), Some(Arc::clone(&control.high_epoch))),
        Input::File => (Arc::new(AtomicBool::new(false)), None),
    };
    let progress = scope.concatenate([post_reports.clone(), order_reports.clone()]);
    let streams = live_weather(scope, feed, progress, end, stop, hint);
    let m = metrics.clone();
    let lines = count(streams.lines, move |d| m.records_in("weather", d.len() as u64));
    LiveStreams { lines, ..streams }
}
