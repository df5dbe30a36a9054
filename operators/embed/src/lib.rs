//! In-process sentence embeddings for MillionX: all-MiniLM-L6-v2 (384 dims, mean pooling, L2-normalised) on
//! the CPU with OpenVINO or candle, off the timely worker threads.
//!
//! - [`model`]: finds and loads the model files (`config.json`, `tokenizer.json`, `model.safetensors`) and
//!   embeds batches with candle ([`Embedder`]).
//! - [`openvino`]: the same model as `model.onnx` on OpenVINO, bf16 where the CPU has it ([`OpenVinoEmbedder`]).
//! - [`backend`]: `--embed-backend auto|openvino|candle` ([`EmbedBackend`], [`load_encoder`]).
//! - [`tokens`]: the tokenizer and the length-sorted chunking both backends share.
//! - [`pool`]: model threads with a bounded queue and a cache by text hash ([`EmbedPool`], [`EmbedClient`]).
//! - [`operator`]: the timely `embed` operator ([`Embed`]): batching by count and age, a per-record deadline.
//! - [`run`]: `millionx run --embed auto|on|off` ([`EmbedMode`], [`start_for_run`]).
//! - [`config`]: the run file's `[embed]` table ([`EmbedTable`]).
//! - [`text`]: which text of a record is embedded ([`EmbeddingText`]).
//! - [`cli`]: `millionx embed`.
//! - [`index`]: the local vector index over the file sink's Weaviate batch files (`millionx search`, in the
//!   binary, queries it or a Weaviate server).
//!
//! See `CONTEXT.md` for the model files, the licence, the benchmark and how to wire it.

pub mod backend;
pub mod cli;
pub mod config;
pub mod error;
pub mod index;
pub mod model;
pub mod openvino;
pub mod operator;
pub mod pool;
pub mod run;
pub mod text;
pub mod tokens;

pub use backend::{load_encoder, EmbedBackend, Precision, Runtime};
pub use cli::{run_embed, EmbedArgs};
pub use config::EmbedTable;
pub use error::EmbedError;
pub use index::{Hit, LocalIndex};
pub use model::{
    check_model_dir, cosine, load_from_env, locate_model_dir, prefer_pool_parallelism, Embedder, TextEncoder, DIMS,
    MODEL_DIR_ENV, MODEL_NAME,
};
pub use openvino::{OpenVinoEmbedder, OPENVINO_LIB_ENV};
pub use operator::{Embed, EmbedConfig, EmbedStats};
pub use pool::{BatchObserver, EmbedClient, EmbedPool, PoolConfig, PoolStats};
pub use run::{load_for_run, start_for_run, EmbedMode};
pub use text::EmbeddingText;
