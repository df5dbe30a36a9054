//! Closed data-quality windows as NDJSON objects.

use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::time::{EventTime, HOUR_MS};
use millionx_sink_util::{Encoder, Framing};

use crate::json::ObjectWriter;

/// Encodes [`QualityWindow`]s: stream, window bounds, counts, coverages, lag percentiles, score.
#[derive(Debug, Default)]
pub struct QualityEncoder;

/// Percentile `q` (0–100) of `(value, count)` pairs, nearest-rank; 0 when empty.
pub fn percentile(samples: &[(u64, u64)], q: f64) -> u64 {
    let total: u64 = samples.iter().map(|s| s.1).sum();
    if total == 0 {
        return 0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (v, c) in sorted {
        seen += c;
        if seen >= rank {
            return v;
        }
    }
    0
}

impl Encoder<QualityWindow> for QualityEncoder {
    fn framing(&self) -> Framing {
        Framing::NDJSON
    }

    fn encode(&mut self, q: &QualityWindow, out: &mut Vec<u8>) {
        let start = q.start.unwrap_or(EventTime(0));
        let mut w = ObjectWriter::open(out);
        w.field("stream", q.stream.map(|s| s.name()).unwrap_or("unknown"))
            .field("window_start", &start.to_rfc3339())
            .field("window_end", &start.plus_ms(HOUR_MS).to_rfc3339())
            .field("received", &q.received)
            .field("valid", &q.valid)
            .field("rejected", &q.rejected_total())
            .field("rejected_by_reason", &q.rejected)
            .field("duplicates", &q.duplicates)
            .field("emitted", &q.emitted)
            .field("pii_detected", &q.pii_detected)
            .field("categories", &q.categories)
            .field("enriched", &q.enriched)
            .field("embedded", &q.embedded)
            .field("weather_coverage", &q.weather_coverage())
            .field("embedding_coverage", &q.embedding_coverage());
        w.object("ingestion_lag_ms", |l| {
            l.field("p50", &percentile(&q.lag_ms, 50.0))
                .field("p95", &percentile(&q.lag_ms, 95.0))
                .field("p99", &percentile(&q.lag_ms, 99.0));
        });
        w.field("quality_score", &q.quality_score());
        w.close();
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = [(10, 50), (20, 45), (30, 5)];
        assert_eq!(percentile(&s, 50.0), 10);
        assert_eq!(percentile(&s, 95.0), 20);
        assert_eq!(percentile(&s, 99.0), 30);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
