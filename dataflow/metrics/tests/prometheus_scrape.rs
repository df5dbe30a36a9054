//! A real Prometheus (Debian package `prometheus`) scrapes a `MetricsServer` on loopback: the target is
//! healthy (the exposition parses), and queries through Prometheus's HTTP API return the values recorded.
//! Fails when the `prometheus` binary is missing (.ci/setup.d/20-prometheus.sh installs it).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{encode, request};
use millionx_metrics::{Metrics, MetricsServer, SinkOutput};
use serde_json::Value;

/// Kills the Prometheus child when the test ends, however it ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("{e}"),
    }
}

/// `GET /api/v1/<path>`; the `data` member of a successful answer.
fn api(prom: SocketAddr, path: &str) -> Option<Value> {
    let (status, _, body) = request(prom, "GET", &format!("/api/v1/{path}"));
    let v: Value = serde_json::from_str(&body).ok()?;
    (status == 200 && v["status"] == "success").then(|| v["data"].clone())
}

/// The value of an instant query with exactly one result.
fn query_one(prom: SocketAddr, q: &str) -> Option<f64> {
    let data = api(prom, &format!("query?query={}", encode(q)))?;
    let result = data["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn real_prometheus_scrapes_and_queries_the_exporter() {
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    metrics.init_stream("social", true);
    metrics.sink("weaviate/SocialPost").init(SinkOutput::Objects, &["social"]);
    metrics.records_in("social", 1000);
    metrics.records_rejected("social", "missing_field:postId", 100);
    metrics.embedding_duration(Duration::from_millis(250));
    let server = match MetricsServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), metrics.clone()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };

    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n  - job_name: millionx\n    static_configs:\n      - targets: ['{}']\n",
        server.local_addr()
    );
    assert!(std::fs::write(dir.path().join("prometheus.yml"), config).is_ok());
    let prom_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={prom_addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _prom = match child {
        Ok(c) => Prometheus(c),
        Err(e) => panic!(
            "cannot start prometheus ({e}): install the Debian package prometheus (.ci/setup.d/20-prometheus.sh)"
        ),
    };
    let timeout = Duration::from_secs(30);
    wait_for("Prometheus ready", timeout, || {
        std::net::TcpStream::connect(prom_addr).ok()?;
        (request(prom_addr, "GET", "/-/ready").0 == 200).then_some(())
    });

    // The target is up and its last scrape had no error (a malformed exposition would show here).
    let target = wait_for("a scraped target", timeout, || {
        let data = api(prom_addr, "targets")?;
        let t = data["activeTargets"].as_array()?.first()?.clone();
        (t["health"] == "up").then_some(t)
    });
    assert_eq!(target["lastError"], "", "{target}");
    assert_eq!(target["labels"]["job"], "millionx");

    let up = wait_for("up", timeout, || query_one(prom_addr, "up{job=\"millionx\"}"));
    assert_eq!(up, 1.0);
    let rejected = wait_for("rejected", timeout, || {
        query_one(
            prom_addr,
            "millionx_pipeline_records_rejected_total{stream=\"social\",reason=\"missing_field:postId\"}",
        )
    });
    assert_eq!(rejected, 100.0);

    // A later value reaches Prometheus at the next scrape.
    metrics.records_in("social", 500);
    let read = wait_for("records_in = 1500", timeout, || {
        query_one(prom_addr, "millionx_pipeline_records_in_total{stream=\"social\"}").filter(|v| *v == 1500.0)
    });
    assert_eq!(read, 1500.0);

    // The histogram arrives with its buckets: one 250 ms call lies in (0.2, 0.3].
    let in_bucket = query_one(
        prom_addr,
        "millionx_embedding_duration_seconds_bucket{le=\"0.3\"} - ignoring(le) millionx_embedding_duration_seconds_bucket{le=\"0.2\"}",
    );
    assert_eq!(in_bucket, Some(1.0));
    // The zero-initialised Weaviate series exists at 0.
    assert_eq!(
        query_one(prom_addr, "millionx_sink_objects_written_total{sink=\"weaviate/SocialPost\",stream=\"social\"}"),
        Some(0.0)
    );
    server.shutdown();
}
