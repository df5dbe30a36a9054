//! HTTP: one GET per attempt behind the [`Transport`] trait, implemented with reqwest (rustls, ring).
//!
//! The request URL carries the API key (`appid`), so nothing here puts a URL into an error or a log line
//! (reqwest errors are stripped with `without_url`).

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use millionx_dataflow::config::ConfigError;
use millionx_dataflow::City;
use reqwest::Url;

use crate::config::{ApiKey, Query, WeatherConfig};
use crate::error::{FailureReason, WeatherError};
use crate::owm::Units;

/// Largest body accepted, bytes. A real answer is under 1 KiB; anything near this is not OWM.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One HTTP answer: status, the `Retry-After` delay if any, and the body (at most [`MAX_BODY_BYTES`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// Parsed `Retry-After` (delta-seconds or HTTP-date, RFC 9110 §10.2.3), relative to now.
    pub retry_after: Option<Duration>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Sends one GET and returns the answer, or a transport failure (`timeout`, `connect`, `transport`).
/// Implemented by [`ReqwestTransport`]; tests substitute a scripted one.
pub trait Transport {
    /// GETs `url` (which holds the API key: never log it).
    fn get(&self, url: &Url) -> impl Future<Output = Result<HttpReply, WeatherError>> + Send;
}

/// The production transport: a reqwest client with the configured timeouts, no redirects (a redirect could
/// carry the key elsewhere), HTTP/1.1 over rustls with the ring provider.
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Builds the client. Installs ring as the process's rustls provider if none is installed yet.
    /// Errors: the TLS backend cannot be initialised (reported under the key `weather.base_url`).
    pub fn new(config: &WeatherConfig) -> Result<ReqwestTransport, ConfigError> {
        // `Err` only means a provider is already installed, which is what we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("millionx-weather/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError {
                key: "weather.base_url".into(),
                reason: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        Ok(ReqwestTransport { client })
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn classify(e: reqwest::Error) -> WeatherError {
    let reason = if e.is_timeout() {
        FailureReason::Timeout
    } else if e.is_connect() {
        FailureReason::Connect
    } else {
        FailureReason::Transport
    };
    let e = e.without_url();
    WeatherError::new(reason, error_chain(&e))
}

impl Transport for ReqwestTransport {
    async fn get(&self, url: &Url) -> Result<HttpReply, WeatherError> {
        let mut response = self.client.get(url.clone()).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Timestamp::now()));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(WeatherError::new(FailureReason::Parse, format!("body over {MAX_BODY_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpReply { status, retry_after, body })
    }
}

/// Parses a `Retry-After` value: delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`)
/// taken relative to `now` (a date in the past gives zero). `None` when unparsable.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let delta = at.duration_since(now);
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// The request URL for `city`: `endpoint?id=..|lat=..&lon=..&units=metric&appid=KEY`. Never `q=` (a bare
/// name can resolve to a town in another country).
pub fn request_url(endpoint: &Url, query: Query, units: Units, key: &ApiKey) -> Url {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        match query {
            Query::CityId(id) => {
                q.append_pair("id", &id.to_string());
            }
            Query::LatLon(lat, lon) => {
                q.append_pair("lat", &lat.to_string());
                q.append_pair("lon", &lon.to_string());
            }
        }
        q.append_pair("units", units.as_str());
        q.append_pair("appid", key.expose());
    }
    url
}

/// The request URL for `city` under `config` (see [`request_url`]).
pub fn city_url(config: &WeatherConfig, endpoint: &Url, city: City, key: &ApiKey) -> Url {
    request_url(endpoint, config.query_for(city), Units::Metric, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now: Timestamp = "2015-10-21T07:27:00Z".parse().expect("ts");
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn urls_never_use_q() {
        let mut config = WeatherConfig::default();
        config.city_ids.insert("Khulna".into(), 1336135);
        let endpoint = config.endpoint().expect("endpoint");
        let key = ApiKey::new("k3y").expect("key");
        let dhaka = city_url(&config, &endpoint, City::Dhaka, &key);
        assert_eq!(
            dhaka.as_str(),
            "https://api.openweathermap.org/data/2.5/weather?lat=23.8103&lon=90.4125&units=metric&appid=k3y"
        );
        let khulna = city_url(&config, &endpoint, City::Khulna, &key);
        assert_eq!(khulna.query(), Some("id=1336135&units=metric&appid=k3y"));
        assert!(!dhaka.query_pairs().any(|(k, _)| k == "q"));
    }
}
