//! Rounds on a mocked clock (tokio `start_paused`): request spacing, backoff, Retry-After, which failures
//! are retried, de-duplication, the watermark, counters and sinks. No real sleeps: the paused clock only
//! moves when every task waits on a timer, so the call times below are exact.

mod common;

use std::cell::Cell;
use std::time::Duration;

use common::scripted::{ok_reply, status_reply, Scripted};
use jiff::Timestamp;
use millionx_dataflow::City;
use millionx_source_weather::metrics::FetchResult;
use millionx_source_weather::schedule::{run_schedule, Schedule};
use millionx_source_weather::sink::last_published_in;
use millionx_source_weather::{
    ApiKey, FailureReason, Fetcher, JsonLinesSink, ReadingSink, Status, WeatherConfig, WeatherError,
};
use tokio::time::Instant;

thread_local! {
    static WALL: Cell<i64> = const { Cell::new(1_717_300_000) };
}

/// The test's wall clock (round starts), driven through `WALL`.
fn wall() -> Timestamp {
    WALL.with(|w| Timestamp::from_second(w.get()).expect("valid"))
}

fn set_wall(s: i64) {
    WALL.with(|w| w.set(s));
}

fn config(cities: &[City]) -> WeatherConfig {
    WeatherConfig { base_url: "http://127.0.0.1:9".into(), cities: cities.to_vec(), ..WeatherConfig::default() }
}

fn fetcher(config: WeatherConfig, t: &Scripted) -> Fetcher<Scripted> {
    Fetcher::new(config, ApiKey::new("test-key").expect("key"), t.clone())
        .expect("valid config")
        .with_wall_clock(wall)
        .with_jitter_seed(7)
}

const DT: i64 = 1_717_299_000;

#[tokio::test(start_paused = true)]
async fn requests_are_spaced_1100_ms_apart() {
    let t = Scripted::default();
    for c in City::ALL {
        t.push(ok_reply(c, DT));
    }
    let mut f = fetcher(config(&City::ALL), &t);
    let t0 = Instant::now();
    let round = f.round().await;
    assert_eq!(t.offsets_ms(t0), vec![0, 1100, 2200, 3300, 4400, 5500, 6600, 7700]);
    assert_eq!(round.readings.len(), 8);
    assert!(round.all_ok());
    let cities: Vec<City> = round.readings.iter().map(|r| r.city).collect();
    assert_eq!(cities, City::ALL.to_vec());
    // Every query is by coordinates with metric units, never by name.
    for (_, url) in t.calls() {
        let q: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["lat", "lon", "units", "appid"]);
        assert_eq!(q[2].1, "metric");
    }
    assert_eq!(f.counters().get(FetchResult::Ok, "none"), 8);
    assert_eq!(round.watermark, wall());
}

#[tokio::test(start_paused = true)]
async fn a_second_round_waits_for_the_spacing_too() {
    let t = Scripted::default();
    t.push(ok_reply(City::Dhaka, DT));
    t.push(ok_reply(City::Dhaka, DT + 600));
    let mut f = fetcher(config(&[City::Dhaka]), &t);
    let t0 = Instant::now();
    f.round().await;
    f.round().await;
    assert_eq!(t.offsets_ms(t0), vec![0, 1100]);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_then_ok_honours_retry_after() {
    let t = Scripted::default();
    t.push(status_reply(429, Some(Duration::from_secs(7))));
    t.push(ok_reply(City::Dhaka, DT));
    t.push(ok_reply(City::Sylhet, DT));
    let mut f = fetcher(config(&[City::Dhaka, City::Sylhet]), &t);
    let t0 = Instant::now();
    let round = f.round().await;
    // Retry-After (7 s) replaces the 1–2 s backoff; the next city still keeps 1.1 s from the retry.
    assert_eq!(t.offsets_ms(t0), vec![0, 7000, 8100]);
    assert_eq!(round.outcomes[0].attempts, 2);
    assert_eq!(round.outcomes[0].status, Status::Published);
    assert_eq!(round.readings.len(), 2);
    let c = f.counters();
    assert_eq!(c.get(FetchResult::Retried, "rate_limited"), 1);
    assert_eq!(c.get(FetchResult::Ok, "none"), 2);
    assert_eq!(c.total(FetchResult::Error), 0);
}

#[tokio::test(start_paused = true)]
async fn jittered_exponential_backoff_between_retries() {
    let t = Scripted::default();
    for _ in 0..3 {
        t.push(Err(WeatherError::new(FailureReason::Timeout, "scripted timeout")));
    }
    t.push(ok_reply(City::Khulna, DT));
    let mut f = fetcher(config(&[City::Khulna]), &t);
    let t0 = Instant::now();
    let round = f.round().await;
    let at = t.offsets_ms(t0);
    assert_eq!(at.len(), 4);
    let gaps: Vec<u128> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays 1 s, 2 s, 4 s (factor 2 from retry.initial_backoff_ms = 1000) plus jitter in [0, delay).
    assert!((1100..2000).contains(&gaps[0]), "{gaps:?}");
    assert!((2000..4000).contains(&gaps[1]), "{gaps:?}");
    assert!((4000..8000).contains(&gaps[2]), "{gaps:?}");
    assert!(gaps[1] != 2000 || gaps[2] != 4000, "jitter applied: {gaps:?}");
    assert_eq!(round.outcomes[0].status, Status::Published);
    assert_eq!(f.counters().get(FetchResult::Retried, "timeout"), 3);
}

#[tokio::test(start_paused = true)]
async fn server_errors_give_up_after_three_retries() {
    let t = Scripted::default();
    for _ in 0..4 {
        t.push(status_reply(503, None));
    }
    t.push(ok_reply(City::Barisal, DT));
    let mut f = fetcher(config(&[City::Rangpur, City::Barisal]), &t);
    let round = f.round().await;
    assert_eq!(round.outcomes[0].attempts, 4);
    match &round.outcomes[0].status {
        Status::Failed(e) => {
            assert_eq!((e.reason, e.detail.as_str()), (FailureReason::ServerError, "HTTP 503: scripted"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(round.outcomes[1].status, Status::Published);
    assert!(!round.all_ok());
    assert_eq!(round.failures().map(|(c, _)| c).collect::<Vec<_>>(), vec![City::Rangpur]);
    let c = f.counters();
    assert_eq!(c.get(FetchResult::Retried, "server_error"), 3);
    assert_eq!(c.get(FetchResult::Error, "server_error"), 1);
    // The watermark is declared even though a city failed (the join's 3 h limit covers the gap).
    assert_eq!(round.watermark, wall());
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_not_retried() {
    for (status, reason) in [(404, "not_found"), (400, "bad_request"), (403, "http_status")] {
        let t = Scripted::default();
        t.push(status_reply(status, None));
        t.push(ok_reply(City::Sylhet, DT));
        let mut f = fetcher(config(&[City::Dhaka, City::Sylhet]), &t);
        let t0 = Instant::now();
        let round = f.round().await;
        assert_eq!(t.offsets_ms(t0), vec![0, 1100], "{status}: one attempt, then the next city");
        assert_eq!(round.outcomes[0].attempts, 1);
        assert_eq!(f.counters().get(FetchResult::Error, reason), 1, "{status}");
        assert_eq!(f.counters().total(FetchResult::Retried), 0, "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_ends_the_round_without_more_requests() {
    let t = Scripted::default();
    t.push(status_reply(401, None));
    let mut f = fetcher(config(&[City::Dhaka, City::Sylhet, City::Khulna]), &t);
    let round = f.round().await;
    assert_eq!(t.calls().len(), 1, "one request, not retried, not repeated for the other cities");
    let attempts: Vec<u32> = round.outcomes.iter().map(|o| o.attempts).collect();
    assert_eq!(attempts, vec![1, 0, 0]);
    assert_eq!(round.failures().count(), 3);
    assert!(round.failures().all(|(_, e)| e.reason == FailureReason::Unauthorized));
    assert_eq!(f.counters().get(FetchResult::Error, "unauthorized"), 3);
    assert_eq!(f.counters().total(FetchResult::Retried), 0);
}

#[tokio::test(start_paused = true)]
async fn payload_rejections_are_not_retried() {
    let t = Scripted::default();
    let kelvin = common::scripted::metric_body(City::Dhaka, DT).replace("\"temp\":29.4", "\"temp\":302.55");
    t.push(Ok(millionx_source_weather::client::HttpReply {
        status: 200,
        retry_after: None,
        body: kelvin.into_bytes(),
    }));
    let mut f = fetcher(config(&[City::Dhaka]), &t);
    let round = f.round().await;
    assert_eq!(t.calls().len(), 1);
    assert!(round.readings.is_empty());
    assert_eq!(f.counters().get(FetchResult::Error, "implausible"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_ends_the_city() {
    let t = Scripted::default();
    t.push(status_reply(429, Some(Duration::from_secs(3600))));
    let mut f = fetcher(config(&[City::Dhaka]), &t);
    let round = f.round().await;
    assert_eq!(round.outcomes[0].attempts, 1);
    assert_eq!(f.counters().get(FetchResult::Error, "rate_limited"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_last_good_reading_is_never_republished_and_the_watermark_holds() {
    let t = Scripted::default();
    let mut f = fetcher(config(&[City::Dhaka]), &t);
    set_wall(DT + 100);
    t.push(ok_reply(City::Dhaka, DT));
    let r1 = f.round().await;
    assert_eq!(r1.readings.len(), 1);
    assert_eq!(r1.watermark.as_second(), DT + 100);

    // Same observation again (OWM had nothing newer): not published.
    set_wall(DT + 3700);
    t.push(ok_reply(City::Dhaka, DT));
    let r2 = f.round().await;
    assert!(r2.readings.is_empty());
    assert_eq!(r2.outcomes[0].status, Status::Unchanged);
    assert_eq!(r2.watermark.as_second(), DT + 3700);

    // Newer than the last published one but older than the declared watermark: late, dropped.
    set_wall(DT + 7300);
    t.push(ok_reply(City::Dhaka, DT + 3000));
    let r3 = f.round().await;
    assert_eq!(r3.outcomes[0].status, Status::Late);

    // A 429 now: nothing re-published; the previous reading stays the last one.
    set_wall(DT + 10_900);
    t.push(status_reply(429, Some(Duration::from_secs(1))));
    t.push(status_reply(429, Some(Duration::from_secs(1))));
    t.push(status_reply(429, Some(Duration::from_secs(1))));
    t.push(status_reply(429, Some(Duration::from_secs(1))));
    let r4 = f.round().await;
    assert!(r4.readings.is_empty());
    assert!(!r4.all_ok());

    // A wall clock that steps back never moves the watermark back.
    set_wall(DT + 50);
    t.push(ok_reply(City::Dhaka, DT + 11_000));
    let r5 = f.round().await;
    assert_eq!(r5.readings.len(), 1);
    assert_eq!(r5.watermark.as_second(), DT + 10_900);
    assert_eq!(f.last_published().get(&City::Dhaka).map(|t| t.as_second()), Some(DT + 11_000));

    let c = f.counters();
    assert_eq!(c.get(FetchResult::Ok, "none"), 2);
    assert_eq!(c.get(FetchResult::Skipped, "unchanged"), 1);
    assert_eq!(c.get(FetchResult::Skipped, "late"), 1);
    assert_eq!(c.get(FetchResult::Error, "rate_limited"), 1);
    assert_eq!(c.get(FetchResult::Retried, "rate_limited"), 3);
}

/// Records what a sink was given.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
}

impl ReadingSink for Recorder {
    fn publish(
        &mut self,
        readings: &[millionx_source_weather::Reading],
    ) -> Result<(), millionx_source_weather::sink::SinkError> {
        self.events.push(format!("publish {}", readings.iter().map(|r| r.city.name()).collect::<Vec<_>>().join(",")));
        Ok(())
    }
    fn round_complete(&mut self, watermark: Timestamp) -> Result<(), millionx_source_weather::sink::SinkError> {
        self.events.push(format!("watermark {watermark}"));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn every_schedule_runs_rounds_until_shutdown() {
    let t = Scripted::default();
    for i in 0..3 {
        t.push(ok_reply(City::Dhaka, DT + i * 3600));
    }
    let mut f = fetcher(config(&[City::Dhaka]), &t);
    let mut sink = Recorder::default();
    let t0 = Instant::now();
    // Shut down 2.5 h in: rounds at 0, 1 h and 2 h.
    let summary = run_schedule(
        &mut f,
        &mut sink,
        Schedule::Every(Duration::from_secs(3600)),
        tokio::time::sleep(Duration::from_secs(9000)),
    )
    .await
    .expect("sink ok");
    assert_eq!(summary.rounds, 3);
    assert!(summary.last_round_ok);
    assert_eq!(t.offsets_ms(t0), vec![0, 3_600_000, 7_200_000]);
    let wm = wall().to_string();
    assert_eq!(
        sink.events,
        vec![
            "publish Dhaka".to_string(),
            format!("watermark {wm}"),
            "publish Dhaka".into(),
            format!("watermark {wm}"),
            "publish Dhaka".into(),
            format!("watermark {wm}")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn json_lines_file_round_trip_seeds_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weather.jsonl");
    let cities = [City::Dhaka, City::Mymensingh];

    let t = Scripted::default();
    t.push(ok_reply(City::Dhaka, DT));
    t.push(ok_reply(City::Mymensingh, DT + 60));
    let mut f = fetcher(config(&cities), &t);
    let mut sink = JsonLinesSink::append(&path).expect("open");
    let s = run_schedule(&mut f, &mut sink, Schedule::Once, std::future::pending()).await.expect("run");
    assert_eq!((s.rounds, s.last_round_ok), (1, true));
    drop(sink);
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["city"], "Mymensingh");
    assert_eq!(lines[1]["timestamp"], "2024-06-02T03:31:00Z");
    assert_eq!(lines[1]["temperature"]["feels_like"], 33.1);

    // A new process (CronJob) seeded from the file: Dhaka unchanged is skipped, Mymensingh's newer one appended.
    let last = last_published_in(&path).expect("scan");
    assert_eq!(last.get(&City::Dhaka).map(|t| t.as_second()), Some(DT));
    let t2 = Scripted::default();
    t2.push(ok_reply(City::Dhaka, DT));
    t2.push(ok_reply(City::Mymensingh, DT + 3600));
    let mut f2 = fetcher(config(&cities), &t2).with_last_published(last);
    let mut sink2 = JsonLinesSink::append(&path).expect("reopen");
    run_schedule(&mut f2, &mut sink2, Schedule::Once, std::future::pending()).await.expect("run");
    drop(sink2);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().nth(2).is_some_and(|l| l.contains("\"Mymensingh\"") && l.contains("2024-06-02T04:30:00Z")));
}

#[test]
fn channel_sink_sends_readings_then_the_watermark() {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut sink = millionx_source_weather::ChannelSink::new(tx);
    let reading = millionx_source_weather::normalize(
        common::scripted::metric_body(City::Rajshahi, DT).as_bytes(),
        City::Rajshahi,
        millionx_source_weather::Units::Metric,
        &millionx_source_weather::Checks::default(),
    )
    .expect("reading");
    sink.publish(&[]).expect("empty publish sends nothing");
    sink.publish(std::slice::from_ref(&reading)).expect("send");
    let wm = Timestamp::from_second(DT + 100).expect("ts");
    sink.round_complete(wm).expect("send");
    use millionx_source_weather::WeatherEvent;
    assert_eq!(rx.recv().expect("readings"), WeatherEvent::Readings(vec![reading]));
    assert_eq!(rx.recv().expect("watermark"), WeatherEvent::Watermark(wm));
    drop(rx);
    assert!(sink.round_complete(wm).is_err(), "a closed pipeline is an error");
}
