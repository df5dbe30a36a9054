//! Durable state of a Kafka-fed run: the `--state-dir`/`--fresh-state`/`--no-state` flags, the
//! configuration fingerprint, opening the process's snapshot file, choosing where the run resumes and
//! removing the output files the resumed run writes again (see `millionx_state` and
//! `millionx_dataflow::checkpoint`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use millionx_dataflow::config::Config;
use millionx_graph::{CheckpointPlan, CheckpointReport, StateSettings, WorkerReport};
use millionx_source_kafka::KafkaConfig;
use millionx_state::{Header, Store, FORMAT_VERSION};

/// `run` flags of the durable state (Kafka source only).
#[derive(Args, Debug, Clone, Default)]
pub struct StateArgs {
    /// Folder of the snapshot files (`p<process>.redb`) [default: `state.dir`, else `<out>/state`].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Discard the snapshots and the output files of earlier runs, then start with empty operator state
    /// at the consumer group's committed offsets.
    #[arg(long, conflicts_with = "no_state")]
    pub fresh_state: bool,
    /// No checkpoints (required with `-n > 1` and `--weather owm`): the output folder is cleared at start
    /// and a restart continues from the committed offsets with empty operator state.
    #[arg(long)]
    pub no_state: bool,
}

/// The settings that change a run's results, hashed (xxh3-64) into the state file's header.
fn fingerprint(config: &Config, kafka: &KafkaConfig) -> u64 {
    let key = format!(
        "{:?}|{:?}|{:?}|{}|{}|{}|{}|{}|{}",
        config.watermark,
        config.dedup,
        config.join,
        config.input.max_message_bytes,
        config.state.checkpoint_epochs,
        kafka.epoch_messages,
        kafka.social_topic,
        kafka.market_topic,
        kafka.weather_topic,
    );
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

/// Opens the state of process `process` (of `processes`, `workers` each) and picks the boundary to
/// resume from; removes the output files of the segments the run will write again (all of them on a
/// fresh start). `Ok(None)` with `--no-state`.
///
/// Errors: `-n > 1` or `--weather owm` without `--no-state`; the state file cannot be opened, belongs to
/// other settings, or the output cannot be cleaned (the message names the file).
pub fn open(
    args: &StateArgs,
    config: &Config,
    kafka: &KafkaConfig,
    (process, processes, workers): (usize, usize, usize),
    live_weather: bool,
) -> Result<Option<StateSettings>, String> {
    if args.no_state {
        return Ok(None);
    }
    if processes > 1 {
        return Err("--source kafka with -n > 1: checkpoints are per process and not coordinated across \
                    processes; pass --no-state"
            .to_owned());
    }
    if live_weather {
        return Err(
            "--source kafka with --weather owm: the live feed's state is not checkpointed; pass --no-state".to_owned()
        );
    }
    let dir =
        args.state_dir.clone().or_else(|| config.state.dir.clone()).unwrap_or_else(|| config.output.dir.join("state"));
    let peers = (processes * workers) as u32;
    let header = Header { version: FORMAT_VERSION, peers, fingerprint: fingerprint(config, kafka) };
    let store = Store::open(&dir, process, header, args.fresh_state).map_err(|e| e.to_string())?;
    let range = process * workers..(process + 1) * workers;
    let resume = store.restore_point(range.clone()).map_err(|e| e.to_string())?;
    let every = config.state.checkpoint_epochs;
    clean(&config.output.dir, resume.map(|b| b / every))?;
    let plan = Arc::new(CheckpointPlan::new(workers, resume.unwrap_or(0)));
    Ok(Some(StateSettings { store: Arc::new(store), every, resume, workers: range, plan }))
}

fn clean(out: &Path, from_segment: Option<u64>) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    millionx_sink_file::remove_from_segment(out, from_segment)
        .map(|_| ())
        .map_err(|e| format!("--out: cannot remove the files a resumed run rewrites: {e}"))
}

/// One line for the summary: where the run resumed and what its checkpoints stored; `None` without state.
pub fn summary_line(reports: &[WorkerReport], state: Option<&StateSettings>) -> Option<(String, serde_json::Value)> {
    let state = state?;
    let all: Vec<&CheckpointReport> = reports.iter().map(|r| &r.checkpoints).collect();
    let written: u64 = all.iter().map(|c| c.written).sum();
    let newest = all.iter().filter_map(|c| c.newest).min();
    let bytes: u64 = all.iter().map(|c| c.bytes).sum();
    let store_ms = all.iter().map(|c| c.store_us).sum::<u64>() as f64 / 1000.0;
    let resumed = match state.resume {
        Some(b) => format!("resumed from the checkpoint at epoch {b}"),
        None => "started without a checkpoint".to_owned(),
    };
    let newest_text = newest.map_or_else(|| "none".to_owned(), |b| b.to_string());
    let line = format!(
        "state: {resumed}; {written} snapshots stored ({} per worker), newest at epoch {newest_text}, \
         {bytes} bytes, {store_ms:.1} ms storing ({})",
        written / all.len().max(1) as u64,
        state.store.path().display()
    );
    let json = serde_json::json!({
        "resumed_from_epoch": state.resume,
        "snapshots_stored": written,
        "newest_epoch": newest,
        "snapshot_bytes": bytes,
        "store_ms": store_ms,
    });
    Some((line, json))
}
