//! `millionx run --sink weaviate` against the spec-faithful Weaviate double: one object per good record,
//! the right properties, and a replay that stores nothing new.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use millionx_weaviate_double::WeaviateDouble;
use serde_json::Value;

fn good_ids(file: &std::path::Path, key: &str) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.is_object() && v.get("_expect").is_none())
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_run_into_weaviate_stores_one_object_per_good_record_and_replays_change_nothing() {
    let double = WeaviateDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let gen_args =
        ["--social", "3000", "--market", "3000", "--bad-rate", "0.03", "--dup-rate", "0.02", "--late-rate", "0.02"];
    if !gen_py(&input, &gen_args) {
        run_ok(&[&["gen", "--out", input.to_str().unwrap()][..], &gen_args[..]].concat());
    }
    let config = dir.path().join("run.toml");
    std::fs::write(&config, format!("[weaviate]\nurl = \"{}\"\n", double.url())).unwrap();
    let cfg = config.to_str().unwrap();
    run_ok(&["weaviate", "schema", "--config", cfg]);

    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--embed",
            "off",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--config",
            cfg,
            "--sink",
            "weaviate",
        ];
        args.extend_from_slice(extra);
        run_ok(&args);
    };
    run(&["-w", "2"]);
    let posts = good_ids(&input.join("social.jsonl"), "postId");
    let orders = good_ids(&input.join("market.jsonl"), "orderId");
    assert_eq!(double.count("SocialPost"), posts.len());
    assert_eq!(double.count("MarketOrder"), orders.len());
    for o in double.objects("SocialPost") {
        let props = &o.properties;
        assert!(posts.contains(props["postId"].as_str().unwrap()));
        assert!(props.len() >= 16 && props.len() <= 20, "{props:?}");
        assert!(!props.contains_key("authorId") && !props.contains_key("authorName"));
    }
    for o in double.objects("MarketOrder") {
        assert!(o.properties.len() <= 27);
    }
    assert!(files(&out.join("weaviate")).is_empty(), "no Weaviate files when the service is the sink");
    assert!(!files(&out.join("snowflake/SOCIAL_POSTS")).is_empty(), "Snowflake rows still go to files");

    // A replay (other worker count) overwrites by id: no new objects.
    run(&["-w", "1"]);
    assert_eq!(double.count("SocialPost"), posts.len());
    assert_eq!(double.count("MarketOrder"), orders.len());
    run_ok(&["weaviate", "schema", "--verify-only", "--config", cfg]);
}
