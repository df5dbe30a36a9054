//! MillionX weather source: current weather from OpenWeatherMap (`/data/2.5/weather`) for the 8 cities,
//! normalised to PIPELINE.md's weather reading and published round by round with a watermark.
//!
//! - [`owm`]: parse a payload ([`Observation::parse`]) and check it against our city ([`Observation::check`]).
//! - [`fetcher`]: spaced, retried requests; de-duplication; [`Round`] with its watermark.
//! - [`client`]: the HTTP [`Transport`] (reqwest, rustls) and request URLs (by city id or lat/lon, never `q=`).
//! - [`sink`]: [`ReadingSink`] and its JSON Lines and channel implementations.
//! - [`cli`]: `weather fetch` / `weather normalize` arguments and entry points.
//! - [`metrics`]: `millionx_weather_fetch_total{result,reason}` counters.

pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod fetcher;
pub mod metrics;
pub mod owm;
pub mod reading;
pub mod sink;

pub use cli::{run_fetch, run_normalize, run_weather, spawn_feed, FetchArgs, NormalizeArgs, Schedule, WeatherArgs};
pub use client::{ReqwestTransport, Transport};
pub use config::{ApiKey, WeatherConfig};
pub use error::{FailureReason, WeatherError};
pub use fetcher::{CityOutcome, Fetcher, Round, Status};
pub use metrics::FetchCounters;
pub use owm::{normalize, Checks, Observation, Units};
pub use reading::Reading;
pub use sink::{ChannelSink, JsonLinesSink, ReadingSink, WeatherEvent};
