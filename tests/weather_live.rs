//! The weather fetcher at the user's level: `weather fetch --once --kafka-brokers` against a local replay of
//! OpenWeatherMap (wiremock) and a real Kafka-protocol broker (tansu, `.ci/setup.d/50-kafka.sh`; the Kafka
//! test FAILS when it is missing), a Kafka-fed `run` released by the fetcher's watermark markers, and
//! `run --weather owm` over `millionx gen` files. The payloads are written here, with `dt` near the records'
//! event times, and every output row is checked against them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{command, ndjson};
use millionx_dataflow::City;
use millionx_kafka_testing::Broker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOUR: i64 = 3600;

/// The data sets' first event time, Unix s: three hours before now, on the hour. Live rounds declare the
/// wall clock as the weather watermark and the join keeps readings for 7 days behind it, so the records and
/// readings of a live test are recent, as they are in production.
fn t0() -> i64 {
    (jiff::Timestamp::now().as_second() / HOUR - 3) * HOUR
}
const KEY: &str = "live-test-key";

/// What the replay server answers for one city.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// A metric reading observed at Unix second `dt`.
    Reading { dt: i64, temp: f64, humidity: u8, condition: &'static str },
    /// `main.temp` in Kelvin although `units=metric` was asked for.
    Kelvin { dt: i64 },
    /// 401 Invalid API key.
    Unauthorized,
}

/// A `/data/2.5/weather` metric body for `city` (written for these tests; values plausible for Bangladesh).
fn owm_body(city: City, dt: i64, temp: f64, humidity: u8, condition: &str) -> String {
    let (lat, lon) = city.coordinates();
    serde_json::json!({
        "coord": {"lon": lon, "lat": lat},
        "weather": [{"id": 800, "main": condition, "description": condition.to_lowercase(), "icon": "01d"}],
        "base": "stations",
        "main": {"temp": temp, "feels_like": temp + 1.5, "temp_min": temp - 0.5, "temp_max": temp + 0.5,
                 "pressure": 1012, "humidity": humidity},
        "visibility": 6000,
        "wind": {"speed": 2.1, "deg": 200},
        "clouds": {"all": 20},
        "dt": dt,
        "sys": {"country": "BD", "sunrise": dt - 6 * HOUR, "sunset": dt + 4 * HOUR},
        "timezone": 21600,
        "id": 1,
        "name": format!("{} Division", city.name()),
        "cod": 200
    })
    .to_string()
}

/// A replay server answering each city (matched by its `lat`) as `answers` says; anything else is a 404.
fn replay_server(rt: &tokio::runtime::Runtime, answers: &BTreeMap<City, Answer>) -> MockServer {
    rt.block_on(async {
        let server = MockServer::start().await;
        for (city, answer) in answers {
            let (lat, _) = city.coordinates();
            let response = match *answer {
                Answer::Reading { dt, temp, humidity, condition } => {
                    ResponseTemplate::new(200).set_body_string(owm_body(*city, dt, temp, humidity, condition))
                }
                Answer::Kelvin { dt } => ResponseTemplate::new(200).set_body_string(owm_body(*city, dt, 301.15, 70, "Clear")),
                Answer::Unauthorized => ResponseTemplate::new(401)
                    .set_body_string(r#"{"cod":401, "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info."}"#),
            };
            Mock::given(method("GET"))
                .and(path("/data/2.5/weather"))
                .and(query_param("lat", lat.to_string()))
                .and(query_param("units", "metric"))
                .and(query_param("appid", KEY))
                .respond_with(response)
                .mount(&server)
                .await;
        }
        server
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn with_key(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env("OPENWEATHER_API_KEY", KEY).env_remove("OPENWEATHER_API_KEY_FILE")
}

fn output(args: &[&str]) -> Output {
    with_key(&mut command()).args(args).output().expect("run millionx")
}

fn ok(args: &[&str]) -> Output {
    let out = output(args);
    assert!(
        out.status.success(),
        "millionx {args:?} failed ({}):\nstdout:{}\nstderr:{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn unix_ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap_or_else(|e| panic!("{rfc3339}: {e}")).as_millisecond()
}

/// The weather a record of `city` at `t_ms` must carry (PIPELINE.md: the latest reading at or before the
/// event time, at most 3 h old): `(condition, temperature, humidity)` or `None`.
fn expected_weather(answers: &BTreeMap<City, Answer>, city: City, t_ms: i64) -> Option<(String, f64, u64)> {
    match answers.get(&city)? {
        Answer::Reading { dt, temp, humidity, condition } => {
            let dt_ms = dt * 1000;
            (dt_ms <= t_ms && t_ms - dt_ms <= 3 * HOUR * 1000)
                .then(|| (condition.to_string(), *temp, u64::from(*humidity)))
        }
        _ => None,
    }
}

/// Checks the weather columns of every post and order row; returns (rows, enriched rows).
fn check_rows(out: &Path, answers: &BTreeMap<City, Answer>) -> (usize, usize) {
    let (mut rows, mut enriched) = (0, 0);
    for (table, city_col, time_col) in
        [("SOCIAL_POSTS", "CITY", "POSTED_AT"), ("MARKET_ORDERS", "SHIPPING_CITY", "ORDERED_AT")]
    {
        for row in ndjson(&out.join("snowflake").join(table)) {
            let city = City::from_name(row[city_col].as_str().unwrap()).expect("a known city");
            let t = unix_ms(row[time_col].as_str().unwrap());
            let got = match &row["WEATHER_CONDITION"] {
                Value::Null => None,
                c => Some((
                    c.as_str().unwrap().to_owned(),
                    row["TEMPERATURE"].as_f64().unwrap(),
                    row["HUMIDITY"].as_u64().unwrap(),
                )),
            };
            assert_eq!(got, expected_weather(answers, city, t), "{table} row {row}");
            assert_eq!(row["ENRICHED"].as_bool(), Some(got.is_some()), "{table} row {row}");
            rows += 1;
            enriched += usize::from(got.is_some());
        }
    }
    (rows, enriched)
}

/// Checks the WEATHER_LOGS rows against the served readings (one row per reading city, field by field).
fn check_weather_logs(out: &Path, answers: &BTreeMap<City, Answer>) {
    let logs = ndjson(&out.join("snowflake").join("WEATHER_LOGS"));
    let mut got = BTreeSet::new();
    for row in &logs {
        let city = City::from_name(row["CITY"].as_str().unwrap()).unwrap();
        let Some(Answer::Reading { dt, temp, humidity, condition }) = answers.get(&city) else {
            panic!("a row for {city:?}, which was not served a reading: {row}");
        };
        assert_eq!(unix_ms(row["TIMESTAMP"].as_str().unwrap()), dt * 1000, "{row}");
        assert_eq!(row["TEMPERATURE"].as_f64(), Some(*temp), "{row}");
        assert_eq!(row["FEELS_LIKE"].as_f64(), Some(temp + 1.5), "{row}");
        assert_eq!(row["HUMIDITY"].as_u64(), Some(u64::from(*humidity)), "{row}");
        assert_eq!(row["WEATHER_CONDITION"].as_str(), Some(*condition), "{row}");
        assert_eq!(row["COUNTRY"].as_str(), Some("BD"), "{row}");
        assert_eq!(row["VISIBILITY"].as_f64(), Some(6000.0), "{row}");
        got.insert(city);
    }
    let want: BTreeSet<City> =
        answers.iter().filter(|(_, a)| matches!(a, Answer::Reading { .. })).map(|(c, _)| *c).collect();
    assert_eq!(logs.len(), want.len(), "one WEATHER_LOGS row per served reading");
    assert_eq!(got, want);
}

/// Readings for every city, `dt` spread over the data set's first hours, distinct values per city.
fn all_readings(t0: i64) -> BTreeMap<City, Answer> {
    const CONDITIONS: [&str; 4] = ["Clear", "Haze", "Rain", "Clouds"];
    City::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let answer = Answer::Reading {
                dt: t0 + i as i64 * 900,
                temp: 18.25 + i as f64,
                humidity: 60 + i as u8,
                condition: CONDITIONS[i % CONDITIONS.len()],
            };
            (*c, answer)
        })
        .collect()
}

fn gen_data(dir: &Path, weather_file: bool, t0: i64) {
    let start = jiff::Timestamp::from_second(t0).unwrap().to_string();
    ok(&["gen", "--out", s(dir), "--social", "1200", "--market", "1200", "--hours", "2", "--start", &start]);
    let weather = dir.join("weather.jsonl");
    if weather_file {
        std::fs::write(&weather, "").unwrap();
    } else {
        std::fs::remove_file(&weather).unwrap();
    }
}

/// One message read back: `(partition, offset, key, payload, watermark header)`.
type Msg = (i32, i64, Option<String>, Option<Value>, Option<i64>);

/// Every message of `topic`.
fn read_topic(brokers: &str, topic: &str) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "weather-live-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in &parts {
        let (low, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10)).unwrap();
        ends.insert(*p, (low, high));
        tpl.add_partition_offset(topic, *p, Offset::Offset(low)).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ends.values().any(|(next, end)| next < end) {
        assert!(Instant::now() < deadline, "reading {topic} back timed out: {ends:?}");
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m.unwrap();
        if let Some(e) = ends.get_mut(&m.partition()) {
            e.0 = e.0.max(m.offset() + 1);
        }
        let key = m.key().map(|k| String::from_utf8(k.to_vec()).unwrap());
        let payload = m.payload().map(|p| serde_json::from_slice::<Value>(p).expect("a JSON reading"));
        let marker = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "millionx-watermark")
                .map(|h| std::str::from_utf8(h.value.unwrap()).unwrap().parse::<i64>().expect("Unix ms"))
        });
        out.push((m.partition(), m.offset(), key, payload, marker));
    }
    out
}

#[test]
fn fetch_once_publishes_to_kafka_once_and_its_watermark_releases_a_kafka_fed_run() {
    let broker = Broker::start(2);
    let rt = runtime();
    let t0 = t0();
    let answers = all_readings(t0);
    let server = replay_server(&rt, &answers);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("millionx.toml");
    std::fs::write(
        &config,
        "[input]\nepoch_lines = 300\n[batch]\nmax_records = 300\nmax_age_ms = 200\n\
         [weather]\nspacing_ms = 0\n[weather.retry]\ninitial_backoff_ms = 5\nmax_backoff_ms = 10\n\
         [kafka]\nepoch_messages = 300\nidle_ms = 300\ndelivery_timeout_ms = 5000\n",
    )
    .unwrap();
    let fetch = [
        "weather",
        "fetch",
        "--once",
        "--config",
        s(&config),
        "--base-url",
        &server.uri(),
        "--kafka-brokers",
        &broker.addr,
    ];
    let started_ms = jiff::Timestamp::now().as_millisecond();
    ok(&fetch);
    let finished_ms = jiff::Timestamp::now().as_millisecond();

    // Record by record: one message per city, key = the city, payload = the normalised reading.
    let messages = read_topic(&broker.addr, "context.weather");
    let readings: Vec<_> = messages.iter().filter(|m| m.3.is_some()).collect();
    assert_eq!(readings.len(), 8, "{messages:?}");
    let mut partition_of = BTreeMap::new();
    for (partition, _, key, payload, marker) in &readings {
        let r = payload.as_ref().unwrap();
        let city = City::from_name(r["city"].as_str().unwrap()).unwrap();
        assert_eq!(key.as_deref(), Some(city.name()), "key = city");
        assert_eq!(*marker, None);
        let Answer::Reading { dt, temp, humidity, condition } = answers[&city] else { unreachable!() };
        assert_eq!(unix_ms(r["timestamp"].as_str().unwrap()), dt * 1000, "{r}");
        assert_eq!(r["temperature"]["current"].as_f64(), Some(temp), "{r}");
        assert_eq!(r["temperature"]["min"].as_f64(), Some(temp - 0.5), "{r}");
        assert_eq!(r["humidity"].as_u64(), Some(u64::from(humidity)), "{r}");
        assert_eq!(r["weather"]["condition"].as_str(), Some(condition), "{r}");
        assert_eq!(r["country"].as_str(), Some("BD"));
        assert_eq!(r["visibility"].as_f64(), Some(6000.0));
        assert!(partition_of.insert(city, *partition).is_none(), "{city:?} published twice");
    }
    // After the readings, one watermark marker per partition: the round's start.
    let markers: Vec<_> = messages.iter().filter(|m| m.3.is_none()).collect();
    assert_eq!(markers.iter().map(|m| m.0).collect::<BTreeSet<_>>(), BTreeSet::from([0, 1]), "{markers:?}");
    assert_eq!(markers.len(), 2);
    for (partition, offset, key, _, wm) in &markers {
        let wm = wm.expect("marker header");
        assert!(
            started_ms - 1000 <= wm && wm <= finished_ms,
            "marker {wm} outside the round [{started_ms}, {finished_ms}]"
        );
        assert_eq!(key.as_deref(), Some("watermark"));
        let last_reading = readings.iter().filter(|r| r.0 == *partition).map(|r| r.1).max();
        assert!(last_reading.is_none_or(|o| o < *offset), "the marker follows the partition's readings");
    }

    // The same answers again: nothing new is published (the topic is read back at start), only markers.
    ok(&fetch);
    let again = read_topic(&broker.addr, "context.weather");
    assert_eq!(again.iter().filter(|m| m.3.is_some()).count(), 8, "an unchanged reading was published again");
    assert_eq!(again.iter().filter(|m| m.4.is_some()).count(), 4);

    // A Kafka-fed run (no --exit-at-end): the markers move the weather watermark to the round start, so every
    // record is released while the run is live, enriched as of the published readings.
    let data = tmp.path().join("data");
    gen_data(&data, true, t0);
    ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);
    let out_file = tmp.path().join("out-file");
    ok(&["run", "--embed", "off", "--config", s(&config), "--input", s(&data), "--out", s(&out_file)]);
    let total = ["SOCIAL_POSTS", "MARKET_ORDERS"]
        .iter()
        .map(|t| ndjson(&out_file.join("snowflake").join(t)).len())
        .sum::<usize>();
    assert!(total > 2000, "{total}");
    let out = tmp.path().join("out-kafka");
    let mut child = with_key(&mut command())
        .args(["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out)])
        .args(["--source", "kafka", "--brokers", &broker.addr, "--group", "live"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let written = |o: &Path| {
        ["SOCIAL_POSTS", "MARKET_ORDERS"].iter().map(|t| ndjson(&o.join("snowflake").join(t)).len()).sum::<usize>()
    };
    while written(&out) < total {
        assert!(child.try_wait().unwrap().is_none(), "the live run ended by itself");
        assert!(Instant::now() < deadline, "only {} of {total} records released before the shutdown", written(&out));
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(common::wait_exit(&mut child, Duration::from_secs(30), "SIGINT drain").success());
    let (rows, enriched) = check_rows(&out, &answers);
    assert_eq!(rows, total);
    assert!(enriched > rows / 2, "{enriched} of {rows} enriched");
    check_weather_logs(&out, &answers);
    assert!(
        common::files(&out.join("dlq"))
            .iter()
            .all(|f| { !std::fs::read_to_string(f).unwrap().contains("context.weather") }),
        "a marker or reading became a dead letter"
    );
    drop(server);
}

#[test]
fn run_weather_owm_enriches_from_the_live_feed_and_ends_once_covered() {
    let rt = runtime();
    let t0 = t0();
    let mut answers = all_readings(t0);
    answers.insert(City::Rajshahi, Answer::Kelvin { dt: t0 + 1800 });
    answers.insert(City::Sylhet, Answer::Unauthorized);
    let server = replay_server(&rt, &answers);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen_data(&data, false, t0);
    let config = tmp.path().join("millionx.toml");
    // Sylhet last: after a 401 the fetcher asks for no further city (the key is account-wide).
    std::fs::write(
        &config,
        "[input]\nepoch_lines = 300\n[batch]\nmax_records = 300\nmax_age_ms = 200\n\
         [weather]\nspacing_ms = 0\n\
         cities = [\"Dhaka\", \"Chittagong\", \"Khulna\", \"Rajshahi\", \"Barisal\", \"Rangpur\", \"Mymensingh\", \"Sylhet\"]\n\
         [weather.retry]\ninitial_backoff_ms = 5\nmax_backoff_ms = 10\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut child = with_key(&mut command())
        .args(["run", "--embed", "off", "-w", "2", "--config", s(&config), "--input", s(&data), "--out", s(&out)])
        .args(["--weather", "owm", "--weather-base-url", &server.uri()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_exit(&mut child, Duration::from_secs(120), "run --weather owm");
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "{status}: {stdout}");
    assert!(stdout.contains("weather feed (owm): 1 round(s), 6 reading(s), 2 failed"), "{stdout}");

    let summary = common::summary(&out);
    let feed = &summary["weather_feed"];
    assert_eq!(feed["ended"], "covered", "{feed}");
    assert_eq!(feed["readings"], 6);
    let failures: BTreeSet<(String, String)> = feed["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["city"].as_str().unwrap().to_owned(), f["reason"].as_str().unwrap().to_owned()))
        .collect();
    let want: BTreeSet<(String, String)> = [("Rajshahi", "implausible"), ("Sylhet", "unauthorized")]
        .iter()
        .map(|(c, r)| (c.to_string(), r.to_string()))
        .collect();
    assert_eq!(failures, want);

    // The Kelvin and 401 answers are failures, never readings: no row for them, their records unenriched.
    check_weather_logs(&out, &answers);
    let (rows, enriched) = check_rows(&out, &answers);
    // Nothing lost: as many records as a replay of the same files with their own weather.
    let with_file = tmp.path().join("data-with-weather");
    gen_data(&with_file, true, t0);
    let out_file = tmp.path().join("out-file");
    ok(&["run", "--embed", "off", "--config", s(&config), "--input", s(&with_file), "--out", s(&out_file)]);
    let total = ["SOCIAL_POSTS", "MARKET_ORDERS"]
        .iter()
        .map(|t| ndjson(&out_file.join("snowflake").join(t)).len())
        .sum::<usize>();
    assert_eq!(rows, total);
    assert!(enriched > rows / 3 && enriched < rows, "{enriched} of {rows} enriched");
    // No weather dead letters: the fetcher's lines all passed validation.
    let weather_dlq = ndjson(&out.join("dlq")).into_iter().filter(|d| d.to_string().contains("weather")).count();
    assert_eq!(weather_dlq, 0);
    drop(server);
}

/// One HTTP GET over a plain TCP connection; the response body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

#[test]
fn fetch_every_serves_its_counters_on_metrics() {
    let rt = runtime();
    let t0 = t0();
    let mut answers = all_readings(t0);
    answers.insert(City::Khulna, Answer::Kelvin { dt: t0 });
    let server = replay_server(&rt, &answers);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("millionx.toml");
    std::fs::write(&config, "[weather]\nspacing_ms = 0\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let out_file = tmp.path().join("weather.jsonl");
    let mut child = with_key(&mut command())
        .args(["weather", "fetch", "--every", "1h", "--config", s(&config), "--base-url", &server.uri()])
        .args(["--out", s(&out_file), "--metrics-listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        assert!(child.try_wait().unwrap().is_none(), "fetch --every ended by itself");
        assert!(Instant::now() < deadline, "no complete round on /metrics within 30 s");
        if let Some(body) = http_get(&addr, "/metrics") {
            if body.contains(r#"millionx_weather_fetch_total{reason="none",result="ok"} 7"#) {
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(scrape.contains(r#"millionx_weather_fetch_total{reason="implausible",result="error"} 1"#), "{scrape}");
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(
        common::wait_exit(&mut child, Duration::from_secs(10), "SIGTERM").success(),
        "SIGTERM ends the loop cleanly"
    );
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().lines().count(), 7);
    drop(server);
}
