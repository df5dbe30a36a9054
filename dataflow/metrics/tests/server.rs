//! The `/metrics` endpoint over real loopback HTTP.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::request;

use millionx_metrics::{start, Metrics, MetricsConfig, MetricsError, MetricsServer};

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
    // tiny_http closes its listening socket on its own accept thread, just after shutdown returns.
    let closed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
    });
    assert!(closed, "still listening 2 s after shutdown");
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
