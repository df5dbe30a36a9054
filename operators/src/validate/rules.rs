//! The validation rules of PIPELINE.md, shared by the stream schemas. First failing rule wins, in
//! this order: missing_field, wrong_type, out_of_range, unknown_city, bad_timestamp, too_long,
//! inconsistent, control_chars.

use std::borrow::Cow;

use millionx_dataflow::{City, EventTime, Reason};
use serde_json::value::RawValue;

use super::fields;

/// Why a line was rejected, and its event time when it had a parseable one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// PIPELINE.md reason string.
    pub reason: Reason,
    /// What exactly failed when the reason alone does not say (the dead letter's `detail`); never payload text.
    pub detail: Option<String>,
    /// Event time of the line if its timestamp field parsed (places it in a quality window).
    pub event_time: Option<EventTime>,
}

impl Rejection {
    /// `parse_error` for a payload that is not one JSON object (no detail, no event time).
    pub fn not_an_object() -> Rejection {
        Rejection { reason: Reason::bare("parse_error"), detail: None, event_time: None }
    }

    /// `parse_error` for a payload whose verbatim part cannot be kept as JSON (see [`fields::Unreadable`]).
    pub fn unreadable(e: fields::Unreadable, event_time: Option<EventTime>) -> Rejection {
        Rejection { reason: Reason::bare("parse_error"), detail: Some(e.0), event_time }
    }

    /// The rejection of a failed rule check.
    pub fn rule(reason: Reason, event_time: Option<EventTime>) -> Rejection {
        Rejection { reason, detail: None, event_time }
    }
}

/// Most Unicode scalar values `content` may hold (PIPELINE.md).
pub const MAX_CONTENT_CHARS: usize = 10_000;

/// Result of a rule check: the failing reason.
pub type Check<T> = Result<T, Reason>;

/// Fails with `missing_field:F` for the first required slot that is absent or null.
pub fn require<const N: usize>(slots: &[Option<&RawValue>; N], names: &[&str; N], required: &[bool; N]) -> Check<()> {
    for i in 0..N {
        if required[i] && slots[i].is_none() {
            return Err(Reason::field("missing_field", names[i]));
        }
    }
    Ok(())
}

/// A required string (`wrong_type:F` otherwise). Call after [`require`].
pub fn req_str<'a>(v: Option<&'a RawValue>, name: &str) -> Check<Cow<'a, str>> {
    v.and_then(fields::string).ok_or_else(|| Reason::field("wrong_type", name))
}

/// An optional string.
pub fn opt_str<'a>(v: Option<&'a RawValue>, name: &str) -> Check<Option<Cow<'a, str>>> {
    v.map(|v| fields::string(v).ok_or_else(|| Reason::field("wrong_type", name))).transpose()
}

/// A required JSON integer.
pub fn req_int(v: Option<&RawValue>, name: &str) -> Check<i64> {
    v.and_then(fields::integer).ok_or_else(|| Reason::field("wrong_type", name))
}

/// A required JSON number.
pub fn req_num(v: Option<&RawValue>, name: &str) -> Check<f64> {
    v.and_then(fields::number).ok_or_else(|| Reason::field("wrong_type", name))
}

/// An optional JSON number.
pub fn opt_num(v: Option<&RawValue>, name: &str) -> Check<Option<f64>> {
    v.map(|v| fields::number(v).ok_or_else(|| Reason::field("wrong_type", name))).transpose()
}

/// `out_of_range:F` when negative; else the value as unsigned.
pub fn non_negative(v: i64, name: &str) -> Check<u64> {
    u64::try_from(v).map_err(|_| Reason::field("out_of_range", name))
}

/// `out_of_range:F` when negative.
pub fn non_negative_f(v: f64, name: &str) -> Check<f64> {
    if v < 0.0 {
        Err(Reason::field("out_of_range", name))
    } else {
        Ok(v)
    }
}

/// `unknown_city:F` unless one of the eight cities.
pub fn city(v: &str, name: &str) -> Check<City> {
    City::from_name(v).ok_or_else(|| Reason::field("unknown_city", name))
}

/// `bad_timestamp:F` unless strict RFC 3339.
pub fn timestamp(v: &str, name: &str) -> Check<EventTime> {
    EventTime::parse_rfc3339(v).ok_or_else(|| Reason::field("bad_timestamp", name))
}

/// The event time of a timestamp slot, if it is a parseable string (for dead-letter placement).
pub fn event_time_of(v: Option<&RawValue>) -> Option<EventTime> {
    v.and_then(fields::string).and_then(|s| EventTime::parse_rfc3339(&s))
}

/// `too_long:F` when longer than [`MAX_CONTENT_CHARS`] Unicode scalar values.
pub fn not_too_long(v: &str, name: &str) -> Check<()> {
    if v.len() > MAX_CONTENT_CHARS && v.chars().count() > MAX_CONTENT_CHARS {
        return Err(Reason::field("too_long", name));
    }
    Ok(())
}

/// `control_chars:F` when the text holds a C0 control character other than tab, LF, CR.
/// Zero-width joiners (U+200C/U+200D) are format characters, not controls, and pass.
pub fn no_control_chars(v: &str, name: &str) -> Check<()> {
    if v.bytes().any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) {
        return Err(Reason::field("control_chars", name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters() {
        assert!(no_control_chars("a\tb\r\nc", "content").is_ok());
        assert!(no_control_chars("কি\u{200d}নলাম\u{200c}", "content").is_ok());
        assert_eq!(no_control_chars("bad\u{0}x", "content"), Err(Reason::field("control_chars", "content")));
    }

    #[test]
    fn length_counts_scalar_values_not_bytes() {
        let bangla = "আ".repeat(MAX_CONTENT_CHARS); // 30,000 bytes, 10,000 characters
        assert!(not_too_long(&bangla, "content").is_ok());
        assert!(not_too_long(&format!("{bangla}x"), "content").is_err());
    }
}
