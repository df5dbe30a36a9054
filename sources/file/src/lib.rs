//! JSON Lines replay source: `social.jsonl`, `market.jsonl`, `weather.jsonl` read as one partition each.
//!
//! Every worker reads the whole file and keeps the lines whose 0-based index `i` satisfies
//! `i % peers == worker index`; line `i` belongs to epoch `i / epoch_lines`. Epochs therefore depend
//! only on the data, never on the number of workers or processes, which is what makes every
//! event-time result reproducible. A source does not start epoch `e` while the pipeline's probe is
//! still at or before `e − max_epochs_in_flight` (backpressure; bounded memory), and drops its
//! capabilities at the end of the file, so a replay terminates by itself.
//!
//! Lines that are not UTF-8 (`parse_error`, detail `not UTF-8 …`: PIPELINE.md's inputs are UTF-8 JSON, and
//! its vocabulary has no separate reason) or longer than the message limit (`too_large`) leave as dead
//! letters here, the payload decoded lossily (U+FFFD for each invalid sequence); a trailing `\r` (CRLF files)
//! is removed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use millionx_dataflow::dead_letter::not_utf8_detail;
use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::{DeadLetter, Epoch, Origin, RawLine, Reason, StreamKind};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, Stream};

/// What one file source reads and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSourceConfig {
    /// The file.
    pub path: PathBuf,
    /// The stream its lines belong to.
    pub stream: StreamKind,
    /// Lines per epoch (≥ 1).
    pub epoch_lines: u64,
    /// Epochs the source may run ahead of the probe (≥ 1).
    pub max_epochs_in_flight: u64,
    /// Longest accepted line, bytes.
    pub max_message_bytes: usize,
}

/// The input file cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot read input file {path}: {source}")]
pub struct SourceError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Checks that `path` can be opened for reading (call before starting the workers).
pub fn check_readable(path: &Path) -> Result<(), SourceError> {
    File::open(path).map(|_| ()).map_err(|source| SourceError { path: path.to_owned(), source })
}

/// Builds the source: `(lines, dead letters)`. `probe` watches the end of the pipeline. Once `stop` is set
/// (SIGINT/SIGTERM) the source ends at its next activation, as at the end of the file, so the graph drains.
///
/// Errors: the file cannot be opened on this worker.
#[allow(clippy::type_complexity)]
pub fn file_source<'scope>(
    scope: Scope<'scope, Epoch>,
    config: FileSourceConfig,
    probe: ProbeHandle<Epoch>,
    stop: Arc<AtomicBool>,
) -> Result<(Stream<'scope, Epoch, Vec<RawLine>>, Stream<'scope, Epoch, Vec<DeadLetter>>), SourceError> {
    let file = File::open(&config.path).map_err(|source| SourceError { path: config.path.clone(), source })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let index = scope.index() as u64;
    let peers = scope.peers() as u64;

    let mut builder = OperatorBuilder::new(format!("FileSource({})", config.stream.name()), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (lines_out, lines) = builder.new_output::<Vec<RawLine>>();
    let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
    let mut lines_out = OutputBuilder::from(lines_out);
    let mut dead_out = OutputBuilder::from(dead_out);

    builder.build(move |caps| {
        let mut caps = Some(caps);
        let mut next_line: u64 = 0;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        move |_frontiers| {
            if stop.load(Ordering::SeqCst) {
                caps = None;
            }
            let Some(held) = caps.as_mut() else { return };
            let epoch = next_line / config.epoch_lines;
            if probe.less_than(&epoch.saturating_sub(config.max_epochs_in_flight)) {
                activator.activate();
                return;
            }
            for c in held.iter_mut() {
                c.downgrade(&epoch);
            }
            let end = (epoch + 1) * config.epoch_lines;
            let ingest_ns = now_unix_ns();
            let mut lines_handle = lines_out.activate();
            let mut dead_handle = dead_out.activate();
            let mut lines_session = lines_handle.session(&held[0]);
            let mut dead_session = dead_handle.session(&held[1]);
            let mut eof = false;
            while next_line < end {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("error: reading {}: {e}", config.path.display());
                        eof = true;
                        break;
                    }
                }
                let line_index = next_line;
                next_line += 1;
                if line_index % peers != index {
                    continue;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                let origin = Origin { stream: config.stream, partition: 0, offset: line_index };
                let dead_letter = |reason: &str, detail: Option<String>, payload: String| DeadLetter {
                    reason: Reason::bare(reason),
                    detail,
                    origin,
                    payload,
                    received_ns: ingest_ns,
                    event_time_ms: None,
                };
                if buf.len() > config.max_message_bytes {
                    dead_session.give(dead_letter("too_large", None, String::from_utf8_lossy(&buf).into_owned()));
                    continue;
                }
                match std::str::from_utf8(&buf) {
                    Ok(text) => lines_session.give(RawLine { origin, ingest_ns, payload: text.to_owned() }),
                    Err(e) => dead_session.give(dead_letter(
                        "parse_error",
                        Some(not_utf8_detail(&e)),
                        String::from_utf8_lossy(&buf).into_owned(),
                    )),
                }
            }
            drop(lines_session);
            drop(dead_session);
            if eof {
                caps = None;
            } else {
                activator.activate();
            }
        }
    });
    Ok((lines, dead))
}
