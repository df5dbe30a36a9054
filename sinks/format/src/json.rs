//! A minimal JSON object writer over serde_json: static keys, serde-encoded values, raw members.

use serde::Serialize;

/// The RFC 3339 text of the current millisecond (`INGESTED_AT`, `ingestedAt`), formatted once per ms.
#[derive(Debug, Default)]
pub struct IngestedAt {
    ms: i64,
    text: String,
}

impl IngestedAt {
    /// Wall-clock now as RFC 3339 UTC.
    pub fn now(&mut self) -> &str {
        let ms = (millionx_dataflow::time::now_unix_ns() / 1_000_000) as i64;
        if ms != self.ms || self.text.is_empty() {
            self.ms = ms;
            self.text = millionx_dataflow::EventTime(ms).to_rfc3339();
        }
        &self.text
    }
}

/// Writes `{"K":v,...}` into a byte buffer. Keys are trusted static ASCII; values go through serde_json.
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object (`{`).
    pub fn open(out: &'a mut Vec<u8>) -> ObjectWriter<'a> {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// Writes `"key":value`. Serialising plain data into a `Vec` cannot fail; a non-finite float is
    /// written as `null` by serde_json.
    pub fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.key(key);
        if serde_json::to_writer(&mut *self.out, value).is_err() {
            self.out.extend_from_slice(b"null");
        }
        self
    }

    /// Writes `"key":"value"`, escaped per RFC 8259 §7 by `json_escape_simd` (byte-identical to
    /// serde_json's output, at SIMD speed: strings are most of what the sinks write).
    pub fn text(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        json_escape_simd::escape_into(value, self.out);
        self
    }

    /// Writes `"key":"value"`, or `"key":null` when `value` is `None`.
    pub fn text_or_null(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// Writes `"key":"value"` only when `value` is `Some`.
    pub fn text_opt(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.text(key, v);
        }
        self
    }

    /// Writes `"key":value` only when `value` is `Some`.
    pub fn field_opt<T: Serialize>(&mut self, key: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.field(key, &v);
        }
        self
    }

    /// Writes `"key":"<RFC 3339 UTC>"` without allocating.
    pub fn time(&mut self, key: &str, t: millionx_dataflow::EventTime) -> &mut Self {
        self.key(key);
        self.out.push(b'"');
        t.write_rfc3339(self.out);
        self.out.push(b'"');
        self
    }

    /// Writes `"key":` followed by whatever `write` appends (which must be one JSON value).
    pub fn with(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.key(key);
        write(self.out);
        self
    }

    /// Writes `"key":` followed by `raw`, which must already be valid JSON.
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(raw.as_bytes());
        self
    }

    /// Writes `"key":` and then a nested object produced by `f`.
    pub fn object(&mut self, key: &str, f: impl FnOnce(&mut ObjectWriter<'_>)) -> &mut Self {
        self.key(key);
        let mut inner = ObjectWriter::open(self.out);
        f(&mut inner);
        inner.close();
        self
    }

    /// Appends already-encoded members (`"k":v,"k2":v2`, possibly empty).
    pub fn members(&mut self, members: &str) -> &mut Self {
        if members.is_empty() {
            return self;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(members.as_bytes());
        self
    }

    /// Closes the object (`}`).
    pub fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_exactly_as_serde_json() {
        let samples = [
            "plain",
            "quote \" backslash \\ slash /",
            "\u{0}\u{1f}\t\r\n\u{7f}",
            "দাম ৫০০ টাকা 😀 ZWJ\u{200d}ZWNJ\u{200c}",
            "",
        ];
        for s in samples {
            let mut out = Vec::new();
            let mut w = ObjectWriter::open(&mut out);
            w.text("k", s);
            w.close();
            let want = format!("{{\"k\":{}}}", serde_json::to_string(s).expect("string"));
            assert_eq!(String::from_utf8(out).expect("utf-8"), want, "{s:?}");
        }
    }

    #[test]
    fn writes_valid_json_with_escapes_and_raw_members() {
        let mut out = Vec::new();
        let mut w = ObjectWriter::open(&mut out);
        w.field("A", "x\"y\u{1}").field("B", &1.5f64).field_opt::<u8>("C", None).members("\"x\":[1]");
        w.object("D", |o| {
            o.field("e", &true);
        });
        w.field("F", &f64::NAN).text("G", "ক\u{200d}্ষ \\ \n\u{7f}").text_or_null("H", None).text_opt("I", None);
        w.close();
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"A": "x\"y\u{1}", "B": 1.5, "x": [1], "D": {"e": true}, "F": null, "G": "ক\u{200d}্ষ \\ \n\u{7f}", "H": null})
        );
    }
}
