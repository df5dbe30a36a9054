//! Fetcher configuration: a `[weather]` table in a TOML file (unknown keys rejected), validated before any
//! network I/O, and the API key from the environment.
//!
//! ```toml
//! [weather]
//! base_url = "https://api.openweathermap.org"  # `/data/2.5/weather` is appended; http only for loopback
//! timeout_ms = 10000          # whole request, connect to last body byte
//! connect_timeout_ms = 5000
//! spacing_ms = 1100           # between request starts (free tier: 60 calls/min)
//! max_retries = 3             # after the first attempt, for 429 / 5xx / timeouts / dropped connections
//! retry_min_delay_ms = 1000   # first backoff; doubles per retry, plus jitter in [0, delay)
//! retry_max_delay_ms = 30000
//! max_retry_after_ms = 120000 # a longer Retry-After gives up on the city for this round
//! max_distance_km = 25.0      # payload coordinates vs the city centre
//! every = "1h"                # round period of the live feed (`run --weather owm`), at least 1m
//! cities = ["Dhaka", "Chittagong", "Sylhet", "Khulna", "Rajshahi", "Barisal", "Rangpur", "Mymensingh"]
//!
//! [weather.city_ids]          # optional: query these cities by OWM city id instead of lat/lon
//! Dhaka = 1185241
//! ```
//! Other top-level tables are ignored, so the same file can hold the pipeline's configuration.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use millionx_dataflow::config::ConfigError;
use millionx_dataflow::City;
use serde::Deserialize;

use crate::owm::{Checks, DEFAULT_MAX_DISTANCE_KM};

/// The production API root.
pub const DEFAULT_BASE_URL: &str = "https://api.openweathermap.org";

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "OPENWEATHER_API_KEY";

/// Environment variable naming a file that holds the API key (a mounted secret); surrounding whitespace is
/// trimmed.
pub const API_KEY_FILE_ENV: &str = "OPENWEATHER_API_KEY_FILE";

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_owned(), reason: reason.into() }
}

/// The `[weather]` table. Every key is optional; defaults as in the module example.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WeatherConfig {
    /// API root, e.g. `https://api.openweathermap.org`; `data/2.5/weather` is appended.
    pub base_url: String,
    /// Per-request timeout, ms (connect to last body byte).
    pub timeout_ms: u64,
    /// TCP + TLS connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Least time between two request starts, ms (retries included). 1100 keeps 8 cities far below the free
    /// tier's 60 calls/min.
    pub spacing_ms: u64,
    /// Retries after the first attempt for retryable failures (429, 5xx, timeout, connect, transport).
    pub max_retries: u32,
    /// First backoff delay, ms; doubled per retry (factor 2), capped by `retry_max_delay_ms`, plus a random
    /// jitter in `[0, delay)`.
    pub retry_min_delay_ms: u64,
    /// Backoff cap, ms.
    pub retry_max_delay_ms: u64,
    /// Longest `Retry-After` honoured, ms; a longer one ends the city's retries for this round.
    pub max_retry_after_ms: u64,
    /// Coordinate tolerance, km.
    pub max_distance_km: f64,
    /// Cities to fetch, in order.
    pub cities: Vec<City>,
    /// Optional OWM city ids by city name; cities not listed are queried by their coordinates.
    pub city_ids: BTreeMap<String, u64>,
    /// Round period of the live feed (`run --weather owm`), a duration like `1h` or `30m`, at least `1m`
    /// ([`crate::schedule::MIN_EVERY`]). `weather fetch` takes `--every` instead.
    pub every: String,
}

impl Default for WeatherConfig {
    fn default() -> WeatherConfig {
        WeatherConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            spacing_ms: 1_100,
            max_retries: 3,
            retry_min_delay_ms: 1_000,
            retry_max_delay_ms: 30_000,
            max_retry_after_ms: 120_000,
            max_distance_km: DEFAULT_MAX_DISTANCE_KM,
            cities: City::ALL.to_vec(),
            city_ids: BTreeMap::new(),
            every: String::from("1h"),
        }
    }
}

#[derive(Deserialize)]
struct FileShape {
    weather: Option<WeatherConfig>,
}

/// How one city is asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Query {
    /// `id=<OWM city id>`.
    CityId(u64),
    /// `lat=..&lon=..` (the city centre from [`City::coordinates`]).
    LatLon(f64, f64),
}

impl WeatherConfig {
    /// Parses the `[weather]` table of a TOML document and validates it. Errors name the key: a syntax
    /// error, an unknown key (`weather.timeout`), a wrong type, a missing `[weather]` table, then
    /// [`WeatherConfig::validate`].
    pub fn from_toml(text: &str) -> Result<WeatherConfig, ConfigError> {
        let shape: FileShape = millionx_dataflow::config::from_toml_text(text).map_err(|e| err(&e.key, e.reason))?;
        let config = shape.weather.ok_or_else(|| err("weather", "the file has no [weather] table"))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file (see [`WeatherConfig::from_toml`]).
    pub fn from_file(path: &Path) -> Result<WeatherConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        WeatherConfig::from_toml(&text)
    }

    /// Checks every value. Pure: no I/O. The base URL must be `https`, or `http` to a loopback host (the
    /// key travels in the query string).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.endpoint()?;
        for (key, v, lo, hi) in [
            ("weather.timeout_ms", self.timeout_ms, 1, 300_000),
            ("weather.connect_timeout_ms", self.connect_timeout_ms, 1, 300_000),
            ("weather.spacing_ms", self.spacing_ms, 0, 3_600_000),
            ("weather.max_retries", u64::from(self.max_retries), 0, 10),
            ("weather.retry_min_delay_ms", self.retry_min_delay_ms, 1, 3_600_000),
            ("weather.retry_max_delay_ms", self.retry_max_delay_ms, 1, 3_600_000),
            ("weather.max_retry_after_ms", self.max_retry_after_ms, 0, 3_600_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(err(key, format!("{v} is outside {lo}..={hi}")));
            }
        }
        if self.retry_max_delay_ms < self.retry_min_delay_ms {
            return Err(err("weather.retry_max_delay_ms", "must be at least retry_min_delay_ms"));
        }
        if !(self.max_distance_km.is_finite() && self.max_distance_km > 0.0 && self.max_distance_km <= 500.0) {
            return Err(err("weather.max_distance_km", "must be in (0, 500]"));
        }
        self.every()?;
        if self.cities.is_empty() {
            return Err(err("weather.cities", "must list at least one city"));
        }
        for (i, c) in self.cities.iter().enumerate() {
            if self.cities[..i].contains(c) {
                return Err(err("weather.cities", format!("{} is listed twice", c.name())));
            }
        }
        for (name, id) in &self.city_ids {
            let key = format!("weather.city_ids.{name}");
            if City::from_name(name).is_none() {
                let names: Vec<&str> = City::ALL.iter().map(|c| c.name()).collect();
                return Err(err(&key, format!("unknown city; expected one of {}", names.join(", "))));
            }
            if *id == 0 {
                return Err(err(&key, "an OWM city id is a positive integer"));
            }
        }
        Ok(())
    }

    /// The full endpoint URL, `<base_url>/data/2.5/weather`. Errors: `weather.base_url` unparsable, not
    /// http(s), with credentials or a query, or plain http to a non-loopback host.
    pub fn endpoint(&self) -> Result<reqwest::Url, ConfigError> {
        let key = "weather.base_url";
        let mut url = reqwest::Url::parse(&self.base_url).map_err(|e| err(key, format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" => {
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                if !loopback {
                    return Err(err(
                        key,
                        "plain http is only allowed to a loopback host (the API key is in the query)",
                    ));
                }
            }
            other => return Err(err(key, format!("scheme `{other}` is not http or https"))),
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(err(key, "must not carry credentials, a query or a fragment"));
        }
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{path}/data/2.5/weather"));
        Ok(url)
    }

    /// How `city` is queried: its configured OWM id, else its centre coordinates.
    pub fn query_for(&self, city: City) -> Query {
        match self.city_ids.get(city.name()) {
            Some(id) => Query::CityId(*id),
            None => {
                let (lat, lon) = city.coordinates();
                Query::LatLon(lat, lon)
            }
        }
    }

    /// The payload checks this configuration implies.
    pub fn checks(&self) -> Checks {
        Checks { max_distance_km: self.max_distance_km }
    }

    /// The parsed `every`. Errors (key `weather.every`): not a duration of at least one minute.
    pub fn every(&self) -> Result<Duration, ConfigError> {
        crate::schedule::parse_every(&self.every).map_err(|reason| err("weather.every", reason))
    }

    /// Per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The OpenWeatherMap API key. Its `Debug` output is redacted; it is never logged or put in an error.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// Wraps a key. Errors (key `OPENWEATHER_API_KEY`): empty, or holding whitespace or control characters.
    pub fn new(key: &str) -> Result<ApiKey, ConfigError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(err(API_KEY_ENV, "is empty"));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(API_KEY_ENV, "holds whitespace or control characters"));
        }
        Ok(ApiKey(key.to_owned()))
    }

    /// The key from the process environment: `OPENWEATHER_API_KEY`, or the file named by
    /// `OPENWEATHER_API_KEY_FILE`. See [`ApiKey::from_lookup`].
    pub fn from_env() -> Result<ApiKey, ConfigError> {
        ApiKey::from_lookup(|name| std::env::var(name).ok())
    }

    /// The key via `lookup` (an environment). Errors name the variable: neither set, both set (ambiguous),
    /// the file unreadable, or the key malformed ([`ApiKey::new`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ApiKey, ConfigError> {
        match (lookup(API_KEY_ENV), lookup(API_KEY_FILE_ENV)) {
            (Some(_), Some(_)) => {
                Err(err(API_KEY_ENV, format!("both {API_KEY_ENV} and {API_KEY_FILE_ENV} are set; set one")))
            }
            (Some(k), None) => ApiKey::new(&k),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err(API_KEY_FILE_ENV, format!("cannot read {path}: {e}")))?;
                ApiKey::new(&text).map_err(|e| err(API_KEY_FILE_ENV, e.reason))
            }
            (None, None) => Err(err(API_KEY_ENV, format!("not set (nor {API_KEY_FILE_ENV})"))),
        }
    }

    /// The key text, for the `appid` query parameter only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_query_by_coordinates() {
        let c = WeatherConfig::default();
        c.validate().expect("defaults are valid");
        assert_eq!(c.endpoint().expect("url").as_str(), "https://api.openweathermap.org/data/2.5/weather");
        assert_eq!(c.query_for(City::Sylhet), Query::LatLon(24.8949, 91.8687));
        assert_eq!(c.cities.len(), 8);
    }

    #[test]
    fn file_values_and_city_ids() {
        let c = WeatherConfig::from_toml(
            "[input]\ndir = \"x\"\n[weather]\nbase_url = \"http://127.0.0.1:8080/owm/\"\nspacing_ms = 0\n\
             cities = [\"Khulna\", \"Dhaka\"]\n[weather.city_ids]\nKhulna = 1336135\n",
        )
        .expect("valid");
        assert_eq!(c.endpoint().expect("url").as_str(), "http://127.0.0.1:8080/owm/data/2.5/weather");
        assert_eq!(c.cities, vec![City::Khulna, City::Dhaka]);
        assert_eq!(c.query_for(City::Khulna), Query::CityId(1336135));
        assert_eq!(c.query_for(City::Dhaka), Query::LatLon(23.8103, 90.4125));
        assert_eq!(c.timeout_ms, 10_000);
    }

    #[test]
    fn bad_config_names_the_key() {
        let cases = [
            ("[weather]\ntimeout = 5\n", "weather.timeout"),
            ("[weather]\ntimeout_ms = 0\n", "weather.timeout_ms"),
            ("[weather]\nbase_url = \"http://api.openweathermap.org\"\n", "weather.base_url"),
            ("[weather]\nbase_url = \"ftp://localhost\"\n", "weather.base_url"),
            ("[weather]\nbase_url = \"https://u:p@example.org\"\n", "weather.base_url"),
            ("[weather]\ncities = [\"Atlantis\"]\n", "weather.cities[0]"),
            ("[weather]\ncities = []\n", "weather.cities"),
            ("[weather]\ncities = [\"Dhaka\", \"Dhaka\"]\n", "weather.cities"),
            ("[weather.city_ids]\nAtlantis = 1\n", "weather.city_ids.Atlantis"),
            ("[weather]\nmax_distance_km = -1.0\n", "weather.max_distance_km"),
            ("[weather]\nevery = \"10s\"\n", "weather.every"),
            ("[weather]\nevery = \"hourly\"\n", "weather.every"),
            ("[weather]\nretry_min_delay_ms = 5000\nretry_max_delay_ms = 10\n", "weather.retry_max_delay_ms"),
            ("[pipeline]\nx = 1\n", "weather"),
            ("[weather]\ncities = [\n  \"Dhaka\",\n  \"Atlantis\",\n]\n", "weather.cities[1]"),
            ("[weather]\nspacing_ms = \"fast\"\n", "weather.spacing_ms"),
            ("[weather\n", "(syntax)"),
        ];
        for (text, key) in cases {
            let e = WeatherConfig::from_toml(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn api_key_sources() {
        let env = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        };
        assert_eq!(
            ApiKey::from_lookup(env(vec![(API_KEY_ENV, " abc123 ".into())])).expect("env"),
            ApiKey("abc123".into())
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "fromfile\n").expect("write");
        let from_file = ApiKey::from_lookup(env(vec![(API_KEY_FILE_ENV, path.display().to_string())])).expect("file");
        assert_eq!(from_file.expose(), "fromfile");
        assert_eq!(ApiKey::from_lookup(env(vec![])).expect_err("unset").key, API_KEY_ENV);
        let both = env(vec![(API_KEY_ENV, "a".into()), (API_KEY_FILE_ENV, "b".into())]);
        assert_eq!(ApiKey::from_lookup(both).expect_err("both").key, API_KEY_ENV);
        let missing = env(vec![(API_KEY_FILE_ENV, dir.path().join("nope").display().to_string())]);
        assert_eq!(ApiKey::from_lookup(missing).expect_err("missing file").key, API_KEY_FILE_ENV);
        assert_eq!(ApiKey::new("a b").expect_err("space").key, API_KEY_ENV);
        assert_eq!(format!("{:?}", ApiKey::new("secret").expect("ok")), "ApiKey(<redacted>)");
    }
}
