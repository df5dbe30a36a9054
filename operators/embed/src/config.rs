//! The run file's `[embed]` table ([`EmbedTable`]) through [`ConnectorConfig`]: the mode, the per-record
//! deadline, the operator's batching and the pool's threads, queue and cache, and the model directory.
//! `millionx run --embed` and `--embed-deadline-ms` override `mode` and `deadline_ms`; `MILLIONX_MODEL_DIR`
//! overrides `model_dir`. Every key and default is also listed in `millionx_dataflow::config`.

use std::path::PathBuf;
use std::time::Duration;

use millionx_dataflow::config::{ConfigError, ConnectorConfig, Env, Shared};
use serde::Deserialize;

use crate::backend::EmbedBackend;
use crate::model::MODEL_DIR_ENV;
use crate::operator::EmbedConfig;
use crate::pool::PoolConfig;
use crate::run::EmbedMode;

/// Longest `deadline_ms`, 1 h.
pub const MAX_DEADLINE_MS: u64 = 3_600_000;

/// `[embed]`. Every key is optional; unknown keys are rejected.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedTable {
    /// `auto` (on when the model loads), `on` (a missing model is an error) or `off`. Default `auto`.
    pub mode: EmbedMode,
    /// `auto` (OpenVINO when its library and `model.onnx` are present, else candle), `openvino` (their absence is
    /// an error) or `candle`. Default `auto`.
    pub backend: EmbedBackend,
    /// Longest a record waits for its vector before it goes out without one, ms (1..=3,600,000). Default
    /// 60,000. It bounds how long embedding can hold the pipeline's frontier back.
    pub deadline_ms: u64,
    /// Texts per submission to the pool (count trigger, ≥ 1). Default 32.
    pub batch_size: usize,
    /// Longest a text waits for its submission to fill, ms (age trigger). Default 50.
    pub max_batch_delay_ms: u64,
    /// Most texts hashed and submitted in one operator activation (≥ 1). Default 512.
    pub max_submit_per_activation: usize,
    /// Model threads, each running one batch at a time (≥ 1). Default: the number of CPUs.
    pub threads: usize,
    /// Most texts waiting for a model thread (≥ 1); submissions beyond it are refused. Default 4,096.
    pub queue_capacity: usize,
    /// Most texts a model thread takes for one batch (≥ 1). Default 32.
    pub max_batch: usize,
    /// Vectors kept in the least-recently-used cache; 0 turns it off. Default 50,000.
    pub cache_capacity: usize,
    /// Model directory (must hold `config.json`, `tokenizer.json`, `model.safetensors`). Unset: the cache that
    /// `ops/models/fetch-minilm.sh` fills (`$XDG_CACHE_HOME` or `~/.cache`, `millionx/all-MiniLM-L6-v2`).
    pub model_dir: Option<PathBuf>,
    /// Where `model_dir` came from, for errors: `embed.model_dir`, or `MILLIONX_MODEL_DIR` when the environment
    /// overrode it.
    #[serde(skip)]
    pub model_dir_key: &'static str,
}

impl Default for EmbedTable {
    fn default() -> Self {
        let (operator, pool) = (EmbedConfig::default(), PoolConfig::default());
        EmbedTable {
            mode: EmbedMode::Auto,
            backend: EmbedBackend::Auto,
            deadline_ms: 60_000,
            batch_size: operator.batch_size,
            max_batch_delay_ms: operator.max_batch_delay.as_millis() as u64,
            max_submit_per_activation: operator.max_submit_per_activation,
            threads: pool.threads,
            queue_capacity: pool.queue_capacity,
            max_batch: pool.max_batch,
            cache_capacity: pool.cache_capacity,
            model_dir: None,
            model_dir_key: "embed.model_dir",
        }
    }
}

impl EmbedTable {
    /// The operator's settings.
    pub fn operator(&self) -> EmbedConfig {
        EmbedConfig {
            batch_size: self.batch_size,
            max_batch_delay: Duration::from_millis(self.max_batch_delay_ms),
            deadline: Duration::from_millis(self.deadline_ms),
            max_submit_per_activation: self.max_submit_per_activation,
        }
    }

    /// The pool's settings.
    pub fn pool(&self) -> PoolConfig {
        PoolConfig {
            threads: self.threads,
            queue_capacity: self.queue_capacity,
            max_batch: self.max_batch,
            cache_capacity: self.cache_capacity,
        }
    }
}

/// An `embed.KEY: reason` message of [`EmbedConfig::validate`] / [`PoolConfig::validate`] as a [`ConfigError`].
fn named(message: String) -> ConfigError {
    match message.split_once(": ") {
        Some((key, reason)) => ConfigError::new(key, reason),
        None => ConfigError::new("embed", message),
    }
}

impl ConnectorConfig for EmbedTable {
    const TABLE: &'static str = "embed";

    fn from_value(value: toml::Value, _shared: &Shared<'_>) -> Result<EmbedTable, ConfigError> {
        millionx_dataflow::config::from_toml_value(value).map_err(|e| e.within(Self::TABLE))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_DEADLINE_MS).contains(&self.deadline_ms) {
            return Err(ConfigError::new(
                "embed.deadline_ms",
                format!("must be 1..={MAX_DEADLINE_MS}, got {}", self.deadline_ms),
            ));
        }
        if self.model_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::new("embed.model_dir", "must not be empty (unset it to use the cache)"));
        }
        self.operator().validate().map_err(named)?;
        self.pool().validate().map_err(named)
    }

    /// `MILLIONX_MODEL_DIR` overrides `model_dir`.
    fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        if let Some(dir) = env.get(MODEL_DIR_ENV) {
            self.model_dir = Some(PathBuf::from(dir));
            self.model_dir_key = MODEL_DIR_ENV;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &Env) -> Result<EmbedTable, ConfigError> {
        EmbedTable::load(toml::Value::Table(toml::from_str(text).expect("toml")), &Shared::default(), env)
    }

    #[test]
    fn defaults_match_the_operator_and_pool_defaults() {
        let t = load("", &Env::empty()).expect("defaults");
        assert_eq!((t.mode, t.deadline_ms, t.model_dir.as_ref()), (EmbedMode::Auto, 60_000, None));
        assert_eq!(t.pool(), PoolConfig::default());
        assert_eq!(t.operator(), EmbedConfig { deadline: Duration::from_secs(60), ..EmbedConfig::default() });
    }

    #[test]
    fn values_are_read_and_bad_ones_name_the_key() {
        let t =
            load("mode = \"off\"\ndeadline_ms = 250\nthreads = 3\ncache_capacity = 0\n", &Env::empty()).expect("valid");
        assert_eq!(
            (t.mode, t.operator().deadline, t.pool().threads, t.pool().cache_capacity),
            (EmbedMode::Off, Duration::from_millis(250), 3, 0)
        );
        for (text, key) in [
            ("deadline_ms = 0", "embed.deadline_ms"),
            ("deadline_ms = 3600001", "embed.deadline_ms"),
            ("batch_size = 0", "embed.batch_size"),
            ("threads = 0", "embed.threads"),
            ("queue_capacity = 0", "embed.queue_capacity"),
            ("max_batch = 0", "embed.max_batch"),
            ("max_submit_per_activation = 0", "embed.max_submit_per_activation"),
            ("mode = \"sometimes\"", "embed.mode"),
            ("model_dir = \"\"", "embed.model_dir"),
            ("backend = \"x\"", "embed.backend"),
        ] {
            assert_eq!(load(text, &Env::empty()).expect_err(text).key, key, "{text}");
        }
    }

    #[test]
    fn the_environment_overrides_the_model_dir() {
        let env = Env::from_pairs([(MODEL_DIR_ENV, "/models/minilm")]);
        let t = load("model_dir = \"/elsewhere\"\n", &env).expect("valid");
        assert_eq!((t.model_dir, t.model_dir_key), (Some(PathBuf::from("/models/minilm")), MODEL_DIR_ENV));
        let t = load("model_dir = \"/elsewhere\"\n", &Env::empty()).expect("valid");
        assert_eq!((t.model_dir, t.model_dir_key), (Some(PathBuf::from("/elsewhere")), "embed.model_dir"));
    }
}
