//! Borrowing JSON object access for validation: one parse of the line, typed reads per field.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A JSON object key, borrowed from the line unless it held escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of one JSON object, in order, values unparsed.
pub struct Object<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(20));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    members.push((k, v));
                }
                Ok(Object { members })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Object<'a> {
    /// Parses `text` as one JSON object; `None` for anything else (the `parse_error` case).
    pub fn parse(text: &'a str) -> Option<Object<'a>> {
        serde_json::from_str(text).ok()
    }

    /// Distributes members into `N` named slots (last duplicate wins; JSON `null` counts as absent) and
    /// returns the unknown members re-encoded as `"k":v,...` (compact, values verbatim).
    ///
    /// Errors: [`Unreadable`] for the first unknown member whose value [`kept_verbatim`] refuses (the slots
    /// are still filled, so the caller can place the dead letter by its event time).
    pub fn slots<const N: usize>(&self, names: &[&str; N]) -> ([Option<&'a RawValue>; N], Result<String, Unreadable>) {
        let mut slots = [None; N];
        let mut extra = Ok(String::new());
        for (k, v) in &self.members {
            match names.iter().position(|n| *n == k.as_ref()) {
                Some(i) => slots[i] = if v.get() == "null" { None } else { Some(*v) },
                None => {
                    if let Ok(members) = &mut extra {
                        if let Err(e) = push_member(members, k, v) {
                            extra = Err(e);
                        }
                    }
                }
            }
        }
        (slots, extra)
    }
}

/// Why part of a payload that is kept verbatim (an unknown member, a weather reading's raw record) cannot
/// be written to the sinks: its text, valid for the JSON grammar, is beyond what JSON readers must accept.
/// RFC 8259 lets a reader limit number range (§6; readers such as serde_json, DuckDB and JavaScript use
/// IEEE 754 binary64, so `1e400` does not read) and nesting depth (§9; serde_json stops at 128), and rejects
/// escapes that are not Unicode scalar values (§8.2, a lone surrogate `"\ud800"`). Carrying such a value
/// into `RAW_RECORD` would make the row unreadable for the consumer, so the line is a `parse_error` dead
/// letter (PIPELINE.md: not a JSON object, for a binary64 reader), kept whole in the DLQ. The text is the
/// reader's message (position, never payload bytes), for the dead letter's `detail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// `raw` (one JSON value) as it is kept in an output: verbatim when it is on one line, else re-encoded
/// compactly (outputs are one record per line).
///
/// Errors: [`Unreadable`] when serde_json cannot read it into a `Value` (see there). Plain strings without
/// escapes are accepted without a second parse: the grammar check already done is all they need.
pub fn kept_verbatim(raw: &str) -> Result<Cow<'_, str>, Unreadable> {
    let plain_string = raw.starts_with('"') && !raw.contains('\\');
    if plain_string {
        return Ok(Cow::Borrowed(raw));
    }
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| Unreadable(format!("not readable as JSON: {e}")))?;
    if raw.contains(['\n', '\r']) {
        Ok(Cow::Owned(value.to_string()))
    } else {
        Ok(Cow::Borrowed(raw))
    }
}

fn push_member(extra: &mut String, key: &str, value: &RawValue) -> Result<(), Unreadable> {
    let value = kept_verbatim(value.get()).map_err(|Unreadable(e)| Unreadable(format!("an unknown field is {e}")))?;
    if !extra.is_empty() {
        extra.push(',');
    }
    extra.push_str(&serde_json::to_string(key).unwrap_or_else(|_| String::from("\"\"")));
    extra.push(':');
    extra.push_str(&value);
    Ok(())
}

/// A JSON string value, borrowed when it holds no escapes. `None` if not a string.
pub fn string(v: &RawValue) -> Option<Cow<'_, str>> {
    let raw = v.get();
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON integer (no fraction, no exponent) that fits `i64`. `None` otherwise.
pub fn integer(v: &RawValue) -> Option<i64> {
    let raw = v.get();
    if !is_number(raw) || raw.contains(['.', 'e', 'E']) {
        return None;
    }
    raw.parse().ok()
}

/// A JSON number. `None` if not a number.
pub fn number(v: &RawValue) -> Option<f64> {
    let raw = v.get();
    if !is_number(raw) {
        return None;
    }
    raw.parse().ok().filter(|f: &f64| f.is_finite())
}

/// A JSON array of strings. `None` otherwise.
pub fn strings(v: &RawValue) -> Option<Vec<String>> {
    serde_json::from_str(v.get()).ok()
}

fn is_number(raw: &str) -> bool {
    matches!(raw.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
}

/// A nested object's members. `None` if not an object.
pub fn object(v: &RawValue) -> Option<Object<'_>> {
    Object::parse(v.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_extra() {
        let o = Object::parse(r#"{"a":1,"x":{"k":[1, 2]},"b":null,"a":2,"we\"ird":"v"}"#).expect("object");
        let (s, extra) = o.slots(&["a", "b"]);
        assert_eq!(s[0].map(|v| v.get()), Some("2"));
        assert!(s[1].is_none(), "null is absent");
        assert_eq!(extra.as_deref(), Ok(r#""x":{"k":[1, 2]},"we\"ird":"v""#));
        let (_, extra) = Object::parse("{\"p\":[1,\n2]}").expect("object").slots(&[]);
        assert_eq!(extra.as_deref(), Ok(r#""p":[1,2]"#));
    }

    #[test]
    fn unknown_members_beyond_what_readers_accept_are_refused() {
        // Grammatical JSON that serde_json (binary64 numbers, depth 128, scalar-value escapes) cannot read.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (value, why) in [
            ("1e400", "number out of range"),
            ("-1e400", "number out of range"),
            (&*"9".repeat(400), "number out of range"),
            ("{\"k\":[1e999]}", "number out of range"),
            ("\"\\ud800\"", "hex escape"),
            (&*deep, "recursion limit exceeded"),
        ] {
            let text = format!("{{\"a\":1,\"x\":{value}}}");
            let o = Object::parse(&text).expect("the grammar accepts it");
            let (s, extra) = o.slots(&["a"]);
            assert_eq!(s[0].map(|v| v.get()), Some("1"), "slots are filled even so");
            let Err(Unreadable(detail)) = extra else { panic!("{value} must be refused") };
            assert!(detail.starts_with("an unknown field is not readable as JSON: "), "{detail}");
            assert!(detail.contains(why), "{value}: {detail}");
        }
        // The largest finite numbers and exact big integers stay, verbatim.
        let (_, extra) = Object::parse(r#"{"x":1.7976931348623157e308,"y":123456789012345678901234567890}"#)
            .expect("object")
            .slots(&[]);
        assert_eq!(extra.as_deref(), Ok(r#""x":1.7976931348623157e308,"y":123456789012345678901234567890"#));
    }

    #[test]
    fn typed_reads() {
        let v = |s: &str| serde_json::from_str::<Box<RawValue>>(s).expect("json");
        assert_eq!(integer(&v("42")), Some(42));
        assert_eq!(integer(&v("-3")), Some(-3));
        assert_eq!(integer(&v("4.0")), None);
        assert_eq!(integer(&v("1e3")), None);
        assert_eq!(integer(&v("\"4\"")), None);
        assert_eq!(number(&v("4")), Some(4.0));
        assert_eq!(number(&v("true")), None);
        assert_eq!(string(&v(r#""a\nb""#)).as_deref(), Some("a\nb"));
        assert!(matches!(string(&v(r#""plain""#)), Some(Cow::Borrowed("plain"))));
        assert_eq!(strings(&v(r##"["#a","#b"]"##)), Some(vec!["#a".to_owned(), "#b".to_owned()]));
        assert_eq!(strings(&v("[1]")), None);
    }

    #[test]
    fn non_objects_are_not_parsed() {
        for bad in ["[1]", "\"s\"", "{\"a\":", "", "null", "{\"a\":1} x"] {
            assert!(Object::parse(bad).is_none(), "{bad}");
        }
    }
}
