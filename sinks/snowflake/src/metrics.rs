//! Plain counters for the Snowflake sink (the lead exports them; names in [`MetricsSnapshot`] docs follow
//! `millionx_sink_snowflake_<name>_<unit>`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Shared by every writer of one sink; cheap to update from async tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    rows: AtomicU64,
    batches: AtomicU64,
    bytes: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    statements: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// A copy of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Rows durably written (`rows_written_total`).
    pub rows: u64,
    /// Batches completed without a fatal error (`batches_total`).
    pub batches: u64,
    /// Request body bytes of completed batches, UTF-8 (`bytes_total`).
    pub bytes: u64,
    /// Rows sent to the dead-letter output (`rows_rejected_total`).
    pub rejected: u64,
    /// Transient failures retried (`retries_total`).
    pub retries: u64,
    /// Statements / REST requests timed (`statements_total`).
    pub statements: u64,
    /// Sum of their latencies, µs (`statement_latency_microseconds_sum`).
    pub latency_us_sum: u64,
    /// Longest latency, µs.
    pub latency_us_max: u64,
    /// Failures by Snowflake error code (or `network`, `timeout`, `http_<status>`) (`errors_total{code}`).
    pub errors: BTreeMap<String, u64>,
}

impl Metrics {
    /// A batch finished: `rows` written, `bytes` of body, `rejected` rows dead-lettered.
    pub fn batch(&self, rows: u64, bytes: u64, rejected: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.rows.fetch_add(rows, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.rejected.fetch_add(rejected, Relaxed);
    }

    /// One retry of a transient failure.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    /// One failure with this code.
    pub fn error(&self, code: &str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code.to_owned()).or_default() += 1;
        }
    }

    /// One statement or request took `d`.
    pub fn statement_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.statements.fetch_add(1, Relaxed);
        self.latency_us_sum.fetch_add(us, Relaxed);
        self.latency_us_max.fetch_max(us, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            rows: self.rows.load(Relaxed),
            batches: self.batches.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            retries: self.retries.load(Relaxed),
            statements: self.statements.load(Relaxed),
            latency_us_sum: self.latency_us_sum.load(Relaxed),
            latency_us_max: self.latency_us_max.load(Relaxed),
            errors: self.errors.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let m = Metrics::default();
        m.batch(10, 1000, 1);
        m.batch(5, 500, 0);
        m.error("100038");
        m.error("100038");
        m.error("network");
        m.statement_latency(Duration::from_millis(3));
        m.statement_latency(Duration::from_millis(5));
        let s = m.snapshot();
        assert_eq!((s.rows, s.batches, s.bytes, s.rejected), (15, 2, 1500, 1));
        assert_eq!(s.errors.get("100038"), Some(&2));
        assert_eq!(s.errors.get("network"), Some(&1));
        assert_eq!((s.statements, s.latency_us_sum, s.latency_us_max), (2, 8000, 5000));
    }
}
