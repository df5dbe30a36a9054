//! Shared helpers: rows in the encoder's shape, batches, and a loop that drives a writer to completion.
#![allow(dead_code, missing_docs)]

use std::time::{Duration, Instant};

use millionx_dataflow::{Origin, StreamKind};
use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, Framing};
use serde_json::{json, Value};

/// A batch of `rows` (origin, JSON object) framed with `framing`.
pub fn batch(seq: u64, rows: &[(Origin, Value)], framing: Framing) -> EncodedBatch {
    let mut b = EncodedBatch::new(seq, framing);
    for (origin, row) in rows {
        b.push_with(*origin, 1, |o| {
            serde_json::to_writer(&mut *o, row).expect("serialise");
            if framing == Framing::NDJSON {
                o.push(b'\n');
            }
        });
    }
    b.close();
    b
}

pub fn origin(stream: StreamKind, partition: u32, offset: u64) -> Origin {
    Origin { stream, partition, offset }
}

/// Submits every batch (respecting `max_in_flight`) and polls until all completed, or panics after `limit`.
pub fn drive(writer: &mut impl BatchWriter, batches: Vec<EncodedBatch>, limit: Duration) -> Vec<Completion> {
    let deadline = Instant::now() + limit;
    let mut queue = batches.into_iter();
    let mut total = 0usize;
    let mut done = Vec::new();
    let mut next = queue.next();
    loop {
        while writer.in_flight() < writer.max_in_flight() {
            match next.take() {
                Some(b) => {
                    total += 1;
                    writer.submit(b);
                    next = queue.next();
                }
                None => break,
            }
        }
        done.extend(writer.poll());
        if next.is_none() && done.len() == total {
            done.sort_by_key(|c| c.seq);
            return done;
        }
        assert!(Instant::now() < deadline, "writer did not finish within {limit:?} ({} of {total} done)", done.len());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A SOCIAL_POSTS row with the encoder's keys (some nulls omitted, some explicit).
pub fn social_row(id: &str, offset: u64) -> Value {
    json!({
        "POST_ID": id, "PLATFORM": "facebook", "CONTENT": "আজ ঢাকায় খুব গরম! Rice Cooker কিনলাম [PHONE]",
        "AUTHOR_HASH": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "LIKES_COUNT": 10, "COMMENTS_COUNT": 2, "SHARES_COUNT": 1, "ENGAGEMENT_COUNT": 13,
        "HASHTAGS": ["#deal", "#dhaka"], "CITY": "Dhaka", "LANGUAGE": "bn", "POSTED_AT": "2025-03-01T10:00:00Z",
        "PRODUCT_CATEGORY": "home", "CATEGORY_CONFIDENCE": 0.8, "WEATHER_CONDITION": null, "TEMPERATURE": 31.5,
        "HUMIDITY": 70, "IS_WEEKEND": true, "HOUR_OF_DAY": 16, "EMBEDDING_MODEL": "all-MiniLM-L6-v2",
        "ANONYMIZED": true, "PII_FIELDS": ["authorId", "authorName", "content:phone"], "PII_DETECTED": true,
        "ENRICHED": true, "RAW_RECORD": {"postId": id, "platform": "facebook", "likesCount": 10},
        "KAFKA_TOPIC": "validated.social", "KAFKA_PARTITION": 0, "KAFKA_OFFSET": offset,
        "INGESTED_AT": "2025-03-01T10:00:05Z"
    })
}

/// Rows `from..to` of SOCIAL_POSTS on partition `partition`, offsets = the index.
pub fn social_rows(partition: u32, from: u64, to: u64) -> Vec<(Origin, Value)> {
    (from..to)
        .map(|i| (origin(StreamKind::Social, partition, i), social_row(&format!("S-{partition}-{i:09}"), i)))
        .collect()
}

/// A number in a result cell (numbers arrive as JSON numbers or decimal strings).
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("finite"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other}"),
    }
}

/// A text cell.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
