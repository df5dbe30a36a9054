//! The weather as-of join (PIPELINE.md "Weather context").
//!
//! A record is joined to the reading of its city with the latest `timestamp` ≤ its event time, at most
//! `max_age` older; otherwise its weather stays `None` (`enriched = false`). A record is released only
//! once the weather watermark has passed its event time (or the weather input has ended), and the
//! operator works one complete epoch at a time, so the result does not depend on arrival order or the
//! number of workers. Readings arrive broadcast (every worker holds the whole, small, table).
//!
//! ```
//! use timely::dataflow::operators::{Capture, ToStream};
//! use timely::dataflow::operators::capture::Event;
//! use timely::dataflow::operators::generic::operator::empty;
//! use millionx_dataflow::record::EnrichedPost;
//! use millionx_dataflow::watermark::Watermarks;
//! use millionx_operators::weather_join::WeatherJoin;
//! // With no weather at all (and no watermark reports), records are released when the inputs end.
//! let out = timely::example(|scope| {
//!     let posts: Vec<EnrichedPost> = Vec::new();
//!     posts.to_stream(scope).container::<Vec<_>>()
//!         .weather_join(empty(scope), empty(scope), Watermarks::default(), 3 * 3_600_000,
//!             &millionx_dataflow::checkpoint::Checkpoints::disabled())
//!         .capture()
//! });
//! assert!(out.into_iter().all(|e| !matches!(e, Event::Messages(..))));
//! ```

use std::collections::BTreeMap;

use millionx_dataflow::checkpoint::{SharedCheckpoints, Slot};
use millionx_dataflow::record::{Enriched, WeatherContext, WeatherReading};
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{City, Epoch, EventTime, StreamKind};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::Stream;

use crate::progress::{complete_union, input_frontier, EpochStash};

/// How long a reading is kept behind the weather watermark for late records, ms (7 days).
pub const READING_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// The as-of join operator.
pub trait WeatherJoin<'scope, T> {
    /// Joins each record to its city's latest reading at or before its event time (≤ `max_age_ms` old).
    /// `readings` must be broadcast to every worker; `watermarks` is the broadcast report stream. The
    /// watermarks, the table and the records waiting for the weather watermark are checkpointed into
    /// `checkpoints` (slot `weather_join/<stream>`) and restored from it.
    fn weather_join(
        self,
        readings: Stream<'scope, Epoch, Vec<WeatherReading>>,
        watermarks: Stream<'scope, Epoch, Vec<WatermarkReport>>,
        tracker: Watermarks,
        max_age_ms: i64,
        checkpoints: &SharedCheckpoints,
    ) -> Stream<'scope, Epoch, Vec<T>>;
}

/// The readings of every city by event time.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct WeatherTable {
    readings: BTreeMap<(City, EventTime), WeatherContext>,
}

impl WeatherTable {
    /// Adds (or replaces) a reading.
    pub fn insert(&mut self, r: &WeatherReading) {
        let ctx = WeatherContext {
            condition: r.condition.clone(),
            temperature: r.temperature,
            humidity: r.humidity,
            observed_at: r.meta.event_time,
        };
        self.readings.insert((r.city, r.meta.event_time), ctx);
    }

    /// The latest reading of `city` at or before `t`, at most `max_age_ms` older.
    pub fn as_of(&self, city: City, t: EventTime, max_age_ms: i64) -> Option<&WeatherContext> {
        self.readings.range((city, t.plus_ms(-max_age_ms))..=(city, t)).next_back().map(|(_, w)| w)
    }

    /// Forgets readings older than `before`.
    pub fn prune(&mut self, before: EventTime) {
        self.readings.retain(|(_, t), _| *t >= before);
    }
}

impl<'scope, T> WeatherJoin<'scope, T> for Stream<'scope, Epoch, Vec<T>>
where
    T: Enriched + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn weather_join(
        self,
        readings: Stream<'scope, Epoch, Vec<WeatherReading>>,
        watermarks: Stream<'scope, Epoch, Vec<WatermarkReport>>,
        tracker: Watermarks,
        max_age_ms: i64,
        checkpoints: &SharedCheckpoints,
    ) -> Stream<'scope, Epoch, Vec<T>> {
        let mut slot = Slot::new(checkpoints, format!("weather_join/{}", T::STREAM.name()));
        let (mut tracker, mut table, mut pending) = slot
            .restore::<(Watermarks, WeatherTable, BTreeMap<EventTime, Vec<T>>)>()
            .unwrap_or_else(|| (tracker, WeatherTable::default(), BTreeMap::new()));
        let mut builder = OperatorBuilder::new(format!("WeatherJoin({})", T::STREAM.name()), self.scope());
        let mut records = builder.new_input(self, Pipeline);
        let mut weather = builder.new_input(readings, Pipeline);
        let mut reports = builder.new_input(watermarks, Pipeline);
        let (out, joined) = builder.new_output::<Vec<T>>();
        let mut out = OutputBuilder::from(out);

        let resume = slot.resume();
        builder.build(move |mut caps| {
            let mut held = caps.pop();
            held.iter_mut().for_each(|c| c.downgrade(&resume));
            let mut record_stash = EpochStash::<T>::default();
            let mut weather_stash = EpochStash::<WeatherReading>::default();
            let mut report_stash = EpochStash::<WatermarkReport>::default();
            move |frontiers| {
                records.for_each(|cap, data| record_stash.stash(crate::progress::epoch_of(&cap), data));
                weather.for_each(|cap, data| weather_stash.stash(crate::progress::epoch_of(&cap), data));
                reports.for_each(|cap, data| report_stash.stash(crate::progress::epoch_of(&cap), data));
                let frontier = input_frontier(frontiers);
                let Some(cap) = held.as_mut() else { return };
                let epochs = complete_union(
                    record_stash
                        .complete_epochs(frontier)
                        .chain(weather_stash.complete_epochs(frontier))
                        .chain(report_stash.complete_epochs(frontier)),
                );
                let mut handle = out.activate();
                let mut release = |ready: Vec<T>, at: Epoch, table: &WeatherTable| {
                    if ready.is_empty() {
                        return;
                    }
                    let c = cap.delayed(&at);
                    let mut session = handle.session(&c);
                    for mut r in ready {
                        let t = r.meta().event_time;
                        r.enrichment_mut().weather = table.as_of(r.city(), t, max_age_ms).cloned();
                        session.give(r);
                    }
                };
                for epoch in epochs {
                    if let Some(b) = slot.due(epoch) {
                        slot.offer(b, &(&tracker, &table, &pending));
                    }
                    for r in report_stash.take(epoch) {
                        tracker.apply(&r);
                    }
                    for r in weather_stash.take(epoch) {
                        table.insert(&r);
                    }
                    let wm = tracker.watermark(StreamKind::Weather);
                    let rest = pending.split_off(&wm);
                    let mut ready: Vec<T> = std::mem::replace(&mut pending, rest).into_values().flatten().collect();
                    // Records the watermark has already passed skip the pending table.
                    for r in record_stash.take(epoch) {
                        if r.meta().event_time < wm {
                            ready.push(r);
                        } else {
                            pending.entry(r.meta().event_time).or_default().push(r);
                        }
                    }
                    release(ready, epoch, &table);
                    if wm != EventTime::MAX {
                        table.prune(wm.plus_ms(-READING_RETENTION_MS));
                    }
                }
                match frontier {
                    Some(f) => {
                        if let Some(b) = slot.due(f) {
                            slot.offer(b, &(&tracker, &table, &pending));
                        }
                        cap.downgrade(&f.max(resume))
                    }
                    None => {
                        // Every input has ended: the weather is complete, release what is left.
                        let at = *cap.time();
                        release(std::mem::take(&mut pending).into_values().flatten().collect(), at, &table);
                        held = None;
                    }
                }
            }
        });
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{Meta, Origin};

    fn reading(city: City, t: i64, condition: &str) -> WeatherReading {
        WeatherReading {
            meta: Meta {
                origin: Origin { stream: StreamKind::Weather, partition: 0, offset: 0 },
                event_time: EventTime(t),
                ingest_ns: 0,
            },
            city,
            country: "BD".into(),
            latitude: 0.0,
            longitude: 0.0,
            timestamp: String::new(),
            condition: condition.into(),
            description: String::new(),
            icon: String::new(),
            temperature: 20.0,
            feels_like: 20.0,
            temperature_min: 20.0,
            temperature_max: 20.0,
            humidity: 50,
            pressure: 1000.0,
            visibility: None,
            wind_speed: 0.0,
            wind_degree: 0.0,
            clouds: 0,
            sunrise: String::new(),
            sunset: String::new(),
            raw: String::new(),
        }
    }

    #[test]
    fn as_of_takes_the_latest_reading_within_the_age_limit() {
        let h = 3_600_000;
        let mut t = WeatherTable::default();
        t.insert(&reading(City::Dhaka, 0, "Clear"));
        t.insert(&reading(City::Dhaka, h, "Rain"));
        t.insert(&reading(City::Sylhet, 2 * h, "Fog"));
        assert_eq!(t.as_of(City::Dhaka, EventTime(h - 1), 3 * h).map(|w| w.condition.as_str()), Some("Clear"));
        assert_eq!(t.as_of(City::Dhaka, EventTime(h), 3 * h).map(|w| w.condition.as_str()), Some("Rain"));
        assert_eq!(t.as_of(City::Dhaka, EventTime(4 * h), 3 * h).map(|w| w.condition.as_str()), Some("Rain"));
        assert_eq!(t.as_of(City::Dhaka, EventTime(4 * h + 1), 3 * h), None, "older than 3 h");
        assert_eq!(t.as_of(City::Dhaka, EventTime(-1), 3 * h), None, "nothing at or before");
        assert_eq!(t.as_of(City::Sylhet, EventTime(2 * h), 3 * h).map(|w| w.condition.as_str()), Some("Fog"));
        t.prune(EventTime(h));
        assert_eq!(t.as_of(City::Dhaka, EventTime(h - 1), 3 * h), None);
    }
}
