//! Shared test helpers: the model (required under CI), a stand-in encoder, record builders.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use millionx_dataflow::catalog::Category;
use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, Enrichment, Meta, Origin, StreamKind};
use millionx_dataflow::{City, EventTime};
use millionx_embed::pool::text_key;
use millionx_embed::{EmbedError, Embedder, OpenVinoEmbedder, Precision, Runtime, TextEncoder, DIMS};

/// The model directory, or `None` (the test then prints that it skipped). Under `CI=true` a missing model
/// fails the test instead.
pub fn model_dir() -> Option<PathBuf> {
    match millionx_embed::locate_model_dir() {
        Ok(dir) => Some(dir),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but the model is missing ({e}); .ci/setup.d/40-model.sh should have fetched it");
            }
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// The real model, loaded once per test binary.
pub fn embedder() -> Option<Arc<Embedder>> {
    static MODEL: OnceLock<Option<Arc<Embedder>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            model_dir().map(|dir| Arc::new(Embedder::load(&dir).unwrap_or_else(|e| panic!("loading the model: {e}"))))
        })
        .clone()
}

/// The OpenVINO encoder (library from `MILLIONX_OPENVINO_LIB` or ops/models/fetch-openvino.sh's install,
/// `model.onnx` from ops/models/build-minilm-onnx.sh), loaded once per test binary with two streams; `None`
/// (the test prints SKIPPED) when either is absent. Under `CI=true` (which installs both through .ci/setup.d)
/// their absence fails the test.
pub fn openvino() -> Option<Arc<OpenVinoEmbedder>> {
    static MODEL: OnceLock<Option<Arc<OpenVinoEmbedder>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = model_dir()?;
            let lib = millionx_embed::openvino::locate_library().unwrap_or_else(|e| panic!("{e}"));
            let missing = match &lib {
                None => Some("no libopenvino_c.so (run ops/models/fetch-openvino.sh)".to_owned()),
                Some(_) if !dir.join("model.onnx").is_file() => {
                    Some(format!("no {} (run ops/models/build-minilm-onnx.sh)", dir.join("model.onnx").display()))
                }
                Some(_) => None,
            };
            if let Some(why) = missing {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!(
                        "CI=true but OpenVINO is missing: {why}; .ci/setup.d/45-openvino.sh should have installed it"
                    );
                }
                eprintln!("SKIPPED: {why}");
                return None;
            }
            let lib = lib.expect("checked above");
            Some(Arc::new(OpenVinoEmbedder::load(&lib, &dir, 2).unwrap_or_else(|e| panic!("loading OpenVINO: {e}"))))
        })
        .clone()
}

/// Post texts from `../shared/fixtures/text`: the first `per_file` of the Banglish e-commerce CSV and of the
/// Bangla restaurant-review TSV. `None` (SKIPPED) without ../shared; under `CI=true` that fails the test.
pub fn fixture_texts(per_file: usize) -> Option<Vec<(&'static str, String)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/text");
    if !root.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{} is missing and CI=true: the shared folder must be present in CI", root.display());
        }
        eprintln!("SKIPPED: {} not found (runs in CI, where ../shared exists)", root.display());
        return None;
    }
    let mut texts = Vec::new();
    let mut csv = csv::Reader::from_path(root.join("banglish-ecommerce/banglish_ecommerce_sentiment_v1.csv"))
        .expect("Banglish fixture");
    let column = csv.headers().expect("header").iter().position(|h| h == "text").expect("text column");
    for rec in csv.records().take(per_file) {
        texts.push(("banglish", rec.expect("CSV record")[column].to_owned()));
    }
    let mut tsv = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(false)
        .from_path(root.join("bnlp-absa/ABSA_restaurant_test.tsv"))
        .expect("Bangla fixture");
    let column = tsv.headers().expect("header").iter().position(|h| h == "text").expect("text column");
    for rec in tsv.records().take(per_file) {
        texts.push(("bn", rec.expect("TSV record")[column].to_owned()));
    }
    Some(texts)
}

/// The reference sentences and vectors (testdata/reference.json).
pub struct Reference {
    pub lang: String,
    pub text: String,
    pub tokens: usize,
    pub vector: Vec<f32>,
}

pub fn reference() -> Vec<Reference> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/reference.json");
    let text = std::fs::read_to_string(path).expect("testdata/reference.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("reference.json is JSON");
    v["sentences"]
        .as_array()
        .expect("sentences array")
        .iter()
        .map(|s| Reference {
            lang: s["lang"].as_str().expect("lang").to_owned(),
            text: s["text"].as_str().expect("text").to_owned(),
            tokens: s["tokens"].as_u64().expect("tokens") as usize,
            vector: s["vector"]
                .as_array()
                .expect("vector")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect(),
        })
        .collect()
}

/// A deterministic stand-in vector for `text`: 384 values from its XXH3 key, L2-normalised.
pub fn fake_vector(text: &str) -> Vec<f32> {
    let key = text_key(text);
    let mut v: Vec<f32> = (0..DIMS).map(|i| ((key >> (i % 128)) & 1) as f32 + 0.5 + i as f32 / 1000.0).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// A stand-in encoder: counts what it embeds, can be held shut (to test deadlines and backpressure), and
/// fails any batch holding the text `"FAIL"`.
#[derive(Default)]
pub struct FakeEncoder {
    pub seen: Mutex<HashMap<String, usize>>,
    pub batches: AtomicUsize,
    gate: Mutex<bool>,
    opened: Condvar,
}

impl FakeEncoder {
    /// A new encoder, open (`closed = false`) or shut.
    pub fn new(closed: bool) -> Arc<FakeEncoder> {
        let f = FakeEncoder::default();
        *f.gate.lock().expect("lock") = closed;
        Arc::new(f)
    }
    /// Lets batches through.
    pub fn open(&self) {
        *self.gate.lock().expect("lock") = false;
        self.opened.notify_all();
    }
    /// How many times `text` was embedded.
    pub fn times(&self, text: &str) -> usize {
        self.seen.lock().expect("lock").get(text).copied().unwrap_or(0)
    }
}

impl TextEncoder for FakeEncoder {
    fn model_name(&self) -> &'static str {
        "fake"
    }
    fn runtime(&self) -> Runtime {
        Runtime { backend: "fake", precision: Precision::F32 }
    }
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut closed = self.gate.lock().expect("lock");
        while *closed {
            closed = self.opened.wait(closed).expect("lock");
        }
        drop(closed);
        self.batches.fetch_add(1, Ordering::SeqCst);
        let mut seen = self.seen.lock().expect("lock");
        for t in texts {
            *seen.entry((*t).to_owned()).or_default() += 1;
        }
        if texts.contains(&"FAIL") {
            return Err(EmbedError::Inference("stand-in failure".into()));
        }
        Ok(texts.iter().map(|t| fake_vector(t)).collect())
    }
}

fn meta(stream: StreamKind, offset: u64) -> Meta {
    Meta { origin: Origin { stream, partition: 0, offset }, event_time: EventTime(1_700_000_000_000), ingest_ns: 0 }
}

/// A post with `id` and `content`.
pub fn post(id: &str, content: &str) -> EnrichedPost {
    EnrichedPost {
        meta: meta(StreamKind::Social, 1),
        post_id: id.to_owned(),
        platform: "facebook".into(),
        content: content.to_owned(),
        author_hash: "0".repeat(64),
        likes_count: 1,
        comments_count: 0,
        shares_count: 0,
        hashtags: None,
        city: City::Dhaka,
        language: None,
        posted_at: "2023-11-14T22:13:20Z".into(),
        extra: String::new(),
        enrichment: Enrichment::default(),
    }
}

/// An order with `id` for `product_name` in `category`.
pub fn order(id: &str, product_name: &str, category: Category) -> EnrichedOrder {
    EnrichedOrder {
        meta: meta(StreamKind::Market, 1),
        order_id: id.to_owned(),
        platform: "daraz".into(),
        customer_id_hash: "0".repeat(64),
        product_id: "P-3002".into(),
        product_name: product_name.to_owned(),
        quantity: 1,
        unit_price: 1600.0,
        total_price: 1600.0,
        currency: "BDT".into(),
        status: "confirmed".into(),
        payment_method: "bkash".into(),
        payment_status: None,
        shipping_region: None,
        shipping_city: City::Sylhet,
        ordered_at: "2023-11-14T22:13:20Z".into(),
        extra: String::new(),
        enrichment: Enrichment { category, category_confidence: 1.0, ..Enrichment::default() },
    }
}

/// The bit patterns of a vector (f32 is not `Ord`; the bits are, and compare exactly).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
