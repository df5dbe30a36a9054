//! High watermarks without a broker round trip: librdkafka learns each partition's high watermark from every
//! fetch response and reports it (`hi_offset`) in its statistics every `statistics.interval.ms`. The source reads
//! them from here instead of sending ListOffsets requests (`fetch_watermarks`), which block the timely worker
//! for a whole round trip — on tansu 0.6 queued behind the connection's long-poll fetch (≥ `fetch.wait.max.ms`)
//! and answered by listing every stored batch of the partition, so each one took longer as the topics grew.
//!
//! A paused partition is not fetched, so its high watermark stays as of its last fetch until it is resumed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

/// The consumer context that keeps the newest high watermark of every partition from the statistics.
#[derive(Debug, Default)]
pub struct HighWatermarks {
    latest: Mutex<Latest>,
}

#[derive(Debug, Default)]
struct Latest {
    /// Statistics reports received so far.
    reports: u64,
    /// High watermark (the next offset the broker will assign) by `(topic, partition)`.
    highs: BTreeMap<(String, i32), i64>,
}

impl HighWatermarks {
    /// Folds one statistics report in. Partitions librdkafka has no high watermark for yet (`hi_offset < 0`,
    /// e.g. before their first fetch) and its internal unassigned partition (`-1`) are skipped.
    pub fn record(&self, stats: &Statistics) {
        let Ok(mut latest) = self.latest.lock() else { return };
        latest.reports += 1;
        for (topic, t) in &stats.topics {
            for p in t.partitions.values().filter(|p| p.partition >= 0 && p.hi_offset >= 0) {
                let high = latest.highs.entry((topic.clone(), p.partition)).or_insert(p.hi_offset);
                *high = (*high).max(p.hi_offset);
            }
        }
    }

    /// The high watermarks, when a report arrived after the one numbered `*seen` (then `*seen` becomes the
    /// newest report's number); `None` when nothing new arrived.
    pub fn newer_than(&self, seen: &mut u64) -> Option<BTreeMap<(String, i32), i64>> {
        let latest = self.latest.lock().ok()?;
        if latest.reports == *seen {
            return None;
        }
        *seen = latest.reports;
        Some(latest.highs.clone())
    }
}

impl ClientContext for HighWatermarks {
    fn stats(&self, statistics: Statistics) {
        self.record(&statistics);
    }
}

impl ConsumerContext for HighWatermarks {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Partition, Topic};

    fn stats(parts: &[(&str, i32, i64)]) -> Statistics {
        let mut s = Statistics::default();
        for (topic, partition, hi_offset) in parts {
            let t = s
                .topics
                .entry((*topic).to_owned())
                .or_insert_with(|| Topic { topic: (*topic).to_owned(), ..Topic::default() });
            t.partitions
                .insert(*partition, Partition { partition: *partition, hi_offset: *hi_offset, ..Partition::default() });
        }
        s
    }

    #[test]
    fn reports_give_the_newest_high_watermark_of_each_partition_once() {
        let h = HighWatermarks::default();
        let mut seen = 0;
        assert_eq!(h.newer_than(&mut seen), None, "no report yet");
        h.record(&stats(&[("validated.social", 0, 4096), ("validated.social", -1, 9), ("context.weather", 1, -1001)]));
        let highs = h.newer_than(&mut seen).unwrap();
        assert_eq!(highs, BTreeMap::from([(("validated.social".to_owned(), 0), 4096)]));
        assert_eq!(seen, 1);
        assert_eq!(h.newer_than(&mut seen), None, "nothing new since report 1");
        // A later report moves a partition forward, never back (a report of a stale fetch).
        h.record(&stats(&[("validated.social", 0, 4000), ("context.weather", 1, 100)]));
        let highs = h.newer_than(&mut seen).unwrap();
        assert_eq!(highs[&("validated.social".to_owned(), 0)], 4096);
        assert_eq!(highs[&("context.weather".to_owned(), 1)], 100);
    }
}
