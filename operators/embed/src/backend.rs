//! Which encoder runs the model: `--embed-backend auto|openvino|candle`, and what ran (for the run summary and
//! the `millionx_embedding_backend_info` metric).

use std::path::Path;
use std::sync::Arc;

use crate::error::EmbedError;
use crate::model::{Embedder, TextEncoder};
use crate::openvino::{locate_library, OpenVinoEmbedder, ONNX_FILE, OPENVINO_LIB_ENV};

/// The embedding backend (`embed.backend`, `--embed-backend`).
#[derive(clap::ValueEnum, serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmbedBackend {
    /// OpenVINO when its library (`MILLIONX_OPENVINO_LIB` or ops/models/fetch-openvino.sh's install) and
    /// `model.onnx` are present and load, else candle (one notice on stderr when OpenVINO is present but fails).
    #[default]
    Auto,
    /// OpenVINO; a missing library or `model.onnx` is a start-up error.
    Openvino,
    /// candle (pure Rust, fp32): runs everywhere.
    Candle,
}

/// Arithmetic precision an encoder computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE single precision.
    F32,
    /// bfloat16 (8-bit exponent, 7-bit mantissa) matrix products, f32 accumulation.
    Bf16,
}

impl Precision {
    /// `f32` or `bf16` (also OpenVINO's `INFERENCE_PRECISION_HINT` value).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// What runs the model: backend name (`candle`, `openvino`, or a test stand-in's) and precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// `candle` or `openvino`.
    pub backend: &'static str,
    /// The precision it computes in.
    pub precision: Precision,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.backend, self.precision.as_str())
    }
}

/// Loads the encoder `backend` names for the model in `dir`; `threads` is the pool's thread count (OpenVINO
/// compiles one stream per thread).
///
/// Errors: with [`EmbedBackend::Openvino`], [`EmbedError::BackendUnavailable`] when the library or `model.onnx`
/// is missing, and any load error; with [`EmbedBackend::Auto`], a bad `MILLIONX_OPENVINO_LIB` or
/// `MILLIONX_OPENVINO_PRECISION` ([`EmbedError::BadOpenVino`]) and candle's load errors; with
/// [`EmbedBackend::Candle`], candle's load errors ([`Embedder::load`]).
pub fn load_encoder(backend: EmbedBackend, dir: &Path, threads: usize) -> Result<Arc<dyn TextEncoder>, EmbedError> {
    let candle = || Ok(Arc::new(Embedder::load(dir)?) as Arc<dyn TextEncoder>);
    match backend {
        EmbedBackend::Candle => candle(),
        EmbedBackend::Openvino => {
            let lib = locate_library()?.ok_or_else(|| EmbedError::BackendUnavailable {
                backend: "openvino",
                reason: format!(
                    "no libopenvino_c.so ({OPENVINO_LIB_ENV} unset and {} absent; run ops/models/fetch-openvino.sh)",
                    crate::openvino::DEFAULT_OPENVINO_LIB
                ),
            })?;
            if !dir.join(ONNX_FILE).is_file() {
                return Err(EmbedError::BackendUnavailable {
                    backend: "openvino",
                    reason: format!("no {} (run ops/models/build-minilm-onnx.sh)", dir.join(ONNX_FILE).display()),
                });
            }
            Ok(Arc::new(OpenVinoEmbedder::load(&lib, dir, threads)?))
        }
        EmbedBackend::Auto => {
            let Some(lib) = locate_library()? else { return candle() };
            if !dir.join(ONNX_FILE).is_file() {
                return candle();
            }
            match OpenVinoEmbedder::load(&lib, dir, threads) {
                Ok(e) => Ok(Arc::new(e)),
                Err(e @ EmbedError::BadOpenVino { key: crate::openvino::PRECISION_ENV, .. }) => Err(e),
                Err(e) => {
                    eprintln!(
                        "embeddings: OpenVINO did not load ({e}); using candle (--embed-backend candle silences this)"
                    );
                    candle()
                }
            }
        }
    }
}
