//! `ops/` checked by the real tools: `promtool check rules`, `promtool test rules`, `promtool check config`,
//! `amtool check-config`, `amtool config routes test`, and every PromQL expression of the dashboards parsed
//! by promtool. promtool and amtool come from the Debian packages `prometheus` and `prometheus-alertmanager`
//! (`.ci/setup.d/20-prometheus.sh`); these tests FAIL when they are missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn ops_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ops")
}

fn read(rel: &str) -> String {
    let path = ops_dir().join(rel);
    match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Runs `tool args…` in `dir`; returns stdout + stderr; panics (test failure) when the tool is missing.
fn run(tool: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let out = match Command::new(tool).args(args).current_dir(dir).output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run `{tool}` ({e}): install the Debian packages prometheus and prometheus-alertmanager \
             (.ci/setup.d/20-prometheus.sh)"
        ),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn ok(tool: &str, args: &[&str], dir: &Path) -> String {
    let (success, text) = run(tool, args, dir);
    assert!(success, "`{tool} {}` failed:\n{text}", args.join(" "));
    text
}

const SEED_ALERTS: [(&str, &str); 15] = [
    ("StreamProcessorDown", "critical"),
    ("HighDLQRate", "critical"),
    ("HighKafkaConsumerLag", "critical"),
    ("SnowflakeDailyCostExceeded", "critical"),
    ("EmbeddingServiceHighLatency", "critical"),
    ("ScraperLowSuccessRate", "warning"),
    ("LowCacheHitRate", "warning"),
    ("HighSchemaValidationFailures", "warning"),
    ("LowEmbeddingCoverage", "warning"),
    ("HighPIIDetectionRate", "warning"),
    ("WeaviateSlowIngestion", "warning"),
    ("HighIngestionLag", "warning"),
    ("WeatherAPIFailures", "info"),
    ("SnowflakeWarehouseIdle", "info"),
    ("DiskSpaceWarning", "info"),
];

/// (alert name, severity, `for`) of alerts.yaml, read line by line (the file's layout is fixed by this test).
fn rules() -> Vec<(String, String, String)> {
    let text = read("prometheus/alerts.yaml");
    let mut out = Vec::new();
    let mut current: Option<(String, String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            out.extend(current.take());
            current = Some((name.to_owned(), String::new(), String::new()));
        } else if let (Some(c), Some(s)) = (current.as_mut(), line.strip_prefix("severity: ")) {
            c.1 = s.to_owned();
        } else if let (Some(c), Some(f)) = (current.as_mut(), line.strip_prefix("for: ")) {
            c.2 = f.to_owned();
        }
    }
    out.extend(current);
    out
}

#[test]
fn alert_rules_check_and_match_the_seed() {
    let dir = ops_dir().join("prometheus");
    let text = ok("promtool", &["check", "rules", "alerts.yaml"], &dir);
    assert!(text.contains("SUCCESS: 15 rules found"), "{text}");
    let got: Vec<(String, String)> = rules().into_iter().map(|(n, s, _)| (n, s)).collect();
    let want: Vec<(String, String)> = SEED_ALERTS.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
    assert_eq!(got, want);
    let fors: BTreeMap<String, String> = rules().into_iter().map(|(n, _, f)| (n, f)).collect();
    for (name, want) in [
        ("StreamProcessorDown", "1m"),
        ("HighDLQRate", "5m"),
        ("HighKafkaConsumerLag", "5m"),
        ("SnowflakeDailyCostExceeded", "1h"),
        ("EmbeddingServiceHighLatency", "5m"),
        ("ScraperLowSuccessRate", "10m"),
        ("LowCacheHitRate", "15m"),
        ("HighSchemaValidationFailures", "10m"),
        ("LowEmbeddingCoverage", "10m"),
        ("HighPIIDetectionRate", "15m"),
        ("WeaviateSlowIngestion", "10m"),
        ("HighIngestionLag", "10m"),
        ("WeatherAPIFailures", "30m"),
        ("SnowflakeWarehouseIdle", "10m"),
        ("DiskSpaceWarning", "15m"),
    ] {
        assert_eq!(fors.get(name).map(String::as_str), Some(want), "{name}: for");
    }
}

#[test]
fn alert_rule_unit_tests_pass_and_cover_every_alert() {
    let dir = ops_dir().join("prometheus");
    let text = ok("promtool", &["test", "rules", "alerts.test.yaml"], &dir);
    assert!(text.contains("SUCCESS"), "{text}");
    // Every alert has a firing case and a silent case.
    let tests = read("prometheus/alerts.test.yaml");
    for (name, _) in SEED_ALERTS {
        let blocks: Vec<&str> = tests.split("alertname: ").skip(1).filter(|b| b.starts_with(name)).collect();
        let firing = blocks.iter().filter(|b| b.contains("exp_labels:")).count();
        let silent = blocks.iter().filter(|b| b.contains("exp_alerts: []")).count();
        assert!(firing >= 1 && silent >= 1, "{name}: {firing} firing and {silent} silent cases");
    }
}

#[test]
fn every_alert_has_a_runbook_section() {
    let alerts = read("prometheus/alerts.yaml");
    let runbooks = read("RUNBOOKS.md");
    let anchors: Vec<String> =
        runbooks.lines().filter_map(|l| l.strip_prefix("## ")).map(|h| h.trim().to_lowercase()).collect();
    for (name, _) in SEED_ALERTS {
        let url = format!("runbook_url: \"ops/RUNBOOKS.md#{}\"", name.to_lowercase());
        assert!(alerts.contains(&url), "{name}: missing {url}");
        assert!(anchors.contains(&name.to_lowercase()), "RUNBOOKS.md lacks `## {name}`");
    }
}

#[test]
fn prometheus_config_checks() {
    let text = ok("promtool", &["check", "config", "prometheus.yml"], &ops_dir().join("prometheus"));
    assert!(text.contains("SUCCESS: 15 rules found"), "{text}");
}

#[test]
fn alertmanager_config_checks_and_routes_by_severity() {
    let dir = ops_dir().join("alertmanager");
    let text = ok("amtool", &["check-config", "alertmanager.yaml"], &dir);
    assert!(text.contains("3 inhibit rules") && text.contains("4 receivers"), "{text}");
    for (severity, receiver) in [
        ("critical", "critical-alerts"),
        ("warning", "warning-alerts"),
        ("info", "info-alerts"),
        ("none", "team-notifications"),
    ] {
        let label = format!("severity={severity}");
        let verify = format!("--verify.receivers={receiver}");
        ok(
            "amtool",
            &["config", "routes", "test", "--config.file=alertmanager.yaml", &verify, &label, "alertname=X"],
            &dir,
        );
    }
    // Repeat intervals 1h / 6h / 24h; secrets only by file reference.
    let config = read("alertmanager/alertmanager.yaml");
    for (severity, repeat) in [("critical", "1h"), ("warning", "6h"), ("info", "24h")] {
        let block = config.split(&format!("matchers: ['severity=\"{severity}\"']")).nth(1).unwrap_or_default();
        let got = block.lines().find_map(|l| l.trim().strip_prefix("repeat_interval: "));
        assert_eq!(got, Some(repeat), "{severity}");
    }
    for secret in ["smtp_auth_password:", "api_url:", "slack_api_url:", "auth_password:"] {
        assert!(!config.contains(secret), "inline secret `{secret}`");
    }
    assert!(config.contains("smtp_auth_password_file:") && config.contains("slack_api_url_file:"));
}

/// (dashboard file, panel count) of the seed.
const DASHBOARDS: [(&str, usize); 2] = [("grafana/overview.json", 13), ("grafana/data-quality.json", 10)];

fn dashboard(rel: &str) -> Value {
    match serde_json::from_str(&read(rel)) {
        Ok(v) => v,
        Err(e) => panic!("{rel}: {e}"),
    }
}

fn panels(d: &Value) -> Vec<Value> {
    d["panels"].as_array().cloned().unwrap_or_default()
}

#[test]
fn dashboards_have_the_seed_panels_and_a_datasource_variable() {
    for (rel, count) in DASHBOARDS {
        let d = dashboard(rel);
        let ps = panels(&d);
        assert_eq!(ps.len(), count, "{rel}");
        let vars = d["templating"]["list"].as_array().cloned().unwrap_or_default();
        assert!(
            vars.iter().any(|v| v["type"] == "datasource" && v["query"] == "prometheus" && v["name"] == "datasource"),
            "{rel}: no datasource variable"
        );
        let mut ids = std::collections::BTreeSet::new();
        let mut cells = std::collections::BTreeSet::new();
        for p in &ps {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(ids.insert(p["id"].as_u64().unwrap_or(0)), "{rel}: duplicate id at {title}");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{rel}: {title}");
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{rel}: {title} has no query");
            for t in &targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{rel}: {title}");
            }
            let g = &p["gridPos"];
            let (x, y, w, h) = (g["x"].as_u64(), g["y"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
            let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else { panic!("{rel}: {title} gridPos") };
            assert!(x + w <= 24 && w > 0 && h > 0, "{rel}: {title} outside the 24-column grid");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{rel}: {title} overlaps another panel");
                }
            }
        }
    }
}

/// Panels drawing an alert's threshold carry that threshold (the alert rules' numbers).
#[test]
fn dashboard_thresholds_are_the_alert_thresholds() {
    let cases: [(&str, &str, f64); 10] = [
        ("grafana/overview.json", "Kafka Consumer Lag", 10000.0),
        ("grafana/overview.json", "Dead-Letter Rate by Stream", 0.02),
        ("grafana/overview.json", "Embedding Latency (p95 / p99)", 0.2),
        ("grafana/overview.json", "Weaviate Ingestion Rate", 10.0),
        ("grafana/overview.json", "Pipeline Up", 1.0),
        ("grafana/data-quality.json", "Schema Validation Success Rate", 0.95),
        ("grafana/data-quality.json", "PII Detection Rate", 0.30),
        ("grafana/data-quality.json", "Embedding Coverage", 0.95),
        ("grafana/data-quality.json", "Embedding Model Performance", 0.2),
        ("grafana/data-quality.json", "Data Freshness", 60.0),
    ];
    for (rel, title, value) in cases {
        let d = dashboard(rel);
        let p = panels(&d).into_iter().find(|p| p["title"] == title);
        let Some(p) = p else { panic!("{rel}: no panel {title}") };
        let steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array().cloned().unwrap_or_default();
        assert!(
            steps.iter().any(|s| s["value"].as_f64().is_some_and(|v| (v - value).abs() < 1e-12)),
            "{rel}: {title} lacks threshold {value}: {steps:?}"
        );
    }
}

/// Every dashboard query parses: each becomes a recording rule in a temporary rule file (JSON is YAML)
/// that `promtool check rules` must accept.
#[test]
fn every_dashboard_expression_parses() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let mut rules = Vec::new();
    for (rel, _) in DASHBOARDS {
        for p in panels(&dashboard(rel)) {
            for t in p["targets"].as_array().cloned().unwrap_or_default() {
                let expr = t["expr"].as_str().unwrap_or_default().to_owned();
                assert!(!expr.is_empty(), "{rel}: {} has an empty query", p["title"]);
                assert!(!expr.contains('$'), "{rel}: {}: template variables are not PromQL", p["title"]);
                rules.push(serde_json::json!({"record": format!("dashboard:query_{}", rules.len()), "expr": expr}));
            }
        }
    }
    let n = rules.len();
    let file = dir.path().join("dashboard-queries.yaml");
    let body = serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]}).to_string();
    assert!(std::fs::write(&file, body).is_ok());
    let text = ok("promtool", &["check", "rules", "dashboard-queries.yaml"], dir.path());
    assert!(text.contains(&format!("SUCCESS: {n} rules found")), "{text}");
    assert!(n >= 23, "only {n} queries");

    // The check itself rejects a broken expression.
    let bad = serde_json::json!({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(x[5m])"}]}]});
    assert!(std::fs::write(dir.path().join("bad.yaml"), bad.to_string()).is_ok());
    let (success, text) = run("promtool", &["check", "rules", "bad.yaml"], dir.path());
    assert!(!success, "promtool accepted a broken expression: {text}");
}
