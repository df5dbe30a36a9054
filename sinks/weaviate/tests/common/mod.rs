//! Test helpers: a Weaviate to write to (the in-process double, or a real server when `WEAVIATE_URL`
//! is set), hand-built encoded batches, and inspection over HTTP (the same for both).

#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use millionx_dataflow::{Origin, StreamKind};
use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, Framing};
use millionx_sink_weaviate::schema::{schema_command, ClassDef, SchemaArgs, SchemaReport};
use millionx_sink_weaviate::{WeaviateConfig, WeaviateWriter};
use millionx_weaviate_double::WeaviateDouble;
use serde_json::{json, Value};
use uuid::Uuid;

/// The framing of a `POST /v1/batch/objects` body (as the lead's encoder writes it).
pub const FRAMING: Framing = Framing { open: "{\"objects\":[", separator: ",", close: "]}" };

/// Where the objects go.
pub struct Target {
    pub url: String,
    /// The double, when no real server is configured.
    pub double: Option<WeaviateDouble>,
}

/// The double, or the real server named by `WEAVIATE_URL` (then `WEAVIATE_API_KEY` is used too).
pub fn target() -> Target {
    match std::env::var("WEAVIATE_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => Target { url, double: None },
        None => double_target(WeaviateDouble::start().expect("start the Weaviate double")),
    }
}

pub fn double_target(double: WeaviateDouble) -> Target {
    Target { url: double.url(), double: Some(double) }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A class name no other test uses (tests may share a real server).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}T{}x{n}x{nanos}", std::process::id())
}

/// Fast-failing writer settings for tests.
pub fn config(url: &str) -> WeaviateConfig {
    let mut c = WeaviateConfig { url: url.to_owned(), ..WeaviateConfig::default() };
    // Generous: a timeout here would add retries the assertions do not expect on a loaded machine.
    c.request_timeout_ms = 10_000;
    c.connect_timeout_ms = 2_000;
    c.retry.initial_backoff_ms = 5;
    c.retry.max_backoff_ms = 40;
    c
}

/// Creates `class` from the built-in definition `builtin` ("SocialPost"/"MarketOrder") under a new name.
pub fn create_class(url: &str, builtin: &str, class: &str) -> SchemaReport {
    let def = builtin_def(builtin).renamed(class);
    run_schema_command(url, &SchemaArgs::default(), &[def], &mut |_| false).expect("create class")
}

pub fn builtin_def(name: &str) -> ClassDef {
    ClassDef::builtin().expect("built-in classes").into_iter().find(|c| c.name == name).expect("known class")
}

pub fn run_schema_command(
    url: &str,
    args: &SchemaArgs,
    classes: &[ClassDef],
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<SchemaReport, millionx_sink_weaviate::schema::SchemaError> {
    let config = config(url);
    let mut out = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(schema_command(args, &config, classes, &mut out, confirm))
}

/// UUIDv5(NAMESPACE_DNS, key) — PIPELINE.md's object ids.
pub fn object_id(key: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, key.as_bytes())
}

/// A deterministic unit-length vector of `dims` values.
pub fn vector(seed: u64, dims: usize) -> Vec<f64> {
    let raw: Vec<f64> = (0..dims).map(|i| (((seed * 31 + i as u64 * 17) % 97) as f64) - 48.0).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
    raw.iter().map(|x| x / norm).collect()
}

/// A `SocialPost` object with all 20 properties.
pub fn social(class: &str, post_id: &str, n: u64, with_vector: bool) -> Value {
    let mut o = json!({
        "class": class,
        "id": object_id(&format!("social:{post_id}")).to_string(),
        "properties": {
            "postId": post_id, "platform": "facebook", "content": format!("Selling a Samsung phone #{n}"),
            "authorHash": format!("{:064x}", n), "city": "Dhaka", "postedAt": "2024-03-01T10:15:00Z",
            "productCategory": "electronics", "categoryConfidence": 0.8, "engagementCount": 12 + n,
            "likesCount": 10, "commentsCount": 2, "sharesCount": n, "weatherCondition": "Clear",
            "temperature": 29.5, "humidity": 70, "isWeekend": true, "hourOfDay": 16,
            "embeddingModel": "all-MiniLM-L6-v2", "anonymized": true, "enriched": true
        }
    });
    if with_vector {
        o["vector"] = json!(vector(n, 384));
    }
    o
}

/// A `MarketOrder` object with all 27 properties.
pub fn market(class: &str, order_id: &str, n: u64) -> Value {
    json!({
        "class": class,
        "id": object_id(&format!("market:{order_id}")).to_string(),
        "properties": {
            "orderId": order_id, "platform": "daraz", "customerIdHash": format!("{:064x}", n + 7),
            "productId": "P-1001", "productName": "Samsung Galaxy A14", "productCategory": "electronics",
            "categoryConfidence": 1.0, "quantity": 2, "unitPrice": 18999.5, "totalPrice": 37999.0,
            "currency": "BDT", "status": "delivered", "paymentMethod": "bkash", "paymentStatus": "paid",
            "shippingRegion": "Dhaka Division", "shippingCity": "Dhaka", "orderedAt": "2024-03-01T04:00:00Z",
            "dayOfWeek": "Friday", "weatherCondition": "Rain", "temperature": 27.0, "humidity": 88,
            "isWeekend": true, "hourOfDay": 10, "embeddingModel": "all-MiniLM-L6-v2", "anonymized": true,
            "enriched": true, "ingestedAt": "2024-03-01T04:00:05.123Z"
        },
        "vector": vector(n + 1000, 384)
    })
}

/// A closed batch of `objects` (offsets from `first_offset`).
pub fn batch(seq: u64, first_offset: u64, objects: &[Value]) -> EncodedBatch {
    let mut b = EncodedBatch::new(seq, FRAMING);
    for (i, o) in objects.iter().enumerate() {
        let origin = Origin { stream: StreamKind::Social, partition: 0, offset: first_offset + i as u64 };
        b.push_with(origin, 0, |out| out.extend_from_slice(o.to_string().as_bytes()));
    }
    b.close();
    b
}

/// A batch from raw encoded objects (to send what serde would not write).
pub fn raw_batch(seq: u64, objects: &[String]) -> EncodedBatch {
    let mut b = EncodedBatch::new(seq, FRAMING);
    for (i, o) in objects.iter().enumerate() {
        let origin = Origin { stream: StreamKind::Social, partition: 0, offset: i as u64 };
        b.push_with(origin, 0, |out| out.extend_from_slice(o.as_bytes()));
    }
    b.close();
    b
}

/// Submits every batch and waits for all completions (sorted by seq).
pub fn write_all(writer: &mut WeaviateWriter, batches: Vec<EncodedBatch>) -> Vec<Completion> {
    let n = batches.len();
    for b in batches {
        writer.submit(b);
    }
    let mut done = writer.drain(Duration::from_secs(60));
    assert_eq!(done.len(), n, "every batch completes");
    assert_eq!(writer.in_flight(), 0);
    done.sort_by_key(|c| c.seq);
    done
}

/// reqwest is built without a TLS provider of its own (workspace choice: rustls + ring).
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_get(url: &str) -> (u16, Value) {
    install_tls_provider();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut request = reqwest::Client::new().get(url);
        if let Ok(key) = std::env::var("WEAVIATE_API_KEY") {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    })
}

/// Every stored object of `class` (with vectors), paged with the cursor API.
pub fn stored(url: &str, class: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let (status, page) = http_get(&format!("{url}/v1/objects?class={class}&limit=100&include=vector{cursor}"));
        assert_eq!(status, 200, "list objects: {page}");
        let objects = page["objects"].as_array().cloned().unwrap_or_default();
        if objects.is_empty() {
            return out;
        }
        after = objects.last().and_then(|o| o["id"].as_str()).map(str::to_owned);
        out.extend(objects);
    }
}

/// One stored object, if any.
pub fn stored_object(url: &str, class: &str, id: Uuid) -> Option<Value> {
    let (status, body) = http_get(&format!("{url}/v1/objects/{class}/{id}?include=vector"));
    (status == 200).then_some(body)
}

/// The live class definition.
pub fn live_class(url: &str, class: &str) -> Option<Value> {
    let (status, body) = http_get(&format!("{url}/v1/schema/{class}"));
    (status == 200).then_some(body)
}

/// `POST /v1/schema` with a raw body; the status.
pub fn post_class(url: &str, body: &Value) -> u16 {
    install_tls_provider();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut request = reqwest::Client::new().post(format!("{url}/v1/schema")).body(body.to_string());
        if let Ok(key) = std::env::var("WEAVIATE_API_KEY") {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("POST").status().as_u16()
    })
}
