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
//!     let (ok, dead) = lines.validate(social::validate);
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

use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::{DeadLetter, Epoch, RawLine};
use timely::dataflow::operators::OkErr;
use timely::dataflow::Stream;

pub use rules::Rejection;

/// A stream schema: parses and checks one line.
pub type Schema<T> = fn(&RawLine) -> Result<T, Rejection>;

/// Splits a stream of raw lines into valid records and dead letters.
pub trait Validate<'scope> {
    /// Applies `schema` to every line; rejected lines keep their payload, origin and reason.
    fn validate<T: Clone + 'static>(
        self,
        schema: Schema<T>,
    ) -> (
        Stream<'scope, Epoch, Vec<T>>,
        Stream<'scope, Epoch, Vec<DeadLetter>>,
    );
}

impl<'scope> Validate<'scope> for Stream<'scope, Epoch, Vec<RawLine>> {
    fn validate<T: Clone + 'static>(
        self,
        schema: Schema<T>,
    ) -> (
        Stream<'scope, Epoch, Vec<T>>,
        Stream<'scope, Epoch, Vec<DeadLetter>>,
    ) {
        self.ok_err(move |line: RawLine| match schema(&line) {
            Ok(record) => Ok(record),
            Err(Rejection { reason, event_time }) => Err(DeadLetter {
                reason,
                detail: None,
                origin: line.origin,
                payload: line.payload,
                received_ns: now_unix_ns(),
                event_time_ms: event_time.map(|t| t.0),
            }),
        })
    }
}
