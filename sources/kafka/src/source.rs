//! The Kafka source operator: one consumer per worker, manual assignment, offset-derived epochs,
//! per-partition backpressure on the sinks' acknowledged frontier, and offset commits behind it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use millionx_dataflow::checkpoint::{SharedCheckpoints, Slot};
use millionx_dataflow::dead_letter::not_utf8_detail;
use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::watermark::WatermarkReport;
use millionx_dataflow::{DeadLetter, Epoch, EventTime, Origin, RawLine, Reason, StreamKind};
use millionx_metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::assign::{assignment, TopicPartition};
use crate::highs::HighWatermarks;
use crate::ledger::OffsetLedger;
use millionx_kafka_client::{KafkaConfig, OffsetReset, WATERMARK_HEADER};

/// The source could not start (broker unreachable, topic missing, offsets unreadable).
#[derive(Debug, thiserror::Error)]
#[error("kafka source: {0}")]
pub struct KafkaSourceError(pub String);

/// What one worker's source produces.
pub struct KafkaStreams<'scope> {
    /// Lines of the social, market and weather streams (same shape as the file source's).
    pub lines: BTreeMap<StreamKind, Stream<'scope, Epoch, Vec<RawLine>>>,
    /// Messages that are not lines: tombstones and empty payloads (`parse_error`), `too_large`,
    /// `missing_key`, non-UTF-8 payloads (`parse_error`, detail `not UTF-8: …`).
    pub dead: Stream<'scope, Epoch, Vec<DeadLetter>>,
    /// Idleness reports (`idle = true` when a caught-up partition has been silent for `idle_ms`, `false` when
    /// it produces again); concatenate them with the validated-record reports before broadcasting.
    pub idle_reports: Stream<'scope, Epoch, Vec<WatermarkReport>>,
    /// The partitions of each stream this worker reads (for `watermark_reports`).
    pub partitions: BTreeMap<StreamKind, Vec<u32>>,
}

/// The source's consumer: its context keeps the high watermarks of librdkafka's statistics.
type SourceConsumer = BaseConsumer<HighWatermarks>;

/// Shared between the operator and the worker's run loop: the consumer, the ledger, counters.
struct Shared {
    consumer: Option<SourceConsumer>,
    parts: Vec<PartitionState>,
    ledger: OffsetLedger,
    commits: u64,
    commit_errors: u64,
    worker: usize,
    metrics: Option<Metrics>,
}

impl Shared {
    /// Commits the offsets `frontier` acknowledges (sync). Each request is observed in
    /// `millionx_kafka_commit_duration_seconds{worker}`; a failure counts
    /// `millionx_kafka_commit_errors_total{reason}` (the librdkafka error code, snake case).
    fn commit(&mut self, frontier: Option<Epoch>) -> Result<usize, String> {
        let todo = self.ledger.acknowledge(frontier);
        if todo.is_empty() {
            return Ok(0);
        }
        let Some(consumer) = self.consumer.as_ref() else { return Ok(0) };
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &todo {
            let part = &self.parts[*p];
            tpl.add_partition_offset(&part.topic, part.partition, Offset::Offset(*next))
                .map_err(|e| format!("commit {}[{}]: {e}", part.topic, part.partition))?;
        }
        let started = Instant::now();
        let result = consumer.commit(&tpl, CommitMode::Sync);
        let took = started.elapsed();
        drop(tpl);
        match result {
            Ok(()) => {
                self.commits += 1;
                if let Some(m) = &self.metrics {
                    m.kafka_commit_duration(self.worker, took);
                }
                Ok(todo.len())
            }
            Err(e) => {
                self.commit_errors += 1;
                if let Some(m) = &self.metrics {
                    m.kafka_commit_error(&e.rdkafka_error_code().map_or_else(|| "client".to_owned(), error_reason));
                }
                Err(format!("commit failed: {e}"))
            }
        }
    }

    /// Records `millionx_kafka_consumer_lag_messages{topic,partition}` = high watermark − next offset of every
    /// partition whose high watermark a statistics report refreshed at `refreshed` (or of every partition when
    /// `None`).
    fn record_lag(&self, refreshed: Option<Instant>) {
        let Some(m) = &self.metrics else { return };
        for p in self.parts.iter().filter(|p| refreshed.is_none_or(|t| p.high_checked == t)) {
            m.kafka_consumer_lag(&p.topic, p.partition as u32, (p.high - p.next).max(0) as u64);
        }
    }
}

/// A librdkafka error code as a metric label: `RequestTimedOut` → `request_timed_out`.
fn error_reason(code: rdkafka::types::RDKafkaErrorCode) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The worker's handle on its source: commit what the sinks acknowledged after the graph drained, counters.
#[derive(Clone)]
pub struct KafkaSourceHandle {
    shared: Rc<RefCell<Shared>>,
}

impl KafkaSourceHandle {
    /// After the dataflow completed without a sink error (every sink flushed and acknowledged everything):
    /// commits the offsets below `frontier` (`None`: every partition's next offset; with durable state, the
    /// newest checkpoint every worker stored), then closes the consumer.
    ///
    /// Errors: the commit request failed (the broker's message; offsets stay at the last commit, the next
    /// run re-reads from there).
    pub fn finish(&self, frontier: Option<Epoch>) -> Result<(), String> {
        let mut shared = self.shared.borrow_mut();
        let result = shared.commit(frontier).map(|_| ());
        shared.consumer = None;
        result
    }

    /// Successful commit requests so far.
    pub fn commits(&self) -> u64 {
        self.shared.borrow().commits
    }

    /// The last committed next offset per `(topic, partition)` of this worker.
    pub fn committed(&self) -> Vec<(String, i32, i64)> {
        let s = self.shared.borrow();
        s.parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| s.ledger.committed(i).map(|o| (p.topic.clone(), p.partition, o)))
            .collect()
    }
}

#[derive(Debug)]
struct PartitionState {
    stream: StreamKind,
    topic: String,
    partition: i32,
    /// Next offset to read.
    next: i64,
    /// Where this run started reading.
    start: i64,
    /// High watermark (next offset the broker will assign): at the start from the broker, then as librdkafka's
    /// statistics report it.
    high: i64,
    /// High watermark when the run started (`exit_at_end` stops there).
    end_at_start: i64,
    /// When a statistics report last carried `high`.
    high_checked: Instant,
    last_message: Instant,
    idle_reported: bool,
    paused: bool,
}

/// Stop flags shared by every worker of the process.
#[derive(Clone, Debug, Default)]
pub struct SourceControl {
    /// Set by SIGINT/SIGTERM: stop fetching and drop the capabilities so the graph drains.
    pub stop: Arc<AtomicBool>,
    /// The largest epoch any worker's source holds; a caught-up source jumps to it so it never holds the
    /// others back.
    pub high_epoch: Arc<AtomicU64>,
    /// Where the sources record consumer lag and commits (`millionx_kafka_*`); `None` records nothing.
    pub metrics: Option<Metrics>,
    /// Epochs between checkpoints (`state.checkpoint_epochs`; 0 without durable state). A caught-up source
    /// moves its capability up to the next checkpoint boundary, so an idle run stores a checkpoint of
    /// everything read and commits all of it (commits never pass the newest checkpoint).
    pub checkpoint_epochs: u64,
}

/// What a checkpoint of the source keeps: the next offset of every partition it reads, as of the boundary.
/// A run restored from boundary `B` starts its capability at `B`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SourceState {
    next: BTreeMap<(String, i32), i64>,
}

fn start_offsets(
    consumer: &SourceConsumer,
    config: &KafkaConfig,
    mine: &[TopicPartition],
    restored: &BTreeMap<(String, i32), i64>,
) -> Result<Vec<PartitionState>, KafkaSourceError> {
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let mut tpl = TopicPartitionList::new();
    for tp in mine {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    let committed = consumer
        .committed_offsets(tpl, timeout)
        .map_err(|e| KafkaSourceError(format!("reading the committed offsets of group `{}`: {e}", config.group)))?;
    let committed_by: BTreeMap<(String, i32), Offset> =
        committed.elements().iter().map(|e| ((e.topic().to_owned(), e.partition()), e.offset())).collect();
    drop(committed);
    let now = Instant::now();
    let mut parts = Vec::new();
    for tp in mine {
        let (low, high) = consumer
            .fetch_watermarks(&tp.topic, tp.partition, timeout)
            .map_err(|e| KafkaSourceError(format!("watermarks of {}[{}]: {e}", tp.topic, tp.partition)))?;
        let next = match committed_by.get(&(tp.topic.clone(), tp.partition)) {
            // A committed offset outside the retained range falls back to the reset policy.
            Some(Offset::Offset(o)) if *o >= low && *o <= high => *o,
            _ => match config.auto_offset_reset {
                OffsetReset::Earliest => low,
                OffsetReset::Latest => high,
            },
        };
        // A restored snapshot's offset wins over the group's (which is never ahead of it while running).
        let next = restored.get(&(tp.topic.clone(), tp.partition)).copied().unwrap_or(next);
        parts.push(PartitionState {
            stream: tp.stream,
            topic: tp.topic.clone(),
            partition: tp.partition,
            next,
            start: next,
            high,
            end_at_start: high,
            high_checked: now,
            last_message: now,
            idle_reported: false,
            paused: false,
        });
    }
    Ok(parts)
}

/// Builds the source on this worker. `ack` must probe every sink's dead-letter output (acknowledged
/// progress). Connects, reads the topics' partitions, assigns this worker's share (see [`assignment`]) at the
/// offsets of the snapshot restored into `checkpoints` (slot `kafka`), else the group's committed offsets
/// (else `auto_offset_reset`). Offsets are committed below `checkpoints`' commit frontier (the sinks'
/// acknowledged frontier, capped at the newest durable snapshot), and the source contributes its next
/// offsets to every checkpoint.
///
/// Errors: the broker cannot be reached within `request_timeout_ms`, a topic does not exist, or the
/// committed offsets cannot be read.
pub fn kafka_source<'scope>(
    scope: Scope<'scope, Epoch>,
    config: &KafkaConfig,
    max_message_bytes: usize,
    ack: ProbeHandle<Epoch>,
    control: SourceControl,
    checkpoints: &SharedCheckpoints,
) -> Result<(KafkaStreams<'scope>, KafkaSourceHandle), KafkaSourceError> {
    kafka_source_for(scope, config, &StreamKind::ALL, max_message_bytes, ack, control, checkpoints)
}

/// [`kafka_source`] reading only the topics of `streams` (e.g. social and market when the weather comes from
/// the live fetcher, `run --weather owm`). The other streams' outputs exist but stay empty, and their
/// partition lists are empty. Errors as [`kafka_source`].
#[allow(clippy::too_many_lines)]
pub fn kafka_source_for<'scope>(
    scope: Scope<'scope, Epoch>,
    config: &KafkaConfig,
    streams: &[StreamKind],
    max_message_bytes: usize,
    ack: ProbeHandle<Epoch>,
    control: SourceControl,
    checkpoints: &SharedCheckpoints,
) -> Result<(KafkaStreams<'scope>, KafkaSourceHandle), KafkaSourceError> {
    let index = scope.index();
    let peers = scope.peers();
    let client_id = format!("millionx-w{index}");
    let consumer: SourceConsumer = config
        .consumer_config(&client_id)
        .set("statistics.interval.ms", STATS_INTERVAL.as_millis().to_string())
        .create_with_context(HighWatermarks::default())
        .map_err(|e| KafkaSourceError(format!("creating the consumer: {e}")))?;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let mut topics = Vec::new();
    for stream in StreamKind::ALL.into_iter().filter(|s| streams.contains(s)) {
        let topic = config.topic(stream);
        let md = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| KafkaSourceError(format!("metadata of topic `{topic}` from {}: {e}", config.brokers)))?;
        let t = md.topics().iter().find(|t| t.name() == topic);
        let partitions: Vec<i32> = match t {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                t.partitions().iter().map(|p| p.id()).collect()
            }
            _ => return Err(KafkaSourceError(format!("topic `{topic}` does not exist on {}", config.brokers))),
        };
        topics.push((stream, topic.to_owned(), partitions));
    }
    let mine: Vec<TopicPartition> =
        assignment(&topics, peers).into_iter().filter(|(w, _)| *w == index).map(|(_, tp)| tp).collect();
    // A worker without partitions ends at once and takes no part in checkpoints.
    let mut checkpoint = (!mine.is_empty()).then(|| Slot::new(checkpoints, "kafka"));
    let restored = checkpoint.as_ref().and_then(Slot::restore::<SourceState>).unwrap_or_default();
    // A resumed run emits nothing before its boundary: the epochs below it are in the output already.
    let resume = checkpoints.borrow().resume();
    let checkpoints = Rc::clone(checkpoints);
    let parts = start_offsets(&consumer, config, &mine, &restored.next)?;
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
            .map_err(|e| KafkaSourceError(format!("assigning {}[{}]: {e}", p.topic, p.partition)))?;
    }
    consumer.assign(&tpl).map_err(|e| KafkaSourceError(format!("assigning partitions: {e}")))?;
    drop(tpl);

    let mut partitions: BTreeMap<StreamKind, Vec<u32>> = StreamKind::ALL.iter().map(|s| (*s, Vec::new())).collect();
    for p in &parts {
        partitions.entry(p.stream).or_default().push(p.partition as u32);
    }
    let by_topic: BTreeMap<(String, i32), usize> =
        parts.iter().enumerate().map(|(i, p)| ((p.topic.clone(), p.partition), i)).collect();
    let shared = Rc::new(RefCell::new(Shared {
        consumer: Some(consumer),
        parts,
        ledger: OffsetLedger::default(),
        commits: 0,
        commit_errors: 0,
        worker: index,
        metrics: control.metrics.clone(),
    }));
    if let Some(m) = &control.metrics {
        m.init_kafka_commits();
    }
    let handle = KafkaSourceHandle { shared: Rc::clone(&shared) };

    let mut builder = OperatorBuilder::new("KafkaSource".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let mut outs = Vec::new();
    let mut lines = BTreeMap::new();
    for stream in StreamKind::ALL {
        let (out, s) = builder.new_output::<Vec<RawLine>>();
        outs.push(OutputBuilder::from(out));
        lines.insert(stream, s);
    }
    let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
    let mut dead_out = OutputBuilder::from(dead_out);
    let (idle_out, idle_reports) = builder.new_output::<Vec<WatermarkReport>>();
    let mut idle_out = OutputBuilder::from(idle_out);

    let epoch_messages = config.epoch_messages;
    let max_poll = config.max_poll_records;
    let max_unacked = config.max_epochs_unacknowledged;
    let idle_after = Duration::from_millis(config.idle_ms);
    let exit_at_end = config.exit_at_end;
    let reader = index as u32;
    const IDLE_POLL: Duration = Duration::from_millis(5);

    control.high_epoch.fetch_max(resume, Ordering::Relaxed);
    builder.build(move |mut caps| {
        let mut cap_epoch: Epoch = resume;
        for c in caps.iter_mut() {
            c.downgrade(&cap_epoch);
        }
        let mut caps = Some(caps);
        let mut max_emitted: Option<Epoch> = None;
        let mut acked: Option<Option<Epoch>> = None;
        // The number of the last statistics report whose high watermarks were taken.
        let mut stats_seen = 0u64;
        move |_frontiers| {
            let Some(held) = caps.as_mut() else { return };
            let mut guard = shared.borrow_mut();
            let sh = &mut *guard;
            // Commit what every sink acknowledged since the last activation (not beyond the newest snapshot).
            let frontier = checkpoints.borrow().commit_frontier(ack.with_frontier(|f| f.first().copied()));
            if acked != Some(frontier) {
                acked = Some(frontier);
                if let Err(e) = sh.commit(frontier) {
                    eprintln!("warning: kafka source (worker {index}): {e}; retrying at the next epoch");
                }
            }
            let stop = control.stop.load(Ordering::SeqCst);
            let at_end = exit_at_end && sh.parts.iter().all(|p| p.next >= p.end_at_start);
            if stop || at_end || sh.parts.is_empty() {
                if let (Some(slot), true, false) = (checkpoint.as_mut(), at_end, stop) {
                    // Read to the end: these offsets stand for every later checkpoint of this worker.
                    let next = sh.parts.iter().map(|p| ((p.topic.clone(), p.partition), p.next)).collect();
                    slot.finish(cap_epoch, &SourceState { next });
                }
                sh.record_lag(None);
                caps = None;
                return;
            }
            let Some(consumer) = sh.consumer.as_ref() else {
                caps = None;
                return;
            };

            // Backpressure: pause a partition whose next epoch is too far ahead of the acknowledged frontier.
            let mut pause = TopicPartitionList::new();
            let mut resume = TopicPartitionList::new();
            for p in sh.parts.iter_mut() {
                let next_epoch = (p.next as u64 / epoch_messages).max(cap_epoch);
                let want = ack.less_than(&next_epoch.saturating_sub(max_unacked));
                if want != p.paused {
                    p.paused = want;
                    let list = if want { &mut pause } else { &mut resume };
                    list.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next)).ok();
                }
            }
            if pause.count() > 0 {
                if let Err(e) = consumer.pause(&pause) {
                    eprintln!("warning: kafka source (worker {index}): pause: {e}");
                }
            }
            if resume.count() > 0 {
                if let Err(e) = consumer.resume(&resume) {
                    eprintln!("warning: kafka source (worker {index}): resume: {e}");
                }
            }
            drop(pause);
            drop(resume);

            let ingest_ns = now_unix_ns();
            let now = Instant::now();
            let mut batches: [BTreeMap<Epoch, Vec<RawLine>>; 3] = Default::default();
            let mut dead_batch: BTreeMap<Epoch, Vec<DeadLetter>> = BTreeMap::new();
            let mut reports: BTreeMap<Epoch, Vec<WatermarkReport>> = BTreeMap::new();
            let mut read = 0;
            while read < max_poll {
                let Some(result) = consumer.poll(Duration::ZERO) else { break };
                let msg = match result {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("warning: kafka source (worker {index}): {e}");
                        break;
                    }
                };
                read += 1;
                let Some(&pi) = by_topic.get(&(msg.topic().to_owned(), msg.partition())) else { continue };
                let p = &mut sh.parts[pi];
                let offset = msg.offset();
                if offset < p.next {
                    continue; // already read (a re-delivery after pause/resume)
                }
                let epoch = (offset as u64 / epoch_messages).max(cap_epoch);
                p.next = offset + 1;
                p.last_message = now;
                if p.idle_reported {
                    p.idle_reported = false;
                    reports.entry(epoch).or_default().push(partition_report(p, reader, None, false));
                }
                max_emitted = Some(max_emitted.map_or(epoch, |m| m.max(epoch)));
                sh.ledger.record(pi, epoch, offset);
                let origin = Origin { stream: p.stream, partition: p.partition as u32, offset: offset as u64 };
                let dead_letter = |reason: &str, detail: Option<&str>, payload: String| DeadLetter {
                    reason: Reason::bare(reason),
                    detail: detail.map(str::to_owned),
                    origin,
                    payload,
                    received_ns: ingest_ns,
                    event_time_ms: None,
                };
                // A watermark marker (the weather fetcher's, after each round): a progress report, not a line.
                match watermark_marker(&msg) {
                    Some(Ok(t)) => {
                        reports.entry(epoch).or_default().push(partition_report(p, reader, Some(t), false));
                        continue;
                    }
                    Some(Err(detail)) => {
                        dead_batch.entry(epoch).or_default().push(dead_letter(
                            "parse_error",
                            Some(&detail),
                            String::new(),
                        ));
                        continue;
                    }
                    None => {}
                }
                let verdict = match msg.payload() {
                    None => Err(dead_letter("parse_error", Some("tombstone (null payload)"), String::new())),
                    Some(b) if b.len() > max_message_bytes => {
                        Err(dead_letter("too_large", None, String::from_utf8_lossy(b).into_owned()))
                    }
                    Some(b) if msg.key().is_none_or(<[u8]>::is_empty) => {
                        Err(dead_letter("missing_key", None, String::from_utf8_lossy(b).into_owned()))
                    }
                    Some(b) => match std::str::from_utf8(b) {
                        Ok(text) => Ok(text.to_owned()),
                        Err(e) => Err(dead_letter(
                            "parse_error",
                            Some(&not_utf8_detail(&e)),
                            String::from_utf8_lossy(b).into_owned(),
                        )),
                    },
                };
                match verdict {
                    Ok(payload) => {
                        let slot = StreamKind::ALL.iter().position(|s| *s == p.stream).unwrap_or(0);
                        batches[slot].entry(epoch).or_default().push(RawLine { origin, ingest_ns, payload });
                    }
                    Err(d) => dead_batch.entry(epoch).or_default().push(d),
                }
            }

            // High watermarks from librdkafka's statistics (every `STATS_INTERVAL`, served by the polls above):
            // no broker round trip on the worker thread (see `crate::highs`).
            let highs = consumer.context().newer_than(&mut stats_seen);
            for p in sh.parts.iter_mut() {
                if let Some(&high) = highs.as_ref().and_then(|h| h.get(&(p.topic.clone(), p.partition))) {
                    p.high = p.high.max(high);
                    p.high_checked = now;
                }
                let caught_up = p.next >= p.high;
                if caught_up && !p.idle_reported && now.duration_since(p.last_message) >= idle_after {
                    p.idle_reported = true;
                    reports.entry(cap_epoch).or_default().push(partition_report(p, reader, None, true));
                }
            }

            if highs.is_some() {
                sh.record_lag(Some(now));
            }

            for (slot, out) in outs.iter_mut().enumerate() {
                let mut handle = out.activate();
                for (epoch, data) in std::mem::take(&mut batches[slot]) {
                    handle.session(&held[slot].delayed(&epoch)).give_iterator(data.into_iter());
                }
            }
            {
                let mut handle = dead_out.activate();
                for (epoch, data) in dead_batch {
                    handle.session(&held[3].delayed(&epoch)).give_iterator(data.into_iter());
                }
            }
            {
                let mut handle = idle_out.activate();
                for (epoch, data) in reports {
                    handle.session(&held[4].delayed(&epoch)).give_iterator(data.into_iter());
                }
            }

            // The capability follows the slowest partition that still has data; when all are caught up, it
            // moves past everything emitted (so those epochs complete) and up to the other workers' epoch.
            let active = sh
                .parts
                .iter()
                .filter(|p| p.next < p.high)
                .map(|p| (p.next as u64 / epoch_messages).max(cap_epoch))
                .min();
            let next_cap = match active {
                Some(e) => e,
                None => {
                    let caught_up = cap_epoch
                        .max(max_emitted.map_or(cap_epoch, |m| m + 1))
                        .max(control.high_epoch.load(Ordering::Relaxed));
                    match control.checkpoint_epochs {
                        0 => caught_up,
                        k => caught_up.div_ceil(k) * k,
                    }
                }
            };
            if next_cap > cap_epoch {
                cap_epoch = next_cap;
                for c in held.iter_mut() {
                    c.downgrade(&cap_epoch);
                }
                // Every boundary passed gets its own offsets, so every worker has a snapshot of each.
                if let Some(slot) = checkpoint.as_mut() {
                    for b in slot.due_each(cap_epoch) {
                        let next = sh
                            .parts
                            .iter()
                            .enumerate()
                            .map(|(i, p)| {
                                ((p.topic.clone(), p.partition), sh.ledger.resume_at(i, b).unwrap_or(p.start))
                            })
                            .collect();
                        slot.offer(b, &SourceState { next });
                    }
                }
            }
            control.high_epoch.fetch_max(cap_epoch, Ordering::Relaxed);
            drop(guard);
            if read >= max_poll {
                activator.activate();
            } else {
                activator.activate_after(IDLE_POLL);
            }
        }
    });
    Ok((KafkaStreams { lines, dead, idle_reports, partitions }, handle))
}

/// How often librdkafka reports its statistics, the high watermarks among them (caught-up detection, lag).
const STATS_INTERVAL: Duration = Duration::from_millis(250);

/// A watermark report of partition `p` (never `done`: a Kafka partition does not end).
fn partition_report(p: &PartitionState, reader: u32, max_event_time: Option<EventTime>, idle: bool) -> WatermarkReport {
    WatermarkReport { stream: p.stream, partition: p.partition as u32, reader, max_event_time, done: false, idle }
}

/// `None` when `msg` is not a marker (it has a payload, or no [`WATERMARK_HEADER`]); else the event time or
/// why the header value is not one.
fn watermark_marker<M: Message>(msg: &M) -> Option<Result<EventTime, String>> {
    if msg.payload().is_some() {
        return None;
    }
    let header = msg.headers()?.iter().find(|h| h.key == WATERMARK_HEADER)?;
    let value = header.value.and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.trim().parse::<i64>().ok());
    Some(value.map(EventTime).ok_or_else(|| format!("{WATERMARK_HEADER} marker: the value is not Unix ms")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn error_codes_become_snake_case_labels() {
        assert_eq!(error_reason(RDKafkaErrorCode::RequestTimedOut), "request_timed_out");
        assert_eq!(error_reason(RDKafkaErrorCode::RebalanceInProgress), "rebalance_in_progress");
        assert_eq!(error_reason(RDKafkaErrorCode::UnknownTopicOrPartition), "unknown_topic_or_partition");
    }
}
