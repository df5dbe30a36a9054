//! Method 1 writer: one MERGE per batch, the batch bound once as a JSON array; rows Snowflake rejects
//! are isolated by bisection and returned as [`ItemRejection`]s.

use std::sync::Arc;

use millionx_dataflow::Reason;
use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, Framing, ItemRejection, SinkError, WriteOutcome};

use crate::metrics::Metrics;
use crate::sql::client::{SqlClient, SqlError};
use crate::tables::{Table, TableSchema};
use crate::{reframe, Completions};

/// Writes one table's batches with `MERGE` statements on a shared [`SqlClient`].
pub struct SqlBatchWriter {
    table: Table,
    runtime: tokio::runtime::Handle,
    client: Arc<SqlClient>,
    merge_sql: Arc<str>,
    metrics: Arc<Metrics>,
    completions: Completions,
    max_in_flight: usize,
}

impl std::fmt::Debug for SqlBatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlBatchWriter")
            .field("table", &self.table)
            .field("in_flight", &self.completions.in_flight())
            .finish()
    }
}

impl SqlBatchWriter {
    /// A writer for `table` in `database.schema`; statements run on `runtime`.
    pub fn new(
        table: Table,
        database: &str,
        schema: &str,
        runtime: tokio::runtime::Handle,
        client: Arc<SqlClient>,
        metrics: Arc<Metrics>,
        max_in_flight: usize,
    ) -> SqlBatchWriter {
        SqlBatchWriter {
            table,
            runtime,
            client,
            merge_sql: table.merge_sql(database, schema).into(),
            metrics,
            completions: Completions::new(),
            max_in_flight: max_in_flight.max(1),
        }
    }
}

impl BatchWriter for SqlBatchWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        self.completions.submitted();
        let (client, sql, metrics, tx, table) = (
            Arc::clone(&self.client),
            Arc::clone(&self.merge_sql),
            Arc::clone(&self.metrics),
            self.completions.sender(),
            self.table,
        );
        self.runtime.spawn(async move {
            let body = reframe(&batch, Framing::JSON_ARRAY);
            let result = write_batch(&client, &sql, table, body.as_ref().unwrap_or(&batch)).await;
            if let Ok(outcome) = &result {
                let rejected = outcome.rejected.len() as u64;
                metrics.batch(batch.len() as u64 - rejected, batch.body.len() as u64, rejected);
            }
            // The receiver lives as long as the writer; a dropped writer no longer wants completions.
            let _ = tx.send(Completion { seq: batch.seq, result, batch });
        });
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

/// The dead-letter reason for a row Snowflake rejected with `code`.
pub fn rejection_reason(code: &str) -> Reason {
    Reason(format!("sink_rejected:snowflake:{code}"))
}

/// Writes `batch` (JSON-array framed) with MERGE statements: the whole batch first; when Snowflake rejects
/// the data, each half again, down to single rows, which become rejections. Transient failures are retried
/// inside [`SqlClient::execute`]; when retries run out, or on a fatal error, the batch fails as a whole.
///
/// # Errors
/// [`SinkError`] naming `snowflake/<TABLE>` when the batch cannot be written.
pub async fn write_batch(
    client: &SqlClient,
    merge_sql: &str,
    table: Table,
    batch: &EncodedBatch,
) -> Result<WriteOutcome, SinkError> {
    let sink = format!("snowflake/{}", table.name());
    let mut outcome = WriteOutcome::default();
    if batch.is_empty() {
        return Ok(outcome);
    }
    let mut todo: Vec<Vec<usize>> = vec![(0..batch.len()).collect()];
    while let Some(indices) = todo.pop() {
        let subset;
        let body = if indices.len() == batch.len() {
            &batch.body
        } else {
            subset = batch.subset(batch.seq, &indices);
            &subset.body
        };
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            Err(_) => {
                // Not UTF-8: reject the items that are not, write the rest.
                let (bad, good): (Vec<usize>, Vec<usize>) =
                    indices.iter().partition(|&&i| std::str::from_utf8(batch.item_bytes(i)).is_err());
                for index in bad {
                    outcome.rejected.push(ItemRejection {
                        index,
                        reason: rejection_reason("invalid_utf8"),
                        message: "row is not valid UTF-8".into(),
                    });
                }
                if !good.is_empty() {
                    todo.push(good);
                }
                continue;
            }
        };
        match client.execute(merge_sql, Some(text)).await {
            Ok((_, retries)) => outcome.retries += retries,
            Err(SqlError::Rejected { code, message }) if indices.len() == 1 => {
                outcome.rejected.push(ItemRejection { index: indices[0], reason: rejection_reason(&code), message });
            }
            Err(SqlError::Rejected { .. }) => {
                let (left, right) = indices.split_at(indices.len() / 2);
                todo.push(right.to_vec());
                todo.push(left.to_vec());
            }
            Err(e @ SqlError::Transient { .. }) => {
                return Err(SinkError { sink, message: format!("retries exhausted: {e}") });
            }
            Err(e @ SqlError::Fatal { .. }) => return Err(SinkError { sink, message: e.to_string() }),
        }
    }
    outcome.rejected.sort_by_key(|r| r.index);
    Ok(outcome)
}
