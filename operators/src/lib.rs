//! MillionX's timely operators, one per file, each an extension trait on `Stream` (or a pure
//! component used inside a `map`), with a doc example.
//!
//! Operators that depend on event time (dedup, weather join, quality windows) act one complete epoch at
//! a time (see [`progress`]), which makes their output independent of arrival order and worker count.

pub mod anonymise;
pub mod calendar;
pub mod categorise;
pub mod dedup;
pub mod progress;
pub mod quality;
pub mod validate;
pub mod watermark;
pub mod weather_join;
