//! Restarts that change nothing (issue 14): a Kafka-fed run killed with SIGKILL at chosen instants — inside a
//! checkpoint's write transaction, with a batch file half-written, and at a moment that depends on scheduling —
//! then restarted with the same group, output and state folders until it finishes, must leave exactly the
//! output of an uninterrupted run: every table, class, dead letter and quality window, row for row and field for
//! field (wall-clock fields aside). Real broker (tansu); the kill points come from the test-only hook
//! `MILLIONX_TEST_PAUSE_AT` (`millionx_dataflow::test_hook`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use common::{canonical, command, run_ok};
use millionx_kafka_testing::Broker;
use millionx_snowflake_testing::Fakesnow;
use millionx_weaviate_double::WeaviateDouble;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Small epochs and batches and a checkpoint every `checkpoint_epochs` epochs (2 in most tests: a few
/// thousand records make many checkpoints, flushes and kill points). `idle_ms` is long: an idleness report
/// depends on wall-clock time, and the uninterrupted reference run must be the one deterministic answer.
fn write_config(dir: &Path, checkpoint_epochs: u64, extra: &str) -> PathBuf {
    let p = dir.join("millionx.toml");
    std::fs::write(
        &p,
        format!(
            "[batch]\nmax_records = 150\nmax_age_ms = 200\nlinger_ms = 50\n\n\
             [kafka]\nepoch_messages = 250\nidle_ms = 600000\nmax_epochs_unacknowledged = 2\nmax_poll_records = 100\n\n\
             [state]\ncheckpoint_epochs = {checkpoint_epochs}\n{extra}"
        ),
    )
    .unwrap();
    p
}

struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn start(config: &Path, out: &Path, broker: &str, group: &str, extra: &[&str], pause_at: Option<&str>) -> Run {
    let mut c = command();
    c.args(["run", "--embed", "off", "-w", "2", "--config", s(config), "--out", s(out)])
        .args(["--source", "kafka", "--brokers", broker, "--group", group, "--exit-at-end"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(p) = pause_at {
        c.env("MILLIONX_TEST_PAUSE_AT", p);
    }
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Run { child, lines }
}

/// How one interrupted attempt ended.
#[derive(Debug, PartialEq)]
enum Ending {
    Killed,
    Finished,
}

/// Runs until the hook pauses the process (then SIGKILL) or `kill_when` holds (then SIGKILL), or it ends
/// (it must end with status 0). Returns how it ended and the stderr seen.
fn attempt(run: &mut Run, kill_when: &dyn Fn() -> bool) -> (Ending, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = Vec::new();
    loop {
        while let Ok(line) = run.lines.try_recv() {
            seen.push(line);
        }
        if seen.iter().any(|l| l.contains("millionx: paused at")) || kill_when() {
            run.child.kill().unwrap(); // SIGKILL
            run.child.wait().unwrap();
            return (Ending::Killed, seen);
        }
        if let Some(status) = run.child.try_wait().unwrap() {
            while let Ok(line) = run.lines.recv_timeout(Duration::from_millis(200)) {
                seen.push(line);
            }
            assert!(status.success(), "run failed: {status}\n{}", seen.join("\n"));
            return (Ending::Finished, seen);
        }
        assert!(Instant::now() < deadline, "no kill point and no end within 180 s:\n{}", seen.join("\n"));
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn batch_files(out: &Path) -> usize {
    common::files(&out.join("snowflake")).len()
}

/// A gen.py data set (duplicates, late and bad records) when ../shared has it, else `millionx gen`'s:
/// `records` posts and as many orders.
fn dataset(dir: &Path, records: u32) -> PathBuf {
    let data = dir.join("data");
    let n = records.to_string();
    let args = ["--social", &n, "--market", &n, "--bad-rate", "0.03", "--dup-rate", "0.03", "--late-rate", "0.03"];
    if !common::gen_py(&data, &args) {
        run_ok(&[&["gen", "--out", s(&data)][..], &args[..]].concat());
    }
    data
}

/// A broker with the crash data set in its topics, `partitions` partitions each (2,500 posts and 2,500
/// orders per partition: as many epochs per partition whatever the count).
fn loaded_broker(dir: &Path, partitions: u32) -> Broker {
    let broker = Broker::start(partitions);
    let data = dataset(dir, 2500 * partitions);
    run_ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);
    broker
}

/// Runs to the end without a kill; returns the stderr lines.
fn run_to_end(config: &Path, out: &Path, broker: &str, group: &str, extra: &[&str]) -> Vec<String> {
    let mut run = start(config, out, broker, group, extra, None);
    let (ending, stderr) = attempt(&mut run, &|| false);
    assert_eq!(ending, Ending::Finished);
    stderr
}

/// The output of an uninterrupted run (group `reference`) into `out`, as [`canonical`] sets.
fn reference_output(config: &Path, out: &Path, broker: &str) -> BTreeMap<String, Vec<String>> {
    run_to_end(config, out, broker, "reference", &[]);
    canonical(out)
}

/// Kills a run at each point of `plan` in turn — `(hook, 0)` at the hook's pause, `(None, n)` once `n` more
/// batch files exist — restarting with the same group and folders, then runs to the end. A run that ends
/// before its kill point ends the plan. Returns `(kills, runs that resumed from a checkpoint)`.
fn crash_until_done(
    config: &Path,
    out: &Path,
    broker: &str,
    extra: &[&str],
    plan: &[(Option<&str>, usize)],
) -> (usize, usize) {
    let (mut kills, mut resumed) = (0, 0);
    let mut finished = false;
    for (pause_at, more_files) in plan.iter().copied() {
        let before = batch_files(out);
        let watched = out.to_owned();
        let mut run = start(config, out, broker, "crashed", extra, pause_at);
        let kill_when = move || more_files > 0 && batch_files(&watched) >= before + more_files;
        let (ending, stderr) = attempt(&mut run, &kill_when);
        resumed += usize::from(stderr.iter().any(|l| l.contains("resuming from the checkpoint")));
        if ending == Ending::Finished {
            finished = true;
            break;
        }
        kills += 1;
    }
    if !finished {
        let stderr = run_to_end(config, out, broker, "crashed", extra);
        resumed += usize::from(stderr.iter().any(|l| l.contains("resuming from the checkpoint")));
    }
    let summary = common::summary(out);
    // The last attempt stores a snapshot, or resumed from one (it may start past the last boundary it reaches).
    let state = &summary["state"];
    assert!(state["snapshots_stored"].as_u64().unwrap() > 0 || state["resumed_from_epoch"].is_u64(), "{summary}");
    (kills, resumed)
}

/// Asserts that every output set of `got` equals `want` row for row; returns one figure line per set.
fn assert_same(want: &BTreeMap<String, Vec<String>>, got: &BTreeMap<String, Vec<String>>, kills: usize) -> String {
    let mut figures = Vec::new();
    for (name, rows) in want {
        let other = &got[name];
        let lost = rows.iter().filter(|r| !other.contains(r)).count();
        let added = other.iter().filter(|r| !rows.contains(r)).count();
        figures.push(format!("{name} {} rows: {lost} lost/changed, {added} extra/changed", rows.len()));
        assert_eq!(rows.len(), other.len(), "{name}: row count after {kills} kills");
        assert!(rows == other, "{name}: {lost} reference rows missing or changed, {added} rows extra or changed");
    }
    figures.join("; ")
}

#[test]
fn kill_9_at_a_checkpoint_write_a_flush_and_at_random_then_restart_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = loaded_broker(tmp.path(), 1);
    let config = write_config(tmp.path(), 2, "");
    let want = reference_output(&config, &tmp.path().join("reference"), &broker.addr);
    assert!(want["SOCIAL_POSTS"].len() > 2000 && want["quality"].len() > 10, "the data set exercises the outputs");

    let crashed = tmp.path().join("crashed");
    let plan = [
        (Some("checkpoint:3"), 0), // inside the write transaction of the 3rd snapshot (of 2 workers)
        (Some("flush:7"), 0),      // the 7th batch file written to its temporary name, not renamed
        (None, 6),                 // once 6 more batch files exist: wherever the run is then
        (Some("checkpoint:1"), 0), // the first snapshot after a restart
        (Some("flush:25"), 0),
    ];
    let (kills, resumed) = crash_until_done(&config, &crashed, &broker.addr, &[], &plan);
    assert!(kills >= 4, "only {kills} of the planned kills happened");
    assert!(resumed >= 3, "only {resumed} restarts resumed from a checkpoint");
    let figures = assert_same(&want, &canonical(&crashed), kills);
    eprintln!("crash test (files): {kills} kills, {resumed} resumed runs; {figures}");
}

/// Two partitions per topic, each worker reading three: the workers' sources run at different epochs, a
/// caught-up worker jumps ahead, and each worker's snapshot must still cut the same epoch boundary. Then
/// the finished group is run once more (an operator restarting a service that had nothing left to do):
/// the output stays as it was.
#[test]
fn two_partitions_per_topic_kill_9_then_restart_and_rerun_equal_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = loaded_broker(tmp.path(), 2);
    let config = write_config(tmp.path(), 2, "");
    let want = reference_output(&config, &tmp.path().join("reference"), &broker.addr);
    assert!(want["SOCIAL_POSTS"].len() > 4000 && want["quality"].len() > 10, "the data set exercises the outputs");
    let again = tmp.path().join("again");
    run_to_end(&config, &again, &broker.addr, "again", &[]);
    assert_same(&want, &canonical(&again), 0);

    let crashed = tmp.path().join("crashed");
    let plan = [(Some("checkpoint:3"), 0), (None, 6), (Some("flush:9"), 0), (Some("checkpoint:2"), 0)];
    let (kills, resumed) = crash_until_done(&config, &crashed, &broker.addr, &[], &plan);
    assert!(kills >= 3 && resumed >= 2, "{kills} kills, {resumed} resumed runs");
    let figures = assert_same(&want, &canonical(&crashed), kills);
    run_to_end(&config, &crashed, &broker.addr, "crashed", &[]);
    let rerun = assert_same(&want, &canonical(&crashed), kills);
    eprintln!("crash test (2 partitions): {kills} kills, {resumed} resumed runs; {figures}; after a re-run: {rerun}");
}

/// SIGTERM before the first checkpoint (one every 1,000 epochs): the run drains and exits 0 but has no
/// snapshot, so it must not commit what it read; the restart then starts from the beginning and the output
/// equals an uninterrupted run's.
#[test]
fn sigterm_before_the_first_checkpoint_commits_nothing_and_the_restart_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = loaded_broker(tmp.path(), 2);
    let config = write_config(tmp.path(), 1000, "");
    let want = reference_output(&config, &tmp.path().join("reference"), &broker.addr);

    let out = tmp.path().join("stopped");
    let mut run = start(&config, &out, &broker.addr, "stopped", &[], None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while batch_files(&out) < 4 {
        assert!(run.child.try_wait().unwrap().is_none(), "the run ended before the signal");
        assert!(Instant::now() < deadline, "no batch files within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill").args(["-TERM", &run.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(run.child.wait().unwrap().success(), "SIGTERM drains and exits 0");
    let summary = common::summary(&out);
    assert_eq!(summary["stopped_by_signal"], true, "{summary}");
    assert!(summary["state"]["newest_epoch"].is_null(), "no checkpoint before the signal: {summary}");

    let stderr = run_to_end(&config, &out, &broker.addr, "stopped", &[]);
    assert!(!stderr.iter().any(|l| l.contains("resuming from the checkpoint")), "{}", stderr.join("\n"));
    let figures = assert_same(&want, &canonical(&out), 1);
    eprintln!("crash test (SIGTERM, no checkpoint): {figures}");
}

/// The Weaviate double's objects of both classes, by id, without the wall-clock property.
fn weaviate_objects(double: &WeaviateDouble) -> BTreeMap<String, Vec<String>> {
    ["SocialPost", "MarketOrder"]
        .iter()
        .map(|class| {
            let mut objects: Vec<String> = double
                .objects(class)
                .into_iter()
                .map(|mut o| {
                    o.properties.remove("ingestedAt");
                    format!("{} {}", o.id, serde_json::Value::Object(o.properties))
                })
                .collect();
            objects.sort();
            (class.to_string(), objects)
        })
        .collect()
}

#[test]
fn kill_9_into_the_weaviate_double_then_restart_stores_exactly_the_uninterrupted_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = loaded_broker(tmp.path(), 1);
    let (reference_double, crashed_double) = (WeaviateDouble::start().unwrap(), WeaviateDouble::start().unwrap());
    let configs: Vec<PathBuf> = [&reference_double, &crashed_double]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let dir = tmp.path().join(format!("c{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let config = write_config(&dir, 2, &format!("[weaviate]\nurl = \"{}\"\n", d.url()));
            run_ok(&["weaviate", "schema", "--config", s(&config)]);
            config
        })
        .collect();
    let sink = ["--sink", "weaviate"];

    let reference = tmp.path().join("reference");
    run_to_end(&configs[0], &reference, &broker.addr, "reference", &sink);
    let want = weaviate_objects(&reference_double);
    assert!(want["SocialPost"].len() > 2000, "the data set reaches Weaviate");

    let crashed = tmp.path().join("crashed");
    let plan = [(Some("checkpoint:3"), 0), (None, 5), (Some("checkpoint:2"), 0)];
    let (kills, resumed) = crash_until_done(&configs[1], &crashed, &broker.addr, &sink, &plan);
    assert!(kills >= 2 && resumed >= 2, "{kills} kills, {resumed} resumed runs");
    let figures = assert_same(&want, &weaviate_objects(&crashed_double), kills);
    let files = assert_same(&canonical(&reference), &canonical(&crashed), kills);
    eprintln!("crash test (Weaviate double): {kills} kills, {resumed} resumed runs; {figures}; files: {files}");
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The Snowflake tables as comparable rows (every column but `INGESTED_AT`), sorted; one list per table.
fn snowflake_rows(config: &Path) -> BTreeMap<String, Vec<String>> {
    use millionx_sink_snowflake::sql::client::SqlClient;
    let sf = millionx::config::RunConfig::from_file(config, &millionx_dataflow::config::Env::process())
        .unwrap()
        .snowflake
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let metrics = std::sync::Arc::new(millionx_sink_snowflake::Metrics::default());
    let client =
        SqlClient::new(&sf, sf.resolve_credentials(&millionx_dataflow::config::Env::process()).unwrap(), metrics)
            .unwrap();
    ["SOCIAL_POSTS", "MARKET_ORDERS", "PRICE_HISTORY", "WEATHER_LOGS"]
        .iter()
        .map(|table| {
            let sql = format!("SELECT * FROM MILLIONX.RAW_DATA.{table}");
            let rows = rt.block_on(client.execute_once(&sql, None)).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let mut out: Vec<String> = rows
                .iter()
                .map(|r| {
                    let mut cols: Vec<String> = r
                        .iter()
                        .filter(|(k, _)| k.as_str() != "INGESTED_AT")
                        .map(|(k, v)| format!("{k}={}", text(v)))
                        .collect();
                    cols.sort();
                    cols.join("|")
                })
                .collect();
            out.sort();
            (table.to_string(), out)
        })
        .collect()
}

#[test]
fn kill_9_into_fakesnow_then_restart_leaves_exactly_the_uninterrupted_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = loaded_broker(tmp.path(), 1);
    let password = tmp.path().join("password");
    std::fs::write(&password, "test\n").unwrap();
    let mut emulators = Vec::new();
    let configs: Vec<PathBuf> = (0..2)
        .map(|i| {
            let dir = tmp.path().join(format!("sf{i}"));
            std::fs::create_dir_all(dir.join("db")).unwrap();
            let emulator = Fakesnow::start_persistent(&dir.join("db")).unwrap_or_else(|e| panic!("{e}"));
            let table = format!(
                "[snowflake]\naccount = \"fakesnow\"\nhost = \"{}\"\nuser = \"millionx\"\n[snowflake.auth]\n\
                 type = \"password\"\npassword = {{ file = \"{}\" }}\n",
                emulator.url(),
                password.display()
            );
            emulators.push(emulator);
            let config = write_config(&dir, 2, &table);
            run_ok(&["snowflake", "schema", "--apply", "--config", s(&config)]);
            config
        })
        .collect();
    let sink = ["--sink", "snowflake"];

    run_to_end(&configs[0], &tmp.path().join("reference"), &broker.addr, "reference", &sink);
    let want = snowflake_rows(&configs[0]);
    assert!(want["SOCIAL_POSTS"].len() > 2000, "the data set reaches Snowflake");

    let crashed = tmp.path().join("crashed");
    let plan = [(Some("checkpoint:3"), 0), (Some("checkpoint:2"), 0), (Some("checkpoint:4"), 0)];
    let (kills, resumed) = crash_until_done(&configs[1], &crashed, &broker.addr, &sink, &plan);
    assert!(kills >= 2 && resumed >= 2, "{kills} kills, {resumed} resumed runs");
    let figures = assert_same(&want, &snowflake_rows(&configs[1]), kills);
    eprintln!("crash test (fakesnow): {kills} kills, {resumed} resumed runs; {figures}");
}

/// The chaos benchmark (`benchmarks/chaos.sh`; ignored in the suite): `MILLIONX_CHAOS_KILLS` (default 20)
/// SIGKILLs at random instants (0.2–2.5 s into each attempt) of a run over `MILLIONX_CHAOS_PARTITIONS`
/// (default 1) partitions per topic, then the comparison with the uninterrupted run,
/// and the cost of checkpoints: the uninterrupted run's wall time with and without state, snapshot size and
/// store time. Prints one `chaos:` line per figure.
#[test]
#[ignore = "benchmark: run by benchmarks/chaos.sh"]
fn chaos_kill_9_at_random_instants() {
    let kills: usize = std::env::var("MILLIONX_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let size = std::env::var("MILLIONX_CHAOS_RECORDS").unwrap_or_else(|_| "25000".to_owned());
    let partitions: u32 = std::env::var("MILLIONX_CHAOS_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let broker = Broker::start(partitions);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args =
        ["--social", &size, "--market", &size, "--bad-rate", "0.03", "--dup-rate", "0.03", "--late-rate", "0.03"];
    if !common::gen_py(&data, &args) {
        run_ok(&[&["gen", "--out", s(&data)][..], &args[..]].concat());
    }
    run_ok(&["produce", "--input", s(&data), "--brokers", &broker.addr]);
    let config = write_config(tmp.path(), 2, "");

    let timed = |group: &str, extra: &[&str]| {
        let out = tmp.path().join(group);
        let started = Instant::now();
        run_to_end(&config, &out, &broker.addr, group, extra);
        (out, started.elapsed())
    };
    let (_, without) = timed("no-state", &["--no-state"]);
    let (reference, with) = timed("reference", &[]);
    let summary = common::summary(&reference);
    eprintln!("chaos: wall time without checkpoints {:.2} s, with {:.2} s", without.as_secs_f64(), with.as_secs_f64());
    eprintln!("chaos: checkpoints {}", summary["state"]);
    let want = canonical(&reference);

    let crashed = tmp.path().join("crashed");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut done = 0;
    let mut finished_early = 0;
    while done < kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(200 + seed % 2300);
        let at = Instant::now() + delay;
        let mut run = start(&config, &crashed, &broker.addr, "crashed", &[], None);
        match attempt(&mut run, &move || Instant::now() >= at).0 {
            Ending::Killed => done += 1,
            Ending::Finished => {
                // The group is finished: a further restart replays only the tail after the last checkpoint.
                finished_early += 1;
                if finished_early > 3 {
                    break;
                }
            }
        }
    }
    run_to_end(&config, &crashed, &broker.addr, "crashed", &[]);
    let figures = assert_same(&want, &canonical(&crashed), done);
    eprintln!("chaos: {done} kills ({finished_early} attempts ended before their kill); {figures}");
}
