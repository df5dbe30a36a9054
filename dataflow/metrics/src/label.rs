//! Label values: bounded by construction.
//!
//! A label value is kept only when it is 1–128 bytes of `[A-Za-z0-9_.:/-]` (the character set of stream,
//! sink (`snowflake/SOCIAL_POSTS`), category and reason names, Kafka topic names and PIPELINE.md reasons such as
//! `missing_field:postId`); anything else becomes [`INVALID`]. So free text — an error message, a payload
//! fragment, personal data — can never become a label and create an unbounded series. The SDK's per-metric
//! cardinality limit ([`crate::CARDINALITY_LIMIT`]) bounds the rest.

use opentelemetry::{Key, KeyValue, StringValue};

/// The value that replaces a label value outside the allowed form.
pub const INVALID: &str = "invalid";

/// Longest kept label value, bytes (Kafka allows topic names up to 249; ours are far shorter).
pub const MAX_LABEL_BYTES: usize = 128;

/// True when `value` may be used as a label value as is.
pub fn is_valid(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_BYTES
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
}

/// A label from a static value (no allocation).
pub(crate) fn fixed(key: &'static str, value: &'static str) -> KeyValue {
    KeyValue::new(Key::from_static_str(key), StringValue::from(if is_valid(value) { value } else { INVALID }))
}

/// A label from a borrowed value (one allocation when kept).
pub(crate) fn owned(key: &'static str, value: &str) -> KeyValue {
    let value = if is_valid(value) { value.to_owned() } else { INVALID.to_owned() };
    KeyValue::new(Key::from_static_str(key), StringValue::from(value))
}

/// A label whose value is shared by reference count: built once, cloned per call without allocating.
pub(crate) fn shared(key: &'static str, value: &str) -> KeyValue {
    let value: std::sync::Arc<str> = if is_valid(value) { value.into() } else { INVALID.into() };
    KeyValue::new(Key::from_static_str(key), StringValue::from(value))
}

/// A numeric label (worker index, partition); no allocation.
pub(crate) fn number(key: &'static str, value: u64) -> KeyValue {
    KeyValue::new(Key::from_static_str(key), i64::try_from(value).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_reason_and_topic_forms() {
        for v in [
            "social",
            "missing_field:postId",
            "sink_rejected:snowflake:100069",
            "validated.social",
            "http_5xx",
            "snowflake/SOCIAL_POSTS",
        ] {
            assert!(is_valid(v), "{v}");
        }
    }

    #[test]
    fn rejects_free_text_and_overlong() {
        for v in ["", "call 01712345678 now", "a@b.com", "ঢাকা", &"x".repeat(MAX_LABEL_BYTES + 1)] {
            assert!(!is_valid(v), "{v}");
        }
        assert!(is_valid(&"x".repeat(MAX_LABEL_BYTES)));
        assert_eq!(owned("reason", "bad value").value.as_str(), INVALID);
        assert_eq!(fixed("stream", "social").value.as_str(), "social");
    }
}
