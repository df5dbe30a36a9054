//! The run's TOML file: the core tables (`dataflow/src/config.rs`) plus the connectors' own tables
//! (`[weaviate]`, `[snowflake]`, `[kafka]`, `[weather]`), each parsed and validated by its crate, with
//! unknown keys rejected everywhere.

use std::path::Path;

use millionx_dataflow::config::{Config, ConfigError};
use millionx_sink_snowflake::config::SnowflakeConfig;
use millionx_sink_weaviate::WeaviateConfig;
use millionx_source_kafka::KafkaConfig;
use millionx_source_weather::WeatherConfig;

/// Every table of the run configuration.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// Core tables: input, output, batch, dedup, watermark, join.
    pub core: Config,
    /// `[weaviate]`: where `--sink weaviate` writes (defaults when absent: `$WEAVIATE_URL` or localhost).
    pub weaviate: Option<WeaviateConfig>,
    /// `[snowflake]`: where `--sink snowflake` writes (required for that sink).
    pub snowflake: Option<SnowflakeConfig>,
    /// `[kafka]`: the Kafka source and DLQ producer (defaults when absent; used with `--source kafka`).
    pub kafka: KafkaConfig,
    /// `[weather]`: the live OpenWeatherMap feed of `run --weather owm` (defaults when absent).
    pub weather: Option<WeatherConfig>,
}

fn prefixed(table: &str, e: impl std::fmt::Display, key: Option<&str>) -> ConfigError {
    let text = e.to_string();
    ConfigError {
        key: key.map_or_else(
            || table.to_owned(),
            |k| if k.starts_with(table) { k.to_owned() } else { format!("{table}.{k}") },
        ),
        reason: text,
    }
}

/// Parses and validates a `[weather]` table (errors name `weather.KEY`).
fn weather_table(value: Option<toml::Value>) -> Result<Option<WeatherConfig>, ConfigError> {
    let Some(v) = value else { return Ok(None) };
    let mut doc = toml::Table::new();
    doc.insert("weather".to_owned(), v);
    let text = toml::to_string(&doc).map_err(|e| prefixed("weather", e, None))?;
    WeatherConfig::from_toml(&text).map(Some)
}

impl RunConfig {
    /// Parses TOML text. Errors: syntax, unknown keys or bad values, naming the key.
    pub fn from_toml(text: &str) -> Result<RunConfig, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError { key: "(file)".into(), reason: e.to_string().trim().replace('\n', " ") })?;
        let weaviate = match table.remove("weaviate") {
            None => None,
            Some(v) => {
                let text = toml::to_string(&v).map_err(|e| prefixed("weaviate", e, None))?;
                let cfg =
                    WeaviateConfig::from_toml(&text).map_err(|e| prefixed("weaviate", &e.reason, Some(&e.key)))?;
                Some(cfg)
            }
        };
        let snowflake = match table.remove("snowflake") {
            None => None,
            Some(toml::Value::Table(t)) => {
                Some(SnowflakeConfig::from_table(t).map_err(|e| prefixed("snowflake", &e.reason, Some(&e.key)))?)
            }
            Some(_) => return Err(ConfigError { key: "snowflake".into(), reason: "must be a table".into() }),
        };
        let kafka = KafkaConfig::from_table(table.remove("kafka"))
            .map_err(|e| ConfigError { key: e.key.clone(), reason: e.reason })?;
        let weather = weather_table(table.remove("weather"))?;
        let core_text = toml::to_string(&table).map_err(|e| prefixed("(file)", e, None))?;
        Ok(RunConfig { core: Config::from_toml(&core_text)?, weaviate, snowflake, kafka, weather })
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: "--config".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        RunConfig::from_toml(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_tables_are_split_off_and_validated_with_their_key() {
        let c = RunConfig::from_toml("[batch]\nmax_records = 7\n[weaviate]\nurl = \"http://10.0.0.1:8080\"\n")
            .expect("valid");
        assert_eq!(c.core.batch.max_records, 7);
        assert_eq!(c.weaviate.map(|w| w.url), Some("http://10.0.0.1:8080".to_owned()));
        let e = RunConfig::from_toml("[weaviate.batch]\nmax_records = 0\n").expect_err("bad");
        assert!(e.key.starts_with("weaviate"), "{e}");
        let e = RunConfig::from_toml("[weaviate]\nurll = \"x\"\n").expect_err("typo");
        assert!(e.to_string().contains("urll"), "{e}");
        assert!(RunConfig::from_toml("").expect("empty").weaviate.is_none());
        let c = RunConfig::from_toml("[kafka]\nbrokers = \"k:9092\"\n").expect("kafka");
        assert_eq!(c.kafka.brokers, "k:9092");
        let e = RunConfig::from_toml("[kafka]\nepoch_messages = 0\n").expect_err("bad");
        assert_eq!(e.key, "kafka.epoch_messages");
        let c = RunConfig::from_toml("[weather]\nevery = \"30m\"\nspacing_ms = 0\n").expect("weather");
        let w = c.weather.expect("[weather] kept");
        assert_eq!((w.every().expect("every").as_secs(), w.spacing_ms), (1800, 0));
        let e = RunConfig::from_toml("[weather]\nevery = \"5s\"\n").expect_err("too often");
        assert_eq!(e.key, "weather.every");
        let e = RunConfig::from_toml("[weather]\nspacing = 1\n").expect_err("typo");
        assert_eq!(e.key, "weather.spacing");
    }
}
