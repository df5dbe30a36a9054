//! A closed data-quality window: per stream, per event-time hour (PIPELINE.md "Data-quality aggregates").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::StreamKind;
use crate::time::EventTime;

/// Counts of one stream over one event-time hour, final once the watermark has passed its end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityWindow {
    /// Stream.
    pub stream: Option<StreamKind>,
    /// Window start (inclusive), UTC hour.
    pub start: Option<EventTime>,
    /// Lines received (valid + rejected; rejected lines without an event time count in the window of the
    /// largest event time read when they arrived).
    pub received: u64,
    /// Lines that passed validation (duplicates included).
    pub valid: u64,
    /// Rejected lines by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Valid lines whose id had been seen before (counted, not emitted).
    pub duplicates: u64,
    /// Emitted records whose free text held a phone number or e-mail address.
    pub pii_detected: u64,
    /// Emitted records by category name.
    pub categories: BTreeMap<String, u64>,
    /// Emitted records that were joined to a weather reading.
    pub enriched: u64,
    /// Emitted records that carry an embedding.
    pub embedded: u64,
    /// Emitted records (valid − duplicates, when nothing is late).
    pub emitted: u64,
    /// Ingestion lag (processing time − event time) of emitted records, ms: recorded values and counts.
    pub lag_ms: Vec<(u64, u64)>,
}

impl QualityWindow {
    /// Total rejected lines.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Weather coverage = enriched / emitted (0 when nothing was emitted).
    pub fn weather_coverage(&self) -> f64 {
        ratio(self.enriched, self.emitted)
    }

    /// Embedding coverage = embedded / emitted (0 when nothing was emitted).
    pub fn embedding_coverage(&self) -> f64 {
        ratio(self.embedded, self.emitted)
    }

    /// `quality_score = 0.4 × valid/received + 0.3 × embedding coverage + 0.3 × (1 − rejected/received)`
    /// (PIPELINE.md). 0 when nothing was received.
    pub fn quality_score(&self) -> f64 {
        if self.received == 0 {
            return 0.0;
        }
        let received = self.received as f64;
        0.4 * (self.valid as f64 / received)
            + 0.3 * self.embedding_coverage()
            + 0.3 * (1.0 - self.rejected_total() as f64 / received)
    }

    /// Adds another partial count of the same window.
    pub fn merge(&mut self, other: &QualityWindow) {
        self.stream = self.stream.or(other.stream);
        self.start = self.start.or(other.start);
        self.received += other.received;
        self.valid += other.valid;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        self.duplicates += other.duplicates;
        self.pii_detected += other.pii_detected;
        for (k, v) in &other.categories {
            *self.categories.entry(k.clone()).or_default() += v;
        }
        self.enriched += other.enriched;
        self.embedded += other.embedded;
        self.emitted += other.emitted;
        self.lag_ms.extend_from_slice(&other.lag_ms);
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_follows_the_contract_formula() {
        let mut w = QualityWindow { received: 100, valid: 90, emitted: 80, embedded: 40, ..Default::default() };
        w.rejected.insert("parse_error".into(), 10);
        // 0.4 × 0.9 + 0.3 × 0.5 + 0.3 × 0.9 = 0.36 + 0.15 + 0.27
        assert!((w.quality_score() - 0.78).abs() < 1e-12);
        assert_eq!(w.embedding_coverage(), 0.5);
        assert_eq!(QualityWindow::default().quality_score(), 0.0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = QualityWindow { received: 1, valid: 1, emitted: 1, ..Default::default() };
        a.categories.insert("fashion".into(), 1);
        let mut b = QualityWindow { received: 2, duplicates: 1, ..Default::default() };
        b.categories.insert("fashion".into(), 2);
        b.rejected.insert("parse_error".into(), 1);
        a.merge(&b);
        assert_eq!((a.received, a.valid, a.duplicates, a.rejected_total()), (3, 1, 1, 1));
        assert_eq!(a.categories["fashion"], 3);
    }
}
