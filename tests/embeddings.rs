//! `millionx run --embed`: every post and order carries its 384-dim all-MiniLM-L6-v2 vector, coverage is 100%,
//! and `millionx search` finds the nearest objects in the local index and in Weaviate (the double, through a
//! GraphQL `nearVector` query), with the same answers. Tests that need the model (`ops/models/fetch-minilm.sh`,
//! run by `.ci/run`) say they skipped without it, and fail under `CI=true`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use millionx_weaviate_double::WeaviateDouble;
use serde_json::Value;

/// True when the model is installed; without it, panics under `CI=true` and prints that `test` skipped.
fn model_present(test: &str) -> bool {
    if millionx_embed::locate_model_dir().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true and no model: run ops/models/fetch-minilm.sh");
    eprintln!("SKIPPED {test}: no model directory (run ops/models/fetch-minilm.sh)");
    false
}

/// `millionx search` output lines.
fn hits(args: &[&str], envs: &[(&str, &str)]) -> Vec<Value> {
    let mut c = command();
    c.arg("search").args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "search {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_run_with_embeddings_vectorises_every_record_and_search_agrees_with_weaviate() {
    if !model_present("a_run_with_embeddings_vectorises_every_record_and_search_agrees_with_weaviate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    run_ok(&["gen", "--out", input.to_str().unwrap(), "--social", "150", "--market", "150", "--hours", "3"]);
    let run = run_ok(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--embed",
        "on",
        "-w",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("(coverage 100.0%), 0 past the deadline, 0 failed"), "{stdout}");
    for class in ["SocialPost", "MarketOrder"] {
        let objs = objects(&out.join("weaviate").join(class));
        assert!(objs.len() > 100, "{class}: {}", objs.len());
        for o in &objs {
            let v = o["vector"].as_array().unwrap_or_else(|| panic!("{class} object without vector: {o}"));
            assert_eq!(v.len(), 384);
            let norm: f64 = v.iter().map(|x| x.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "L2-normalised, got {norm}");
            assert_eq!(o["properties"]["embeddingModel"], "all-MiniLM-L6-v2");
        }
    }
    for w in ndjson(&out.join("quality")).iter().filter(|w| w["stream"] != "weather") {
        assert_eq!(w["embedding_coverage"].as_f64(), Some(1.0), "{w}");
    }
    let rows = ndjson(&out.join("snowflake/MARKET_ORDERS"));
    assert!(rows.iter().all(|r| r["EMBEDDING_MODEL"] == "all-MiniLM-L6-v2"));

    let index = out.join("weaviate");
    let local = hits(&["Rain Umbrella", "--class", "MarketOrder", "-k", "3", "--index", index.to_str().unwrap()], &[]);
    assert_eq!(local.len(), 3);
    assert!(local[0].to_string().contains("Rain Umbrella"), "the nearest order is an umbrella: {local:?}");

    // The same records into Weaviate (the double), then the same searches through GraphQL nearVector.
    let double = WeaviateDouble::start().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, format!("[weaviate]\nurl = \"{}\"\n", double.url())).unwrap();
    let cfg = config.to_str().unwrap();
    run_ok(&["weaviate", "schema", "--config", cfg]);
    let out2 = dir.path().join("out2");
    run_ok(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--config",
        cfg,
        "--sink",
        "weaviate",
        "--embed",
        "on",
    ]);
    let posts = objects(&index.join("SocialPost"));
    assert_eq!(double.count("SocialPost"), posts.len());
    assert!(double.objects("SocialPost").iter().all(|o| o.vector.as_ref().is_some_and(|v| v.len() == 384)));

    // A post whose text no other post has: searching for that text finds it first, at distance ≈ 0.
    let mut by_text: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &posts {
        by_text.entry(p["properties"]["content"].as_str().unwrap()).or_default().push(p["id"].as_str().unwrap());
    }
    let (text, ids) = by_text.iter().find(|(_, ids)| ids.len() == 1).expect("a post with a unique text");
    let url = double.url();
    let from_weaviate = hits(&[text, "-k", "5"], &[("WEAVIATE_URL", &url)]);
    let from_config = hits(&[text, "-k", "5", "--config", cfg], &[]);
    let from_files = hits(&[text, "-k", "5", "--index", index.to_str().unwrap()], &[]);
    assert_eq!(from_weaviate.len(), 5);
    assert_eq!(from_weaviate, from_config, "WEAVIATE_URL and [weaviate] reach the same server");
    for h in [&from_weaviate[0], &from_files[0]] {
        assert_eq!(h["id"], ids[0], "the text itself is the top hit: {h}");
        assert!(h["distance"].as_f64().unwrap().abs() < 1e-4, "{h}");
        assert_eq!(h["class"], "SocialPost");
    }
    for (w, f) in from_weaviate.iter().zip(&from_files) {
        let (dw, df) = (w["distance"].as_f64().unwrap(), f["distance"].as_f64().unwrap());
        assert!((dw - df).abs() < 1e-4, "same distances at each rank: {w} vs {f}");
        assert_eq!(w["properties"]["content"], f["properties"]["content"], "same objects: {w} vs {f}");
    }
    let distances: Vec<f64> = from_weaviate.iter().map(|h| h["distance"].as_f64().unwrap()).collect();
    assert!(distances.windows(2).all(|d| d[0] <= d[1]), "ascending distance: {distances:?}");
}

#[test]
fn embed_on_without_a_model_fails_at_start_and_auto_runs_without_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, cache) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("cache"));
    run_ok(&["gen", "--out", input.to_str().unwrap(), "--social", "40", "--market", "40", "--hours", "2"]);
    let run = |mode: &str| {
        command()
            .env_remove("MILLIONX_MODEL_DIR")
            .env("XDG_CACHE_HOME", &cache)
            .args(["run", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--embed", mode])
            .output()
            .unwrap()
    };
    let expected_dir = cache.join("millionx").join("all-MiniLM-L6-v2");
    let on = run("on");
    let stderr = String::from_utf8_lossy(&on.stderr);
    assert_eq!(on.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--embed: no all-MiniLM-L6-v2 model in {}", expected_dir.display())),
        "names the directory and the reason: {stderr}"
    );

    let auto = run("auto");
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "{stderr}");
    assert_eq!(stderr.matches("embeddings off:").count(), 1, "said once: {stderr}");
    for class in ["SocialPost", "MarketOrder"] {
        let objs = objects(&out.join("weaviate").join(class));
        assert!(!objs.is_empty());
        assert!(objs.iter().all(|o| o.get("vector").is_none() && o["properties"].get("embeddingModel").is_none()));
    }
    for w in ndjson(&out.join("quality")).iter().filter(|w| w["stream"] != "weather") {
        assert_eq!(w["embedding_coverage"].as_f64(), Some(0.0), "{w}");
    }

    // A MILLIONX_MODEL_DIR without the files is a configuration error even in auto mode.
    let bad = command()
        .env("MILLIONX_MODEL_DIR", &cache)
        .args(["run", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MILLIONX_MODEL_DIR=") && stderr.contains("config.json is missing"), "{stderr}");
}
