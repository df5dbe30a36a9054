//! The MillionX graph, as every worker builds it, and the worker's run loop.
//!
//! ```text
//! inputs ─► validate ─► dedup (exchange by id) ─► enrich: anonymise ─► categorise ─► weather as-of join ─► calendar ─► embed ─► outputs
//!  │           │           │                                                    ▲         ▲
//!  │           │           └── duplicates ───────────────┐                      │         │
//!  │           ├── watermark reports (broadcast) ────────┼──────────────────────┘         │
//!  │           │                                         ▼                                │
//!  └── dead letters ◄── rejected ──────────────► observations ─► metrics tap ─► quality windows ─► quality output
//!                               weather readings (dedup, broadcast) ──────────────────────┘
//! ```
//!
//! - [`inputs`]: file replay, Kafka and the live weather feed as one [`inputs::Inputs`];
//! - `enrich`: the post and order chain, written once over the record kind;
//! - `observe`: one observation stream for the quality windows and the metrics;
//! - [`outputs`]: every [`outputs::Target`] resolved once to files, Snowflake, Weaviate or Kafka.
//!
//! This crate sits between the binary and the operators, sources and sinks: it is the only place that wires
//! concrete parts together (see `ops/CONTEXT.md`).

mod enrich;
pub mod inputs;
mod observe;
pub mod outputs;
pub mod plan;
mod worker;

pub use inputs::{start_live_weather, Input, LiveWeather};
pub use outputs::{Services, Target};
pub use plan::CheckpointPlan;
pub use worker::{latency_histogram, run_worker, CheckpointReport, Settings, StateSettings, WorkerReport};
