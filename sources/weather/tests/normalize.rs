//! The normaliser on payloads written for this repo (`tests/data/`), one quirk each.

use std::path::PathBuf;

use millionx_dataflow::City;
use millionx_source_weather::{normalize, Checks, FailureReason, Observation, Units};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rejected(name: &str, city: City, units: Units) -> (FailureReason, String) {
    match normalize(&data(name), city, units, &Checks::default()) {
        Ok(r) => panic!("{name} was accepted: {r:?}"),
        Err(e) => (e.reason, e.detail),
    }
}

#[test]
fn integer_numbers_and_absent_optionals_give_the_exact_reading() {
    let r =
        normalize(&data("dhaka-metric-integers-no-visibility.json"), City::Dhaka, Units::Metric, &Checks::default())
            .expect("accepted");
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
    let expected = serde_json::json!({
        "city": "Dhaka", "country": "BD", "latitude": 23.8103, "longitude": 90.4125,
        "timestamp": "2024-12-15T07:00:00Z",
        "weather": {"condition": "Clear", "description": "clear sky", "icon": "01n"},
        "temperature": {"current": 25.0, "feels_like": 25.0, "min": 24.0, "max": 26.0},
        "humidity": 61, "pressure": 1012.0, "visibility": null, "wind": {"speed": 2.0, "degree": 350.0},
        "clouds": 0, "sunrise": "2024-12-15T00:41:00Z", "sunset": "2024-12-15T11:25:00Z"
    });
    assert_eq!(json, expected);
    // Key order is PIPELINE.md's; the line is exactly what a sink writes.
    assert_eq!(
        r.to_json(),
        concat!(
            r#"{"city":"Dhaka","country":"BD","latitude":23.8103,"longitude":90.4125,"timestamp":"2024-12-15T07:00:00Z","#,
            r#""weather":{"condition":"Clear","description":"clear sky","icon":"01n"},"#,
            r#""temperature":{"current":25.0,"feels_like":25.0,"min":24.0,"max":26.0},"humidity":61,"pressure":1012.0,"#,
            r#""visibility":null,"wind":{"speed":2.0,"degree":350.0},"clouds":0,"#,
            r#""sunrise":"2024-12-15T00:41:00Z","sunset":"2024-12-15T11:25:00Z"}"#
        )
    );
}

#[test]
fn cod_as_string_200_floats_and_rain_3h() {
    let body = data("chittagong-cod-string-floats-rain-3h.json");
    let o = Observation::parse(&body, Units::Metric).expect("parsed");
    assert_eq!(o.pressure, 999.72);
    assert_eq!(o.wind.degree, 27.762);
    assert_eq!(o.humidity, 83);
    assert_eq!(o.rain_1h, None);
    assert_eq!(o.rain_3h, Some(4.5));
    assert_eq!(o.wind_gust, Some(9.8));
    assert_eq!(o.name.as_deref(), Some("Chattogram"));
    let r = o.check(City::Chittagong, &Checks::default()).expect("accepted");
    assert_eq!(r.city, City::Chittagong, "keyed on our name, not the payload's");
    assert_eq!(r.visibility, Some(6000.0));
    assert_eq!(r.weather.condition, "Rain");
}

#[test]
fn units_come_from_the_request() {
    let body = data("rajshahi-kelvin.json");
    let r = normalize(&body, City::Rajshahi, Units::Standard, &Checks::default()).expect("Kelvin request");
    assert_eq!(r.temperature.current, 31.99);
    assert_eq!(r.temperature.feels_like, 36.35);
    assert_eq!(r.temperature.min, 30.85);
    assert_eq!(r.temperature.max, 33.05);
    // The same Kelvin body under a metric request: 305.14 °C is rejected, never stored.
    let (reason, detail) = rejected("rajshahi-kelvin.json", City::Rajshahi, Units::Metric);
    assert_eq!(reason, FailureReason::Implausible);
    assert!(detail.contains("305.14"), "{detail}");
}

#[test]
fn cold_snow_and_calm_wind_are_plausible() {
    let r =
        normalize(&data("rangpur-snow-1h-cold.json"), City::Rangpur, Units::Metric, &Checks::default()).expect("ok");
    assert_eq!(r.temperature.current, -1.5);
    assert_eq!(r.wind.speed, 0.0);
    assert_eq!(r.wind.degree, 360.0);
    let o = Observation::parse(&data("rangpur-snow-1h-cold.json"), Units::Metric).expect("parsed");
    assert_eq!(o.snow_1h, Some(0.12));
}

#[test]
fn a_body_without_main_or_weather_is_an_error_not_zeros() {
    for (file, field) in [
        ("no-main.json", "`main`"),
        ("main-null.json", "`main`"),
        ("no-weather.json", "`weather`"),
        ("weather-empty.json", "`weather[0]`"),
        ("no-dt.json", "`dt`"),
    ] {
        let (reason, detail) = rejected(file, City::Dhaka, Units::Metric);
        assert_eq!(reason, FailureReason::MissingField, "{file}");
        assert!(detail.contains(field), "{file}: {detail}");
    }
}

#[test]
fn error_bodies_map_cod_number_or_string() {
    for (file, reason) in [
        ("err-400-cod-string.json", FailureReason::BadRequest),
        ("err-401-cod-number.json", FailureReason::Unauthorized),
        ("err-404-cod-string.json", FailureReason::NotFound),
        ("err-500-cod-number.json", FailureReason::ServerError),
    ] {
        assert_eq!(rejected(file, City::Dhaka, Units::Metric).0, reason, "{file}");
    }
}

#[test]
fn location_checks() {
    let (reason, detail) = rejected("dhaka-resolved-to-india.json", City::Dhaka, Units::Metric);
    assert_eq!(reason, FailureReason::WrongCountry);
    assert!(detail.contains("IN"), "{detail}");
    assert_eq!(rejected("no-country.json", City::Dhaka, Units::Metric).0, FailureReason::WrongCountry);
    let (reason, detail) = rejected("coxs-bazar-for-chittagong.json", City::Chittagong, Units::Metric);
    assert_eq!(reason, FailureReason::TooFar);
    assert!(detail.contains("105.3 km"), "{detail}");
    // The same Dhaka payload is 0 km from Dhaka and ~190 km from Sylhet.
    assert_eq!(
        rejected("dhaka-metric-integers-no-visibility.json", City::Sylhet, Units::Metric).0,
        FailureReason::TooFar
    );
}

#[test]
fn wrong_types_and_ranges() {
    assert_eq!(rejected("temp-string.json", City::Dhaka, Units::Metric).0, FailureReason::Parse);
    assert_eq!(rejected("array.json", City::Dhaka, Units::Metric).0, FailureReason::Parse);
    assert_eq!(rejected("humidity-150.json", City::Dhaka, Units::Metric).0, FailureReason::OutOfRange);
    assert_eq!(rejected("wind-negative.json", City::Dhaka, Units::Metric).0, FailureReason::OutOfRange);
    for junk in [&b""[..], b"null", b"\"text\"", b"{\"cod\":", b"\xff\xfe"] {
        let e = normalize(junk, City::Dhaka, Units::Metric, &Checks::default()).expect_err("junk");
        assert_eq!(e.reason, FailureReason::Parse);
    }
}

#[test]
fn distance_formula_matches_a_known_value() {
    // Dhaka centre to Chittagong centre: 2.0 °N-S and 1.37 °E-W; about 213 km great-circle.
    let d = millionx_source_weather::owm::distance_km(City::Dhaka.coordinates(), City::Chittagong.coordinates());
    assert!((212.0..215.0).contains(&d), "{d}");
    assert_eq!(millionx_source_weather::owm::distance_km((23.8, 90.4), (23.8, 90.4)), 0.0);
}

#[test]
fn readings_pass_the_pipeline_validator() {
    use millionx_dataflow::record::{Origin, RawLine, StreamKind};
    for (file, city, units) in [
        ("dhaka-metric-integers-no-visibility.json", City::Dhaka, Units::Metric),
        ("chittagong-cod-string-floats-rain-3h.json", City::Chittagong, Units::Metric),
        ("rajshahi-kelvin.json", City::Rajshahi, Units::Standard),
        ("rangpur-snow-1h-cold.json", City::Rangpur, Units::Metric),
    ] {
        let r = normalize(&data(file), city, units, &Checks::default()).expect(file);
        let line = RawLine {
            origin: Origin { stream: StreamKind::Weather, partition: 0, offset: 1 },
            ingest_ns: 0,
            payload: r.to_json(),
        };
        let v = millionx_operators::validate::weather::validate(&line)
            .unwrap_or_else(|e| panic!("{file}: the pipeline rejects our reading: {:?}", e.reason));
        assert_eq!(v.city, city, "{file}");
        assert_eq!(v.meta.event_time.0, r.timestamp.as_millisecond(), "{file}");
        assert_eq!((v.temperature, v.feels_like), (r.temperature.current, r.temperature.feels_like), "{file}");
        assert_eq!((v.humidity, v.clouds), (i64::from(r.humidity), i64::from(r.clouds)), "{file}");
        assert_eq!(v.visibility, r.visibility, "{file}");
        assert_eq!((v.wind_speed, v.wind_degree), (r.wind.speed, r.wind.degree), "{file}");
    }
}
