//! The `/metrics` endpoint over real loopback HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use millionx_metrics::{start, Metrics, MetricsConfig, MetricsError, MetricsServer};

/// Sends one HTTP/1.0 request and returns (status code, headers, body).
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    assert!(s.set_read_timeout(Some(Duration::from_secs(5))).is_ok());
    assert!(write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_ok());
    let mut raw = String::new();
    assert!(s.read_to_string(&mut raw).is_ok());
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn serves_the_exposition_on_metrics() {
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let server = match MetricsServer::start(loopback_any(), metrics.clone()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    metrics.records_in("market", 77);

    let (status, head, body) = request(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    assert!(body.contains("millionx_pipeline_records_in_total{stream=\"market\"} 77"), "{body}");

    // Values move between scrapes.
    metrics.records_in("market", 3);
    let (_, _, body) = request(addr, "GET", "/metrics?x=1");
    assert!(body.contains("millionx_pipeline_records_in_total{stream=\"market\"} 80"), "{body}");

    let (status, _, body) = request(addr, "HEAD", "/metrics");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    let (status, _, _) = request(addr, "GET", "/");
    assert_eq!(status, 404);
    let (status, head, _) = request(addr, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");

    server.shutdown();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "still listening after shutdown");
}

#[test]
fn busy_port_fails_at_start_naming_the_address() {
    let taken = match TcpListener::bind(loopback_any()) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let addr = taken.local_addr().unwrap_or_else(|_| loopback_any());
    let config = MetricsConfig { enabled: true, listen: addr.to_string() };
    match start(&config) {
        Err(MetricsError::Bind { addr: a, reason }) => {
            assert_eq!(a, addr.to_string());
            assert!(!reason.is_empty());
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn disabled_config_serves_nothing_but_counts() {
    let config = MetricsConfig { enabled: false, listen: "127.0.0.1:0".to_owned() };
    let (metrics, server) = match start(&config) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert!(server.is_none());
    metrics.duplicates("social", 2);
    let text = metrics.render().unwrap_or_default();
    assert!(text.contains("millionx_dedup_duplicates_total{stream=\"social\"} 2"), "{text}");
}
