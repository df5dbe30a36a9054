//! `millionx weaviate schema`: create the MillionX classes, verify the live schema against them, or
//! recreate them.
//!
//! Our definitions are `ops/weaviate/*.json` (built in; `--classes-dir` reads another folder). The
//! comparison treats names and defaults as the server does (usecases/schema/class.go): class names are
//! upper-cased on the first letter and property names lower-cased on it; `string` is migrated to
//! `text`; only the settings a definition states are compared, so every default the server fills in
//! (HNSW `ef`, inverted index, sharding, tokenization, …) is no drift; properties the server has and we
//! do not (auto-schema adds them on import) are reported as extra.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::client::{build_client, error_message};
use crate::config::{validate_url, WeaviateConfig};

/// The built-in class definitions (file name, JSON text), from `ops/weaviate/`.
pub const BUILTIN_CLASSES: &[(&str, &str)] = &[
    ("SocialPost.json", include_str!("../../../ops/weaviate/SocialPost.json")),
    ("MarketOrder.json", include_str!("../../../ops/weaviate/MarketOrder.json")),
];

/// Arguments of `weaviate schema`.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaArgs {
    /// Compare the live schema with ours, print every difference, exit 1 on drift; change nothing.
    #[arg(long, conflicts_with = "force_recreate")]
    pub verify_only: bool,
    /// Delete our classes (and all their objects) and create them again.
    #[arg(long)]
    pub force_recreate: bool,
    /// Confirm --force-recreate without a prompt (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Weaviate base URL (default: config `weaviate.url`, else $WEAVIATE_URL, else http://127.0.0.1:8080).
    #[arg(long)]
    pub url: Option<String>,
    /// Folder of class definitions, one JSON file per class (default: the built-in ops/weaviate ones).
    #[arg(long)]
    pub classes_dir: Option<PathBuf>,
}

/// A class definition of ours, names normalised as the server stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassDef {
    /// Class name (first letter upper-cased).
    pub name: String,
    /// The definition as POSTed (names normalised).
    pub body: Map<String, Value>,
}

impl ClassDef {
    /// Parses one definition. Errors: not a JSON object, no `class`, a property without `name` or
    /// `dataType`, duplicate property names.
    pub fn parse(source: &str, text: &str) -> Result<ClassDef, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("{source}: not JSON: {e}"))?;
        let Value::Object(mut body) = value else { return Err(format!("{source}: not a JSON object")) };
        let name = match body.get("class").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => uppercase_first(n),
            _ => return Err(format!("{source}: no \"class\" name")),
        };
        body.insert("class".into(), Value::String(name.clone()));
        let mut seen = std::collections::HashSet::new();
        if let Some(Value::Array(props)) = body.get_mut("properties") {
            for (i, prop) in props.iter_mut().enumerate() {
                let Some(p) = prop.as_object_mut() else {
                    return Err(format!("{source}: property {i} is not an object"));
                };
                let pname = match p.get("name").and_then(Value::as_str) {
                    Some(n) if !n.is_empty() => lowercase_first(n),
                    _ => return Err(format!("{source}: property {i} has no name")),
                };
                if p.get("dataType").and_then(Value::as_array).is_none_or(|d| d.is_empty()) {
                    return Err(format!("{source}: property {pname} has no dataType"));
                }
                if !seen.insert(pname.to_ascii_lowercase()) {
                    return Err(format!("{source}: property {pname} appears twice"));
                }
                p.insert("name".into(), Value::String(pname));
            }
        }
        Ok(ClassDef { name, body })
    }

    /// The built-in definitions (`SocialPost`, `MarketOrder`).
    pub fn builtin() -> Result<Vec<ClassDef>, String> {
        BUILTIN_CLASSES.iter().map(|(file, text)| ClassDef::parse(file, text)).collect()
    }

    /// Every `*.json` file of `dir`, sorted by file name.
    pub fn from_dir(dir: &Path) -> Result<Vec<ClassDef>, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("{}: no *.json class definitions", dir.display()));
        }
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                ClassDef::parse(&p.display().to_string(), &text)
            })
            .collect()
    }

    /// The definition with another class name (tests use unique names on a shared server).
    pub fn renamed(&self, name: &str) -> ClassDef {
        let mut body = self.body.clone();
        let name = uppercase_first(name);
        body.insert("class".into(), Value::String(name.clone()));
        ClassDef { name, body }
    }

    /// Property name → first data type (`string` read as `text`).
    fn property_types(&self) -> BTreeMap<String, String> {
        properties(&self.body).map(|(name, p)| (name, data_type(p))).collect()
    }
}

/// Upper-cases the first letter (the server's `UppercaseClassName`).
pub fn uppercase_first(name: &str) -> String {
    let mut c = name.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Lower-cases the first letter (the server's `LowercaseAllPropertyNames`).
pub fn lowercase_first(name: &str) -> String {
    let mut c = name.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

fn properties(class: &Map<String, Value>) -> impl Iterator<Item = (String, &Map<String, Value>)> {
    class
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|p| Some((lowercase_first(p.get("name")?.as_str()?), p)))
}

fn data_type(prop: &Map<String, Value>) -> String {
    let types: Vec<&str> =
        prop.get("dataType").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let joined = types.join(",");
    match joined.as_str() {
        "string" => "text".into(),
        "string[]" => "text[]".into(),
        _ => joined,
    }
}

/// One difference between our definition and the live schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Drift {
    /// The class does not exist.
    MissingClass {
        /// Class name.
        class: String,
    },
    /// A property of ours is missing.
    MissingProperty {
        /// Class name.
        class: String,
        /// Property name.
        property: String,
        /// Our data type.
        data_type: String,
    },
    /// The server has a property we do not define (auto-schema adds these on import).
    ExtraProperty {
        /// Class name.
        class: String,
        /// Property name.
        property: String,
        /// Its live data type.
        data_type: String,
    },
    /// A property's data type differs.
    TypeMismatch {
        /// Class name.
        class: String,
        /// Property name.
        property: String,
        /// Our data type.
        want: String,
        /// The live data type.
        live: String,
    },
    /// A class setting we state differs (vectorizer, index type, `vectorIndexConfig.*`, or a
    /// property setting such as `properties.city.tokenization`).
    Config {
        /// Class name.
        class: String,
        /// Dotted path of the setting.
        path: String,
        /// Our value (JSON).
        want: Value,
        /// The live value (JSON; `null` when absent).
        live: Value,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::MissingClass { class } => write!(f, "{class}: class missing"),
            Drift::MissingProperty { class, property, data_type } => {
                write!(f, "{class}.{property}: property missing (want {data_type})")
            }
            Drift::ExtraProperty { class, property, data_type } => {
                write!(f, "{class}.{property}: extra property ({data_type}; auto-schema adds these on import)")
            }
            Drift::TypeMismatch { class, property, want, live } => {
                write!(f, "{class}.{property}: type mismatch: want {want}, live {live}")
            }
            Drift::Config { class, path, want, live } => {
                write!(f, "{class}: config drift at {path}: want {want}, live {live}")
            }
        }
    }
}

/// True when two JSON values are the same setting (numbers compared by value: 64 == 64.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Every stated setting of `want` (recursively through objects) compared with `live`.
fn compare_settings(class: &str, path: &str, want: &Value, live: &Value, out: &mut Vec<Drift>) {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => {
            for (k, v) in w {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                compare_settings(class, &sub, v, l.get(k).unwrap_or(&Value::Null), out);
            }
        }
        _ if same(want, live) => {}
        _ => out.push(Drift::Config { class: class.into(), path: path.into(), want: want.clone(), live: live.clone() }),
    }
}

/// Compares our definition with the live class (`None`: missing). Descriptions are not compared.
pub fn diff_class(ours: &ClassDef, live: Option<&Map<String, Value>>) -> Vec<Drift> {
    let class = ours.name.as_str();
    let Some(live) = live else { return vec![Drift::MissingClass { class: class.into() }] };
    let mut out = Vec::new();
    for (key, want) in &ours.body {
        if matches!(key.as_str(), "class" | "properties" | "description") {
            continue;
        }
        compare_settings(class, key, want, live.get(key).unwrap_or(&Value::Null), &mut out);
    }
    let live_props: BTreeMap<String, &Map<String, Value>> = properties(live).collect();
    for (name, prop) in properties(&ours.body) {
        let want_type = data_type(prop);
        let Some(live_prop) = live_props.get(&name) else {
            out.push(Drift::MissingProperty { class: class.into(), property: name, data_type: want_type });
            continue;
        };
        let live_type = data_type(live_prop);
        if live_type != want_type {
            out.push(Drift::TypeMismatch {
                class: class.into(),
                property: name.clone(),
                want: want_type,
                live: live_type,
            });
        }
        for (key, want) in prop {
            if matches!(key.as_str(), "name" | "dataType" | "description") {
                continue;
            }
            let path = format!("properties.{name}.{key}");
            compare_settings(class, &path, want, live_prop.get(key).unwrap_or(&Value::Null), &mut out);
        }
    }
    let ours_types = ours.property_types();
    for (name, prop) in &live_props {
        if !ours_types.contains_key(name) {
            out.push(Drift::ExtraProperty { class: class.into(), property: name.clone(), data_type: data_type(prop) });
        }
    }
    out
}

/// A failure of the schema command (exit code 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("weaviate schema: {0}")]
pub struct SchemaError(pub String);

/// What the command did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchemaReport {
    /// Classes created.
    pub created: Vec<String>,
    /// Classes deleted (--force-recreate).
    pub deleted: Vec<String>,
    /// Differences left after the command (empty: the live schema matches ours).
    pub drift: Vec<Drift>,
}

/// A small async client of the schema endpoints.
pub struct SchemaClient {
    client: reqwest::Client,
    base: String,
}

impl SchemaClient {
    /// A client of `base_url` (validated), with the config's key and timeouts.
    pub fn new(base_url: &str, config: &WeaviateConfig) -> Result<SchemaClient, SchemaError> {
        validate_url(base_url).map_err(|e| SchemaError(format!("url: {e}")))?;
        let key = config
            .resolve_api_key(&millionx_dataflow::config::Env::process())
            .map_err(|e| SchemaError(e.to_string()))?;
        let client = build_client(
            key.as_ref(),
            Duration::from_millis(config.connect_timeout_ms),
            Duration::from_millis(config.request_timeout_ms),
        )
        .map_err(SchemaError)?;
        Ok(SchemaClient { client, base: base_url.trim_end_matches('/').to_owned() })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), SchemaError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        let response = request.send().await.map_err(|e| SchemaError(format!("{method} {url}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| SchemaError(format!("{method} {url}: {e}")))?;
        if status == 401 || status == 403 {
            return Err(SchemaError(format!(
                "{method} {url}: HTTP {status}: {} (check WEAVIATE_API_KEY / weaviate.api_key_file)",
                error_message(&bytes)
            )));
        }
        Ok((status, bytes.to_vec()))
    }

    /// `GET /v1/schema/{class}`: the live class, `None` on 404.
    pub async fn get_class(&self, name: &str) -> Result<Option<Map<String, Value>>, SchemaError> {
        let (status, body) = self.call(reqwest::Method::GET, &format!("/v1/schema/{name}"), None).await?;
        match status {
            200 => match serde_json::from_slice(&body) {
                Ok(Value::Object(class)) => Ok(Some(class)),
                _ => Err(SchemaError(format!("GET /v1/schema/{name}: the answer is not a class object"))),
            },
            404 => Ok(None),
            other => Err(SchemaError(format!("GET /v1/schema/{name}: HTTP {other}: {}", error_message(&body)))),
        }
    }

    /// `POST /v1/schema`.
    pub async fn create_class(&self, class: &ClassDef) -> Result<(), SchemaError> {
        let (status, body) =
            self.call(reqwest::Method::POST, "/v1/schema", Some(&Value::Object(class.body.clone()))).await?;
        match status {
            200 => Ok(()),
            other => Err(SchemaError(format!("create {}: HTTP {other}: {}", class.name, error_message(&body)))),
        }
    }

    /// `DELETE /v1/schema/{class}` (deletes its objects too).
    pub async fn delete_class(&self, name: &str) -> Result<(), SchemaError> {
        let (status, body) = self.call(reqwest::Method::DELETE, &format!("/v1/schema/{name}"), None).await?;
        match status {
            200 | 204 | 404 => Ok(()),
            other => Err(SchemaError(format!("delete {name}: HTTP {other}: {}", error_message(&body)))),
        }
    }

    /// Differences between `classes` and the live schema.
    pub async fn verify(&self, classes: &[ClassDef]) -> Result<Vec<Drift>, SchemaError> {
        let mut drift = Vec::new();
        for class in classes {
            let live = self.get_class(&class.name).await?;
            drift.extend(diff_class(class, live.as_ref()));
        }
        Ok(drift)
    }
}

/// The mode of a run, from the flags.
fn mode(args: &SchemaArgs) -> &'static str {
    if args.verify_only {
        "verify"
    } else if args.force_recreate {
        "recreate"
    } else {
        "create"
    }
}

/// Runs the command with `out` for the report and `confirm` asked before deleting (only when
/// `--force-recreate` is given without `--yes`). Returns what was done; drift left over is in
/// [`SchemaReport::drift`]. Errors: bad URL or definitions, HTTP failures, refused confirmation.
pub async fn schema_command(
    args: &SchemaArgs,
    config: &WeaviateConfig,
    classes: &[ClassDef],
    out: &mut dyn Write,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<SchemaReport, SchemaError> {
    let url = args.url.clone().unwrap_or_else(|| config.url.clone());
    let client = SchemaClient::new(&url, config)?;
    let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    let mut report = SchemaReport::default();
    let say = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "{line}");
    };
    match mode(args) {
        "verify" => {}
        "recreate" => {
            let question = format!(
                "--force-recreate deletes the classes {} on {url} and every object in them. Continue? [y/N] ",
                names.join(", ")
            );
            if !args.yes && !confirm(&question) {
                return Err(SchemaError("--force-recreate not confirmed (pass --yes to skip the question)".into()));
            }
            for class in classes {
                client.delete_class(&class.name).await?;
                report.deleted.push(class.name.clone());
                say(out, format!("deleted {}", class.name));
            }
            for class in classes {
                client.create_class(class).await?;
                report.created.push(class.name.clone());
                say(out, format!("created {}", class.name));
            }
        }
        _ => {
            for class in classes {
                if client.get_class(&class.name).await?.is_none() {
                    client.create_class(class).await?;
                    report.created.push(class.name.clone());
                    say(out, format!("created {}", class.name));
                } else {
                    say(out, format!("{} exists", class.name));
                }
            }
        }
    }
    report.drift = client.verify(classes).await?;
    if report.drift.is_empty() {
        say(out, format!("schema matches: {}", names.join(", ")));
    } else {
        for d in &report.drift {
            say(out, format!("drift: {d}"));
        }
        say(
            out,
            format!(
                "{} difference(s); `weaviate schema --force-recreate` rebuilds the classes (deleting their objects)",
                report.drift.len()
            ),
        );
    }
    Ok(report)
}

/// Entry point of `millionx weaviate schema`: exit 0 when the live schema matches ours, 1 on drift
/// (printed line by line), 2 on errors. The URL comes from `--url`, else `config.url` when a config is
/// given, else `$WEAVIATE_URL`, else `http://127.0.0.1:8080`. `--force-recreate` asks on a terminal and
/// needs `--yes` otherwise.
pub fn run_schema(args: &SchemaArgs, config: Option<&WeaviateConfig>) -> ExitCode {
    let config =
        config.cloned().unwrap_or_else(|| WeaviateConfig::from_env(&millionx_dataflow::config::Env::process()));
    let classes = match &args.classes_dir {
        Some(dir) => ClassDef::from_dir(dir),
        None => ClassDef::builtin(),
    };
    let classes = match classes {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weaviate schema: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weaviate schema: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut confirm = |question: &str| {
        if !std::io::stdin().is_terminal() {
            eprintln!("weaviate schema: stdin is not a terminal; pass --yes to confirm --force-recreate");
            return false;
        }
        eprint!("{question}");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(schema_command(args, &config, &classes, &mut stdout, &mut confirm)) {
        Ok(report) if report.drift.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_definitions_match_pipeline_md() {
        let classes = ClassDef::builtin().expect("parse");
        let social = &classes[0];
        assert_eq!(social.name, "SocialPost");
        let types = social.property_types();
        assert_eq!(types.len(), 20);
        assert_eq!(types["postedAt"], "date");
        assert_eq!(types["engagementCount"], "int");
        assert_eq!(types["categoryConfidence"], "number");
        assert_eq!(types["isWeekend"], "boolean");
        let market = classes[1].property_types();
        assert_eq!(classes[1].name, "MarketOrder");
        assert_eq!(market.len(), 27);
        assert_eq!(market["ingestedAt"], "date");
        assert_eq!(market["unitPrice"], "number");
        assert_eq!(market["quantity"], "int");
        for c in &classes {
            assert_eq!(c.body["vectorizer"], "none");
            assert_eq!(
                c.body["vectorIndexConfig"],
                json!({"maxConnections": 64, "efConstruction": 128, "vectorCacheMaxObjects": 1_000_000,
                       "flatSearchCutoff": 40_000, "distance": "cosine"})
            );
        }
    }

    #[test]
    fn names_are_normalised_and_server_defaults_are_no_drift() {
        let ours = ClassDef::parse(
            "t",
            r#"{"class":"post","vectorIndexConfig":{"maxConnections":64},
            "properties":[{"name":"Title","dataType":["string"]}]}"#,
        )
        .expect("parse");
        assert_eq!(ours.name, "Post");
        let live = json!({"class":"Post","vectorIndexConfig":{"maxConnections":64.0,"ef":-1},
            "properties":[{"name":"title","dataType":["text"],"tokenization":"whitespace"}]});
        assert_eq!(diff_class(&ours, live.as_object()), vec![]);
    }

    #[test]
    fn every_kind_of_drift_is_reported() {
        let ours = ClassDef::parse(
            "t",
            r#"{"class":"Post","vectorizer":"none","vectorIndexConfig":{"maxConnections":64},
            "properties":[{"name":"a","dataType":["int"]},{"name":"b","dataType":["text"]}]}"#,
        )
        .expect("parse");
        let live = json!({"class":"Post","vectorizer":"text2vec-openai","vectorIndexConfig":{"maxConnections":32},
            "properties":[{"name":"a","dataType":["number"]},{"name":"c","dataType":["text"]}]});
        let drift = diff_class(&ours, live.as_object());
        assert_eq!(drift.len(), 5, "{drift:?}");
        assert!(drift.contains(&Drift::Config {
            class: "Post".into(),
            path: "vectorizer".into(),
            want: json!("none"),
            live: json!("text2vec-openai")
        }));
        assert!(drift.contains(&Drift::Config {
            class: "Post".into(),
            path: "vectorIndexConfig.maxConnections".into(),
            want: json!(64),
            live: json!(32)
        }));
        assert!(drift.contains(&Drift::TypeMismatch {
            class: "Post".into(),
            property: "a".into(),
            want: "int".into(),
            live: "number".into()
        }));
        assert!(drift.contains(&Drift::MissingProperty {
            class: "Post".into(),
            property: "b".into(),
            data_type: "text".into()
        }));
        assert!(drift.contains(&Drift::ExtraProperty {
            class: "Post".into(),
            property: "c".into(),
            data_type: "text".into()
        }));
        assert_eq!(diff_class(&ours, None), vec![Drift::MissingClass { class: "Post".into() }]);
    }
}
