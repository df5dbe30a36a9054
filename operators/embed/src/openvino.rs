//! The OpenVINO backend: the same tokenizer and batching as the candle backend ([`crate::tokens`]), the encoder
//! (BERT, mean pooling and L2 normalisation in one graph) as `model.onnx` in the model directory, built from
//! `model.safetensors` by `ops/models/build-minilm-onnx.py`, run by the OpenVINO CPU plugin.
//!
//! The C library (`libopenvino_c.so`) is loaded at run time (the `openvino` crate's `runtime-linking`), so a
//! build needs no OpenVINO: [`locate_library`] finds it through `MILLIONX_OPENVINO_LIB` or the path
//! `ops/models/fetch-openvino.sh` installs to. The precision hint is bf16 when the CPU plugin lists `BF16` in
//! `OPTIMIZATION_CAPABILITIES` (avx512_bf16 or AMX), f32 otherwise; `MILLIONX_OPENVINO_PRECISION=f32|bf16`
//! overrides it. One compiled model runs `threads` streams of one thread each; every pool thread borrows its own
//! infer request.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use openvino::{CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey, Shape, Tensor};

use crate::backend::{Precision, Runtime};
use crate::error::EmbedError;
use crate::model::{load_word_pieces, TextEncoder, DIMS, MODEL_NAME};
use crate::tokens::{with_scratch, Chunk, Scratch, WordPieces};

/// Environment variable naming `libopenvino_c.so` (a file, or the directory holding it).
pub const OPENVINO_LIB_ENV: &str = "MILLIONX_OPENVINO_LIB";
/// Where `ops/models/fetch-openvino.sh` installs the C library when `MILLIONX_OPENVINO_DIR` is unset.
pub const DEFAULT_OPENVINO_LIB: &str = "/opt/millionx/openvino/libs/libopenvino_c.so";
/// Environment variable forcing the precision hint (`f32` or `bf16`).
pub const PRECISION_ENV: &str = "MILLIONX_OPENVINO_PRECISION";
/// The ONNX graph in the model directory.
pub const ONNX_FILE: &str = "model.onnx";

/// Finds `libopenvino_c.so`: `MILLIONX_OPENVINO_LIB` when set (a directory is searched for `libopenvino_c.so`;
/// a missing file is a configuration error, [`EmbedError::BadOpenVino`]), else [`DEFAULT_OPENVINO_LIB`] when it
/// exists; `Ok(None)` when neither.
pub fn locate_library() -> Result<Option<PathBuf>, EmbedError> {
    match std::env::var_os(OPENVINO_LIB_ENV).filter(|v| !v.is_empty()) {
        Some(v) => {
            let mut path = PathBuf::from(v);
            if path.is_dir() {
                path.push("libopenvino_c.so");
            }
            if path.is_file() {
                Ok(Some(path))
            } else {
                Err(EmbedError::BadOpenVino {
                    key: OPENVINO_LIB_ENV,
                    reason: format!("{} is not a file", path.display()),
                })
            }
        }
        None => Ok(Some(PathBuf::from(DEFAULT_OPENVINO_LIB)).filter(|p| p.is_file())),
    }
}

/// The precision forced by `MILLIONX_OPENVINO_PRECISION`, `None` when unset.
///
/// Errors: [`EmbedError::BadOpenVino`] for a value other than `f32` or `bf16`.
fn forced_precision() -> Result<Option<Precision>, EmbedError> {
    match std::env::var(PRECISION_ENV).ok().filter(|v| !v.is_empty()).as_deref() {
        None => Ok(None),
        Some("f32") => Ok(Some(Precision::F32)),
        Some("bf16") => Ok(Some(Precision::Bf16)),
        Some(other) => {
            Err(EmbedError::BadOpenVino { key: PRECISION_ENV, reason: format!("{other:?} is neither f32 nor bf16") })
        }
    }
}

fn ov_err(what: &str) -> impl Fn(openvino::InferenceError) -> EmbedError + '_ {
    move |e| EmbedError::Inference(format!("OpenVINO {what}: {e}"))
}

/// The OpenVINO sentence encoder. `Send + Sync`: one instance serves every pool thread.
pub struct OpenVinoEmbedder {
    pieces: WordPieces,
    compiled: Mutex<CompiledModel>,
    /// Idle infer requests; a thread takes one per chunk (a new one when none is idle) and puts it back.
    requests: Mutex<Vec<InferRequest>>,
    precision: Precision,
    dir: PathBuf,
    // Dropped last: the compiled model and requests belong to it (`Core` is `Send`, not `Sync`).
    _core: Mutex<Core>,
}

impl std::fmt::Debug for OpenVinoEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVinoEmbedder").field("dir", &self.dir).field("precision", &self.precision).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OpenVinoEmbedder {
    /// Loads the C library at `lib`, the tokenizer from `dir` and `dir/model.onnx`, and compiles the model for
    /// the CPU with `threads` streams of one thread each and the precision hint (see the module docs).
    ///
    /// Errors: [`EmbedError::BadOpenVino`] when the library cannot be loaded or a setting is bad,
    /// [`EmbedError::ModelFile`] for a missing or unreadable model file, [`EmbedError::Inference`] when OpenVINO
    /// rejects the graph.
    pub fn load(lib: &Path, dir: &Path, threads: usize) -> Result<OpenVinoEmbedder, EmbedError> {
        let forced = forced_precision()?;
        let onnx = dir.join(ONNX_FILE);
        if !onnx.is_file() {
            return Err(EmbedError::ModelFile {
                path: onnx,
                reason: "missing (run ops/models/build-minilm-onnx.sh)".into(),
            });
        }
        let pieces = load_word_pieces(dir)?;
        openvino_sys::library::load_from(lib.to_path_buf()).map_err(|reason| EmbedError::BadOpenVino {
            key: OPENVINO_LIB_ENV,
            reason: format!("{}: {reason}", lib.display()),
        })?;
        let mut core = Core::new().map_err(|e| EmbedError::BadOpenVino {
            key: OPENVINO_LIB_ENV,
            reason: format!("{}: {e}", lib.display()),
        })?;
        let precision = match forced {
            Some(p) => p,
            None => {
                let caps = core
                    .get_property(&DeviceType::CPU, &PropertyKey::DeviceCapabilities)
                    .map_err(ov_err("OPTIMIZATION_CAPABILITIES"))?;
                if caps.split_whitespace().any(|c| c == "BF16") {
                    Precision::Bf16
                } else {
                    Precision::F32
                }
            }
        };
        let threads = threads.max(1).to_string();
        core.set_properties(
            &DeviceType::CPU,
            [
                (RwPropertyKey::HintInferencePrecision, precision.as_str()),
                (RwPropertyKey::NumStreams, threads.as_str()),
                (RwPropertyKey::InferenceNumThreads, threads.as_str()),
                (RwPropertyKey::HintEnableCpuPinning, "NO"),
            ],
        )
        .map_err(ov_err("CPU properties"))?;
        let onnx_path = onnx
            .to_str()
            .ok_or_else(|| EmbedError::ModelFile { path: onnx.clone(), reason: "the path is not UTF-8".into() })?;
        let model = core.read_model_from_file(onnx_path, "").map_err(|e| EmbedError::ModelFile {
            path: onnx.clone(),
            reason: format!("OpenVINO cannot read it: {e}"),
        })?;
        let compiled = core.compile_model(&model, DeviceType::CPU).map_err(ov_err("compile"))?;
        Ok(OpenVinoEmbedder {
            pieces,
            compiled: Mutex::new(compiled),
            requests: Mutex::new(Vec::new()),
            precision,
            dir: dir.to_path_buf(),
            _core: Mutex::new(core),
        })
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The precision hint the model was compiled with.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of word pieces (with `[CLS]`/`[SEP]`, after truncation) the model sees for `text`.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        self.pieces.token_count(text)
    }

    /// Embeds `texts`: one L2-normalised [`DIMS`]-wide vector per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_with(texts, &mut Scratch::default())
    }

    /// [`OpenVinoEmbedder::embed`] reusing the buffers of `scratch`.
    pub fn embed_with(&self, texts: &[&str], scratch: &mut Scratch) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut request = match lock(&self.requests).pop() {
            Some(r) => r,
            None => lock(&self.compiled).create_infer_request().map_err(ov_err("infer request"))?,
        };
        let result = self.pieces.embed_with(texts, scratch, |chunk| run_chunk(&mut request, chunk));
        lock(&self.requests).push(request);
        result
    }
}

/// One chunk through the compiled graph: `input_ids` and `attention_mask` as i64 `[rows, width]`, `embedding`
/// f32 `[rows, 384]` back.
fn run_chunk(request: &mut InferRequest, c: &Chunk<'_>) -> Result<Vec<Vec<f32>>, EmbedError> {
    let shape = Shape::new(&[c.rows as i64, c.width as i64]).map_err(ov_err("shape"))?;
    for (name, values) in [("input_ids", c.ids), ("attention_mask", c.mask)] {
        let mut t = Tensor::new(ElementType::I64, &shape).map_err(ov_err("tensor"))?;
        let data = t.get_data_mut::<i64>().map_err(ov_err("tensor"))?;
        data.iter_mut().zip(values).for_each(|(d, &v)| *d = i64::from(v));
        request.set_tensor(name, &t).map_err(ov_err(name))?;
    }
    request.infer().map_err(ov_err("infer"))?;
    let out = request.get_tensor("embedding").map_err(ov_err("embedding"))?;
    let data = out.get_data::<f32>().map_err(ov_err("embedding"))?;
    if data.len() != c.rows * DIMS {
        return Err(EmbedError::Inference(format!(
            "OpenVINO returned {} values for {} texts × {DIMS}",
            data.len(),
            c.rows
        )));
    }
    Ok(data.chunks_exact(DIMS).map(<[f32]>::to_vec).collect())
}

impl TextEncoder for OpenVinoEmbedder {
    fn model_name(&self) -> &'static str {
        MODEL_NAME
    }
    fn runtime(&self) -> Runtime {
        Runtime { backend: "openvino", precision: self.precision }
    }
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        with_scratch(|scratch| self.embed_with(texts, scratch))
    }
}
