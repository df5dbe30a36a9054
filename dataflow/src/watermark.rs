//! Event-time watermarks computed from source progress reports.
//!
//! Each source reader reports, once per epoch, the largest event time it has read for each partition
//! it reads and whether that partition has ended. Reports are broadcast; every worker folds them into
//! a [`Watermarks`] tracker at epoch completion, so all workers see the same watermark for an epoch
//! whatever the number of workers. The watermark of a stream is the minimum over its partitions of
//! `max event time − allowed lateness`; an ended partition counts as [`EventTime::MAX`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::StreamKind;
use crate::time::EventTime;

/// One reader's progress on one partition, as of the epoch it is sent at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkReport {
    /// Stream.
    pub stream: StreamKind,
    /// Partition of the stream (0 for a file).
    pub partition: u32,
    /// The reporting reader (worker index); a file is read by every worker cooperatively.
    pub reader: u32,
    /// Largest event time read so far by this reader, `None` before the first timed record.
    pub max_event_time: Option<EventTime>,
    /// The reader has read its last record of this partition.
    pub done: bool,
    /// The partition has been idle longer than the configured idleness; it does not hold the
    /// watermark back until it produces data again.
    pub idle: bool,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct ReaderState {
    max: Option<EventTime>,
    done: bool,
    idle: bool,
}

/// Folds [`WatermarkReport`]s into per-stream watermarks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Watermarks {
    lateness_ms: BTreeMap<StreamKind, i64>,
    partitions: BTreeMap<(StreamKind, u32), BTreeMap<u32, ReaderState>>,
}

impl Watermarks {
    /// A tracker with an allowed lateness per stream, in ms (streams not listed: 0).
    pub fn new(lateness_ms: impl IntoIterator<Item = (StreamKind, i64)>) -> Watermarks {
        Watermarks { lateness_ms: lateness_ms.into_iter().collect(), partitions: BTreeMap::new() }
    }

    /// Applies one report. Reports never move a reader's maximum backwards.
    pub fn apply(&mut self, r: &WatermarkReport) {
        let state = self.partitions.entry((r.stream, r.partition)).or_default().entry(r.reader).or_default();
        state.max = state.max.max(r.max_event_time);
        state.done |= r.done;
        state.idle = r.idle && !r.done;
    }

    /// The largest event time read on `stream` so far (over all partitions), if any.
    pub fn max_event_time(&self, stream: StreamKind) -> Option<EventTime> {
        self.partitions
            .range((stream, 0)..=(stream, u32::MAX))
            .flat_map(|(_, readers)| readers.values())
            .filter_map(|s| s.max)
            .max()
    }

    /// True when every known partition of `stream` has ended (and at least one is known).
    pub fn ended(&self, stream: StreamKind) -> bool {
        let mut parts = self.partitions.range((stream, 0)..=(stream, u32::MAX)).peekable();
        parts.peek().is_some() && parts.all(|(_, readers)| readers.values().all(|s| s.done))
    }

    /// The watermark of `stream`: no record with an earlier event time is expected, except late ones
    /// (later than the allowed lateness). [`EventTime::MIN`] until a partition is known.
    pub fn watermark(&self, stream: StreamKind) -> EventTime {
        let lateness = self.lateness_ms.get(&stream).copied().unwrap_or(0);
        let mut result: Option<EventTime> = None;
        let mut all_idle = true;
        for (_, readers) in self.partitions.range((stream, 0)..=(stream, u32::MAX)) {
            if readers.values().all(|s| s.done) {
                result = Some(result.map_or(EventTime::MAX, |r| r.min(EventTime::MAX)));
                continue;
            }
            if readers.values().all(|s| s.done || s.idle) {
                continue;
            }
            all_idle = false;
            let max = readers.values().filter_map(|s| s.max).max();
            let wm = match max {
                Some(m) => m.plus_ms(-lateness),
                None => EventTime::MIN,
            };
            result = Some(result.map_or(wm, |r| r.min(wm)));
        }
        match result {
            Some(r) => r,
            // Every partition idle: hold at the largest event time seen, minus lateness.
            None if all_idle => self.max_event_time(stream).map_or(EventTime::MIN, |m| m.plus_ms(-lateness)),
            None => EventTime::MIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stream: StreamKind, partition: u32, reader: u32, max: Option<i64>, done: bool) -> WatermarkReport {
        WatermarkReport { stream, partition, reader, max_event_time: max.map(EventTime), done, idle: false }
    }

    #[test]
    fn minimum_over_partitions_maximum_over_readers() {
        let mut w = Watermarks::new([(StreamKind::Social, 10)]);
        assert_eq!(w.watermark(StreamKind::Social), EventTime::MIN);
        w.apply(&report(StreamKind::Social, 0, 0, Some(100), false));
        w.apply(&report(StreamKind::Social, 0, 1, Some(300), false));
        w.apply(&report(StreamKind::Social, 1, 2, Some(200), false));
        assert_eq!(w.watermark(StreamKind::Social), EventTime(190));
        w.apply(&report(StreamKind::Social, 1, 2, Some(150), false));
        assert_eq!(w.watermark(StreamKind::Social), EventTime(190), "never moves backwards");
        w.apply(&report(StreamKind::Social, 1, 2, Some(200), true));
        assert_eq!(w.watermark(StreamKind::Social), EventTime(290));
        assert!(!w.ended(StreamKind::Social));
        w.apply(&report(StreamKind::Social, 0, 0, None, true));
        w.apply(&report(StreamKind::Social, 0, 1, None, true));
        assert_eq!(w.watermark(StreamKind::Social), EventTime::MAX);
        assert!(w.ended(StreamKind::Social));
        assert_eq!(w.max_event_time(StreamKind::Social), Some(EventTime(300)));
    }

    #[test]
    fn a_partition_without_data_holds_the_watermark() {
        let mut w = Watermarks::new([]);
        w.apply(&report(StreamKind::Weather, 0, 0, Some(100), false));
        w.apply(&report(StreamKind::Weather, 1, 1, None, false));
        assert_eq!(w.watermark(StreamKind::Weather), EventTime::MIN);
    }

    #[test]
    fn idle_partitions_do_not_hold_it_back() {
        let mut w = Watermarks::new([]);
        w.apply(&report(StreamKind::Weather, 0, 0, Some(100), false));
        w.apply(&WatermarkReport { idle: true, ..report(StreamKind::Weather, 1, 1, None, false) });
        assert_eq!(w.watermark(StreamKind::Weather), EventTime(100));
        w.apply(&WatermarkReport { idle: true, ..report(StreamKind::Weather, 0, 0, Some(100), false) });
        assert_eq!(w.watermark(StreamKind::Weather), EventTime(100));
    }
}
