//! De-duplication by record id: the first copy wins, later copies come out on a second stream.
//!
//! Records are exchanged by a hash of their key, processed one complete epoch at a time and, within an
//! epoch, in source order (partition, offset), so "first" means first in the input whatever the number
//! of workers. State is a 128-bit hash of each key (xxh3-128; a collision among 10⁹ keys has
//! probability ≈ 10⁻²¹) and is forgotten once the record's event time falls more than `horizon` behind
//! the stream's watermark, so memory stays bounded on an endless stream.
//!
//! ```
//! use timely::dataflow::operators::{Capture, ToStream};
//! use timely::dataflow::operators::capture::Event;
//! use timely::dataflow::operators::generic::operator::empty;
//! use millionx_dataflow::record::{Keyed, Meta};
//! use millionx_dataflow::{EventTime, Origin, StreamKind};
//! use millionx_operators::dedup::Dedup;
//!
//! #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct R(Meta, String);
//! impl Keyed for R {
//!     fn meta(&self) -> &Meta { &self.0 }
//!     fn dedup_key(&self) -> std::borrow::Cow<'_, str> { self.1.as_str().into() }
//! }
//! let r = |offset, key: &str| R(Meta {
//!     origin: Origin { stream: StreamKind::Social, partition: 0, offset },
//!     event_time: EventTime(0), ingest_ns: 0 }, key.to_owned());
//! let (unique, dups) = timely::example(move |scope| {
//!     let input = vec![r(2, "a"), r(0, "a"), r(1, "b")].to_stream(scope).container::<Vec<_>>();
//!     let checkpoints = millionx_dataflow::checkpoint::Checkpoints::disabled();
//!     let (unique, dups) = input.dedup(empty(scope), StreamKind::Social, Default::default(), 3_600_000, &checkpoints);
//!     (unique.capture(), dups.capture())
//! });
//! let offsets = |rx: std::sync::mpsc::Receiver<Event<u64, Vec<R>>>| {
//!     let mut v: Vec<u64> = rx.into_iter()
//!         .flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() })
//!         .map(|r| r.0.origin.offset).collect();
//!     v.sort();
//!     v
//! };
//! assert_eq!(offsets(unique), vec![0, 1]);
//! assert_eq!(offsets(dups), vec![2], "the later copy is the duplicate, whatever the arrival order");
//! ```

use std::collections::{BTreeMap, HashMap};

use millionx_dataflow::checkpoint::{SharedCheckpoints, Slot};
use millionx_dataflow::record::Keyed;
use millionx_dataflow::time::HOUR_MS;
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{Epoch, StreamKind};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::Stream;
use xxhash_rust::xxh3::xxh3_128;

use crate::progress::{complete_union, input_frontier, EpochStash};

/// The de-duplication operator.
pub trait Dedup<'scope, T> {
    /// Splits records into first copies and later copies of the same key.
    ///
    /// `watermarks` is the broadcast stream of source progress reports; `tracker` is a fresh tracker
    /// with the configured lateness; `horizon_ms` is how far (event time) behind the watermark of
    /// `stream` a key is remembered. The watermarks and the remembered keys are checkpointed into
    /// `checkpoints` (slot `dedup/<stream>`) and restored from it.
    #[allow(clippy::type_complexity)]
    fn dedup(
        self,
        watermarks: Stream<'scope, Epoch, Vec<WatermarkReport>>,
        stream: StreamKind,
        tracker: Watermarks,
        horizon_ms: i64,
        checkpoints: &SharedCheckpoints,
    ) -> (Stream<'scope, Epoch, Vec<T>>, Stream<'scope, Epoch, Vec<T>>);
}

/// What a checkpoint keeps: the watermarks and the remembered key hashes by event hour.
type DedupState = (Watermarks, BTreeMap<i64, Vec<u128>>);

/// The exchange route of a key (low 64 bits of its xxh3-128 hash).
pub fn route(key: &str) -> u64 {
    xxh3_128(key.as_bytes()) as u64
}

impl<'scope, T> Dedup<'scope, T> for Stream<'scope, Epoch, Vec<T>>
where
    T: Keyed + timely::ExchangeData + Clone,
{
    fn dedup(
        self,
        watermarks: Stream<'scope, Epoch, Vec<WatermarkReport>>,
        stream: StreamKind,
        tracker: Watermarks,
        horizon_ms: i64,
        checkpoints: &SharedCheckpoints,
    ) -> (Stream<'scope, Epoch, Vec<T>>, Stream<'scope, Epoch, Vec<T>>) {
        let mut slot = Slot::new(checkpoints, format!("dedup/{}", stream.name()));
        let (mut tracker, mut by_hour) = slot.restore::<DedupState>().unwrap_or((tracker, BTreeMap::new()));
        let mut builder = OperatorBuilder::new(format!("Dedup({})", stream.name()), self.scope());
        let mut records = builder.new_input(self, Exchange::new(|r: &T| route(&r.dedup_key())));
        let mut reports = builder.new_input(watermarks, Pipeline);
        let (unique_out, unique) = builder.new_output::<Vec<T>>();
        let (dup_out, dups) = builder.new_output::<Vec<T>>();
        let mut unique_out = OutputBuilder::from(unique_out);
        let mut dup_out = OutputBuilder::from(dup_out);

        builder.build(move |caps| {
            let mut held = Some(caps);
            let mut record_stash = EpochStash::<T>::default();
            let mut report_stash = EpochStash::<WatermarkReport>::default();
            // key hash → event hour; hour → keys first seen in that hour (expiry index, the checkpointed form)
            let mut seen: HashMap<u128, i64> =
                by_hour.iter().flat_map(|(h, keys)| keys.iter().map(move |k| (*k, *h))).collect();
            move |frontiers| {
                records.for_each(|cap, data| record_stash.stash(crate::progress::epoch_of(&cap), data));
                reports.for_each(|cap, data| report_stash.stash(crate::progress::epoch_of(&cap), data));
                let frontier = input_frontier(frontiers);
                let Some(caps) = held.as_mut() else { return };
                let epochs = complete_union(
                    record_stash.complete_epochs(frontier).chain(report_stash.complete_epochs(frontier)),
                );
                let mut unique_handle = unique_out.activate();
                let mut dup_handle = dup_out.activate();
                for epoch in epochs {
                    if let Some(b) = slot.due(epoch) {
                        slot.offer(b, &(&tracker, &by_hour));
                    }
                    for r in report_stash.take(epoch) {
                        tracker.apply(&r);
                    }
                    let mut batch = record_stash.take(epoch);
                    if !batch.is_empty() {
                        batch.sort_by_key(|r| r.meta().origin);
                        let ucap = caps[0].delayed(&epoch);
                        let dcap = caps[1].delayed(&epoch);
                        let mut u = unique_handle.session(&ucap);
                        let mut d = dup_handle.session(&dcap);
                        for r in batch {
                            let key = xxh3_128(r.dedup_key().as_bytes());
                            let hour = r.meta().event_time.hour_floor().0;
                            if let std::collections::hash_map::Entry::Vacant(v) = seen.entry(key) {
                                v.insert(hour);
                                by_hour.entry(hour).or_default().push(key);
                                u.give(r);
                            } else {
                                d.give(r);
                            }
                        }
                    }
                    // Forget keys whose hour ended more than the horizon before the watermark.
                    let cutoff = tracker.watermark(stream).0.saturating_sub(horizon_ms).saturating_sub(HOUR_MS);
                    while let Some(entry) = by_hour.first_entry() {
                        if *entry.key() >= cutoff {
                            break;
                        }
                        for key in entry.remove() {
                            seen.remove(&key);
                        }
                    }
                }
                match frontier {
                    Some(f) => {
                        if let Some(b) = slot.due(f) {
                            slot.offer(b, &(&tracker, &by_hour));
                        }
                        caps.iter_mut().for_each(|c| c.downgrade(&f))
                    }
                    None => held = None,
                }
            }
        });
        (unique, dups)
    }
}
