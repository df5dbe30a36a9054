//! The run's TOML file: the core tables (`dataflow/src/config.rs`) plus the connectors' own tables
//! (`[weaviate]`, `[snowflake]`, `[kafka]`, `[weather]`), each parsed and validated by its crate, with
//! unknown keys rejected everywhere.

use std::path::Path;

use millionx_dataflow::config::{from_toml_text, Config, ConfigError};
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

/// Parses and validates a `[weather]` table (errors name `weather.KEY`).
fn weather_table(value: Option<toml::Value>) -> Result<Option<WeatherConfig>, ConfigError> {
    let v = match value {
        None => return Ok(None),
        Some(v @ toml::Value::Table(_)) => v,
        Some(_) => return Err(not_a_table("weather")),
    };
    let mut doc = toml::Table::new();
    doc.insert("weather".to_owned(), v);
    let text = toml::to_string(&doc).map_err(|e| ConfigError { key: "weather".into(), reason: e.to_string() })?;
    WeatherConfig::from_toml(&text).map(Some)
}

impl RunConfig {
    /// Parses TOML text. Errors: syntax, unknown keys or bad values, naming the key by its dotted path
    /// from the file's root (`weaviate.batch.max_records`).
    pub fn from_toml(text: &str) -> Result<RunConfig, ConfigError> {
        let mut table: toml::Table = from_toml_text(text)?;
        let weaviate = match table.remove("weaviate") {
            None => None,
            Some(toml::Value::Table(t)) => Some(WeaviateConfig::from_table(t)?),
            Some(_) => return Err(not_a_table("weaviate")),
        };
        let snowflake = match table.remove("snowflake") {
            None => None,
            Some(toml::Value::Table(t)) => Some(
                SnowflakeConfig::from_table(t)
                    .map_err(|e| ConfigError { key: format!("snowflake.{}", e.key), reason: e.reason })?,
            ),
            Some(_) => return Err(not_a_table("snowflake")),
        };
        let kafka = KafkaConfig::from_table(table.remove("kafka"))
            .map_err(|e| ConfigError { key: e.key.clone(), reason: e.reason })?;
        let weather = weather_table(table.remove("weather"))?;
        Ok(RunConfig { core: Config::from_table(table)?, weaviate, snowflake, kafka, weather })
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

fn not_a_table(key: &str) -> ConfigError {
    ConfigError { key: key.to_owned(), reason: "must be a table".to_owned() }
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
        for (text, key) in [
            ("[batch]\nmax_records = \"x\"\n", "batch.max_records"),
            ("[batch]\nmax_recordz = 3\n", "batch.max_recordz"),
            ("[kafka]\nbrokers = 3\n", "kafka.brokers"),
            ("[weaviate.batch]\nmax_records = \"x\"\n", "weaviate.batch.max_records"),
            ("[snowflake]\naccount = 1\n", "snowflake.account"),
            ("snowflake = 1\n", "snowflake"),
            ("[batch\n", "(syntax)"),
        ] {
            assert_eq!(RunConfig::from_toml(text).expect_err(text).key, key, "{text}");
        }
    }
}
