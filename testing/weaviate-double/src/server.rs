//! The HTTP side: accept loop, auth, routing, and the endpoint handlers.

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::class::{check_class, check_value, fill_class_defaults, infer_data_type, lowercase_first, uppercase_first};
use crate::validate::{framework_error, parse_body, BodySchema};
use crate::{now_ms, Db, Fault, Shared, StoredObject};

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (fault injection)")
    }
}

impl std::error::Error for DropConnection {}

type Answer = Response<Full<Bytes>>;

pub(crate) async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn answer(status: u16, body: Option<&Value>) -> Answer {
    let mut response = Response::new(Full::new(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()))));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if body.is_some() {
        response.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    }
    response
}

fn json_answer(status: u16, body: Value) -> Answer {
    answer(status, Some(&body))
}

/// `ErrorResponse {"error":[{"message":...}]}`.
fn error_response(status: u16, message: &str) -> Answer {
    json_answer(status, json!({"error": [{"message": message}]}))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Answer, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let auth = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["v1", ".well-known", "ready" | "live"] = segments.as_slice() {
        return Ok(answer(200, None));
    }
    if let Some(key) = &shared.options.api_key {
        let refusal = match auth.as_deref().map(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) {
            None => Some(
                "anonymous access not enabled. Please authenticate through one of the available methods: [api-key]",
            ),
            Some(Some(token)) if token == key => None,
            Some(_) => Some("unauthorized: invalid api key"),
        };
        if let Some(message) = refusal {
            shared.db().stats.unauthorized += 1;
            let (status, body) = framework_error(401, 401, message);
            return Ok(json_answer(status, body));
        }
    }
    match (method, segments.as_slice()) {
        (Method::GET, ["v1", "meta"]) => Ok(json_answer(
            200,
            json!({"hostname": format!("http://{}", shared.addr), "version": "1.40.0-dev (millionx double)",
                   "modules": {}, "grpcMaxMessageSize": 104858000}),
        )),
        (Method::GET, ["v1", "schema"]) => {
            let db = shared.db();
            Ok(json_answer(200, json!({"classes": db.classes.values().collect::<Vec<_>>()})))
        }
        (Method::POST, ["v1", "schema"]) => Ok(create_class(&shared, &body)),
        (Method::GET, ["v1", "schema", name]) => {
            let db = shared.db();
            Ok(match db.classes.get(&uppercase_first(name)) {
                Some(class) => json_answer(200, class.clone()),
                None => answer(404, None),
            })
        }
        (Method::DELETE, ["v1", "schema", name]) => {
            let name = uppercase_first(name);
            let mut db = shared.db();
            db.classes.remove(&name);
            db.objects.remove(&name);
            db.dims.remove(&name);
            Ok(answer(200, None))
        }
        (Method::POST, ["v1", "batch", "objects"]) => batch_objects(&shared, &query, &body).await,
        (Method::GET, ["v1", "objects"]) => Ok(list_objects(&shared, &query)),
        (Method::POST, ["v1", "graphql"]) => Ok(match parse_body(BodySchema::GraphQl, &body) {
            Ok(value) => {
                let (status, answer) = crate::graphql::answer(&shared.db(), &value);
                json_answer(status, answer)
            }
            Err((status, body)) => json_answer(status, body),
        }),
        (Method::GET, ["v1", "objects", class, id]) => {
            let Ok(id) = Uuid::parse_str(id) else {
                let (status, body) = framework_error(422, 601, &format!("id in path must be of type uuid: {id:?}"));
                return Ok(json_answer(status, body));
            };
            let db = shared.db();
            let found = db.objects.get(&uppercase_first(class)).and_then(|m| m.get(&id));
            let include_vector = query.get("include").is_some_and(|i| i.split(',').any(|p| p == "vector"));
            Ok(match found {
                Some(object) => json_answer(200, object_json(object, include_vector)),
                None => answer(404, None),
            })
        }
        (_, _) => {
            let (status, body) = framework_error(404, 404, &format!("path {path} was not found"));
            Ok(json_answer(status, body))
        }
    }
}

fn create_class(shared: &Shared, body: &[u8]) -> Answer {
    let value = match parse_body(BodySchema::Class, body) {
        Ok(v) => v,
        Err((status, body)) => return json_answer(status, body),
    };
    let Value::Object(mut class) = value else {
        return error_response(422, "class must be an object");
    };
    let name = uppercase_first(class.get("class").and_then(Value::as_str).unwrap_or(""));
    class.insert("class".into(), Value::String(name.clone()));
    fill_class_defaults(&mut class);
    if let Err(message) = check_class(&class) {
        return error_response(422, &message);
    }
    let mut db = shared.db();
    if db.classes.contains_key(&name) {
        return error_response(422, &format!("class name {name:?} already exists"));
    }
    let stored = Value::Object(class);
    db.classes.insert(name, stored.clone());
    json_answer(200, stored)
}

fn object_json(object: &StoredObject, include_vector: bool) -> Value {
    let mut out = json!({
        "class": object.class, "id": object.id.to_string(), "properties": object.properties,
        "creationTimeUnix": object.creation_time_unix, "lastUpdateTimeUnix": object.last_update_time_unix,
    });
    if let (true, Some(vector)) = (include_vector, &object.vector) {
        out["vector"] = json!(vector);
    }
    out
}

fn list_objects(shared: &Shared, query: &HashMap<String, String>) -> Answer {
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25);
    let include_vector = query.get("include").is_some_and(|i| i.split(',').any(|p| p == "vector"));
    let after = match query.get("after").map(|a| Uuid::parse_str(a)) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return error_response(422, "after must be a valid uuid"),
        None => None,
    };
    let db = shared.db();
    let classes: Vec<String> = match query.get("class") {
        Some(c) => vec![uppercase_first(c)],
        None if after.is_some() => return error_response(422, "providing a cursor requires a class"),
        None => db.classes.keys().cloned().collect(),
    };
    let mut objects = Vec::new();
    for class in classes {
        let Some(stored) = db.objects.get(&class) else { continue };
        let range = match after {
            Some(id) => stored.range((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded)),
            None => stored.range(..),
        };
        objects.extend(range.map(|(_, o)| object_json(o, include_vector)).take(limit - objects.len().min(limit)));
    }
    let total = objects.len();
    json_answer(200, json!({"objects": objects, "deprecations": null, "totalResults": total}))
}

/// The outcome of one object of a batch.
enum ObjectResult {
    Success(Value),
    Failed(Value, String),
}

async fn batch_objects(
    shared: &Shared,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Answer, DropConnection> {
    let fault = {
        let mut db = shared.db();
        db.stats.batch_requests += 1;
        let fault = db.faults.pop_front();
        if fault.is_some() {
            db.stats.faults_applied += 1;
        }
        fault
    };
    match fault {
        Some(Fault::Status(429)) => {
            return Ok(json_answer(
                429,
                json!({"errorCode": "USAGE_LIMIT_EXCEEDED", "limit": "objects", "value": 1000000,
                       "message": "usage limit exceeded: objects limit of 1000000 reached"}),
            ))
        }
        Some(Fault::Status(500)) => {
            return Ok(error_response(500, "batch objects: shard write failed (injected fault)"))
        }
        Some(Fault::Status(status)) => return Ok(answer(status, None)),
        Some(Fault::Drop { after_write: false }) => return Err(DropConnection),
        _ => {}
    }
    let value = match parse_body(BodySchema::BatchObjects, body) {
        Ok(v) => v,
        Err((status, body)) => {
            shared.db().stats.rejected_bodies += 1;
            return Ok(json_answer(status, body));
        }
    };
    if let Some(level) = query.get("consistency_level") {
        if !matches!(level.as_str(), "ONE" | "QUORUM" | "ALL") {
            return Ok(error_response(
                400,
                &format!(
                    "unrecognized consistency level '{level}', try one of the following: ['ONE', 'QUORUM', 'ALL']"
                ),
            ));
        }
    }
    let objects = match value.get("objects").and_then(Value::as_array) {
        Some(objects) if !objects.is_empty() => objects.clone(),
        _ => {
            shared.db().stats.rejected_bodies += 1;
            return Ok(error_response(
                422,
                "invalid param 'objects': cannot be empty, need at least one object for batching",
            ));
        }
    };
    let results = {
        let mut db = shared.db();
        db.stats.batch_sizes.push(objects.len());
        write_batch(&mut db, shared.options.auto_schema, objects)
    };
    match fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Drop { after_write: true }) => return Err(DropConnection),
        _ => {}
    }
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            ObjectResult::Success(mut o) => {
                o["result"] = json!({"status": "SUCCESS"});
                o
            }
            ObjectResult::Failed(mut o, message) => {
                o["result"] = json!({"status": "FAILED", "errors": {"error": [{"message": message}]}});
                o
            }
        })
        .collect();
    Ok(json_answer(200, Value::Array(items)))
}

/// A validated object waiting to be written.
struct Prepared {
    class: String,
    id: Uuid,
    properties: Map<String, Value>,
    vector: Option<Vec<f64>>,
}

fn write_batch(db: &mut Db, auto_schema: bool, objects: Vec<Value>) -> Vec<ObjectResult> {
    let mut prepared: Vec<Result<Prepared, String>> = Vec::with_capacity(objects.len());
    for object in &objects {
        let result = prepare(db, auto_schema, object);
        prepared.push(result);
    }
    // Duplicate ids: only the last occurrence is written, the earlier ones report SUCCESS.
    let mut last: HashMap<(String, Uuid), usize> = HashMap::new();
    for (i, p) in prepared.iter().enumerate() {
        if let Ok(p) = p {
            last.insert((p.class.clone(), p.id), i);
        }
    }
    let now = now_ms();
    let mut results = Vec::with_capacity(objects.len());
    for (i, (object, p)) in objects.into_iter().zip(prepared).enumerate() {
        let p = match p {
            Ok(p) => p,
            Err(message) => {
                db.stats.failed_objects += 1;
                results.push(ObjectResult::Failed(object, message));
                continue;
            }
        };
        let mut echo = json!({"class": p.class, "id": p.id.to_string(), "properties": p.properties});
        if last.get(&(p.class.clone(), p.id)) != Some(&i) {
            results.push(ObjectResult::Success(echo));
            continue;
        }
        if let Some(message) = take_object_fault(db, p.id) {
            db.stats.failed_objects += 1;
            results.push(ObjectResult::Failed(object, message));
            continue;
        }
        if let Some(vector) = &p.vector {
            let fixed = *db.dims.entry(p.class.clone()).or_insert(vector.len());
            if fixed != vector.len() {
                db.stats.failed_objects += 1;
                let message = format!(
                    "insert to vector index: vector dimensions do not match the index dimensions: new node has a vector with length {}. Existing nodes have vectors with length {fixed}",
                    vector.len()
                );
                results.push(ObjectResult::Failed(object, message));
                continue;
            }
            echo["vector"] = json!(vector);
        }
        let stored = db.objects.entry(p.class.clone()).or_default();
        let creation = stored.get(&p.id).map_or(now, |o| o.creation_time_unix);
        echo["creationTimeUnix"] = json!(creation);
        echo["lastUpdateTimeUnix"] = json!(now);
        stored.insert(
            p.id,
            StoredObject {
                class: p.class,
                id: p.id,
                properties: p.properties,
                vector: p.vector,
                creation_time_unix: creation,
                last_update_time_unix: now,
            },
        );
        db.stats.writes += 1;
        results.push(ObjectResult::Success(echo));
    }
    results
}

fn take_object_fault(db: &mut Db, id: Uuid) -> Option<String> {
    let position = db.object_faults.iter().position(|f| f.id == id && f.remaining != Some(0))?;
    let fault = &mut db.object_faults[position];
    if let Some(n) = fault.remaining.as_mut() {
        *n -= 1;
    }
    Some(fault.message.clone())
}

/// Per-object checks (usecases/objects/batch_add.go → validation): class, auto-schema, property types.
fn prepare(db: &mut Db, auto_schema: bool, object: &Value) -> Result<Prepared, String> {
    let class = uppercase_first(object.get("class").and_then(Value::as_str).unwrap_or(""));
    if class.is_empty() {
        return Err("object has an empty class".into());
    }
    let id = match object.get("id").and_then(Value::as_str) {
        Some(id) => Uuid::parse_str(id).map_err(|_| format!("invalid id {id:?}"))?,
        None => {
            db.generated_ids += 1;
            Uuid::from_u128(db.generated_ids)
        }
    };
    let properties: Map<String, Value> = match object.get("properties") {
        Some(Value::Object(map)) => {
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (lowercase_first(k), v.clone())).collect()
        }
        _ => Map::new(),
    };
    if !db.classes.contains_key(&class) {
        if !auto_schema {
            return Err(format!("class '{class}' not present in schema"));
        }
        let mut created = Map::new();
        created.insert("class".into(), json!(class));
        created.insert("properties".into(), json!([]));
        fill_class_defaults(&mut created);
        db.classes.insert(class.clone(), Value::Object(created));
    }
    let Some(Value::Object(definition)) = db.classes.get_mut(&class) else {
        return Err(format!("class '{class}' not present in schema"));
    };
    for (name, value) in &properties {
        let data_type = definition
            .get("properties")
            .and_then(Value::as_array)
            .and_then(|props| props.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name)))
            .and_then(|p| p.get("dataType")?.get(0)?.as_str().map(str::to_owned));
        let data_type = match data_type {
            Some(t) => t,
            None if !auto_schema => {
                return Err(format!(
                    "no such prop with name '{name}' found in class '{class}' in the schema. Check your schema files for which properties in this class are available"
                ))
            }
            None => {
                let Some(inferred) = infer_data_type(value) else { continue };
                let mut prop = Map::new();
                prop.insert("name".into(), json!(name));
                prop.insert("dataType".into(), json!([inferred]));
                crate::class::fill_property_defaults(&mut prop);
                if let Some(Value::Array(props)) = definition.get_mut("properties") {
                    props.push(Value::Object(prop));
                }
                inferred.to_owned()
            }
        };
        check_value(&class, name, &data_type, value)?;
    }
    let vector = match object.get("vector") {
        Some(Value::Array(v)) if !v.is_empty() => Some(v.iter().filter_map(Value::as_f64).collect()),
        _ => None,
    };
    Ok(Prepared { class, id, properties, vector })
}
