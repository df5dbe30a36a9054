//! Weather reading schema (`context.weather`, the fetcher's output format in PIPELINE.md).

use millionx_dataflow::record::WeatherReading;
use millionx_dataflow::{Meta, RawLine, Reason};
use serde_json::value::RawValue;

use super::fields::{self, Object, Unreadable};
use super::rules::{self, Check, Rejection};

const NAMES: [&str; 14] = [
    "city",
    "country",
    "latitude",
    "longitude",
    "timestamp",
    "weather",
    "temperature",
    "humidity",
    "pressure",
    "visibility",
    "wind",
    "clouds",
    "sunrise",
    "sunset",
];
const REQUIRED: [bool; 14] = [true, true, true, true, true, true, true, true, true, false, true, true, true, true];

/// Plausible air temperature in Bangladesh, °C: readings outside are rejected (`out_of_range`).
/// Bangladesh's recorded extremes are about 1 °C to 45 °C; the bounds leave a wide margin.
pub const PLAUSIBLE_CELSIUS: std::ops::RangeInclusive<f64> = -10.0..=60.0;

/// Validates one weather reading line.
///
/// Errors: a [`Rejection`] with the PIPELINE.md reason of the first failing rule; nested fields are
/// named with a dot (`temperature.current`).
pub fn validate(line: &RawLine) -> Result<WeatherReading, Rejection> {
    let obj = Object::parse(&line.payload).ok_or_else(Rejection::not_an_object)?;
    let (s, _extra) = obj.slots(&NAMES);
    let event_time = rules::event_time_of(s[4]);
    // The whole payload becomes RAW_RECORD, so all of it must be readable (fields::Unreadable): a number
    // beyond binary64 anywhere, even in a known field, is parse_error here, before the field rules.
    let raw = raw_record(&line.payload).map_err(|e| Rejection::unreadable(e, event_time))?;
    check(line, &s, raw).map_err(|reason| Rejection::rule(reason, event_time))
}

/// The payload re-encoded compactly (one line whatever the producer's formatting), for `RAW_RECORD`.
///
/// Errors: [`Unreadable`] when serde_json cannot read it (numbers beyond binary64, nesting deeper than 128,
/// lone surrogate escapes).
fn raw_record(payload: &str) -> Result<String, Unreadable> {
    serde_json::from_str::<serde_json::Value>(payload)
        .map(|v| v.to_string())
        .map_err(|e| Unreadable(format!("the raw record is not readable as JSON: {e}")))
}

/// The slots of a required nested object (`wrong_type:F` when not an object, `missing_field:F.k`).
fn nested<'a, const N: usize>(
    v: Option<&'a RawValue>,
    name: &str,
    keys: &[&str; N],
) -> Check<[Option<&'a RawValue>; N]> {
    let obj = v.and_then(fields::object).ok_or_else(|| Reason::field("wrong_type", name))?;
    let (slots, _) = obj.slots(keys);
    if let Some(i) = slots.iter().position(Option::is_none) {
        return Err(Reason::field("missing_field", &format!("{name}.{}", keys[i])));
    }
    Ok(slots)
}

fn check(line: &RawLine, s: &[Option<&RawValue>; 14], raw: String) -> Check<WeatherReading> {
    rules::require(s, &NAMES, &REQUIRED)?;
    let weather = nested(s[5], "weather", &["condition", "description", "icon"])?;
    let temperature = nested(s[6], "temperature", &["current", "feels_like", "min", "max"])?;
    let wind = nested(s[10], "wind", &["speed", "degree"])?;

    let city = rules::req_str(s[0], "city")?;
    let country = rules::req_str(s[1], "country")?;
    let latitude = rules::req_num(s[2], "latitude")?;
    let longitude = rules::req_num(s[3], "longitude")?;
    let timestamp = rules::req_str(s[4], "timestamp")?;
    let condition = rules::req_str(weather[0], "weather.condition")?;
    let description = rules::req_str(weather[1], "weather.description")?;
    let icon = rules::req_str(weather[2], "weather.icon")?;
    let current = rules::req_num(temperature[0], "temperature.current")?;
    let feels_like = rules::req_num(temperature[1], "temperature.feels_like")?;
    let t_min = rules::req_num(temperature[2], "temperature.min")?;
    let t_max = rules::req_num(temperature[3], "temperature.max")?;
    let humidity = rules::req_int(s[7], "humidity")?;
    let pressure = rules::req_num(s[8], "pressure")?;
    let visibility = rules::opt_num(s[9], "visibility")?;
    let wind_speed = rules::req_num(wind[0], "wind.speed")?;
    let wind_degree = rules::req_num(wind[1], "wind.degree")?;
    let clouds = rules::req_int(s[11], "clouds")?;
    let sunrise = rules::req_str(s[12], "sunrise")?;
    let sunset = rules::req_str(s[13], "sunset")?;

    if !(0..=100).contains(&humidity) {
        return Err(Reason::field("out_of_range", "humidity"));
    }
    if !PLAUSIBLE_CELSIUS.contains(&current) {
        return Err(Reason::field("out_of_range", "temperature.current"));
    }
    let city = rules::city(&city, "city")?;
    let event_time = rules::timestamp(&timestamp, "timestamp")?;

    Ok(WeatherReading {
        meta: Meta { origin: line.origin, event_time, ingest_ns: line.ingest_ns },
        city,
        country: country.into_owned(),
        latitude,
        longitude,
        timestamp: timestamp.into_owned(),
        condition: condition.into_owned(),
        description: description.into_owned(),
        icon: icon.into_owned(),
        temperature: current,
        feels_like,
        temperature_min: t_min,
        temperature_max: t_max,
        humidity,
        pressure,
        visibility,
        wind_speed,
        wind_degree,
        clouds,
        sunrise: sunrise.into_owned(),
        sunset: sunset.into_owned(),
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{City, Origin, StreamKind};

    const GOOD: &str = r#"{"city": "Sylhet", "country": "BD", "latitude": 24.8949, "longitude": 91.8687, "timestamp": "2024-12-14T23:00:00Z", "weather": {"condition": "Haze", "description": "haze", "icon": "50n"}, "temperature": {"current": 14.5, "feels_like": 15.1, "min": 13.0, "max": 16}, "humidity": 88, "pressure": 1012, "visibility": 2000, "wind": {"speed": 1.5, "degree": 40}, "clouds": 0, "sunrise": "2024-12-14T00:30:00Z", "sunset": "2024-12-14T11:45:00Z"}"#;

    fn check_line(payload: &str) -> Result<WeatherReading, Rejection> {
        validate(&RawLine {
            origin: Origin { stream: StreamKind::Weather, partition: 0, offset: 0 },
            ingest_ns: 0,
            payload: payload.into(),
        })
    }

    #[test]
    fn good_reading() {
        let r = check_line(GOOD).expect("valid");
        assert_eq!((r.city, r.temperature, r.humidity, r.visibility), (City::Sylhet, 14.5, 88, Some(2000.0)));
        assert!(!r.raw.contains(": "), "raw is compact: {}", r.raw);
    }

    #[test]
    fn nested_and_range_rules() {
        let reason = |p: String| check_line(&p).expect_err("bad").reason.0;
        assert_eq!(reason(GOOD.replace("\"icon\": \"50n\"", "\"x\": 1")), "missing_field:weather.icon");
        assert_eq!(reason(GOOD.replace("\"current\": 14.5", "\"current\": \"hot\"")), "wrong_type:temperature.current");
        assert_eq!(reason(GOOD.replace("\"current\": 14.5", "\"current\": 287.6")), "out_of_range:temperature.current");
        assert_eq!(reason(GOOD.replace("\"Sylhet\"", "\"Sylhet Division\"")), "unknown_city:city");
        assert!(check_line(&GOOD.replace("\"visibility\": 2000, ", "")).is_ok(), "visibility is optional");
    }

    #[test]
    fn a_number_beyond_binary64_in_an_unknown_field_is_a_parse_error_not_an_empty_raw_record() {
        let line = GOOD.replace("\"clouds\": 0,", "\"clouds\": 0, \"x_uv\": 1e400,");
        let r = check_line(&line).expect_err("an unreadable raw record");
        assert_eq!(r.reason.as_str(), "parse_error");
        assert_eq!(
            r.detail.as_deref(),
            Some("the raw record is not readable as JSON: number out of range at line 1 column 384")
        );
        assert_eq!(r.event_time, Some(millionx_dataflow::EventTime(1_734_217_200_000)), "still placed in its hour");
        let nested = GOOD.replace("\"icon\": \"50n\"", "\"icon\": \"50n\", \"extra\": [1e999]");
        assert_eq!(check_line(&nested).expect_err("nested").reason.as_str(), "parse_error");
        // A large but finite unknown number is kept (re-encoded by serde_json, as every raw record is).
        let big = check_line(&GOOD.replace("\"clouds\": 0,", "\"clouds\": 0, \"x_uv\": 1e300,")).expect("valid");
        assert!(big.raw.ends_with(r#""x_uv":1e+300}"#), "{}", big.raw);
    }
}
