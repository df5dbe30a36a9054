//! Fetch counters, labelled as the Prometheus counter `millionx_weather_fetch_total{result,reason}`: the plain
//! in-process tally ([`crate::Fetcher::counters`]); [`crate::Fetcher::with_metrics`] adds the same counts to a
//! `millionx_metrics::Metrics` registry, served on /metrics by `weather fetch --every` and by
//! `run --weather owm`.
//!
//! | result | reason | counted when |
//! |---|---|---|
//! | `ok` | `none` | a new reading was published |
//! | `skipped` | `unchanged` | the reading's `timestamp` is not newer than the last one published for the city |
//! | `skipped` | `late` | the reading is older than a watermark already declared |
//! | `retried` | a [`FailureReason`] label | an attempt failed and another follows |
//! | `error` | a [`FailureReason`] label | the city failed for this round (retries exhausted or not retryable) |

use std::collections::BTreeMap;

use crate::error::FailureReason;

/// The counter's Prometheus name.
pub const FETCH_TOTAL: &str = "millionx_weather_fetch_total";

/// `result` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FetchResult {
    /// A new reading was published.
    Ok,
    /// A reading was fetched but not published (`unchanged`, `late`).
    Skipped,
    /// An attempt failed and will be retried.
    Retried,
    /// The city failed for this round.
    Error,
}

impl FetchResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchResult::Ok => "ok",
            FetchResult::Skipped => "skipped",
            FetchResult::Retried => "retried",
            FetchResult::Error => "error",
        }
    }
}

/// `reason` for skipped readings: not newer than the last published one.
pub const REASON_UNCHANGED: &str = "unchanged";
/// `reason` for skipped readings: older than a declared watermark.
pub const REASON_LATE: &str = "late";
/// `reason` for published readings.
pub const REASON_NONE: &str = "none";

/// Monotonic counts by `(result, reason)`; both labels come from bounded sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchCounters {
    counts: BTreeMap<(FetchResult, &'static str), u64>,
}

impl FetchCounters {
    /// Adds one to `(result, reason)`.
    pub fn inc(&mut self, result: FetchResult, reason: &'static str) {
        *self.counts.entry((result, reason)).or_insert(0) += 1;
    }

    /// Adds one failure of `reason` under `result` (`Retried` or `Error`).
    pub fn inc_failure(&mut self, result: FetchResult, reason: FailureReason) {
        self.inc(result, reason.as_str());
    }

    /// The count for `(result, reason)`, 0 if never incremented.
    pub fn get(&self, result: FetchResult, reason: &str) -> u64 {
        self.counts.iter().find(|((r, l), _)| *r == result && *l == reason).map_or(0, |(_, n)| *n)
    }

    /// Sum over reasons for one `result`.
    pub fn total(&self, result: FetchResult) -> u64 {
        self.counts.iter().filter(|((r, _), _)| *r == result).map(|(_, n)| n).sum()
    }

    /// Every non-zero series as `(result, reason, count)`, ordered by result then reason.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.counts.iter().map(|((r, l), n)| (r.as_str(), *l, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_labels() {
        let mut c = FetchCounters::default();
        c.inc(FetchResult::Ok, REASON_NONE);
        c.inc_failure(FetchResult::Retried, FailureReason::RateLimited);
        c.inc_failure(FetchResult::Retried, FailureReason::RateLimited);
        c.inc_failure(FetchResult::Error, FailureReason::Timeout);
        assert_eq!(c.get(FetchResult::Retried, "rate_limited"), 2);
        assert_eq!(c.get(FetchResult::Error, "rate_limited"), 0);
        assert_eq!(c.total(FetchResult::Retried), 2);
        let series: Vec<_> = c.iter().collect();
        assert_eq!(series, vec![("ok", "none", 1), ("retried", "rate_limited", 2), ("error", "timeout", 1)]);
    }
}
