//! The graph's inputs: file replay, Kafka, and the live weather feed, gathered into one [`Inputs`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millionx_dataflow::checkpoint::SharedCheckpoints;
use millionx_dataflow::config::Config;
use millionx_dataflow::watermark::WatermarkReport;
use millionx_dataflow::{DeadLetter, Epoch, RawLine, StreamKind};
use millionx_metrics::Metrics;
use millionx_source_file::{file_source, FileSourceConfig};
use millionx_source_kafka::{kafka_source_for, KafkaConfig, KafkaSourceHandle, SourceControl};
use millionx_source_weather::live::{live_weather, start_feed, EndRule, FeedHandle, FeedReport};
use millionx_source_weather::{ApiKey, WeatherConfig};
use timely::dataflow::operators::{Concatenate, Inspect};
use timely::dataflow::{ProbeHandle, Scope, Stream};

/// Where the social, market and (unless [`LiveWeather`]) weather lines come from.
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

/// The weather stream before validation: lines read from the input, or the live feed, which is built only
/// once the validated social and market watermarks exist (see [`WeatherInput::lines`]).
pub enum WeatherInput<'scope> {
    /// Lines from the file or Kafka source.
    Read(Stream<'scope, Epoch, Vec<RawLine>>),
    /// The live fetcher (`--weather owm`); `feed` is `Some` on global worker 0 only.
    Live {
        /// The fetcher's handle.
        feed: Option<FeedHandle>,
        /// When the feed ends.
        end: EndRule,
        /// The shutdown flag the feed also honours.
        stop: Arc<AtomicBool>,
        /// The Kafka sources' shared high epoch.
        epoch_hint: Option<Arc<AtomicU64>>,
    },
}

/// One worker's inputs: raw lines per stream (counted as read), the sources' own dead letters and
/// watermark reports, and the partitions this worker reads.
pub struct Inputs<'scope> {
    /// Social post lines.
    pub social: Stream<'scope, Epoch, Vec<RawLine>>,
    /// Marketplace order lines.
    pub market: Stream<'scope, Epoch, Vec<RawLine>>,
    /// Lines the sources rejected before validation (`too_large`, tombstones, …).
    pub dead: Stream<'scope, Epoch, Vec<DeadLetter>>,
    /// Watermark reports the sources make themselves (Kafka idleness, live weather rounds); the validated
    /// records' reports are added by the graph.
    pub reports: Vec<Stream<'scope, Epoch, Vec<WatermarkReport>>>,
    /// The partitions of each stream this worker reads.
    pub partitions: BTreeMap<StreamKind, Vec<u32>>,
    /// The Kafka source's commit handle (Kafka input only).
    pub kafka: Option<KafkaSourceHandle>,
    /// What the live weather feed did (worker 0 of a `--weather owm` run only).
    pub feed_report: Option<Rc<RefCell<FeedReport>>>,
    metrics: Metrics,
}

/// Counts every line of `lines` as read for `stream` and records the newest epoch started in `started`
/// (the epochs-in-flight gauge), when given.
fn counted<'scope>(
    lines: Stream<'scope, Epoch, Vec<RawLine>>,
    stream: StreamKind,
    metrics: &Metrics,
    started: Option<&Rc<Cell<Option<Epoch>>>>,
) -> Stream<'scope, Epoch, Vec<RawLine>> {
    let (m, started) = (metrics.clone(), started.map(Rc::clone));
    lines.inspect_core(move |event| match (event, &started) {
        (Ok((_, data)), _) => m.records_in(stream.name(), data.len() as u64),
        (Err(frontier), Some(started)) => {
            if let Some(&e) = frontier.iter().max() {
                started.set(Some(started.get().map_or(e, |s| s.max(e))));
            }
        }
        (Err(_), None) => {}
    })
}

/// Counts source dead letters as read lines of their stream.
fn counted_dead<'scope>(
    dead: Stream<'scope, Epoch, Vec<DeadLetter>>,
    metrics: &Metrics,
) -> Stream<'scope, Epoch, Vec<DeadLetter>> {
    let m = metrics.clone();
    dead.inspect_core(move |event| {
        if let Ok((_, data)) = event {
            for d in data.iter() {
                m.records_in(d.origin.stream.name(), 1);
            }
        }
    })
}

impl<'scope> Inputs<'scope> {
    /// Builds this worker's sources. `probe` watches the end of processing (file replay's backpressure);
    /// `ack` is every sink's acknowledged progress (Kafka commits behind it); `started` receives the newest
    /// epoch a source has started.
    ///
    /// Returns the inputs and the weather input, which [`WeatherInput::lines`] turns into lines once the
    /// record streams are validated.
    ///
    /// `stop` ends a file replay early (SIGINT/SIGTERM; the Kafka source has its own in `SourceControl`);
    /// `checkpoints` is the worker's registry (the Kafka source's offsets).
    ///
    /// Errors: an input file cannot be opened; the Kafka source cannot start (broker, topics, offsets).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        scope: Scope<'scope, Epoch>,
        cfg: &Config,
        input: &Input,
        live: Option<&LiveWeather>,
        probe: &ProbeHandle<Epoch>,
        ack: &ProbeHandle<Epoch>,
        started: &Rc<Cell<Option<Epoch>>>,
        metrics: &Metrics,
        stop: &Arc<AtomicBool>,
        checkpoints: &SharedCheckpoints,
    ) -> Result<(Inputs<'scope>, WeatherInput<'scope>), String> {
        let index = scope.index();
        let streams: &[StreamKind] = match live {
            None => &StreamKind::ALL,
            Some(_) => &[StreamKind::Social, StreamKind::Market],
        };
        let (mut lines, dead, reports, partitions, kafka, stop, epoch_hint) = match input {
            Input::File => {
                let mut lines = BTreeMap::new();
                let mut dead = Vec::new();
                for &stream in streams {
                    let config = FileSourceConfig {
                        path: cfg.input.dir.join(stream.file_name()),
                        stream,
                        epoch_lines: cfg.input.epoch_lines,
                        max_epochs_in_flight: cfg.input.max_epochs_in_flight,
                        max_message_bytes: cfg.input.max_message_bytes,
                    };
                    let (l, d) =
                        file_source(scope, config, probe.clone(), Arc::clone(stop)).map_err(|e| e.to_string())?;
                    lines.insert(stream, l);
                    dead.push(d);
                }
                let partitions = StreamKind::ALL.iter().map(|s| (*s, vec![0])).collect();
                (lines, scope.concatenate(dead), Vec::new(), partitions, None, Arc::clone(stop), None)
            }
            Input::Kafka { config, control } => {
                let (streams, handle) = kafka_source_for(
                    scope,
                    config,
                    streams,
                    cfg.input.max_message_bytes,
                    ack.clone(),
                    control.clone(),
                    checkpoints,
                )
                .map_err(|e| e.to_string())?;
                let mut lines = streams.lines;
                if live.is_some() {
                    // With the live feed, context.weather is not read.
                    lines.remove(&StreamKind::Weather);
                }
                (
                    lines,
                    streams.dead,
                    vec![streams.idle_reports],
                    streams.partitions,
                    Some(handle),
                    Arc::clone(&control.stop),
                    Some(Arc::clone(&control.high_epoch)),
                )
            }
        };
        let mut take = |s: StreamKind| {
            lines
                .remove(&s)
                .map(|l| counted(l, s, metrics, Some(started)))
                .ok_or_else(|| format!("no {} stream", s.name()))
        };
        let (social, market) = (take(StreamKind::Social)?, take(StreamKind::Market)?);
        let weather = match live {
            None => WeatherInput::Read(take(StreamKind::Weather)?),
            Some(l) => WeatherInput::Live {
                feed: if index == 0 { l.feed.lock().ok().and_then(|mut f| f.take()) } else { None },
                end: l.end,
                stop,
                epoch_hint,
            },
        };
        let inputs = Inputs {
            social,
            market,
            dead: counted_dead(dead, metrics),
            reports,
            partitions,
            kafka,
            feed_report: None,
            metrics: metrics.clone(),
        };
        Ok((inputs, weather))
    }

    /// The partitions of `stream` this worker reads.
    pub fn partitions(&self, stream: StreamKind) -> Vec<u32> {
        self.partitions.get(&stream).cloned().unwrap_or_default()
    }
}

impl<'scope> WeatherInput<'scope> {
    /// The weather lines. A live feed is built here, following `progress` (the validated social and market
    /// watermark reports); its round reports join `inputs.reports`, and worker 0 reads its single partition.
    pub fn lines(
        self,
        inputs: &mut Inputs<'scope>,
        progress: Stream<'scope, Epoch, Vec<WatermarkReport>>,
    ) -> Stream<'scope, Epoch, Vec<RawLine>> {
        match self {
            WeatherInput::Read(lines) => lines,
            WeatherInput::Live { feed, end, stop, epoch_hint } => {
                let scope = progress.scope();
                let index = scope.index();
                let live = live_weather(scope, feed, progress, end, stop, epoch_hint);
                inputs.partitions.insert(StreamKind::Weather, if index == 0 { vec![0] } else { Vec::new() });
                inputs.reports.push(live.reports);
                inputs.feed_report = (index == 0).then_some(live.report);
                counted(live.lines, StreamKind::Weather, &inputs.metrics, None)
            }
        }
    }
}
