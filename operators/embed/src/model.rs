//! The all-MiniLM-L6-v2 sentence encoder: locating the model files, loading them, and embedding batches.
//!
//! The computation is the one sentence-transformers runs for this model (its `modules.json`: Transformer →
//! Pooling(mean) → Normalize): WordPiece tokens with `[CLS]`/`[SEP]`, truncated to `max_seq_length` (256, from
//! `sentence_bert_config.json`), a 6-layer BERT encoder (candle-transformers' `BertModel`), the mean of the token
//! vectors under the attention mask, and division by the L2 norm. Texts of a batch are sorted by token count and
//! cut into chunks of similar length, each padded only to its own longest text.

use std::path::{Path, PathBuf};
use std::sync::Once;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::EmbedError;

/// The model name written to `embeddingModel`.
pub const MODEL_NAME: &str = millionx_dataflow::record::EMBEDDING_MODEL;
/// Width of an embedding (the model's `hidden_size`).
pub const DIMS: usize = 384;
/// Environment variable naming the model directory.
pub const MODEL_DIR_ENV: &str = "MILLIONX_MODEL_DIR";
/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// Token limit when the directory has no `sentence_bert_config.json`: the model card's 256 word pieces
/// (sentence-transformers' `max_seq_length` for this model; the tokenizer.json's own 128 is overridden).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Longest chunk the encoder runs at once, in texts; longer batches run in several chunks.
const MAX_CHUNK_TEXTS: usize = 64;
/// A chunk is cut before a text whose padding would push padded tokens over
/// `PAD_RATIO × real tokens + PAD_SLACK` (sorting by length keeps this rare).
const PAD_RATIO: f64 = 1.25;
/// See [`PAD_RATIO`], in tokens.
const PAD_SLACK: usize = 32;

/// The default model directory: `$XDG_CACHE_HOME/millionx/all-MiniLM-L6-v2`, else
/// `$HOME/.cache/millionx/all-MiniLM-L6-v2`; `None` when neither variable is set.
pub fn default_model_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(xdg) => PathBuf::from(xdg),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("millionx").join(MODEL_NAME))
}

/// Finds the model directory.
///
/// `MILLIONX_MODEL_DIR` wins when set: if it lacks a file of [`MODEL_FILES`] that is a configuration error
/// ([`EmbedError::BadModelDir`]). Otherwise [`default_model_dir`] is used, and a missing file there means
/// embeddings are off ([`EmbedError::NoModel`]).
pub fn locate_model_dir() -> Result<PathBuf, EmbedError> {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        return check_model_dir(Path::new(&dir), MODEL_DIR_ENV);
    }
    let dir = default_model_dir().unwrap_or_else(|| PathBuf::from(".cache/millionx").join(MODEL_NAME));
    match missing_file(&dir) {
        None => Ok(dir),
        Some(_) => Err(EmbedError::NoModel(dir)),
    }
}

/// `dir` when it holds every file of [`MODEL_FILES`]; else [`EmbedError::BadModelDir`] naming `key` (the flag,
/// key or variable that named `dir`) and the first missing file.
pub fn check_model_dir(dir: &Path, key: &'static str) -> Result<PathBuf, EmbedError> {
    match missing_file(dir) {
        None => Ok(dir.to_path_buf()),
        Some(file) => Err(EmbedError::BadModelDir {
            key,
            reason: format!("{file} is missing or not a file"),
            path: dir.to_path_buf(),
        }),
    }
}

/// The first of [`MODEL_FILES`] that is not a file in `dir`.
fn missing_file(dir: &Path) -> Option<&'static str> {
    MODEL_FILES.into_iter().find(|f| !dir.join(f).is_file())
}

/// Makes candle's CPU kernels single-threaded unless the environment already chose: sets `RAYON_NUM_THREADS=1`
/// and `CANDLE_NUM_THREADS=1` when they are unset, so that each pool thread runs whole batches instead of every
/// matrix product being split across cores (`benchmarks/embed.md`: ~90 sentences per CPU-second with 2 pool threads × 1,
/// ~50 with 1 pool thread × 2 intra-op threads). Returns whether it changed anything.
///
/// Call it first thing in `main`, before any other thread starts: changing the environment is only sound while
/// the process has a single thread.
pub fn prefer_pool_parallelism() -> bool {
    let mut changed = false;
    for key in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, "1");
            changed = true;
        }
    }
    changed
}

/// A sentence encoder the pool can run: [`Embedder`] in production, a stand-in in tests.
pub trait TextEncoder: Send + Sync + 'static {
    /// The model name written to `embeddingModel`.
    fn model_name(&self) -> &'static str;
    /// One L2-normalised [`DIMS`]-wide vector per text, in input order; an error fails the whole batch.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

impl TextEncoder for Embedder {
    fn model_name(&self) -> &'static str {
        MODEL_NAME
    }
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut scratch) => self.embed_with(texts, &mut scratch),
            Err(_) => self.embed_with(texts, &mut Scratch::default()),
        })
    }
}

/// Loads the model the pipeline uses: `Ok(None)` (embeddings off, said once on stderr) when no model directory
/// exists and `MILLIONX_MODEL_DIR` is unset; an error when the variable names a bad directory or a file is corrupt.
pub fn load_from_env() -> Result<Option<Embedder>, EmbedError> {
    match locate_model_dir() {
        Ok(dir) => Embedder::load(&dir).map(Some),
        Err(EmbedError::NoModel(dir)) => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "embeddings off: no {MODEL_NAME} model in {} (set {MODEL_DIR_ENV} or run ops/models/fetch-minilm.sh); embedding coverage will read 0%",
                    dir.display()
                )
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The loaded sentence encoder. `Send + Sync`: one instance serves every pool thread.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    max_tokens: usize,
    pad_id: u32,
    dir: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dir", &self.dir).field("max_tokens", &self.max_tokens).finish()
    }
}

/// Buffers one thread reuses from batch to batch (token ids, masks, the sort order).
#[derive(Debug, Default)]
pub struct Scratch {
    tokens: Vec<Vec<u32>>,
    order: Vec<usize>,
    ids: Vec<u32>,
    mask: Vec<u32>,
    hidden: Vec<f32>,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` (fp32) from `dir`, and
    /// `sentence_bert_config.json` when present for the token limit.
    ///
    /// Errors: [`EmbedError::ModelFile`] for an unreadable or unparsable file, [`EmbedError::WrongModel`] when the
    /// configuration is not a 384-wide BERT.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let file_err = |name: &str, reason: String| EmbedError::ModelFile { path: dir.join(name), reason };
        let config_text =
            std::fs::read_to_string(dir.join("config.json")).map_err(|e| file_err("config.json", e.to_string()))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| file_err("config.json", e.to_string()))?;
        if config.hidden_size != DIMS {
            return Err(EmbedError::WrongModel {
                dir: dir.to_path_buf(),
                reason: format!("hidden_size is {}, expected {DIMS}", config.hidden_size),
            });
        }
        let max_tokens = read_max_seq_length(dir)?.unwrap_or(DEFAULT_MAX_TOKENS).min(config.max_position_embeddings);

        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| file_err("tokenizer.json", e.to_string()))?;
        // The packaged tokenizer.json pads every text to 128 and truncates at 128: we pad per chunk ourselves
        // and truncate where sentence-transformers does.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..TruncationParams::default() }))
            .map_err(|e| file_err("tokenizer.json", e.to_string()))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(config.pad_token_id as u32);

        let weights =
            std::fs::read(dir.join("model.safetensors")).map_err(|e| file_err("model.safetensors", e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| file_err("model.safetensors", e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| file_err("model.safetensors", e.to_string()))?;
        Ok(Embedder { model, tokenizer, max_tokens, pad_id, dir: dir.to_path_buf() })
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The token limit (texts are truncated to this many word pieces, `[CLS]` and `[SEP]` included).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Number of word pieces (with `[CLS]`/`[SEP]`, after truncation) the model sees for `text`.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        let enc = self.tokenizer.encode_fast(text, true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(enc.get_ids().len())
    }

    /// Embeds `texts`: one L2-normalised [`DIMS`]-wide vector per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_with(texts, &mut Scratch::default())
    }

    /// [`Embedder::embed`] reusing the buffers of `scratch`.
    pub fn embed_with(&self, texts: &[&str], scratch: &mut Scratch) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = texts.len();
        let mut out = vec![Vec::new(); n];
        if n == 0 {
            return Ok(out);
        }
        scratch.tokens.resize_with(n, Vec::new);
        for (text, ids) in texts.iter().zip(scratch.tokens.iter_mut()) {
            let enc = self.tokenizer.encode_fast(*text, true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
            ids.clear();
            ids.extend_from_slice(enc.get_ids());
        }
        scratch.order.clear();
        scratch.order.extend(0..n);
        let tokens = &scratch.tokens;
        scratch.order.sort_by_key(|&i| tokens[i].len());

        let mut start = 0;
        while start < n {
            let end = chunk_end(&scratch.order, &scratch.tokens, start);
            self.run_chunk(start, end, scratch, &mut out)?;
            start = end;
        }
        Ok(out)
    }

    /// Runs the encoder on the sorted texts `order[start..end]` and writes their pooled vectors into `out`.
    fn run_chunk(&self, start: usize, end: usize, s: &mut Scratch, out: &mut [Vec<f32>]) -> Result<(), EmbedError> {
        let rows = &s.order[start..end];
        let n = rows.len();
        let width = rows.iter().map(|&i| s.tokens[i].len()).max().unwrap_or(0).max(1);
        s.ids.clear();
        s.mask.clear();
        for &i in rows {
            let t = &s.tokens[i];
            s.ids.extend_from_slice(t);
            s.ids.resize(s.ids.len() + width - t.len(), self.pad_id);
            s.mask.resize(s.mask.len() + t.len(), 1);
            s.mask.resize(s.mask.len() + width - t.len(), 0);
        }
        let device = &self.model.device;
        let ids = Tensor::from_slice(&s.ids, (n, width), device)?;
        let mask = Tensor::from_slice(&s.mask, (n, width), device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        s.hidden = hidden.flatten_all()?.to_vec1::<f32>()?;

        for (row, &i) in rows.iter().enumerate() {
            let len = s.tokens[i].len();
            let mut v = vec![0f32; DIMS];
            let base = row * width * DIMS;
            for tok in 0..len {
                let h = &s.hidden[base + tok * DIMS..base + (tok + 1) * DIMS];
                v.iter_mut().zip(h).for_each(|(a, b)| *a += b);
            }
            // sentence-transformers: sum / clamp(mask sum, 1e-9), then x / max(‖x‖₂, 1e-12) (torch F.normalize).
            let count = (len as f32).max(1e-9);
            v.iter_mut().for_each(|a| *a /= count);
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            out[i] = v;
        }
        Ok(())
    }
}

/// End (exclusive) of the chunk that starts at `start` in the length-sorted `order`.
fn chunk_end(order: &[usize], tokens: &[Vec<u32>], start: usize) -> usize {
    let mut real = 0usize;
    let mut end = start;
    while end < order.len() && end - start < MAX_CHUNK_TEXTS {
        let len = tokens[order[end]].len();
        let count = end - start + 1;
        // Sorted ascending, so `len` is the chunk's width if this text joins it.
        let padded = count * len;
        if end > start && padded as f64 > PAD_RATIO * (real + len) as f64 + PAD_SLACK as f64 {
            break;
        }
        real += len;
        end += 1;
    }
    end
}

/// Reads `max_seq_length` from `sentence_bert_config.json`; `None` when the file is absent.
fn read_max_seq_length(dir: &Path) -> Result<Option<usize>, EmbedError> {
    let path = dir.join("sentence_bert_config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmbedError::ModelFile { path, reason: e.to_string() }),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EmbedError::ModelFile { path: path.clone(), reason: e.to_string() })?;
    match v.get("max_seq_length") {
        None => Ok(None),
        Some(m) => match m.as_u64() {
            Some(m) if m >= 2 => Ok(Some(m as usize)),
            _ => Err(EmbedError::ModelFile { path, reason: "max_seq_length is not an integer ≥ 2".into() }),
        },
    }
}

/// Cosine similarity of two vectors (for L2-normalised vectors, their dot product); 0.0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(lens: &[usize]) -> Vec<Vec<u32>> {
        lens.iter().map(|&l| vec![1; l]).collect()
    }

    #[test]
    fn chunks_cut_where_padding_grows() {
        // Sorted lengths 10,10,11,12 then 200: the long text gets its own chunk.
        let t = toks(&[10, 10, 11, 12, 200]);
        let order = vec![0, 1, 2, 3, 4];
        assert_eq!(chunk_end(&order, &t, 0), 4);
        assert_eq!(chunk_end(&order, &t, 4), 5);
    }

    #[test]
    fn chunks_cap_at_max_texts() {
        let t = toks(&vec![8; 150]);
        let order: Vec<usize> = (0..150).collect();
        assert_eq!(chunk_end(&order, &t, 0), MAX_CHUNK_TEXTS);
        assert_eq!(chunk_end(&order, &t, 128), 150);
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[3.0, 4.0], &[6.0, 8.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
