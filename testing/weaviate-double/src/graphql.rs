//! `POST /v1/graphql`: the `Get` queries MillionX sends, answered as Weaviate answers them.
//!
//! Supported: `{ Get { <Class>(nearVector: {vector: [...], distance?: d, certainty?: c}, limit: n, offset?: o)
//! { <properties> _additional { id distance certainty vector creationTimeUnix lastUpdateTimeUnix } } } }`, with
//! `$variables` anywhere a value goes, several classes per `Get`, and `nearVector` left out (objects in id order).
//! A vector search is exact (brute force over the stored objects; Weaviate's HNSW returns the same hits when its
//! recall is perfect): cosine distance `1 − cos(a, b)` ascending, ties by id, objects without a vector left out;
//! `certainty = 1 − distance / 2` (Weaviate, cosine only). `limit` defaults to 10 (`QUERY_DEFAULTS_LIMIT`).
//!
//! Errors follow the server (adapters/handlers/rest/handlers_graphql.go and the graphql-go library it runs): an
//! empty `query` is 422 `ErrorResponse` "query cannot be empty"; everything the GraphQL layer rejects (syntax,
//! unknown class or field, wrong vector length) is 200 with `errors[{message, locations?, path?}]`.

use graphql_parser::query::{Definition, Document, Field, OperationDefinition, Selection, SelectionSet, Value as Gql};
use graphql_parser::Pos;
use serde_json::{json, Map, Number, Value};

use crate::class::uppercase_first;
use crate::{Db, StoredObject};

/// Weaviate's default `limit` for `Get` (`QUERY_DEFAULTS_LIMIT`).
pub(crate) const DEFAULT_LIMIT: usize = 10;

/// A GraphQL error for the `errors` array.
struct GqlError {
    message: String,
    at: Option<Pos>,
    path: Vec<String>,
}

impl GqlError {
    fn new(message: impl Into<String>, at: Option<Pos>) -> Self {
        GqlError { message: message.into(), at, path: Vec::new() }
    }
    fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("message".into(), Value::String(self.message.clone()));
        if let Some(p) = self.at {
            e.insert("locations".into(), json!([{"line": p.line, "column": p.column}]));
        }
        if !self.path.is_empty() {
            e.insert("path".into(), json!(self.path));
        }
        Value::Object(e)
    }
}

/// Answers a validated `GraphQLQuery` body: `(status, body)`.
pub(crate) fn answer(db: &Db, body: &Value) -> (u16, Value) {
    let query = body.get("query").and_then(Value::as_str).unwrap_or_default();
    if query.is_empty() {
        return (422, json!({"error": [{"message": "query cannot be empty"}]}));
    }
    let empty = Map::new();
    let variables = body.get("variables").and_then(Value::as_object).unwrap_or(&empty);
    let operation = body.get("operationName").and_then(Value::as_str).filter(|o| !o.is_empty());
    let doc: Document<'_, String> = match graphql_parser::parse_query(query) {
        Ok(d) => d,
        Err(e) => {
            let text = e.to_string();
            let message = format!("Syntax Error GraphQL request {}", text.trim().replace('\n', " "));
            return (200, json!({"errors": [{"message": message}]}));
        }
    };
    let set = match pick_operation(&doc, operation) {
        Ok(s) => s,
        Err(e) => return (200, json!({"errors": [e.to_json()]})),
    };
    let mut data = Map::new();
    let mut errors = Vec::new();
    for sel in &set.items {
        let Selection::Field(f) = sel else {
            errors.push(GqlError::new("fragments are not supported by this double", None));
            continue;
        };
        if f.name != "Get" {
            errors.push(GqlError::new(
                format!("Cannot query field \"{}\" on type \"WeaviateObj\".", f.name),
                Some(f.position),
            ));
            continue;
        }
        let mut get = Map::new();
        for inner in &f.selection_set.items {
            let Selection::Field(class_field) = inner else {
                errors.push(GqlError::new("fragments are not supported by this double", None));
                continue;
            };
            let key = class_field.alias.clone().unwrap_or_else(|| class_field.name.clone());
            match get_class(db, class_field, variables) {
                Ok(rows) => {
                    get.insert(key, Value::Array(rows));
                }
                Err(mut e) => {
                    e.path = vec![f.alias.clone().unwrap_or_else(|| f.name.clone()), key.clone()];
                    get.insert(key, Value::Null);
                    errors.push(e);
                }
            }
        }
        data.insert(f.alias.clone().unwrap_or_else(|| f.name.clone()), Value::Object(get));
    }
    let mut out = Map::new();
    out.insert("data".into(), Value::Object(data));
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Array(errors.iter().map(GqlError::to_json).collect()));
    }
    (200, Value::Object(out))
}

/// The selection set of the query operation to run (by `operationName` when there are several).
fn pick_operation<'d>(
    doc: &'d Document<'d, String>,
    name: Option<&str>,
) -> Result<&'d SelectionSet<'d, String>, GqlError> {
    let mut ops: Vec<(Option<&str>, &SelectionSet<'d, String>)> = Vec::new();
    for d in &doc.definitions {
        match d {
            Definition::Operation(OperationDefinition::SelectionSet(s)) => ops.push((None, s)),
            Definition::Operation(OperationDefinition::Query(q)) => ops.push((q.name.as_deref(), &q.selection_set)),
            Definition::Operation(OperationDefinition::Mutation(m)) => {
                return Err(GqlError::new("Schema is not configured for mutations.", Some(m.position)))
            }
            Definition::Operation(OperationDefinition::Subscription(s)) => {
                return Err(GqlError::new("Schema is not configured for subscriptions.", Some(s.position)))
            }
            Definition::Fragment(_) => {}
        }
    }
    match name {
        Some(n) => ops
            .iter()
            .find(|(o, _)| *o == Some(n))
            .map(|(_, s)| *s)
            .ok_or_else(|| GqlError::new(format!("Unknown operation named \"{n}\"."), None)),
        None if ops.len() == 1 => Ok(ops[0].1),
        None if ops.is_empty() => Err(GqlError::new("Must provide an operation.", None)),
        None => Err(GqlError::new("Must provide operation name if query contains multiple operations.", None)),
    }
}

/// A GraphQL value as JSON, `$variables` substituted. Errors: an undefined variable.
fn to_json(v: &Gql<'_, String>, vars: &Map<String, Value>, at: Pos) -> Result<Value, GqlError> {
    Ok(match v {
        Gql::Variable(name) => vars
            .get(name)
            .cloned()
            .ok_or_else(|| GqlError::new(format!("Variable \"${name}\" is not defined."), Some(at)))?,
        Gql::Int(n) => n.as_i64().map_or(Value::Null, |i| Value::Number(i.into())),
        Gql::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Gql::String(s) => Value::String(s.clone()),
        Gql::Boolean(b) => Value::Bool(*b),
        Gql::Null => Value::Null,
        Gql::Enum(e) => Value::String(e.clone()),
        Gql::List(items) => Value::Array(items.iter().map(|i| to_json(i, vars, at)).collect::<Result<_, _>>()?),
        Gql::Object(fields) => Value::Object(
            fields.iter().map(|(k, v)| Ok((k.clone(), to_json(v, vars, at)?))).collect::<Result<_, GqlError>>()?,
        ),
    })
}

fn argument(f: &Field<'_, String>, name: &str, vars: &Map<String, Value>) -> Result<Option<Value>, GqlError> {
    f.arguments.iter().find(|(n, _)| n == name).map(|(_, v)| to_json(v, vars, f.position)).transpose()
}

fn non_negative(v: Option<Value>, name: &str, at: Pos) -> Result<Option<usize>, GqlError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().map(|n| n as usize)),
        Some(other) => Err(GqlError::new(format!("Argument \"{name}\" has invalid value {other}."), Some(at))),
    }
}

/// The rows of one `Get { Class(...) { ... } }`.
fn get_class(db: &Db, f: &Field<'_, String>, vars: &Map<String, Value>) -> Result<Vec<Value>, GqlError> {
    let class = uppercase_first(&f.name);
    if !db.classes.contains_key(&class) {
        return Err(GqlError::new(
            format!("Cannot query field \"{}\" on type \"GetObjectsObj\".", f.name),
            Some(f.position),
        ));
    }
    for (name, _) in &f.arguments {
        if !matches!(name.as_str(), "nearVector" | "limit" | "offset") {
            return Err(GqlError::new(
                format!("Unknown argument \"{name}\" on field \"{}\" of type \"GetObjectsObj\" (this double knows nearVector, limit, offset).", f.name),
                Some(f.position),
            ));
        }
    }
    let limit = non_negative(argument(f, "limit", vars)?, "limit", f.position)?.unwrap_or(DEFAULT_LIMIT);
    let offset = non_negative(argument(f, "offset", vars)?, "offset", f.position)?.unwrap_or(0);
    let known: Vec<String> = db.classes[&class]
        .get("properties")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| p.get("name")?.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    // Check the selection before searching (graphql-go validates the whole query first).
    for sel in &f.selection_set.items {
        let Selection::Field(p) = sel else { continue };
        if p.name == "_additional" {
            for a in &p.selection_set.items {
                if let Selection::Field(a) = a {
                    if !matches!(
                        a.name.as_str(),
                        "id" | "distance" | "certainty" | "vector" | "creationTimeUnix" | "lastUpdateTimeUnix"
                    ) {
                        return Err(GqlError::new(
                            format!("Cannot query field \"{}\" on type \"{class}AdditionalProperties\".", a.name),
                            Some(a.position),
                        ));
                    }
                }
            }
        } else if !known.contains(&p.name) {
            return Err(GqlError::new(
                format!("Cannot query field \"{}\" on type \"{class}\".", p.name),
                Some(p.position),
            ));
        }
    }
    let stored = db.objects.get(&class);
    let objects = stored.into_iter().flat_map(|m| m.values());
    let hits: Vec<(&StoredObject, Option<f64>)> = match argument(f, "nearVector", vars)? {
        None => objects.skip(offset).take(limit).map(|o| (o, None)).collect(),
        Some(near) => {
            let query = near
                .get("vector")
                .and_then(Value::as_array)
                .map(|v| v.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                .ok_or_else(|| GqlError::new("nearVector: vector is required", Some(f.position)))?
                .ok_or_else(|| GqlError::new("nearVector: vector must be a list of numbers", Some(f.position)))?;
            let max_distance =
                match (near.get("distance").and_then(Value::as_f64), near.get("certainty").and_then(Value::as_f64)) {
                    (Some(_), Some(_)) => {
                        return Err(GqlError::new(
                            "explorer: get class: vector search: cannot provide distance and certainty",
                            Some(f.position),
                        ))
                    }
                    (Some(d), None) => Some(d),
                    (None, Some(c)) => Some(2.0 * (1.0 - c)),
                    (None, None) => None,
                };
            if let Some(dims) = db.dims.get(&class) {
                if *dims != query.len() {
                    return Err(GqlError::new(
                        format!(
                            "explorer: get class: vector search: object vector search at index {}: vector lengths don't match: {dims} vs {}",
                            class.to_lowercase(),
                            query.len()
                        ),
                        Some(f.position),
                    ));
                }
            }
            let mut scored: Vec<(&StoredObject, f64)> = objects
                .filter_map(|o| o.vector.as_deref().map(|v| (o, cosine_distance(&query, v))))
                .filter(|(_, d)| max_distance.is_none_or(|m| *d <= m))
                .collect();
            scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
            scored.into_iter().skip(offset).take(limit).map(|(o, d)| (o, Some(d))).collect()
        }
    };
    Ok(hits.into_iter().map(|(o, d)| row(o, d, &f.selection_set)).collect())
}

/// Weaviate's cosine distance, `1 − a·b / (‖a‖ ‖b‖)` (it normalises vectors for cosine); 1.0 for a zero vector.
pub(crate) fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        1.0
    } else {
        1.0 - dot / (na * nb)
    }
}

fn row(o: &StoredObject, distance: Option<f64>, set: &SelectionSet<'_, String>) -> Value {
    let mut out = Map::new();
    for sel in &set.items {
        let Selection::Field(p) = sel else { continue };
        let key = p.alias.clone().unwrap_or_else(|| p.name.clone());
        if p.name != "_additional" {
            out.insert(key, o.properties.get(&p.name).cloned().unwrap_or(Value::Null));
            continue;
        }
        let mut add = Map::new();
        for a in &p.selection_set.items {
            let Selection::Field(a) = a else { continue };
            let k = a.alias.clone().unwrap_or_else(|| a.name.clone());
            let v = match a.name.as_str() {
                "id" => Value::String(o.id.to_string()),
                "distance" => distance.and_then(Number::from_f64).map_or(Value::Null, Value::Number),
                "certainty" => {
                    distance.and_then(|d| Number::from_f64(1.0 - d / 2.0)).map_or(Value::Null, Value::Number)
                }
                "vector" => o.vector.as_ref().map_or(Value::Array(Vec::new()), |v| json!(v)),
                "creationTimeUnix" => Value::String(o.creation_time_unix.to_string()),
                "lastUpdateTimeUnix" => Value::String(o.last_update_time_unix.to_string()),
                _ => Value::Null,
            };
            add.insert(k, v);
        }
        out.insert(key, Value::Object(add));
    }
    Value::Object(out)
}
