//! One round = one request per configured city, spaced, retried, normalised and de-duplicated; after the
//! round the fetcher declares the weather stream's watermark.
//!
//! Guarantees:
//! - request starts are at least `spacing_ms` apart (retries included), measured on tokio's clock;
//! - retryable failures (429, 5xx, timeout, connect, transport) are retried `retry.max_retries` times with
//!   jittered exponential backoff (backon), a 429/503 `Retry-After` replacing the backoff delay; 401, 404,
//!   400 and payload rejections are not retried; after a 401 the round's remaining cities fail as
//!   `unauthorized` without a request (the key is account-wide);
//! - a reading whose `timestamp` is not newer than the last one published for its city is skipped
//!   (`unchanged`): the last good reading is never re-published as new;
//! - after a round, `watermark` = the round's start (wall clock, never moving backwards); a later reading older
//!   than a declared watermark is skipped (`late`), so "no reading older than the watermark follows" holds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::Retryable;
use jiff::Timestamp;
use millionx_dataflow::City;
use reqwest::Url;
use tokio::time::Instant;

use crate::client::{city_url, Transport};
use crate::config::{ApiKey, WeatherConfig};
use crate::error::{FailureReason, WeatherError};
use crate::metrics::{FetchCounters, FetchResult, REASON_LATE, REASON_NONE, REASON_UNCHANGED};
use crate::owm::{normalize, Checks, Units};
use crate::reading::Reading;

/// Spaces request starts at least `gap` apart on tokio's clock (so a paused test clock drives it).
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer allowing one start per `gap`.
    pub fn new(gap: Duration) -> Pacer {
        Pacer { gap, next_free: Mutex::new(None) }
    }

    /// Waits for the next free slot and claims it. The first call returns at once.
    pub async fn wait(&self) {
        let start = {
            let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + self.gap);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// What happened to one city in a round.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// A new reading was published (it is in [`Round::readings`]).
    Published,
    /// The reading was not newer than the last published one for this city.
    Unchanged,
    /// The reading was older than an already declared watermark.
    Late,
    /// No reading: the last failure, after retries where the failure was retryable.
    Failed(WeatherError),
}

/// One city's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct CityOutcome {
    /// The city.
    pub city: City,
    /// What happened.
    pub status: Status,
    /// HTTP attempts made (1 + retries; 0 when skipped because the key was refused earlier in the round).
    pub attempts: u32,
}

/// The result of one round over the configured cities.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    /// Wall-clock time the round started.
    pub started_at: Timestamp,
    /// New readings, in city order.
    pub readings: Vec<Reading>,
    /// One outcome per configured city, in order.
    pub outcomes: Vec<CityOutcome>,
    /// Declared after the round: no reading with an earlier `timestamp` will follow from this fetcher.
    pub watermark: Timestamp,
}

impl Round {
    /// Cities that failed, with the reason.
    pub fn failures(&self) -> impl Iterator<Item = (City, &WeatherError)> {
        self.outcomes.iter().filter_map(|o| match &o.status {
            Status::Failed(e) => Some((o.city, e)),
            _ => None,
        })
    }

    /// True when no city failed (published, unchanged and late all count as success).
    pub fn all_ok(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// Fetches rounds of readings through a [`Transport`].
pub struct Fetcher<T> {
    transport: T,
    key: ApiKey,
    endpoint: Url,
    config: WeatherConfig,
    checks: Checks,
    pacer: Pacer,
    counters: FetchCounters,
    last_published: BTreeMap<City, Timestamp>,
    watermark: Option<Timestamp>,
    wall_clock: fn() -> Timestamp,
    jitter_seed: Option<u64>,
    metrics: Option<millionx_metrics::Metrics>,
}

impl<T: Transport> Fetcher<T> {
    /// A fetcher for a validated `config`. Errors: `config` is invalid ([`WeatherConfig::validate`]).
    pub fn new(
        config: WeatherConfig,
        key: ApiKey,
        transport: T,
    ) -> Result<Fetcher<T>, millionx_dataflow::config::ConfigError> {
        config.validate()?;
        let endpoint = config.endpoint()?;
        Ok(Fetcher {
            transport,
            key,
            endpoint,
            checks: config.checks(),
            pacer: Pacer::new(Duration::from_millis(config.spacing_ms)),
            config,
            counters: FetchCounters::default(),
            last_published: BTreeMap::new(),
            watermark: None,
            wall_clock: Timestamp::now,
            jitter_seed: None,
            metrics: None,
        })
    }

    /// Replaces the wall clock used for round starts (tests).
    pub fn with_wall_clock(mut self, clock: fn() -> Timestamp) -> Fetcher<T> {
        self.wall_clock = clock;
        self
    }

    /// Seeds the backoff jitter's random generator (reproducible tests).
    pub fn with_jitter_seed(mut self, seed: u64) -> Fetcher<T> {
        self.jitter_seed = Some(seed);
        self
    }

    /// Seeds the last published `timestamp` per city (e.g. from an output file, so that a CronJob run does
    /// not re-publish what the previous run wrote).
    pub fn with_last_published(mut self, last: BTreeMap<City, Timestamp>) -> Fetcher<T> {
        self.last_published = last;
        self
    }

    /// Also counts into the Prometheus counter `millionx_weather_fetch_total{result,reason}` of `metrics`
    /// (its `{ok,none}` series is created at 0 here, so a scrape shows it before the first round ends).
    pub fn with_metrics(mut self, metrics: millionx_metrics::Metrics) -> Fetcher<T> {
        metrics.init_weather_fetch();
        self.metrics = Some(metrics);
        self
    }

    fn count(&mut self, result: FetchResult, reason: &'static str) {
        self.counters.inc(result, reason);
        if let Some(m) = &self.metrics {
            m.weather_fetch(result.as_str(), reason, 1);
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &FetchCounters {
        &self.counters
    }

    /// The last declared watermark, if a round has completed.
    pub fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// The last published `timestamp` per city.
    pub fn last_published(&self) -> &BTreeMap<City, Timestamp> {
        &self.last_published
    }

    async fn attempt(&self, url: &Url, city: City) -> Result<Reading, WeatherError> {
        self.pacer.wait().await;
        let reply = self.transport.get(url).await?;
        if reply.status != 200 {
            let reason = FailureReason::from_status(reply.status);
            let message = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| {
                    v.get("message").and_then(|m| m.as_str()).map(|m| m.chars().take(200).collect::<String>())
                })
                .unwrap_or_else(|| String::from("(no message)"));
            return Err(WeatherError {
                reason,
                detail: format!("HTTP {}: {message}", reply.status),
                retry_after: reply.retry_after,
            });
        }
        normalize(&reply.body, city, Units::Metric, &self.checks)
    }

    /// Fetches one city with retries. Returns the result, the attempts made and the failure reason of each
    /// retried attempt. Does not touch the counters or the de-duplication state.
    pub async fn fetch_city(&self, city: City) -> (Result<Reading, WeatherError>, u32, Vec<FailureReason>) {
        let url = city_url(&self.config, &self.endpoint, city, &self.key);
        let mut backoff = self.config.retry.backoff();
        if let Some(seed) = self.jitter_seed {
            backoff = backoff.with_jitter_seed(seed);
        }
        let max_retry_after = Duration::from_millis(self.config.max_retry_after_ms);
        let mut retried = Vec::new();
        let result = (|| self.attempt(&url, city))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &WeatherError| e.reason.is_retryable())
            .adjust(|e: &WeatherError, next: Option<Duration>| {
                // `next` is None once the retries are used up: stop whatever the server asked.
                let backoff_delay = next?;
                match e.retry_after {
                    Some(asked) if asked > max_retry_after => None,
                    Some(asked) => Some(asked),
                    None => Some(backoff_delay),
                }
            })
            .notify(|e: &WeatherError, _| retried.push(e.reason))
            .await;
        let attempts = retried.len() as u32 + 1;
        (result, attempts, retried)
    }

    /// Runs one round over the configured cities, updates the counters and the de-duplication state, and
    /// declares the watermark.
    pub async fn round(&mut self) -> Round {
        let now = (self.wall_clock)();
        // Millisecond precision, like the pipeline's event time.
        let started_at = Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
        let mut readings = Vec::new();
        let mut outcomes = Vec::new();
        let mut refused_key: Option<City> = None;
        for city in self.config.cities.clone() {
            let (result, attempts, retried) = match refused_key {
                // The key is account-wide: after a 401 the other cities would only repeat it.
                Some(first) => {
                    let detail = format!("not requested: the API key was refused for {}", first.name());
                    (Err(WeatherError::new(FailureReason::Unauthorized, detail)), 0, Vec::new())
                }
                None => self.fetch_city(city).await,
            };
            if matches!(&result, Err(e) if e.reason == FailureReason::Unauthorized) {
                refused_key.get_or_insert(city);
            }
            for reason in retried {
                self.count(FetchResult::Retried, reason.as_str());
            }
            let status = match result {
                Err(e) => {
                    self.count(FetchResult::Error, e.reason.as_str());
                    Status::Failed(e)
                }
                Ok(r) if self.last_published.get(&city).is_some_and(|last| r.timestamp <= *last) => {
                    self.count(FetchResult::Skipped, REASON_UNCHANGED);
                    Status::Unchanged
                }
                Ok(r) if self.watermark.is_some_and(|w| r.timestamp < w) => {
                    self.count(FetchResult::Skipped, REASON_LATE);
                    Status::Late
                }
                Ok(r) => {
                    self.count(FetchResult::Ok, REASON_NONE);
                    self.last_published.insert(city, r.timestamp);
                    readings.push(r);
                    Status::Published
                }
            };
            outcomes.push(CityOutcome { city, status, attempts });
        }
        let watermark = self.watermark.map_or(started_at, |w| w.max(started_at));
        self.watermark = Some(watermark);
        Round { started_at, readings, outcomes, watermark }
    }
}
