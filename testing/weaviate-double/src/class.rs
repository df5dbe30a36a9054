//! Classes as the server keeps them: name rules, defaults, auto-schema inference, property value checks.
//!
//! Sources (weaviate/weaviate, see CONTRACT.md): usecases/schema/class.go (upper-cased class names,
//! lower-cased property names, `setClassDefaults`, `setPropertyDefaults`, string → text migration),
//! entities/vectorindex/hnsw/config.go (HNSW defaults), usecases/objects/validation/properties_validation.go
//! (per-property messages), usecases/objects/auto_schema.go (type inference).

use serde_json::{json, Map, Value};

/// Upper-cases the first letter, as the server does to every class name (`schema.UppercaseClassName`).
pub fn uppercase_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Lower-cases the first letter, as the server does to every property name (`LowercaseAllPropertyNames`).
pub fn lowercase_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// HNSW `vectorIndexConfig` defaults the server fills in (entities/vectorindex/hnsw/config.go).
pub const HNSW_DEFAULTS: &str = r#"{
  "skip": false,
  "cleanupIntervalSeconds": 300,
  "maxConnections": 32,
  "efConstruction": 128,
  "ef": -1,
  "dynamicEfMin": 100,
  "dynamicEfMax": 500,
  "dynamicEfFactor": 8,
  "vectorCacheMaxObjects": 1000000000000,
  "flatSearchCutoff": 40000,
  "distance": "cosine",
  "filterStrategy": "acorn",
  "pq": {"enabled": false, "bitCompression": false, "segments": 0, "centroids": 256, "trainingLimit": 100000,
         "encoder": {"type": "kmeans", "distribution": "log-normal"}},
  "bq": {"enabled": false},
  "sq": {"enabled": false, "trainingLimit": 100000, "rescoreLimit": 20},
  "rq": {"enabled": false, "bits": 8, "rescoreLimit": 20},
  "multivector": {"enabled": false, "aggregation": "maxSim"},
  "skipDefaultQuantization": false,
  "trackDefaultQuantization": false
}"#;

/// Data types a property may have (primitive ones; cross-references are class names).
const DATA_TYPES: &[&str] = &[
    "text",
    "text[]",
    "string",
    "string[]",
    "int",
    "int[]",
    "number",
    "number[]",
    "boolean",
    "boolean[]",
    "date",
    "date[]",
    "uuid",
    "uuid[]",
    "geoCoordinates",
    "phoneNumber",
    "blob",
    "object",
    "object[]",
];

/// Fills the defaults the server adds on `POST /v1/schema` and on auto-schema creation: vectorizer
/// `none`, index type `hnsw` with [`HNSW_DEFAULTS`] under the given keys, inverted-index, replication,
/// multi-tenancy and sharding defaults, per-property tokenization and index flags, `string` → `text`.
pub fn fill_class_defaults(class: &mut Map<String, Value>) {
    let has_named_vectors = class.get("vectorConfig").and_then(Value::as_object).is_some_and(|m| !m.is_empty());
    if !has_named_vectors {
        if class.get("vectorizer").and_then(Value::as_str).is_none_or(str::is_empty) {
            class.insert("vectorizer".into(), json!("none"));
        }
        if class.get("vectorIndexType").and_then(Value::as_str).is_none_or(str::is_empty) {
            class.insert("vectorIndexType".into(), json!("hnsw"));
        }
        if class.get("vectorIndexType").and_then(Value::as_str) == Some("hnsw") {
            let mut config = serde_json::from_str::<Value>(HNSW_DEFAULTS).unwrap_or_else(|_| json!({}));
            if let (Some(target), Some(Value::Object(given))) = (config.as_object_mut(), class.get("vectorIndexConfig"))
            {
                for (k, v) in given {
                    target.insert(k.clone(), v.clone());
                }
            }
            class.insert("vectorIndexConfig".into(), config);
        }
    }
    let inverted = class.entry("invertedIndexConfig").or_insert_with(|| json!({"usingBlockMaxWAND": true}));
    if let Some(inv) = inverted.as_object_mut() {
        if inv.get("cleanupIntervalSeconds").and_then(Value::as_f64).unwrap_or(0.0) == 0.0 {
            inv.insert("cleanupIntervalSeconds".into(), json!(60));
        }
        inv.entry("bm25").or_insert_with(|| json!({"b": 0.75, "k1": 1.2}));
        inv.entry("stopwords").or_insert_with(|| json!({"preset": "en", "additions": null, "removals": null}));
        inv.entry("indexNullState").or_insert(json!(false));
        inv.entry("indexPropertyLength").or_insert(json!(false));
        inv.entry("indexTimestamps").or_insert(json!(false));
    }
    class
        .entry("multiTenancyConfig")
        .or_insert_with(|| json!({"enabled": false, "autoTenantCreation": false, "autoTenantActivation": false}));
    let replication = class.entry("replicationConfig").or_insert_with(|| json!({"factor": 1}));
    if let Some(r) = replication.as_object_mut() {
        if r.get("factor").and_then(Value::as_i64).unwrap_or(0) < 1 {
            r.insert("factor".into(), json!(1));
        }
        r.entry("asyncEnabled").or_insert(json!(false));
        r.entry("deletionStrategy").or_insert(json!("NoAutomatedResolution"));
    }
    class.entry("shardingConfig").or_insert_with(|| {
        json!({"actualCount": 1, "actualVirtualCount": 128, "desiredCount": 1, "desiredVirtualCount": 128,
               "function": "murmur3", "key": "_id", "strategy": "hash", "virtualPerPhysical": 128})
    });
    if let Some(Value::Array(props)) = class.get_mut("properties") {
        for prop in props.iter_mut().filter_map(Value::as_object_mut) {
            fill_property_defaults(prop);
        }
    } else {
        class.insert("properties".into(), json!([]));
    }
}

/// Per-property defaults (`setPropertyDefaults` + `migratePropertySettings`).
pub(crate) fn fill_property_defaults(prop: &mut Map<String, Value>) {
    if let Some(name) = prop.get("name").and_then(Value::as_str) {
        let lowered = lowercase_first(name);
        prop.insert("name".into(), Value::String(lowered));
    }
    let data_type = prop.get("dataType").and_then(|d| d.get(0)).and_then(Value::as_str).unwrap_or("").to_owned();
    let is_text = matches!(data_type.as_str(), "text" | "text[]" | "string" | "string[]");
    if is_text && prop.get("tokenization").and_then(Value::as_str).is_none_or(str::is_empty) {
        prop.insert("tokenization".into(), json!("word"));
    }
    let legacy_inverted = prop.get("indexInverted").and_then(Value::as_bool);
    let unset = |p: &Map<String, Value>, k: &str| p.get(k).is_none_or(Value::is_null);
    if let Some(inverted) = legacy_inverted.filter(|_| {
        unset(prop, "indexFilterable") && unset(prop, "indexSearchable") && unset(prop, "indexRangeFilters")
    }) {
        prop.insert("indexFilterable".into(), json!(inverted));
        prop.insert("indexSearchable".into(), json!(inverted && is_text));
        prop.insert("indexRangeFilters".into(), json!(false));
    } else {
        if unset(prop, "indexFilterable") {
            prop.insert("indexFilterable".into(), json!(true));
        }
        if unset(prop, "indexSearchable") {
            prop.insert("indexSearchable".into(), json!(is_text));
        }
        if unset(prop, "indexRangeFilters") {
            prop.insert("indexRangeFilters".into(), json!(false));
        }
    }
    prop.remove("indexInverted");
    // string/string[] are migrated to text/text[]; `word` tokenization becomes `whitespace`.
    let migrated = match data_type.as_str() {
        "string" => Some("text"),
        "string[]" => Some("text[]"),
        _ => None,
    };
    if let Some(new_type) = migrated {
        prop.insert("dataType".into(), json!([new_type]));
        if prop.get("tokenization").and_then(Value::as_str) == Some("word") {
            prop.insert("tokenization".into(), json!("whitespace"));
        }
    }
}

/// Server-side checks of a class on `POST /v1/schema` (after JSON Schema validation), with the
/// server's messages. Names must already be normalised.
pub(crate) fn check_class(class: &Map<String, Value>) -> Result<(), String> {
    let name = class.get("class").and_then(Value::as_str).unwrap_or("");
    let valid_class = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_class {
        return Err(format!(
            "'{name}' is not a valid class name. Class names must match the regex '^[A-Z][_0-9A-Za-z]{{0,254}}$'"
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for prop in class.get("properties").and_then(Value::as_array).into_iter().flatten() {
        let pname = prop.get("name").and_then(Value::as_str).unwrap_or("");
        let valid_prop = pname.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && pname.len() <= 231
            && pname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_prop {
            return Err(format!(
                "'{pname}' is not a valid property name. Property names in Weaviate are restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]{{0,230}}/”."
            ));
        }
        if !seen.insert(pname.to_ascii_lowercase()) {
            return Err(format!(
                "class \"{name}\": conflict for property \"{pname}\": already in use or provided multiple times"
            ));
        }
        let types: Vec<&str> =
            prop.get("dataType").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let known = match types.as_slice() {
            [one] => DATA_TYPES.contains(one) || one.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
            [] => false,
            many => many.iter().all(|t| t.chars().next().is_some_and(|c| c.is_ascii_uppercase())),
        };
        if !known {
            return Err(format!("property '{pname}': invalid dataType: {types:?}: dataType not found"));
        }
    }
    Ok(())
}

/// Go's `time.RFC3339` layout as `time.Parse` accepts it: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    let zone_ok = match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => i + 6 == b.len() && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6),
        _ => false,
    };
    zone_ok && s.parse::<jiff::Timestamp>().is_ok()
}

/// The data type auto-schema gives a value (`AUTOSCHEMA_DEFAULT_NUMBER=number`,
/// `AUTOSCHEMA_DEFAULT_DATE=date`); `None` for null and empty arrays (nothing to infer from).
pub(crate) fn infer_data_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some("boolean"),
        Value::Number(_) => Some("number"),
        Value::String(s) if is_rfc3339(s) => Some("date"),
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => Some("uuid"),
        Value::String(_) => Some("text"),
        Value::Object(_) => Some("object"),
        Value::Array(items) => match items.first().and_then(infer_data_type) {
            Some("boolean") => Some("boolean[]"),
            Some("number") => Some("number[]"),
            Some("date") => Some("date[]"),
            Some("uuid") => Some("uuid[]"),
            Some("text") => Some("text[]"),
            Some("object") => Some("object[]"),
            _ => None,
        },
    }
}

/// The Go type name the server's messages use for a decoded JSON value.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `%v` of a decoded JSON value (close enough for messages).
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// Checks one property value against its data type; the error is the server's message.
pub(crate) fn check_value(class: &str, prop: &str, data_type: &str, value: &Value) -> Result<(), String> {
    let (base, is_array) = match data_type.strip_suffix("[]") {
        Some(base) => (base, true),
        None => (data_type, false),
    };
    if is_array {
        let Value::Array(items) = value else {
            return Err(format!(
                "invalid {base} array property '{prop}' on class '{class}': not a {base} array, but {}",
                go_type(value)
            ));
        };
        return items.iter().try_for_each(|item| check_value(class, prop, base, item));
    }
    let ok = match base {
        "text" | "string" => value.is_string(),
        "int" => value.as_i64().is_some(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "date" => value.as_str().is_some_and(is_rfc3339),
        "uuid" => value.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
        "object" => value.is_object(),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let v = go_value(value);
    Err(match base {
        "text" | "string" => format!("invalid text property '{prop}' on class '{class}': not a string, but {}", go_type(value)),
        "int" => format!("invalid integer property '{prop}' on class '{class}': requires an integer, the given value is '{v}'"),
        "number" => format!("invalid number property '{prop}' on class '{class}': requires a float, the given value is '{v}'"),
        "boolean" => format!("invalid boolean property '{prop}' on class '{class}': not a bool, but {}", go_type(value)),
        "date" => format!(
            "invalid date property '{prop}' on class '{class}': requires a string with a RFC3339 formatted date, but the given value is '{v}'"
        ),
        "uuid" => format!(
            "invalid uuid property '{prop}' on class '{class}': requires a string of UUID format, but the given value is '{v}'"
        ),
        _ => format!("invalid object property '{prop}' on class '{class}': not an object, but {}", go_type(value)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_follows_go_time_parse() {
        assert!(is_rfc3339("2024-03-01T10:00:00Z"));
        assert!(is_rfc3339("2024-03-01T10:00:00.123456+06:00"));
        assert!(!is_rfc3339("2024-03-01"));
        assert!(!is_rfc3339("2024-03-01 10:00:00Z"));
        assert!(!is_rfc3339("2024-03-01T10:00:00"));
        assert!(!is_rfc3339("2024-13-01T10:00:00Z"));
        assert!(!is_rfc3339("2024-03-01T10:00:00+0600"));
    }

    #[test]
    fn defaults_and_names_as_the_server_fills_them() {
        let mut class = json!({"class": "Post", "vectorIndexConfig": {"maxConnections": 64},
            "properties": [{"name": "Title", "dataType": ["string"]}, {"name": "n", "dataType": ["int"]}]});
        let map = class.as_object_mut().expect("object");
        fill_class_defaults(map);
        assert_eq!(map["vectorizer"], "none");
        assert_eq!(map["vectorIndexConfig"]["maxConnections"], 64);
        assert_eq!(map["vectorIndexConfig"]["efConstruction"], 128);
        assert_eq!(map["properties"][0]["name"], "title");
        assert_eq!(map["properties"][0]["dataType"], json!(["text"]));
        assert_eq!(map["properties"][0]["tokenization"], "whitespace");
        assert_eq!(map["properties"][1]["indexSearchable"], false);
        assert_eq!(map["invertedIndexConfig"]["bm25"]["k1"], 1.2);
        assert_eq!(uppercase_first("socialPost"), "SocialPost");
    }

    #[test]
    fn value_checks_use_the_server_messages() {
        assert_eq!(
            check_value("C", "p", "int", &json!(1.5)),
            Err("invalid integer property 'p' on class 'C': requires an integer, the given value is '1.5'".into())
        );
        assert_eq!(
            check_value("C", "p", "text", &json!(3)),
            Err("invalid text property 'p' on class 'C': not a string, but json.Number".into())
        );
        assert!(check_value("C", "p", "date", &json!("2024-01-01T00:00:00Z")).is_ok());
        assert!(check_value("C", "p", "int", &json!(7)).is_ok());
        assert_eq!(infer_data_type(&json!("2024-01-01T00:00:00Z")), Some("date"));
        assert_eq!(infer_data_type(&json!(3)), Some("number"));
    }
}
