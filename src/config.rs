//! The run's TOML file: the core tables (`dataflow/src/config.rs`) plus the connectors' own tables
//! (`[weaviate]`), each parsed and validated by its crate, with unknown keys rejected everywhere.

use std::path::Path;

use millionx_dataflow::config::{from_toml_text, Config, ConfigError};
use millionx_sink_snowflake::config::SnowflakeConfig;
use millionx_sink_weaviate::WeaviateConfig;
use millionx_source_kafka::KafkaConfig;

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
        Ok(RunConfig { core: Config::from_table(table)?, weaviate, snowflake, kafka })
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
