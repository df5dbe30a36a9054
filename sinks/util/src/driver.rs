//! The batching sink operator.
//!
//! Records are encoded into the open batch as they arrive. The operator holds, on its dead-letter output,
//! the capability of the oldest epoch of the open batch and of every batch the writer has not completed,
//! so that output's frontier is exactly the sink's acknowledged progress: an offset committer may commit
//! everything before it. Completed batches record each item's read→write latency (µs) and turn rejected
//! items into dead letters.
//!
//! # Flush policy
//! The open batch is flushed at the first of:
//! - **size**: `max_records` records or `max_bytes` bytes;
//! - **linger**: the batch's oldest epoch is complete upstream (the input frontier has passed it: no record
//!   of that epoch will still arrive) and the batch is `linger` old;
//! - **age**: the batch is `max_age` old (its epoch may still be open, e.g. a source that never advances);
//! - **end**: the input ended;
//! - **segment**: with [`BatchPolicy::segment_epochs`], a record of another checkpoint segment than the
//!   open batch's (a batch never spans a checkpoint boundary).
//!
//! Why linger: the acknowledged frontier of the run is the minimum over all sinks, and a Kafka source
//! commits only below it and pauses `max_epochs_unacknowledged` epochs ahead of it. A sink holding a
//! partial batch of a finished epoch for `max_age` (a low-volume sink: dead letters, weather, quality
//! windows) would stall every commit and, through backpressure, the whole run for that long. With linger, no
//! sink holds a finished epoch longer than `linger` plus one write. A sink receiving `max_records` within
//! `linger` still flushes by size, so busy tables keep their full (cost-saving) batches; a sink receiving
//! `r` records/s below that writes batches of about `r × linger` records.
//!
//! Correctness is unchanged by when a batch is flushed: flushing moves the open batch's capability to the
//! in-flight set, and it is dropped only when the writer acknowledged the batch. So the frontier of the
//! dead-letter output never passes the epoch of a record no sink has durably written, and an offset
//! committed below that frontier has every record before it acknowledged.

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
                    let segment = policy.segment_epochs.map(|k| cap.least().map_or(0, |e| e / k.max(1)));
                    for record in data.drain(..) {
                        scratch.clear();
                        encoder.encode(&*record, &mut scratch);
                        let fits = open.as_ref().is_none_or(|o| {
                            o.batch.closed_len() + framing.separator.len() + scratch.len() <= policy.max_bytes
                                && o.batch.segment == segment
                        });
                        if !fits {
                            flush(&mut open, &mut writer, &mut in_flight);
                        }
                        let o = open.get_or_insert_with(|| {
                            let seq = next_seq;
                            next_seq += 1;
                            let mut batch =
                                EncodedBatch::with_capacity(seq, framing, last_size.get().0, last_size.get().1);
                            batch.segment = segment;
                            Open { batch, cap: cap.delayed(cap.least().unwrap_or(&0), 0), opened: Instant::now() }
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
                // The open batch's oldest epoch is complete upstream when the input frontier has passed it.
                let settled = open.as_ref().is_some_and(|o| !frontiers[0].frontier().less_equal(o.cap.time()));
                let age = open.as_ref().map(|o| o.opened.elapsed());
                let due = age.is_some_and(|a| a >= policy.max_age || (settled && a >= policy.linger));
                if input_done || due {
                    flush(&mut open, &mut writer, &mut in_flight);
                }
                complete(writer.poll(), &ctx, &mut in_flight, &mut handle, &mut failed);
                if failed {
                    // Keep every capability: nothing after a fatal error is acknowledged.
                    return false;
                }
                if let Some(o) = &open {
                    // Woken at the next deadline; a frontier change (settling the epoch) wakes it anyway.
                    let settled = !frontiers[0].frontier().less_equal(o.cap.time());
                    let limit = if settled { policy.linger.min(policy.max_age) } else { policy.max_age };
                    activator.activate_after(limit.saturating_sub(o.opened.elapsed()));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encoder::Framing;
    use crate::writer::{Completion, WriteOutcome};
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::InputHandle;

    type In = InputHandle<Epoch, CapacityContainerBuilder<Vec<Arc<Rec>>>>;

    struct Rec(u64);
    impl SinkRecord for Rec {
        fn origin(&self) -> Origin {
            Origin { stream: StreamKind::Social, partition: 0, offset: self.0 }
        }
        fn ingest_ns(&self) -> u64 {
            0
        }
    }
    struct Enc;
    impl Encoder<Rec> for Enc {
        fn framing(&self) -> Framing {
            Framing::NDJSON
        }
        fn encode(&mut self, r: &Rec, out: &mut Vec<u8>) {
            out.extend_from_slice(format!("{}\n", r.0).as_bytes());
        }
    }
    /// Acknowledges every batch at once; records the batch sizes.
    struct Mem {
        sizes: Rc<RefCell<Vec<usize>>>,
        done: Vec<Completion>,
    }
    impl BatchWriter for Mem {
        fn submit(&mut self, batch: EncodedBatch) {
            self.sizes.borrow_mut().push(batch.len());
            self.done.push(Completion { seq: batch.seq, result: Ok(WriteOutcome::default()), batch });
        }
        fn poll(&mut self) -> Vec<Completion> {
            std::mem::take(&mut self.done)
        }
        fn in_flight(&self) -> usize {
            self.done.len()
        }
    }

    /// Runs a sink with `policy`, feeding `epoch0` records at epoch 0, then calls `then` with the input
    /// handle, the batch sizes written and the acknowledged-frontier probe, stepping the worker in between.
    fn run(
        policy: BatchPolicy,
        epoch0: u64,
        then: impl Fn(&mut dyn FnMut() -> (Vec<usize>, bool), &mut In) + Send + Sync + 'static,
    ) {
        timely::execute_directly(move |worker| {
            let sizes = Rc::new(RefCell::new(Vec::new()));
            let mut input = In::new();
            let probe = worker.dataflow::<Epoch, _, _>(|scope| {
                let ctx = SinkContext {
                    name: "test".into(),
                    stats: Rc::default(),
                    latency: None,
                    errors: Arc::default(),
                    metrics: None,
                };
                let writer = Mem { sizes: Rc::clone(&sizes), done: Vec::new() };
                input.to_stream(scope).batch_sink(ctx, policy, Enc, writer).probe().0
            });
            for i in 0..epoch0 {
                input.send(Arc::new(Rec(i)));
            }
            let mut step = || {
                worker.step();
                (sizes.borrow().clone(), probe.less_equal(&0))
            };
            then(&mut step, &mut input);
        });
    }

    fn policy(max_records: usize, linger: Duration) -> BatchPolicy {
        BatchPolicy {
            max_records,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
            linger,
            segment_epochs: None,
        }
    }

    /// Steps until `done` holds (a guard of 60 s against a hang, not a timing assertion).
    fn step_until(
        step: &mut dyn FnMut() -> (Vec<usize>, bool),
        done: impl Fn(&[usize], bool) -> bool,
    ) -> (Vec<usize>, bool) {
        let start = Instant::now();
        loop {
            let (sizes, held) = step();
            if done(&sizes, held) || start.elapsed() > Duration::from_secs(60) {
                return (sizes, held);
            }
        }
    }

    #[test]
    fn a_partial_batch_of_a_finished_epoch_is_flushed_after_linger_not_max_age() {
        run(policy(1000, Duration::from_millis(20)), 3, |step, input| {
            input.advance_to(1);
            let (sizes, epoch0_held) = step_until(step, |_, held| !held);
            assert_eq!(sizes, vec![3], "one partial batch of the 3 records, input still open");
            assert!(!epoch0_held, "epoch 0 acknowledged");
        });
    }

    #[test]
    fn an_open_epoch_keeps_its_batch_until_max_age() {
        run(policy(1000, Duration::from_millis(5)), 3, |step, _input| {
            let start = Instant::now();
            let mut last = (Vec::new(), true);
            while start.elapsed() < Duration::from_millis(100) {
                last = step();
            }
            assert_eq!(last, (vec![], true), "epoch 0 is not finished: nothing flushed before max_age");
        });
    }

    #[test]
    fn busy_sinks_still_flush_by_size() {
        run(policy(3, Duration::from_millis(20)), 7, |step, input| {
            input.advance_to(1);
            let (sizes, held) = step_until(step, |_, held| !held);
            assert_eq!(sizes, vec![3, 3, 1], "two full batches, then the remainder after linger");
            assert!(!held);
        });
    }
}
