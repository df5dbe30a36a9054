//! Bad input never corrupts an output line: a bounded proptest suite over generated and mutated lines.
//!
//! Seeds are `millionx gen` lines (good and bad, all three streams) plus hand-written ones; mutations are
//! structural (a field set to a huge number, a lone surrogate, deep nesting, a wrong type, an odd RFC 3339
//! offset, an extra unknown field) and textual (truncation, deletion, odd Unicode inserted). Properties:
//! validation and encoding never panic; every line is either a record whose every encoding (Snowflake rows,
//! Weaviate object body) parses with serde_json, or a dead letter whose DLQ line parses and whose reason is
//! in PIPELINE.md's vocabulary; `valid + dead = lines`. One test runs the real binary over such a file set
//! and checks every output line under `out/`. Case counts are fixed (`CASES`), so `cargo test` stays bounded.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use millionx::gen::GenArgs;
use millionx_dataflow::quality::QualityWindow;
use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, WeatherContext, WeatherReading};
use millionx_dataflow::{DeadLetter, Origin, RawLine, StreamKind};
use millionx_operators::anonymise::Anonymiser;
use millionx_operators::calendar::LocalCalendar;
use millionx_operators::categorise::Categoriser;
use millionx_operators::validate::{market, social, weather, Validate};
use millionx_sink_format::dlq::DeadLetterEncoder;
use millionx_sink_format::quality::QualityEncoder;
use millionx_sink_format::snowflake::{RowEncoder, Table};
use millionx_sink_format::weaviate::ObjectEncoder;
use millionx_sink_format::SourceNaming;
use millionx_sink_util::{EncodedBatch, Encoder, Framing};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

/// Cases per property: the suite takes a few seconds in the dev profile.
const CASES: u32 = 512;

// ---------------------------------------------------------------------------------------------- seeds

/// `millionx gen` output (10% bad lines) by stream, generated once per test binary.
fn gen_seeds() -> &'static BTreeMap<StreamKind, Vec<String>> {
    static SEEDS: OnceLock<BTreeMap<StreamKind, Vec<String>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs {
            out: dir.path().to_owned(),
            social: 60,
            market: 60,
            hours: 2,
            seed: 13,
            bad_rate: 0.1,
            dup_rate: 0.0,
            late_rate: 0.05,
            start: "2024-12-15T00:00:00Z".into(),
        };
        millionx::gen::run(&args).unwrap();
        StreamKind::ALL
            .iter()
            .map(|s| {
                let text = std::fs::read_to_string(dir.path().join(s.file_name())).unwrap();
                (*s, text.lines().map(str::to_owned).collect())
            })
            .collect()
    })
}

const SOCIAL: &str = r##"{"postId":"S-9","platform":"facebook","content":"আজ Dhaka এ iPhone 15 কিনলাম 😍 call 01712-345678","authorId":"a-9","authorName":"N","likesCount":3,"commentsCount":1,"sharesCount":0,"hashtags":["#deal"],"city":"Dhaka","language":"bn","postedAt":"2024-12-15T00:30:00Z"}"##;
const MARKET: &str = r#"{"orderId":"O-9","platform":"daraz","customerId":"c-9","customerPhone":"+8801712345678","customerEmail":"a@b.bd","productId":"P001","productName":"Samsung Galaxy A54","quantity":2,"unitPrice":100.5,"totalPrice":201.0,"currency":"BDT","status":"delivered","paymentMethod":"bkash","paymentStatus":"paid","shippingRegion":"Dhaka Division","shippingCity":"Dhaka","orderedAt":"2024-12-15T00:40:00+06:00"}"#;
const WEATHER: &str = r#"{"city":"Dhaka","country":"BD","latitude":23.8103,"longitude":90.4125,"timestamp":"2024-12-15T00:00:00Z","weather":{"condition":"Haze","description":"haze","icon":"50n"},"temperature":{"current":18.5,"feels_like":18.1,"min":17.0,"max":19.0},"humidity":77,"pressure":1014,"visibility":3000,"wind":{"speed":2.1,"degree":320},"clouds":20,"sunrise":"2024-12-15T00:30:00Z","sunset":"2024-12-15T11:15:00Z"}"#;

fn hand_seed(stream: StreamKind) -> &'static str {
    match stream {
        StreamKind::Social => SOCIAL,
        StreamKind::Market => MARKET,
        StreamKind::Weather => WEATHER,
    }
}

// ------------------------------------------------------------------------------------------ mutations

/// Raw JSON values to put where a value goes: beyond binary64, exact big integers, lone surrogates,
/// controls, deep nesting, wrong types.
fn raw_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "1e400",
        "-1e400",
        "1E+309",
        "0.1e-400",
        "1.7976931348623157e308",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "2.5",
        "-5",
        "0",
        "true",
        "null",
        "[]",
        "{}",
        "\"\"",
        "\"x\"",
        r#""\ud800""#,
        r#""a\udc00b""#,
        r#""\ud83d\ude00""#,
        r#""\u0000\u0007""#,
        r#""\u200d\u200c\u202e\ufeff\uffff""#,
        r#"[1e400]"#,
        r#"{"a":{"b":1e999}}"#,
        r#"["Dhaka",1,{"x":null}]"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("9".repeat(400));
    v.push(format!("{}1{}", "[".repeat(200), "]".repeat(200)));
    v.push(format!("{}{}", "{\"a\":".repeat(130), "}".repeat(130)).replace(":}", ":1}"));
    v.push(format!("\"{}\"", "আ".repeat(10_001)));
    v
}

/// Event-time texts: RFC 3339 edge cases and near misses.
const TIMESTAMPS: &[&str] = &[
    "2024-12-15T01:00:00+25:00",
    "2024-12-15T01:00:00-99:99",
    "2024-12-15T01:00:00+24:00",
    "2024-12-15T01:00:00+05:60",
    "2024-12-15T01:00:00+23:59",
    "2024-12-15T01:00:00-23:59",
    "2024-12-15T01:00:00-00:00",
    "2024-12-15T24:00:00Z",
    "2024-12-31T23:59:60Z",
    "2024-02-30T00:00:00Z",
    "0000-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59Z",
    "2024-12-15t01:00:00z",
    "2024-12-15T01:00:00.1234567890Z",
    "2024-12-15T01:00:00.123456789Z",
    "2024-12-15T01:00:00,5Z",
    "2024-12-15T01:00:00+0600",
    "2024-12-15T01:00:00+06:00:00",
    "2024-12-15T01:00:00+06:00[Asia/Dhaka]",
    "2024-12-15 01:00:00Z",
    "২০২৪-১২-১৫T০১:০০:০০Z",
    "",
];

/// Text spliced into a line at a character boundary.
const SPLICES: &[&str] = &[
    "\u{200d}", "\u{202e}", "\u{feff}", "\u{ffff}", "😀", "আ", "\u{7}", "\\", "\"", "\\u", "\\ud800", ",", ":", "{",
    "}", "[", "]", "1e400", "\n", " ",
];

/// One change to a line.
#[derive(Clone, Debug)]
enum Mutation {
    /// Set the field at this index (top level or nested, by a walk over the object) to a raw value.
    SetField(prop::sample::Index, prop::sample::Index),
    /// Set the event-time field to one of [`TIMESTAMPS`].
    Timestamp(prop::sample::Index),
    /// Add an unknown field holding a raw value.
    Unknown(String, prop::sample::Index),
    /// Remove the field at this index.
    Remove(prop::sample::Index),
    /// Insert a splice at this position.
    Splice(prop::sample::Index, prop::sample::Index),
    /// Cut the line at this position.
    Truncate(prop::sample::Index),
    /// Insert arbitrary text.
    Text(prop::sample::Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(f, v)| Mutation::SetField(f, v)),
        3 => any::<prop::sample::Index>().prop_map(Mutation::Timestamp),
        2 => ("[a-zA-Z_]{1,8}|\\PC{0,4}", any::<prop::sample::Index>()).prop_map(|(k, v)| Mutation::Unknown(k, v)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
        2 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(p, s)| Mutation::Splice(p, s)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => (any::<prop::sample::Index>(), "\\PC{0,6}").prop_map(|(p, t)| Mutation::Text(p, t)),
    ]
}

const RAW_MARK: &str = "@@raw-value@@";

fn event_time_key(stream: StreamKind) -> &'static str {
    match stream {
        StreamKind::Social => "postedAt",
        StreamKind::Market => "orderedAt",
        StreamKind::Weather => "timestamp",
    }
}

/// Every (object, key) path of `v`, depth first, as paths of keys.
fn field_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            prefix.push(k.clone());
            out.push(prefix.clone());
            field_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

fn set_path(v: &mut Value, path: &[String], new: Option<Value>) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for k in parents {
        cur = &mut cur[k.as_str()];
    }
    if let Value::Object(m) = cur {
        match new {
            Some(n) => {
                m.insert(last.clone(), n);
            }
            None => {
                m.remove(last);
            }
        }
    }
}

fn char_boundary(s: &str, i: prop::sample::Index) -> usize {
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    *i.get(&bounds)
}

/// Applies `mutations` to `line` in order. Structural ones apply while the line is still a JSON object;
/// the raw value is spliced in as text, so values no `Value` can hold (`1e400`) get in too.
fn mutate(stream: StreamKind, line: &str, mutations: &[Mutation]) -> String {
    let raws = raw_values();
    let mut line = line.to_owned();
    for m in mutations {
        let parsed: Option<Value> = serde_json::from_str(&line).ok().filter(Value::is_object);
        let mut structural = |f: &dyn Fn(&mut Value) -> Option<String>| {
            if let Some(mut v) = parsed.clone() {
                if let Some(raw) = f(&mut v) {
                    line = v.to_string().replacen(&format!("\"{RAW_MARK}\""), &raw, 1);
                }
            }
        };
        match m {
            Mutation::SetField(f, r) => structural(&|v| {
                let mut paths = Vec::new();
                field_paths(v, &mut Vec::new(), &mut paths);
                if paths.is_empty() {
                    return None;
                }
                set_path(v, f.get::<Vec<String>>(&paths), Some(Value::String(RAW_MARK.into())));
                Some(r.get(&raws).clone())
            }),
            Mutation::Timestamp(t) => structural(&|v| {
                v[event_time_key(stream)] = Value::String(t.get::<&str>(TIMESTAMPS).to_string());
                Some(String::new())
            }),
            Mutation::Unknown(k, r) => structural(&|v| {
                v[format!("x_{k}").as_str()] = Value::String(RAW_MARK.into());
                Some(r.get(&raws).clone())
            }),
            Mutation::Remove(f) => structural(&|v| {
                let mut paths = Vec::new();
                field_paths(v, &mut Vec::new(), &mut paths);
                if paths.is_empty() {
                    return None;
                }
                set_path(v, f.get::<Vec<String>>(&paths), None);
                Some(String::new())
            }),
            Mutation::Splice(p, s) => line.insert_str(char_boundary(&line, *p), s.get::<&str>(SPLICES)),
            Mutation::Truncate(p) => line.truncate(char_boundary(&line, *p)),
            Mutation::Text(p, t) => line.insert_str(char_boundary(&line, *p), t),
        }
    }
    // A line holds no newline (the file source splits on it): keep the mutation on one line.
    line.replace(['\n', '\r'], " ")
}

/// A seed line of `stream` (generated or hand-written) with 0–4 mutations.
fn line_of(stream: StreamKind) -> impl Strategy<Value = (StreamKind, String)> {
    let seeds: Vec<String> = gen_seeds()[&stream].iter().cloned().chain([hand_seed(stream).to_owned()]).collect();
    (prop::sample::select(seeds), prop::collection::vec(mutation(), 0..=4))
        .prop_map(move |(seed, ms)| (stream, mutate(stream, &seed, &ms)))
}

fn any_line() -> impl Strategy<Value = (StreamKind, String)> {
    prop_oneof![line_of(StreamKind::Social), line_of(StreamKind::Market), line_of(StreamKind::Weather)]
}

// ---------------------------------------------------------------------------------------- vocabulary

/// The fields PIPELINE.md names per stream (nested weather fields with a dot).
fn contract_fields(stream: StreamKind) -> &'static [&'static str] {
    match stream {
        StreamKind::Social => &[
            "postId",
            "platform",
            "content",
            "authorId",
            "authorName",
            "likesCount",
            "commentsCount",
            "sharesCount",
            "hashtags",
            "city",
            "language",
            "postedAt",
        ],
        StreamKind::Market => &[
            "orderId",
            "platform",
            "customerId",
            "customerPhone",
            "customerEmail",
            "productId",
            "productName",
            "quantity",
            "unitPrice",
            "totalPrice",
            "currency",
            "status",
            "paymentMethod",
            "paymentStatus",
            "shippingRegion",
            "shippingCity",
            "orderedAt",
        ],
        StreamKind::Weather => &[
            "city",
            "country",
            "latitude",
            "longitude",
            "timestamp",
            "weather",
            "weather.condition",
            "weather.description",
            "weather.icon",
            "temperature",
            "temperature.current",
            "temperature.feels_like",
            "temperature.min",
            "temperature.max",
            "humidity",
            "pressure",
            "visibility",
            "wind",
            "wind.speed",
            "wind.degree",
            "clouds",
            "sunrise",
            "sunset",
        ],
    }
}

/// True when `reason` is in PIPELINE.md's validation vocabulary, naming one of the stream's own fields
/// (so the reason set stays bounded whatever the input's keys).
fn in_contract(stream: StreamKind, reason: &str) -> bool {
    if reason == "parse_error" {
        return true;
    }
    let Some((kind, field)) = reason.split_once(':') else { return false };
    let named = contract_fields(stream).contains(&field);
    match kind {
        "missing_field" | "wrong_type" | "out_of_range" => named,
        "unknown_city" => matches!(field, "city" | "shippingCity") && named,
        "bad_timestamp" => field == event_time_key(stream),
        "too_long" => field == "content" && named,
        "inconsistent" => field == "totalPrice" && named,
        "control_chars" => matches!(field, "content" | "productName") && named,
        _ => false,
    }
}

// -------------------------------------------------------------------------------------- pure pipeline

fn raw_line(stream: StreamKind, offset: u64, payload: &str) -> RawLine {
    RawLine { origin: Origin { stream, partition: 0, offset }, ingest_ns: 1, payload: payload.to_owned() }
}

/// Validated records and dead letters of `lines`, through the real `Validate` operator.
struct Validated {
    posts: Vec<millionx_dataflow::record::SocialPost>,
    orders: Vec<millionx_dataflow::record::MarketOrder>,
    readings: Vec<WeatherReading>,
    dead: Vec<DeadLetter>,
}

fn validate_all(lines: &[(StreamKind, String)]) -> Validated {
    use timely::dataflow::operators::capture::Event;
    use timely::dataflow::operators::{Capture, ToStream};
    fn flat<T, D>(events: std::sync::mpsc::Receiver<Event<T, Vec<D>>>) -> Vec<D> {
        events
            .into_iter()
            .flat_map(|e| match e {
                Event::Messages(_, d) => d,
                Event::Progress(_) => Vec::new(),
            })
            .collect()
    }
    let lines = lines.to_vec();
    let (posts, orders, readings, dead) = timely::example(move |scope| {
        let of = |s: StreamKind| -> Vec<RawLine> {
            lines.iter().enumerate().filter(|(_, l)| l.0 == s).map(|(i, l)| raw_line(s, i as u64, &l.1)).collect()
        };
        let (p, pd, _) = of(StreamKind::Social).to_stream(scope).container::<Vec<_>>().validate(social::validate);
        let (o, od, _) = of(StreamKind::Market).to_stream(scope).container::<Vec<_>>().validate(market::validate);
        let (w, wd, _) = of(StreamKind::Weather).to_stream(scope).container::<Vec<_>>().validate(weather::validate);
        (p.capture(), o.capture(), w.capture(), [pd.capture(), od.capture(), wd.capture()])
    });
    Validated {
        posts: flat(posts),
        orders: flat(orders),
        readings: flat(readings),
        dead: dead.into_iter().flat_map(flat).collect(),
    }
}

fn parse_json(what: &str, bytes: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(e) => panic!("{what} is not valid JSON ({e}): {}", String::from_utf8_lossy(bytes)),
    }
}

/// Encodes one record per line with `enc` and checks the line: one JSON object, newline-terminated.
fn check_row<T>(enc: &mut RowEncoder, record: &T) -> Value
where
    RowEncoder: Encoder<T>,
{
    let mut out = Vec::new();
    enc.encode(record, &mut out);
    assert_eq!(out.pop(), Some(b'\n'), "{} row ends with a newline", enc.table().name());
    assert!(!out.contains(&b'\n'), "{} row is one line", enc.table().name());
    let v = parse_json(enc.table().name(), &out);
    assert!(v.is_object());
    v
}

/// A Weaviate batch body of `records`, as the sink frames it, parsed.
fn weaviate_body<T>(records: &[T]) -> Value
where
    ObjectEncoder: Encoder<T>,
{
    let mut enc = ObjectEncoder::new();
    let mut batch = EncodedBatch::new(0, enc.framing());
    for r in records {
        batch.push_with(Origin { stream: StreamKind::Social, partition: 0, offset: 0 }, 0, |b| enc.encode(r, b));
    }
    batch.close();
    parse_json("Weaviate body", &batch.body)
}

/// Runs `lines` through validation, the enrichment functions and every encoder, checking each output.
/// Returns the number of valid lines and the dead letters' reasons (for the suites' coverage checks).
fn check_lines(lines: &[(StreamKind, String)]) -> (usize, Vec<String>) {
    let v = validate_all(lines);
    let valid = v.posts.len() + v.orders.len() + v.readings.len();
    assert_eq!(valid + v.dead.len(), lines.len(), "nothing lost: valid + dead = lines");

    let (anon, cat, cal) = (Anonymiser::new(b"fuzz-key"), Categoriser::new(), LocalCalendar::dhaka());
    let context = v.readings.first().map(|r| WeatherContext {
        condition: r.condition.clone(),
        temperature: r.temperature,
        humidity: r.humidity,
        observed_at: r.meta.event_time,
    });
    let posts: Vec<EnrichedPost> = v
        .posts
        .into_iter()
        .map(|p| {
            let mut p = anon.post(p);
            let e = &mut p.enrichment;
            (e.category, e.category_confidence) = cat.from_text(&p.content);
            e.calendar = cal.at(p.meta.event_time);
            e.weather = context.clone();
            e.embedding = Some(vec![0.05; 384]);
            p
        })
        .collect();
    let orders: Vec<EnrichedOrder> = v
        .orders
        .into_iter()
        .map(|o| {
            let mut o = anon.order(o);
            let e = &mut o.enrichment;
            (e.category, e.category_confidence) = cat.from_product_id(&o.product_id);
            e.calendar = cal.at(o.meta.event_time);
            e.weather = context.clone();
            o
        })
        .collect();

    let mut social_rows = RowEncoder::new(Table::SocialPosts, Framing::NDJSON);
    for p in &posts {
        let row = check_row(&mut social_rows, p);
        assert!(row["RAW_RECORD"].is_object(), "RAW_RECORD is an object: {row}");
    }
    let (mut order_rows, mut price_rows) =
        (RowEncoder::new(Table::MarketOrders, Framing::NDJSON), RowEncoder::new(Table::PriceHistory, Framing::NDJSON));
    for o in &orders {
        assert!(check_row(&mut order_rows, o)["RAW_RECORD"].is_object());
        check_row(&mut price_rows, o);
    }
    let mut weather_rows = RowEncoder::new(Table::WeatherLogs, Framing::NDJSON);
    for r in &v.readings {
        let row = check_row(&mut weather_rows, r);
        assert_eq!(
            row["RAW_RECORD"],
            parse_json("the reading's payload", lines[r.meta.origin.offset as usize].1.as_bytes())
        );
    }
    assert_eq!(weaviate_body(&posts)["objects"].as_array().map(Vec::len), Some(posts.len()));
    assert_eq!(weaviate_body(&orders)["objects"].as_array().map(Vec::len), Some(orders.len()));

    let mut dlq = DeadLetterEncoder::new(SourceNaming::File);
    let mut window =
        QualityWindow { stream: Some(StreamKind::Social), received: lines.len() as u64, ..Default::default() };
    for d in &v.dead {
        let stream = d.origin.stream;
        assert!(
            in_contract(stream, d.reason.as_str()),
            "{} reason {:?} is not in the contract",
            stream.name(),
            d.reason
        );
        let mut out = Vec::new();
        dlq.encode(d, &mut out);
        assert_eq!(out.pop(), Some(b'\n'));
        let line = parse_json("DLQ line", &out);
        assert_eq!(line["reason"], d.reason.as_str());
        assert_eq!(line["payload"].as_str(), Some(lines[d.origin.offset as usize].1.as_str()), "payload unchanged");
        *window.rejected.entry(d.reason.as_str().to_owned()).or_default() += 1;
    }
    window.valid = valid as u64;
    let mut out = Vec::new();
    QualityEncoder.encode(&window, &mut out);
    parse_json("quality line", out.strip_suffix(b"\n").unwrap_or(&out));
    (valid, v.dead.iter().map(|d| d.reason.0.clone()).collect())
}

/// Runs `strategy`'s cases through [`check_lines`]; returns the valid-line count and the reasons seen.
fn run_suite(strategy: impl Strategy<Value = Vec<(StreamKind, String)>>) -> (usize, BTreeMap<String, usize>) {
    let seen = std::cell::RefCell::new((0, BTreeMap::new()));
    runner()
        .run(&strategy, |lines| {
            let (valid, reasons) = check_lines(&lines);
            let mut seen = seen.borrow_mut();
            seen.0 += valid;
            for r in reasons {
                *seen.1.entry(r).or_insert(0) += 1;
            }
            Ok(())
        })
        .unwrap();
    seen.into_inner()
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() })
}

#[test]
fn mutated_lines_become_valid_json_records_or_contract_dead_letters() {
    let (valid, reasons) = run_suite(prop::collection::vec(any_line(), 1..12));
    // The mutations reach every side: records that pass, and the rules that catch what they break.
    assert!(valid > 100, "{valid} valid lines");
    for reason in ["parse_error", "bad_timestamp:postedAt", "bad_timestamp:orderedAt", "bad_timestamp:timestamp"] {
        assert!(reasons.contains_key(reason), "{reason} never seen: {reasons:?}");
    }
    assert!(reasons.keys().any(|r| r.starts_with("wrong_type:")), "{reasons:?}");
}

#[test]
fn arbitrary_text_never_panics_and_is_never_lost() {
    let text = prop_oneof!["\\PC{0,80}", "[{}\\[\\]\":,0-9eE.+\\-a-z\\\\ ]{0,60}", any::<String>()];
    let stream = prop::sample::select(StreamKind::ALL.to_vec());
    let (_, reasons) = run_suite(prop::collection::vec((stream, text), 1..12));
    assert!(reasons.get("parse_error").is_some_and(|n| *n > 100), "{reasons:?}");
}

// ------------------------------------------------------------------------------------------ the bugs

/// The weather reading of issue 13 whose unknown field overflows f64 (it made `"RAW_RECORD":,`).
fn weather_overflow_line() -> String {
    WEATHER.replace("\"clouds\":20,", "\"clouds\":20,\"uvIndex\":1e400,")
}

#[test]
fn regression_a_number_beyond_f64_in_an_unknown_field_is_a_parse_error_with_detail() {
    let v = validate_all(&[(StreamKind::Weather, weather_overflow_line())]);
    assert!(v.readings.is_empty());
    assert_eq!(v.dead.len(), 1);
    assert_eq!(v.dead[0].reason.as_str(), "parse_error");
    assert_eq!(
        v.dead[0].detail.as_deref(),
        Some("the raw record is not readable as JSON: number out of range at line 1 column 350")
    );
    // The same value, finite, is kept in the raw record.
    let ok =
        validate_all(&[(StreamKind::Weather, WEATHER.replace("\"clouds\":20,", "\"clouds\":20,\"uvIndex\":1e300,"))]);
    let mut enc = RowEncoder::new(Table::WeatherLogs, Framing::NDJSON);
    let row = check_row(&mut enc, &ok.readings[0]);
    let raw = serde_json::to_string(&row["RAW_RECORD"]).unwrap();
    assert!(raw.contains(r#""uvIndex":1e+300"#), "{raw}");
}

#[test]
fn regression_offsets_outside_rfc3339_are_bad_timestamps() {
    for (stream, seed, field, from) in [
        (StreamKind::Social, SOCIAL, "postedAt", "2024-12-15T00:30:00Z"),
        (StreamKind::Market, MARKET, "orderedAt", "2024-12-15T00:40:00+06:00"),
        (StreamKind::Weather, WEATHER, "timestamp", "2024-12-15T00:00:00Z"),
    ] {
        for offset in ["+25:00", "-99:99", "+24:00", "-25:59"] {
            let line = seed.replacen(from, &format!("2024-12-15T00:30:00{offset}"), 1);
            let v = validate_all(&[(stream, line)]);
            assert_eq!(v.dead.len(), 1, "{field} {offset}");
            assert_eq!(v.dead[0].reason.as_str(), format!("bad_timestamp:{field}"));
            assert_eq!(v.dead[0].event_time_ms, None, "no event time from a bad timestamp");
        }
        let line = seed.replacen(from, "2024-12-15T23:59:00+23:59", 1);
        let v = validate_all(&[(stream, line)]);
        assert_eq!(v.dead.len(), 0, "{field}: +23:59 is RFC 3339");
    }
}

// ------------------------------------------------------------------------------- the real binary

/// Bytes of a social line that is not UTF-8: a Latin-1 `é` in `content`.
fn non_utf8_line() -> Vec<u8> {
    let text = SOCIAL.replacen("S-9", "S-non-utf8", 1);
    let at = text.find("আজ").unwrap();
    let mut b = text.into_bytes();
    b.splice(at..at, *b"caf\xe9 ");
    b
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

#[test]
fn the_binary_writes_only_valid_json_and_dead_letters_every_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    millionx::gen::run(&GenArgs {
        out: input.clone(),
        social: 300,
        market: 300,
        hours: 3,
        seed: 7,
        bad_rate: 0.1,
        dup_rate: 0.02,
        late_rate: 0.02,
        start: "2024-12-15T00:00:00Z".into(),
    })
    .unwrap();
    // Append the three bugs and 120 mutated lines per stream (a fixed seed: the same file every run).
    let mut runner = TestRunner::deterministic();
    let mut extra: BTreeMap<StreamKind, Vec<Vec<u8>>> = BTreeMap::new();
    extra.entry(StreamKind::Weather).or_default().push(weather_overflow_line().into_bytes());
    extra.entry(StreamKind::Social).or_default().push(SOCIAL.replacen("00:30:00Z", "00:30:00+25:00", 1).into_bytes());
    extra.entry(StreamKind::Market).or_default().push(MARKET.replacen("+06:00", "-99:99", 1).into_bytes());
    extra.entry(StreamKind::Social).or_default().push(non_utf8_line());
    for stream in StreamKind::ALL {
        let strategy = line_of(stream);
        for _ in 0..120 {
            let (_, line) = strategy.new_tree(&mut runner).unwrap().current();
            extra.entry(stream).or_default().push(line.into_bytes());
        }
        let mut line = b"\xff\xfe not utf-8 ".to_vec();
        line.extend_from_slice(hand_seed(stream).as_bytes());
        extra.entry(stream).or_default().push(line);
    }
    for (stream, lines) in &extra {
        let mut file = std::fs::read(input.join(stream.file_name())).unwrap();
        for l in lines {
            file.extend_from_slice(l);
            file.push(b'\n');
        }
        std::fs::write(input.join(stream.file_name()), file).unwrap();
    }

    common::run_ok(&["run", "--embed", "off", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);

    // Every output line is JSON (a Weaviate file is one body).
    let outputs = common::files(&out);
    assert!(outputs.iter().any(|f| f.starts_with(out.join("snowflake/WEATHER_LOGS"))), "{outputs:?}");
    for f in &outputs {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: not UTF-8: {e}", f.display()));
        if f.starts_with(out.join("weaviate")) || f.extension().is_some_and(|x| x == "json") {
            parse_json(&f.display().to_string(), text.as_bytes());
        } else {
            for l in text.lines() {
                parse_json(&f.display().to_string(), l.as_bytes());
            }
        }
    }

    // Every line the validators reject, and every non-UTF-8 line, is in the DLQ with that reason.
    let mut expected: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut lines_in = 0;
    for stream in StreamKind::ALL {
        for (i, bytes) in read_lines(&input.join(stream.file_name())).iter().enumerate() {
            lines_in += 1;
            let key = (stream.name().to_owned(), i as u64 + 1);
            let Ok(text) = std::str::from_utf8(bytes) else {
                expected.insert(key, "parse_error".into());
                continue;
            };
            let line = raw_line(stream, i as u64, text);
            let verdict = match stream {
                StreamKind::Social => social::validate(&line).err(),
                StreamKind::Market => market::validate(&line).err(),
                StreamKind::Weather => weather::validate(&line).err(),
            };
            if let Some(r) = verdict {
                expected.insert(key, r.reason.0);
            }
        }
    }
    let dead = common::ndjson(&out.join("dlq"));
    let got: BTreeMap<(String, u64), String> = dead
        .iter()
        .map(|d| {
            let key = (d["stream"].as_str().unwrap().to_owned(), d["source"]["line"].as_u64().unwrap());
            (key, d["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(got.len(), dead.len(), "one dead letter per line");
    assert_eq!(got, expected, "the DLQ holds exactly the bad lines, with their reasons");
    for ((stream, _), reason) in &got {
        let stream = StreamKind::ALL.into_iter().find(|s| s.name() == stream).unwrap();
        assert!(in_contract(stream, reason), "{reason}");
    }

    // The three bugs, exactly.
    let find = |stream: &str, needle: &str| -> &Value {
        dead.iter()
            .find(|d| d["stream"] == stream && d["payload"].as_str().is_some_and(|p| p.contains(needle)))
            .unwrap_or_else(|| panic!("no {stream} dead letter holding {needle}"))
    };
    let overflow = find("weather", "\"uvIndex\":1e400");
    assert_eq!(overflow["reason"], "parse_error");
    assert_eq!(overflow["detail"], "the raw record is not readable as JSON: number out of range at line 1 column 350");
    assert_eq!(overflow["event_time"], "2024-12-15T00:00:00Z");
    assert_eq!(find("social", "00:30:00+25:00")["reason"], "bad_timestamp:postedAt");
    assert_eq!(find("market", "-99:99")["reason"], "bad_timestamp:orderedAt");
    let non_utf8 = find("social", "S-non-utf8");
    assert_eq!(non_utf8["reason"], "parse_error");
    let at = std::str::from_utf8(&non_utf8_line()).unwrap_err().valid_up_to();
    assert_eq!(non_utf8["detail"], format!("not UTF-8: invalid byte sequence at byte {at}"));
    assert!(non_utf8["payload"].as_str().unwrap().contains("caf\u{fffd} "), "lossy payload");

    // Nothing lost: every line is counted as valid or rejected.
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let (mut received, mut valid, mut rejected) = (0, 0, 0);
    for s in summary["streams"].as_object().unwrap().values() {
        received += s["received"].as_u64().unwrap();
        valid += s["valid"].as_u64().unwrap();
        rejected += s["rejected"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>();
    }
    assert_eq!(received, lines_in);
    assert_eq!(valid + rejected, lines_in);
    assert_eq!(rejected, expected.len() as u64);
}
