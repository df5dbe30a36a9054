//! `millionx embed TEXT...`: the command-line entry point, and the model loading and embedding that
//! `millionx search` (in the binary, `src/search.rs`) shares with it.
//!
//! Both embed through the same [`EmbedPool`] and encoder ([`load_encoder`]) the `embed` operator uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{load_encoder, EmbedBackend};
use crate::error::EmbedError;
use crate::model::{check_model_dir, locate_model_dir, TextEncoder};
use crate::pool::{EmbedPool, PoolConfig};

/// `millionx embed`: prints one JSON array of 384 numbers per text, one per line, in argument order.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct EmbedArgs {
    /// Texts to embed (quote each one).
    #[arg(required = true, value_name = "TEXT")]
    pub texts: Vec<String>,
    /// Model directory; default `$MILLIONX_MODEL_DIR`, else `~/.cache/millionx/all-MiniLM-L6-v2`.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Embedding backend: OpenVINO when installed (ops/models/fetch-openvino.sh, build-minilm-onnx.sh), else candle.
    #[arg(long, value_enum, value_name = "BACKEND", default_value_t = EmbedBackend::Auto)]
    pub embed_backend: EmbedBackend,
}

/// Loads the model from `dir`, or from [`locate_model_dir`] when `None`, on `backend` (one thread). A missing
/// model is an error here (the commands cannot run without it). Errors name `--model-dir` or
/// `MILLIONX_MODEL_DIR` and the file, or the backend and what it lacks ([`load_encoder`]).
pub fn load_model(dir: Option<&Path>, backend: EmbedBackend) -> Result<Arc<dyn TextEncoder>, EmbedError> {
    let dir = match dir {
        Some(d) => check_model_dir(d, "--model-dir")?,
        None => locate_model_dir()?,
    };
    load_encoder(backend, &dir, 1)
}

/// Embeds `texts` through a one-thread [`EmbedPool`] (the operator's code path), in input order.
pub fn embed_texts(embedder: Arc<dyn TextEncoder>, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let pool = EmbedPool::start(embedder, PoolConfig { threads: 1, ..PoolConfig::default() })?;
    let mut client = pool.client(None);
    let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    let items: Vec<(u64, &str)> = texts.iter().enumerate().map(|(i, t)| (i as u64, t.as_str())).collect();
    let mut sent = 0;
    let mut received = 0;
    while received < texts.len() {
        if sent < items.len() {
            sent += client.submit(&items[sent..])?;
        }
        if let Some((id, v)) = client.wait(Duration::from_millis(100)) {
            let v = v.ok_or_else(|| EmbedError::Inference("the model failed on this batch".into()))?;
            if let Some(slot) = out.get_mut(id as usize) {
                *slot = Some(v.to_vec());
                received += 1;
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Runs `millionx embed`: writes one line per text to `out`, a JSON array of 384 numbers.
pub fn run_embed(args: &EmbedArgs, out: &mut dyn Write) -> Result<(), EmbedError> {
    let embedder = load_model(args.model_dir.as_deref(), args.embed_backend)?;
    for v in embed_texts(embedder, &args.texts)? {
        serde_json::to_writer(&mut *out, &v).map_err(|e| EmbedError::Output(e.into()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
