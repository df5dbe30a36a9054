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
    /// returns the unknown members re-encoded as `"k":v,...` (compact).
    pub fn slots<const N: usize>(&self, names: &[&str; N]) -> ([Option<&'a RawValue>; N], String) {
        let mut slots = [None; N];
        let mut extra = String::new();
        for (k, v) in &self.members {
            match names.iter().position(|n| *n == k.as_ref()) {
                Some(i) => slots[i] = if v.get() == "null" { None } else { Some(*v) },
                None => push_member(&mut extra, k, v),
            }
        }
        (slots, extra)
    }
}

fn push_member(extra: &mut String, key: &str, value: &RawValue) {
    if !extra.is_empty() {
        extra.push(',');
    }
    extra.push_str(&serde_json::to_string(key).unwrap_or_else(|_| String::from("\"\"")));
    extra.push(':');
    let raw = value.get();
    if raw.contains(['\n', '\r']) {
        // Keep outputs one record per line: re-encode pretty-printed values compactly.
        let compact = serde_json::from_str::<serde_json::Value>(raw).map(|v| v.to_string());
        extra.push_str(compact.as_deref().unwrap_or("null"));
    } else {
        extra.push_str(raw);
    }
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
        assert_eq!(extra, r#""x":{"k":[1, 2]},"we\"ird":"v""#);
        let (_, extra) = Object::parse("{\"p\":[1,\n2]}").expect("object").slots(&[]);
        assert_eq!(extra, r#""p":[1,2]"#);
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
