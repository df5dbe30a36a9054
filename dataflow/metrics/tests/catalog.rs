//! The catalog against the exporter's real output, `ops/METRICS.md`, and the names used in `ops/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use millionx_metrics::catalog::{self, Kind, CATALOG};
use millionx_metrics::{Metrics, SinkOutput};

fn ops_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ops")
}

/// Calls every method of [`Metrics`] once with realistic values, as a pipeline run does.
fn exercise(m: &Metrics) {
    m.init_stream("social", true);
    m.init_stream("weather", false);
    let snowflake = m.sink("snowflake/SOCIAL_POSTS");
    let weaviate = m.sink("weaviate/SocialPost");
    snowflake.init(SinkOutput::Rows, &["social", "market"]);
    weaviate.init(SinkOutput::Objects, &["social"]);
    m.init_worker(0);
    m.records_in("social", 1000);
    m.records_rejected("social", "missing_field:postId", 7);
    m.records_out("social", 980);
    m.ingestion_lag("social", Duration::from_secs(42));
    snowflake.event_to_sink_latency(Duration::from_millis(1500));
    m.duplicates("social", 13);
    m.pii_detected("social", 120);
    m.pii_fields_anonymized("social", "authorId", 980);
    m.categorised("social", "fashion", 400);
    m.weather_enriched("social", 950);
    m.embedding_texts("social", 980);
    m.embedding_duration(Duration::from_millis(35));
    m.embedding_backend("openvino", "bf16");
    m.embedding_backlog(64);
    m.quality_score("social", 0.97);
    m.quality_weather_coverage("social", 0.969);
    m.quality_embedding_coverage("social", 1.0);
    m.quality_window_closed("social");
    m.init_weather_fetch();
    m.weather_fetch("ok", "none", 8);
    m.weather_fetch("retried", "rate_limited", 2);
    m.weather_fetch("error", "rate_limited", 1);
    m.kafka_consumer_lag("validated.social", 3, 12_345);
    m.kafka_commit_duration(0, Duration::from_millis(4));
    m.kafka_commit_error("request_timed_out");
    m.epochs_in_flight(1, 5);
    snowflake.rows_written("social", 980);
    weaviate.objects_written("social", 980);
    snowflake.batches_written(1);
    snowflake.written_bytes(524_288);
    snowflake.error("http_5xx");
    snowflake.retries(2);
    snowflake.request_duration(Duration::from_millis(180));
}

/// `# TYPE name type` lines of an exposition.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// The value of the sample line `series` (name plus exact label set), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn render(m: &Metrics) -> String {
    match m.render() {
        Ok(t) => t,
        Err(e) => panic!("render failed: {e}"),
    }
}

fn new_metrics() -> Metrics {
    match Metrics::new() {
        Ok(m) => m,
        Err(e) => panic!("Metrics::new failed: {e}"),
    }
}

#[test]
fn exposition_names_and_types_equal_the_catalog() {
    let m = new_metrics();
    exercise(&m);
    let text = render(&m);
    let mut exported = families(&text);
    assert_eq!(exported.remove("target_info").as_deref(), Some("gauge"), "resource info expected");
    let expected: BTreeMap<String, String> =
        CATALOG.iter().map(|s| (s.name.to_owned(), s.kind.prometheus_type().to_owned())).collect();
    assert_eq!(exported, expected, "exposition:\n{text}");
    // No scope labels, no doubled suffixes.
    assert!(!text.contains("otel_scope_"), "{text}");
    assert!(!text.contains("_total_total"), "{text}");
    for unit in ["_seconds_seconds", "_bytes_bytes", "_ratio_ratio"] {
        assert!(!text.contains(unit), "{unit} in {text}");
    }
}

/// Prometheus's own linter accepts the exposition (counter suffixes, base units, no `_count` on counters).
#[test]
fn promtool_check_metrics_finds_no_problem() {
    use std::io::Write as _;
    let m = new_metrics();
    exercise(&m);
    let text = render(&m);
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            panic!("cannot run promtool ({e}): install the Debian package prometheus (.ci/setup.d/20-prometheus.sh)")
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        assert!(stdin.write_all(text.as_bytes()).is_ok());
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => panic!("promtool: {e}"),
    };
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
}

#[test]
fn catalog_names_follow_the_convention() {
    let re = regex::Regex::new(r"^millionx_[a-z]+_[a-z0-9_]+$").ok();
    let mut seen = BTreeSet::new();
    // Bounded label names only: each takes a fixed set of values (`backend`: candle | openvino).
    const LABELS: [&str; 11] = [
        "stream",
        "topic",
        "partition",
        "sink",
        "reason",
        "worker",
        "category",
        "field",
        "result",
        "backend",
        "precision",
    ];
    for s in CATALOG {
        assert!(re.as_ref().is_some_and(|r| r.is_match(s.name)), "{}", s.name);
        assert!(seen.insert(s.name), "duplicate {}", s.name);
        assert_eq!(s.name.matches("_total").count(), usize::from(s.kind == Kind::Counter), "{}", s.name);
        if s.kind == Kind::Counter {
            assert!(s.name.ends_with("_total"), "{}", s.name);
        }
        assert!(s.name.trim_end_matches("_total").ends_with(s.unit_suffix()), "{} lacks its unit", s.name);
        assert_eq!(s.kind == Kind::Histogram, !s.buckets.is_empty(), "{}", s.name);
        assert!(s.buckets.windows(2).all(|w| w[0] < w[1]), "{} buckets not increasing", s.name);
        for l in s.labels {
            assert!(LABELS.contains(l), "{}: unbounded or unknown label {l}", s.name);
        }
    }
    // Thresholds of the alert rules are bucket bounds (exact histogram_quantile decisions).
    assert!(catalog::EMBEDDING_DURATION.buckets.contains(&0.2));
    assert!(catalog::INGESTION_LAG.buckets.contains(&60.0));
}

#[test]
fn values_reach_the_right_series() {
    let m = new_metrics();
    exercise(&m);
    m.records_in("social", 24); // accumulates
    let text = render(&m);
    let cases: &[(&str, f64)] = &[
        ("millionx_pipeline_records_in_total{stream=\"social\"}", 1024.0),
        ("millionx_pipeline_records_in_total{stream=\"weather\"}", 0.0),
        ("millionx_pipeline_records_rejected_total{reason=\"missing_field:postId\",stream=\"social\"}", 7.0),
        ("millionx_kafka_consumer_lag_messages{partition=\"3\",topic=\"validated.social\"}", 12345.0),
        ("millionx_dataflow_epochs_in_flight{worker=\"1\"}", 5.0),
        ("millionx_dataflow_epochs_in_flight{worker=\"0\"}", 0.0),
        ("millionx_embedding_backlog_records", 64.0),
        ("millionx_sink_written_bytes_total{sink=\"snowflake/SOCIAL_POSTS\"}", 524288.0),
        ("millionx_sink_rows_written_total{sink=\"snowflake/SOCIAL_POSTS\",stream=\"market\"}", 0.0),
        ("millionx_sink_objects_written_total{sink=\"weaviate/SocialPost\",stream=\"social\"}", 980.0),
        ("millionx_quality_score_ratio{stream=\"social\"}", 0.97),
        ("millionx_weather_fetch_total{reason=\"none\",result=\"ok\"}", 8.0),
        ("millionx_weather_fetch_total{reason=\"rate_limited\",result=\"error\"}", 1.0),
        ("millionx_sink_request_duration_seconds_bucket{sink=\"snowflake/SOCIAL_POSTS\",le=\"0.1\"}", 0.0),
        ("millionx_sink_request_duration_seconds_bucket{sink=\"snowflake/SOCIAL_POSTS\",le=\"0.25\"}", 1.0),
        ("millionx_sink_request_duration_seconds_sum{sink=\"snowflake/SOCIAL_POSTS\"}", 0.18),
        ("millionx_embedding_duration_seconds_bucket{le=\"0.025\"}", 0.0),
        ("millionx_embedding_duration_seconds_bucket{le=\"0.05\"}", 1.0),
        ("millionx_pipeline_ingestion_lag_seconds_bucket{stream=\"social\",le=\"30\"}", 0.0),
        ("millionx_pipeline_ingestion_lag_seconds_bucket{stream=\"social\",le=\"60\"}", 1.0),
        ("millionx_pipeline_ingestion_lag_seconds_bucket{stream=\"social\",le=\"+Inf\"}", 1.0),
    ];
    for (series, want) in cases {
        let got = sample(&text, series);
        assert!(got.is_some_and(|g| (g - want).abs() < 1e-9), "{series}: got {got:?}, want {want}\n{text}");
    }
    // Weather is not enriched: no PII / join / embedding series for it.
    assert_eq!(sample(&text, "millionx_embedding_texts_total{stream=\"weather\"}"), None);
    // Histogram buckets are exactly the catalog's.
    let les: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("millionx_embedding_duration_seconds_bucket{"))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next().map(str::to_owned))
        .collect();
    let mut want: Vec<String> = catalog::EMBEDDING_BUCKETS.iter().map(|b| b.to_string()).collect();
    want.push("+Inf".to_owned());
    assert_eq!(les, want);
}

#[test]
fn free_text_labels_are_replaced_and_nan_ignored() {
    let m = new_metrics();
    m.records_rejected("market", "customer 01712345678 said hi", 1);
    m.sink("weaviate/SocialPost").error("");
    m.quality_score("market", f64::NAN);
    let text = render(&m);
    assert_eq!(
        sample(&text, "millionx_pipeline_records_rejected_total{reason=\"invalid\",stream=\"market\"}"),
        Some(1.0)
    );
    assert!(!text.contains("01712345678"));
    assert_eq!(sample(&text, "millionx_sink_errors_total{reason=\"invalid\",sink=\"weaviate/SocialPost\"}"), Some(1.0));
    assert!(!text.contains("millionx_quality_score_ratio{"), "{text}");
}

#[test]
fn clones_share_one_registry_across_threads() {
    let m = new_metrics();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    m.records_in("market", 1);
                }
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().is_ok());
    }
    assert_eq!(sample(&render(&m), "millionx_pipeline_records_in_total{stream=\"market\"}"), Some(4000.0));
}

const MD_START: &str = "<!-- catalog:start (generated from dataflow/metrics/src/catalog.rs) -->\n";
const MD_END: &str = "<!-- catalog:end -->";

/// `ops/METRICS.md` holds the generated table verbatim. Set `MILLIONX_UPDATE_METRICS_MD=1` to rewrite it.
#[test]
fn metrics_md_is_up_to_date() {
    let path = ops_dir().join("METRICS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (Some(a), Some(b)) = (text.find(MD_START), text.find(MD_END)) else {
        panic!("{} lacks the catalog markers", path.display());
    };
    let current = &text[a + MD_START.len()..b];
    let table = catalog::markdown_table();
    if current != table {
        if std::env::var_os("MILLIONX_UPDATE_METRICS_MD").is_some() {
            let updated = format!("{}{}{}{}", &text[..a], MD_START, table, &text[b..]);
            assert!(std::fs::write(&path, updated).is_ok(), "cannot write {}", path.display());
        } else {
            panic!("ops/METRICS.md is stale; rerun with MILLIONX_UPDATE_METRICS_MD=1");
        }
    }
}

/// Every `millionx_*` name in the dashboards, the alert rules and their tests is a catalog metric
/// (or one of its histogram series), and each catalog metric is used by at least one panel or rule.
#[test]
fn ops_files_use_only_catalog_metrics() {
    let re = regex::Regex::new(r"millionx_[a-z0-9_]+").ok();
    let Some(re) = re else { panic!("regex") };
    let mut used = BTreeSet::new();
    for rel in [
        "grafana/overview.json",
        "grafana/data-quality.json",
        "prometheus/alerts.yaml",
        "prometheus/alerts.test.yaml",
        "RUNBOOKS.md",
    ] {
        let path = ops_dir().join(rel);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        for name in re.find_iter(&text).map(|m| m.as_str()) {
            let spec = catalog::find(name);
            assert!(spec.is_some(), "{rel}: `{name}` is not in the catalog");
            if let Some(s) = spec {
                used.insert(s.name);
            }
        }
    }
    let unused: Vec<&str> = CATALOG.iter().map(|s| s.name).filter(|n| !used.contains(n)).collect();
    assert!(unused.is_empty(), "catalog metrics no panel or rule reads: {unused:?}");
}
