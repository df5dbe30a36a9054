//! Where readings go: the [`ReadingSink`] trait, JSON Lines (file append or stdout), and a channel into a
//! running pipeline. Kafka (`context.weather`) implements the same trait in [`crate::kafka`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use jiff::Timestamp;
use millionx_dataflow::City;

use crate::error::FailureReason;
use crate::reading::Reading;

/// A sink failure: what was being done and the I/O cause (never a reading's content).
#[derive(Debug, thiserror::Error)]
#[error("weather sink {what}: {source}")]
pub struct SinkError {
    /// What failed, e.g. `append to out/weather.jsonl`.
    pub what: String,
    /// Cause.
    #[source]
    pub source: io::Error,
}

/// Receives each round's new readings, then the round's watermark.
pub trait ReadingSink {
    /// Publishes readings (in city order). Durable or handed off when this returns `Ok`.
    fn publish(&mut self, readings: &[Reading]) -> Result<(), SinkError>;

    /// Called after a round's readings: no reading with an earlier `timestamp` will follow.
    fn round_complete(&mut self, watermark: Timestamp) -> Result<(), SinkError>;

    /// Called before [`ReadingSink::round_complete`] when cities failed this round (city, reason label).
    /// Default: nothing (the failures are logged and counted by the fetcher).
    fn failures(&mut self, _failures: &[(City, FailureReason)]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Writes one JSON object per line (the [`Reading`] format) to any writer.
#[derive(Debug)]
pub struct JsonLinesSink<W: Write> {
    out: W,
    name: String,
    sync: Option<File>,
}

impl JsonLinesSink<io::Stdout> {
    /// Lines to standard output (flushed after every publish).
    pub fn stdout() -> JsonLinesSink<io::Stdout> {
        JsonLinesSink { out: io::stdout(), name: String::from("stdout"), sync: None }
    }
}

impl JsonLinesSink<io::BufWriter<File>> {
    /// Appends to `path`, creating it (not its folder). Each publish is flushed, and the file is
    /// `fsync`ed at every [`ReadingSink::round_complete`]. Errors: the file cannot be opened.
    pub fn append(path: &Path) -> Result<JsonLinesSink<io::BufWriter<File>>, SinkError> {
        let what = format!("append to {}", path.display());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkError { what: what.clone(), source })?;
        let sync = file.try_clone().map_err(|source| SinkError { what: what.clone(), source })?;
        Ok(JsonLinesSink { out: io::BufWriter::new(file), name: what, sync: Some(sync) })
    }
}

impl<W: Write> JsonLinesSink<W> {
    /// Lines to `out`; `name` appears in errors.
    pub fn new(out: W, name: &str) -> JsonLinesSink<W> {
        JsonLinesSink { out, name: name.to_owned(), sync: None }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> ReadingSink for JsonLinesSink<W> {
    fn publish(&mut self, readings: &[Reading]) -> Result<(), SinkError> {
        let wrap = |source| SinkError { what: self.name.clone(), source };
        for r in readings {
            serde_json::to_writer(&mut self.out, r).map_err(|e| wrap(io::Error::other(e)))?;
            self.out.write_all(b"\n").map_err(wrap)?;
        }
        self.out.flush().map_err(wrap)
    }

    fn round_complete(&mut self, _watermark: Timestamp) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError { what: self.name.clone(), source })?;
        if let Some(f) = &self.sync {
            f.sync_data().map_err(|source| SinkError { what: self.name.clone(), source })?;
        }
        Ok(())
    }
}

/// The newest `timestamp` per city in a JSON Lines file of readings (to seed
/// [`crate::Fetcher::with_last_published`]). A missing file gives an empty map; lines that are not readings
/// are ignored. Errors: the file exists but cannot be read.
pub fn last_published_in(path: &Path) -> Result<BTreeMap<City, Timestamp>, SinkError> {
    let what = format!("read {}", path.display());
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(SinkError { what, source }),
    };
    #[derive(serde::Deserialize)]
    struct Key {
        city: City,
        timestamp: Timestamp,
    }
    let mut last = BTreeMap::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| SinkError { what: what.clone(), source })?;
        if let Ok(k) = serde_json::from_str::<Key>(&line) {
            let e = last.entry(k.city).or_insert(k.timestamp);
            *e = (*e).max(k.timestamp);
        }
    }
    Ok(last)
}

/// What a [`ChannelSink`] sends per round: the new readings (when any), the failed cities (when any), then
/// the watermark.
#[derive(Clone, Debug, PartialEq)]
pub enum WeatherEvent {
    /// New readings.
    Readings(Vec<Reading>),
    /// Cities that failed this round, with the reason.
    Failures(Vec<(City, FailureReason)>),
    /// The weather stream's watermark after a round.
    Watermark(Timestamp),
}

/// Sends rounds into a running pipeline (`run --weather owm`) over a standard channel.
#[derive(Debug)]
pub struct ChannelSink {
    tx: mpsc::Sender<WeatherEvent>,
}

impl ChannelSink {
    /// A sink sending to `tx`.
    pub fn new(tx: mpsc::Sender<WeatherEvent>) -> ChannelSink {
        ChannelSink { tx }
    }
}

fn closed() -> SinkError {
    SinkError {
        what: String::from("send to the pipeline"),
        source: io::Error::new(io::ErrorKind::BrokenPipe, "receiver dropped"),
    }
}

impl ReadingSink for ChannelSink {
    fn publish(&mut self, readings: &[Reading]) -> Result<(), SinkError> {
        if readings.is_empty() {
            return Ok(());
        }
        self.tx.send(WeatherEvent::Readings(readings.to_vec())).map_err(|_| closed())
    }

    fn round_complete(&mut self, watermark: Timestamp) -> Result<(), SinkError> {
        self.tx.send(WeatherEvent::Watermark(watermark)).map_err(|_| closed())
    }

    fn failures(&mut self, failures: &[(City, FailureReason)]) -> Result<(), SinkError> {
        self.tx.send(WeatherEvent::Failures(failures.to_vec())).map_err(|_| closed())
    }
}

/// `--out` target: `-` for stdout, else a file path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutTarget {
    /// Standard output.
    Stdout,
    /// Append to this JSON Lines file.
    File(PathBuf),
}

impl std::str::FromStr for OutTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<OutTarget, String> {
        match s {
            "" => Err(String::from("empty path (use - for stdout)")),
            "-" => Ok(OutTarget::Stdout),
            p => Ok(OutTarget::File(PathBuf::from(p))),
        }
    }
}
