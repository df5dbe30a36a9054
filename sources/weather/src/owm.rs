//! The OpenWeatherMap `/data/2.5/weather` payload: parse ([`Observation::parse`]) and check against a
//! configured city ([`Observation::check`]), giving a [`Reading`].
//!
//! Parsing is tolerant of what real answers do (`../shared/fixtures/owm/INDEX.md`): every number may be an
//! integer or a float; `cod` may be a number (200, 401, 429) or a string ("404", "400"); `visibility`,
//! `wind.gust`, `rain`, `snow`, `sys.type`/`sys.id`, `main.sea_level`/`grnd_level` may be absent; unknown
//! members are ignored. It is strict where a silent default would be wrong: an error body, or a 200 body
//! without `main` or `weather` (or `weather: []`), is an error, never a reading of zeros.
//!
//! Units come from the request, never from the values: `metric` gives °C, `standard` (OWM's default
//! when `units` is absent or misspelt) gives Kelvin, converted here as K − 273.15. Wind is m/s in both.

use jiff::Timestamp;
use millionx_dataflow::City;
use serde::Deserialize;

use crate::error::{FailureReason, WeatherError};
use crate::reading::{Condition, Reading, Temperature, Wind};

/// The `units` query parameter the payload was requested with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Units {
    /// `units=metric`: °C, m/s. What the fetcher always requests.
    Metric,
    /// `units=standard` or no `units`: Kelvin, m/s.
    Standard,
}

impl Units {
    /// The query value (`metric` / `standard`).
    pub fn as_str(self) -> &'static str {
        match self {
            Units::Metric => "metric",
            Units::Standard => "standard",
        }
    }

    /// A temperature in these units converted to °C, rounded to 2 decimals.
    pub fn to_celsius(self, t: f64) -> f64 {
        let c = match self {
            Units::Metric => t,
            // 0 °C = 273.15 K exactly (SI definition of the degree Celsius).
            Units::Standard => t - 273.15,
        };
        round2(c)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Plausible °C band for `temperature.current`, `min` and `max` in Bangladesh. The country's recorded
/// extremes are a few °C above freezing and the mid-40s; the rule rejects anything above 60 °C
/// (a Kelvin value that leaked into a metric request reads ~300).
pub const PLAUSIBLE_TEMPERATURE_C: (f64, f64) = (-10.0, 60.0);

/// Plausible °C band for `temperature.feels_like` (apparent temperature runs above the air temperature in
/// humid heat: the fixtures have 43.07 °C at 36.88 °C air).
pub const PLAUSIBLE_FEELS_LIKE_C: (f64, f64) = (-30.0, 90.0);

/// Mean Earth radius in km (IUGG mean radius R1 = (2a + b) / 3 of GRS 80), for the haversine distance.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Default tolerance between the payload's coordinates and the configured city centre (the 25 km).
pub const DEFAULT_MAX_DISTANCE_KM: f64 = 25.0;

/// Checks applied to a parsed observation before it becomes a reading of one of our cities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Checks {
    /// Greatest accepted great-circle distance, km, between `coord` and [`City::coordinates`].
    pub max_distance_km: f64,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks { max_distance_km: DEFAULT_MAX_DISTANCE_KM }
    }
}

/// Great-circle distance in km between two `(latitude, longitude)` points in degrees (haversine formula,
/// spherical Earth of radius [`EARTH_RADIUS_KM`]; error under 0.5 % against the ellipsoid).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let dp = p2 - p1;
    let dl = (b.1 - a.1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

// ---- wire format (every member optional: presence is checked explicitly, with the member's name) ----

#[derive(Deserialize)]
#[serde(untagged)]
enum Cod {
    Num(f64),
    Str(String),
}

#[derive(Deserialize)]
struct Payload {
    cod: Option<Cod>,
    message: Option<serde_json::Value>,
    coord: Option<Coord>,
    weather: Option<Vec<WeatherEntry>>,
    main: Option<Main>,
    visibility: Option<f64>,
    wind: Option<WindIn>,
    clouds: Option<Clouds>,
    rain: Option<Precipitation>,
    snow: Option<Precipitation>,
    dt: Option<f64>,
    sys: Option<Sys>,
    timezone: Option<f64>,
    id: Option<f64>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Coord {
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(Deserialize)]
struct WeatherEntry {
    main: Option<String>,
    description: Option<String>,
    icon: Option<String>,
}

#[derive(Deserialize)]
struct Main {
    temp: Option<f64>,
    feels_like: Option<f64>,
    temp_min: Option<f64>,
    temp_max: Option<f64>,
    pressure: Option<f64>,
    humidity: Option<f64>,
}

#[derive(Deserialize)]
struct WindIn {
    speed: Option<f64>,
    deg: Option<f64>,
    gust: Option<f64>,
}

#[derive(Deserialize)]
struct Clouds {
    all: Option<f64>,
}

#[derive(Deserialize)]
struct Precipitation {
    #[serde(rename = "1h")]
    one_hour: Option<f64>,
    #[serde(rename = "3h")]
    three_hours: Option<f64>,
}

#[derive(Deserialize)]
struct Sys {
    country: Option<String>,
    sunrise: Option<f64>,
    sunset: Option<f64>,
}

/// A parsed payload in SI-ish units (°C, m/s, m, hPa, mm), not yet tied to one of our cities. Holds the
/// optional extras (gust, rain, snow, UTC offset) that the reading format does not carry.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// OWM city id (`id`), when present.
    pub owm_id: Option<i64>,
    /// OWM place name (`name`): informational only, never a key ("Sylhet Division", "Dhaka District").
    pub name: Option<String>,
    /// `sys.country` (`None` when absent: the country check then fails).
    pub country: Option<String>,
    /// `coord.lat`, degrees.
    pub latitude: f64,
    /// `coord.lon`, degrees.
    pub longitude: f64,
    /// `dt`, UTC.
    pub observed_at: Timestamp,
    /// `timezone`: the place's offset from UTC in seconds (21600 = +06:00 for Bangladesh).
    pub utc_offset_s: Option<i32>,
    /// `weather[0]`.
    pub condition: Condition,
    /// `main.temp*` in °C, 2 decimals.
    pub temperature: Temperature,
    /// `main.humidity`, % (rounded to an integer).
    pub humidity: u8,
    /// `main.pressure`, hPa.
    pub pressure: f64,
    /// `visibility`, m.
    pub visibility: Option<f64>,
    /// `wind.speed`, `wind.deg`.
    pub wind: Wind,
    /// `wind.gust`, m/s.
    pub wind_gust: Option<f64>,
    /// `clouds.all`, % (rounded to an integer).
    pub clouds: u8,
    /// `rain.1h`, mm. Absent means OWM reported no rain for the last hour; kept as `None`, not 0
    /// (the reading format has no rain field; a consumer that wants 0 decides so itself).
    pub rain_1h: Option<f64>,
    /// `rain.3h`, mm (some endpoints send it instead of `1h`).
    pub rain_3h: Option<f64>,
    /// `snow.1h`, mm.
    pub snow_1h: Option<f64>,
    /// `snow.3h`, mm.
    pub snow_3h: Option<f64>,
    /// `sys.sunrise`, UTC.
    pub sunrise: Timestamp,
    /// `sys.sunset`, UTC.
    pub sunset: Timestamp,
}

fn need<T>(v: Option<T>, field: &str) -> Result<T, WeatherError> {
    v.ok_or_else(|| WeatherError::missing(field))
}

fn range(v: f64, field: &str, lo: f64, hi: f64) -> Result<f64, WeatherError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(WeatherError::new(FailureReason::OutOfRange, format!("`{field}` {v} outside [{lo}, {hi}]")))
    }
}

fn unix_seconds(v: f64, field: &str) -> Result<Timestamp, WeatherError> {
    let ms = (v * 1000.0).round();
    if !ms.is_finite() || ms.abs() > 1e15 {
        return Err(WeatherError::new(FailureReason::OutOfRange, format!("`{field}` {v} is not a Unix time")));
    }
    Timestamp::from_millisecond(ms as i64)
        .map_err(|_| WeatherError::new(FailureReason::OutOfRange, format!("`{field}` {v} is not a Unix time")))
}

fn percent(v: f64, field: &str) -> Result<u8, WeatherError> {
    Ok(range(v, field, 0.0, 100.0)?.round() as u8)
}

/// The HTTP-like status a body's `cod` carries (number or numeric string), if it has one.
fn cod_status(cod: &Cod) -> Option<u16> {
    match cod {
        Cod::Num(n) if n.fract() == 0.0 && (0.0..=999.0).contains(n) => Some(*n as u16),
        Cod::Num(_) => None,
        Cod::Str(s) => s.trim().parse().ok(),
    }
}

/// OWM's `message`, shortened for logs (the error bodies hold FAQ links and account notices, no personal data).
fn message_text(m: &Option<serde_json::Value>) -> String {
    let text = match m {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::from("(no message)"),
    };
    text.chars().take(200).collect()
}

impl Observation {
    /// Parses a `/data/2.5/weather` body requested with `units`.
    ///
    /// Errors (reason labels): `parse` (not a JSON object, a member of the wrong type), the reason of a
    /// non-200 `cod` (`unauthorized`, `not_found`, `bad_request`, `rate_limited`, `server_error`,
    /// `http_status`; for a saved body without its HTTP status), `missing_field` (`main`, `weather[0]`,
    /// `coord`, `dt`, `sys.sunrise`, ...; the detail names it), `out_of_range` (humidity or clouds outside
    /// 0–100 %, wind direction outside 0–360°, a negative speed, visibility, pressure or precipitation, a
    /// temperature below absolute zero, coordinates off the globe).
    pub fn parse(body: &[u8], units: Units) -> Result<Observation, WeatherError> {
        let p: Payload = serde_json::from_slice(body)
            .map_err(|e| WeatherError::new(FailureReason::Parse, format!("not an OWM weather object: {e}")))?;
        if let Some(cod) = &p.cod {
            match cod_status(cod) {
                Some(200) => {}
                Some(status) => {
                    return Err(WeatherError::new(
                        FailureReason::from_status(status),
                        format!("cod {status}: {}", message_text(&p.message)),
                    ))
                }
                None => {
                    return Err(WeatherError::new(
                        FailureReason::Parse,
                        "`cod` is neither a status number nor a numeric string",
                    ))
                }
            }
        }
        let main = need(p.main, "main")?;
        let w = need(p.weather, "weather")?.into_iter().next().ok_or_else(|| WeatherError::missing("weather[0]"))?;
        let coord = need(p.coord, "coord")?;
        let wind = need(p.wind, "wind")?;
        let sys = need(p.sys, "sys")?;
        let latitude = range(need(coord.lat, "coord.lat")?, "coord.lat", -90.0, 90.0)?;
        let longitude = range(need(coord.lon, "coord.lon")?, "coord.lon", -180.0, 180.0)?;

        // Below absolute zero is impossible in any unit system.
        let temp = |v: Option<f64>, field: &str| -> Result<f64, WeatherError> {
            let c = units.to_celsius(need(v, field)?);
            range(c, field, -273.15, f64::MAX)
        };
        let temperature = Temperature {
            current: temp(main.temp, "main.temp")?,
            feels_like: temp(main.feels_like, "main.feels_like")?,
            min: temp(main.temp_min, "main.temp_min")?,
            max: temp(main.temp_max, "main.temp_max")?,
        };
        let non_negative = |v: Option<f64>, field: &str| -> Result<Option<f64>, WeatherError> {
            v.map(|x| range(x, field, 0.0, f64::MAX)).transpose()
        };
        let (rain_1h, rain_3h) = match p.rain {
            Some(r) => (non_negative(r.one_hour, "rain.1h")?, non_negative(r.three_hours, "rain.3h")?),
            None => (None, None),
        };
        let (snow_1h, snow_3h) = match p.snow {
            Some(s) => (non_negative(s.one_hour, "snow.1h")?, non_negative(s.three_hours, "snow.3h")?),
            None => (None, None),
        };
        let utc_offset_s = match p.timezone {
            // Real offsets run from −12 h to +14 h.
            Some(tz) => Some(range(tz, "timezone", -14.0 * 3600.0, 14.0 * 3600.0)?.round() as i32),
            None => None,
        };
        Ok(Observation {
            owm_id: p.id.filter(|id| id.fract() == 0.0).map(|id| id as i64),
            name: p.name,
            country: sys.country,
            latitude,
            longitude,
            observed_at: unix_seconds(need(p.dt, "dt")?, "dt")?,
            utc_offset_s,
            condition: Condition {
                condition: need(w.main, "weather[0].main")?,
                description: need(w.description, "weather[0].description")?,
                icon: need(w.icon, "weather[0].icon")?,
            },
            temperature,
            humidity: percent(need(main.humidity, "main.humidity")?, "main.humidity")?,
            pressure: range(need(main.pressure, "main.pressure")?, "main.pressure", f64::MIN_POSITIVE, f64::MAX)?,
            visibility: non_negative(p.visibility, "visibility")?,
            wind: Wind {
                speed: range(need(wind.speed, "wind.speed")?, "wind.speed", 0.0, f64::MAX)?,
                degree: range(need(wind.deg, "wind.deg")?, "wind.deg", 0.0, 360.0)?,
            },
            wind_gust: non_negative(wind.gust, "wind.gust")?,
            clouds: percent(need(need(p.clouds, "clouds")?.all, "clouds.all")?, "clouds.all")?,
            rain_1h,
            rain_3h,
            snow_1h,
            snow_3h,
            sunrise: unix_seconds(need(sys.sunrise, "sys.sunrise")?, "sys.sunrise")?,
            sunset: unix_seconds(need(sys.sunset, "sys.sunset")?, "sys.sunset")?,
        })
    }

    /// `dt` floored to the UTC hour (the key the pipeline's hourly windows use).
    pub fn hour(&self) -> Timestamp {
        let s = self.observed_at.as_second();
        Timestamp::from_second(s.div_euclid(3600) * 3600).unwrap_or(self.observed_at)
    }

    /// Local wall-clock time of the observation (`dt` + `timezone`), when the payload gives the offset.
    pub fn local_time(&self) -> Option<jiff::civil::DateTime> {
        let offset = jiff::tz::Offset::from_seconds(self.utc_offset_s?).ok()?;
        Some(offset.to_datetime(self.observed_at))
    }

    /// Great-circle distance in km from the payload's coordinates to `city`'s centre.
    pub fn distance_to(&self, city: City) -> f64 {
        distance_km((self.latitude, self.longitude), city.coordinates())
    }

    /// Checks the observation belongs to `city` and is plausible, then keys it on our city name.
    ///
    /// In order, first failure wins: `wrong_country` (`sys.country` is not `BD`), `too_far` (more than
    /// `checks.max_distance_km` from [`City::coordinates`]), `implausible` (a temperature outside
    /// [`PLAUSIBLE_TEMPERATURE_C`] or [`PLAUSIBLE_FEELS_LIKE_C`]).
    pub fn check(self, city: City, checks: &Checks) -> Result<Reading, WeatherError> {
        match self.country.as_deref() {
            Some("BD") => {}
            other => {
                return Err(WeatherError::new(
                    FailureReason::WrongCountry,
                    format!("asked for {}, `sys.country` is {}", city.name(), other.unwrap_or("absent")),
                ))
            }
        }
        let d = self.distance_to(city);
        if d > checks.max_distance_km {
            return Err(WeatherError::new(
                FailureReason::TooFar,
                format!(
                    "asked for {}, got ({}, {}) {:.1} km away (limit {} km)",
                    city.name(),
                    self.latitude,
                    self.longitude,
                    d,
                    checks.max_distance_km
                ),
            ));
        }
        let t = self.temperature;
        let (lo, hi) = PLAUSIBLE_TEMPERATURE_C;
        for (field, v, lo, hi) in [
            ("temperature.current", t.current, lo, hi),
            ("temperature.min", t.min, lo, hi),
            ("temperature.max", t.max, lo, hi),
            ("temperature.feels_like", t.feels_like, PLAUSIBLE_FEELS_LIKE_C.0, PLAUSIBLE_FEELS_LIKE_C.1),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(WeatherError::new(
                    FailureReason::Implausible,
                    format!("{field} {v} °C outside [{lo}, {hi}] for Bangladesh (wrong units?)"),
                ));
            }
        }
        Ok(Reading {
            city,
            country: String::from("BD"),
            latitude: self.latitude,
            longitude: self.longitude,
            timestamp: self.observed_at,
            weather: self.condition,
            temperature: self.temperature,
            humidity: self.humidity,
            pressure: self.pressure,
            visibility: self.visibility,
            wind: self.wind,
            clouds: self.clouds,
            sunrise: self.sunrise,
            sunset: self.sunset,
        })
    }
}

/// Parses and checks one body: [`Observation::parse`] then [`Observation::check`].
pub fn normalize(body: &[u8], city: City, units: Units, checks: &Checks) -> Result<Reading, WeatherError> {
    Observation::parse(body, units)?.check(city, checks)
}
