//! The OpenVINO backend against the float64 reference (testdata/reference.json: English, Banglish, Bangla,
//! orders, empty, > 256 word pieces) and against the candle backend on real Banglish and Bangla posts from
//! ../shared/fixtures/text. Needs ops/models/fetch-openvino.sh and build-minilm-onnx.sh (CI installs both).

mod common;

use millionx_embed::{cosine, EmbedPool, PoolConfig, Precision, TextEncoder, DIMS};

/// The precision OpenVINO should pick on this CPU: bf16 when /proc/cpuinfo lists avx512_bf16 or amx_bf16.
fn cpu_has_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16"))
        .unwrap_or(false)
}

#[test]
fn openvino_vectors_match_the_fp64_reference() {
    let Some(model) = common::openvino() else {
        return;
    };
    if std::env::var_os(millionx_embed::openvino::PRECISION_ENV).is_none() {
        let expected = if cpu_has_bf16() { Precision::Bf16 } else { Precision::F32 };
        assert_eq!(model.precision(), expected);
    }
    assert_eq!(model.runtime().backend, "openvino");
    let refs = common::reference();
    for lang in ["en", "banglish", "bn"] {
        assert!(refs.iter().filter(|r| r.lang == lang).count() >= 2, "reference lacks {lang} sentences");
    }
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let batch = model.embed(&texts).expect("embedding the batch");
    assert_eq!(batch.len(), refs.len());
    let mut worst = 1.0f32;
    for (r, v) in refs.iter().zip(&batch) {
        assert_eq!(v.len(), DIMS);
        let c = cosine(v, &r.vector);
        worst = worst.min(c);
        assert!(c >= 0.999, "{} text {:?}: cosine {c} < 0.999 ({:?})", r.lang, r.text, model.precision());
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert_eq!(model.token_count(&r.text).expect("tokenizes"), r.tokens, "word pieces of {:?}", r.text);
    }
    eprintln!("openvino {:?}: min cosine vs fp64 {worst}", model.precision());
    // Alone (no padding) gives the same vector as in the padded, length-sorted batch.
    for (r, v) in refs.iter().zip(&batch) {
        let single = model.embed(&[r.text.as_str()]).expect("embedding one text");
        let c = cosine(&single[0], v);
        assert!(c >= 0.9999, "{:?}: batch vs single cosine {c}", r.text);
    }
}

#[test]
fn openvino_and_candle_agree_on_real_banglish_and_bangla_posts() {
    let (Some(ov), Some(candle)) = (common::openvino(), common::embedder()) else {
        return;
    };
    let Some(fixtures) = common::fixture_texts(40) else {
        return;
    };
    let texts: Vec<&str> = fixtures.iter().map(|(_, t)| t.as_str()).collect();
    let a = ov.embed(&texts).expect("OpenVINO embeds");
    let b = candle.embed(&texts).expect("candle embeds");
    // The Banglish fixture file holds 4 posts; the Bangla one over 200 (40 taken).
    for (lang, least) in [("banglish", 4), ("bn", 40)] {
        assert!(fixtures.iter().filter(|(l, _)| *l == lang).count() >= least, "too few {lang} fixtures");
    }
    for (((lang, text), x), y) in fixtures.iter().zip(&a).zip(&b) {
        let c = cosine(x, y);
        // candle is within 0.99999 of the fp64 reference (tests/reference.rs), so this bounds OpenVINO's
        // distance from it too.
        assert!(c >= 0.999, "{lang} fixture of {} chars: OpenVINO vs candle cosine {c}", text.chars().count());
    }
}

#[test]
fn the_pool_runs_openvino_on_two_threads_with_the_same_vectors() {
    let Some(model) = common::openvino() else {
        return;
    };
    let refs = common::reference();
    let expected = model.embed(&refs.iter().map(|r| r.text.as_str()).collect::<Vec<_>>()).expect("embeds");
    let pool =
        EmbedPool::start(model, PoolConfig { threads: 2, max_batch: 4, cache_capacity: 0, ..PoolConfig::default() })
            .expect("pool starts");
    let mut client = pool.client(None);
    let items: Vec<(u64, &str)> = refs.iter().enumerate().map(|(i, r)| (i as u64, r.text.as_str())).collect();
    assert_eq!(client.submit(&items).expect("submits"), items.len());
    for _ in 0..items.len() {
        let (id, v) = client.wait(std::time::Duration::from_secs(120)).expect("a result in time");
        let v = v.expect("the batch succeeded");
        let c = cosine(&v, &expected[id as usize]);
        assert!(c >= 0.9999, "{:?}: pool vs direct cosine {c}", refs[id as usize].text);
    }
    assert_eq!(pool.stats().embedded, items.len() as u64);
}
