//! The live weather source of a running pipeline (`millionx run --weather owm`): a timely operator fed by the
//! fetcher thread of [`spawn_feed`].
//!
//! - **One owner.** The operator exists on every worker (every worker builds the same graph); only the owner
//!   (global worker index 0) runs the fetcher and emits. The others drop their capabilities at once.
//! - **Same lines.** Each reading leaves as a [`RawLine`] holding exactly the JSON line `weather fetch --out`
//!   writes (origin: stream `weather`, partition 0, offset = sequence number of the reading in this run), so
//!   it goes through the pipeline's weather validation, dedup and counters like a line of weather.jsonl.
//! - **Watermark.** After a round, the operator emits a [`WatermarkReport`] for weather partition 0 (reader
//!   = the owner) with `max_event_time` = the round's watermark (its start), one epoch after the round's
//!   readings, so the readings are in the table before the watermark releases the records they enrich.
//! - **Epochs.** The operator never holds back the record streams: its capability follows the frontier of
//!   `progress` (the record streams' watermark reports, exchanged to the owner), i.e. the least epoch the
//!   record sources may still produce, and once they are done, one past the last epoch they used. A round
//!   goes out at the capability's epoch `e` (readings), `e + 1` (report), and the capability moves to `e + 2`.
//!   With a Kafka source, `epoch_hint` (the sources' shared high epoch) is raised to `e + 2` as well, so a
//!   caught-up Kafka source moves past the round's epochs and they complete even while the topics are idle.
//! - **End.** [`EndRule::Covered`] (file input): the operator ends once the record streams have ended *and*
//!   a completed round's watermark is past their newest event time (every record can be released), or when
//!   the fetcher thread ends (an error; said in [`FeedReport::ended`]). [`EndRule::OnStop`] (Kafka input):
//!   it ends when `stop` is set (SIGINT/SIGTERM) or the fetcher thread ends. Ending stops the fetcher and
//!   drops the capabilities, so the weather stream ends and the join releases what is left.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{City, Epoch, EventTime, Origin, RawLine, StreamKind};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{Scope, Stream};

use millionx_dataflow::config::ConfigError;

use crate::client::ReqwestTransport;
use crate::config::{ApiKey, WeatherConfig};
use crate::error::FailureReason;
use crate::fetcher::Fetcher;
use crate::schedule::{run_schedule, runtime, RunSummary, Schedule};
use crate::sink::{ChannelSink, SinkError, WeatherEvent};

/// When the live source ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndRule {
    /// File input: once the record streams ended and a round's watermark covers their newest event time.
    Covered,
    /// Kafka input: when the stop flag is set.
    OnStop,
}

/// The owner's side of the feed: the fetcher thread's channel and how to stop it.
#[derive(Debug)]
pub struct FeedHandle {
    /// Rounds from the fetcher thread.
    pub rx: mpsc::Receiver<WeatherEvent>,
    /// Dropping or firing it stops the fetcher thread.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The fetcher thread (joined once it has ended by itself, for its error).
    pub thread: std::thread::JoinHandle<Result<RunSummary, SinkError>>,
}

/// Starts the fetcher thread ([`spawn_feed`]) with a round every `every`, first at once. The caller
/// validated `config` and read `key`. Errors: the HTTP client or the thread cannot be created.
pub fn start_feed(
    config: WeatherConfig,
    key: ApiKey,
    every: Duration,
    metrics: Option<millionx_metrics::Metrics>,
) -> Result<FeedHandle, ConfigError> {
    let (tx, rx) = mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let thread = spawn_feed(config, key, Schedule::Every(every), tx, stop_rx, metrics)?;
    Ok(FeedHandle { rx, stop, thread })
}

/// Starts a fetcher thread feeding a running pipeline (`run --weather owm`): each round sends
/// [`WeatherEvent::Readings`] (when any are new), [`WeatherEvent::Failures`] (when a city failed), then
/// [`WeatherEvent::Watermark`]. The thread ends when the schedule ends, `stop` fires (or its sender is
/// dropped), or the receiver of `tx` is dropped. The caller validates `config` and reads `key` first
/// ([`WeatherConfig::validate`], [`ApiKey::from_env`]). With `metrics`, fetches are counted into
/// `millionx_weather_fetch_total{result,reason}` of that registry.
/// Errors: the HTTP client or the thread cannot be created.
pub fn spawn_feed(
    config: WeatherConfig,
    key: ApiKey,
    schedule: Schedule,
    tx: mpsc::Sender<WeatherEvent>,
    stop: tokio::sync::oneshot::Receiver<()>,
    metrics: Option<millionx_metrics::Metrics>,
) -> Result<std::thread::JoinHandle<Result<RunSummary, SinkError>>, ConfigError> {
    let transport = ReqwestTransport::new(&config)?;
    let mut fetcher = Fetcher::new(config, key, transport)?;
    if let Some(m) = metrics {
        fetcher = fetcher.with_metrics(m);
    }
    std::thread::Builder::new()
        .name("weather-owm".into())
        .spawn(move || {
            let rt = runtime().map_err(|source| SinkError { what: String::from("start the async runtime"), source })?;
            let mut sink = ChannelSink::new(tx);
            rt.block_on(run_schedule(&mut fetcher, &mut sink, schedule, async {
                let _ = stop.await;
            }))
        })
        .map_err(|e| ConfigError {
            key: String::from("run --weather"),
            reason: format!("cannot start the fetcher thread: {e}"),
        })
}

/// What the live source did, for the run summary (owner only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedReport {
    /// Completed rounds.
    pub rounds: u64,
    /// Readings emitted into the pipeline.
    pub readings: u64,
    /// Failed cities of every round, in order: (round number from 1, city, reason label).
    pub failures: Vec<(u64, City, FailureReason)>,
    /// The last round's watermark, Unix ms.
    pub last_watermark_ms: Option<i64>,
    /// Why the source ended: `covered` (file input released), `stopped` (signal), or `feed ended: …`.
    pub ended: String,
}

/// What [`live_weather`] returns.
pub struct LiveStreams<'scope> {
    /// The weather lines (JSON readings), to validate like weather.jsonl's lines.
    pub lines: Stream<'scope, Epoch, Vec<RawLine>>,
    /// The round watermarks as reports of weather partition 0; concatenate with the other reports before
    /// broadcasting.
    pub reports: Stream<'scope, Epoch, Vec<WatermarkReport>>,
    /// Filled in by the owner as rounds arrive.
    pub report: Rc<RefCell<FeedReport>>,
}

/// Builds the live weather source on this worker. `feed` is `Some` on the owner (worker 0) only.
/// `progress` carries the social and market watermark reports (not the weather's: that would be a cycle);
/// it is exchanged to worker 0. `stop` ends the source ([`EndRule::OnStop`]; also honoured with
/// [`EndRule::Covered`]); `epoch_hint` is the Kafka sources' shared high epoch.
pub fn live_weather<'scope>(
    scope: Scope<'scope, Epoch>,
    feed: Option<FeedHandle>,
    progress: Stream<'scope, Epoch, Vec<WatermarkReport>>,
    end: EndRule,
    stop: Arc<AtomicBool>,
    epoch_hint: Option<Arc<AtomicU64>>,
) -> LiveStreams<'scope> {
    let mut builder = OperatorBuilder::new("LiveWeather".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let mut input = builder.new_input(progress, Exchange::new(|_: &WatermarkReport| 0u64));
    let (lines_out, lines) = builder.new_output::<Vec<RawLine>>();
    let mut lines_out = OutputBuilder::from(lines_out);
    let (reports_out, reports) = builder.new_output::<Vec<WatermarkReport>>();
    let mut reports_out = OutputBuilder::from(reports_out);
    let report = Rc::new(RefCell::new(FeedReport::default()));
    let shared = Rc::clone(&report);
    let reader = scope.index() as u32;

    builder.build(move |caps| {
        let mut feed = feed;
        let mut caps = if feed.is_some() { Some(caps) } else { None };
        let mut cap_epoch: Epoch = 0;
        let mut max_seen: Option<Epoch> = None;
        let mut tracker = Watermarks::default();
        let mut sequence: u64 = 0;
        let mut last_wm: Option<EventTime> = None;
        move |frontiers| {
            input.for_each(|cap, data| {
                if let Some(&e) = cap.least() {
                    max_seen = Some(max_seen.map_or(e, |m| m.max(e)));
                }
                for r in data.iter() {
                    tracker.apply(r);
                }
            });
            let Some(held) = caps.as_mut() else { return };
            let Some(handle) = feed.as_mut() else {
                caps = None;
                return;
            };
            // Follow the record streams: never hold an epoch they have moved past.
            let base = match frontiers[0].frontier().iter().min() {
                Some(f) => *f,
                None => max_seen.map_or(0, |m| m + 1),
            };
            let hint = epoch_hint.as_ref().map_or(0, |h| h.load(Ordering::Relaxed));
            let target = base.max(hint);
            if target > cap_epoch {
                cap_epoch = target;
                for c in held.iter_mut() {
                    c.downgrade(&cap_epoch);
                }
            }
            let mut ended: Option<String> = None;
            loop {
                match handle.rx.try_recv() {
                    Ok(WeatherEvent::Readings(readings)) => {
                        let ingest_ns = now_unix_ns();
                        let mut out = lines_out.activate();
                        let mut session = out.session(&held[0]);
                        for r in readings {
                            let origin = Origin { stream: StreamKind::Weather, partition: 0, offset: sequence };
                            sequence += 1;
                            session.give(RawLine { origin, ingest_ns, payload: r.to_json() });
                            shared.borrow_mut().readings += 1;
                        }
                    }
                    Ok(WeatherEvent::Failures(failed)) => {
                        let mut rep = shared.borrow_mut();
                        let round = rep.rounds + 1;
                        rep.failures.extend(failed.into_iter().map(|(c, r)| (round, c, r)));
                    }
                    Ok(WeatherEvent::Watermark(wm)) => {
                        let wm = EventTime(wm.as_millisecond());
                        cap_epoch += 1;
                        for c in held.iter_mut() {
                            c.downgrade(&cap_epoch);
                        }
                        let r = WatermarkReport {
                            stream: StreamKind::Weather,
                            partition: 0,
                            reader,
                            max_event_time: Some(wm),
                            done: false,
                            idle: false,
                        };
                        reports_out.activate().session(&held[1]).give(r);
                        cap_epoch += 1;
                        for c in held.iter_mut() {
                            c.downgrade(&cap_epoch);
                        }
                        if let Some(h) = &epoch_hint {
                            h.fetch_max(cap_epoch, Ordering::Relaxed);
                        }
                        last_wm = Some(last_wm.map_or(wm, |l| l.max(wm)));
                        let mut rep = shared.borrow_mut();
                        rep.rounds += 1;
                        rep.last_watermark_ms = Some(wm.0);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        ended = Some(String::from("feed ended"));
                        break;
                    }
                }
            }
            if stop.load(Ordering::SeqCst) {
                ended.get_or_insert_with(|| String::from("stopped"));
            }
            if end == EndRule::Covered && ended.is_none() {
                let records_ended = tracker.ended(StreamKind::Social) && tracker.ended(StreamKind::Market);
                let newest =
                    [StreamKind::Social, StreamKind::Market].iter().filter_map(|s| tracker.max_event_time(*s)).max();
                let covered = last_wm.is_some_and(|wm| newest.is_none_or(|n| n < wm));
                if records_ended && covered {
                    ended = Some(String::from("covered"));
                }
            }
            if let Some(why) = ended {
                let Some(h) = feed.take() else { return };
                drop(h.stop);
                let why = if why == "feed ended" {
                    match h.thread.join() {
                        Ok(Ok(s)) => format!("feed ended after {} round(s)", s.rounds),
                        Ok(Err(e)) => format!("feed ended: {e}"),
                        Err(_) => String::from("feed ended: the fetcher thread panicked"),
                    }
                } else {
                    why
                };
                shared.borrow_mut().ended = why;
                caps = None;
                return;
            }
            activator.activate_after(Duration::from_millis(50));
        }
    });
    LiveStreams { lines, reports, report }
}
