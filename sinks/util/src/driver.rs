//! The batching sink operator.
//!
//! Records are encoded into the open batch as they arrive; the batch is flushed when it reaches the
//! policy's record or byte limit, when its oldest record reaches the age limit, or when the input ends.
//! The operator holds, on its dead-letter output, the capability of the oldest epoch of the open batch
//! and of every batch the writer has not completed, so that output's frontier is exactly the sink's
//! acknowledged progress: an offset committer may commit everything before it. Completed batches
//! record each item's read→write latency (µs) and turn rejected items into dead letters.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, WeatherReading};
use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::{DeadLetter, Epoch, Origin, StreamKind};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use millionx_metrics::{SinkMetrics, SinkOutput};

use crate::batch::{BatchPolicy, EncodedBatch};
use crate::encoder::Encoder;
use crate::writer::{BatchWriter, SinkError};

/// Counters of one sink on one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records durably written.
    pub rows: u64,
    /// Batches completed.
    pub batches: u64,
    /// Body bytes of completed batches.
    pub bytes: u64,
    /// Records rejected permanently (sent to the dead-letter output).
    pub rejected: u64,
    /// Transient failures retried.
    pub retries: u64,
}

/// What a sink needs to know of a record besides its encoding.
pub trait SinkRecord {
    /// Source coordinates (for dead letters).
    fn origin(&self) -> Origin;
    /// Wall-clock read time in ns since the Unix epoch, 0 when not measured (no latency recorded).
    fn ingest_ns(&self) -> u64;
}

impl SinkRecord for EnrichedPost {
    fn origin(&self) -> Origin {
        self.meta.origin
    }
    fn ingest_ns(&self) -> u64 {
        self.meta.ingest_ns
    }
}

impl SinkRecord for EnrichedOrder {
    fn origin(&self) -> Origin {
        self.meta.origin
    }
    fn ingest_ns(&self) -> u64 {
        self.meta.ingest_ns
    }
}

impl SinkRecord for WeatherReading {
    fn origin(&self) -> Origin {
        self.meta.origin
    }
    fn ingest_ns(&self) -> u64 {
        self.meta.ingest_ns
    }
}

impl SinkRecord for DeadLetter {
    fn origin(&self) -> Origin {
        self.origin
    }
    fn ingest_ns(&self) -> u64 {
        0
    }
}

/// A window has no source record: its coordinates are the stream, partition `u32::MAX` and the window
/// start (ms) as offset.
impl SinkRecord for QualityWindow {
    fn origin(&self) -> Origin {
        Origin {
            stream: self.stream.unwrap_or(StreamKind::Social),
            partition: u32::MAX,
            offset: self.start.map_or(0, |t| t.0.max(0) as u64),
        }
    }
    fn ingest_ns(&self) -> u64 {
        0
    }
}

/// Where a sink reports: counters, the worker's latency histogram (µs), fatal errors.
#[derive(Clone)]
pub struct SinkContext {
    /// Sink name used in errors and counters, e.g. `snowflake/SOCIAL_POSTS`.
    pub name: String,
    /// Counters of this sink.
    pub stats: Rc<RefCell<SinkStats>>,
    /// read→write latency histogram (µs) shared by the worker's record sinks; `None` to not record.
    pub latency: Option<Rc<RefCell<Histogram<u64>>>>,
    /// Fatal errors of every sink of the process; the run stops and exits non-zero when non-empty.
    pub errors: Arc<Mutex<Vec<SinkError>>>,
    /// Prometheus metrics of this sink and whether it writes rows or objects; `None` to not export.
    /// Per acknowledged batch: rows/objects by stream, batches, bytes, retries, the request duration
    /// (submit → acknowledgement, retries included) and, when `latency` is set, each item's event→sink
    /// latency; a fatal error counts `millionx_sink_errors_total{reason="fatal"}`.
    pub metrics: Option<(SinkMetrics, SinkOutput)>,
}

/// The batching sink operator, over shared records (`Arc<T>`), so that one enriched record feeds
/// several sinks without being copied.
pub trait BatchSink<'scope, T> {
    /// Writes the stream in batches. Returns the dead letters of rejected items; that stream's frontier
    /// is the sink's acknowledged progress.
    fn batch_sink<E, W>(
        self,
        ctx: SinkContext,
        policy: BatchPolicy,
        encoder: E,
        writer: W,
    ) -> Stream<'scope, Epoch, Vec<DeadLetter>>
    where
        E: Encoder<T> + 'static,
        W: BatchWriter + 'static;
}

struct Open {
    batch: EncodedBatch,
    cap: Capability<Epoch>,
    opened: Instant,
}

impl<'scope, T: SinkRecord + 'static> BatchSink<'scope, T> for Stream<'scope, Epoch, Vec<Arc<T>>> {
    fn batch_sink<E, W>(
        self,
        ctx: SinkContext,
        policy: BatchPolicy,
        mut encoder: E,
        mut writer: W,
    ) -> Stream<'scope, Epoch, Vec<DeadLetter>>
    where
        E: Encoder<T> + 'static,
        W: BatchWriter + 'static,
    {
        let scope = self.scope();
        let mut builder = OperatorBuilder::new(format!("Sink({})", ctx.name), scope);
        let activator = scope.activator_for(builder.operator_info().address);
        let mut input = builder.new_input(self, Pipeline);
        let (out, dead) = builder.new_output::<Vec<DeadLetter>>();
        let mut out = OutputBuilder::from(out);
        let framing = encoder.framing();

        builder.build_reschedule(move |mut caps| {
            // The initial capability is not needed: batches hold their own.
            caps.clear();
            let mut open: Option<Open> = None;
            let mut in_flight: BTreeMap<u64, (Capability<Epoch>, Instant)> = BTreeMap::new();
            let mut next_seq = 0u64;
            let mut scratch = Vec::with_capacity(4096);
            let mut failed = false;
            // Size of the last flushed batch: the next one reserves as much up front.
            let last_size = std::cell::Cell::new((0usize, 0usize));
            move |frontiers| {
                let mut handle = out.activate();
                let mut flush =
                    |open: &mut Option<Open>,
                     writer: &mut W,
                     in_flight: &mut BTreeMap<u64, (Capability<Epoch>, Instant)>| {
                        if let Some(mut o) = open.take() {
                            while writer.in_flight() >= writer.max_in_flight().max(1) {
                                complete(writer.poll(), &ctx, in_flight, &mut handle, &mut failed);
                                if writer.in_flight() >= writer.max_in_flight().max(1) {
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                            }
                            o.batch.close();
                            last_size.set((o.batch.body.len().min(policy.max_bytes), o.batch.len()));
                            in_flight.insert(o.batch.seq, (o.cap, Instant::now()));
                            writer.submit(o.batch);
                        }
                    };
                input.for_each(|cap, data| {
                    for record in data.drain(..) {
                        scratch.clear();
                        encoder.encode(&*record, &mut scratch);
                        let fits = open.as_ref().is_none_or(|o| {
                            o.batch.closed_len() + framing.separator.len() + scratch.len() <= policy.max_bytes
                        });
                        if !fits {
                            flush(&mut open, &mut writer, &mut in_flight);
                        }
                        let o = open.get_or_insert_with(|| {
                            let seq = next_seq;
                            next_seq += 1;
                            Open {
                                batch: EncodedBatch::with_capacity(seq, framing, last_size.get().0, last_size.get().1),
                                cap: cap.delayed(cap.least().unwrap_or(&0), 0),
                                opened: Instant::now(),
                            }
                        });
                        if let Some(t) = cap.least() {
                            if t < o.cap.time() {
                                o.cap = cap.delayed(t, 0);
                            }
                        }
                        o.batch.push_with(record.origin(), record.ingest_ns(), |b| b.extend_from_slice(&scratch));
                        if o.batch.len() >= policy.max_records || o.batch.closed_len() >= policy.max_bytes {
                            flush(&mut open, &mut writer, &mut in_flight);
                        }
                    }
                });
                let input_done = frontiers[0].frontier().is_empty();
                let aged = open.as_ref().is_some_and(|o| o.opened.elapsed() >= policy.max_age);
                if input_done || aged {
                    flush(&mut open, &mut writer, &mut in_flight);
                }
                complete(writer.poll(), &ctx, &mut in_flight, &mut handle, &mut failed);
                if failed {
                    // Keep every capability: nothing after a fatal error is acknowledged.
                    return false;
                }
                if let Some(o) = &open {
                    activator.activate_after(policy.max_age.saturating_sub(o.opened.elapsed()));
                }
                if !in_flight.is_empty() {
                    activator.activate_after(Duration::from_millis(1));
                }
                !(input_done && open.is_none() && in_flight.is_empty())
            }
        });
        dead
    }
}

fn complete(
    completions: Vec<crate::writer::Completion>,
    ctx: &SinkContext,
    in_flight: &mut BTreeMap<u64, (Capability<Epoch>, Instant)>,
    handle: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        Epoch,
        timely::container::CapacityContainerBuilder<Vec<DeadLetter>>,
    >,
    failed: &mut bool,
) {
    for c in completions {
        match c.result {
            Err(e) => {
                *failed = true;
                if let Some((m, _)) = &ctx.metrics {
                    m.error("fatal");
                }
                if let Ok(mut errors) = ctx.errors.lock() {
                    errors.push(e);
                }
            }
            Ok(outcome) => {
                let now = now_unix_ns();
                let mut stats = ctx.stats.borrow_mut();
                stats.batches += 1;
                stats.bytes += c.batch.body.len() as u64;
                stats.rows += (c.batch.len() - outcome.rejected.len()) as u64;
                stats.rejected += outcome.rejected.len() as u64;
                stats.retries += u64::from(outcome.retries);
                if let Some(latency) = &ctx.latency {
                    let mut h = latency.borrow_mut();
                    for item in c.batch.items.iter().filter(|i| i.ingest_ns > 0) {
                        h.saturating_record(now.saturating_sub(item.ingest_ns) / 1_000);
                    }
                }
                let cap = in_flight.remove(&c.seq);
                if let Some((m, output)) = &ctx.metrics {
                    export(
                        m,
                        *output,
                        &c.batch,
                        &outcome,
                        cap.as_ref().map(|(_, at)| at.elapsed()),
                        ctx.latency.is_some(),
                        now,
                    );
                }
                let cap = cap.map(|(cap, _)| cap);
                if let (Some(cap), false) = (&cap, outcome.rejected.is_empty()) {
                    let mut session = handle.session(cap);
                    for r in outcome.rejected {
                        let Some(item) = c.batch.items.get(r.index) else {
                            continue;
                        };
                        session.give(DeadLetter {
                            reason: r.reason,
                            detail: Some(r.message),
                            origin: item.origin,
                            payload: String::from_utf8_lossy(c.batch.item_bytes(r.index)).into_owned(),
                            received_ns: now,
                            event_time_ms: None,
                        });
                    }
                }
            }
        }
    }
}

/// Exports one acknowledged batch to the sink's Prometheus metrics: one call per metric and stream, plus
/// one histogram sample per item with a read time when `latency` (the event→sink latency, s).
fn export(
    m: &SinkMetrics,
    output: SinkOutput,
    batch: &EncodedBatch,
    outcome: &crate::writer::WriteOutcome,
    duration: Option<Duration>,
    latency: bool,
    now_ns: u64,
) {
    m.batches_written(1);
    m.written_bytes(batch.body.len() as u64);
    if outcome.retries > 0 {
        m.retries(u64::from(outcome.retries));
    }
    if let Some(d) = duration {
        m.request_duration(d);
    }
    if !outcome.rejected.is_empty() {
        m.error("rejected");
    }
    // Rows per stream: items minus the rejected ones (few; looked up by index).
    let mut per_stream = [0u64; 3];
    for item in &batch.items {
        per_stream[stream_slot(item.origin.stream)] += 1;
    }
    for r in &outcome.rejected {
        if let Some(item) = batch.items.get(r.index) {
            let slot = stream_slot(item.origin.stream);
            per_stream[slot] = per_stream[slot].saturating_sub(1);
        }
    }
    for (stream, n) in StreamKind::ALL.into_iter().zip(per_stream) {
        if n > 0 {
            match output {
                SinkOutput::Rows => m.rows_written(stream.name(), n),
                SinkOutput::Objects => m.objects_written(stream.name(), n),
            }
        }
    }
    if latency {
        for item in batch.items.iter().filter(|i| i.ingest_ns > 0) {
            m.event_to_sink_latency(Duration::from_nanos(now_ns.saturating_sub(item.ingest_ns)));
        }
    }
}

fn stream_slot(s: StreamKind) -> usize {
    match s {
        StreamKind::Social => 0,
        StreamKind::Market => 1,
        StreamKind::Weather => 2,
    }
}
