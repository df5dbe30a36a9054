//! Snowflake test tooling (tests and benchmarks only; the sink does not depend on it):
//!
//! - [`fakesnow`]: the fakesnow emulator (SQL API) started behind `fakesnow_adapter.py`, configs pointing at
//!   it or at the double, RSA key pairs, and a proxy that drops chosen responses.
//! - [`double`]: a double of the Snowpipe Streaming REST API (no emulator of that API exists).

pub mod double;
pub mod fakesnow;

pub use double::{DoubleConfig, Faults, StreamingDouble};
pub use fakesnow::{generate_key_pair, streaming_config, DropResponseProxy, Fakesnow};
