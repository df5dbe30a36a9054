//! MillionX core types shared by every crate of the workspace.
//!
//! Types flow up from here: operators, sources and sinks depend on this crate and never on each other
//! (see `ops/CONTEXT.md`). Nothing here does I/O.

pub mod catalog;
pub mod checkpoint;
pub mod city;
pub mod config;
pub mod dead_letter;
pub mod quality;
pub mod record;
pub mod test_hook;
pub mod time;
pub mod watermark;

pub use city::City;
pub use dead_letter::{DeadLetter, Reason};
pub use record::{Meta, Origin, RawLine, StreamKind};
pub use time::{Epoch, EventTime};
