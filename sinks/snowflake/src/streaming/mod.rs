//! Method `snowpipe_streaming`: key-pair JWT ([`jwt`]), the REST API ([`api`]), the writer ([`writer`]) and,
//! with feature `testing`, a double of the API written from Snowflake's documented contract ([`double`]).

pub mod api;
#[cfg(feature = "testing")]
pub mod double;
pub mod jwt;
pub mod writer;
