//! `--embed-backend` selection. One test only in this binary: it changes environment variables.

mod common;

use millionx_embed::{load_encoder, EmbedBackend, EmbedError, OPENVINO_LIB_ENV};

#[test]
fn backend_selection_follows_what_is_installed() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    // A model directory without model.onnx (links to the real files).
    let no_onnx = tempfile::tempdir().expect("temp dir");
    for f in ["config.json", "tokenizer.json", "model.safetensors", "sentence_bert_config.json"] {
        std::os::unix::fs::symlink(dir.join(f), no_onnx.path().join(f)).expect("link");
    }

    // MILLIONX_OPENVINO_LIB naming nothing: a configuration error in auto and openvino, naming the variable.
    let missing = no_onnx.path().join("libopenvino_c.so");
    std::env::set_var(OPENVINO_LIB_ENV, &missing);
    for backend in [EmbedBackend::Auto, EmbedBackend::Openvino] {
        let err = load_encoder(backend, &dir, 1).err().expect("a bad MILLIONX_OPENVINO_LIB fails");
        assert!(matches!(err, EmbedError::BadOpenVino { key: "MILLIONX_OPENVINO_LIB", .. }), "{err}");
        assert_eq!(err.to_string(), format!("MILLIONX_OPENVINO_LIB: {} is not a file", missing.display()));
    }
    // candle ignores OpenVINO's settings.
    assert_eq!(load_encoder(EmbedBackend::Candle, &dir, 1).expect("candle loads").runtime().backend, "candle");
    std::env::remove_var(OPENVINO_LIB_ENV);

    let Some(_) = common::openvino() else {
        return;
    };
    // Library present, model.onnx absent: auto falls back to candle, openvino says what is missing.
    assert_eq!(load_encoder(EmbedBackend::Auto, no_onnx.path(), 1).expect("auto loads").runtime().backend, "candle");
    let err = load_encoder(EmbedBackend::Openvino, no_onnx.path(), 1).err().expect("no model.onnx");
    assert!(matches!(err, EmbedError::BackendUnavailable { backend: "openvino", .. }), "{err}");
    assert!(err.to_string().contains("model.onnx (run ops/models/build-minilm-onnx.sh)"), "{err}");
    // Both present: auto picks OpenVINO.
    assert_eq!(load_encoder(EmbedBackend::Auto, &dir, 1).expect("auto loads").runtime().backend, "openvino");

    // A bad precision override names the variable, in auto too.
    std::env::set_var("MILLIONX_OPENVINO_PRECISION", "fp8");
    let err = load_encoder(EmbedBackend::Auto, &dir, 1).err().expect("bad precision");
    assert_eq!(err.to_string(), "MILLIONX_OPENVINO_PRECISION: \"fp8\" is neither f32 nor bf16");
    std::env::set_var("MILLIONX_OPENVINO_PRECISION", "f32");
    let f32 = load_encoder(EmbedBackend::Openvino, &dir, 1).expect("f32 loads");
    assert_eq!(f32.runtime().to_string(), "openvino f32");
    std::env::remove_var("MILLIONX_OPENVINO_PRECISION");
}
