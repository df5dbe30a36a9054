//! The Rust encoder against vectors from an independent implementation (sentence-transformers on PyTorch,
//! float64; testdata/make_reference.py), and basic semantic sanity.

mod common;

use millionx_embed::{cosine, DIMS};

#[test]
fn vectors_match_the_reference_in_one_batch_and_one_by_one() {
    let Some(model) = common::embedder() else {
        return;
    };
    let refs = common::reference();
    assert!(refs.len() >= 5);
    for lang in ["en", "banglish", "bn"] {
        assert!(refs.iter().filter(|r| r.lang == lang).count() >= 2, "reference lacks {lang} sentences");
    }
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let batch = model.embed(&texts).expect("embedding the batch");
    assert_eq!(batch.len(), refs.len());
    for (r, v) in refs.iter().zip(&batch) {
        assert_eq!(v.len(), DIMS);
        let c = cosine(v, &r.vector);
        assert!(c >= 0.999, "{} text {:?}: cosine {c} < 0.999", r.lang, r.text);
        // fp32 against fp64: far tighter than the 0.999 the issue asks for.
        assert!(c >= 0.99999, "{} text {:?}: cosine {c}", r.lang, r.text);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        assert_eq!(model.token_count(&r.text).expect("tokenizes"), r.tokens, "word pieces of {:?}", r.text);
    }
    // Alone (no padding at all) gives the same vectors as in the padded, length-sorted batch.
    for (r, v) in refs.iter().zip(&batch) {
        let single = model.embed(&[r.text.as_str()]).expect("embedding one text");
        let c = cosine(&single[0], v);
        assert!(c >= 0.99999, "{:?}: batch vs single cosine {c}", r.text);
    }
}

#[test]
fn long_text_is_truncated_at_256_word_pieces() {
    let Some(model) = common::embedder() else {
        return;
    };
    assert_eq!(model.max_tokens(), 256);
    let refs = common::reference();
    let long = refs.iter().find(|r| r.lang == "long").expect("a long reference text");
    assert_eq!(long.tokens, 256);
    assert_eq!(model.token_count(&long.text).expect("tokenizes"), 256);
}

#[test]
fn close_sentences_score_higher_than_unrelated_ones() {
    let Some(model) = common::embedder() else {
        return;
    };
    let v = model
        .embed(&[
            "Just got my Wireless Earbuds delivered in Dhaka, loving it!",
            "The earbuds arrived in Dhaka today and I really like them.",
            "Flood warning: heavy rain expected in Sylhet tonight.",
            "Hilsa Fish 1kg groceries",
            "Miniket Rice 5kg groceries",
            "vai ei earbuds er sound quality kemon? battery koto ghonta thake?",
            "Wireless Earbuds electronics",
        ])
        .expect("embeds");
    let s = |a: usize, b: usize| cosine(&v[a], &v[b]);
    // English paraphrase vs unrelated.
    assert!(s(0, 1) > 0.7 && s(0, 2) < 0.3, "paraphrase {} unrelated {}", s(0, 1), s(0, 2));
    // Two grocery orders vs a grocery order and a weather warning.
    assert!(s(3, 4) > s(3, 2) + 0.3, "groceries {} vs weather {}", s(3, 4), s(3, 2));
    // Banglish question about earbuds vs the earbuds order text, and vs the weather warning.
    assert!(s(5, 6) > s(5, 2) + 0.3, "banglish earbuds {} vs weather {}", s(5, 6), s(5, 2));
}
