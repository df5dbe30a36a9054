//! Turning embeddings on for `millionx run`: the `--embed auto|on|off` mode and the pool it starts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use crate::backend::{load_encoder, EmbedBackend};
use crate::error::EmbedError;
use crate::model::{check_model_dir, locate_model_dir, TextEncoder, MODEL_DIR_ENV, MODEL_NAME};
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

/// An encoder ready for a run and the model folder it was loaded from.
pub type LoadedEncoder = (Arc<dyn TextEncoder>, PathBuf);

/// Loads the model as `mode` says, from `model_dir` (the directory and the key errors name: `embed.model_dir`,
/// or `MILLIONX_MODEL_DIR`, which overrides it) when given, else from [`locate_model_dir`], on `backend` with `threads` pool threads:
/// `Ok(Some((encoder, directory)))` embeddings on, `Ok(None)` off.
///
/// Errors: with [`EmbedMode::On`], any reason the model cannot be used ([`EmbedError::NoModel`],
/// [`EmbedError::BadModelDir`], [`EmbedError::ModelFile`], [`EmbedError::WrongModel`]); with
/// [`EmbedMode::Auto`], only [`EmbedError::BadModelDir`] (`MILLIONX_MODEL_DIR` set to an unusable directory).
/// In both, the backend's errors that [`load_encoder`] names as start-up errors (an explicit
/// `--embed-backend openvino` without OpenVINO, a bad `MILLIONX_OPENVINO_LIB`).
pub fn load_for_run(
    mode: EmbedMode,
    backend: EmbedBackend,
    model_dir: Option<(&Path, &'static str)>,
    threads: usize,
) -> Result<Option<LoadedEncoder>, EmbedError> {
    let locate = || match model_dir {
        Some((dir, key)) => check_model_dir(dir, key),
        None => locate_model_dir(),
    };
    let load = |dir: PathBuf| load_encoder(backend, &dir, threads).map(|e| (e, dir));
    match mode {
        EmbedMode::Off => Ok(None),
        EmbedMode::On => Ok(Some(load(locate()?)?)),
        EmbedMode::Auto => match locate().and_then(load) {
            Ok(model) => Ok(Some(model)),
            Err(
                e @ (EmbedError::BadModelDir { .. }
                | EmbedError::BadOpenVino { .. }
                | EmbedError::BackendUnavailable { .. }),
            ) => Err(e),
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

/// Starts the embedding pool for a run: [`load_for_run`] on `backend`, then [`EmbedPool::start_observed`] with `config`
/// and `observer` (e.g. feeding `millionx_embedding_duration_seconds`). `Ok(None)`: embeddings are off.
///
/// Errors: as [`load_for_run`], and [`EmbedError::PoolStart`] for a bad `config` or a refused thread.
pub fn start_for_run(
    mode: EmbedMode,
    backend: EmbedBackend,
    model_dir: Option<(&Path, &'static str)>,
    config: PoolConfig,
    observer: Option<BatchObserver>,
) -> Result<Option<EmbedPool>, EmbedError> {
    match load_for_run(mode, backend, model_dir, config.threads)? {
        None => Ok(None),
        Some((model, dir)) => {
            let runtime = model.runtime();
            let pool = EmbedPool::start_observed(model, config, observer)?;
            eprintln!(
                "embeddings on: {MODEL_NAME} from {} on {runtime}, {} model thread(s), batches of ≤ {} texts",
                dir.display(),
                pool.config().threads,
                pool.config().max_batch
            );
            Ok(Some(pool))
        }
    }
}
