//! `ops/k8s/weather-fetcher-cronjob.yaml` and `ops/Dockerfile`: validated by real tools
//! (kubernetes-validate against the Kubernetes JSON schemas, strict; hadolint) and checked for what the
//! fetcher needs (hourly, Forbid, the key from a Secret, non-root, the entrypoint and args parse with our
//! CLI, the mounted config parses). The tools come from `.ci/setup.d/30-weather-ops-tools.sh`; a missing
//! tool fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use millionx_source_weather::cli::WeatherCommand;
use millionx_source_weather::WeatherConfig;
use serde_yaml_ng::Value;

const SETUP: &str = ".ci/setup.d/30-weather-ops-tools.sh";
/// Oldest Kubernetes release the manifest must validate against (CronJob `timeZone` is GA since 1.27).
const K8S_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn ops(rel: &str) -> PathBuf {
    common::repo_root().join("ops").join(rel)
}

/// `MILLIONX_TOOLS_BIN/<name>`, `/opt/millionx-tools/bin/<name>`, or `<name>` on PATH; panics when absent.
fn tool(name: &str) -> PathBuf {
    let dirs = std::env::var_os("MILLIONX_TOOLS_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/opt/millionx-tools/bin")])
        .chain(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default());
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found: run `bash {SETUP}` (installs it into /opt/millionx-tools/bin)");
}

fn run(tool_path: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool_path).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", tool_path.display()));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path).as_str().unwrap_or_else(|| panic!("{path} is not a string: {:?}", get(v, path)))
}

fn documents() -> Vec<Value> {
    let yaml = std::fs::read_to_string(ops("k8s/weather-fetcher-cronjob.yaml")).expect("cronjob yaml");
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect()
}

/// Dockerfile instructions as `(KEYWORD, arguments)`, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (k, rest) = current.split_once(char::is_whitespace).unwrap_or((current.as_str(), ""));
                out.push((k.to_ascii_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn cronjob_validates_against_the_kubernetes_schemas() {
    let kv = tool("kubernetes-validate");
    let file = ops("k8s/weather-fetcher-cronjob.yaml");
    let file = file.to_str().expect("utf-8 path");
    for version in K8S_VERSIONS {
        let (ok, output) = run(&kv, &["--strict", "-k", version, file]);
        assert!(ok, "kubernetes-validate {version}:\n{output}");
        assert_eq!(output.matches("passed").count(), 2, "both resources validated:\n{output}");
    }
    // The validator itself rejects an unknown field (so a pass above means something).
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    let yaml = std::fs::read_to_string(file)
        .expect("read")
        .replace("concurrencyPolicy: Forbid", "concurrencyPolicy: Forbid\n  concurencyPolicy: Allow");
    std::fs::write(&bad, yaml).expect("write");
    let (ok, output) = run(&kv, &["--strict", bad.to_str().expect("utf-8")]);
    assert!(!ok && output.contains("concurencyPolicy"), "{output}");
}

#[test]
fn cronjob_is_hourly_forbid_with_the_key_from_a_secret() {
    let docs = documents();
    let cron = docs.iter().find(|d| d["kind"] == "CronJob").expect("a CronJob");
    assert_eq!(text(cron, "apiVersion"), "batch/v1");
    let spec = &cron["spec"];
    let fields: Vec<&str> = text(spec, "schedule").split_whitespace().collect();
    assert_eq!(fields.len(), 5, "five cron fields");
    assert!(fields[0].parse::<u8>().is_ok_and(|m| m < 60), "a fixed minute: {fields:?}");
    assert_eq!(&fields[1..], ["*", "*", "*", "*"], "every hour");
    assert_eq!(text(spec, "concurrencyPolicy"), "Forbid");
    let pod = get(spec, "jobTemplate.spec.template.spec");
    assert!(["Never", "OnFailure"].contains(&text(pod, "restartPolicy")));
    assert_eq!(get(pod, "securityContext.runAsNonRoot").as_bool(), Some(true));
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let env = c["env"].as_sequence().expect("env");
    let key = env.iter().find(|e| e["name"] == "OPENWEATHER_API_KEY").expect("OPENWEATHER_API_KEY in env");
    assert!(key.get("value").is_none(), "the key is never a literal in the manifest");
    assert!(
        !text(key, "valueFrom.secretKeyRef.name").is_empty() && !text(key, "valueFrom.secretKeyRef.key").is_empty()
    );

    // The image's entrypoint plus these args is a valid `millionx weather fetch` command line whose
    // --config points at the mounted ConfigMap key, and that file's content is a valid [weather] table.
    let mut argv = entrypoint();
    argv.extend(c["args"].as_sequence().expect("args").iter().map(|a| a.as_str().expect("string arg").to_owned()));
    let args = match common::parse(&argv) {
        Ok(WeatherCommand::Fetch(a)) => a,
        other => panic!("{argv:?}: {other:?}"),
    };
    assert!(args.once && args.every.is_none());
    assert!(args.out.is_none(), "no file output: {:?}", args.out);
    assert!(args.kafka_brokers.as_deref().is_some_and(|b| !b.is_empty()), "publishes to Kafka");
    assert_eq!(args.topic.as_deref(), Some("context.weather"));
    let config_path = args.config.expect("--config");
    let mount = c["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| config_path.starts_with(text(m, "mountPath")))
        .expect("config is mounted");
    let volume =
        pod["volumes"].as_sequence().expect("volumes").iter().find(|v| v["name"] == mount["name"]).expect("volume");
    let map_name = text(volume, "configMap.name");
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == map_name)
        .expect("the ConfigMap in the file");
    let file_name = config_path.file_name().and_then(|f| f.to_str()).expect("file name");
    let toml =
        map["data"][file_name].as_str().unwrap_or_else(|| panic!("ConfigMap {map_name} has no data.{file_name}"));
    let config =
        WeatherConfig::from_document(toml, &millionx_dataflow::config::Env::empty()).expect("mounted config is valid");
    assert_eq!(config.endpoint().expect("endpoint").as_str(), "https://api.openweathermap.org/data/2.5/weather");
    assert_eq!(config.spacing_ms, 1100);
}

/// The final stage's ENTRYPOINT as argv, with the binary path reduced to `millionx`.
fn entrypoint() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(ops("Dockerfile")).expect("Dockerfile");
    let (_, json) = instructions(&dockerfile).into_iter().rfind(|(k, _)| k == "ENTRYPOINT").expect("ENTRYPOINT");
    let mut argv: Vec<String> = serde_json::from_str(&json).expect("exec-form ENTRYPOINT (a JSON array)");
    assert!(argv[0] == "millionx" || argv[0].ends_with("/millionx"), "{argv:?}");
    argv[0] = "millionx".into();
    argv
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_runs_one_round() {
    let dockerfile = std::fs::read_to_string(ops("Dockerfile")).expect("Dockerfile");
    let ins = instructions(&dockerfile);
    let stages: Vec<usize> = ins.iter().enumerate().filter(|(_, (k, _))| k == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "multi-stage");
    let build_from = &ins[stages[0]].1;
    let build_name = build_from.rsplit_once(" AS ").map(|(_, n)| n.trim().to_owned()).expect("named build stage");
    let build = &ins[stages[0]..stages[stages.len() - 1]];
    assert!(
        build.iter().any(|(k, a)| k == "RUN" && a.contains("cargo build --release --locked --bin millionx")),
        "release build of the binary from the lock file"
    );
    let last = &ins[stages[stages.len() - 1]..];
    let base = last[0].1.split_whitespace().next().expect("base image");
    assert!((base.contains(':') || base.contains('@')) && !base.ends_with(":latest"), "pinned runtime base: {base}");
    assert!(last
        .iter()
        .any(|(k, a)| k == "COPY" && a.starts_with(&format!("--from={build_name} ")) && a.contains("millionx")));
    let user = last.iter().rfind(|(k, _)| k == "USER").map(|(_, u)| u.clone()).expect("USER");
    let uid: u32 = user.split(':').next().and_then(|u| u.parse().ok()).expect("numeric uid");
    assert_ne!(uid, 0, "non-root");
    assert!(
        !ins.iter().any(|(k, a)| (k == "ENV" || k == "ARG") && a.contains("OPENWEATHER_API_KEY")),
        "no key in the image"
    );

    let argv = entrypoint();
    assert_eq!(argv, ["millionx", "weather", "fetch", "--once"]);
    assert!(matches!(common::parse(&argv), Ok(WeatherCommand::Fetch(a)) if a.once));

    let (ok, output) = run(&tool("hadolint"), &[ops("Dockerfile").to_str().expect("utf-8")]);
    assert!(ok, "hadolint:\n{output}");
}
