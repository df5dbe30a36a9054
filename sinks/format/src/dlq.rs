//! Dead-letter records: `{"reason","detail"?,"source":{...},"payload","received_at","event_time"?}`.
//!
//! Internal output: the payload is the original line and may hold personal data (PIPELINE.md).

use millionx_dataflow::time::EventTime;
use millionx_dataflow::DeadLetter;
use millionx_sink_util::{Encoder, Framing};

use crate::json::ObjectWriter;
use crate::SourceNaming;

/// Encodes dead letters as NDJSON.
#[derive(Debug)]
pub struct DeadLetterEncoder {
    naming: SourceNaming,
}

impl DeadLetterEncoder {
    /// An encoder naming sources as files or Kafka coordinates.
    pub fn new(naming: SourceNaming) -> DeadLetterEncoder {
        DeadLetterEncoder { naming }
    }
}

impl Encoder<DeadLetter> for DeadLetterEncoder {
    fn framing(&self) -> Framing {
        Framing::NDJSON
    }

    fn encode(&mut self, d: &DeadLetter, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::open(out);
        w.text("reason", d.reason.as_str()).text_opt("detail", d.detail.as_deref());
        let o = d.origin;
        w.object("source", |s| match self.naming {
            SourceNaming::File => {
                s.text("file", o.stream.file_name()).field("line", &(o.offset + 1));
            }
            SourceNaming::Kafka => {
                s.text("topic", o.stream.topic()).field("partition", &o.partition).field("offset", &o.offset);
            }
        });
        w.text("stream", o.stream.name())
            .text("payload", &d.payload)
            .text("received_at", &EventTime((d.received_ns / 1_000_000) as i64).to_rfc3339())
            .field_opt("event_time", d.event_time_ms.map(|ms| EventTime(ms).to_rfc3339()));
        w.close();
        out.push(b'\n');
    }
}
