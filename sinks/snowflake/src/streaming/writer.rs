//! Method 2 writer: Snowpipe Streaming, one channel per table and Kafka partition.
//!
//! Per batch: the rows are grouped by partition and sorted by offset; each partition's rows are appended to
//! channel `<prefix>_<TABLE>_<partition>` in NDJSON requests of ≤ 4 MB whose offset token is the highest
//! Kafka offset sent so far on that channel. The batch completes only when every touched channel's committed
//! offset token has reached its last offset (read with bulk-channel-status), so the driver — and through it
//! the Kafka offset commit — never acknowledges rows Snowflake has not committed.
//!
//! Replays: when a channel is opened (first use, or re-opened after a stale continuation token or a
//! transient failure), rows with an offset ≤ its committed token are skipped — they are already in the
//! table. This is exact when each partition's rows reach the sink in offset order (what Snowflake's Kafka
//! connector assumes too); see CONTEXT.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, Framing, SinkError, WriteOutcome};

use millionx_dataflow::config::RetryConfig;

use crate::config::StreamingSettings;
use crate::metrics::Metrics;
use crate::streaming::api::{ApiError, StreamingApi, MAX_APPEND_BYTES};
use crate::tables::Table;
use crate::{reframe, Completions};

/// Name of the channel for `table` and Kafka `partition`: `<prefix>_<TABLE>_<partition>`.
pub fn channel_name(prefix: &str, table: Table, partition: u32) -> String {
    format!("{prefix}_{}_{partition}", table.name())
}

#[derive(Debug, Default)]
struct Channel {
    /// Token for the next append; `None` until opened.
    continuation: Option<String>,
    /// Committed offset when the channel was last opened: rows at or below it are already loaded.
    skip_through: Option<u64>,
    /// Highest offset token sent (offset tokens only grow).
    last_sent: Option<u64>,
    /// `rows_error_count` seen so far (a rise means the service rejected rows).
    errors_seen: u64,
}

/// Everything one batch needs, moved into the writer's task.
struct Ctx {
    api: Arc<StreamingApi>,
    table: Table,
    pipe: String,
    prefix: String,
    retry: RetryConfig,
    commit_poll: Duration,
    commit_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Writes one table's batches through Snowpipe Streaming; batches are processed in submission order by one
/// task (a channel's appends must be sequential).
pub struct StreamingWriter {
    table: Table,
    queue: tokio::sync::mpsc::UnboundedSender<EncodedBatch>,
    completions: Completions,
    max_in_flight: usize,
}

impl std::fmt::Debug for StreamingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingWriter")
            .field("table", &self.table)
            .field("in_flight", &self.completions.in_flight())
            .finish()
    }
}

impl StreamingWriter {
    /// A writer for `table`, appending through `api` on `runtime`.
    pub fn new(
        table: Table,
        runtime: &tokio::runtime::Handle,
        api: Arc<StreamingApi>,
        settings: &StreamingSettings,
        retry: RetryConfig,
        metrics: Arc<Metrics>,
    ) -> StreamingWriter {
        let (queue, mut batches) = tokio::sync::mpsc::unbounded_channel::<EncodedBatch>();
        let completions = Completions::new();
        let tx = completions.sender();
        let ctx = Ctx {
            api,
            table,
            pipe: format!("{}{}", table.name(), settings.pipe_suffix),
            prefix: settings.channel_prefix.clone(),
            retry,
            commit_poll: Duration::from_millis(settings.commit_poll_ms),
            commit_timeout: Duration::from_millis(settings.commit_timeout_ms),
            metrics,
        };
        runtime.spawn(async move {
            let mut channels: HashMap<u32, Channel> = HashMap::new();
            while let Some(batch) = batches.recv().await {
                let framed = reframe(&batch, Framing::NDJSON);
                let result = write_batch(&ctx, &mut channels, framed.as_ref().unwrap_or(&batch)).await;
                if result.is_ok() {
                    ctx.metrics.batch(batch.len() as u64, batch.body.len() as u64, 0);
                } else {
                    // After a failed batch nothing is known about the channels: open them again next time.
                    channels.clear();
                }
                if tx.send(Completion { seq: batch.seq, result, batch }).is_err() {
                    break;
                }
            }
        });
        StreamingWriter { table, queue, completions, max_in_flight: settings.max_in_flight }
    }
}

impl BatchWriter for StreamingWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        self.completions.submitted();
        if let Err(returned) = self.queue.send(batch) {
            // The task is gone (runtime shut down): fail the batch rather than lose it.
            let batch = returned.0;
            let _ = self.completions.sender().send(Completion {
                seq: batch.seq,
                result: Err(SinkError {
                    sink: format!("snowflake/{}", self.table.name()),
                    message: "writer stopped".into(),
                }),
                batch,
            });
        }
    }

    fn poll(&mut self) -> Vec<Completion> {
        self.completions.poll()
    }

    fn in_flight(&self) -> usize {
        self.completions.in_flight()
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

fn sink_err(table: Table, message: String) -> SinkError {
    SinkError { sink: format!("snowflake/{}", table.name()), message }
}

/// NDJSON requests of ≤ [`MAX_APPEND_BYTES`] for `items` (indices into `batch`, offset order), each with
/// the highest offset it holds.
fn chunks(batch: &EncodedBatch, items: &[usize]) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    let mut top = 0;
    for &i in items {
        let bytes = batch.item_bytes(i);
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if !body.is_empty() && body.len() + bytes.len() + 1 > MAX_APPEND_BYTES {
            out.push((std::mem::take(&mut body), top));
        }
        body.extend_from_slice(bytes);
        body.push(b'\n');
        top = batch.items[i].origin.offset;
    }
    if !body.is_empty() {
        out.push((body, top));
    }
    out
}

async fn open(ctx: &Ctx, name: &str, ch: &mut Channel) -> Result<(), ApiError> {
    let started = Instant::now();
    let opened = ctx.api.open_channel(&ctx.pipe, name).await;
    ctx.metrics.statement_latency(started.elapsed());
    let opened = opened?;
    ch.continuation = Some(opened.next_continuation_token);
    ch.skip_through = opened.channel_status.committed_offset();
    ch.last_sent = ch.last_sent.max(ch.skip_through);
    ch.errors_seen = opened.channel_status.errors();
    Ok(())
}

/// Appends one partition's rows (offset order), re-opening the channel and resending what it has not
/// committed after a stale token or a transient failure, with jittered exponential backoff between tries.
async fn append_partition(
    ctx: &Ctx,
    batch: &EncodedBatch,
    name: &str,
    ch: &mut Channel,
    items: &[usize],
    outcome: &mut WriteOutcome,
) -> Result<Option<u64>, SinkError> {
    let mut backoff = backon::BackoffBuilder::build(ctx.retry.backoff());
    loop {
        let result: Result<Option<u64>, ApiError> = async {
            if ch.continuation.is_none() {
                open(ctx, name, ch).await?;
            }
            let pending: Vec<usize> = items
                .iter()
                .copied()
                .filter(|&i| ch.skip_through.is_none_or(|t| batch.items[i].origin.offset > t))
                .collect();
            let mut target = None;
            for (body, top) in chunks(batch, &pending) {
                let token = ch.last_sent.map_or(top, |l| l.max(top));
                let Some(continuation) = ch.continuation.clone() else {
                    break;
                };
                let started = Instant::now();
                let next = ctx.api.append_rows(&ctx.pipe, name, &continuation, &token.to_string(), body).await;
                ctx.metrics.statement_latency(started.elapsed());
                ch.continuation = Some(next?);
                ch.last_sent = Some(token);
                target = Some(token);
            }
            Ok(target)
        }
        .await;
        match result {
            Ok(target) => return Ok(target),
            Err(ApiError::Fatal { code, message }) => {
                ctx.metrics.error(&code);
                return Err(sink_err(ctx.table, format!("channel {name}: {code}: {message}")));
            }
            Err(e) => {
                ctx.metrics.error(e.code());
                // Stale token or unknown outcome: the channel's committed token decides what to resend.
                ch.continuation = None;
                match backoff.next() {
                    Some(delay) => {
                        outcome.retries += 1;
                        ctx.metrics.retry();
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(sink_err(ctx.table, format!("channel {name}: retries exhausted: {e}"))),
                }
            }
        }
    }
}

/// Writes one NDJSON batch and waits for its commit.
async fn write_batch(
    ctx: &Ctx,
    channels: &mut HashMap<u32, Channel>,
    batch: &EncodedBatch,
) -> Result<WriteOutcome, SinkError> {
    let mut outcome = WriteOutcome::default();
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, item) in batch.items.iter().enumerate() {
        by_partition.entry(item.origin.partition).or_default().push(i);
    }
    let mut targets: Vec<(u32, String, u64)> = Vec::new();
    for (partition, mut items) in by_partition {
        items.sort_by_key(|&i| batch.items[i].origin.offset);
        let name = channel_name(&ctx.prefix, ctx.table, partition);
        let ch = channels.entry(partition).or_default();
        if let Some(target) = append_partition(ctx, batch, &name, ch, &items, &mut outcome).await? {
            targets.push((partition, name, target));
        }
    }
    wait_for_commit(ctx, channels, &targets, &mut outcome).await?;
    Ok(outcome)
}

/// Polls bulk-channel-status until every channel's committed token reaches its target.
async fn wait_for_commit(
    ctx: &Ctx,
    channels: &mut HashMap<u32, Channel>,
    targets: &[(u32, String, u64)],
    outcome: &mut WriteOutcome,
) -> Result<(), SinkError> {
    if targets.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = targets.iter().map(|(_, n, _)| n.clone()).collect();
    let deadline = Instant::now() + ctx.commit_timeout;
    loop {
        let started = Instant::now();
        let statuses = ctx.api.channel_status(&ctx.pipe, &names).await;
        ctx.metrics.statement_latency(started.elapsed());
        match statuses {
            Ok(statuses) => {
                let mut done = true;
                for (partition, name, target) in targets {
                    let status = statuses.get(name).cloned().unwrap_or_default();
                    let errors = status.errors();
                    let seen = channels.get(partition).map_or(0, |c| c.errors_seen);
                    if errors > seen {
                        ctx.metrics.error("rows_rejected");
                        return Err(sink_err(
                            ctx.table,
                            format!(
                                "channel {name}: Snowflake rejected {} row(s) at or before offset {}: {}",
                                errors - seen,
                                status.last_error_offset_upper_bound.as_deref().unwrap_or("?"),
                                status.last_error_message.as_deref().unwrap_or("no message")
                            ),
                        ));
                    }
                    if status.committed_offset().is_none_or(|c| c < *target) {
                        done = false;
                    }
                }
                if done {
                    return Ok(());
                }
            }
            Err(ApiError::Fatal { code, message }) => {
                ctx.metrics.error(&code);
                return Err(sink_err(ctx.table, format!("channel status: {code}: {message}")));
            }
            Err(e) => {
                ctx.metrics.error(e.code());
                outcome.retries += 1;
            }
        }
        if Instant::now() >= deadline {
            return Err(sink_err(
                ctx.table,
                format!("rows not committed within {} ms (channels {names:?})", ctx.commit_timeout.as_millis()),
            ));
        }
        tokio::time::sleep(ctx.commit_poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{Origin, StreamKind};

    #[test]
    fn chunks_respect_the_append_limit_and_carry_the_top_offset() {
        let mut b = EncodedBatch::new(0, Framing::NDJSON);
        let row = vec![b'x'; 1_500_000];
        for offset in [7, 8, 9] {
            b.push_with(Origin { stream: StreamKind::Market, partition: 0, offset }, 0, |o| {
                o.extend_from_slice(&row);
                o.push(b'\n');
            });
        }
        b.close();
        let c = chunks(&b, &[0, 1, 2]);
        assert_eq!(c.iter().map(|(_, t)| *t).collect::<Vec<_>>(), vec![8, 9]);
        assert_eq!(c[0].0.len(), 3_000_002);
        assert!(c.iter().all(|(body, _)| body.len() <= MAX_APPEND_BYTES && body.ends_with(b"\n")));
        assert_eq!(channel_name("MILLIONX", Table::PriceHistory, 3), "MILLIONX_PRICE_HISTORY_3");
    }
}
