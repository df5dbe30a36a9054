//! MillionX weather source: current weather from OpenWeatherMap (`/data/2.5/weather`) for the 8 cities,
//! normalised to PIPELINE.md's weather reading and published round by round with a watermark.
//!
//! - [`owm`]: parse a payload ([`Observation::parse`]) and check it against our city ([`Observation::check`]).
//! - [`fetcher`]: spaced, retried requests; de-duplication; [`Round`] with its watermark.
//! - [`client`]: the HTTP [`Transport`] (reqwest, rustls) and request URLs (by city id or lat/lon, never `q=`).
//! - [`sink`]: [`ReadingSink`] and its JSON Lines and channel implementations; [`kafka`]: [`KafkaSink`]
//!   (`context.weather`, watermark markers) and the read-back of the newest published reading per city.
//! - [`schedule`]: [`Schedule`] (`--once`, `--every`, `weather.every`) and the loop running rounds into a sink.
//! - [`live`]: the pipeline's live weather source (`run --weather owm`), a timely operator fed by
//!   [`spawn_feed`].
//! - [`cli`]: `weather fetch` / `weather normalize` arguments and entry points (imports the modules above;
//!   none of them imports it).
//! - [`metrics`]: `millionx_weather_fetch_total{result,reason}` counters (also into a `millionx_metrics`
//!   registry with [`Fetcher::with_metrics`]).

pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod fetcher;
pub mod kafka;
pub mod live;
pub mod metrics;
pub mod owm;
pub mod reading;
pub mod schedule;
pub mod sink;

pub use cli::{run_fetch, run_normalize, run_weather, FetchArgs, NormalizeArgs, WeatherArgs};
pub use client::{ReqwestTransport, Transport};
pub use config::{ApiKey, WeatherConfig};
pub use error::{FailureReason, WeatherError};
pub use fetcher::{CityOutcome, Fetcher, Round, Status};
pub use kafka::{newest_in_topic, KafkaSink};
pub use live::spawn_feed;
pub use metrics::FetchCounters;
pub use owm::{normalize, Checks, Observation, Units};
pub use reading::Reading;
pub use schedule::{parse_every, RunSummary, Schedule};
pub use sink::{ChannelSink, JsonLinesSink, ReadingSink, WeatherEvent};
