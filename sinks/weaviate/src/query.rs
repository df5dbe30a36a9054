//! Vector search against Weaviate: a GraphQL `Get` with `nearVector` (`POST /v1/graphql`), for `millionx search`.
//!
//! Query shape (Weaviate GraphQL API, "Get" with the `nearVector` search operator):
//! `{ Get { SocialPost(nearVector: {vector: [...]}, limit: k) { <properties> _additional { id distance } } } }`.
//! With the classes' `distance: cosine` the server answers ascending cosine distance `1 − cos`.

use std::time::Duration;

use millionx_dataflow::config::ConnectorConfig as _;
use serde_json::{json, Map, Value};

use crate::client::{build_client, error_message};
use crate::config::WeaviateConfig;
use crate::schema::ClassDef;

/// One object of a `nearVector` answer.
#[derive(Clone, Debug, PartialEq)]
pub struct NearHit {
    /// The object's UUID (`_additional.id`).
    pub id: String,
    /// Cosine distance to the query vector (`_additional.distance`), 0.0–2.0.
    pub distance: f32,
    /// The requested properties (null values left out).
    pub properties: Map<String, Value>,
}

/// Why a query failed. Messages never carry the API key or the query vector.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Bad `[weaviate]` settings (the message names the key), an unknown class, or `limit` 0.
    #[error("weaviate search: {0}")]
    Config(String),
    /// The request did not get an answer (connect, timeout, TLS).
    #[error("weaviate search: POST {url}: {reason}")]
    Transport {
        /// The GraphQL endpoint.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The server answered with a non-200 status (the message is the server's).
    #[error("weaviate search: POST {url}: HTTP {status}: {message}")]
    Status {
        /// The GraphQL endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The answer held GraphQL `errors` or not the expected `data.Get.<Class>` list.
    #[error("weaviate search: {0}")]
    Answer(String),
}

/// The properties of a built-in class (`SocialPost`, `MarketOrder`) as `ops/weaviate/<Class>.json` defines them.
///
/// Errors: [`QueryError::Config`] for a class without a built-in definition.
pub fn class_properties(class: &str) -> Result<Vec<String>, QueryError> {
    let defs = ClassDef::builtin().map_err(QueryError::Config)?;
    let def = defs.iter().find(|d| d.name == class).ok_or_else(|| {
        let known: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        QueryError::Config(format!("--class {class}: unknown class (expected one of {})", known.join(", ")))
    })?;
    Ok(def
        .body
        .get("properties")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| p.get("name")?.as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// The GraphQL text of a `nearVector` search of `class` for `vector`, `limit` hits, selecting `properties` and
/// `_additional { id distance }`. Floats are written in Rust's shortest round-trip form.
pub fn near_vector_query(class: &str, vector: &[f32], limit: usize, properties: &[String]) -> String {
    let mut v = String::with_capacity(vector.len() * 12);
    for (i, x) in vector.iter().enumerate() {
        if i > 0 {
            v.push(',');
        }
        // A GraphQL float needs a digit after the point or an exponent only when it has one; integers are valid.
        v.push_str(&format!("{}", if x.is_finite() { *x } else { 0.0 }));
    }
    format!(
        "{{ Get {{ {class}(nearVector: {{vector: [{v}]}}, limit: {limit}) {{ {} _additional {{ id distance }} }} }} }}",
        properties.join(" ")
    )
}

/// Runs a `nearVector` search of `class` on the server of `config`: at most `limit` hits, nearest first.
///
/// Blocking (a one-thread runtime for the request). Errors: see [`QueryError`]; the request uses the config's
/// connect and request timeouts and its API key (file or `WEAVIATE_API_KEY`).
pub fn near_vector(
    config: &WeaviateConfig,
    class: &str,
    vector: &[f32],
    limit: usize,
) -> Result<Vec<NearHit>, QueryError> {
    if limit == 0 {
        return Err(QueryError::Config("-k/--limit: must be at least 1".into()));
    }
    config.validate().map_err(|e| QueryError::Config(e.to_string()))?;
    let properties = class_properties(class)?;
    let key = config
        .resolve_api_key(&millionx_dataflow::config::Env::process())
        .map_err(|e| QueryError::Config(e.to_string()))?;
    let client = build_client(
        key.as_ref(),
        Duration::from_millis(config.connect_timeout_ms),
        Duration::from_millis(config.request_timeout_ms),
    )
    .map_err(QueryError::Config)?;
    let url = format!("{}/v1/graphql", config.base_url());
    let body = json!({ "query": near_vector_query(class, vector, limit, &properties) });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| QueryError::Config(format!("cannot start the HTTP runtime: {e}")))?;
    let (status, bytes) = runtime
        .block_on(async {
            let response = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        })
        .map_err(|e| QueryError::Transport { url: url.clone(), reason: e.without_url().to_string() })?;
    if status != 200 {
        return Err(QueryError::Status { url, status, message: error_message(&bytes) });
    }
    parse_answer(&bytes, class)
}

/// Reads a `GraphQLResponse` for `Get.<class>`. Errors: GraphQL `errors` (their messages joined), or a body
/// that is not the expected shape.
pub fn parse_answer(bytes: &[u8], class: &str) -> Result<Vec<NearHit>, QueryError> {
    let answer: Value =
        serde_json::from_slice(bytes).map_err(|e| QueryError::Answer(format!("the answer is not JSON: {e}")))?;
    if let Some(errors) = answer.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
        let messages: Vec<&str> = errors.iter().filter_map(|e| e.get("message")?.as_str()).collect();
        return Err(QueryError::Answer(format!("GraphQL errors: {}", messages.join("; "))));
    }
    let rows = answer
        .pointer(&format!("/data/Get/{class}"))
        .and_then(Value::as_array)
        .ok_or_else(|| QueryError::Answer(format!("the answer has no data.Get.{class} list")))?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let mut props =
                row.as_object().cloned().ok_or_else(|| QueryError::Answer(format!("hit {i} is not an object")))?;
            let add = props.remove("_additional").unwrap_or(Value::Null);
            let id = add.get("id").and_then(Value::as_str).map(str::to_owned);
            let distance = add.get("distance").and_then(Value::as_f64);
            match (id, distance) {
                (Some(id), Some(distance)) => {
                    props.retain(|_, v| !v.is_null());
                    Ok(NearHit { id, distance: distance as f32, properties: props })
                }
                _ => Err(QueryError::Answer(format!("hit {i} has no _additional.id and distance"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_class_vector_limit_and_fields() {
        let q = near_vector_query("SocialPost", &[0.5, -1.0, 0.25], 3, &["content".into(), "city".into()]);
        assert_eq!(
            q,
            "{ Get { SocialPost(nearVector: {vector: [0.5,-1,0.25]}, limit: 3) { content city _additional { id distance } } } }"
        );
    }

    #[test]
    fn builtin_classes_have_their_properties() {
        let p = class_properties("MarketOrder").expect("built in");
        assert!(p.contains(&"productName".to_owned()) && p.contains(&"orderId".to_owned()), "{p:?}");
        assert!(matches!(class_properties("Nope"), Err(QueryError::Config(m)) if m.contains("SocialPost")));
    }

    #[test]
    fn answers_and_graphql_errors_are_read() {
        let ok = br#"{"data":{"Get":{"SocialPost":[{"content":"a","city":null,"_additional":{"id":"x","distance":0.125}}]}}}"#;
        let hits = parse_answer(ok, "SocialPost").expect("parsed");
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].id.as_str(), hits[0].distance), ("x", 0.125));
        assert_eq!(hits[0].properties.get("content"), Some(&Value::String("a".into())));
        assert!(!hits[0].properties.contains_key("city"));
        let bad =
            br#"{"data":{"Get":{"SocialPost":null}},"errors":[{"message":"vector lengths don't match: 384 vs 3"}]}"#;
        assert!(matches!(parse_answer(bad, "SocialPost"), Err(QueryError::Answer(m)) if m.contains("384 vs 3")));
    }
}
