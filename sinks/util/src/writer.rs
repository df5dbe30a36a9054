//! The writer interface every sink service implements (file, Snowflake, Weaviate).

use millionx_dataflow::Reason;

use crate::batch::EncodedBatch;

/// A record the service rejected permanently (it will never be accepted as sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemRejection {
    /// Index into [`EncodedBatch::items`].
    pub index: usize,
    /// Machine-readable reason, e.g. `sink_rejected:weaviate:422`.
    pub reason: Reason,
    /// The service's own message (must not contain personal data: the record never held any).
    pub message: String,
}

/// The result of writing one batch: everything not listed in `rejected` is durably written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Items rejected permanently; they go to the dead-letter output.
    pub rejected: Vec<ItemRejection>,
    /// Transient failures retried before success (for metrics).
    pub retries: u32,
}

/// A failure that stops the pipeline: nothing in the batch is acknowledged (bad credentials, a
/// missing table, retries exhausted). The run exits non-zero and commits nothing past the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    /// Sink name, e.g. `snowflake/SOCIAL_POSTS`.
    pub sink: String,
    /// What failed.
    pub message: String,
}

/// A finished batch.
#[derive(Debug)]
pub struct Completion {
    /// [`EncodedBatch::seq`] of the batch.
    pub seq: u64,
    /// The outcome, or the fatal error.
    pub result: Result<WriteOutcome, SinkError>,
    /// The batch itself, handed back (for dead letters and latency).
    pub batch: EncodedBatch,
}

/// Writes batches. A writer may complete batches later than it accepts them (requests in flight);
/// the driver keeps the epochs of every uncompleted batch unacknowledged.
pub trait BatchWriter {
    /// Starts writing `batch`.
    fn submit(&mut self, batch: EncodedBatch);
    /// Batches completed since the last call, in any order.
    fn poll(&mut self) -> Vec<Completion>;
    /// Batches submitted and not yet returned by [`BatchWriter::poll`].
    fn in_flight(&self) -> usize;
    /// Most batches the driver may have in flight before it stops flushing (memory bound). Default 1.
    fn max_in_flight(&self) -> usize {
        1
    }
}
