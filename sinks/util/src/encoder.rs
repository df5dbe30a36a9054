//! Record encoders: how one record becomes bytes in a batch body.

/// The bytes around and between records in a batch body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Written before the first record (`{"objects":[` for Weaviate, `[` for a JSON array, empty for NDJSON).
    pub open: &'static str,
    /// Written between records (`,` or empty).
    pub separator: &'static str,
    /// Written after the last record (`]}` / `]`; NDJSON records carry their own `\n`, so empty).
    pub close: &'static str,
}

impl Framing {
    /// Newline-delimited JSON: each record writes its own trailing `\n`.
    pub const NDJSON: Framing = Framing { open: "", separator: "", close: "" };
    /// A JSON array of records.
    pub const JSON_ARRAY: Framing = Framing { open: "[", separator: ",", close: "]" };
}

/// Encodes records of type `T` for one sink table or class.
pub trait Encoder<T> {
    /// The framing of this sink's batch body.
    fn framing(&self) -> Framing;
    /// Appends the encoding of `record` to `out` (with a trailing `\n` under [`Framing::NDJSON`]).
    fn encode(&mut self, record: &T, out: &mut Vec<u8>);
}
