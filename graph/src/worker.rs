//! One worker's graph, assembled from the inputs, the per-kind chains, the observations and the outputs,
//! and the loop that runs it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use millionx_dataflow::checkpoint::{Checkpoints, SharedCheckpoints};

use crate::plan::CheckpointPlan;
use millionx_dataflow::config::Config;
use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{Epoch, StreamKind};
use millionx_embed::{EmbedConfig, EmbedPool, EmbedStats};
use millionx_metrics::Metrics;
use millionx_operators::anonymise::Anonymiser;
use millionx_operators::calendar::LocalCalendar;
use millionx_operators::categorise::Categoriser;
use millionx_operators::dedup::Dedup;
use millionx_operators::quality::{QualityStats, QualityWindows};
use millionx_operators::validate::{market, social, weather, Validate};
use millionx_operators::watermark::WatermarkReports;
use millionx_sink_format::dlq::DeadLetterEncoder;
use millionx_sink_format::quality::QualityEncoder;
use millionx_sink_format::snowflake::{RowEncoder, Table};
use millionx_sink_format::weaviate::{Class, ObjectEncoder};
use millionx_sink_format::SourceNaming;
use millionx_sink_util::SinkError;
use millionx_source_weather::live::FeedReport;
use millionx_state::Store;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Concat, Concatenate, Inspect, Probe};
use timely::dataflow::{ProbeHandle, Scope, Stream};
use timely::worker::Worker;

use crate::enrich::Enricher;
use crate::inputs::{Input, Inputs, LiveWeather};
use crate::observe;
use crate::outputs::{Outputs, Services, Target};

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
    /// The services the outputs write to instead of files.
    pub services: Services,
    /// The embedding pool (model threads), when embeddings are on.
    pub embed: Option<EmbedPool>,
    /// Embedding batch and deadline settings.
    pub embed_config: EmbedConfig,
    /// `run --weather owm`: the weather stream comes from the live fetcher instead of the input.
    pub live_weather: Option<LiveWeather>,
    /// Embedding counters shared by every worker's `embed` operators (the backlog gauge reads them).
    pub embed_stats: Arc<EmbedStats>,
    /// Set by SIGINT/SIGTERM: the file sources end early and the graph drains (Kafka: `SourceControl::stop`).
    pub stop: Arc<AtomicBool>,
    /// Durable operator state (Kafka source); `None`: no checkpoints.
    pub state: Option<StateSettings>,
}

/// Where and how often a worker checkpoints, and where it resumes.
#[derive(Clone, Debug)]
pub struct StateSettings {
    /// The process's snapshot file.
    pub store: Arc<Store>,
    /// Epochs between two checkpoints (`state.checkpoint_epochs`).
    pub every: Epoch,
    /// The boundary every worker of the process resumes from (`None`: a fresh start).
    pub resume: Option<Epoch>,
    /// The global indices of this process's workers.
    pub workers: std::ops::Range<usize>,
    /// Which boundary the workers store next (shared by the process's workers).
    pub plan: Arc<CheckpointPlan>,
}

/// What a worker's checkpoints did.
#[derive(Clone, Debug, Default)]
pub struct CheckpointReport {
    /// The boundary the worker resumed from.
    pub resumed_from: Option<Epoch>,
    /// Snapshots stored.
    pub written: u64,
    /// The newest stored boundary.
    pub newest: Option<Epoch>,
    /// Encoded size of the newest snapshot, bytes.
    pub bytes: u64,
    /// Time spent storing snapshots (encode + transaction + fsync), µs.
    pub store_us: u64,
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
    pub sinks: BTreeMap<String, millionx_sink_util::SinkStats>,
    /// read→write latency of records in the Snowflake and Weaviate outputs, µs.
    pub latency: Histogram<u64>,
    /// The same per sink (`snowflake/SOCIAL_POSTS`, `weaviate/SocialPost`, …), µs.
    pub sink_latency: BTreeMap<String, Histogram<u64>>,
    /// What the live weather feed did (worker 0 of a `--weather owm` run only).
    pub weather_feed: Option<FeedReport>,
    /// What the checkpoints did (empty without state).
    pub checkpoints: CheckpointReport,
}

/// A new latency histogram: 1 µs to 1 h, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// What the run loop keeps of the graph once it is built.
struct Built {
    kafka: Option<millionx_source_kafka::KafkaSourceHandle>,
    feed_report: Option<Rc<RefCell<FeedReport>>>,
}

/// Builds the graph (see the crate documentation) on `scope`. `probe` watches the end of processing
/// (backpressure), `ack` every sink's acknowledged progress (Kafka commits behind it).
#[allow(clippy::too_many_arguments)]
fn build<'scope>(
    scope: Scope<'scope, Epoch>,
    settings: &Settings,
    outputs: &mut Outputs,
    probe: &ProbeHandle<Epoch>,
    ack: &ProbeHandle<Epoch>,
    started: &Rc<Cell<Option<Epoch>>>,
    windows: &Rc<RefCell<Vec<QualityWindow>>>,
    quality_stats: &Rc<RefCell<QualityStats>>,
    checkpoints: &SharedCheckpoints,
) -> Result<Built, String> {
    let cfg = &settings.config;
    let metrics = &settings.metrics;
    let reader = scope.index() as u32;
    let tracker = Watermarks::new(cfg.watermark.lateness());
    let (mut inputs, weather_input) = Inputs::build(
        scope,
        cfg,
        &settings.input,
        settings.live_weather.as_ref(),
        probe,
        ack,
        started,
        metrics,
        &settings.stop,
        checkpoints,
    )?;

    // A resumed run's first epoch: no report precedes it.
    let from = checkpoints.borrow().resume();
    // Validation; each validated stream's metas feed its watermark reports and the observations.
    let (posts, posts_rejected, post_metas) = inputs.social.clone().validate(social::validate);
    let (orders, orders_rejected, order_metas) = inputs.market.clone().validate(market::validate);
    let post_reports =
        post_metas.clone().watermark_reports(StreamKind::Social, inputs.partitions(StreamKind::Social), reader, from);
    let order_reports =
        order_metas.clone().watermark_reports(StreamKind::Market, inputs.partitions(StreamKind::Market), reader, from);
    let weather_lines =
        weather_input.lines(&mut inputs, scope.concatenate([post_reports.clone(), order_reports.clone()]));
    let (readings, readings_rejected, reading_metas) = weather_lines.validate(weather::validate);
    let reading_reports = reading_metas.clone().watermark_reports(
        StreamKind::Weather,
        inputs.partitions(StreamKind::Weather),
        reader,
        from,
    );
    let mut report_streams = vec![post_reports, order_reports, reading_reports];
    report_streams.append(&mut inputs.reports);
    let reports: Stream<'_, Epoch, Vec<WatermarkReport>> = scope.concatenate(report_streams).broadcast();

    // De-duplication (exchanged by key).
    let horizon_ms = cfg.dedup.horizon_hours as i64 * 3_600_000;
    let (posts, posts_dup) = posts.dedup(reports.clone(), StreamKind::Social, tracker.clone(), horizon_ms, checkpoints);
    let (orders, orders_dup) =
        orders.dedup(reports.clone(), StreamKind::Market, tracker.clone(), horizon_ms, checkpoints);
    let (readings, readings_dup) =
        readings.dedup(reports.clone(), StreamKind::Weather, tracker.clone(), horizon_ms, checkpoints);

    // Enrichment, once per record kind.
    let enricher = Enricher {
        anonymiser: Anonymiser::new(&settings.pii_key),
        categoriser: Categoriser::new(),
        calendar: LocalCalendar::dhaka(),
        weather: readings.clone().broadcast(),
        reports: reports.clone(),
        tracker: tracker.clone(),
        max_weather_age_ms: cfg.join.max_weather_age_ms as i64,
        embed: settings.embed.clone(),
        embed_config: settings.embed_config.clone(),
        embed_stats: Arc::clone(&settings.embed_stats),
        checkpoints: Rc::clone(checkpoints),
    };
    let posts = enricher.enrich(posts);
    let orders = enricher.enrich(orders);
    let readings = readings.map(Arc::new);
    let rejected = scope.concatenate([inputs.dead, posts_rejected, orders_rejected, readings_rejected]).map(Arc::new);

    // Observations → metrics and quality windows.
    let observations = scope.concatenate([
        observe::valid(&post_metas, StreamKind::Social),
        observe::valid(&order_metas, StreamKind::Market),
        observe::valid(&reading_metas, StreamKind::Weather),
        observe::rejected(&rejected),
        observe::duplicates(posts_dup, StreamKind::Social),
        observe::duplicates(orders_dup, StreamKind::Market),
        observe::duplicates(readings_dup, StreamKind::Weather),
        observe::emitted(&posts),
        observe::emitted(&orders),
        observe::emitted_readings(&readings),
    ]);
    let (collected, m) = (Rc::clone(windows), metrics.clone());
    let quality = observe::metrics_tap(observations, metrics)
        .quality_windows(reports, tracker, Rc::clone(quality_stats), checkpoints)
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
            posts.clone().map(|_| ()),
            orders.clone().map(|_| ()),
            quality.clone().map(|_| ()),
            rejected.clone().map(|_| ()),
        ])
        .probe_with(probe);

    let framing = outputs.row_framing();
    let sink_dead = vec![
        outputs.sink(posts.clone(), Target::Table(Table::SocialPosts), RowEncoder::new(Table::SocialPosts, framing))?,
        outputs.sink(
            orders.clone(),
            Target::Table(Table::MarketOrders),
            RowEncoder::new(Table::MarketOrders, framing),
        )?,
        outputs.sink(
            orders.clone(),
            Target::Table(Table::PriceHistory),
            RowEncoder::new(Table::PriceHistory, framing),
        )?,
        outputs.sink(readings, Target::Table(Table::WeatherLogs), RowEncoder::new(Table::WeatherLogs, framing))?,
        outputs.sink(posts, Target::Class(Class::SocialPost), ObjectEncoder::new())?,
        outputs.sink(orders, Target::Class(Class::MarketOrder), ObjectEncoder::new())?,
        outputs.sink(quality, Target::Quality, QualityEncoder)?,
    ];
    for d in &sink_dead {
        d.clone().probe_with(ack);
    }
    let dead_letters = observe::dead_letter_tap(scope.concatenate(sink_dead).map(Arc::new).concat(rejected), metrics);
    let naming = match settings.input {
        Input::File => SourceNaming::File,
        Input::Kafka { .. } => SourceNaming::Kafka,
    };
    outputs.sink(dead_letters, Target::DeadLetters, DeadLetterEncoder::new(naming))?.probe_with(ack);
    Ok(Built { kafka: inputs.kafka, feed_report: inputs.feed_report })
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

/// One step of the process's checkpoint plan ([`CheckpointPlan`]) for worker `worker`: publishes the newest
/// boundary it could store (covered by its operators' contributions, every epoch before it acknowledged by
/// the sinks, so the files and rows of those epochs exist), stores the plan's target when it is due, and
/// lets the Kafka source commit up to the boundary every worker of the process stored.
///
/// Errors: the store failed (the run stops: offsets are not committed past the last stored snapshot).
fn checkpoint_step(
    st: &StateSettings,
    worker: usize,
    checkpoints: &SharedCheckpoints,
    ack: &ProbeHandle<Epoch>,
    report: &mut CheckpointReport,
) -> Result<(), String> {
    let ready = {
        let c = checkpoints.borrow();
        let every = c.every().max(1);
        let acked = ack.with_frontier(|f| f.iter().min().copied()).map_or(Epoch::MAX, |f| f / every * every);
        c.covered().map_or(0, |b| b.min(acked))
    };
    let local = worker - st.workers.start;
    let step = st.plan.step(local, ready);
    if let Some(boundary) = step.store {
        let snap = checkpoints
            .borrow()
            .snapshot_at(boundary)
            .ok_or_else(|| format!("checkpoint: worker {worker} has no state for epoch {boundary}"))?;
        let started = std::time::Instant::now();
        let bytes = st.store.save(worker, boundary, &snap, st.workers.clone()).map_err(|e| e.to_string())?;
        report.store_us += started.elapsed().as_micros() as u64;
        report.written += 1;
        report.newest = Some(boundary);
        report.bytes = bytes as u64;
        checkpoints.borrow_mut().forget_before(boundary);
        st.plan.stored(local, boundary);
    }
    checkpoints.borrow_mut().set_durable(step.durable);
    Ok(())
}

/// A worker's place in the checkpoint plan: leaving without [`Seat::leave`] (an error, a panic) tells the
/// other workers not to wait for it.
struct Seat<'a> {
    plan: &'a CheckpointPlan,
    local: usize,
    left: bool,
}

impl Seat<'_> {
    fn leave(&mut self) {
        self.left = true;
        self.plan.leave(self.local, true);
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        if !self.left {
            self.plan.leave(self.local, false);
        }
    }
}

/// Builds the graph on `worker` and runs it to completion (or to the first fatal sink error).
///
/// Errors: an input file cannot be opened; a source or sink cannot start; a sink failed fatally (the
/// message names it); the final Kafka commit failed.
pub fn run_worker(
    worker: &mut Worker,
    settings: &Settings,
    errors: Arc<Mutex<Vec<SinkError>>>,
) -> Result<WorkerReport, String> {
    let index = worker.index();
    let cfg = &settings.config;
    let metrics = settings.metrics.clone();
    let windows = Rc::new(RefCell::new(Vec::new()));
    let quality_stats = Rc::new(RefCell::new(QualityStats::default()));
    let mut policy: millionx_sink_util::BatchPolicy = cfg.batch.into();
    policy.segment_epochs = settings.state.as_ref().map(|s| s.every);
    let (checkpoints, mut report) = match &settings.state {
        None => (Checkpoints::disabled(), CheckpointReport::default()),
        Some(st) => {
            let restored = match st.resume {
                None => None,
                Some(b) => Some((b, st.store.load(index, b).map_err(|e| e.to_string())?)),
            };
            (Checkpoints::new(st.every, restored), CheckpointReport { resumed_from: st.resume, ..Default::default() })
        }
    };
    let mut outputs = Outputs::new(
        cfg.output.dir.clone(),
        index,
        policy,
        settings.services.clone(),
        Arc::clone(&errors),
        metrics.clone(),
    );
    let probe = ProbeHandle::<Epoch>::new();
    // Every sink's acknowledged progress (the frontier of its dead-letter output).
    let ack = ProbeHandle::<Epoch>::new();
    // The newest epoch a source has started: epochs in flight = that − the acknowledged frontier.
    let started = Rc::new(Cell::new(None::<Epoch>));
    metrics.init_worker(index);
    for (stream, enriched) in [("social", true), ("market", true), ("weather", false)] {
        metrics.init_stream(stream, enriched);
    }

    let built = worker.dataflow::<Epoch, _, _>(|scope: Scope<'_, Epoch>| {
        build(scope, settings, &mut outputs, &probe, &ack, &started, &windows, &quality_stats, &checkpoints)
    })?;
    let restore_error = checkpoints.borrow().error().map(str::to_owned);
    if let Some(e) = restore_error {
        return Err(abandon(worker, e));
    }
    let mut seat =
        settings.state.as_ref().map(|st| Seat { plan: &st.plan, local: index - st.workers.start, left: false });

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
            let backlog = settings.embed_stats.pending.load(Ordering::Relaxed);
            if backlog != last_backlog {
                last_backlog = backlog;
                metrics.embedding_backlog(backlog);
            }
        }
        if let Some(e) = first_error(&errors) {
            return Err(abandon(worker, e));
        }
        if let Some(st) = &settings.state {
            if let Err(e) = checkpoint_step(st, index, &checkpoints, &ack, &mut report) {
                return Err(abandon(worker, e));
            }
        }
    }
    if let Some(e) = first_error(&errors) {
        return Err(abandon(worker, e));
    }
    // The last checkpoint: every worker stores the newest boundary all of them reach, then commits up to it.
    if let (Some(st), Some(seat)) = (&settings.state, seat.as_mut()) {
        checkpoint_step(st, index, &checkpoints, &ack, &mut report)?;
        seat.leave();
        while !st.plan.settled() {
            checkpoint_step(st, index, &checkpoints, &ack, &mut report)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        checkpoint_step(st, index, &checkpoints, &ack, &mut report)?;
    }
    // Every sink flushed and acknowledged everything: commit every offset read (with durable state, up to
    // the last checkpoint).
    if let Some(h) = built.kafka {
        let frontier = checkpoints.borrow().commit_frontier(None);
        h.finish(frontier).map_err(|e| format!("kafka source: {e}"))?;
    }

    metrics.epochs_in_flight(index, 0);
    let stats = quality_stats.borrow();
    let sink_latency = outputs.latency();
    let mut latency = latency_histogram();
    for h in sink_latency.values() {
        latency.add(h).map_err(|e| format!("merging latency histograms: {e}"))?;
    }
    let report = WorkerReport {
        windows: windows.borrow().clone(),
        late: stats.late.clone(),
        late_counts: stats.late_counts.values().cloned().collect(),
        sinks: outputs.stats(),
        latency,
        sink_latency,
        weather_feed: built.feed_report.map(|r| r.borrow().clone()).filter(|_| index == 0),
        checkpoints: report,
    };
    Ok(report)
}
