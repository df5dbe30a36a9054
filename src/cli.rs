//! Command line: `run`, `validate`, `gen`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use millionx_dataflow::config::{ConnectorConfig as _, Env};
use millionx_dataflow::StreamKind;
use millionx_operators::anonymise::DEVELOPMENT_KEY;

use crate::config::RunConfig;
use crate::gen::GenArgs;
use crate::summary::Summary;
use millionx_graph::{latency_histogram, run_worker, start_live_weather, Input, Services, Settings};
use millionx_sink_snowflake::SnowflakeSink;
use millionx_source_kafka::{KafkaArgs, ProduceArgs, SourceControl};

/// MillionX stream processor.
#[derive(Parser, Debug)]
#[command(name = "millionx", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipeline over JSON Lines input (default: the committed sample) into local files.
    Run(RunArgs),
    /// Check a configuration file and exit (0 when valid).
    Validate(ValidateArgs),
    /// Generate reference input (social.jsonl, market.jsonl, weather.jsonl).
    Gen(GenArgs),
    /// Fetch OpenWeatherMap readings for the 8 cities, or normalise a saved response.
    Weather(millionx_source_weather::WeatherArgs),
    /// Weaviate schema management.
    Weaviate(WeaviateArgs),
    /// Snowflake schema management.
    Snowflake(SnowflakeArgs),
    /// Print the all-MiniLM-L6-v2 embedding of each text as a JSON array, one per line.
    Embed(millionx_embed::EmbedArgs),
    /// Embed a query and print the nearest stored objects (Weaviate when configured, else `out/weaviate`).
    Search(crate::search::SearchArgs),
    /// Load a JSON Lines data set (social.jsonl, market.jsonl, weather.jsonl) into the three Kafka topics.
    Produce(ProduceArgs),
}

/// Where `millionx run` reads from.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// JSON Lines files in `--input`.
    #[default]
    File,
    /// The Kafka topics of the `[kafka]` table / `--brokers`.
    Kafka,
}

/// `millionx snowflake`.
#[derive(Args, Debug, Clone)]
pub struct SnowflakeArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: SnowflakeCommand,
}

/// `millionx snowflake` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum SnowflakeCommand {
    /// Print (default) or apply `ops/snowflake/schema-setup.sql`; applying twice is harmless.
    Schema {
        /// Schema options.
        #[command(flatten)]
        args: millionx_sink_snowflake::SchemaArgs,
        /// Run configuration whose `[snowflake]` table names the account.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `millionx run`. Timely's cluster flags are accepted as timely defines them (`-w -n -p -h`).
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Folder with social.jsonl, market.jsonl, weather.jsonl [default: data/sample, or the config's].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output folder [default: out, or the config's].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TOML configuration file (see dataflow/src/config.rs for every key).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Worker threads per process.
    #[arg(short = 'w', long = "workers", default_value_t = 1)]
    pub workers: usize,
    /// Number of processes.
    #[arg(short = 'n', long = "processes", default_value_t = 1)]
    pub processes: usize,
    /// Index of this process (0-based).
    #[arg(short = 'p', long = "process", default_value_t = 0)]
    pub process: usize,
    /// Hostfile: one host:port per process.
    #[arg(short = 'h', long = "hostfile")]
    pub hostfile: Option<PathBuf>,
    /// Services to write to instead of files (repeatable or comma separated): `snowflake` (the four
    /// tables, per the config's `[snowflake]` table) and/or `weaviate` (the two classes, per `[weaviate]`,
    /// else `$WEAVIATE_URL`). Default: files only. Dead letters and quality windows always go to files.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub sink: Vec<SinkChoice>,
    /// Embed posts and orders with all-MiniLM-L6-v2 (model from `embed.model_dir`, `$MILLIONX_MODEL_DIR` or the
    /// cache that `ops/models/fetch-minilm.sh` fills): `auto` = on when the model loads, else one notice and no
    /// vectors; `on` = a missing model is an error; `off`. A bare `--embed` means `on`. Overrides `embed.mode`
    /// [default: auto].
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, default_missing_value = "on")]
    pub embed: Option<millionx_embed::EmbedMode>,
    /// Embedding backend: `auto` = OpenVINO when its library (ops/models/fetch-openvino.sh or
    /// `$MILLIONX_OPENVINO_LIB`) and `model.onnx` (ops/models/build-minilm-onnx.sh) are present, else candle;
    /// `openvino` = their absence is an error; `candle`. Overrides `embed.backend` [default: auto].
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub embed_backend: Option<millionx_embed::EmbedBackend>,
    /// Longest a record waits for its vector before it goes out without one, ms (1–3,600,000). It bounds how
    /// long embedding can hold the pipeline's frontier back; see operators/embed/CONTEXT.md for the choice.
    /// Overrides `embed.deadline_ms` [default: 60000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub embed_deadline_ms: Option<u64>,
    /// Write the read→sink latency distribution (HdrHistogram percentile format, ms) to this file.
    #[arg(long)]
    pub latency_report: Option<PathBuf>,
    /// `--metrics-listen IP:PORT` / `--no-metrics` (override `[metrics]`).
    #[command(flatten)]
    pub metrics: millionx_metrics::MetricsArgs,
    /// Keep serving /metrics this many seconds after the run ends (0–86400), so a scraper sees the final
    /// counts of a finite run (file replay, tests, the end-to-end Prometheus check).
    #[arg(long, value_name = "SECS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub metrics_linger: u64,
    /// Input: JSON Lines files or Kafka.
    #[arg(long, value_enum, default_value_t = SourceKind::File)]
    pub source: SourceKind,
    /// Kafka settings (with `--source kafka`).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Live weather (`--weather owm`, `--weather-every`, `--weather-base-url`).
    #[command(flatten)]
    pub live_weather: LiveWeatherArgs,
    /// Durable state of a Kafka-fed run (`--state-dir`, `--fresh-state`, `--no-state`).
    #[command(flatten)]
    pub state: crate::resume::StateArgs,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Where the weather stream of `millionx run` comes from.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeatherSourceKind {
    /// The input's weather: `weather.jsonl` (file source) or the `context.weather` topic (Kafka source).
    #[default]
    Input,
    /// The live OpenWeatherMap fetcher (`[weather]` table; API key from `OPENWEATHER_API_KEY` or
    /// `OPENWEATHER_API_KEY_FILE`), one round every `weather.every`.
    Owm,
}

/// `run` flags of the live weather feed.
#[derive(Args, Debug, Clone, Default)]
pub struct LiveWeatherArgs {
    /// Weather stream: `input` (weather.jsonl or the Kafka topic) or `owm` (live fetcher; with a file source
    /// the run ends once the files are done and a round covers their newest record).
    #[arg(long = "weather", id = "weather", value_enum, default_value_t = WeatherSourceKind::Input)]
    pub source: WeatherSourceKind,
    /// Round period with `--weather owm` (overrides `weather.every`; at least 1m) [default: 1h].
    #[arg(long = "weather-every", id = "weather_every", value_name = "DURATION", value_parser = millionx_source_weather::parse_every)]
    pub every: Option<std::time::Duration>,
    /// API root with `--weather owm` (overrides `weather.base_url`), e.g. a local replay server.
    #[arg(long = "weather-base-url", id = "weather_base_url", value_name = "URL")]
    pub base_url: Option<String>,
}

/// The live feed's settings for `--weather owm`: the `[weather]` table with the flags applied, and the API
/// key from `env`. Errors name the flag or key (`--weather-base-url`, `weather.every`, `OPENWEATHER_API_KEY`,
/// ...).
pub fn live_weather_config(
    args: &LiveWeatherArgs,
    table: Option<&millionx_source_weather::WeatherConfig>,
    env: &Env,
) -> Result<(millionx_source_weather::WeatherConfig, std::time::Duration, millionx_source_weather::ApiKey), String> {
    let mut config = table.cloned().unwrap_or_default();
    if let Some(url) = &args.base_url {
        config.base_url = url.clone();
    }
    config.validate().map_err(|e| match e.key.as_str() {
        "weather.base_url" if args.base_url.is_some() => format!("--weather-base-url: {}", e.reason),
        _ => e.to_string(),
    })?;
    let every = match args.every {
        Some(d) => d,
        None => config.every().map_err(|e| e.to_string())?,
    };
    let key = millionx_source_weather::ApiKey::from_env(env).map_err(|e| format!("--weather owm: {e}"))?;
    Ok((config, every, key))
}

/// Prints the live feed's report under the run summary and adds it to `summary` as `weather_feed`.
fn report_feed(feed: &millionx_source_weather::live::FeedReport, summary: &mut serde_json::Value) {
    let failures: Vec<serde_json::Value> = feed
        .failures
        .iter()
        .map(
            |(round, city, reason)| serde_json::json!({"round": round, "city": city.name(), "reason": reason.as_str()}),
        )
        .collect();
    println!(
        "weather feed (owm): {} round(s), {} reading(s), {} failed city fetch(es); ended: {}",
        feed.rounds,
        feed.readings,
        feed.failures.len(),
        feed.ended
    );
    for (round, city, reason) in &feed.failures {
        println!("  round {round}: {} failed ({})", city.name(), reason.as_str());
    }
    if let Some(obj) = summary.as_object_mut() {
        obj.insert(
            "weather_feed".to_owned(),
            serde_json::json!({
                "rounds": feed.rounds,
                "readings": feed.readings,
                "failures": failures,
                "last_watermark_ms": feed.last_watermark_ms,
                "ended": feed.ended,
            }),
        );
    }
}

/// Where record sinks write.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkChoice {
    /// Local batch files under `--out` (the embedded default).
    File,
    /// Weaviate objects to a Weaviate server.
    Weaviate,
    /// Snowflake rows to Snowflake (or the fakesnow emulator).
    Snowflake,
}

/// `millionx weaviate`.
#[derive(Args, Debug, Clone)]
pub struct WeaviateArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: WeaviateCommand,
}

/// `millionx weaviate` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum WeaviateCommand {
    /// Create, verify or recreate the SocialPost and MarketOrder classes.
    Schema {
        /// Schema options.
        #[command(flatten)]
        args: millionx_sink_weaviate::SchemaArgs,
        /// Run configuration whose `[weaviate]` table names the server.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `millionx validate`.
#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Entry point: parses argv and runs the command. Exit codes: 0 success, 1 run failure, 2 usage or
/// configuration error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Usage(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            Err(Failure::Run(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(1)
            }
        },
        Command::Produce(args) => match millionx_source_kafka::run_produce(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Validate(args) => match RunConfig::from_file(&args.config, &Env::process()) {
            Ok(_) => {
                println!("{}: valid", args.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Weather(args) => millionx_source_weather::run_weather(args),
        Command::Embed(args) => match millionx_embed::run_embed(&args, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Search(args) => {
            let weaviate = match crate::search::search_server(&args) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let (mut out, mut note) = (std::io::stdout(), std::io::stderr());
            match crate::search::run_search(&args, weaviate.as_ref(), &mut out, &mut note) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Snowflake(SnowflakeArgs { command: SnowflakeCommand::Schema { args, config } }) => {
            let config = match config.as_deref().map(|p| RunConfig::from_file(p, &Env::process())).transpose() {
                Ok(c) => c.and_then(|c| c.snowflake),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match millionx_sink_snowflake::run_schema(&args, config.as_ref(), std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Weaviate(WeaviateArgs { command: WeaviateCommand::Schema { args, config } }) => {
            let config = match config.as_deref().map(|p| RunConfig::from_file(p, &Env::process())).transpose() {
                Ok(c) => c.and_then(|c| c.weaviate),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            millionx_sink_weaviate::run_schema(&args, config.as_ref())
        }
        Command::Gen(args) => match crate::gen::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum Failure {
    /// Bad flags, configuration or input files: nothing ran.
    Usage(String),
    /// The run started and failed.
    Run(String),
}

/// The HMAC key: `MILLIONX_PII_KEY` in `env`, else the file named by `MILLIONX_PII_KEY_FILE`, else the
/// development key (with a warning). Errors: the key file cannot be read or is empty.
pub fn pii_key(env: &Env) -> Result<Vec<u8>, String> {
    if let Some(k) = env.get("MILLIONX_PII_KEY") {
        return Ok(k.into_bytes());
    }
    if let Some(path) = env.get("MILLIONX_PII_KEY_FILE") {
        let k = std::fs::read(&path).map_err(|e| format!("MILLIONX_PII_KEY_FILE ({path}): {e}"))?;
        let k = k.trim_ascii().to_vec();
        if k.is_empty() {
            return Err(format!("MILLIONX_PII_KEY_FILE ({path}): the file is empty"));
        }
        return Ok(k);
    }
    eprintln!("warning: MILLIONX_PII_KEY is not set; using the development key (hashes are not secret)");
    Ok(DEVELOPMENT_KEY.to_vec())
}

fn timely_config(a: &RunArgs) -> Result<timely::Config, String> {
    if a.workers == 0 {
        return Err("-w/--workers: must be at least 1".into());
    }
    if a.processes == 0 || a.process >= a.processes {
        return Err(format!("-p/--process {} must be below -n/--processes {}", a.process, a.processes));
    }
    let mut argv = vec![
        "-w".to_owned(),
        a.workers.to_string(),
        "-n".to_owned(),
        a.processes.to_string(),
        "-p".to_owned(),
        a.process.to_string(),
    ];
    if let Some(h) = &a.hostfile {
        std::fs::File::open(h).map_err(|e| format!("-h/--hostfile {}: {e}", h.display()))?;
        argv.push("-h".to_owned());
        argv.push(h.display().to_string());
    }
    timely::Config::from_args(argv.into_iter()).map_err(|e| format!("timely flags: {e}"))
}

/// Removes the sink folders and summary a previous run left, so the output holds exactly this run's files.
fn clean_outputs(out: &Path) -> Result<(), String> {
    for sub in ["snowflake", "weaviate", "dlq", "quality"] {
        let p = out.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| format!("--out: cannot clear {}: {e}", p.display()))?;
        }
    }
    let summaries = std::fs::read_dir(out).into_iter().flatten().flatten().map(|e| e.path());
    for p in summaries.filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_summary_name)) {
        std::fs::remove_file(&p).map_err(|e| format!("--out: cannot clear {}: {e}", p.display()))?;
    }
    std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))
}

/// `summary.json` or `summary-p<N>.json` (one per process of a `-n` run).
fn is_summary_name(name: &str) -> bool {
    name == "summary.json"
        || name
            .strip_prefix("summary-p")
            .and_then(|r| r.strip_suffix(".json"))
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Runs the pipeline as `args` say.
///
/// Errors: [`Failure::Usage`] for flags, configuration, key or unreadable input; [`Failure::Run`] when a
/// worker or sink fails.
pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let env = Env::process();
    let run_config = match &args.config {
        Some(p) => RunConfig::from_file(p, &env),
        None => RunConfig::defaults(&env),
    }
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut config = run_config.core.clone();
    let mut kafka = run_config.kafka.clone();
    let weaviate = match args.sink.contains(&SinkChoice::Weaviate) {
        false => None,
        true => {
            let w =
                run_config.weaviate.clone().unwrap_or_else(|| millionx_sink_weaviate::WeaviateConfig::from_env(&env));
            w.validate().map_err(|e| Failure::Usage(format!("weaviate: {e}")))?;
            Some(w)
        }
    };
    if let Some(i) = &args.input {
        config.input.dir = i.clone();
    }
    if let Some(o) = &args.out {
        config.output.dir = o.clone();
    }
    // `--metrics-listen` / `--no-metrics` override the file and `MILLIONX_METRICS_LISTEN` (applied by RunConfig).
    config.metrics = args.metrics.apply(config.metrics.clone()).map_err(|e| Failure::Usage(e.to_string()))?;
    config.validate().map_err(|e| Failure::Usage(e.to_string()))?;
    let timely_cfg = timely_config(args).map_err(Failure::Usage)?;
    // First SIGINT/SIGTERM: stop reading, drain, flush (Kafka: commit), exit 0. A second one exits at once (1).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| Failure::Run(format!("installing the signal handler: {e}")))?;
    }
    let mut input = match args.source {
        SourceKind::File => {
            let live = args.live_weather.source == WeatherSourceKind::Owm;
            for stream in StreamKind::ALL.into_iter().filter(|s| !(live && *s == StreamKind::Weather)) {
                millionx_source_file::check_readable(&config.input.dir.join(stream.file_name()))
                    .map_err(|e| Failure::Usage(e.to_string()))?;
            }
            Input::File
        }
        SourceKind::Kafka => {
            args.kafka.apply(&mut kafka).map_err(|e| Failure::Usage(e.to_string()))?;
            let checkpoint_epochs = if args.state.no_state { 0 } else { config.state.checkpoint_epochs };
            let control = SourceControl { stop: Arc::clone(&stop), checkpoint_epochs, ..SourceControl::default() };
            Input::Kafka { config: Box::new(kafka), control }
        }
    };
    let pii_key = pii_key(&env).map_err(Failure::Usage)?;

    let snowflake = match args.sink.contains(&SinkChoice::Snowflake) {
        false => None,
        true => {
            let cfg = run_config.snowflake.as_ref().ok_or_else(|| {
                Failure::Usage("--sink snowflake: the --config file has no [snowflake] table".to_owned())
            })?;
            Some(Arc::new(SnowflakeSink::connect(cfg).map_err(|e| Failure::Usage(e.to_string()))?))
        }
    };
    let (metrics, server) = millionx_metrics::start(&config.metrics).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(server) = &server {
        eprintln!("metrics: serving http://{}/metrics", server.local_addr());
    }
    if let Input::Kafka { control, .. } = &mut input {
        control.metrics = Some(metrics.clone());
    }
    let (embed, embed_config, embed_stats) = start_embedding(args, &run_config.embed, &metrics)?;
    let live_weather = match args.live_weather.source {
        WeatherSourceKind::Input => None,
        WeatherSourceKind::Owm => {
            let (wcfg, every, key) =
                live_weather_config(&args.live_weather, run_config.weather.as_ref(), &env).map_err(Failure::Usage)?;
            Some(start_live_weather(wcfg, every, key, &input, args.process == 0, &metrics).map_err(Failure::Usage)?)
        }
    };
    // Last start-up step: a run that cannot start leaves the previous run's output in place. A Kafka run
    // with state keeps what its checkpoints cover and removes only what it will write again.
    let state = match &input {
        Input::Kafka { config: kafka, .. } => crate::resume::open(
            &args.state,
            &config,
            kafka,
            (args.process, args.processes, args.workers),
            live_weather.is_some(),
        )
        .map_err(Failure::Usage)?,
        Input::File => None,
    };
    if state.is_none() && args.process == 0 {
        clean_outputs(&config.output.dir).map_err(Failure::Usage)?;
    }
    match state.as_ref().map(|s| s.resume) {
        Some(Some(b)) => eprintln!("state: resuming from the checkpoint at epoch {b}"),
        Some(None) => eprintln!(
            "state: no checkpoint yet: starting with empty operator state at the consumer group's committed \
             offsets (none are committed before the first checkpoint); earlier output in --out is removed"
        ),
        None => {}
    }
    let kafka_dlq = match &input {
        Input::Kafka { config, .. } if config.produce_dlq => Some(config.clone()),
        _ => None,
    };
    let settings = Settings {
        config: config.clone(),
        pii_key,
        input,
        services: Services { snowflake, weaviate, kafka_dlq },
        embed: embed.clone(),
        embed_config,
        embed_stats: Arc::clone(&embed_stats),
        metrics,
        live_weather,
        stop: Arc::clone(&stop),
        state: state.clone(),
    };
    let errors = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let worker_errors = Arc::clone(&errors);
    let guards = timely::execute(timely_cfg, move |worker| run_worker(worker, &settings, Arc::clone(&worker_errors)))
        .map_err(|e| Failure::Run(format!("starting workers: {e}")))?;
    let mut reports = Vec::new();
    for result in guards.join() {
        match result {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => return Err(Failure::Run(e)),
            Err(e) => return Err(Failure::Run(format!("worker failed: {e}"))),
        }
    }
    let elapsed = started.elapsed();
    let mut latency = latency_histogram();
    for r in &reports {
        latency.add(&r.latency).map_err(|e| Failure::Run(format!("merging latency histograms: {e}")))?;
    }
    let summary = Summary::from_reports(&reports, elapsed, &latency);
    print!("{}", summary.render());
    let embeddings =
        embed.as_ref().map(|pool| embedding_summary(&embed_stats, &pool.stats(), pool.encoder().runtime()));
    if let Some((line, _)) = &embeddings {
        println!("{line}");
    }
    let name = if args.processes > 1 { format!("summary-p{}.json", args.process) } else { "summary.json".to_owned() };
    let mut summary = serde_json::to_value(&summary).map_err(|e| Failure::Run(e.to_string()))?;
    if let Some(feed) = reports.iter().find_map(|r| r.weather_feed.as_ref()) {
        report_feed(feed, &mut summary);
    }
    // A run stopped by SIGINT/SIGTERM drained and flushed what it had read; the rest is read by the next run.
    let signalled = stop.load(std::sync::atomic::Ordering::SeqCst);
    if signalled {
        println!(
            "stopped by SIGINT/SIGTERM: reading stopped, everything read was flushed (Kafka with checkpoints: \
             offsets committed up to the last checkpoint, from which the next run replays)"
        );
    }
    summary["stopped_by_signal"] = serde_json::Value::Bool(signalled);
    if let Some((_, json)) = embeddings {
        summary["embeddings"] = json;
    }
    if let Some((line, json)) = crate::resume::summary_line(&reports, state.as_ref()) {
        println!("{line}");
        summary["state"] = json;
    }
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Failure::Run(e.to_string()))?;
    std::fs::write(config.output.dir.join(&name), json).map_err(|e| Failure::Run(format!("writing {name}: {e}")))?;
    if let Some(path) = &args.latency_report {
        write_hgrm(&latency, path).map_err(|e| Failure::Run(format!("--latency-report {}: {e}", path.display())))?;
    }
    if server.is_some() && args.metrics_linger > 0 {
        eprintln!("metrics: run finished; serving /metrics for {} s more (--metrics-linger)", args.metrics_linger);
        std::thread::sleep(std::time::Duration::from_secs(args.metrics_linger));
    }
    drop(server);
    Ok(())
}

/// The embedding pool (`None`: embeddings off), operator settings and shared counters of a run: the `[embed]`
/// table with `--embed` and `--embed-deadline-ms` over `mode` and `deadline_ms`; batch latencies feed
/// `millionx_embedding_duration_seconds`. Errors ([`Failure::Usage`]): mode `on` without a usable model, a
/// bad `embed.model_dir` / `MILLIONX_MODEL_DIR`, or a thread that cannot start.
fn start_embedding(
    args: &RunArgs,
    table: &millionx_embed::EmbedTable,
    metrics: &millionx_metrics::Metrics,
) -> Result<(Option<millionx_embed::EmbedPool>, millionx_embed::EmbedConfig, Arc<millionx_embed::EmbedStats>), Failure>
{
    let mut embed_config = table.operator();
    if let Some(ms) = args.embed_deadline_ms {
        embed_config.deadline = std::time::Duration::from_millis(ms);
    }
    let m = metrics.clone();
    let observer: millionx_embed::BatchObserver = Arc::new(move |took, _texts| m.embedding_duration(took));
    let mode = args.embed.unwrap_or(table.mode);
    let backend = args.embed_backend.unwrap_or(table.backend);
    let pool = millionx_embed::start_for_run(
        mode,
        backend,
        table.model_dir.as_deref().map(|d| (d, table.model_dir_key)),
        table.pool(),
        Some(observer),
    )
    .map_err(|e| Failure::Usage(format!("{}: {e}", if args.embed.is_some() { "--embed" } else { "embed" })))?;
    if let Some(p) = &pool {
        let runtime = p.encoder().runtime();
        metrics.embedding_backend(runtime.backend, runtime.precision.as_str());
    }
    Ok((pool, embed_config, Arc::new(millionx_embed::EmbedStats::default())))
}

/// What embedding did in a run, as one line and as `summary.json`'s `embeddings`: backend and precision,
/// records embedded, coverage, late (deadline), cache hits, batches and the batch latency p95 (ms).
fn embedding_summary(
    stats: &millionx_embed::EmbedStats,
    pool: &millionx_embed::PoolStats,
    runtime: millionx_embed::Runtime,
) -> (String, serde_json::Value) {
    use std::sync::atomic::Ordering::Relaxed;
    let json = serde_json::json!({
        "backend": runtime.backend,
        "precision": runtime.precision.as_str(),
        "records_in": stats.records_in.load(Relaxed),
        "embedded": stats.embedded.load(Relaxed),
        "coverage": stats.coverage(),
        "past_deadline": stats.late.load(Relaxed),
        "failed": stats.failed.load(Relaxed),
        "batches": pool.batches,
        "batch_p95_ms": pool.batch_p95_us as f64 / 1000.0,
        "cache_hits": pool.cache_hits,
    });
    let line = format!(
        "embeddings: {runtime}, {} of {} records embedded (coverage {:.1}%), {} past the deadline, {} failed; {} texts through \
         the model in {} batches (p95 {:.0} ms), {} cache hits, {} coalesced",
        stats.embedded.load(Relaxed),
        stats.records_in.load(Relaxed),
        stats.coverage() * 100.0,
        stats.late.load(Relaxed),
        stats.failed.load(Relaxed),
        pool.embedded,
        pool.batches,
        pool.batch_p95_us as f64 / 1000.0,
        pool.cache_hits,
        pool.coalesced
    );
    (line, json)
}

/// Writes `h` (µs) as an HdrHistogram percentile distribution in ms (the `.hgrm` text format).
pub fn write_hgrm(h: &Histogram<u64>, path: &Path) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 { format!("{:>14.2}", 1.0 / (1.0 - q)) } else { String::new() };
        writeln!(f, "{:>12.3} {:>14.12} {:>10} {}", v.value_iterated_to() as f64 / 1000.0, q, total, inv)?;
    }
    writeln!(f, "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", h.mean() / 1000.0, h.stdev() / 1000.0)?;
    writeln!(f, "#[Max     = {:>12.3}, Total count    = {:>12}]", h.max() as f64 / 1000.0, h.len())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_parses_the_live_weather_flags() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "millionx",
            "run",
            "--weather",
            "owm",
            "--weather-every",
            "30m",
            "--weather-base-url",
            "http://127.0.0.1:1",
        ])
        .expect("parses");
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.live_weather.source, WeatherSourceKind::Owm);
        assert_eq!(run.live_weather.every, Some(std::time::Duration::from_secs(1800)));
        assert_eq!(run.live_weather.base_url.as_deref(), Some("http://127.0.0.1:1"));
        assert!(Cli::try_parse_from(["millionx", "run", "--weather-every", "10s"]).is_err(), "at least 1m");
        assert!(Cli::try_parse_from(["millionx", "run", "--weather", "darksky"]).is_err());
    }
}
