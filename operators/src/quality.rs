//! Hourly data-quality windows per stream (PIPELINE.md "Data-quality aggregates").
//!
//! Stage 1 (every worker) counts [`Observation`]s into windows keyed by (stream, event-time hour) and,
//! one complete epoch at a time, closes the windows whose end the watermark has passed: for posts and
//! orders the smaller of the stream's and the weather's watermark (a record is only emitted once the
//! weather watermark has passed it, so a window closes after all its records have been joined). Stage 2
//! merges the partial windows of all workers (exchanged by window) into one [`QualityWindow`].
//! An observation for a window that has already closed is late: it is counted in
//! [`QualityStats::late`], not in the window.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use hdrhistogram::Histogram;
use millionx_dataflow::catalog::Category;
use millionx_dataflow::checkpoint::{SharedCheckpoints, Slot};
use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::record::PiiReport;
use millionx_dataflow::time::HOUR_MS;
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{Epoch, EventTime, Reason, StreamKind};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::Stream;

use crate::progress::{complete_union, input_frontier, EpochStash};

/// One thing that happened to one input line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Observation {
    /// The line passed validation.
    Valid {
        /// Stream.
        stream: StreamKind,
        /// Event time.
        event_time: EventTime,
    },
    /// The line was rejected.
    Rejected {
        /// Stream.
        stream: StreamKind,
        /// Event time, when the line had a parseable one.
        event_time: Option<EventTime>,
        /// Why.
        reason: Reason,
    },
    /// A valid line repeated an id seen before.
    Duplicate {
        /// Stream.
        stream: StreamKind,
        /// Event time.
        event_time: EventTime,
    },
    /// A record left the enrichment stages.
    Emitted {
        /// Stream.
        stream: StreamKind,
        /// Event time.
        event_time: EventTime,
        /// Category.
        category: Category,
        /// What anonymisation removed; `pii.detected` drives the window's PII detection rate.
        pii: PiiReport,
        /// Joined to a weather reading.
        enriched: bool,
        /// Carries an embedding.
        embedded: bool,
        /// Processing time − event time, ms (0 when the event time is in the future).
        lag_ms: u64,
    },
}

impl Observation {
    fn stream(&self) -> StreamKind {
        match self {
            Observation::Valid { stream, .. }
            | Observation::Rejected { stream, .. }
            | Observation::Duplicate { stream, .. }
            | Observation::Emitted { stream, .. } => *stream,
        }
    }

    fn event_time(&self) -> Option<EventTime> {
        match self {
            Observation::Valid { event_time, .. }
            | Observation::Duplicate { event_time, .. }
            | Observation::Emitted { event_time, .. } => Some(*event_time),
            Observation::Rejected { event_time, .. } => *event_time,
        }
    }
}

/// Counters a worker's quality operator keeps outside the windows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QualityStats {
    /// Observations that arrived after their window had closed, by stream.
    pub late: BTreeMap<StreamKind, u64>,
    /// What those late observations count (received, valid, rejected, duplicates, emitted, …; no lag), by
    /// stream: a run's totals are its closed windows plus these.
    pub late_counts: BTreeMap<StreamKind, QualityWindow>,
}

struct OpenWindow {
    counts: QualityWindow,
    lag: Option<Histogram<u64>>,
}

impl OpenWindow {
    fn new(stream: StreamKind, start: EventTime) -> OpenWindow {
        OpenWindow {
            counts: QualityWindow { stream: Some(stream), start: Some(start), ..QualityWindow::default() },
            // 2 significant digits over 1 ms .. ~35 years: a few KiB per window.
            lag: Histogram::new_with_bounds(1, 1 << 40, 2).ok(),
        }
    }

    fn add(&mut self, o: &Observation) {
        count(&mut self.counts, o);
        if let (Observation::Emitted { lag_ms, .. }, Some(h)) = (o, self.lag.as_mut()) {
            h.saturating_record((*lag_ms).max(1));
        }
    }

    /// The counts and the lag distribution as `(value, count)` pairs (a checkpoint's form).
    fn save(&self) -> SavedWindow {
        let lag = self.lag.iter().flat_map(|h| h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())));
        (self.counts.clone(), lag.collect())
    }

    fn restore((counts, lag): SavedWindow) -> OpenWindow {
        let mut h: Option<Histogram<u64>> = Histogram::new_with_bounds(1, 1 << 40, 2).ok();
        if let Some(h) = h.as_mut() {
            for (v, n) in lag {
                let _ = h.record_n(v, n);
            }
        }
        OpenWindow { counts, lag: h }
    }

    fn close(mut self) -> QualityWindow {
        if let Some(h) = &self.lag {
            self.counts.lag_ms = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        }
        self.counts
    }
}

/// Adds one observation to a window's counters (everything but the lag distribution).
fn count(c: &mut QualityWindow, o: &Observation) {
    {
        match o {
            Observation::Valid { .. } => {
                c.received += 1;
                c.valid += 1;
            }
            Observation::Rejected { reason, .. } => {
                c.received += 1;
                *c.rejected.entry(reason.0.clone()).or_default() += 1;
            }
            Observation::Duplicate { .. } => c.duplicates += 1,
            Observation::Emitted { category, pii, enriched, embedded, .. } => {
                c.emitted += 1;
                c.pii_detected += u64::from(pii.detected);
                c.enriched += u64::from(*enriched);
                c.embedded += u64::from(*embedded);
                if o.stream() != StreamKind::Weather {
                    *c.categories.entry(category.name().to_owned()).or_default() += 1;
                }
            }
        }
    }
}

/// An open window as a checkpoint keeps it: the counts and the lag distribution as `(value, count)` pairs.
type SavedWindow = (QualityWindow, Vec<(u64, u64)>);

/// What a checkpoint of stage 1 keeps.
#[derive(Serialize, Deserialize)]
struct QualityState {
    tracker: Watermarks,
    open: Vec<((StreamKind, EventTime), SavedWindow)>,
    closed_before: BTreeMap<StreamKind, EventTime>,
    untimed: Vec<Observation>,
    late: BTreeMap<StreamKind, u64>,
    late_counts: BTreeMap<StreamKind, QualityWindow>,
}

/// The quality-window operator.
pub trait QualityWindows<'scope> {
    /// Counts observations into hourly windows and emits each window once, merged over all workers,
    /// when the watermark passes its end. `stats` receives the late counts. The watermarks, the open
    /// windows and the late counts are checkpointed into `checkpoints` (slot `quality`) and restored from it.
    fn quality_windows(
        self,
        watermarks: Stream<'scope, Epoch, Vec<WatermarkReport>>,
        tracker: Watermarks,
        stats: Rc<RefCell<QualityStats>>,
        checkpoints: &SharedCheckpoints,
    ) -> Stream<'scope, Epoch, Vec<QualityWindow>>;
}

/// The event time up to which windows of `stream` may close.
fn close_threshold(tracker: &Watermarks, stream: StreamKind) -> EventTime {
    let own = tracker.watermark(stream);
    match stream {
        StreamKind::Weather => own,
        _ => own.min(tracker.watermark(StreamKind::Weather)),
    }
}

impl<'scope> QualityWindows<'scope> for Stream<'scope, Epoch, Vec<Observation>> {
    fn quality_windows(
        self,
        watermarks: Stream<'scope, Epoch, Vec<WatermarkReport>>,
        tracker: Watermarks,
        stats: Rc<RefCell<QualityStats>>,
        checkpoints: &SharedCheckpoints,
    ) -> Stream<'scope, Epoch, Vec<QualityWindow>> {
        let mut slot = Slot::new(checkpoints, "quality");
        let restored = slot.restore::<QualityState>();
        let mut builder = OperatorBuilder::new("QualityPartial".to_owned(), self.scope());
        let mut observations = builder.new_input(self, Pipeline);
        let mut reports = builder.new_input(watermarks, Pipeline);
        let (out, partials) = builder.new_output::<Vec<QualityWindow>>();
        let mut out = OutputBuilder::from(out);

        let resume = slot.resume();
        builder.build(move |mut caps| {
            let mut held = caps.pop();
            held.iter_mut().for_each(|c| c.downgrade(&resume));
            let mut obs_stash = EpochStash::<Observation>::default();
            let mut report_stash = EpochStash::<WatermarkReport>::default();
            let (mut tracker, mut open, mut closed_before, mut untimed) = match restored {
                None => (tracker, BTreeMap::new(), BTreeMap::new(), Vec::new()),
                Some(q) => {
                    let mut st = stats.borrow_mut();
                    st.late = q.late;
                    st.late_counts = q.late_counts;
                    let open = q.open.into_iter().map(|(k, w)| (k, OpenWindow::restore(w))).collect();
                    (q.tracker, open, q.closed_before, q.untimed)
                }
            };
            let saved_stats = Rc::clone(&stats);
            let save = move |tracker: &Watermarks,
                             open: &BTreeMap<(StreamKind, EventTime), OpenWindow>,
                             closed_before: &BTreeMap<StreamKind, EventTime>,
                             untimed: &Vec<Observation>| {
                let st = saved_stats.borrow();
                QualityState {
                    tracker: tracker.clone(),
                    open: open.iter().map(|(k, w)| (*k, w.save())).collect(),
                    closed_before: closed_before.clone(),
                    untimed: untimed.clone(),
                    late: st.late.clone(),
                    late_counts: st.late_counts.clone(),
                }
            };
            move |frontiers| {
                observations.for_each(|cap, data| obs_stash.stash(crate::progress::epoch_of(&cap), data));
                reports.for_each(|cap, data| report_stash.stash(crate::progress::epoch_of(&cap), data));
                let frontier = input_frontier(frontiers);
                let Some(cap) = held.as_mut() else { return };
                let epochs =
                    complete_union(obs_stash.complete_epochs(frontier).chain(report_stash.complete_epochs(frontier)));
                let mut handle = out.activate();
                for epoch in epochs {
                    if let Some(b) = slot.due(epoch) {
                        slot.offer(b, &save(&tracker, &open, &closed_before, &untimed));
                    }
                    for r in report_stash.take(epoch) {
                        tracker.apply(&r);
                    }
                    let mut add = |o: Observation, t: EventTime| {
                        let stream = o.stream();
                        let start = t.hour_floor();
                        if closed_before.get(&stream).is_some_and(|c| start.plus_ms(HOUR_MS) <= *c) {
                            let mut stats = stats.borrow_mut();
                            *stats.late.entry(stream).or_default() += 1;
                            let late = stats
                                .late_counts
                                .entry(stream)
                                .or_insert_with(|| QualityWindow { stream: Some(stream), ..QualityWindow::default() });
                            count(late, &o);
                            return;
                        }
                        open.entry((stream, start)).or_insert_with(|| OpenWindow::new(stream, start)).add(&o);
                    };
                    // Lines without an event time count in the hour of the largest event time read so far.
                    untimed.extend(obs_stash.take(epoch).into_iter().filter_map(|o| match o.event_time() {
                        Some(t) => {
                            add(o, t);
                            None
                        }
                        None => Some(o),
                    }));
                    untimed.retain(|o| match tracker.max_event_time(o.stream()) {
                        Some(t) => {
                            add(o.clone(), t);
                            false
                        }
                        None => !tracker.ended(o.stream()),
                    });
                    let mut closing = Vec::new();
                    for stream in StreamKind::ALL {
                        let threshold = close_threshold(&tracker, stream);
                        let keys: Vec<_> = open
                            .range((stream, EventTime::MIN)..=(stream, EventTime::MAX))
                            .map(|(k, _)| *k)
                            .filter(|(_, start)| start.plus_ms(HOUR_MS) <= threshold)
                            .collect();
                        for k in keys {
                            if let Some(w) = open.remove(&k) {
                                closing.push(w.close());
                            }
                        }
                        closed_before.insert(stream, threshold);
                    }
                    if !closing.is_empty() {
                        let c = cap.delayed(&epoch);
                        handle.session(&c).give_iterator(closing.into_iter());
                    }
                }
                match frontier {
                    Some(f) => {
                        if let Some(b) = slot.due(f) {
                            slot.offer(b, &save(&tracker, &open, &closed_before, &untimed));
                        }
                        cap.downgrade(&f.max(resume))
                    }
                    None => {
                        let at = *cap.time();
                        let rest: Vec<QualityWindow> =
                            std::mem::take(&mut open).into_values().map(OpenWindow::close).collect();
                        if !rest.is_empty() {
                            handle.session(&cap.delayed(&at)).give_iterator(rest.into_iter());
                        }
                        held = None;
                    }
                }
            }
        });

        partials.unary_frontier(
            Exchange::new(|w: &QualityWindow| {
                let stream = w.stream.map_or(0, |s| s as u64);
                (w.start.map_or(0, |t| t.0) as u64).wrapping_mul(31).wrapping_add(stream)
            }),
            "QualityMerge",
            |cap, _info| {
                let mut held = Some(cap);
                let mut stash = EpochStash::<QualityWindow>::default();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| stash.stash(crate::progress::epoch_of(&cap), data));
                    let f = frontier.frontier().iter().min().copied();
                    let Some(cap) = held.as_mut() else { return };
                    let epochs: Vec<Epoch> = stash.complete_epochs(f).collect();
                    for epoch in epochs {
                        let mut merged: BTreeMap<(Option<StreamKind>, Option<EventTime>), QualityWindow> =
                            BTreeMap::new();
                        for w in stash.take(epoch) {
                            merged.entry((w.stream, w.start)).or_default().merge(&w);
                        }
                        output.session(&cap.delayed(&epoch)).give_iterator(merged.into_values());
                    }
                    match f {
                        Some(f) => cap.downgrade(&f),
                        None => held = None,
                    }
                }
            },
        )
    }
}
