//! Why a fetch or a payload failed, as a bounded label set (the `reason` of
//! `millionx_weather_fetch_total{result,reason}`) plus a human-readable detail.

use std::time::Duration;

/// The reason a city's reading was not produced. The label strings are bounded and stable: dashboards and
/// alert rules use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// HTTP 401: the API key is wrong or not yet active (OWM keys take minutes to hours to activate). Not retried.
    Unauthorized,
    /// HTTP 404 (`cod` "404"): the city id or coordinates are unknown to OWM. A config error; not retried.
    NotFound,
    /// HTTP 400 (`cod` "400"): a malformed query. A config or code error; not retried.
    BadRequest,
    /// HTTP 429: rate limited (free tier: 60 calls/min). Retried after `Retry-After` or the backoff.
    RateLimited,
    /// HTTP 5xx. Retried.
    ServerError,
    /// Any other non-200 HTTP status (403, 3xx, ...). Not retried.
    HttpStatus,
    /// No complete answer within the client timeout. Retried.
    Timeout,
    /// The TCP/TLS connection could not be opened. Retried.
    Connect,
    /// The connection dropped or the answer was not valid HTTP. Retried.
    Transport,
    /// The body is not JSON, not an object, or a field has the wrong type. Not retried.
    Parse,
    /// A required member is absent or null (`main`, `weather` or `weather: []`, `dt`, ...). Not retried.
    MissingField,
    /// A value is outside its physical range (humidity > 100 %, a negative wind speed, ...). Not retried.
    OutOfRange,
    /// `sys.country` is not `BD`. Not retried.
    WrongCountry,
    /// The payload's coordinates are farther from the configured city than the tolerance. Not retried.
    TooFar,
    /// A temperature outside the plausible band for Bangladesh in °C (e.g. Kelvin leaked into a metric
    /// request). Not retried; the reading is never stored.
    Implausible,
}

impl FailureReason {
    /// Every reason, in label order.
    pub const ALL: [FailureReason; 15] = [
        FailureReason::Unauthorized,
        FailureReason::NotFound,
        FailureReason::BadRequest,
        FailureReason::RateLimited,
        FailureReason::ServerError,
        FailureReason::HttpStatus,
        FailureReason::Timeout,
        FailureReason::Connect,
        FailureReason::Transport,
        FailureReason::Parse,
        FailureReason::MissingField,
        FailureReason::OutOfRange,
        FailureReason::WrongCountry,
        FailureReason::TooFar,
        FailureReason::Implausible,
    ];

    /// The metric label, e.g. `rate_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::NotFound => "not_found",
            FailureReason::BadRequest => "bad_request",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::ServerError => "server_error",
            FailureReason::HttpStatus => "http_status",
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Transport => "transport",
            FailureReason::Parse => "parse",
            FailureReason::MissingField => "missing_field",
            FailureReason::OutOfRange => "out_of_range",
            FailureReason::WrongCountry => "wrong_country",
            FailureReason::TooFar => "too_far",
            FailureReason::Implausible => "implausible",
        }
    }

    /// True for transient failures worth another attempt: 429, 5xx, timeouts and connection failures.
    /// 401/404/400 and every payload rejection are permanent (retrying cannot change the answer).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureReason::RateLimited
                | FailureReason::ServerError
                | FailureReason::Timeout
                | FailureReason::Connect
                | FailureReason::Transport
        )
    }

    /// The reason for a non-200 HTTP status (or a non-200 `cod` in a saved body).
    pub fn from_status(status: u16) -> FailureReason {
        match status {
            400 => FailureReason::BadRequest,
            401 => FailureReason::Unauthorized,
            404 => FailureReason::NotFound,
            429 => FailureReason::RateLimited,
            500..=599 => FailureReason::ServerError,
            _ => FailureReason::HttpStatus,
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed fetch or a rejected payload: the reason label, a detail for logs (never the API key, never the
/// request URL, which carries the key), and the server's `Retry-After` when it sent one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct WeatherError {
    /// Bounded reason label.
    pub reason: FailureReason,
    /// What went wrong, e.g. `HTTP 404: city not found` or `temperature.current 310.03 °C outside [-10, 60]`.
    pub detail: String,
    /// Delay the server asked for (HTTP `Retry-After`, seconds or HTTP-date), if any.
    pub retry_after: Option<Duration>,
}

impl WeatherError {
    /// An error without `Retry-After`.
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> WeatherError {
        WeatherError { reason, detail: detail.into(), retry_after: None }
    }

    /// `missing_field` naming the member, e.g. `main`.
    pub fn missing(field: &str) -> WeatherError {
        WeatherError::new(FailureReason::MissingField, format!("`{field}` is absent or null"))
    }
}
