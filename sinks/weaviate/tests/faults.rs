//! Faults the double injects on demand: for each, nothing lost, nothing duplicated, bad objects
//! rejected with the server's message. These always run against the double (a real server cannot be
//! made to fail on cue).

mod common;

use std::time::Duration;

use common::*;
use millionx_sink_util::EncodedBatch;
use millionx_sink_weaviate::WeaviateWriter;
use millionx_weaviate_double::{DoubleOptions, Fault, WeaviateDouble};

struct Setup {
    double: WeaviateDouble,
    class: String,
    objects: Vec<serde_json::Value>,
}

fn setup(n: u64) -> Setup {
    let double = WeaviateDouble::start().expect("double");
    let class = "SocialPost".to_owned();
    create_class(&double.url(), "SocialPost", &class);
    let objects = (0..n).map(|i| social(&class, &format!("f-{i}"), i, true)).collect();
    Setup { double, class, objects }
}

impl Setup {
    fn batch(&self) -> EncodedBatch {
        batch(0, 0, &self.objects)
    }

    /// Every object stored exactly once, with the content sent.
    fn assert_all_stored_once(&self) {
        let stored = self.double.objects(&self.class);
        assert_eq!(stored.len(), self.objects.len());
        for o in &self.objects {
            let id = uuid::Uuid::parse_str(o["id"].as_str().expect("id")).expect("uuid");
            let s = self.double.object(&self.class, id).expect("stored");
            assert_eq!(s.properties.get("postId"), o["properties"].get("postId"));
            assert_eq!(s.vector.as_ref().map(Vec::len), Some(384));
        }
    }
}

#[test]
fn status_429_500_503_are_retried_until_written() {
    let s = setup(40);
    s.double.push_fault(Fault::Status(429));
    s.double.push_fault(Fault::Status(500));
    s.double.push_fault(Fault::Status(503));
    let mut writer = WeaviateWriter::new(&config(&s.double.url())).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    let outcome = done[0].result.as_ref().expect("written after retries");
    assert_eq!((outcome.retries, outcome.rejected.len()), (3, 0));
    s.assert_all_stored_once();
    let stats = s.double.stats();
    assert_eq!((stats.batch_requests, stats.faults_applied, stats.writes), (4, 3, 40));
    let m = writer.metrics();
    assert_eq!((m.requests, m.requests_failed, m.retries, m.objects_written), (4, 3, 3, 40));
}

#[test]
fn dropped_connections_before_and_after_the_write_lose_and_duplicate_nothing() {
    let s = setup(25);
    s.double.push_fault(Fault::Drop { after_write: false });
    s.double.push_fault(Fault::Drop { after_write: true });
    let mut writer = WeaviateWriter::new(&config(&s.double.url())).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    assert_eq!(done[0].result.as_ref().expect("written").retries, 2);
    s.assert_all_stored_once();
    // The write behind the second drop happened and the retry overwrote it: 2 × 25 writes, 25 objects.
    assert_eq!(s.double.stats().writes, 50);
}

#[test]
fn repeated_timeouts_split_the_batch_and_every_object_lands_once() {
    let s = setup(40);
    let mut c = config(&s.double.url());
    c.request_timeout_ms = 800;
    c.connect_timeout_ms = 800;
    s.double.push_fault(Fault::Delay(Duration::from_millis(2_500)));
    s.double.push_fault(Fault::Delay(Duration::from_millis(2_500)));
    let mut writer = WeaviateWriter::new(&c).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    assert_eq!(done[0].result.as_ref().expect("written").retries, 2);
    s.assert_all_stored_once();
    // Two timed-out requests of 40 (both were written by the slow server), then two halves of 20.
    assert_eq!(s.double.stats().batch_sizes, vec![40, 40, 20, 20]);
    assert_eq!(writer.metrics().splits, 1);
}

#[test]
fn chosen_objects_failing_permanently_go_to_the_dead_letters_with_the_message() {
    let s = setup(10);
    let bad = object_id("social:f-4");
    let message = "invalid text property 'content' on class 'SocialPost': not a string, but json.Number";
    s.double.fail_object(bad, message, None);
    let mut writer = WeaviateWriter::new(&config(&s.double.url())).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    let outcome = done[0].result.as_ref().expect("completes");
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].index, 4);
    assert_eq!(outcome.rejected[0].reason.as_str(), "sink_rejected:weaviate:invalid_property");
    assert_eq!(outcome.rejected[0].message, message);
    assert_eq!(outcome.retries, 0);
    assert_eq!(s.double.count(&s.class), 9);
    assert!(s.double.object(&s.class, bad).is_none());
    // The rejected item is the one the dead letter names by origin.
    assert_eq!(done[0].batch.items[4].origin.offset, 4);
}

#[test]
fn transient_per_object_failures_are_retried_alone() {
    let s = setup(10);
    let slow = object_id("social:f-2");
    s.double.fail_object(slow, "put object: context deadline exceeded", Some(2));
    let mut writer = WeaviateWriter::new(&config(&s.double.url())).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    let outcome = done[0].result.as_ref().expect("written");
    assert_eq!((outcome.retries, outcome.rejected.len()), (2, 0));
    s.assert_all_stored_once();
    // The whole batch once, then the one object twice.
    assert_eq!(s.double.stats().batch_sizes, vec![10, 1, 1]);
}

#[test]
fn exhausted_retries_fail_the_batch_without_acknowledging_it() {
    let s = setup(5);
    let mut c = config(&s.double.url());
    c.retry.max_retries = 3;
    for _ in 0..4 {
        s.double.push_fault(Fault::Status(503));
    }
    let mut writer = WeaviateWriter::new(&c).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    let error = done[0].result.as_ref().expect_err("gives up");
    assert_eq!(error.sink, "weaviate");
    assert!(error.message.contains("gave up after 3 retries; last error: HTTP 503"), "{}", error.message);
    assert_eq!(writer.metrics().batches_failed, 1);
    assert_eq!(s.double.count(&s.class), 0);
    // The same batch replayed later (nothing was acknowledged) lands once.
    let done = write_all(&mut writer, vec![s.batch()]);
    assert!(done[0].result.is_ok());
    s.assert_all_stored_once();
}

#[test]
fn bearer_auth_from_a_key_file_and_a_wrong_key_stops_the_run() {
    let double =
        WeaviateDouble::start_with(DoubleOptions { api_key: Some("k-123".into()), ..DoubleOptions::default() })
            .expect("double");
    let dir = std::env::temp_dir().join(format!("mx-weaviate-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let key_file = dir.join("key");
    std::fs::write(&key_file, "k-123\n").expect("key");
    let mut c = config(&double.url());
    c.api_key_file = Some(key_file.clone());
    let objects = [social("SocialPost", "a-1", 1, true)];
    let mut writer = WeaviateWriter::new(&c).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &objects)]);
    assert!(done[0].result.as_ref().is_ok_and(|o| o.rejected.is_empty()));
    assert_eq!(double.count("SocialPost"), 1);

    std::fs::write(&key_file, "wrong\n").expect("key");
    let mut writer = WeaviateWriter::new(&c).expect("writer");
    let done = write_all(&mut writer, vec![batch(1, 1, &objects)]);
    let error = done[0].result.as_ref().expect_err("401 is fatal");
    assert!(error.message.contains("HTTP 401: unauthorized: invalid api key"), "{}", error.message);
    assert!(!error.message.contains("wrong"), "the key never shows: {}", error.message);
    assert_eq!(writer.metrics().retries, 0);
    assert_eq!(double.stats().unauthorized, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn oversized_bodies_are_split_and_an_unreachable_server_is_retried_then_fatal() {
    let s = setup(8);
    s.double.push_fault(Fault::Status(413));
    let mut writer = WeaviateWriter::new(&config(&s.double.url())).expect("writer");
    let done = write_all(&mut writer, vec![s.batch()]);
    assert_eq!(done[0].result.as_ref().expect("written").retries, 0);
    assert_eq!(s.double.stats().batch_sizes, vec![4, 4]);
    s.assert_all_stored_once();

    let url = s.double.url();
    drop(s);
    let mut c = config(&url);
    c.retry.max_retries = 2;
    let mut writer = WeaviateWriter::new(&c).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &[social("SocialPost", "x", 1, true)])]);
    let error = done[0].result.as_ref().expect_err("nobody listens");
    assert!(error.message.contains("gave up after 2 retries"), "{}", error.message);
    assert_eq!(writer.metrics().requests, 3);
}
