//! Fetcher configuration: a `[weather]` table read through [`ConnectorConfig`] (unknown keys rejected),
//! validated before any network I/O, and the API key from the environment. Every key and default is listed
//! in `millionx_dataflow::config` (the run file reference).
//!
//! ```toml
//! [weather]
//! base_url = "https://api.openweathermap.org"  # `/data/2.5/weather` is appended; http only for loopback
//! timeout_ms = 10000          # whole request, connect to last body byte
//! connect_timeout_ms = 5000
//! spacing_ms = 1100           # between request starts (free tier: 60 calls/min)
//! max_retry_after_ms = 120000 # a longer Retry-After gives up on the city for this round
//! max_distance_km = 25.0      # payload coordinates vs the city centre
//! every = "1h"                # round period of the live feed (`run --weather owm`), at least 1m
//! cities = ["Dhaka", "Chittagong", "Sylhet", "Khulna", "Rajshahi", "Barisal", "Rangpur", "Mymensingh"]
//!
//! [weather.city_ids]          # optional: query these cities by OWM city id instead of lat/lon
//! Dhaka = 1185241
//!
//! [weather.retry]             # 429 / 5xx / timeouts / dropped connections, after the first attempt
//! max_retries = 3             # 0..=10
//! initial_backoff_ms = 1000   # doubles per retry, plus jitter in [0, delay)
//! max_backoff_ms = 30000
//! ```
//! Other top-level tables are ignored, so the same file can hold the pipeline's configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use millionx_dataflow::config::policy::retry;
use millionx_dataflow::config::{parse_table, table_of, ConfigError, ConnectorConfig, Env, RetryConfig, Shared};
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
    /// `[weather.retry]` over [`WeatherConfig::DEFAULT_RETRY`]: retries after the first attempt for retryable
    /// failures (429, 5xx, timeout, connect, transport), at most 10; the backoff doubles from
    /// `initial_backoff_ms`, capped by `max_backoff_ms`, plus a random jitter in `[0, delay)`.
    #[serde(skip)]
    pub retry: RetryConfig,
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
            retry: WeatherConfig::DEFAULT_RETRY,
            max_retry_after_ms: 120_000,
            max_distance_km: DEFAULT_MAX_DISTANCE_KM,
            cities: City::ALL.to_vec(),
            city_ids: BTreeMap::new(),
            every: String::from("1h"),
        }
    }
}

/// How one city is asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Query {
    /// `id=<OWM city id>`.
    CityId(u64),
    /// `lat=..&lon=..` (the city centre from [`City::coordinates`]).
    LatLon(f64, f64),
}

impl ConnectorConfig for WeatherConfig {
    const TABLE: &'static str = "weather";

    fn from_value(value: toml::Value, _shared: &Shared<'_>) -> Result<WeatherConfig, ConfigError> {
        let mut table = table_of(value, Self::TABLE)?;
        let retry = retry(Self::TABLE, Self::DEFAULT_RETRY, table.remove("retry"))?;
        let config: WeatherConfig = parse_table(table, Self::TABLE)?;
        Ok(WeatherConfig { retry, ..config })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        WeatherConfig::validate(self)
    }
}

impl WeatherConfig {
    /// Retry defaults: 3 retries, 1 s doubling to 30 s.
    pub const DEFAULT_RETRY: RetryConfig =
        RetryConfig { max_retries: 3, initial_backoff_ms: 1_000, max_backoff_ms: 30_000 };

    /// Parses the `[weather]` table of a whole TOML document (other tables are ignored) and validates it.
    /// Errors name the key: a syntax error, a missing `[weather]` table, then as [`ConnectorConfig::load`].
    pub fn from_document(text: &str, env: &Env) -> Result<WeatherConfig, ConfigError> {
        let mut doc: toml::Table = millionx_dataflow::config::from_toml_text(text)?;
        let table = doc.remove(Self::TABLE).ok_or_else(|| err("weather", "the file has no [weather] table"))?;
        WeatherConfig::load(table, &Shared::default(), env)
    }

    /// Checks every value. Pure: no I/O. The base URL must be `https`, or `http` to a loopback host (the
    /// key travels in the query string).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.endpoint()?;
        for (key, v, lo, hi) in [
            ("weather.timeout_ms", self.timeout_ms, 1, 300_000),
            ("weather.connect_timeout_ms", self.connect_timeout_ms, 1, 300_000),
            ("weather.spacing_ms", self.spacing_ms, 0, 3_600_000),
            ("weather.max_retry_after_ms", self.max_retry_after_ms, 0, 3_600_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(err(key, format!("{v} is outside {lo}..={hi}")));
            }
        }
        self.retry.validate("weather.retry", 10)?;
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

    /// The key from `env`: `OPENWEATHER_API_KEY`, or the file named by `OPENWEATHER_API_KEY_FILE`. Errors name
    /// the variable: neither set, both set (ambiguous), the file unreadable, or the key malformed
    /// ([`ApiKey::new`]).
    pub fn from_env(env: &Env) -> Result<ApiKey, ConfigError> {
        match (env.get(API_KEY_ENV), env.get(API_KEY_FILE_ENV)) {
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
        let c = WeatherConfig::from_document(
            "[input]\ndir = \"x\"\n[weather]\nbase_url = \"http://127.0.0.1:8080/owm/\"\nspacing_ms = 0\n\
             cities = [\"Khulna\", \"Dhaka\"]\n[weather.city_ids]\nKhulna = 1336135\n",
            &Env::empty(),
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
            ("[weather.retry]\ninitial_backoff_ms = 5000\nmax_backoff_ms = 10\n", "weather.retry.max_backoff_ms"),
            ("[weather.retry]\nmax_retries = 11\n", "weather.retry.max_retries"),
            ("[weather.retry]\nretry_min_delay_ms = 5\n", "weather.retry.retry_min_delay_ms"),
            ("[weather]\nmax_retries = 3\n", "weather.max_retries"),
            ("[weather]\nretry = 3\n", "weather.retry"),
            ("[pipeline]\nx = 1\n", "weather"),
            ("[weather]\ncities = [\n  \"Dhaka\",\n  \"Atlantis\",\n]\n", "weather.cities[1]"),
            ("[weather]\nspacing_ms = \"fast\"\n", "weather.spacing_ms"),
            ("[weather\n", "(syntax)"),
        ];
        for (text, key) in cases {
            let e = WeatherConfig::from_document(text, &Env::empty()).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn the_retry_table_keeps_the_weather_defaults_for_unset_keys() {
        let c = WeatherConfig::from_document("[weather.retry]\nmax_retries = 5\n", &Env::empty()).expect("valid");
        assert_eq!(c.retry, RetryConfig { max_retries: 5, initial_backoff_ms: 1_000, max_backoff_ms: 30_000 });
    }

    #[test]
    fn api_key_sources() {
        let env = |pairs: Vec<(&'static str, String)>| Env::from_pairs(pairs);
        assert_eq!(
            ApiKey::from_env(&env(vec![(API_KEY_ENV, " abc123 ".into())])).expect("env"),
            ApiKey("abc123".into())
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "fromfile\n").expect("write");
        let from_file = ApiKey::from_env(&env(vec![(API_KEY_FILE_ENV, path.display().to_string())])).expect("file");
        assert_eq!(from_file.expose(), "fromfile");
        assert_eq!(ApiKey::from_env(&env(vec![])).expect_err("unset").key, API_KEY_ENV);
        let both = env(vec![(API_KEY_ENV, "a".into()), (API_KEY_FILE_ENV, "b".into())]);
        assert_eq!(ApiKey::from_env(&both).expect_err("both").key, API_KEY_ENV);
        let missing = env(vec![(API_KEY_FILE_ENV, dir.path().join("nope").display().to_string())]);
        assert_eq!(ApiKey::from_env(&missing).expect_err("missing file").key, API_KEY_FILE_ENV);
        assert_eq!(ApiKey::new("a b").expect_err("space").key, API_KEY_ENV);
        assert_eq!(format!("{:?}", ApiKey::new("secret").expect("ok")), "ApiKey(<redacted>)");
    }
}
