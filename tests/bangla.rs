//! Bangla and Banglish text survives byte for byte (apart from redaction) into every sink.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// `postId` → CONTENT in SOCIAL_POSTS and content in the SocialPost objects; both must agree.
fn contents(out: &Path) -> BTreeMap<String, String> {
    let rows: BTreeMap<String, String> = ndjson(&out.join("snowflake/SOCIAL_POSTS"))
        .into_iter()
        .map(|r| (r["POST_ID"].as_str().unwrap().to_owned(), r["CONTENT"].as_str().unwrap().to_owned()))
        .collect();
    for o in objects(&out.join("weaviate/SocialPost")) {
        let p = &o["properties"];
        assert_eq!(Some(&p["content"].as_str().unwrap().to_owned()), rows.get(p["postId"].as_str().unwrap()));
    }
    for r in ndjson(&out.join("snowflake/SOCIAL_POSTS")) {
        assert_eq!(r["RAW_RECORD"]["content"], r["CONTENT"], "the raw record carries the same redacted text");
    }
    rows
}

#[test]
fn the_embedded_default_keeps_the_samples_own_bangla_posts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = command()
        .args(["run", "--embed", "off", "--out", out.to_str().unwrap()])
        .current_dir(repo())
        .env("MILLIONX_PII_KEY", "test-key")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = contents(&out);
    let expected = [
        ("S-BN-0001", "আজ ঢাকায় Walton Ceiling Fan কিনলাম মাত্র ৩৮৫০ টাকায় 😍🔥"),
        ("S-BN-0002", "র\u{200d}্যাবের পাশের দোকানে Cricket Bat পাওয়া যায়, দাম ২১০০ টাকা"),
        ("S-BN-0003", "কি\u{200c}ন্তু Rain Umbrella টা ভালো না 😞 ফেরত দিব"),
        ("S-BN-0004", "vai Jamdani Saree ta khub sundor, Sylhet e delivery 2 diner moddhe 🙏"),
        ("S-BN-0005", "বিক্রি করব Power Bank 20000mAh, ফোন [PHONE] অথবা [PHONE]"),
        ("S-BN-0006", "Hilsa Fish 1kg er dam koto? mail koren [EMAIL]"),
        ("S-BN-0008", "প্রথম লাইন\r\nদ্বিতীয় লাইন: Face Wash ৩৮০ টাকা"),
        ("S-BN-0009", "👨\u{200d}👩\u{200d}👧 family shopping — Miniket Rice 5kg ৪২০ টাকা"),
    ];
    for (id, text) in expected {
        assert_eq!(got.get(id).map(String::as_str), Some(text), "{id}");
    }
    let rows = ndjson(&out.join("snowflake/SOCIAL_POSTS"));
    let row = |id: &str| rows.iter().find(|r| r["POST_ID"] == id).unwrap().clone();
    assert_eq!(row("S-BN-0005")["PII_DETECTED"], true);
    assert_eq!(row("S-BN-0005")["PII_FIELDS"], json!(["authorId", "authorName", "content"]));
    assert_eq!(row("S-BN-0001")["PII_DETECTED"], false);
    assert_eq!(row("S-BN-0001")["PRODUCT_CATEGORY"], "electronics");
    assert_eq!(row("S-BN-0007")["PRODUCT_CATEGORY"], "unknown", "Bangla words are not catalog names");
    let summary = String::from_utf8_lossy(&run.stdout);
    assert!(summary.contains("throughput") && summary.contains("p99"), "{summary}");
}

/// Every real text under ../shared/fixtures/text fed as post content.
#[test]
fn real_bangla_and_banglish_text_survives_byte_for_byte() {
    let Some(root) = shared("fixtures/text", "real_bangla_and_banglish_text_survives_byte_for_byte") else { return };
    let mut texts = Vec::new();
    let mut csv = csv::Reader::from_path(root.join("banglish-ecommerce/banglish_ecommerce_sentiment_v1.csv")).unwrap();
    let column = csv.headers().unwrap().iter().position(|h| h == "text").unwrap();
    for rec in csv.records() {
        texts.push(rec.unwrap()[column].to_owned());
    }
    let mut tsv = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(false)
        .from_path(root.join("bnlp-absa/ABSA_restaurant_test.tsv"))
        .unwrap();
    let column = tsv.headers().unwrap().iter().position(|h| h == "text").unwrap();
    for rec in tsv.records() {
        texts.push(rec.unwrap()[column].to_owned());
    }
    assert!(texts.len() > 200, "{} texts", texts.len());

    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let social: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"postId": format!("F-{i}"), "platform": "facebook", "content": t, "authorId": "a", "likesCount": 0,
                   "commentsCount": 0, "sharesCount": 0, "city": "Dhaka", "postedAt": "2024-12-15T10:00:00Z"})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(input.join("social.jsonl"), social).unwrap();
    std::fs::write(input.join("market.jsonl"), "").unwrap();
    std::fs::write(input.join("weather.jsonl"), "").unwrap();
    run_ok(&["run", "--embed", "off", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let got = contents(&out);
    let dead: Vec<Value> = ndjson(&out.join("dlq"));
    for (i, t) in texts.iter().enumerate() {
        let id = format!("F-{i}");
        match got.get(&id) {
            Some(c) if c == t => {}
            Some(c) => {
                assert!(c.contains("[PHONE]") || c.contains("[EMAIL]"), "{id} changed beyond redaction:\n{t}\n{c}")
            }
            None => panic!("{id} missing; dead letters: {dead:?}"),
        }
    }
    // The fixtures hold Bangla script with prices in টাকা (zero-width joiners are covered by the sample's own posts).
    assert!(texts.iter().any(|t| t.contains("টাকা")));
}
