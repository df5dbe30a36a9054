//! Kafka in and out against a real Kafka-protocol broker (tansu, installed by .ci/setup.d/50-kafka.sh).
//! Each test starts its own broker on a free 127.0.0.1 port and FAILS when the broker binary is missing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{canonical, command, ndjson};
use millionx_kafka_testing::Broker;
use serde_json::Value;

fn run_ok(args: &[&str]) -> std::process::Output {
    let out = command().args(args).env("MILLIONX_PII_KEY", "test-key").output().expect("run millionx");
    assert!(
        out.status.success(),
        "millionx {args:?} failed:\nstdout:{}\nstderr:{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn gen(dir: &Path, social: usize, market: usize) {
    run_ok(&["gen", "--out", dir.to_str().unwrap(), "--social", &social.to_string(), "--market", &market.to_string()]);
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("millionx.toml");
    std::fs::write(
        &p,
        format!("[input]\nepoch_lines = 500\n\n[batch]\nmax_records = 400\nmax_age_ms = 200\n\n[kafka]\nepoch_messages = 500\nidle_ms = 500\n{extra}"),
    )
    .unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Dead letters keyed the same way for both sources: `{file, line}` → `{topic, partition 0, offset line-1}`.
fn normalise_dlq(sets: &mut BTreeMap<String, Vec<String>>) {
    let file_topic = |f: &str| match f {
        "social.jsonl" => "validated.social",
        "market.jsonl" => "validated.market",
        "weather.jsonl" => "context.weather",
        other => panic!("unknown file {other}"),
    };
    let mut out: Vec<String> = sets["dlq"]
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let src = v["source"].clone();
            if let Some(f) = src.get("file") {
                let line = src["line"].as_u64().unwrap();
                v["source"] =
                    serde_json::json!({"topic": file_topic(f.as_str().unwrap()), "partition": 0, "offset": line - 1});
            }
            v.to_string()
        })
        .collect();
    out.sort();
    sets.insert("dlq".into(), out);
}

fn rows(sets: &BTreeMap<String, Vec<String>>) -> usize {
    sets.values().map(Vec::len).sum()
}

#[test]
fn kafka_replay_with_two_workers_equals_the_file_replay_and_commits_the_end() {
    let broker = Broker::start(1);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen(&data, 3000, 3000);
    let config = write_config(tmp.path(), "");
    run_ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);

    let out_file = tmp.path().join("out-file");
    run_ok(&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--input", s(&data), "--out", s(&out_file)]);
    let out_kafka = tmp.path().join("out-kafka");
    let k = ["--source", "kafka", "--brokers", &broker.addr, "--group", "accept", "--exit-at-end"];
    run_ok(
        &[&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out_kafka)][..], &k[..]].concat(),
    );

    let mut want = canonical(&out_file);
    normalise_dlq(&mut want);
    let got = canonical(&out_kafka);
    assert!(want["SOCIAL_POSTS"].len() > 2000 && want["dlq"].len() > 50, "the data set exercises every output");
    for (name, rows) in &want {
        assert_eq!(rows.len(), got[name].len(), "{name}: row count");
        assert!(rows == &got[name], "{name}: Kafka rows differ from the file rows");
    }

    // Offsets were committed at the end of every partition: the same group reads nothing more.
    let out_again = tmp.path().join("out-again");
    run_ok(
        &[&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out_again)][..], &k[..]].concat(),
    );
    assert_eq!(rows(&canonical(&out_again)), 0, "a rerun of the group re-read committed messages");

    // A new group starts from the earliest offsets again (auto.offset.reset = earliest).
    let out_new = tmp.path().join("out-new");
    let k2 = ["--source", "kafka", "--brokers", &broker.addr, "--group", "fresh", "--exit-at-end", "-w", "1"];
    run_ok(&[&["run", "--embed", "off", "--config", s(&config), "--out", s(&out_new)][..], &k2[..]].concat());
    assert_eq!(canonical(&out_new)["SOCIAL_POSTS"], got["SOCIAL_POSTS"]);
}

/// Two processes (`-n 2`, two workers each, one consumer group) over topics with two partitions write the same
/// rows, record by record, as one process with one worker (with its durable state on), and together commit the end
/// of every partition.
#[test]
fn two_processes_reading_one_group_write_the_rows_of_one_process() {
    let broker = Broker::start(2);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen(&data, 4000, 4000);
    let config = write_config(tmp.path(), "");
    run_ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);
    let total = lines(&data.join("social.jsonl")) + lines(&data.join("market.jsonl"));
    let run = |out: &Path, group: &str, extra: &[&str]| {
        command()
            .args(["run", "--embed", "off", "--config", s(&config), "--out", s(out)])
            .args(["--source", "kafka", "--brokers", &broker.addr, "--group", group, "--exit-at-end"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let out_one = tmp.path().join("out-one");
    let mut one = run(&out_one, "one", &["-w", "1"]);
    assert!(common::wait_exit(&mut one, Duration::from_secs(120), "the -n 1 run").success());

    let out_two = tmp.path().join("out-two");
    let ports: Vec<u16> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let hostfile = tmp.path().join("hosts");
    std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1])).unwrap();
    // Durable state is per process and refused with `-n > 1` (README, the Kafka row), hence `--no-state`.
    let cluster = |p: &str| run(&out_two, "two", &["-w", "2", "-n", "2", "-p", p, "-h", s(&hostfile), "--no-state"]);
    let mut p0 = cluster("0");
    std::thread::sleep(Duration::from_millis(300));
    let mut p1 = cluster("1");
    for (p, child) in [("0", &mut p0), ("1", &mut p1)] {
        let status = common::wait_exit(child, Duration::from_secs(120), &format!("-n 2 process {p}"));
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "-n 2 process {p}: {status}\n{err}");
    }

    let (want, got) = (canonical(&out_one), canonical(&out_two));
    assert!(want["SOCIAL_POSTS"].len() > 3000 && !want["dlq"].is_empty() && !want["quality"].is_empty());
    for (name, rows) in &want {
        assert_eq!(rows.len(), got[name].len(), "{name}: row count");
        for (i, (a, b)) in rows.iter().zip(&got[name]).enumerate() {
            assert_eq!(a, b, "{name}: row {i} of the sorted rows differs");
        }
    }
    // Every worker of both processes wrote its share (worker 3 is process 1's second worker).
    let writers: BTreeSet<String> = common::files(&out_two.join("snowflake"))
        .iter()
        .filter_map(|f| f.file_name()?.to_str()?.get(..4).map(str::to_owned))
        .collect();
    assert!(writers.contains("w000") && writers.contains("w003"), "files by worker: {writers:?}");
    assert_eq!(committed_total(&broker.addr, "one"), total);
    assert_eq!(committed_total(&broker.addr, "two"), total, "-n 2 committed the end of every record partition");
}

fn ids(dir: &Path, table: &str, key: &str) -> BTreeSet<String> {
    ndjson(&dir.join("snowflake").join(table)).iter().map(|r| r[key].as_str().unwrap().to_owned()).collect()
}

#[test]
fn sigkill_mid_run_then_restart_loses_nothing_and_commits_the_end() {
    let broker = Broker::start(2);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen(&data, 20000, 20000);
    // Small epochs and a tight in-flight bound: the run takes long enough to be killed mid-way.
    let config = write_config(tmp.path(), "max_epochs_unacknowledged = 2\nmax_poll_records = 200\n");
    run_ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);
    let out_file = tmp.path().join("out-file");
    run_ok(&["run", "--embed", "off", "--config", s(&config), "--input", s(&data), "--out", s(&out_file)]);

    let out1 = tmp.path().join("out-1");
    let mut child = command()
        .args(["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out1)])
        .args(["--source", "kafka", "--brokers", &broker.addr, "--group", "kill", "--exit-at-end"])
        .env("MILLIONX_PII_KEY", "test-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some rows are written (at a point that depends on scheduling, not on a fixed line).
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::files(&out1.join("snowflake")).len() < 4 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < deadline, "no output within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = ids(&out1, "SOCIAL_POSTS", "POST_ID");

    let out2 = tmp.path().join("out-2");
    let k = ["--source", "kafka", "--brokers", &broker.addr, "--group", "kill", "--exit-at-end"];
    run_ok(&[&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out2)][..], &k[..]].concat());
    for (table, key) in [("SOCIAL_POSTS", "POST_ID"), ("MARKET_ORDERS", "ORDER_ID")] {
        let want = ids(&out_file, table, key);
        let got: BTreeSet<String> = ids(&out1, table, key).union(&ids(&out2, table, key)).cloned().collect();
        assert_eq!(got.len(), want.len(), "{table}: ids in the effective result");
        assert!(got == want, "{table}: ids differ from the file replay");
    }
    assert!(!partial.is_empty() && partial.len() < ids(&out_file, "SOCIAL_POSTS", "POST_ID").len(), "killed mid-run");

    // Committed offsets are at the end of every partition: the group reads nothing more.
    let out3 = tmp.path().join("out-3");
    run_ok(&[&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out3)][..], &k[..]].concat());
    assert_eq!(rows(&canonical(&out3)), 0);
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

fn written(dir: &Path) -> usize {
    ["SOCIAL_POSTS", "MARKET_ORDERS"].iter().map(|t| ndjson(&dir.join("snowflake").join(t)).len()).sum()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_sink_stalled_for_30_s_pauses_consumption_commits_nothing_and_the_run_completes_on_recovery() {
    let input = Broker::start(2);
    let dlq = Broker::start(1);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen(&data, 20000, 20000);
    let config = write_config(
        tmp.path(),
        &format!("max_epochs_unacknowledged = 2\nproduce_dlq = true\ndlq_brokers = \"{}\"\n", dlq.addr),
    );
    run_ok(&["produce", "--input", s(&data), "--brokers", &input.addr]);
    let out_file = tmp.path().join("out-file");
    run_ok(&["run", "--embed", "off", "--config", s(&config), "--input", s(&data), "--out", s(&out_file)]);
    let total = written(&out_file);

    // The DLQ broker stalls (SIGSTOP) for 30 s: the DLQ sink cannot acknowledge its first batch, so the
    // run pauses (max_epochs_unacknowledged) and commits nothing; when the broker resumes, the same run
    // completes by itself (--exit-at-end).
    signal(dlq.child.id(), "-STOP");
    let spawn = |out: &Path, group: &str, extra: &[&str]| {
        command()
            .args(["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(out)])
            .args(["--source", "kafka", "--brokers", &input.addr, "--group", group])
            .args(extra)
            .env("MILLIONX_PII_KEY", "test-key")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out1 = tmp.path().join("out-1");
    let stalled_at = Instant::now();
    let mut child = spawn(&out1, "stall", &["--exit-at-end"]);
    std::thread::sleep(Duration::from_secs(6));
    let (rows_a, rss_a) = (written(&out1), rss_kib(child.id()));
    std::thread::sleep(Duration::from_secs(30).saturating_sub(stalled_at.elapsed()));
    let (rows_b, rss_b) = (written(&out1), rss_kib(child.id()));
    assert!(child.try_wait().unwrap().is_none(), "the run must wait for the stalled sink, not fail");
    assert_eq!(rows_a, rows_b, "consumption continued while the DLQ sink was stalled");
    assert!(rows_b < total / 2, "paused early: {rows_b} of {total} rows written");
    assert!(rss_b < 400 * 1024 && rss_b <= rss_a + 32 * 1024, "memory grew while paused: {rss_a} → {rss_b} KiB");
    // Nothing was committed during the stall: a second consumer of the same group would start at 0.
    assert_eq!(committed_total(&input.addr, "stall"), 0, "offsets committed past the stall");
    signal(dlq.child.id(), "-CONT");
    let recovered = Instant::now();
    let status = common::wait_exit(&mut child, Duration::from_secs(120), "the run after the sink recovered");
    assert!(status.success(), "the run must complete once the sink recovers, got {status}");
    eprintln!("stalled 30 s; completed {:?} after the sink recovered", recovered.elapsed());
    for (table, key) in [("SOCIAL_POSTS", "POST_ID"), ("MARKET_ORDERS", "ORDER_ID")] {
        assert_eq!(ids(&out1, table, key), ids(&out_file, table, key), "{table}");
    }
    // The dead letters went to the DLQ topic, not to files.
    assert!(common::files(&out1.join("dlq")).is_empty());
    // Completion committed the end of every partition: the group has nothing left to read.
    let out3 = tmp.path().join("out-3");
    let k = ["--source", "kafka", "--brokers", &input.addr, "--group", "stall", "--exit-at-end"];
    run_ok(&[&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out3)][..], &k[..]].concat());
    assert_eq!(rows(&canonical(&out3)), 0);

    // A live run (no --exit-at-end) stops on SIGINT once caught up: flush, commit, exit 0.
    let out2 = tmp.path().join("out-2");
    let mut child = spawn(&out2, "live", &[]);
    // Caught up: rows stop growing. Records after the last weather reading wait for the weather watermark
    // (live semantics) until the shutdown ends the inputs.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut last, mut stable_since) = (0, Instant::now());
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the live run ended by itself");
        assert!(Instant::now() < deadline, "did not catch up: {} of {total} rows", written(&out2));
        let now = written(&out2);
        if now != last {
            (last, stable_since) = (now, Instant::now());
        } else if now * 10 >= total * 9 && stable_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(child.id(), "-INT");
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGINT must drain and exit 0, got {status}");
    assert!(started.elapsed() < Duration::from_secs(30), "shutdown took {:?}", started.elapsed());
    for (table, key) in [("SOCIAL_POSTS", "POST_ID"), ("MARKET_ORDERS", "ORDER_ID")] {
        assert_eq!(ids(&out2, table, key), ids(&out_file, table, key), "{table}");
    }
    // The SIGINT shutdown committed the end of every partition.
    let out4 = tmp.path().join("out-4");
    let k = ["--source", "kafka", "--brokers", &input.addr, "--group", "live", "--exit-at-end"];
    run_ok(&[&["run", "--embed", "off", "-w", "2", "--config", s(&config), "--out", s(&out4)][..], &k[..]].concat());
    assert_eq!(rows(&canonical(&out4)), 0);
}

/// The sum of the offsets `group` has committed on the two record topics' partitions (a partition
/// without a commit counts 0).
fn committed_total(brokers: &str, group: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for topic in ["validated.social", "validated.market"] {
        for p in 0..2 {
            list.add_partition(topic, p);
        }
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed.elements().iter().filter_map(|e| e.offset().to_raw()).filter(|o| *o > 0).sum()
}

/// Samples of a Prometheus text exposition named `name`: `{labels}` text → value.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
            (n == name).then(|| (labels.to_owned(), value.parse::<f64>().unwrap()))
        })
        .collect()
}

fn scrape(addr: &str) -> String {
    let out = Command::new("curl").args(["-sf", &format!("http://{addr}/metrics")]).output().expect("curl");
    assert!(out.status.success(), "scraping {addr}");
    String::from_utf8(out.stdout).unwrap()
}

fn lines(p: &Path) -> i64 {
    std::fs::read_to_string(p).unwrap().lines().count() as i64
}

/// Default batch settings (1,000 records / 60 s, linger 500 ms): a caught-up live run commits the end of every
/// partition while it is still running (before 60 s, i.e. not by `max_age`), and its /metrics shows the
/// consumer lag per topic/partition (0 at the end), commit durations per worker and the commit-error counter.
#[test]
fn live_run_with_default_batches_commits_while_running_and_exports_lag_and_commit_metrics() {
    let broker = Broker::start(2);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen(&data, 20000, 20000);
    run_ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);
    let total = lines(&data.join("social.jsonl")) + lines(&data.join("market.jsonl"));
    let out = tmp.path().join("out");
    let mut child = command()
        .args(["run", "--embed", "off", "-w", "2", "--out", s(&out)])
        .args(["--source", "kafka", "--brokers", &broker.addr, "--group", "live-defaults"])
        .args(["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "60"])
        .env("MILLIONX_PII_KEY", "test-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |needle: &str| loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("no `{needle}` on stderr"));
        if line.contains(needle) {
            return line;
        }
    };
    let addr = wait_line("metrics: serving http://")
        .trim_start_matches("metrics: serving http://")
        .trim_end_matches("/metrics")
        .to_owned();

    // The whole input committed while the run is still running. The guard (50 s) is below max_age (60 s):
    // a sink holding its last partial batch until max_age would fail here.
    let guard = Instant::now() + Duration::from_secs(50);
    let mut committed = 0;
    while committed < total {
        assert!(child.try_wait().unwrap().is_none(), "the live run ended by itself");
        assert!(Instant::now() < guard, "only {committed} of {total} offsets committed while running");
        std::thread::sleep(Duration::from_millis(200));
        committed = committed_total(&broker.addr, "live-defaults");
    }
    assert_eq!(committed, total, "committed offsets = the topics' ends");
    let running = scrape(&addr);
    let commits = samples(&running, "millionx_kafka_commit_duration_seconds_count");
    assert!(commits.values().sum::<f64>() >= 2.0, "commits observed before the end: {commits:?}");

    signal(child.id(), "-INT");
    wait_line("run finished");
    let end = scrape(&addr);
    child.kill().unwrap();
    child.wait().unwrap();

    let lag = samples(&end, "millionx_kafka_consumer_lag_messages");
    for topic in ["validated.social", "validated.market", "context.weather"] {
        for p in 0..2 {
            let key = format!("{{partition=\"{p}\",topic=\"{topic}\"}}");
            assert_eq!(lag.get(&key), Some(&0.0), "lag of {topic}[{p}] at the end: {lag:?}");
        }
    }
    let commits = samples(&end, "millionx_kafka_commit_duration_seconds_count");
    assert_eq!(commits.len(), 2, "one commit-duration series per worker: {commits:?}");
    assert!(commits.values().all(|n| *n >= 1.0));
    let sum: f64 = samples(&end, "millionx_kafka_commit_duration_seconds_sum").values().sum();
    assert!(sum > 0.0 && sum < 10.0 * commits.values().sum::<f64>(), "commit durations (s): {sum}");
    let errors = samples(&end, "millionx_kafka_commit_errors_total");
    assert_eq!(errors.get("{reason=\"request_timed_out\"}"), Some(&0.0), "commit errors: {errors:?}");
}
