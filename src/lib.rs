//! MillionX: the `millionx` binary's library — CLI, graph assembly, run loop, summary, generator.
//!
//! Graph assembly lives here rather than in `dataflow/` because it wires concrete sources, operators
//! and sinks together, and those crates depend on `dataflow/` (see `ops/CONTEXT.md`).

pub mod cli;
pub mod config;
pub mod gen;
pub mod pipeline;
pub mod search;
pub mod summary;
