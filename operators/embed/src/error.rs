//! Errors of the embedding crate.

use std::path::PathBuf;

/// Everything that can go wrong loading or running the model, or reading a search index.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// `MILLIONX_MODEL_DIR`, `embed.model_dir` or `--model-dir` does not name a usable model directory (bad
    /// config: fails at start).
    #[error("{key}={path}: {reason}")]
    BadModelDir {
        /// The variable, key or flag that named the directory.
        key: &'static str,
        /// The directory it named.
        path: PathBuf,
        /// Why it is unusable (which file is missing or unreadable).
        reason: String,
    },
    /// No model directory exists: embeddings are off (see [`crate::model::locate_model_dir`]).
    #[error("no all-MiniLM-L6-v2 model in {0} (set MILLIONX_MODEL_DIR or run ops/models/fetch-minilm.sh)")]
    NoModel(PathBuf),
    /// A model file could not be read or parsed.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// Parser or I/O error text.
        reason: String,
    },
    /// The model files parsed but do not describe the expected model (e.g. hidden size is not 384).
    #[error("model in {dir}: {reason}")]
    WrongModel {
        /// The model directory.
        dir: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// An OpenVINO setting is unusable: the library named by `MILLIONX_OPENVINO_LIB` is missing or does not load,
    /// or `MILLIONX_OPENVINO_PRECISION` is not `f32`/`bf16` (bad config: fails at start).
    #[error("{key}: {reason}")]
    BadOpenVino {
        /// The environment variable.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `--embed-backend` named a backend whose files are not installed.
    #[error("--embed-backend {backend}: {reason}")]
    BackendUnavailable {
        /// The backend asked for.
        backend: &'static str,
        /// What is missing, and the script that installs it.
        reason: String,
    },
    /// The tokenizer rejected a text (the text itself is never part of the message: it may be personal).
    #[error("tokenizer: {0}")]
    Tokenize(String),
    /// A tensor operation failed inside candle or OpenVINO.
    #[error("inference: {0}")]
    Inference(String),
    /// The pool could not start: a setting failed [`crate::PoolConfig::validate`] (the message names it), or
    /// the OS refused a thread.
    #[error("embedding pool: {0}")]
    PoolStart(String),
    /// The embedding pool has shut down (its threads ended).
    #[error("embedding pool is shut down")]
    PoolClosed,
    /// A file of the local search index could not be read or is not a Weaviate batch body.
    #[error("index file {path}: {reason}")]
    IndexFile {
        /// The batch file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// Writing the command output failed (e.g. a closed pipe).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> Self {
        EmbedError::Inference(e.to_string())
    }
}
