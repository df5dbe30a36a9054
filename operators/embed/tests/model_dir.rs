//! Where the model is looked for. One test only in this binary: it changes environment variables.

use millionx_embed::{load_from_env, locate_model_dir, EmbedError, MODEL_DIR_ENV};

#[test]
fn the_model_directory_comes_from_the_environment_or_the_cache() {
    let empty = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");

    // Set but unusable: a configuration error naming the variable and the missing file.
    std::env::set_var(MODEL_DIR_ENV, empty.path());
    let err = locate_model_dir().expect_err("empty directory");
    assert!(matches!(err, EmbedError::BadModelDir { key: "MILLIONX_MODEL_DIR", .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("MILLIONX_MODEL_DIR={}: config.json is missing or not a file", empty.path().display())
    );
    assert!(load_from_env().is_err(), "a bad MILLIONX_MODEL_DIR must fail the start");

    // Unset: the cache directory under XDG_CACHE_HOME; nothing there means embeddings off, not an error.
    std::env::remove_var(MODEL_DIR_ENV);
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    let expected = cache.path().join("millionx").join("all-MiniLM-L6-v2");
    match locate_model_dir() {
        Err(EmbedError::NoModel(dir)) => assert_eq!(dir, expected),
        other => panic!("expected NoModel, got {other:?}"),
    }
    assert!(matches!(load_from_env(), Ok(None)));

    // Files present (contents are not read by the lookup): found.
    std::fs::create_dir_all(&expected).expect("cache folder");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::write(expected.join(f), b"{}").expect("file");
    }
    assert_eq!(locate_model_dir().expect("found"), expected);
    // ... but loading checks them: a corrupt config names the file.
    let err = load_from_env().expect_err("not a BERT config");
    assert!(err.to_string().starts_with(&format!("model file {}", expected.join("config.json").display())), "{err}");
}
