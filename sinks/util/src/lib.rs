//! Sink plumbing shared by every MillionX sink.
//!
//! A sink is a timely operator ([`driver::BatchSink`]) that encodes records with an [`encoder::Encoder`]
//! into an [`batch::EncodedBatch`] until the [`batch::BatchPolicy`] says flush, hands the batch to a
//! [`writer::BatchWriter`] (file, Snowflake, Weaviate), and holds the capability of the oldest epoch in
//! every unacknowledged batch, so the sink's output frontier is its acknowledged progress. Items a
//! service rejects permanently come back as [`writer::ItemRejection`]s and leave as dead letters.

pub mod batch;
pub mod driver;
pub mod encoder;
pub mod writer;

pub use batch::{BatchPolicy, EncodedBatch, Item};
pub use driver::{BatchSink, SinkContext, SinkRecord, SinkStats};
pub use encoder::{Encoder, Framing};
pub use writer::{BatchWriter, Completion, ItemRejection, SinkError, WriteOutcome};
