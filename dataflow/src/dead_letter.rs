//! Dead letters: rejected input with a machine-readable reason. Internal: may hold personal data.

use serde::{Deserialize, Serialize};

use crate::record::Origin;

/// A rejection reason in PIPELINE.md's vocabulary: `parse_error`, `missing_field:F`, `wrong_type:F`,
/// `out_of_range:F`, `unknown_city:F`, `bad_timestamp:F`, `too_long:content`, `inconsistent:totalPrice`,
/// `control_chars:F`; sinks add their own (`sink_rejected:<sink>:<code>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reason(pub String);

impl Reason {
    /// A reason without a field, e.g. `parse_error`.
    pub fn bare(kind: &str) -> Reason {
        Reason(kind.to_owned())
    }

    /// A reason naming a field, e.g. `missing_field:postId`.
    pub fn field(kind: &str, field: &str) -> Reason {
        Reason(format!("{kind}:{field}"))
    }

    /// The reason string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `detail` of a payload that is not UTF-8, rejected as `parse_error` (PIPELINE.md: inputs are UTF-8
/// JSON): `not UTF-8: invalid byte sequence at byte N` (0-based). Names a position, never payload bytes.
pub fn not_utf8_detail(e: &std::str::Utf8Error) -> String {
    format!("not UTF-8: invalid byte sequence at byte {}", e.valid_up_to())
}

/// A rejected message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why it was rejected.
    pub reason: Reason,
    /// Human-readable detail (e.g. the server's error message); never personal data.
    pub detail: Option<String>,
    /// Source coordinates.
    pub origin: Origin,
    /// The original payload, unchanged.
    pub payload: String,
    /// Wall-clock receive time, ns since the Unix epoch.
    pub received_ns: u64,
    /// Event time in ms when the payload had a parseable one (places it in a quality window).
    pub event_time_ms: Option<i64>,
}
