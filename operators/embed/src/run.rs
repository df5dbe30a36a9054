//! Turning embeddings on for `millionx run`: the `--embed auto|on|off` mode and the pool it starts.

use std::path::Path;
use std::sync::{Arc, Once};

use crate::error::EmbedError;
use crate::model::{check_model_dir, locate_model_dir, Embedder, MODEL_DIR_ENV, MODEL_NAME};
use crate::pool::{BatchObserver, EmbedPool, PoolConfig};

/// Whether `millionx run` embeds posts and orders (`embed.mode`, `--embed`).
#[derive(clap::ValueEnum, serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmbedMode {
    /// On when the model loads; otherwise one notice on stderr (naming the directory and the reason) and the
    /// run goes on without vectors (embedding coverage then reads 0%). A `MILLIONX_MODEL_DIR` that names a
    /// directory without the model files is still a start-up error: it is explicit configuration.
    #[default]
    Auto,
    /// On; a missing or broken model is a start-up error naming the directory and the reason.
    On,
    /// Off: records pass through without vectors, the model is not loaded.
    Off,
}

/// Loads the model as `mode` says, from `model_dir` (`embed.model_dir`, which `MILLIONX_MODEL_DIR` overrides)
/// when given, else from [`locate_model_dir`]: `Ok(Some)` embeddings on, `Ok(None)` off.
///
/// Errors: with [`EmbedMode::On`], any reason the model cannot be used ([`EmbedError::NoModel`],
/// [`EmbedError::BadModelDir`], [`EmbedError::ModelFile`], [`EmbedError::WrongModel`]); with
/// [`EmbedMode::Auto`], only [`EmbedError::BadModelDir`] (`MILLIONX_MODEL_DIR` set to an unusable directory).
pub fn load_for_run(mode: EmbedMode, model_dir: Option<&Path>) -> Result<Option<Embedder>, EmbedError> {
    let locate = || match model_dir {
        Some(dir) => check_model_dir(dir, "embed.model_dir"),
        None => locate_model_dir(),
    };
    match mode {
        EmbedMode::Off => Ok(None),
        EmbedMode::On => Ok(Some(Embedder::load(&locate()?)?)),
        EmbedMode::Auto => match locate().and_then(|dir| Embedder::load(&dir)) {
            Ok(model) => Ok(Some(model)),
            Err(e @ EmbedError::BadModelDir { .. }) => Err(e),
            Err(e) => {
                static SAID: Once = Once::new();
                SAID.call_once(|| {
                    eprintln!(
                        "embeddings off: {e}; embedding coverage will read 0% (--embed on makes this an error, \
                         --embed off silences it; model directory: {MODEL_DIR_ENV} or ops/models/fetch-minilm.sh)"
                    )
                });
                Ok(None)
            }
        },
    }
}

/// Starts the embedding pool for a run: [`load_for_run`], then [`EmbedPool::start_observed`] with `config`
/// and `observer` (e.g. feeding `millionx_embedding_duration_seconds`). `Ok(None)`: embeddings are off.
///
/// Errors: as [`load_for_run`], and [`EmbedError::PoolStart`] for a bad `config` or a refused thread.
pub fn start_for_run(
    mode: EmbedMode,
    model_dir: Option<&Path>,
    config: PoolConfig,
    observer: Option<BatchObserver>,
) -> Result<Option<EmbedPool>, EmbedError> {
    match load_for_run(mode, model_dir)? {
        None => Ok(None),
        Some(model) => {
            let dir = model.dir().display().to_string();
            let pool = EmbedPool::start_observed(Arc::new(model), config, observer)?;
            eprintln!(
                "embeddings on: {MODEL_NAME} from {dir}, {} model thread(s), batches of ≤ {} texts",
                pool.config().threads,
                pool.config().max_batch
            );
            Ok(Some(pool))
        }
    }
}
