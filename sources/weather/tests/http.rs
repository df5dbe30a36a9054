//! The real reqwest transport against local servers: wiremock replaying the shared fixtures and scripted
//! answers (429 then 200, slow answers past the client timeout), and raw TCP listeners that drop the
//! connection or refuse it. Real time with short delays (timeout 300 ms, backoff from 10 ms).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::scripted::metric_body;
use millionx_dataflow::config::RetryConfig;
use millionx_dataflow::City;
use millionx_source_weather::metrics::FetchResult;
use millionx_source_weather::{ApiKey, FailureReason, Fetcher, ReqwestTransport, Round, Status, WeatherConfig};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const ENDPOINT: &str = "/data/2.5/weather";

fn config(base_url: String, cities: &[City]) -> WeatherConfig {
    WeatherConfig {
        base_url,
        cities: cities.to_vec(),
        timeout_ms: 300,
        connect_timeout_ms: 300,
        spacing_ms: 5,
        retry: RetryConfig { initial_backoff_ms: 10, max_backoff_ms: 40, ..WeatherConfig::DEFAULT_RETRY },
        ..WeatherConfig::default()
    }
}

fn fetcher(config: WeatherConfig) -> Fetcher<ReqwestTransport> {
    let transport = ReqwestTransport::new(&config).expect("client");
    Fetcher::new(config, ApiKey::new("test-key").expect("key"), transport).expect("valid").with_jitter_seed(3)
}

/// Matches the lat/lon query of `city`.
fn for_city(city: City) -> MockBuilder {
    let (lat, lon) = city.coordinates();
    Mock::given(method("GET"))
        .and(path(ENDPOINT))
        .and(query_param("lat", lat.to_string()))
        .and(query_param("lon", lon.to_string()))
}

fn json(status: u16, body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "application/json; charset=utf-8")
}

/// `city` answers `first` once, then a good metric body once.
async fn first_then_ok(server: &MockServer, city: City, first: ResponseTemplate) {
    for_city(city).respond_with(first).up_to_n_times(1).with_priority(1).expect(1).mount(server).await;
    for_city(city)
        .respond_with(json(200, metric_body(city, 1_717_299_000)))
        .with_priority(2)
        .expect(1)
        .mount(server)
        .await;
}

fn status_of(round: &Round, city: City) -> (&Status, u32) {
    let o = round.outcomes.iter().find(|o| o.city == city).expect("outcome");
    (&o.status, o.attempts)
}

fn failed_reason(round: &Round, city: City) -> FailureReason {
    match status_of(round, city).0 {
        Status::Failed(e) => e.reason,
        other => panic!("{}: {other:?}", city.name()),
    }
}

#[tokio::test]
async fn replays_the_shared_fixtures_over_http() {
    let Some(dir) = common::shared_fixture_dir("owm") else {
        return;
    };
    let fixture = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let server = MockServer::start().await;
    for_city(City::Dhaka).respond_with(json(200, fixture("01-dhaka-metric-haze.json"))).expect(1).mount(&server).await;
    for_city(City::Sylhet)
        .respond_with(json(200, fixture("03-sylhet-division-no-sys-type.json")))
        .expect(1)
        .mount(&server)
        .await;
    for_city(City::Khulna)
        .respond_with(json(200, fixture("04-khulna-kelvin-gust-sealevel.json")))
        .expect(1)
        .mount(&server)
        .await;
    for_city(City::Chittagong)
        .respond_with(json(200, fixture("09-tver-rain-1h-metric.json")))
        .expect(1)
        .mount(&server)
        .await;
    for_city(City::Mymensingh)
        .respond_with(json(401, fixture("err-401-invalid-api-key.json")))
        .expect(1)
        .mount(&server)
        .await;
    for_city(City::Barisal)
        .respond_with(json(404, fixture("err-404-city-not-found-cod-string.json")))
        .expect(1)
        .mount(&server)
        .await;
    for_city(City::Rangpur)
        .respond_with(json(429, fixture("err-429-rate-limited.json")).insert_header("Retry-After", "0"))
        .expect(4)
        .mount(&server)
        .await;
    for_city(City::Rajshahi)
        .respond_with(json(200, fixture("06-latlon-dhaka-returns-dhaka-district-kelvin.json")))
        .expect(1)
        .mount(&server)
        .await;

    let mut f = fetcher(config(server.uri(), &City::ALL));
    let round = f.round().await;

    assert_eq!(round.readings.len(), 1, "{:?}", round.outcomes);
    let dhaka = &round.readings[0];
    assert_eq!((dhaka.city, dhaka.temperature.current, dhaka.temperature.feels_like), (City::Dhaka, 22.99, 22.62));
    assert_eq!(dhaka.timestamp.to_string(), "2022-02-08T07:07:24Z");
    assert_eq!((dhaka.humidity, dhaka.pressure, dhaka.visibility), (49, 1015.0, Some(3500.0)));
    // Sylhet Division's centroid is 48 km from Sylhet; Kelvin answered to a metric request; Tver for Chittagong;
    // Dhaka District's coordinates are 190 km from Rajshahi. The 401 comes last: it ends the round.
    assert_eq!(failed_reason(&round, City::Sylhet), FailureReason::TooFar);
    assert_eq!(failed_reason(&round, City::Khulna), FailureReason::Implausible);
    assert_eq!(failed_reason(&round, City::Chittagong), FailureReason::WrongCountry);
    assert_eq!(failed_reason(&round, City::Rajshahi), FailureReason::TooFar);
    assert_eq!(failed_reason(&round, City::Mymensingh), FailureReason::Unauthorized);
    assert_eq!(failed_reason(&round, City::Barisal), FailureReason::NotFound);
    assert_eq!(failed_reason(&round, City::Rangpur), FailureReason::RateLimited);
    assert_eq!(status_of(&round, City::Rangpur).1, 4);
    let c = f.counters();
    assert_eq!(c.get(FetchResult::Retried, "rate_limited"), 3);
    assert_eq!(c.get(FetchResult::Error, "unauthorized"), 1);
    assert_eq!(c.total(FetchResult::Error), 7);
    assert_eq!(c.total(FetchResult::Retried), 3, "nothing but the 429 was retried");

    for request in server.received_requests().await.expect("recording on") {
        let q: Vec<(String, String)> =
            request.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert!(q.contains(&("units".into(), "metric".into())), "{q:?}");
        assert!(q.contains(&("appid".into(), "test-key".into())), "{q:?}");
        assert!(!q.iter().any(|(k, _)| k == "q"), "never query by name: {q:?}");
    }
    // Mock expectations (exact request counts) are verified when the server drops.
}

#[tokio::test]
async fn too_many_requests_then_ok() {
    let server = MockServer::start().await;
    let first = json(429, r#"{"cod":429,"message":"slow down"}"#).insert_header("Retry-After", "0");
    first_then_ok(&server, City::Sylhet, first).await;
    let mut f = fetcher(config(server.uri(), &[City::Sylhet]));
    let round = f.round().await;
    assert_eq!(status_of(&round, City::Sylhet), (&Status::Published, 2));
    assert_eq!(round.readings[0].city, City::Sylhet);
    assert_eq!(f.counters().get(FetchResult::Retried, "rate_limited"), 1);
    assert_eq!(f.counters().get(FetchResult::Ok, "none"), 1);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let server = MockServer::start().await;
    let slow = Duration::from_secs(2);
    // Dhaka is always slower than the 300 ms client timeout; Sylhet only the first time.
    for_city(City::Dhaka)
        .respond_with(json(200, metric_body(City::Dhaka, 1_717_299_000)).set_delay(slow))
        .expect(4)
        .mount(&server)
        .await;
    first_then_ok(&server, City::Sylhet, json(200, metric_body(City::Sylhet, 1_717_299_000)).set_delay(slow)).await;
    let mut f = fetcher(config(server.uri(), &[City::Dhaka, City::Sylhet]));
    let round = f.round().await;
    assert_eq!(failed_reason(&round, City::Dhaka), FailureReason::Timeout);
    assert_eq!(status_of(&round, City::Dhaka).1, 4);
    assert_eq!(status_of(&round, City::Sylhet), (&Status::Published, 2));
    assert_eq!(f.counters().get(FetchResult::Retried, "timeout"), 4);
    assert_eq!(f.counters().get(FetchResult::Error, "timeout"), 1);
}

#[tokio::test]
async fn dropped_connections_are_retried_then_reported() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let server = tokio::spawn(async move {
        // Accept, read the request head, close without answering.
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            drop(sock);
        }
    });
    let mut f = fetcher(config(format!("http://{addr}"), &[City::Khulna]));
    let round = f.round().await;
    server.abort();
    let (status, attempts) = status_of(&round, City::Khulna);
    match status {
        Status::Failed(e) => {
            assert_eq!(e.reason, FailureReason::Transport, "{e}");
            assert!(!e.detail.contains("test-key") && !e.detail.contains("appid"), "no key or URL in errors: {e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(attempts, 4);
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn refused_connections_are_connect_failures() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut f = fetcher(config(format!("http://{addr}"), &[City::Barisal]));
    let round = f.round().await;
    assert_eq!(failed_reason(&round, City::Barisal), FailureReason::Connect);
    assert_eq!(f.counters().get(FetchResult::Retried, "connect"), 3);
}

#[tokio::test]
async fn a_200_without_main_is_an_error_and_not_retried() {
    let server = MockServer::start().await;
    let body = metric_body(City::Rangpur, 1_717_299_000);
    let start = body.find("\"main\":{").expect("main");
    let end = body[start..].find('}').expect("end") + start + 2;
    let without_main = format!("{}{}", &body[..start], &body[end..]);
    assert!(!without_main.contains("\"main\":{") && serde_json::from_str::<serde_json::Value>(&without_main).is_ok());
    for_city(City::Rangpur).respond_with(json(200, without_main)).expect(1).mount(&server).await;
    let mut f = fetcher(config(server.uri(), &[City::Rangpur]));
    let round = f.round().await;
    assert_eq!(failed_reason(&round, City::Rangpur), FailureReason::MissingField);
    assert!(round.readings.is_empty());
}

#[tokio::test]
async fn city_ids_are_sent_as_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(ENDPOINT))
        .and(query_param("id", "1336135"))
        .and(query_param("units", "metric"))
        .respond_with(json(200, metric_body(City::Khulna, 1_717_299_000)))
        .expect(1)
        .mount(&server)
        .await;
    let mut c = config(server.uri(), &[City::Khulna]);
    c.city_ids.insert("Khulna".into(), 1336135);
    let mut f = fetcher(c);
    let round = f.round().await;
    assert_eq!(status_of(&round, City::Khulna), (&Status::Published, 1));
}
