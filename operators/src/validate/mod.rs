//! Decode and validate: raw lines → valid records | dead letters (PIPELINE.md "Validation").
//!
//! ```
//! use timely::dataflow::operators::{Capture, ToStream};
//! use timely::dataflow::operators::capture::Event;
//! use millionx_dataflow::{Origin, RawLine, StreamKind};
//! use millionx_operators::validate::{social, Validate};
//!
//! let (ok, dead) = timely::example(|scope| {
//!     let line = |offset, payload: &str| RawLine {
//!         origin: Origin { stream: StreamKind::Social, partition: 0, offset },
//!         ingest_ns: 0,
//!         payload: payload.to_owned(),
//!     };
//!     let lines = vec![line(0, "not json")].to_stream(scope).container::<Vec<_>>();
//!     let (ok, dead, _metas) = lines.validate(social::validate);
//!     (ok.capture(), dead.capture())
//! });
//! assert!(ok.into_iter().all(|e| !matches!(e, Event::Messages(..))));
//! let dead: Vec<_> = dead.into_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
//! assert_eq!(dead[0].reason.as_str(), "parse_error");
//! ```

pub mod fields;
pub mod market;
pub mod rules;
pub mod social;
pub mod weather;

use millionx_dataflow::record::Keyed;
use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::{DeadLetter, Epoch, Meta, RawLine};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::Stream;

pub use rules::Rejection;

/// A stream schema: parses and checks one line.
pub type Schema<T> = fn(&RawLine) -> Result<T, Rejection>;

/// The outputs of [`Validate::validate`]: valid records, dead letters, and the [`Meta`] of every
/// valid record (a light stream for watermarks and quality counts, so the records themselves have a
/// single consumer and are never cloned).
pub type Validated<'scope, T> =
    (Stream<'scope, Epoch, Vec<T>>, Stream<'scope, Epoch, Vec<DeadLetter>>, Stream<'scope, Epoch, Vec<Meta>>);

/// Splits a stream of raw lines into valid records and dead letters.
pub trait Validate<'scope> {
    /// Applies `schema` to every line; rejected lines keep their payload, origin and reason.
    fn validate<T: Keyed + Clone + 'static>(self, schema: Schema<T>) -> Validated<'scope, T>;
}

impl<'scope> Validate<'scope> for Stream<'scope, Epoch, Vec<RawLine>> {
    fn validate<T: Keyed + Clone + 'static>(self, schema: Schema<T>) -> Validated<'scope, T> {
        let mut builder = OperatorBuilder::new("Validate".to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (ok_out, ok) = builder.new_output::<Vec<T>>();
        let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
        let (meta_out, metas) = builder.new_output::<Vec<Meta>>();
        let (mut ok_out, mut dead_out, mut meta_out) =
            (OutputBuilder::from(ok_out), OutputBuilder::from(dead_out), OutputBuilder::from(meta_out));
        builder.build(move |_caps| {
            move |_frontiers| {
                let (mut ok_h, mut dead_h, mut meta_h) = (ok_out.activate(), dead_out.activate(), meta_out.activate());
                input.for_each(|cap, lines| {
                    let (ok_cap, dead_cap, meta_cap) = (cap.retain_least(0), cap.retain_least(1), cap.retain_least(2));
                    let (Some(ok_cap), Some(dead_cap), Some(meta_cap)) = (ok_cap, dead_cap, meta_cap) else {
                        return;
                    };
                    let (mut ok_s, mut dead_s, mut meta_s) =
                        (ok_h.session(&ok_cap), dead_h.session(&dead_cap), meta_h.session(&meta_cap));
                    let received_ns = now_unix_ns();
                    for line in lines.drain(..) {
                        match schema(&line) {
                            Ok(record) => {
                                meta_s.give(*record.meta());
                                ok_s.give(record);
                            }
                            Err(Rejection { reason, detail, event_time }) => dead_s.give(DeadLetter {
                                reason,
                                detail,
                                origin: line.origin,
                                payload: line.payload,
                                received_ns,
                                event_time_ms: event_time.map(|t| t.0),
                            }),
                        }
                    }
                });
            }
        });
        (ok, dead, metas)
    }
}
