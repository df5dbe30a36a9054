//! Method `snowpipe_streaming`: key-pair JWT ([`jwt`]), the REST API ([`api`]) and the writer ([`writer`]). A
//! double of the API written from Snowflake's documented contract is in `testing/snowflake`.

pub mod api;
pub mod jwt;
pub mod writer;
