//! Method `sql_batch`: Snowflake's client protocol ([`client`]) and the MERGE writer ([`writer`]).

pub mod client;
pub mod writer;
