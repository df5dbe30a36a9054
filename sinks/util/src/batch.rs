//! Batch policy and the encoded batch handed to a writer.

use std::ops::Range;
use std::time::Duration;

use millionx_dataflow::config::BatchConfig;
use millionx_dataflow::Origin;

use crate::encoder::Framing;

/// When to flush: whichever limit is reached first. `linger` applies only to a batch whose oldest epoch is
/// complete upstream (see [`crate::driver`]); `max_age` to every open batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Records per batch (≥ 1).
    pub max_records: usize,
    /// Encoded bytes per batch including framing (≥ 1 KiB). A single record larger than this is still
    /// sent, alone.
    pub max_bytes: usize,
    /// Age of the oldest record in the open batch.
    pub max_age: Duration,
    /// Age of the open batch after which it is flushed once its oldest epoch is complete upstream.
    pub linger: Duration,
    /// Checkpoint segments: when `Some(k)`, a batch holds records of one segment (`epoch / k`) only, so a
    /// restart from a checkpoint can replace exactly the batches written after it. `None`: no segments.
    pub segment_epochs: Option<u64>,
}

impl From<BatchConfig> for BatchPolicy {
    fn from(c: BatchConfig) -> Self {
        BatchPolicy {
            max_records: c.max_records,
            max_bytes: c.max_bytes,
            max_age: Duration::from_millis(c.max_age_ms),
            linger: Duration::from_millis(c.linger_ms),
            segment_epochs: None,
        }
    }
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchConfig::default().into()
    }
}

/// One record inside an [`EncodedBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Source coordinates of the record (for dead letters and offsets).
    pub origin: Origin,
    /// Wall-clock read time of the record, ns since the Unix epoch (for the latency histogram).
    pub ingest_ns: u64,
    /// Byte range of the encoded record inside [`EncodedBatch::body`], without separators.
    pub span: Range<usize>,
}

/// A flushed batch: the complete request body (framing included) and where each record sits in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Per-sink, per-worker sequence number, from 0.
    pub seq: u64,
    /// The body: `framing.open`, records joined by `framing.separator`, `framing.close`.
    pub body: Vec<u8>,
    /// The records, in body order.
    pub items: Vec<Item>,
    /// The framing used, so a writer can re-frame a subset (e.g. to split a batch).
    pub framing: Framing,
    /// The checkpoint segment of every record in the batch (see [`BatchPolicy::segment_epochs`]).
    pub segment: Option<u64>,
}

impl EncodedBatch {
    /// An empty batch with `framing.open` written.
    pub fn new(seq: u64, framing: Framing) -> EncodedBatch {
        EncodedBatch::with_capacity(seq, framing, 0, 0)
    }

    /// An empty batch with room for `bytes` of body and `items` records (avoids regrowing the body).
    pub fn with_capacity(seq: u64, framing: Framing, bytes: usize, items: usize) -> EncodedBatch {
        let mut body = Vec::with_capacity(bytes.max(framing.open.len()));
        body.extend_from_slice(framing.open.as_bytes());
        EncodedBatch { seq, body, items: Vec::with_capacity(items), framing, segment: None }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no record has been added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Size of the body if it were closed now, bytes.
    pub fn closed_len(&self) -> usize {
        self.body.len() + self.framing.close.len()
    }

    /// The encoded bytes of item `i`.
    pub fn item_bytes(&self, i: usize) -> &[u8] {
        &self.body[self.items[i].span.clone()]
    }

    /// Appends one encoded record: `encode` writes it into the body.
    pub fn push_with(&mut self, origin: Origin, ingest_ns: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        if !self.items.is_empty() {
            self.body.extend_from_slice(self.framing.separator.as_bytes());
        }
        let start = self.body.len();
        encode(&mut self.body);
        let end = self.body.len();
        self.items.push(Item { origin, ingest_ns, span: start..end });
    }

    /// Writes `framing.close`; call once, when the batch is flushed.
    pub fn close(&mut self) {
        self.body.extend_from_slice(self.framing.close.as_bytes());
    }

    /// A new closed batch holding the items at `indices` (in that order), re-framed.
    pub fn subset(&self, seq: u64, indices: &[usize]) -> EncodedBatch {
        let mut out = EncodedBatch::new(seq, self.framing);
        for &i in indices {
            let item = &self.items[i];
            out.push_with(item.origin, item.ingest_ns, |b| b.extend_from_slice(self.item_bytes(i)));
        }
        out.close();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::StreamKind;

    fn origin(offset: u64) -> Origin {
        Origin { stream: StreamKind::Social, partition: 0, offset }
    }

    #[test]
    fn frames_items_and_splits_them_back() {
        let framing = Framing { open: "{\"objects\":[", separator: ",", close: "]}" };
        let mut b = EncodedBatch::new(3, framing);
        b.push_with(origin(1), 10, |o| o.extend_from_slice(b"{\"a\":1}"));
        b.push_with(origin(2), 20, |o| o.extend_from_slice(b"{\"a\":2}"));
        b.push_with(origin(3), 30, |o| o.extend_from_slice(b"{\"a\":3}"));
        assert_eq!(b.closed_len(), 37);
        b.close();
        assert_eq!(b.body, b"{\"objects\":[{\"a\":1},{\"a\":2},{\"a\":3}]}");
        assert_eq!(b.item_bytes(1), b"{\"a\":2}");
        let s = b.subset(4, &[2, 0]);
        assert_eq!(s.body, b"{\"objects\":[{\"a\":3},{\"a\":1}]}");
        assert_eq!(s.items.iter().map(|i| i.origin.offset).collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(s.seq, 4);
    }
}
