//! The end-of-run summary: per-stream counts, rejects by reason, sink counters, throughput, latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::StreamKind;
use millionx_sink_util::SinkStats;
use serde::Serialize;

use millionx_graph::WorkerReport;

/// Counts of one input stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    /// Lines read.
    pub received: u64,
    /// Lines that passed validation (duplicates included).
    pub valid: u64,
    /// Lines rejected (dead letters), by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Valid lines that repeated an id (counted, not emitted).
    pub duplicates: u64,
    /// Records emitted to the sinks.
    pub emitted: u64,
    /// Emitted records joined to a weather reading.
    pub enriched: u64,
    /// Observations that arrived after their quality window had closed: in no window, but in the counts above.
    pub late: u64,
}

/// Percentiles of the read→write latency, ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Records measured.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
}

impl LatencySummary {
    /// The percentiles of `h` (µs).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// The run summary (printed, and written as `summary.json` under the output folder).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Worker threads in this process.
    pub workers: usize,
    /// Per stream (`social`, `market`, `weather`).
    pub streams: BTreeMap<String, StreamSummary>,
    /// Per sink folder.
    pub sinks: BTreeMap<String, SinkCounters>,
    /// Quality windows closed.
    pub quality_windows: usize,
    /// Wall time of the run, s.
    pub elapsed_s: f64,
    /// Lines read per second of wall time.
    pub throughput_rps: f64,
    /// read→write latency of Snowflake rows and Weaviate objects.
    pub latency: LatencySummary,
    /// The same per post and order sink (`snowflake/SOCIAL_POSTS`, `weaviate/SocialPost`, …).
    pub sink_latency: BTreeMap<String, LatencySummary>,
    /// Peak resident memory of the process (VmHWM), bytes; 0 when unknown.
    pub peak_rss_bytes: u64,
}

/// Serializable sink counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkCounters {
    /// Records written.
    pub rows: u64,
    /// Batches (files / requests).
    pub batches: u64,
    /// Body bytes.
    pub bytes: u64,
    /// Records rejected by the sink.
    pub rejected: u64,
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), 0 elsewhere.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl Summary {
    /// Folds the workers' reports.
    pub fn from_reports(reports: &[WorkerReport], elapsed: Duration, latency: &Histogram<u64>) -> Summary {
        let mut streams: BTreeMap<String, StreamSummary> = BTreeMap::new();
        let mut windows: Vec<&QualityWindow> = Vec::new();
        let mut closed = 0;
        let mut sinks: BTreeMap<String, SinkCounters> = BTreeMap::new();
        for r in reports {
            // Late observations count like a window's: the per-stream totals are windows + late counts.
            closed += r.windows.len();
            windows.extend(r.windows.iter().chain(r.late_counts.iter()));
            for (stream, late) in &r.late {
                streams.entry(stream.name().to_owned()).or_default().late += late;
            }
            for (name, s) in &r.sinks {
                let c = sinks.entry(name.clone()).or_default();
                add(c, s);
            }
        }
        for w in &windows {
            let s = streams.entry(w.stream.map_or("unknown", StreamKind::name).to_owned()).or_default();
            s.received += w.received;
            s.valid += w.valid;
            s.duplicates += w.duplicates;
            s.emitted += w.emitted;
            s.enriched += w.enriched;
            for (reason, n) in &w.rejected {
                *s.rejected.entry(reason.clone()).or_default() += n;
            }
        }
        let received: u64 = streams.values().map(|s| s.received).sum();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut per_sink: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        for (name, h) in reports.iter().flat_map(|r| &r.sink_latency) {
            match per_sink.get_mut(name) {
                // Same bounds on every worker: adding cannot fail.
                Some(sum) => {
                    let _ = sum.add(h);
                }
                None => {
                    per_sink.insert(name.clone(), h.clone());
                }
            }
        }
        Summary {
            workers: reports.len(),
            streams,
            sinks,
            quality_windows: closed,
            elapsed_s: elapsed.as_secs_f64(),
            throughput_rps: received as f64 / secs,
            latency: LatencySummary::of(latency),
            sink_latency: per_sink.iter().map(|(k, h)| (k.clone(), LatencySummary::of(h))).collect(),
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    /// A human-readable table.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "MillionX run summary ({} worker(s) in this process)", self.workers);
        let _ = writeln!(
            o,
            "{:<8} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>6}",
            "stream", "received", "valid", "rejected", "duplicates", "emitted", "enriched", "late"
        );
        for (name, s) in &self.streams {
            let rejected: u64 = s.rejected.values().sum();
            let _ = writeln!(
                o,
                "{:<8} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>6}",
                name, s.received, s.valid, rejected, s.duplicates, s.emitted, s.enriched, s.late
            );
        }
        let _ = writeln!(o, "rejected by reason:");
        for (name, s) in &self.streams {
            for (reason, n) in &s.rejected {
                let _ = writeln!(o, "  {name:<8} {reason:<32} {n:>8}");
            }
        }
        let _ = writeln!(o, "{:<28} {:>10} {:>8} {:>12} {:>9}", "sink", "rows", "batches", "bytes", "rejected");
        for (name, s) in &self.sinks {
            let _ = writeln!(o, "{:<28} {:>10} {:>8} {:>12} {:>9}", name, s.rows, s.batches, s.bytes, s.rejected);
        }
        let _ = writeln!(o, "quality windows: {}", self.quality_windows);
        let _ = writeln!(
            o,
            "elapsed: {:.3} s   throughput: {:.0} rec/s   peak memory: {:.1} MiB",
            self.elapsed_s,
            self.throughput_rps,
            self.peak_rss_bytes as f64 / 1_048_576.0
        );
        let l = &self.latency;
        let _ = writeln!(
            o,
            "read→sink latency (ms, {} records): p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
        for (name, l) in &self.sink_latency {
            let _ = writeln!(
                o,
                "  {name:<26} p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            );
        }
        o
    }
}

fn add(c: &mut SinkCounters, s: &SinkStats) {
    c.rows += s.rows;
    c.batches += s.batches;
    c.bytes += s.bytes;
    c.rejected += s.rejected;
}
