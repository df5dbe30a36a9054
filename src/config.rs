//! The run's TOML file: the core tables (`dataflow/src/config.rs`, which lists every key of every table) plus
//! the connectors' own tables (`[weaviate]`, `[snowflake]`, `[kafka]`, `[weather]`, `[embed]`), each read once
//! from the parsed document through [`ConnectorConfig::load`] with the file's `[batch]` layered under the
//! sinks' own `[<sink>.batch]`, one [`Env`] for every environment overlay, and unknown keys rejected
//! everywhere.

use std::path::Path;

use millionx_dataflow::config::{from_toml_text, Config, ConfigError, ConnectorConfig, Env, Shared};
use millionx_embed::EmbedTable;
use millionx_sink_snowflake::config::SnowflakeConfig;
use millionx_sink_weaviate::WeaviateConfig;
use millionx_source_kafka::KafkaConfig;
use millionx_source_weather::WeatherConfig;

/// Every table of the run configuration.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Core tables: input, output, batch, dedup, watermark, join, metrics.
    pub core: Config,
    /// `[weaviate]`: where `--sink weaviate` writes (absent: [`WeaviateConfig::from_env`]).
    pub weaviate: Option<WeaviateConfig>,
    /// `[snowflake]`: where `--sink snowflake` writes (required for that sink).
    pub snowflake: Option<SnowflakeConfig>,
    /// `[kafka]`: the Kafka source and DLQ producer (defaults when absent; used with `--source kafka`).
    pub kafka: KafkaConfig,
    /// `[weather]`: the live OpenWeatherMap feed of `run --weather owm` (defaults when absent).
    pub weather: Option<WeatherConfig>,
    /// `[embed]`: embedding mode, deadline, pool and model directory (defaults when absent).
    pub embed: EmbedTable,
}

/// The connector table `T::TABLE` taken out of `doc` and loaded; `None` when absent.
fn take<T: ConnectorConfig>(doc: &mut toml::Table, shared: &Shared<'_>, env: &Env) -> Result<Option<T>, ConfigError> {
    doc.remove(T::TABLE).map(|v| T::load(v, shared, env)).transpose()
}

/// As [`take`], with the defaults (environment overlay applied, validated) when absent.
fn take_or_default<T: ConnectorConfig + Default>(
    doc: &mut toml::Table,
    shared: &Shared<'_>,
    env: &Env,
) -> Result<T, ConfigError> {
    match take(doc, shared, env)? {
        Some(c) => Ok(c),
        None => {
            let mut c = T::default();
            c.apply_env(env)?;
            c.validate()?;
            Ok(c)
        }
    }
}

impl RunConfig {
    /// Parses TOML text with `env` as the environment. Errors: syntax, unknown keys or bad values, naming the
    /// key by its dotted path from the file's root (`weaviate.batch.max_records`).
    pub fn from_toml(text: &str, env: &Env) -> Result<RunConfig, ConfigError> {
        let mut doc: toml::Table = from_toml_text(text)?;
        let batch = doc.get("batch").cloned();
        let shared = Shared { batch: batch.as_ref() };
        let weaviate = take(&mut doc, &shared, env)?;
        let snowflake = take(&mut doc, &shared, env)?;
        let kafka = take_or_default(&mut doc, &shared, env)?;
        let weather = take(&mut doc, &shared, env)?;
        let embed = take_or_default(&mut doc, &shared, env)?;
        let core = Config::from_table(doc, env).map_err(|mut e| {
            // The connector tables were taken out above; the core's list of tables omits them.
            if !e.key.contains('.') && e.reason.starts_with("unknown field") {
                let tables = [
                    WeaviateConfig::TABLE,
                    SnowflakeConfig::TABLE,
                    KafkaConfig::TABLE,
                    WeatherConfig::TABLE,
                    EmbedTable::TABLE,
                ];
                for t in tables {
                    e.reason.push_str(&format!(", `{t}`"));
                }
            }
            e
        })?;
        Ok(RunConfig { core, weaviate, snowflake, kafka, weather, embed })
    }

    /// Reads and parses a TOML file (see [`RunConfig::from_toml`]).
    pub fn from_file(path: &Path, env: &Env) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        RunConfig::from_toml(&text, env)
    }

    /// The configuration of a run without `--config`: every default, with `env`'s overlays.
    pub fn defaults(env: &Env) -> Result<RunConfig, ConfigError> {
        RunConfig::from_toml("", env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::config::BatchConfig;

    fn parse(text: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::from_toml(text, &Env::empty())
    }

    const SNOWFLAKE: &str =
        "[snowflake]\naccount = \"a1\"\nuser = \"u\"\n[snowflake.auth]\ntype = \"password\"\npassword = { env = \"PW\" }\n";

    #[test]
    fn connector_tables_are_split_off_and_validated_with_their_key() {
        let c = parse("[batch]\nmax_records = 7\n[weaviate]\nurl = \"http://10.0.0.1:8080\"\n").expect("valid");
        assert_eq!(c.core.batch.max_records, 7);
        assert_eq!(c.weaviate.map(|w| w.url), Some("http://10.0.0.1:8080".to_owned()));
        assert!(parse("").expect("empty").weaviate.is_none());
        let c = parse("[kafka]\nbrokers = \"k:9092\"\n").expect("kafka");
        assert_eq!(c.kafka.brokers, "k:9092");
        let c = parse("[weather]\nevery = \"30m\"\nspacing_ms = 0\n").expect("weather");
        let w = c.weather.expect("[weather] kept");
        assert_eq!((w.every().expect("every").as_secs(), w.spacing_ms), (1800, 0));
        for (text, key) in [
            ("[batch]\nmax_records = \"x\"\n", "batch.max_records"),
            ("[batch]\nmax_recordz = 3\n", "batch.max_recordz"),
            ("[batch]\nlinger_ms = 0\n", "batch.linger_ms"),
            ("[kafka]\nbrokers = 3\n", "kafka.brokers"),
            ("[snowflake]\nuser = \"u\"\n", "snowflake.account"),
            ("[kafka]\nepoch_messages = 0\n", "kafka.epoch_messages"),
            ("[weaviate.batch]\nmax_records = \"x\"\n", "weaviate.batch.max_records"),
            ("[weaviate.batch]\nmax_records = 0\n", "weaviate.batch.max_records"),
            ("[weaviate.retry]\nmax_retries = 5000\n", "weaviate.retry.max_retries"),
            ("[weaviate]\nurll = \"x\"\n", "weaviate.urll"),
            ("[snowflake]\naccount = 1\n", "snowflake.account"),
            ("snowflake = 1\n", "snowflake"),
            ("[weather]\nevery = \"5s\"\n", "weather.every"),
            ("[weather]\nspacing = 1\n", "weather.spacing"),
            ("[weather.retry]\nmax_retries = 11\n", "weather.retry.max_retries"),
            ("[embed]\ndeadline_ms = 0\n", "embed.deadline_ms"),
            ("[embed]\nmode = \"maybe\"\n", "embed.mode"),
            ("[batch\n", "(syntax)"),
        ] {
            assert_eq!(parse(text).expect_err(text).key, key, "{text}");
        }
        let e = parse(&format!("{SNOWFLAKE}[snowflake.batch]\nmax_records = 0\n")).expect_err("zero");
        assert_eq!(e.key, "snowflake.batch.max_records");
        let e = parse("[bogus]\nx = 1\n").expect_err("unknown table");
        assert_eq!(e.key, "bogus");
        assert!(e.reason.contains("`state`, `weaviate`, `snowflake`, `kafka`, `weather`, `embed`"), "{}", e.reason);
    }

    #[test]
    fn the_shared_batch_table_layers_under_each_sink_table() {
        let c = parse(&format!(
            "[batch]\nmax_age_ms = 9000\nlinger_ms = 100\n[weaviate.batch]\nmax_records = 50\n{SNOWFLAKE}\
             [snowflake.batch]\nlinger_ms = 40\n"
        ))
        .expect("valid");
        assert_eq!(c.core.batch, BatchConfig { max_age_ms: 9000, linger_ms: 100, ..BatchConfig::default() });
        let w = c.weaviate.expect("weaviate");
        assert_eq!(w.batch, BatchConfig { max_records: 50, max_bytes: 8 << 20, max_age_ms: 9000, linger_ms: 100 });
        let s = c.snowflake.expect("snowflake");
        assert_eq!(s.batch, BatchConfig { max_records: 1000, max_bytes: 8 << 20, max_age_ms: 9000, linger_ms: 40 });
        // Without [batch], each sink keeps its own defaults.
        let w = parse("[weaviate]\n").expect("valid").weaviate.expect("weaviate");
        assert_eq!(w.batch, WeaviateConfig::DEFAULT_BATCH);
    }

    #[test]
    fn environment_overlays_come_from_the_injected_env() {
        let env = Env::from_pairs([
            ("MILLIONX_METRICS_LISTEN", "127.0.0.1:0"),
            ("MILLIONX_MODEL_DIR", "/models/minilm"),
            ("WEAVIATE_URL", "http://10.9.9.9:8080"),
        ]);
        let c = RunConfig::from_toml("[metrics]\nlisten = \"127.0.0.1:9999\"\n[embed]\nmodel_dir = \"/x\"\n", &env)
            .expect("valid");
        assert_eq!(c.core.metrics.listen, "127.0.0.1:0");
        assert_eq!(c.embed.model_dir.as_deref(), Some(Path::new("/models/minilm")));
        let c = RunConfig::defaults(&env).expect("defaults");
        assert_eq!(c.embed.model_dir.as_deref(), Some(Path::new("/models/minilm")));
        assert!(c.weaviate.is_none(), "WEAVIATE_URL applies through WeaviateConfig::from_env, not as a table");
        assert_eq!(WeaviateConfig::from_env(&env).url, "http://10.9.9.9:8080");
        let bad = Env::from_pairs([("MILLIONX_METRICS_LISTEN", "localhost:1")]);
        assert_eq!(RunConfig::defaults(&bad).expect_err("not IP:port").key, "metrics.listen");
        let c = RunConfig::defaults(&Env::empty()).expect("defaults");
        assert_eq!((c.core.metrics.listen.as_str(), c.embed.model_dir), ("127.0.0.1:9464", None));
    }
}
