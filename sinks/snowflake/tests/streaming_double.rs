//! Method `snowpipe_streaming` against the double of the REST API (`streaming::double`), and against a real
//! account when `MILLIONX_SNOWFLAKE_STREAMING_CONFIG` names a `[snowflake]` TOML file (method
//! `snowpipe_streaming`, key-pair auth, schema applied).

mod common;

use std::time::Duration;

use common::{batch, drive, social_rows};
use millionx_dataflow::config::ConnectorConfig as _;
use millionx_sink_snowflake::config::SnowflakeConfig;
use millionx_sink_snowflake::{SnowflakeSink, Table};
use millionx_sink_util::Framing;
use millionx_snowflake_testing::{generate_key_pair, streaming_config};
use millionx_snowflake_testing::{DoubleConfig, Faults, StreamingDouble};
use serde_json::Value;

struct Setup {
    double: StreamingDouble,
    config: SnowflakeConfig,
    _dir: tempfile::TempDir,
}

fn setup(commit_delay: Duration) -> Setup {
    let (private, public) = generate_key_pair().expect("key pair");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("rsa_key.p8");
    std::fs::write(&key, private).expect("write key");
    let double = StreamingDouble::start(DoubleConfig::for_tests(public, commit_delay)).expect("double");
    let config = streaming_config(&double.url(), &key);
    Setup { double, config, _dir: dir }
}

fn ids(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r["POST_ID"].as_str().unwrap_or("?").to_owned()).collect();
    v.sort();
    v
}

#[test]
fn rows_are_acknowledged_once_committed_and_a_restart_resumes_after_the_committed_token() {
    let s = setup(Duration::from_millis(150));
    let sink = SnowflakeSink::connect(&s.config).expect("connect");
    assert_eq!(sink.framing(), Framing::NDJSON);
    let mut writer = sink.writer(Table::SocialPosts);
    // Two partitions interleaved in each batch.
    let mk = |seq: u64, from: u64, to: u64| {
        let mut rows = social_rows(0, from, to);
        rows.extend(social_rows(1, from + 1000, to + 1000));
        batch(seq, &rows, Framing::NDJSON)
    };
    let batches = vec![mk(0, 0, 40), mk(1, 40, 100)];
    let done = drive(&mut writer, batches.clone(), Duration::from_secs(30));
    for c in &done {
        assert!(c.result.is_ok(), "{:?}", c.result);
    }
    // Completion waited for the commit: every row is already in the table.
    let rows = s.double.rows(Table::SocialPosts);
    assert_eq!(rows.len(), 200);
    assert_eq!(s.double.committed_token(Table::SocialPosts, "MILLIONX_SOCIAL_POSTS_0").as_deref(), Some("99"));
    assert_eq!(s.double.committed_token(Table::SocialPosts, "MILLIONX_SOCIAL_POSTS_1").as_deref(), Some("1099"));

    // A restarted run (new sink, new channels) replays from an older Kafka offset: rows at or below the
    // committed token are skipped, newer ones appended once.
    let sink2 = SnowflakeSink::connect(&s.config).expect("connect again");
    let done = drive(&mut sink2.writer(Table::SocialPosts), vec![mk(0, 60, 120)], Duration::from_secs(30));
    assert!(done[0].result.is_ok(), "{:?}", done[0].result);
    let rows = s.double.rows(Table::SocialPosts);
    assert_eq!(rows.len(), 240, "only offsets 100..120 of each partition are new");
    let unique = ids(&rows);
    let mut dedup = unique.clone();
    dedup.dedup();
    assert_eq!(unique, dedup, "no row twice");
    assert_eq!(s.double.committed_token(Table::SocialPosts, "MILLIONX_SOCIAL_POSTS_0").as_deref(), Some("119"));
}

#[test]
fn throttling_and_unavailability_are_retried_without_duplicates() {
    let s = setup(Duration::from_millis(30));
    let sink = SnowflakeSink::connect(&s.config).expect("connect");
    let mut writer = sink.writer(Table::SocialPosts);
    s.double.set_faults(Faults { every_nth_append: 3, status: 503 });
    let batches: Vec<_> = (0..6u64).map(|i| batch(i, &social_rows(2, i * 25, (i + 1) * 25), Framing::NDJSON)).collect();
    let done = drive(&mut writer, batches[..3].to_vec(), Duration::from_secs(30));
    s.double.set_faults(Faults { every_nth_append: 2, status: 429 });
    let done2 = drive(&mut writer, batches[3..].to_vec(), Duration::from_secs(30));
    let retries: u32 = done.iter().chain(&done2).map(|c| c.result.as_ref().map_or(0, |o| o.retries)).sum();
    for c in done.iter().chain(&done2) {
        assert!(c.result.is_ok(), "{:?}", c.result);
    }
    assert!(retries >= 2, "faults were met and retried ({retries})");
    let rows = s.double.rows(Table::SocialPosts);
    assert_eq!(rows.len(), 150);
    let unique = ids(&rows);
    let mut dedup = unique.clone();
    dedup.dedup();
    assert_eq!(unique.len(), dedup.len(), "no duplicates after retries");
    let m = sink.metrics();
    assert!(m.errors.get("SERVICE_UNAVAILABLE").copied().unwrap_or(0) >= 1, "{m:?}");
    assert!(m.errors.get("THROTTLED").copied().unwrap_or(0) >= 1, "{m:?}");
}

#[test]
fn a_stale_continuation_token_reopens_the_channel_and_resends_only_what_is_not_committed() {
    let s = setup(Duration::from_millis(20));
    let a = SnowflakeSink::connect(&s.config).expect("connect");
    let b = SnowflakeSink::connect(&s.config).expect("connect");
    let (mut wa, mut wb) = (a.writer(Table::SocialPosts), b.writer(Table::SocialPosts));
    let ok = |done: Vec<millionx_sink_util::Completion>| {
        for c in &done {
            assert!(c.result.is_ok(), "{:?}", c.result);
        }
    };
    ok(drive(&mut wa, vec![batch(0, &social_rows(0, 0, 10), Framing::NDJSON)], Duration::from_secs(30)));
    // A second client opens the same channel: the first one's continuation token is now stale.
    ok(drive(&mut wb, vec![batch(0, &social_rows(0, 10, 30), Framing::NDJSON)], Duration::from_secs(30)));
    // The first client's next batch overlaps what the second committed (20..30) and adds 30..40.
    ok(drive(&mut wa, vec![batch(1, &social_rows(0, 20, 40), Framing::NDJSON)], Duration::from_secs(30)));
    let rows = s.double.rows(Table::SocialPosts);
    assert_eq!(ids(&rows), (0..40).map(|i| format!("S-0-{i:09}")).collect::<Vec<_>>());
    assert_eq!(s.double.committed_token(Table::SocialPosts, "MILLIONX_SOCIAL_POSTS_0").as_deref(), Some("39"));
    assert!(a.metrics().errors.contains_key("STALE_CONTINUATION_TOKEN_SEQUENCER"), "{:?}", a.metrics());
}

#[test]
fn rows_the_service_rejects_fail_the_batch_loudly() {
    let s = setup(Duration::from_millis(10));
    let sink = SnowflakeSink::connect(&s.config).expect("connect");
    let mut rows = social_rows(0, 0, 5);
    rows[2].1["NOT_A_COLUMN"] = Value::from(1);
    let done =
        drive(&mut sink.writer(Table::SocialPosts), vec![batch(0, &rows, Framing::NDJSON)], Duration::from_secs(30));
    let err = done[0].result.as_ref().expect_err("the batch must not be acknowledged");
    assert!(err.message.contains("rejected 1 row(s)") && err.message.contains("unknown column NOT_A_COLUMN"), "{err}");
    assert_eq!(err.sink, "snowflake/SOCIAL_POSTS");
}

#[test]
fn a_key_the_account_does_not_know_is_refused_at_connect() {
    let s = setup(Duration::from_millis(10));
    let (other, _) = generate_key_pair().expect("key pair");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("other.p8");
    std::fs::write(&key, other).expect("write");
    let config = streaming_config(&s.double.url(), &key);
    let started = std::time::Instant::now();
    let err = SnowflakeSink::connect(&config).expect_err("wrong key");
    assert!(started.elapsed() < Duration::from_secs(2), "a refused key is not retried");
    assert!(err.message.contains("signature does not match"), "{err}");
}

/// Runs the basic append/commit cycle against a real account when configured (skipped otherwise, saying so).
#[test]
fn real_account_when_configured() {
    let Some(path) = std::env::var_os("MILLIONX_SNOWFLAKE_STREAMING_CONFIG") else {
        eprintln!("skipped: MILLIONX_SNOWFLAKE_STREAMING_CONFIG is not set (runs against a real account)");
        return;
    };
    let text = std::fs::read_to_string(path).expect("config file");
    let config = SnowflakeConfig::from_toml(&text).expect("valid config");
    let sink = SnowflakeSink::connect(&config).expect("connect");
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rows = social_rows(0, start, start + 10);
    let done =
        drive(&mut sink.writer(Table::SocialPosts), vec![batch(0, &rows, Framing::NDJSON)], Duration::from_secs(300));
    assert!(done[0].result.is_ok(), "{:?}", done[0].result);
}
