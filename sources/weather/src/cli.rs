//! `millionx weather ...`: clap arguments and the entry points the binary calls.
//!
//! Exit codes: 0 success; 1 a city failed after retries (`fetch --once`), a reading was rejected
//! (`normalize`) or the sink failed; 2 the run could not start (bad config, no API key, unreadable file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use millionx_dataflow::config::{
    apply_metrics_env, from_toml_text, from_toml_value, ConfigError, ConnectorConfig, Env, Shared,
};
use millionx_dataflow::City;
use millionx_kafka_client::KafkaConfig;
use millionx_metrics::MetricsConfig;

use crate::client::ReqwestTransport;
use crate::config::{ApiKey, WeatherConfig};
use crate::fetcher::Fetcher;
use crate::kafka::{newest_in_topic, KafkaSink};
use crate::owm::{normalize, Checks, Units};
use crate::schedule::{parse_every, run_schedule, runtime, Schedule};
use crate::sink::{last_published_in, JsonLinesSink, OutTarget};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a city failed after retries, a reading was rejected, or the sink failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the run could not start (configuration, API key, input file).
pub const EXIT_CONFIG: u8 = 2;

/// `millionx weather <command>`.
#[derive(Debug, clap::Args)]
pub struct WeatherArgs {
    /// The weather subcommand.
    #[command(subcommand)]
    pub command: WeatherCommand,
}

/// Weather subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WeatherCommand {
    /// Fetch current weather from OpenWeatherMap for the configured cities.
    Fetch(FetchArgs),
    /// Normalise one saved /data/2.5/weather response and print the reading (or why it is rejected).
    Normalize(NormalizeArgs),
}

/// `weather fetch (--once | --every DURATION) [--out FILE|- | --kafka-brokers HOST:PORT [--topic NAME]]
/// [--base-url URL] [--config FILE] [--metrics-listen IP:PORT | --no-metrics]`.
/// The API key comes from `OPENWEATHER_API_KEY` or the file named by `OPENWEATHER_API_KEY_FILE`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("schedule").required(true).args(["once", "every"])))]
pub struct FetchArgs {
    /// One round, then exit (for a CronJob); exit 1 if any city failed after retries.
    #[arg(long)]
    pub once: bool,
    /// A round every DURATION (e.g. `1h`, `30m`; at least 1m) until SIGINT or SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    pub every: Option<Duration>,
    /// Where readings go: a JSON Lines file (appended) or `-` for stdout [default: -].
    #[arg(long, value_name = "FILE|-", conflicts_with = "kafka_brokers")]
    pub out: Option<OutTarget>,
    /// Publish to Kafka instead (bootstrap servers, HOST:PORT[,HOST:PORT…]; overrides `kafka.brokers`): one
    /// message per reading, key = city, delivery awaited; a watermark marker per partition after each round.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_brokers: Option<String>,
    /// Kafka topic (overrides `kafka.weather_topic`) [default: context.weather].
    #[arg(long, value_name = "NAME", requires = "kafka_brokers")]
    pub topic: Option<String>,
    /// `--metrics-listen IP:PORT` / `--no-metrics` (override `[metrics]`): /metrics is served during
    /// `--every` (a `--once` run logs its counts instead).
    #[command(flatten)]
    pub metrics: millionx_metrics::MetricsArgs,
    /// API root (overrides `weather.base_url`), e.g. `http://127.0.0.1:8080` for a local replay server.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// TOML file with a `[weather]` table (see the crate docs).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `weather normalize --city NAME --units metric|standard FILE`.
#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// The city the response was requested for (one of the 8, exact spelling, e.g. `Sylhet`).
    #[arg(long, value_name = "NAME", value_parser = parse_city)]
    pub city: City,
    /// The `units` the response was requested with (`standard` = Kelvin, OWM's default).
    #[arg(long, value_enum)]
    pub units: Units,
    /// The saved response body.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Parses a city name exactly as records spell it.
pub fn parse_city(s: &str) -> Result<City, String> {
    City::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = City::ALL.iter().map(|c| c.name()).collect();
        format!("unknown city `{s}`; expected one of {}", names.join(", "))
    })
}

/// Resolves on SIGINT or SIGTERM (or never, if the handlers cannot be installed).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("weather: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// The tables of the `--config` file `weather fetch` reads, each parsed once from the one parsed document.
#[derive(Clone, Debug, Default)]
pub struct FileTables {
    /// `[weather]` (defaults without a file; required in a file).
    pub weather: WeatherConfig,
    /// `[kafka]` (defaults when absent).
    pub kafka: KafkaConfig,
    /// `[metrics]` (defaults when absent), with `MILLIONX_METRICS_LISTEN` applied.
    pub metrics: MetricsConfig,
}

/// Reads `path` (or takes the defaults without one) through [`ConnectorConfig::load`] with `env` as the
/// environment overlay. Errors name the key (`weather.every`, `kafka.brokers`, `metrics.listen`, ...).
pub fn file_tables(path: Option<&Path>, env: &Env) -> Result<FileTables, ConfigError> {
    let mut metrics = MetricsConfig::default();
    let Some(path) = path else {
        apply_metrics_env(&mut metrics, env);
        return Ok(FileTables { metrics, ..FileTables::default() });
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
    let mut doc: toml::Table = from_toml_text(&text)?;
    let weather = doc
        .remove(WeatherConfig::TABLE)
        .ok_or_else(|| ConfigError::new("weather", "the file has no [weather] table"))?;
    let weather = WeatherConfig::load(weather, &Shared::default(), env)?;
    let kafka = KafkaConfig::from_table(doc.remove(KafkaConfig::TABLE), env)?;
    if let Some(v) = doc.remove("metrics") {
        metrics = from_toml_value(v).map_err(|e| e.within("metrics"))?;
    }
    apply_metrics_env(&mut metrics, env);
    metrics.validate().map_err(|e| ConfigError::new("metrics.listen", e.to_string()))?;
    Ok(FileTables { weather, kafka, metrics })
}

/// The configuration for `fetch`: the file's `[weather]` with `--base-url` applied, validated (errors name
/// `--base-url` when the flag is at fault).
pub fn fetch_config(args: &FetchArgs, mut config: WeatherConfig) -> Result<WeatherConfig, ConfigError> {
    if let Some(url) = &args.base_url {
        config.base_url = url.clone();
    }
    config.validate().map_err(|e| {
        if args.base_url.is_some() && e.key == "weather.base_url" {
            ConfigError::new("--base-url", e.reason)
        } else {
            e
        }
    })?;
    Ok(config)
}

/// The Kafka settings of `weather fetch --kafka-brokers`: the file's `[kafka]` table with `--kafka-brokers`
/// and `--topic` applied. Errors name the flag or key.
pub fn fetch_kafka_config(args: &FetchArgs, mut kafka: KafkaConfig) -> Result<KafkaConfig, ConfigError> {
    if let Some(b) = &args.kafka_brokers {
        kafka.brokers = b.clone();
    }
    if let Some(t) = &args.topic {
        kafka.weather_topic = t.clone();
    }
    kafka.validate().map_err(|e| {
        let key = match e.key.as_str() {
            "kafka.brokers" if args.kafka_brokers.is_some() => "--kafka-brokers".to_owned(),
            "kafka.weather_topic" if args.topic.is_some() => "--topic".to_owned(),
            other => other.to_owned(),
        };
        ConfigError { key, reason: e.reason }
    })?;
    Ok(kafka)
}

/// The `/metrics` settings of `weather fetch`: the file's `[metrics]` and `MILLIONX_METRICS_LISTEN`
/// ([`file_tables`]), then the flags (as `run` applies them).
fn fetch_metrics_config(args: &FetchArgs, config: MetricsConfig) -> Result<MetricsConfig, ConfigError> {
    args.metrics.apply(config).map_err(|e| match e {
        millionx_metrics::MetricsError::Config { key, reason } => ConfigError { key, reason },
        other => ConfigError::new("metrics", other.to_string()),
    })
}

/// Where a fetch run publishes.
enum Output {
    Stdout,
    File(PathBuf),
    Kafka(Box<KafkaConfig>),
}

/// `weather fetch`: see [`FetchArgs`]. Reads the API key from the environment. De-duplication across runs:
/// with `--out FILE` the file's newest reading per city, with `--kafka-brokers` the topic's (read back at
/// start, see [`crate::kafka`]), is not published again. With `--every`, `/metrics` is served (the
/// `[metrics]` table, `MILLIONX_METRICS_LISTEN`, `--metrics-listen`/`--no-metrics`). Exit codes as in the
/// module docs; a Kafka delivery failure is exit 1.
pub fn run_fetch(args: FetchArgs) -> ExitCode {
    let env = Env::process();
    let FileTables { weather, kafka, metrics: metrics_config } = match file_tables(args.config.as_deref(), &env) {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    let config = match fetch_config(&args, weather) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let output = match (&args.kafka_brokers, &args.out) {
        (Some(_), _) => match fetch_kafka_config(&args, kafka) {
            Ok(k) => Output::Kafka(Box::new(k)),
            Err(e) => return config_error(&e),
        },
        (None, Some(OutTarget::File(p))) => Output::File(p.clone()),
        (None, _) => Output::Stdout,
    };
    let metrics_config = match fetch_metrics_config(&args, metrics_config) {
        Ok(m) => m,
        Err(e) => return config_error(&e),
    };
    let key = match ApiKey::from_env(&env) {
        Ok(k) => k,
        Err(e) => return config_error(&e),
    };
    let transport = match ReqwestTransport::new(&config) {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    let fetcher = match Fetcher::new(config, key, transport) {
        Ok(f) => f,
        Err(e) => return config_error(&e),
    };
    let schedule = match args.every {
        Some(period) => Schedule::Every(period),
        None => Schedule::Once,
    };
    // /metrics for the long-running loop; kept alive until the loop ends.
    let (fetcher, _server) = match schedule {
        Schedule::Every(_) => match millionx_metrics::start(&metrics_config) {
            Ok((metrics, server)) => {
                if let Some(s) = &server {
                    eprintln!("metrics: serving http://{}/metrics", s.local_addr());
                }
                (fetcher.with_metrics(metrics), server)
            }
            Err(e) => {
                eprintln!("weather: metrics: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        Schedule::Once => (fetcher, None),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weather: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = match output {
        Output::Stdout => {
            let mut fetcher = fetcher;
            rt.block_on(run_schedule(&mut fetcher, &mut JsonLinesSink::stdout(), schedule, shutdown_signal()))
        }
        Output::File(path) => {
            let seeded = last_published_in(&path).and_then(|last| Ok((last, JsonLinesSink::append(&path)?)));
            let (last, mut sink) = match seeded {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("weather: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let mut fetcher = fetcher.with_last_published(last);
            rt.block_on(run_schedule(&mut fetcher, &mut sink, schedule, shutdown_signal()))
        }
        Output::Kafka(kafka) => {
            let started = KafkaSink::connect(&kafka).and_then(|sink| Ok((newest_in_topic(&kafka)?, sink)));
            let (last, mut sink) = match started {
                Ok(v) => v,
                Err(e) => return config_error(&e),
            };
            let mut fetcher = fetcher.with_last_published(last);
            rt.block_on(run_schedule(&mut fetcher, &mut sink, schedule, shutdown_signal()))
        }
    };
    match result {
        Err(e) => {
            eprintln!("weather: {e}");
            ExitCode::from(EXIT_FAILED)
        }
        Ok(s) if schedule == Schedule::Once && !s.last_round_ok => ExitCode::from(EXIT_FAILED),
        Ok(_) => ExitCode::from(EXIT_OK),
    }
}

/// `weather normalize`: prints the reading as one JSON line on stdout (exit 0), or `rejected: <reason>:
/// <detail>` on stderr (exit 1). Uses the default checks (25 km).
pub fn run_normalize(args: NormalizeArgs) -> ExitCode {
    let body = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("weather: cannot read {}: {e}", args.file.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match normalize(&body, args.city, args.units, &Checks::default()) {
        Ok(reading) => {
            println!("{}", reading.to_json());
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("rejected: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `weather <command>`: dispatches to [`run_fetch`] or [`run_normalize`].
pub fn run_weather(args: WeatherArgs) -> ExitCode {
    match args.command {
        WeatherCommand::Fetch(a) => run_fetch(a),
        WeatherCommand::Normalize(a) => run_normalize(a),
    }
}
