//! The double checked against the examples of `../shared/reference/weaviate/CONTRACT.md` (status codes,
//! error shapes, messages taken from the file itself, duplicate-id and dimension rules).
//! Without the file: fails under `CI=true`, prints that it skipped otherwise.

use std::path::PathBuf;

use millionx_weaviate_double::{DoubleOptions, WeaviateDouble};
use serde_json::{json, Value};

fn contract() -> Option<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("../shared/reference/weaviate/CONTRACT.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{}: {e} (CI needs ../shared)", path.display())
        }
        Err(e) => {
            println!("skipped: {} not readable ({e})", path.display());
            None
        }
    }
}

/// The quoted message in CONTRACT.md that starts with `prefix` (up to the closing `"`).
fn quoted(contract: &str, prefix: &str) -> String {
    let start = contract.find(prefix).unwrap_or_else(|| panic!("CONTRACT.md has no {prefix:?}"));
    let rest = &contract[start..];
    rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
}

struct Client {
    base: String,
    key: Option<String>,
    rt: tokio::runtime::Runtime,
}

impl Client {
    fn new(double: &WeaviateDouble) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // reqwest is built without a TLS provider of its own (workspace choice: rustls + ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client { base: double.url(), key: None, rt }
    }

    /// (status, parsed body or Null, raw body length).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value, usize) {
        self.rt.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
            if let Some(key) = &self.key {
                req = req.bearer_auth(key);
            }
            if let Some(body) = body {
                req = req.body(body.to_string());
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.expect("body");
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), bytes.len())
        })
    }

    fn batch(&self, query: &str, objects: Value) -> (u16, Value) {
        let (s, b, _) = self.call("POST", &format!("/v1/batch/objects{query}"), Some(json!({"objects": objects})));
        (s, b)
    }
}

fn first_error(item: &Value) -> &str {
    item["result"]["errors"]["error"][0]["message"].as_str().unwrap_or("")
}

const ID1: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const ID2: &str = "a28dbe34-3cd5-5334-93b4-23ba6bb7b6cb";

#[test]
fn batch_endpoint_messages_and_codes_match_the_contract() {
    let Some(contract) = contract() else { return };
    let double =
        WeaviateDouble::start_with(DoubleOptions { auto_schema: false, ..DoubleOptions::default() }).expect("double");
    let c = Client::new(&double);

    // Empty `objects` → 422 ErrorResponse.
    let (status, body) = c.batch("", json!([]));
    assert_eq!(status, 422);
    assert_eq!(body["error"][0]["message"], quoted(&contract, "invalid param 'objects'"));

    // Bad consistency_level → 400 with the handler's message (CONTRACT.md uses 'X').
    let (status, body) = c.batch("?consistency_level=X", json!([{"class": "C", "id": ID1}]));
    assert_eq!(status, 400);
    assert_eq!(body["error"][0]["message"], quoted(&contract, "unrecognized consistency level"));

    // Framework shape for spec validation: a non-UUID id rejects the whole batch, code ≥ 600 → 422.
    let (status, body) = c.batch("", json!([{"class": "C", "id": ID1}, {"class": "C", "id": "nope"}]));
    assert_eq!(status, 422);
    assert!(body["code"].as_u64().is_some_and(|code| code >= 600), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("must be of type uuid")), "{body}");
    assert_eq!(double.stats().writes, 0, "no partial write");

    // Per-object messages (auto-schema off), inside HTTP 200.
    let class = json!({"class": "C", "properties": [{"name": "p", "dataType": ["int"]}]});
    assert_eq!(c.call("POST", "/v1/schema", Some(class)).0, 200);
    let (status, items) = c.batch(
        "",
        json!([
            {"class": "C", "id": ID1, "properties": {"p": 1.5}},
            {"class": "C", "id": ID2, "properties": {"q": "x"}},
            {"class": "X", "id": ID1},
            {"class": "", "id": ID1},
        ]),
    );
    assert_eq!(status, 200);
    assert_eq!(first_error(&items[0]), quoted(&contract, "invalid integer property"));
    assert_eq!(first_error(&items[1]).replace("'q'", "'p'"), quoted(&contract, "no such prop with name"));
    assert_eq!(first_error(&items[2]), quoted(&contract, "class 'X' not present in schema"));
    assert_eq!(first_error(&items[3]), quoted(&contract, "object has an empty class"));
    assert!(items.as_array().is_some_and(|a| a.iter().all(|i| i["result"]["status"] == "FAILED")));

    // The first vector fixes the dimension; the wrapped message of the HNSW index.
    let v384 = vec![0.5; 384];
    let (_, items) = c.batch("", json!([{"class": "C", "id": ID1, "properties": {"p": 1}, "vector": v384}]));
    assert_eq!(items[0]["result"]["status"], "SUCCESS");
    let (_, items) = c.batch("", json!([{"class": "C", "id": ID2, "properties": {"p": 2}, "vector": vec![0.5; 383]}]));
    let expected = format!("insert to vector index: {}", quoted(&contract, "vector dimensions do not match"));
    assert_eq!(first_error(&items[0]), expected);
    assert_eq!(double.vector_dimensions("C"), Some(384));
}

#[test]
fn duplicates_upserts_and_auto_schema_behave_as_the_contract_says() {
    let Some(contract) = contract() else { return };
    assert!(contract.contains("all but the LAST occurrence are silently skipped and reported SUCCESS"));
    assert!(contract.contains("AUTOSCHEMA_ENABLED defaults to true"));
    let double = WeaviateDouble::start().expect("double");
    let c = Client::new(&double);
    let (status, items) = c.batch(
        "",
        json!([
            {"class": "doc", "id": ID1, "properties": {"title": "first", "at": "2024-01-01T00:00:00Z", "n": 3, "ref": ID2}},
            {"class": "doc", "id": ID1, "properties": {"title": "last", "at": "2024-01-02T00:00:00Z", "n": 4, "ref": ID2}},
        ]),
    );
    assert_eq!(status, 200);
    assert!(items.as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|i| i["result"]["status"] == "SUCCESS")));
    assert_eq!(double.count("Doc"), 1);
    let stored = double.objects("Doc");
    assert_eq!(stored[0].properties["title"], "last");
    assert_eq!(double.stats().writes, 1);
    // Auto-schema created the class, upper-cased, with inferred types.
    let (status, class, _) = c.call("GET", "/v1/schema/doc", None);
    assert_eq!(status, 200);
    assert_eq!(class["class"], "Doc");
    let types: Vec<(String, String)> = class["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or("").to_owned(), p["dataType"][0].as_str().unwrap_or("").to_owned()))
        .collect();
    for want in [("title", "text"), ("at", "date"), ("n", "number"), ("ref", "uuid")] {
        assert!(types.contains(&(want.0.to_owned(), want.1.to_owned())), "{types:?}");
    }
    // An existing id is overwritten (idempotent upsert).
    c.batch("", json!([{"class": "Doc", "id": ID1, "properties": {"title": "again"}}]));
    assert_eq!(double.count("Doc"), 1);
    assert_eq!(double.objects("Doc")[0].properties["title"], "again");
}

#[test]
fn schema_endpoints_and_auth_use_the_contract_codes_and_shapes() {
    let Some(contract) = contract() else { return };
    let double =
        WeaviateDouble::start_with(DoubleOptions { api_key: Some("secret".into()), ..DoubleOptions::default() })
            .expect("double");
    let mut c = Client::new(&double);
    // Readiness needs no key.
    assert_eq!(c.call("GET", "/v1/.well-known/ready", None).0, 200);
    // Anonymous access disabled: 401 in the framework shape.
    let (status, body, _) = c.call("GET", "/v1/schema", None);
    assert_eq!(status, 401);
    assert_eq!(body["code"], 401);
    let anonymous = quoted(&contract, "anonymous access not enabled");
    let stem = &anonymous[..anonymous.find('[').unwrap_or(anonymous.len())];
    assert!(body["message"].as_str().is_some_and(|m| m.starts_with(stem)), "{body}");
    // A wrong key: 401 "unauthorized: ...".
    c.key = Some("other".into());
    let (status, body, _) = c.call("GET", "/v1/schema", None);
    assert_eq!(status, 401);
    assert!(contract.contains(r#"{"code":401,"message":"unauthorized: ..."}"#));
    assert!(body["message"].as_str().is_some_and(|m| m.starts_with("unauthorized: ")), "{body}");

    c.key = Some("secret".into());
    // GET missing class → 404 without a body; POST → 200 Class with defaults; again → 422 error[].
    let (status, _, len) = c.call("GET", "/v1/schema/Nope", None);
    assert_eq!((status, len), (404, 0));
    let (status, created, _) = c.call("POST", "/v1/schema", Some(json!({"class": "nope", "vectorizer": "none"})));
    assert_eq!(status, 200);
    assert_eq!(created["class"], "Nope");
    assert_eq!(created["vectorIndexType"], "hnsw");
    assert_eq!(created["vectorIndexConfig"]["maxConnections"], 32, "CONTRACT.md: maxConnections (default 32)");
    assert_eq!(created["vectorIndexConfig"]["vectorCacheMaxObjects"], 1_000_000_000_000_i64);
    assert_eq!(created["vectorIndexConfig"]["flatSearchCutoff"], 40_000);
    assert_eq!(created["vectorIndexConfig"]["ef"], -1);
    let (status, body, _) = c.call("POST", "/v1/schema", Some(json!({"class": "Nope"})));
    assert_eq!(status, 422);
    assert!(body["error"][0]["message"].as_str().is_some_and(|m| m.contains("already exists")), "{body}");
    let (status, schema, _) = c.call("GET", "/v1/schema", None);
    assert_eq!((status, schema["classes"].as_array().map(Vec::len)), (200, Some(1)));
    // DELETE → 200 without a body.
    let (status, _, len) = c.call("DELETE", "/v1/schema/nope", None);
    assert_eq!((status, len), (200, 0));
    assert_eq!(c.call("GET", "/v1/schema/Nope", None).0, 404);
    // 429 for the whole batch has the UsageLimitExceededResponse shape.
    double.push_fault(millionx_weaviate_double::Fault::Status(429));
    let (status, body) = c.batch("", json!([{"class": "A", "id": ID1}]));
    assert_eq!(status, 429);
    assert_eq!(body["errorCode"], "USAGE_LIMIT_EXCEEDED");
    assert_eq!(body["limit"], "objects");
    assert_eq!(double.count("A"), 0, "no partial fill");
}
