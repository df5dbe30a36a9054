//! `weather fetch` / `weather normalize` as the binary will call them: argument parsing, exit codes, and a
//! whole `fetch --once --config ... --out FILE` against a local server. The API key is read from the process
//! environment, so everything that sets it lives in one test function.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use common::parse;
use common::scripted::metric_body;
use millionx_dataflow::City;
use millionx_source_weather::cli::{FetchArgs, NormalizeArgs, WeatherCommand};
use millionx_source_weather::sink::OutTarget;
use millionx_source_weather::{run_fetch, run_normalize, Units};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn arguments() {
    match parse(&["millionx", "weather", "fetch", "--once", "--out", "w.jsonl", "--base-url", "http://127.0.0.1:1"]) {
        Ok(WeatherCommand::Fetch(FetchArgs {
            once: true,
            every: None,
            out,
            base_url: Some(u),
            config: None,
            kafka_brokers: None,
            ..
        })) => {
            assert_eq!(out, Some(OutTarget::File("w.jsonl".into())));
            assert_eq!(u, "http://127.0.0.1:1");
        }
        other => panic!("{other:?}"),
    }
    match parse(&["millionx", "weather", "fetch", "--every", "1h"]) {
        Ok(WeatherCommand::Fetch(a)) => {
            assert_eq!(a.every, Some(std::time::Duration::from_secs(3600)));
            assert_eq!(a.out, None, "stdout by default");
        }
        other => panic!("{other:?}"),
    }
    match parse(&["millionx", "weather", "fetch", "--once", "--kafka-brokers", "127.0.0.1:9092", "--topic", "w.t"]) {
        Ok(WeatherCommand::Fetch(a)) => {
            assert_eq!(a.kafka_brokers.as_deref(), Some("127.0.0.1:9092"));
            assert_eq!(a.topic.as_deref(), Some("w.t"));
        }
        other => panic!("{other:?}"),
    }
    let both = ["millionx", "weather", "fetch", "--once", "--out", "w.jsonl", "--kafka-brokers", "127.0.0.1:9092"];
    assert!(parse(&both).expect_err("one output").contains("cannot be used with"));
    assert!(parse(&["millionx", "weather", "fetch", "--once", "--topic", "t"]).is_err(), "--topic needs Kafka");
    assert!(parse(&["millionx", "weather", "fetch"]).is_err(), "--once or --every is required");
    assert!(parse(&["millionx", "weather", "fetch", "--once", "--every", "1h"]).is_err());
    let short = parse(&["millionx", "weather", "fetch", "--every", "10s"]).expect_err("too short");
    assert!(short.contains("at least 60s"), "{short}");
    assert!(parse(&["millionx", "weather", "fetch", "--every", "often"]).is_err());

    match parse(&["millionx", "weather", "normalize", "--city", "Sylhet", "--units", "standard", "x.json"]) {
        Ok(WeatherCommand::Normalize(NormalizeArgs { city, units, file })) => {
            assert_eq!((city, units, file), (City::Sylhet, Units::Standard, PathBuf::from("x.json")));
        }
        other => panic!("{other:?}"),
    }
    let bad_city =
        parse(&["millionx", "weather", "normalize", "--city", "sylhet", "--units", "metric", "x"]).expect_err("case");
    assert!(bad_city.contains("expected one of Dhaka"), "{bad_city}");
    assert!(parse(&["millionx", "weather", "normalize", "--city", "Dhaka", "--units", "imperial", "x"]).is_err());
}

#[test]
fn normalize_exit_codes() {
    let run = |city: City, units: Units, file: &str| run_normalize(NormalizeArgs { city, units, file: data(file) });
    assert_eq!(run(City::Dhaka, Units::Metric, "dhaka-metric-integers-no-visibility.json"), ExitCode::from(0));
    assert_eq!(run(City::Rajshahi, Units::Standard, "rajshahi-kelvin.json"), ExitCode::from(0));
    assert_eq!(run(City::Rajshahi, Units::Metric, "rajshahi-kelvin.json"), ExitCode::from(1));
    assert_eq!(run(City::Dhaka, Units::Metric, "err-404-cod-string.json"), ExitCode::from(1));
    assert_eq!(run(City::Dhaka, Units::Metric, "no-such-file.json"), ExitCode::from(2));
}

#[test]
fn fetch_once_end_to_end_and_exit_codes() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        for city in City::ALL {
            let (lat, _) = city.coordinates();
            Mock::given(method("GET"))
                .and(path("/data/2.5/weather"))
                .and(wiremock::matchers::query_param("lat", lat.to_string()))
                .and(wiremock::matchers::query_param("appid", "cli-test-key"))
                .respond_with(ResponseTemplate::new(200).set_body_string(metric_body(city, 1_717_299_000)))
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).set_body_string(r#"{"cod":401,"message":"Invalid API key."}"#))
            .with_priority(10)
            .mount(&server)
            .await;
        server
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("millionx.toml");
    std::fs::write(
        &config,
        "[weather]\nspacing_ms = 5\ntimeout_ms = 2000\n[weather.retry]\ninitial_backoff_ms = 5\nmax_backoff_ms = 10\n",
    )
    .expect("write config");
    let out = dir.path().join("weather.jsonl");
    let args = |base: &str| FetchArgs {
        once: true,
        every: None,
        out: Some(OutTarget::File(out.clone())),
        base_url: Some(base.to_owned()),
        config: Some(config.clone()),
        kafka_brokers: None,
        topic: None,
        metrics: Default::default(),
    };

    std::env::remove_var("OPENWEATHER_API_KEY_FILE");
    std::env::remove_var("OPENWEATHER_API_KEY");
    assert_eq!(run_fetch(args(&server.uri())), ExitCode::from(2), "no API key");

    std::env::set_var("OPENWEATHER_API_KEY", "cli-test-key");
    assert_eq!(run_fetch(args("http://weather.example.org")), ExitCode::from(2), "plain http off loopback");
    let mut missing_config = args(&server.uri());
    missing_config.config = Some(dir.path().join("nope.toml"));
    assert_eq!(run_fetch(missing_config), ExitCode::from(2));

    assert_eq!(run_fetch(args(&server.uri())), ExitCode::from(0));
    let text = std::fs::read_to_string(&out).expect("out file");
    let cities: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["city"].as_str().expect("city").to_owned())
        .collect();
    assert_eq!(cities, City::ALL.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>());

    // The same answers an hour later: nothing new is appended, and that is a success.
    assert_eq!(run_fetch(args(&server.uri())), ExitCode::from(0));
    assert_eq!(std::fs::read_to_string(&out).expect("out").lines().count(), 8);

    // A wrong key: 401 for every city, not retried, exit 1.
    std::env::set_var("OPENWEATHER_API_KEY", "wrong-key");
    assert_eq!(run_fetch(args(&server.uri())), ExitCode::from(1));
    drop(server);
}
