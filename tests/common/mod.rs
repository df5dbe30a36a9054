//! Test harness: runs the real `millionx` binary and reads its outputs.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary under test: `$MILLIONX_BIN` when set (a copy taken right after the build, for worktrees that
/// share one target directory and so one `target/debug/millionx`), else Cargo's.
pub fn bin() -> String {
    std::env::var("MILLIONX_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_millionx").to_owned())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<repo>/../shared/<rel>` if present. Under `CI=true` a missing folder fails the test; otherwise the
/// test prints that it skipped.
pub fn shared(rel: &str, test: &str) -> Option<PathBuf> {
    let p = repo().join("..").join("shared").join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {} is missing and CI=true: the shared folder must be present in CI", p.display());
    }
    eprintln!("SKIPPED {test}: {} not found (runs in CI, where ../shared exists)", p.display());
    None
}

/// `millionx` with the test key and /metrics on a free port (tests run in parallel).
pub fn command() -> Command {
    let mut c = Command::new(bin());
    c.env("MILLIONX_PII_KEY", "test-key").env("MILLIONX_METRICS_LISTEN", "127.0.0.1:0");
    c
}

pub fn millionx(args: &[&str]) -> Output {
    command().args(args).output().expect("run millionx")
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = millionx(args);
    assert!(
        out.status.success(),
        "millionx {args:?} failed:\nstdout:{}\nstderr:{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn gen_py(out: &Path, args: &[&str]) -> bool {
    let Some(script) = shared("datagen/gen.py", "gen.py") else {
        return false;
    };
    let status = Command::new("python3").arg(script).arg("--out").arg(out).args(args).status().expect("python3");
    assert!(status.success());
    true
}

/// Every finished output file under `dir` (recursively), sorted. A `.tmp` file is a batch still being
/// written (or cut short by SIGKILL): the file sink renames it when complete, so readers skip it.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else if p.extension().is_none_or(|x| x != "tmp") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// All NDJSON rows under `dir`.
pub fn ndjson(dir: &Path) -> Vec<Value> {
    files(dir)
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("valid JSON line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// All Weaviate objects under `dir` (each file one `{"objects":[...]}` body).
pub fn objects(dir: &Path) -> Vec<Value> {
    files(dir)
        .iter()
        .flat_map(|f| {
            let body: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).expect("valid body");
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(keys, vec!["objects"], "{}", f.display());
            body["objects"].as_array().unwrap().clone()
        })
        .collect()
}

/// The outputs of a run as comparable sets, without the wall-clock fields.
pub fn canonical(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut sets = BTreeMap::new();
    for table in ["SOCIAL_POSTS", "MARKET_ORDERS", "PRICE_HISTORY", "WEATHER_LOGS"] {
        let mut rows: Vec<String> = ndjson(&out.join("snowflake").join(table))
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("INGESTED_AT");
                r.to_string()
            })
            .collect();
        rows.sort();
        sets.insert(table.to_owned(), rows);
    }
    for class in ["SocialPost", "MarketOrder"] {
        let mut objs: Vec<String> = objects(&out.join("weaviate").join(class))
            .into_iter()
            .map(|mut o| {
                o["properties"].as_object_mut().unwrap().remove("ingestedAt");
                o.to_string()
            })
            .collect();
        objs.sort();
        sets.insert(class.to_owned(), objs);
    }
    let mut dlq: Vec<String> = ndjson(&out.join("dlq"))
        .into_iter()
        .map(|mut d| {
            d.as_object_mut().unwrap().remove("received_at");
            d.to_string()
        })
        .collect();
    dlq.sort();
    sets.insert("dlq".into(), dlq);
    let mut quality: Vec<String> = ndjson(&out.join("quality"))
        .into_iter()
        .map(|mut q| {
            q.as_object_mut().unwrap().remove("ingestion_lag_ms");
            q.to_string()
        })
        .collect();
    quality.sort();
    sets.insert("quality".into(), quality);
    sets
}

pub fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// Waits for `child` at most `limit`; kills it and fails the test (with its stderr, when piped) on timeout.
pub fn wait_exit(child: &mut std::process::Child, limit: std::time::Duration, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(e, &mut err);
            }
            panic!("{what} did not end within {limit:?}; stderr:\n{err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
