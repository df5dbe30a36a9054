//! Request bodies against MillionX's JSON Schemas for them (`schemas/*.schema.json`), answered as the
//! go-openapi framework in front of Weaviate answers: decode failures (wrong JSON types) are 400
//! `{"code":400,"message":"parsing body body from \"\" failed, because ..."}`; spec validation failures
//! are 422 with the framework's codes (601 invalid type/format, 602 required, 606 enum) and messages
//! (`operations/batch/batch_objects_create_parameters.go` → `body.Validate`, go-openapi/errors schema.go).

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::Validator;
use serde_json::{json, Value};

/// The body schemas the double checks.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BodySchema {
    /// `POST /v1/batch/objects`.
    BatchObjects,
    /// `POST /v1/schema`.
    Class,
    /// `POST /v1/graphql`.
    GraphQl,
}

const BATCH_SCHEMA: &str = include_str!("../schemas/batch-objects-request.schema.json");
const CLASS_SCHEMA: &str = include_str!("../schemas/class.schema.json");
const GRAPHQL_SCHEMA: &str = include_str!("../schemas/graphql-query.schema.json");

fn compile(text: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).map_err(|e| e.to_string())
}

fn validator(which: BodySchema) -> Result<&'static Validator, String> {
    static BATCH: OnceLock<Result<Validator, String>> = OnceLock::new();
    static CLASS: OnceLock<Result<Validator, String>> = OnceLock::new();
    static GRAPHQL: OnceLock<Result<Validator, String>> = OnceLock::new();
    let cell = match which {
        BodySchema::BatchObjects => BATCH.get_or_init(|| compile(BATCH_SCHEMA)),
        BodySchema::Class => CLASS.get_or_init(|| compile(CLASS_SCHEMA)),
        BodySchema::GraphQl => GRAPHQL.get_or_init(|| compile(GRAPHQL_SCHEMA)),
    };
    cell.as_ref().map_err(Clone::clone)
}

/// A framework-shaped error answer: status and `{"code","message"}`.
pub(crate) fn framework_error(status: u16, code: u32, message: &str) -> (u16, Value) {
    (status, json!({"code": code, "message": message}))
}

/// Which error go-openapi would serve first: decode stage (0) before validation (1), then the object
/// indices along the instance path.
type ErrorOrder = (u8, Vec<u64>);

/// Parses and validates a request body. `Err` holds the status and body to answer with.
pub(crate) fn parse_body(which: BodySchema, bytes: &[u8]) -> Result<Value, (u16, Value)> {
    let param = match which {
        BodySchema::BatchObjects | BodySchema::GraphQl => "body",
        BodySchema::Class => "objectClass",
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(framework_error(422, 602, &format!("{param} in body is required")));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| framework_error(400, 400, &format!("parsing {param} body from \"\" failed, because {e}")))?;
    let validator = validator(which).map_err(|e| framework_error(500, 500, &format!("double schema: {e}")))?;
    // go-openapi decodes first (type errors), then validates objects in index order; the first error
    // of the composite is the one served.
    let mut first: Option<(ErrorOrder, (u16, Value))> = None;
    for error in validator.iter_errors(&value) {
        let path = error.instance_path().to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let order: Vec<u64> = segments.iter().filter_map(|s| s.parse().ok()).collect();
        let (stage, answer) = match error.kind() {
            ValidationErrorKind::Type { kind } => {
                let want = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(_) => "interface {}".to_owned(),
                };
                let field: Vec<&str> = segments.iter().copied().filter(|s| s.parse::<u64>().is_err()).collect();
                let found = match error.instance().as_ref() {
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "bool",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                    Value::Null => "null",
                };
                let message = format!(
                    "parsing {param} body from \"\" failed, because json: cannot unmarshal {found} into Go struct field .{} of type {}",
                    field.join("."),
                    go_type_name(&want)
                );
                (0, framework_error(400, 400, &message))
            }
            ValidationErrorKind::Format { format } => {
                let name = segments.last().copied().unwrap_or(param);
                let shown = error.instance().as_str().unwrap_or_default().to_owned();
                (1, framework_error(422, 601, &format!("{name} in body must be of type {format}: {shown:?}")))
            }
            ValidationErrorKind::Enum { options } => {
                let listed: Vec<String> = options
                    .as_array()
                    .map(|o| o.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
                    .unwrap_or_default();
                let name = std::iter::once(param).chain(segments.iter().copied()).collect::<Vec<_>>().join(".");
                (1, framework_error(422, 606, &format!("{name} in body should be one of [{}]", listed.join(" "))))
            }
            _ => (1, framework_error(422, 422, &format!("validation failure list: {error}"))),
        };
        let key = (stage, order);
        if first.as_ref().is_none_or(|(k, _)| key < *k) {
            first = Some((key, answer));
        }
    }
    match first {
        Some((_, answer)) => Err(answer),
        None => Ok(value),
    }
}

fn go_type_name(json_type: &str) -> &str {
    match json_type {
        "string" => "string",
        "number" => "float32",
        "integer" => "int64",
        "boolean" => "bool",
        "array" => "[]interface {}",
        _ => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_id_rejects_the_body_with_422_code_601() {
        let body =
            br#"{"objects":[{"class":"A","id":"00000000-0000-0000-0000-000000000001"},{"class":"A","id":"nope"}]}"#;
        let (status, answer) = parse_body(BodySchema::BatchObjects, body).expect_err("invalid");
        assert_eq!(status, 422);
        assert_eq!(answer, json!({"code": 601, "message": "id in body must be of type uuid: \"nope\""}));
    }

    #[test]
    fn wrong_json_types_are_decode_errors_with_400() {
        let (status, answer) = parse_body(BodySchema::BatchObjects, br#"{"objects":[{"class":"A","vector":["x"]}]}"#)
            .expect_err("invalid");
        assert_eq!(status, 400);
        assert_eq!(answer["code"], 400);
        assert!(answer["message"].as_str().is_some_and(|m| m.contains("cannot unmarshal string")), "{answer}");
        let (status, _) = parse_body(BodySchema::BatchObjects, b"{not json").expect_err("invalid");
        assert_eq!(status, 400);
        let (status, answer) = parse_body(BodySchema::BatchObjects, b"").expect_err("empty");
        assert_eq!((status, answer["code"].as_u64()), (422, Some(602)));
    }

    #[test]
    fn valid_bodies_pass() {
        let body = br#"{"objects":[{"class":"A","id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","properties":{"x":1},"vector":[0.1,0.2]}]}"#;
        assert!(parse_body(BodySchema::BatchObjects, body).is_ok());
        let class = br#"{"class":"A","properties":[{"name":"x","dataType":["int"]}]}"#;
        assert!(parse_body(BodySchema::Class, class).is_ok());
        let (status, answer) = parse_body(
            BodySchema::Class,
            br#"{"class":"A","properties":[{"name":"x","dataType":["text"],"tokenization":"nope"}]}"#,
        )
        .expect_err("enum");
        assert_eq!((status, answer["code"].as_u64()), (422, Some(606)));
    }
}
