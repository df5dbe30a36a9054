//! `weaviate schema` against the double (or a real Weaviate when `WEAVIATE_URL` is set): create,
//! `--verify-only` detecting each kind of drift, `--force-recreate`.

mod common;

use common::*;
use millionx_sink_util::BatchWriter;
use millionx_sink_weaviate::schema::{ClassDef, Drift, SchemaArgs};
use millionx_sink_weaviate::{run_schema, WeaviateWriter};
use serde_json::json;

fn verify_only(url: &str) -> SchemaArgs {
    SchemaArgs { verify_only: true, url: Some(url.to_owned()), ..SchemaArgs::default() }
}

fn ours(social_name: &str, market: &str) -> Vec<ClassDef> {
    vec![builtin_def("SocialPost").renamed(social_name), builtin_def("MarketOrder").renamed(market)]
}

#[test]
fn creates_missing_classes_once_and_then_matches() {
    let t = target();
    let (cls, market) = (unique("Social"), unique("Market"));
    let classes = ours(&cls, &market);
    let report = run_schema_command(&t.url, &verify_only(&t.url), &classes, &mut |_| false).expect("verify");
    assert_eq!(
        report.drift,
        vec![Drift::MissingClass { class: cls.clone() }, Drift::MissingClass { class: market.clone() }]
    );
    assert!(report.created.is_empty() && live_class(&t.url, &cls).is_none(), "--verify-only changes nothing");

    let report = run_schema_command(&t.url, &SchemaArgs::default(), &classes, &mut |_| false).expect("create");
    assert_eq!(report.created, vec![cls.clone(), market.clone()]);
    assert_eq!(report.drift, vec![]);
    let live = live_class(&t.url, &cls).expect("created");
    assert_eq!(live["vectorIndexConfig"]["maxConnections"], 64);
    assert_eq!(live["vectorIndexConfig"]["vectorCacheMaxObjects"], 1_000_000);
    assert_eq!(live["vectorizer"], "none");
    assert_eq!(live["properties"].as_array().map(Vec::len), Some(20));
    assert_eq!(live_class(&t.url, &market).expect("created")["properties"].as_array().map(Vec::len), Some(27));

    let report = run_schema_command(&t.url, &SchemaArgs::default(), &classes, &mut |_| false).expect("again");
    assert_eq!((report.created.len(), report.drift.len()), (0, 0));
}

#[test]
fn verify_only_reports_each_kind_of_drift() {
    let t = target();
    let cls = unique("Social");
    let mut drifted = builtin_def("SocialPost").renamed(&cls).body;
    drifted["vectorIndexConfig"]["maxConnections"] = json!(32);
    drifted["vectorIndexConfig"]["distance"] = json!("dot");
    let props = drifted["properties"].as_array_mut().expect("properties");
    props.retain(|p| p["name"] != "enriched");
    for p in props.iter_mut().filter(|p| p["name"] == "hourOfDay") {
        p["dataType"] = json!(["number"]);
    }
    assert_eq!(post_class(&t.url, &serde_json::Value::Object(drifted)), 200);
    // Auto-schema adds a property when an object carries one the class lacks.
    let mut object = social(&cls, "x-1", 1, false);
    object["properties"]["sentiment"] = json!("positive");
    // (Sending `enriched` would make auto-schema add it back.)
    object["properties"].as_object_mut().expect("properties").remove("enriched");
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &[object])]);
    assert!(done[0].result.is_ok());

    let classes = vec![builtin_def("SocialPost").renamed(&cls)];
    let report = run_schema_command(&t.url, &verify_only(&t.url), &classes, &mut |_| false).expect("verify");
    let mut drift = report.drift.clone();
    drift.sort_by_key(|d| d.to_string());
    assert_eq!(
        drift,
        vec![
            Drift::MissingProperty { class: cls.clone(), property: "enriched".into(), data_type: "boolean".into() },
            Drift::TypeMismatch {
                class: cls.clone(),
                property: "hourOfDay".into(),
                want: "int".into(),
                live: "number".into()
            },
            Drift::ExtraProperty { class: cls.clone(), property: "sentiment".into(), data_type: "text".into() },
            Drift::Config {
                class: cls.clone(),
                path: "vectorIndexConfig.distance".into(),
                want: json!("cosine"),
                live: json!("dot")
            },
            Drift::Config {
                class: cls.clone(),
                path: "vectorIndexConfig.maxConnections".into(),
                want: json!(64),
                live: json!(32)
            },
        ],
    );
    // A drifted class is left alone by the create mode, which still reports the drift.
    let report = run_schema_command(&t.url, &SchemaArgs::default(), &classes, &mut |_| false).expect("create");
    assert_eq!((report.created.len(), report.drift.len()), (0, 5));
}

#[test]
fn a_class_auto_schema_created_before_the_schema_command_is_drift() {
    let t = target();
    let cls = unique("Social");
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    let done = write_all(&mut writer, vec![batch(0, 0, &[social(&cls, "early", 3, true)])]);
    assert!(done[0].result.as_ref().is_ok_and(|o| o.rejected.is_empty()));
    let classes = vec![builtin_def("SocialPost").renamed(&cls)];
    let report = run_schema_command(&t.url, &verify_only(&t.url), &classes, &mut |_| false).expect("verify");
    let lines: Vec<String> = report.drift.iter().map(ToString::to_string).collect();
    // Auto-schema infers every JSON number as `number` and uses the server's HNSW defaults.
    for int_prop in ["engagementCount", "likesCount", "commentsCount", "sharesCount", "humidity", "hourOfDay"] {
        assert!(lines.contains(&format!("{cls}.{int_prop}: type mismatch: want int, live number")), "{lines:#?}");
    }
    assert!(
        lines.contains(&format!("{cls}: config drift at vectorIndexConfig.maxConnections: want 64, live 32")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("postedAt")), "RFC 3339 strings are inferred as date: {lines:#?}");
}

#[test]
fn capitalisation_is_normalised_as_the_server_does() {
    let t = target();
    let cls = unique("social");
    let mut body = builtin_def("SocialPost").renamed(&cls).body;
    // A hand-written definition with a lower-case class and upper-case property names.
    body["class"] = json!(cls.clone());
    for p in body["properties"].as_array_mut().expect("properties") {
        let name = p["name"].as_str().expect("name").to_owned();
        p["name"] = json!(format!("{}{}", name[..1].to_uppercase(), &name[1..]));
    }
    assert_eq!(post_class(&t.url, &serde_json::Value::Object(body.clone())), 200);
    let live = live_class(&t.url, &cls).expect("GET with the lower-case name finds the class");
    assert_eq!(live["class"], format!("S{}", &cls[1..]));
    assert_eq!(live["properties"][0]["name"], "postId");
    let ours = ClassDef::parse("hand-written", &serde_json::Value::Object(body).to_string()).expect("parse");
    let report = run_schema_command(&t.url, &verify_only(&t.url), &[ours], &mut |_| false).expect("verify");
    assert_eq!(report.drift, vec![]);
}

#[test]
fn force_recreate_asks_then_rebuilds_and_drops_the_objects() {
    let t = target();
    let cls = unique("Social");
    let classes = vec![builtin_def("SocialPost").renamed(&cls)];
    let mut drifted = classes[0].body.clone();
    drifted["vectorIndexConfig"]["efConstruction"] = json!(64);
    assert_eq!(post_class(&t.url, &serde_json::Value::Object(drifted)), 200);
    let mut writer = WeaviateWriter::new(&config(&t.url)).expect("writer");
    write_all(&mut writer, vec![batch(0, 0, &[social(&cls, "old", 1, true)])]);
    assert_eq!(stored(&t.url, &cls).len(), 1);

    let args = SchemaArgs { force_recreate: true, url: Some(t.url.clone()), ..SchemaArgs::default() };
    let mut asked = Vec::new();
    let refused = run_schema_command(&t.url, &args, &classes, &mut |q| {
        asked.push(q.to_owned());
        false
    });
    assert!(refused.is_err());
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains(&cls) && asked[0].contains("every object"), "{}", asked[0]);
    assert_eq!(stored(&t.url, &cls).len(), 1, "refused: nothing deleted");

    let args = SchemaArgs { yes: true, ..args };
    let report = run_schema_command(&t.url, &args, &classes, &mut |_| panic!("--yes asks nothing")).expect("recreate");
    assert_eq!((report.deleted.clone(), report.created.clone()), (vec![cls.clone()], vec![cls.clone()]));
    assert_eq!(report.drift, vec![]);
    assert_eq!(stored(&t.url, &cls).len(), 0);
    assert_eq!(writer.in_flight(), 0);
}

#[test]
fn run_schema_exits_1_on_drift_0_when_matching_and_2_on_errors() {
    let t = target();
    if t.double.is_none() {
        // The built-in class names are not touched on a shared real server.
        println!("skipped: run_schema uses the built-in class names; runs against the double only");
        return;
    }
    let verify = verify_only(&t.url);
    assert_eq!(run_schema(&verify, None), std::process::ExitCode::from(1));
    let create = SchemaArgs { url: Some(t.url.clone()), ..SchemaArgs::default() };
    assert_eq!(run_schema(&create, None), std::process::ExitCode::SUCCESS);
    assert_eq!(run_schema(&verify, None), std::process::ExitCode::SUCCESS);
    let recreate_no_tty = SchemaArgs { force_recreate: true, url: Some(t.url.clone()), ..SchemaArgs::default() };
    assert_eq!(
        run_schema(&recreate_no_tty, None),
        std::process::ExitCode::from(2),
        "stdin is no terminal here: --yes needed"
    );
    let bad_url = SchemaArgs { url: Some("ftp://nowhere".into()), ..SchemaArgs::default() };
    assert_eq!(run_schema(&bad_url, None), std::process::ExitCode::from(2));
}
