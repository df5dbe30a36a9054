//! The real pipeline exports its metrics (issue 8, phase 2).
//!
//! 1. `millionx run` on `millionx gen --bad-rate 0.10` output serves `/metrics` (`--metrics-listen
//!    127.0.0.1:0`, `--metrics-linger`); the scrape holds every `millionx_*` name that
//!    ops/prometheus/alerts.yaml and ops/grafana/*.json use, with values that add up.
//! 2. A real Prometheus (Debian package, `.ci/setup.d/20-prometheus.sh`) loads ops/prometheus/alerts.yaml,
//!    scrapes the running pipeline on loopback, and HighDLQRate's expression holds for the 10 % bad-rate
//!    streams (rule state `pending`: its `for: 5m` is not waited out) and not for the clean weather stream.
//!    The test fails when `prometheus` is missing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../dataflow/metrics/tests/common/mod.rs"]
mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills a child process (the pipeline or Prometheus) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// `millionx gen` into `dir`: `n` posts and `n` orders, 10 % bad lines.
fn generate(dir: &Path, n: usize) {
    let n = n.to_string();
    common::run_ok(&["gen", "--out", dir.to_str().unwrap(), "--social", &n, "--market", &n, "--bad-rate", "0.10"]);
}

/// Starts `millionx run` with /metrics on `listen` and a 120 s linger; its stderr lines arrive on the receiver.
fn start_pipeline(input: &Path, out: &Path, listen: &str, extra: &[&str]) -> (Killed, Receiver<String>) {
    // Small epochs, so counters move every 100 lines (the default 4096-line epoch would hold a paced feed).
    let config = out.with_extension("toml");
    std::fs::write(&config, "[input]\nepoch_lines = 100\n").unwrap();
    let child = Command::new(common::bin())
        .args(["run", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--config", config.to_str().unwrap()])
        .args(["--metrics-listen", listen, "--metrics-linger", "120"])
        .args(extra)
        .env("MILLIONX_PII_KEY", "test-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millionx run");
    let mut child = Killed(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a stderr line containing `needle`; panics with everything read so far after `timeout`.
fn wait_line(rx: &Receiver<String>, needle: &str, timeout: Duration) -> String {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = timeout.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no stderr line with `{needle}` within {timeout:?}; stderr so far:\n{}", seen.join("\n"));
}

/// Samples of a Prometheus text exposition: (metric name, `{labels}` text) → value.
fn parse(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        out.insert((name.to_owned(), labels.to_owned()), value.parse::<f64>().expect("sample value"));
    }
    out
}

/// Sum of `name`'s samples whose label text contains every one of `labels` (e.g. `stream="social"`).
fn sum(samples: &BTreeMap<(String, String), f64>, name: &str, labels: &[&str]) -> f64 {
    samples.iter().filter(|((n, l), _)| n == name && labels.iter().all(|x| l.contains(x))).map(|(_, v)| v).sum()
}

/// Every `millionx_*` name in the alert rules and the dashboards.
fn names_used_by_ops() -> BTreeSet<String> {
    let ops = common::repo().join("ops");
    let mut files = vec![ops.join("prometheus/alerts.yaml")];
    for e in std::fs::read_dir(ops.join("grafana")).expect("ops/grafana") {
        let p = e.expect("dir entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            files.push(p);
        }
    }
    let re = regex::Regex::new(r"\bmillionx_[a-z0-9_]*[a-z0-9]").unwrap();
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read ops file");
        names.extend(re.find_iter(&text).map(|m| m.as_str().to_owned()));
    }
    names
}

/// Metrics `millionx run` over JSON Lines does not produce, with the reason. Each still must be a catalog
/// name (checked below), so a typo in ops/ cannot hide behind this list.
const NOT_FROM_FILE_REPLAY: [(&str, &str); 2] = [
    ("millionx_kafka_", "Kafka source only (consumer lag, offset commits); owned by the Kafka source work"),
    ("millionx_weather_fetch_", "`millionx weather fetch`, a separate command, counts the fetches"),
];

/// True when the embedding model is installed. Without it the scrape test runs with `--embed off` and cannot
/// see the embedding metrics: it says so, and fails under `CI=true` (where `.ci/run` installs the model).
fn model_present() -> bool {
    if millionx_embed::locate_model_dir().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true and no model: run ops/models/fetch-minilm.sh");
    eprintln!("SKIPPED the embedding metrics: no model directory (run ops/models/fetch-minilm.sh)");
    false
}

#[test]
fn pipeline_exports_every_metric_the_ops_files_use() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    generate(&input, 3000);
    let embed = model_present();
    // Embeddings on, with a deadline no record reaches: every emitted post and order must carry a vector.
    let mode: &[&str] = if embed { &["--embed", "on", "--embed-deadline-ms", "3600000"] } else { &["--embed", "off"] };
    let (_child, rx) = start_pipeline(&input, &out, "127.0.0.1:0", mode);
    let serving = wait_line(&rx, "metrics: serving http://", Duration::from_secs(60));
    let addr: SocketAddr =
        serving.trim_start_matches("metrics: serving http://").trim_end_matches("/metrics").parse().unwrap();
    wait_line(&rx, "run finished", Duration::from_secs(300));
    let (status, head, body) = http::request(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{head}");
    let samples = parse(&body);

    let exported: BTreeSet<&str> = samples.keys().map(|(n, _)| n.as_str()).collect();
    let used = names_used_by_ops();
    assert!(used.len() >= 15, "expected the ops files to use many millionx metrics, found {used:?}");
    // A histogram's family name (in comments and descriptions) is exported as `_bucket`/`_sum`/`_count`.
    let is_exported = |n: &str| exported.contains(n) || exported.contains(format!("{n}_bucket").as_str());
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !is_exported(n))
        .filter(|n| !NOT_FROM_FILE_REPLAY.iter().any(|(prefix, _)| n.starts_with(prefix)))
        .filter(|n| embed || !n.starts_with("millionx_embedding_"))
        .collect();
    assert!(missing.is_empty(), "used in ops/ but not in the pipeline's /metrics: {missing:?}");

    let catalog: BTreeSet<&str> = millionx_metrics::catalog::CATALOG.iter().map(|m| m.name).collect();
    for n in used.iter().filter(|n| NOT_FROM_FILE_REPLAY.iter().any(|(p, _)| n.starts_with(p))) {
        let family = ["_bucket", "_sum", "_count"].iter().fold(n.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(catalog.contains(family), "{n} (used in ops/) is not in the metrics catalog");
    }

    for stream in ["social", "market"] {
        let s = format!("stream=\"{stream}\"");
        let read = sum(&samples, "millionx_pipeline_records_in_total", &[&s]);
        let rejected = sum(&samples, "millionx_pipeline_records_rejected_total", &[&s]);
        let dups = sum(&samples, "millionx_dedup_duplicates_total", &[&s]);
        let emitted = sum(&samples, "millionx_pipeline_records_out_total", &[&s]);
        assert_eq!(read, 3000.0, "{stream}: every generated line is read once");
        let dlq_rate = rejected / read;
        assert!((0.07..=0.13).contains(&dlq_rate), "{stream}: rejected/in = {dlq_rate}, generated with 10 % bad");
        assert_eq!(read, emitted + dups + rejected, "{stream}: in = out + duplicates + rejected");
        assert!(dups > 0.0, "{stream}: the generator writes duplicates");
        assert_eq!(sum(&samples, "millionx_category_records_total", &[&s]), emitted, "{stream}: one category each");
        assert_eq!(sum(&samples, "millionx_weather_enriched_records_total", &[&s]), emitted, "{stream}: weather");
        assert_eq!(sum(&samples, "millionx_pipeline_ingestion_lag_seconds_count", &[&s]), emitted);
        assert_eq!(sum(&samples, "millionx_sink_rows_written_total", &["sink=\"dlq\"", &s]), rejected, "{stream}");
        assert!(sum(&samples, "millionx_quality_windows_closed_total", &[&s]) >= 24.0, "{stream}: 24 hours");
        let score = sum(&samples, "millionx_quality_score_ratio", &[&s]);
        assert!(score > 0.0 && score <= 1.0, "{stream}: quality score {score}");
        if embed {
            assert_eq!(sum(&samples, "millionx_embedding_texts_total", &[&s]), emitted, "{stream}: all embedded");
            let coverage = sum(&samples, "millionx_quality_embedding_coverage_ratio", &[&s]);
            assert_eq!(coverage, 1.0, "{stream}: the last closed window is fully embedded");
        }
    }
    if embed {
        // One histogram sample per model batch: at least one, at most one per text (cache hits and repeated
        // order texts `productName category` skip the model).
        let batches = sum(&samples, "millionx_embedding_duration_seconds_count", &[]);
        let texts = sum(&samples, "millionx_embedding_texts_total", &[]);
        assert!(batches >= 1.0 && batches <= texts, "embedding batches {batches}, texts {texts}");
        let mean = sum(&samples, "millionx_embedding_duration_seconds_sum", &[]) / batches;
        assert!(mean > 0.0 && mean < 60.0, "mean batch latency {mean} s");
        assert_eq!(
            sum(&samples, "millionx_embedding_duration_seconds_bucket", &["le=\"+Inf\""]),
            batches,
            "+Inf bucket = count"
        );
        assert_eq!(sum(&samples, "millionx_embedding_backlog_records", &[]), 0.0, "nothing waits after the run");
        assert!(exported.contains("millionx_embedding_backlog_records"), "backlog gauge exported");
        // The summary file says the same: every record embedded, and by which backend.
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        let e = &summary["embeddings"];
        assert_eq!(e["coverage"], 1.0, "{e}");
        assert_eq!(e["embedded"], e["records_in"], "{e}");
        assert!(e["backend"] == "openvino" || e["backend"] == "candle", "{e}");
    }
    let posts = sum(&samples, "millionx_pipeline_records_out_total", &["stream=\"social\""]);
    let orders = sum(&samples, "millionx_pipeline_records_out_total", &["stream=\"market\""]);
    for (sink, n) in [("snowflake/SOCIAL_POSTS", posts), ("snowflake/MARKET_ORDERS", orders)] {
        let l = format!("sink=\"{sink}\"");
        assert_eq!(sum(&samples, "millionx_sink_rows_written_total", &[&l]), n, "{sink}");
        assert_eq!(sum(&samples, "millionx_pipeline_event_to_sink_latency_seconds_count", &[&l]), n, "{sink}");
        let batches = sum(&samples, "millionx_sink_batches_written_total", &[&l]);
        assert!(batches >= 1.0, "{sink}");
        assert_eq!(sum(&samples, "millionx_sink_request_duration_seconds_count", &[&l]), batches, "{sink}");
        assert!(sum(&samples, "millionx_sink_written_bytes_total", &[&l]) > 100.0 * n, "{sink}: bytes");
    }
    assert_eq!(sum(&samples, "millionx_sink_objects_written_total", &["sink=\"weaviate/SocialPost\""]), posts);
    assert_eq!(sum(&samples, "millionx_sink_objects_written_total", &["sink=\"weaviate/MarketOrder\""]), orders);
    assert!(sum(&samples, "millionx_pii_detected_records_total", &["stream=\"social\""]) > 0.0);
    assert_eq!(
        sum(&samples, "millionx_pii_fields_anonymized_total", &["stream=\"market\"", "field=\"customerPhone\""]),
        orders,
        "every order's phone is replaced"
    );
    assert_eq!(sum(&samples, "millionx_dataflow_epochs_in_flight", &[]), 0.0, "nothing in flight after the run");
    assert_eq!(sum(&samples, "millionx_sink_errors_total", &[]), 0.0);
}

/// `GET /api/v1/<path>` on Prometheus; the `data` member of a successful answer.
fn api(prom: SocketAddr, path: &str) -> Option<Value> {
    let (status, _, body) = http::request(prom, "GET", &format!("/api/v1/{path}"));
    let v: Value = serde_json::from_str(&body).ok()?;
    (status == 200 && v["status"] == "success").then(|| v["data"].clone())
}

/// Instant query: `stream` label → value of each result.
fn query(prom: SocketAddr, q: &str) -> Option<BTreeMap<String, f64>> {
    let data = api(prom, &format!("query?query={}", http::encode(q)))?;
    let mut out = BTreeMap::new();
    for r in data["result"].as_array()? {
        let stream = r["metric"]["stream"].as_str().unwrap_or("").to_owned();
        out.insert(stream, r["value"][1].as_str()?.parse().ok()?);
    }
    Some(out)
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            eprintln!("{what}: {:?}", start.elapsed());
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Makes `input/<stream>.jsonl` named pipes (`mkfifo`) and feeds each from `generated/<stream>.jsonl`
/// on a thread, 200 lines per 100 ms. Each pipe is opened read-write first (Linux: does not block), so
/// the pipeline's readability check and its reader never wait for a writer and never see EOF early; the
/// reader sees EOF when the feeder closes the pipe.
fn feed_through_pipes(generated: &Path, input: &Path) -> Vec<std::thread::JoinHandle<()>> {
    use std::io::Write as _;
    std::fs::create_dir_all(input).unwrap();
    let mut feeders = Vec::new();
    for name in ["social.jsonl", "market.jsonl", "weather.jsonl"] {
        let pipe = input.join(name);
        let status = Command::new("mkfifo").arg(&pipe).status().expect("mkfifo");
        assert!(status.success(), "mkfifo {}", pipe.display());
        let mut writer = std::fs::OpenOptions::new().read(true).write(true).open(&pipe).expect("open pipe");
        let text = std::fs::read_to_string(generated.join(name)).unwrap();
        feeders.push(std::thread::spawn(move || {
            let lines: Vec<&str> = text.lines().collect();
            for chunk in lines.chunks(200) {
                let mut block = chunk.join("\n");
                block.push('\n');
                writer.write_all(block.as_bytes()).expect("write to pipe");
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    feeders
}

#[test]
fn prometheus_evaluates_high_dlq_rate_on_a_running_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (generated, input, out) = (dir.path().join("gen"), dir.path().join("in"), dir.path().join("out"));
    generate(&generated, 6000);
    let target = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // ops/prometheus/alerts.yaml as is, except that every group is evaluated each second (the file's 30 s /
    // 1 m / 5 m group intervals would only slow the test; expressions, `for:` and labels are untouched).
    let original = std::fs::read_to_string(common::repo().join("ops/prometheus/alerts.yaml")).unwrap();
    let interval = regex::Regex::new(r"(?m)^(\s+interval:)\s*\S+\s*$").unwrap();
    assert_eq!(interval.find_iter(&original).count(), 3, "three rule groups with an interval");
    let rules = dir.path().join("alerts.yaml");
    std::fs::write(&rules, interval.replace_all(&original, "$1 1s").as_ref()).unwrap();
    let config = format!(
        "global: {{scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 1s}}\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: millionx\n    static_configs:\n      - targets: ['{target}']\n",
        rules.display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let prom = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={prom}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _prom = match child {
        Ok(c) => Killed(c),
        Err(e) => panic!("cannot start prometheus ({e}): install the Debian package (.ci/setup.d/20-prometheus.sh)"),
    };
    let timeout = Duration::from_secs(60);
    wait_for("Prometheus ready", timeout, || {
        std::net::TcpStream::connect(prom).ok()?;
        (http::request(prom, "GET", "/-/ready").0 == 200).then_some(())
    });

    // The input arrives through named pipes, 200 lines of each stream every 100 ms (about 3 s), as from a
    // live feed; Prometheus, already scraping the target every 250 ms, samples the counters while they grow.
    // Target discovery is throttled (about 5 s after start): wait until the scrape loop has tried the target.
    wait_for("the scrape loop", timeout, || {
        let t = api(prom, "targets")?["activeTargets"].as_array()?.first()?.clone();
        (t["lastScrape"].as_str()? != "0001-01-01T00:00:00Z").then_some(())
    });
    let feeders = feed_through_pipes(&generated, &input);
    let (_pipeline, rx) = start_pipeline(&input, &out, &target.to_string(), &["--embed", "off"]);
    wait_line(&rx, "metrics: serving http://", Duration::from_secs(60));
    for f in feeders {
        f.join().expect("feeder thread");
    }
    wait_line(&rx, "run finished", Duration::from_secs(300));
    let final_in = wait_for("the final count in Prometheus", timeout, || {
        query(prom, "millionx_pipeline_records_in_total{stream=\"social\"}")?
            .get("social")
            .copied()
            .filter(|v| *v == 6000.0)
    });
    assert_eq!(final_in, 6000.0);
    let first = query(prom, "min_over_time(millionx_pipeline_records_in_total{stream=\"social\"}[5m])").unwrap();
    assert!(
        first.get("social").is_some_and(|v| *v < 6000.0),
        "Prometheus never scraped the run mid-way (first sample {first:?}); rate() needs a rising counter"
    );

    // The rule as Prometheus loaded it from ops/prometheus/alerts.yaml.
    let rule = wait_for("HighDLQRate pending", timeout, || {
        let groups = api(prom, "rules")?;
        let rule = groups["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .find(|r| r["name"] == "HighDLQRate")?;
        (rule["state"] == "pending" || rule["state"] == "firing").then_some(rule)
    });
    assert_eq!(rule["duration"].as_f64(), Some(300.0), "for: 5m");
    let alerting: BTreeSet<String> = rule["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["stream"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(alerting, BTreeSet::from(["market".to_owned(), "social".to_owned()]), "{rule}");

    // The expression itself: about 10 % for the bad-rate streams; weather (no bad lines) is below 2 %.
    let expr = rule["query"].as_str().unwrap();
    let values = query(prom, expr).unwrap();
    for stream in ["social", "market"] {
        let v = values.get(stream).copied().unwrap_or(f64::NAN);
        assert!((0.05..=0.2).contains(&v), "{stream}: HighDLQRate expression = {v}, expected ≈ 0.10");
    }
    assert!(!values.contains_key("weather"), "weather has no bad lines: {values:?}");
    // The rule writes its state into the ALERTS series at each evaluation (alertstate="pending" here).
    let alerts = wait_for("ALERTS{alertname=\"HighDLQRate\"}", timeout, || {
        let a = query(prom, "ALERTS{alertname=\"HighDLQRate\",alertstate=~\"pending|firing\"}")?;
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(alerts.keys().cloned().collect::<BTreeSet<_>>(), alerting, "ALERTS series");
}
