//! The all-MiniLM-L6-v2 sentence encoder: locating the model files, loading them, and embedding batches.
//!
//! The computation is the one sentence-transformers runs for this model (its `modules.json`: Transformer →
//! Pooling(mean) → Normalize): WordPiece tokens with `[CLS]`/`[SEP]`, truncated to `max_seq_length` (256, from
//! `sentence_bert_config.json`), a 6-layer BERT encoder (candle-transformers' `BertModel`), the mean of the token
//! vectors under the attention mask, and division by the L2 norm. Texts of a batch are sorted by token count and
//! cut into chunks of similar length, each padded only to its own longest text.

use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::backend::{Precision, Runtime};
use crate::error::EmbedError;
use crate::tokens::{normalize, with_scratch, Chunk, Scratch, WordPieces};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

/// The model name written to `embeddingModel`.
pub const MODEL_NAME: &str = millionx_dataflow::record::EMBEDDING_MODEL;
/// Width of an embedding (the model's `hidden_size`).
pub const DIMS: usize = 384;
/// Environment variable naming the model directory.
pub const MODEL_DIR_ENV: &str = "MILLIONX_MODEL_DIR";
/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

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

/// A sentence encoder the pool can run: [`Embedder`] (candle) or [`crate::OpenVinoEmbedder`] in production, a
/// stand-in in tests.
pub trait TextEncoder: Send + Sync + 'static {
    /// The model name written to `embeddingModel`.
    fn model_name(&self) -> &'static str;
    /// The backend and precision that compute the vectors.
    fn runtime(&self) -> Runtime;
    /// One L2-normalised [`DIMS`]-wide vector per text, in input order; an error fails the whole batch.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

impl TextEncoder for Embedder {
    fn model_name(&self) -> &'static str {
        MODEL_NAME
    }
    fn runtime(&self) -> Runtime {
        Runtime { backend: "candle", precision: Precision::F32 }
    }
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        with_scratch(|scratch| self.embed_with(texts, scratch))
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

/// The candle sentence encoder (fp32). `Send + Sync`: one instance serves every pool thread.
pub struct Embedder {
    model: BertModel,
    pieces: WordPieces,
    dir: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dir", &self.dir).field("pieces", &self.pieces).finish()
    }
}

/// Reads and checks `dir/config.json` (a 384-wide BERT).
///
/// Errors: [`EmbedError::ModelFile`] for an unreadable or unparsable file, [`EmbedError::WrongModel`] when the
/// configuration is not a 384-wide BERT.
pub fn read_config(dir: &Path) -> Result<Config, EmbedError> {
    let file_err = |reason: String| EmbedError::ModelFile { path: dir.join("config.json"), reason };
    let text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| file_err(e.to_string()))?;
    let config: Config = serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    if config.hidden_size != DIMS {
        return Err(EmbedError::WrongModel {
            dir: dir.to_path_buf(),
            reason: format!("hidden_size is {}, expected {DIMS}", config.hidden_size),
        });
    }
    Ok(config)
}

/// The tokenizer of the model in `dir`, set up for `config` (see [`WordPieces::load`]).
///
/// Errors: as [`read_config`] and [`WordPieces::load`].
pub fn load_word_pieces(dir: &Path) -> Result<WordPieces, EmbedError> {
    let config = read_config(dir)?;
    WordPieces::load(dir, config.max_position_embeddings, config.pad_token_id as u32)
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` (fp32) from `dir`, and
    /// `sentence_bert_config.json` when present for the token limit.
    ///
    /// Errors: [`EmbedError::ModelFile`] for an unreadable or unparsable file, [`EmbedError::WrongModel`] when the
    /// configuration is not a 384-wide BERT.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let file_err = |name: &str, reason: String| EmbedError::ModelFile { path: dir.join(name), reason };
        let config = read_config(dir)?;
        let pieces = WordPieces::load(dir, config.max_position_embeddings, config.pad_token_id as u32)?;
        let weights =
            std::fs::read(dir.join("model.safetensors")).map_err(|e| file_err("model.safetensors", e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| file_err("model.safetensors", e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| file_err("model.safetensors", e.to_string()))?;
        Ok(Embedder { model, pieces, dir: dir.to_path_buf() })
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The token limit (texts are truncated to this many word pieces, `[CLS]` and `[SEP]` included).
    pub fn max_tokens(&self) -> usize {
        self.pieces.max_tokens()
    }

    /// Number of word pieces (with `[CLS]`/`[SEP]`, after truncation) the model sees for `text`.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        self.pieces.token_count(text)
    }

    /// Embeds `texts`: one L2-normalised [`DIMS`]-wide vector per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_with(texts, &mut Scratch::default())
    }

    /// [`Embedder::embed`] reusing the buffers of `scratch`.
    pub fn embed_with(&self, texts: &[&str], scratch: &mut Scratch) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.pieces.embed_with(texts, scratch, |chunk| self.run_chunk(chunk))
    }

    /// Runs the encoder on one chunk and pools its rows.
    fn run_chunk(&self, c: &Chunk<'_>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let device = &self.model.device;
        let ids = Tensor::from_slice(c.ids, (c.rows, c.width), device)?;
        let mask = Tensor::from_slice(c.mask, (c.rows, c.width), device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = Vec::with_capacity(c.rows);
        for (row, &len) in c.lens.iter().enumerate() {
            let mut v = vec![0f32; DIMS];
            let base = row * c.width * DIMS;
            for tok in 0..len {
                let h = &hidden[base + tok * DIMS..base + (tok + 1) * DIMS];
                v.iter_mut().zip(h).for_each(|(a, b)| *a += b);
            }
            // sentence-transformers: sum / clamp(mask sum, 1e-9), then the L2 normalisation.
            let count = (len as f32).max(1e-9);
            v.iter_mut().for_each(|a| *a /= count);
            normalize(&mut v);
            out.push(v);
        }
        Ok(out)
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

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[3.0, 4.0], &[6.0, 8.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
