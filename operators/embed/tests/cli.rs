//! `millionx embed` through its entry point, and the local index `millionx search` reads, over batch files
//! written by the real Weaviate encoder with vectors from the real model.

mod common;

use std::path::Path;

use millionx_embed::cli::embed_texts;
use millionx_embed::{cosine, run_embed, EmbedArgs, EmbedBackend, EmbedError, LocalIndex, DIMS};
use millionx_sink_format::weaviate::ObjectEncoder;
use millionx_sink_util::Encoder;

#[test]
fn embed_prints_one_json_array_per_text_in_order() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    embed_prints_vectors_close_to_the_reference(dir, EmbedBackend::Candle);
}

#[test]
fn embed_on_openvino_prints_vectors_close_to_the_reference() {
    let (Some(dir), Some(_)) = (common::model_dir(), common::openvino()) else {
        return;
    };
    embed_prints_vectors_close_to_the_reference(dir, EmbedBackend::Openvino);
}

fn embed_prints_vectors_close_to_the_reference(dir: std::path::PathBuf, embed_backend: EmbedBackend) {
    let refs = common::reference();
    let picks = [0usize, 7, 10]; // English, Banglish, Bangla
    let args =
        EmbedArgs { texts: picks.iter().map(|&i| refs[i].text.clone()).collect(), model_dir: Some(dir), embed_backend };
    let mut out = Vec::new();
    run_embed(&args, &mut out).expect("embed runs");
    let text = String::from_utf8(out).expect("UTF-8 output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, &i) in lines.iter().zip(&picks) {
        let v: Vec<f32> = serde_json::from_str(line).expect("a JSON array of numbers");
        assert_eq!(v.len(), DIMS);
        let c = cosine(&v, &refs[i].vector);
        assert!(c >= 0.999, "{:?}: cosine {c}", refs[i].text);
    }
}

#[test]
fn embed_with_a_bad_model_dir_names_the_flag_and_the_file() {
    let empty = tempfile::tempdir().expect("temp dir");
    let args = EmbedArgs {
        texts: vec!["x".into()],
        model_dir: Some(empty.path().to_path_buf()),
        embed_backend: EmbedBackend::Auto,
    };
    let err = run_embed(&args, &mut Vec::new()).expect_err("no model there");
    assert!(matches!(err, EmbedError::BadModelDir { key: "--model-dir", .. }), "{err}");
    assert!(err.to_string().contains("config.json is missing"), "{err}");
}

/// Writes one Weaviate batch file of `posts` to `dir/SocialPost/name`.
fn write_batch(dir: &Path, name: &str, posts: &[millionx_dataflow::record::EnrichedPost]) {
    let mut enc = ObjectEncoder::new();
    let framing = Encoder::<millionx_dataflow::record::EnrichedPost>::framing(&enc);
    let mut body = framing.open.as_bytes().to_vec();
    for (i, p) in posts.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(framing.separator.as_bytes());
        }
        enc.encode(p, &mut body);
    }
    body.extend_from_slice(framing.close.as_bytes());
    std::fs::create_dir_all(dir.join("SocialPost")).expect("class folder");
    std::fs::write(dir.join("SocialPost").join(name), body).expect("batch file");
}

#[test]
fn the_local_index_finds_the_nearest_posts_in_the_file_sink_output() {
    let Some(model) = common::embedder() else {
        return;
    };
    let texts = [
        ("S-1", "Just got my Wireless Earbuds delivered in Dhaka, loving it!"),
        ("S-2", "Flood warning: heavy rain expected in Sylhet tonight."),
        ("S-3", "Miniket Rice 5kg price went up again, Khulna shops are crazy"),
        ("S-4", "vai ei earbuds er sound quality kemon? battery koto ghonta thake?"),
    ];
    let vectors = model.embed(&texts.iter().map(|t| t.1).collect::<Vec<_>>()).expect("embeds");
    let mut posts: Vec<_> = texts
        .iter()
        .zip(vectors)
        .map(|((id, text), v)| {
            let mut p = common::post(id, text);
            p.enrichment.embedding = Some(v);
            p
        })
        .collect();
    let out_dir = tempfile::tempdir().expect("temp dir");
    write_batch(out_dir.path(), "000001.json", &posts);
    // A replay of S-1 in a later batch, and a post written while embeddings were off.
    let mut late = common::post("S-5", "Cricket Bat flash sale");
    late.enrichment.embedding = None;
    posts.truncate(1);
    posts.push(late);
    write_batch(out_dir.path(), "000002.json", &posts);

    let index = LocalIndex::load(out_dir.path(), "SocialPost").expect("index loads");
    assert_eq!((index.len(), index.files(), index.without_vector()), (4, 2, 1));
    let query = embed_texts(model, &["wireless earbuds delivery".to_owned()]).expect("query embeds");
    let hits: Vec<serde_json::Value> =
        index.search(&query[0], 3).iter().map(|h| serde_json::to_value(h).expect("a hit is JSON")).collect();
    let ids: Vec<&str> = hits.iter().map(|h| h["properties"]["postId"].as_str().expect("postId")).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], "S-1", "hits {ids:?}");
    assert_eq!(ids[1], "S-4", "hits {ids:?}");
    assert_eq!(hits.iter().map(|h| h["rank"].as_u64().expect("rank")).collect::<Vec<_>>(), vec![1, 2, 3]);
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().expect("score")).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "scores not descending: {scores:?}");
    let d0 = hits[0]["distance"].as_f64().expect("distance");
    assert!((d0 - (1.0 - scores[0])).abs() < 1e-6);
}
