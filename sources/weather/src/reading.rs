//! The weather reading the fetcher publishes: PIPELINE.md's format, one JSON object per reading.
//!
//! ```json
//! {"city":"Dhaka","country":"BD","latitude":23.7104,"longitude":90.4074,"timestamp":"2022-02-08T07:07:24Z",
//!  "weather":{"condition":"Haze","description":"haze","icon":"50d"},
//!  "temperature":{"current":22.99,"feels_like":22.62,"min":22.99,"max":22.99},
//!  "humidity":49,"pressure":1015.0,"visibility":3500.0,"wind":{"speed":3.09,"degree":280.0},"clouds":0,
//!  "sunrise":"2022-02-08T00:35:59Z","sunset":"2022-02-08T11:49:10Z"}
//! ```
//! Temperatures °C (2 decimals), humidity and clouds integer %, pressure hPa, visibility m (`null` when the
//! payload has none), wind m/s and degrees, times RFC 3339 UTC with `Z`.

use jiff::Timestamp;
use millionx_dataflow::City;
use serde::{Deserialize, Serialize};

/// One normalised reading, keyed on our city name (never the payload's `name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Our city (serialised as its name, e.g. `"Sylhet"`, even when OWM answered "Sylhet Division").
    pub city: City,
    /// `sys.country`, ISO 3166 alpha-2; always `BD` after the checks.
    pub country: String,
    /// `coord.lat` of the answer, degrees (WGS 84).
    pub latitude: f64,
    /// `coord.lon` of the answer, degrees (WGS 84).
    pub longitude: f64,
    /// `dt`: when OWM computed the observation (the event time), UTC.
    pub timestamp: Timestamp,
    /// `weather[0]`.
    pub weather: Condition,
    /// `main.temp*`, °C.
    pub temperature: Temperature,
    /// `main.humidity`, % (0–100).
    pub humidity: u8,
    /// `main.pressure`, hPa (sea level when OWM has no station pressure).
    pub pressure: f64,
    /// `visibility`, m (OWM caps it at 10,000); `None`/`null` when absent.
    pub visibility: Option<f64>,
    /// `wind.speed` / `wind.deg`.
    pub wind: Wind,
    /// `clouds.all`, cloudiness % (0–100).
    pub clouds: u8,
    /// `sys.sunrise`, UTC.
    pub sunrise: Timestamp,
    /// `sys.sunset`, UTC.
    pub sunset: Timestamp,
}

/// `weather{condition, description, icon}` from OWM's `weather[0]{main, description, icon}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Group, e.g. `Rain`, `Haze`, `Clear` (OWM `weather[0].main`).
    pub condition: String,
    /// Text, e.g. `moderate rain` (OWM's English text).
    pub description: String,
    /// OWM icon code, e.g. `10d`.
    pub icon: String,
}

/// `temperature{current, feels_like, min, max}`, all °C rounded to 2 decimals.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// `main.temp`.
    pub current: f64,
    /// `main.feels_like` (OWM's apparent temperature).
    pub feels_like: f64,
    /// `main.temp_min` (spread within the area at this moment, not the daily minimum).
    pub min: f64,
    /// `main.temp_max`.
    pub max: f64,
}

/// `wind{speed, degree}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wind {
    /// m/s (OWM gives m/s for both `metric` and `standard` units).
    pub speed: f64,
    /// Direction the wind comes from, meteorological degrees 0–360.
    pub degree: f64,
}

impl Reading {
    /// The reading as one compact JSON line (no trailing newline). Infallible for this type: every field is
    /// a string, a finite number or a nested struct of those.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
