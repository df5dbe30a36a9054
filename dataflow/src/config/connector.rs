//! The one way a connector (Kafka, Weaviate, Snowflake, weather, embedding) reads its table of the run file.

use super::{ConfigError, Env, Shared};

/// A connector's configuration table (`[kafka]`, `[weaviate]`, ...).
///
/// [`ConnectorConfig::load`] is the whole path: parse the already-parsed TOML value (unknown keys rejected),
/// apply the environment overlay, validate. Every error is a [`ConfigError`] whose key is the dotted path from
/// the file's root (`weaviate.retry.max_retries`) or the environment variable's name.
pub trait ConnectorConfig: Sized {
    /// The table's name in the run file, also the first segment of every error key.
    const TABLE: &'static str;

    /// Parses the table's value; `shared` holds the file tables the connector layers under its own
    /// (see [`crate::config::policy`]). Errors: not a table, unknown keys, wrong types. No validation, no I/O.
    fn from_value(value: toml::Value, shared: &Shared<'_>) -> Result<Self, ConfigError>;

    /// Checks every value. Pure: reads neither the environment, files nor the network.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Sets what the environment overrides (not secrets: those are read where they are used, from `env` or a
    /// file). Default: nothing.
    fn apply_env(&mut self, _env: &Env) -> Result<(), ConfigError> {
        Ok(())
    }

    /// [`ConnectorConfig::from_value`], [`ConnectorConfig::apply_env`], [`ConnectorConfig::validate`].
    fn load(value: toml::Value, shared: &Shared<'_>, env: &Env) -> Result<Self, ConfigError> {
        let mut config = Self::from_value(value, shared)?;
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text holding the table's own keys (as inside `[TABLE]`, for tests and tools), no shared
    /// tables, no environment, and validates it. Errors: a syntax error (key `(syntax)`) or as
    /// [`ConnectorConfig::from_value`] and [`ConnectorConfig::validate`].
    fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = super::from_toml_text(text)?;
        let config = Self::from_value(toml::Value::Table(table), &Shared::default())?;
        config.validate()?;
        Ok(config)
    }
}

/// Deserializes a connector's `table` (what is left after its sub-tables are taken out), errors named
/// `<name>.KEY` (see [`super::from_toml_value`]).
pub fn parse_table<T: serde::de::DeserializeOwned>(table: toml::Table, name: &str) -> Result<T, ConfigError> {
    super::from_toml_value(toml::Value::Table(table)).map_err(|e| e.within(name))
}

/// The table inside `value`, or an error naming `key` when `value` is not a table.
pub fn table_of(value: toml::Value, key: &str) -> Result<toml::Table, ConfigError> {
    match value {
        toml::Value::Table(t) => Ok(t),
        _ => Err(ConfigError::new(key, "must be a table")),
    }
}
