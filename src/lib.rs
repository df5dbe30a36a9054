//! MillionX: the `millionx` binary's library — CLI, configuration, summary, generator. The graph and its
//! run loop are in `millionx-graph`.

pub mod cli;
pub mod config;
pub mod gen;
pub mod resume;
pub mod search;
pub mod summary;
