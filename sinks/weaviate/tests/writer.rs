//! The batch writer against the Weaviate double (or a real Weaviate when `WEAVIATE_URL` is set):
//! every object once, replays add nothing, bad objects rejected with the server's message.

mod common;

use common::*;
use millionx_dataflow::Reason;
use millionx_sink_util::{BatchWriter, ItemRejection};
use millionx_sink_weaviate::{ConsistencyLevel, WeaviateWriter};
use serde_json::json;

#[test]
fn writes_every_social_post_once_and_a_replay_adds_none() {
    let t = target();
    let class = unique("Social");
    create_class(&t.url, "SocialPost", &class);
    let objects: Vec<_> = (0..250).map(|n| social(&class, &format!("p-{n}"), n, true)).collect();
    let batches =
        || vec![batch(0, 0, &objects[..100]), batch(1, 100, &objects[100..200]), batch(2, 200, &objects[200..])];
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    for c in write_all(&mut writer, batches()) {
        let outcome = c.result.expect("written");
        assert_eq!(outcome.rejected, vec![]);
        assert_eq!(outcome.retries, 0);
    }
    let first = stored(&t.url, &class);
    assert_eq!(first.len(), 250);
    let one = stored_object(&t.url, &class, object_id("social:p-7")).expect("p-7 stored");
    let props = one["properties"].as_object().expect("properties");
    assert_eq!(props.len(), 20, "{props:?}");
    assert_eq!(props["postId"], "p-7");
    assert_eq!(props["engagementCount"], 19);
    assert_eq!(props["postedAt"], "2024-03-01T10:15:00Z");
    assert_eq!(one["vector"].as_array().map(Vec::len), Some(384));

    // Replay: same ids, so the same 250 objects.
    for c in write_all(&mut writer, batches()) {
        assert_eq!(c.result.expect("written").rejected, vec![]);
    }
    let second = stored(&t.url, &class);
    assert_eq!(second.len(), 250);
    let ids = |v: &[serde_json::Value]| v.iter().map(|o| o["id"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&second));
    let m = writer.metrics();
    assert_eq!((m.objects_written, m.batches_written, m.requests, m.retries), (500, 6, 6, 0));
    assert_eq!(m.request_latency_us.len(), 6);
    if let Some(d) = &t.double {
        assert_eq!(d.vector_dimensions(&class), Some(384));
        assert_eq!(d.stats().writes, 500);
    }
}

#[test]
fn market_orders_carry_their_27_properties() {
    let t = target();
    let class = unique("Market");
    create_class(&t.url, "MarketOrder", &class);
    let objects: Vec<_> = (0..30).map(|n| market(&class, &format!("o-{n}"), n)).collect();
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &objects)]);
    assert_eq!(done[0].result.as_ref().expect("written").rejected, vec![]);
    let one = stored_object(&t.url, &class, object_id("market:o-3")).expect("stored");
    let props = one["properties"].as_object().expect("properties");
    assert_eq!(props.len(), 27);
    assert_eq!(props["quantity"], 2);
    assert_eq!(props["unitPrice"], 18999.5);
    assert_eq!(props["ingestedAt"], "2024-03-01T04:00:05.123Z");
    assert_eq!(stored(&t.url, &class).len(), 30);
}

#[test]
fn permanent_failures_are_rejected_with_the_server_message_and_the_rest_written() {
    let t = target();
    let class = unique("Social");
    create_class(&t.url, "SocialPost", &class);
    let mut objects: Vec<_> = (0..8).map(|n| social(&class, &format!("r-{n}"), n, true)).collect();
    objects[1]["properties"]["humidity"] = json!(70.5);
    objects[3]["properties"]["postedAt"] = json!("2024-03-01 10:15");
    objects[4]["vector"] = json!(vec![0.1; 383]);
    objects[6]["properties"]["city"] = json!(12);
    objects[5]["vector"] = json!(vec![0.1; 385]);
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &objects)]);
    let outcome = done[0].result.as_ref().expect("batch completes");
    let reasons: Vec<(usize, &str)> = outcome.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (1, "sink_rejected:weaviate:invalid_property"),
            (3, "sink_rejected:weaviate:invalid_property"),
            (4, "sink_rejected:weaviate:vector_length"),
            (5, "sink_rejected:weaviate:vector_length"),
            (6, "sink_rejected:weaviate:invalid_property"),
        ]
    );
    let message =
        |i: usize| outcome.rejected.iter().find(|r| r.index == i).map(|r| r.message.clone()).unwrap_or_default();
    assert!(message(1).contains(&format!("invalid integer property 'humidity' on class '{class}'")), "{}", message(1));
    assert!(message(3).contains("requires a string with a RFC3339 formatted date"), "{}", message(3));
    assert!(message(6).contains(&format!("invalid text property 'city' on class '{class}'")), "{}", message(6));
    assert_eq!(message(4), "vector has 383 dimensions, the class needs 384");
    if t.double.is_some() {
        assert_eq!(
            message(1),
            format!("invalid integer property 'humidity' on class '{class}': requires an integer, the given value is '70.5'")
        );
    }
    let mut kept: Vec<String> =
        stored(&t.url, &class).iter().map(|o| o["properties"]["postId"].as_str().unwrap_or("").to_owned()).collect();
    kept.sort();
    assert_eq!(kept, vec!["r-0", "r-2", "r-7"]);
    let m = writer.metrics();
    assert_eq!(m.objects_written, 3);
    assert_eq!(m.objects_failed.get("sink_rejected:weaviate:invalid_property"), Some(&3));
    assert_eq!(m.objects_failed.get("sink_rejected:weaviate:vector_length"), Some(&2));
}

#[test]
fn non_finite_vector_values_are_caught_before_sending() {
    let t = target();
    let class = unique("Social");
    let good = social(&class, "v-0", 0, true).to_string();
    let mut bad = social(&class, "v-1", 1, true);
    bad["vector"][17] = serde_json::Value::Null; // what serde_json writes for NaN/inf
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![raw_batch(0, &[good, bad.to_string()])]);
    let outcome = done[0].result.as_ref().expect("completes");
    assert_eq!(
        outcome.rejected,
        vec![ItemRejection {
            index: 1,
            reason: Reason("sink_rejected:weaviate:vector_not_finite".into()),
            message: "vector element 17 is not a finite number: null".into()
        }]
    );
    assert_eq!(stored(&t.url, &class).len(), 1);
}

#[test]
fn the_first_vector_fixes_the_dimension_and_the_server_message_reaches_the_dead_letters() {
    let t = target();
    let class = unique("Vec");
    // A writer configured for 3-dimensional vectors writes first: the class index is now 3-dimensional.
    let mut small = config(&t.url);
    small.vector_dimensions = 3;
    let mut writer = WeaviateWriter::new(&small).expect("writer");
    let first = json!({"class": class, "id": object_id("vec:a").to_string(), "properties": {"n": "a"}, "vector": [0.1, 0.2, 0.3]});
    let done = write_all(&mut writer, vec![batch(0, 0, &[first])]);
    assert_eq!(done[0].result.as_ref().expect("written").rejected, vec![]);
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let second = json!({"class": class, "id": object_id("vec:b").to_string(), "properties": {"n": "b"}, "vector": vector(1, 384)});
    let done = write_all(&mut writer, vec![batch(1, 1, &[second])]);
    let outcome = done[0].result.as_ref().expect("completes");
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].reason.as_str(), "sink_rejected:weaviate:vector_dimension");
    assert!(
        outcome.rejected[0].message.contains(
            "vector dimensions do not match the index dimensions: new node has a vector with length 384. Existing nodes have vectors with length 3"
        ),
        "{}",
        outcome.rejected[0].message
    );
    assert_eq!(stored(&t.url, &class).len(), 1);
}

#[test]
fn a_whole_batch_422_is_traced_to_the_malformed_id() {
    let t = target();
    let class = unique("Social");
    create_class(&t.url, "SocialPost", &class);
    let mut objects: Vec<_> = (0..10).map(|n| social(&class, &format!("m-{n}"), n, false)).collect();
    objects[6]["id"] = json!("not-a-uuid");
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &objects)]);
    let outcome = done[0].result.as_ref().expect("completes");
    assert_eq!(outcome.rejected.len(), 1, "{:?}", outcome.rejected);
    assert_eq!(outcome.rejected[0].index, 6);
    assert_eq!(outcome.rejected[0].reason.as_str(), "sink_rejected:weaviate:invalid_object");
    assert!(outcome.rejected[0].message.contains("must be of type uuid"), "{}", outcome.rejected[0].message);
    if t.double.is_some() {
        assert_eq!(outcome.rejected[0].message, "id in body must be of type uuid: \"not-a-uuid\"");
    }
    assert_eq!(stored(&t.url, &class).len(), 9);
    assert!(writer.metrics().splits >= 3, "bisected: {:?}", writer.metrics().splits);
}

#[test]
fn duplicate_ids_in_one_batch_store_the_last_one() {
    let t = target();
    let class = unique("Social");
    create_class(&t.url, "SocialPost", &class);
    let a = social(&class, "dup", 1, false);
    let mut b = social(&class, "dup", 2, false);
    b["properties"]["content"] = json!("the later copy");
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &[a, b])]);
    assert_eq!(done[0].result.as_ref().expect("written").rejected, vec![]);
    let all = stored(&t.url, &class);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["properties"]["content"], "the later copy");
}

#[test]
fn consistency_level_is_sent_and_several_batches_run_at_once() {
    let t = target();
    let class = unique("Social");
    create_class(&t.url, "SocialPost", &class);
    let mut c = config(&t.url);
    c.consistency_level = Some(ConsistencyLevel::One);
    c.max_in_flight = 4;
    let mut writer = WeaviateWriter::new(&c).expect("writer");
    assert_eq!(writer.max_in_flight(), 4);
    let batches: Vec<_> = (0..8u64)
        .map(|b| {
            let objects: Vec<_> = (0..50).map(|n| social(&class, &format!("c-{b}-{n}"), b * 50 + n, true)).collect();
            batch(b, b * 50, &objects)
        })
        .collect();
    let done = write_all(&mut writer, batches);
    assert_eq!(done.iter().map(|c| c.seq).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert!(done.iter().all(|c| c.result.as_ref().is_ok_and(|o| o.rejected.is_empty())));
    assert_eq!(stored(&t.url, &class).len(), 400);
}

#[test]
fn a_batch_whose_every_object_is_refused_whole_stops_the_run_instead_of_dead_lettering_it() {
    let t = target();
    let class = unique("Social");
    let objects: Vec<_> = (0..4)
        .map(|n| {
            let mut o = social(&class, &format!("z-{n}"), n, false);
            o["id"] = json!(format!("bad-id-{n}"));
            o
        })
        .collect();
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &objects)]);
    let error = done[0].result.as_ref().expect_err("systemic refusal is fatal");
    assert!(error.message.contains("all 4 objects rejected with HTTP 400/422"), "{}", error.message);
    assert_eq!(stored(&t.url, &class).len(), 0);
}
