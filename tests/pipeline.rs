//! End-to-end runs of `millionx run`, checked record by record.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::Value;

/// What the input says must come out of one stream.
struct Expected {
    /// 1-based line → reason, for every line that must be a dead letter.
    dead: BTreeMap<u64, String>,
    /// id → 0-based line of its first good copy.
    first: BTreeMap<String, u64>,
    /// Good lines repeating an id.
    duplicates: u64,
    /// Every raw personal value in the input (ids, names, phones, e-mails).
    personal: BTreeSet<String>,
}

fn expected(file: &Path, id_key: &str, personal_keys: &[&str]) -> Expected {
    let mut e = Expected { dead: BTreeMap::new(), first: BTreeMap::new(), duplicates: 0, personal: BTreeSet::new() };
    for (i, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
        let v: Option<Value> = serde_json::from_str(line).ok().filter(Value::is_object);
        let Some(v) = v else {
            e.dead.insert(i as u64 + 1, "parse_error".into());
            continue;
        };
        if let Some(reason) = v.get("_expect") {
            e.dead.insert(i as u64 + 1, reason.as_str().unwrap().to_owned());
            continue;
        }
        for k in personal_keys {
            if let Some(s) = v.get(*k).and_then(Value::as_str) {
                e.personal.insert(s.to_owned());
            }
        }
        let id = v[id_key].as_str().unwrap().to_owned();
        match e.first.entry(id) {
            std::collections::btree_map::Entry::Occupied(_) => e.duplicates += 1,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(i as u64);
            }
        }
    }
    e
}

fn ts_ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// The as-of join computed independently from weather.jsonl: city → [(ms, condition, °C, %)].
fn weather_index(file: &Path) -> BTreeMap<String, Vec<(i64, String, f64, i64)>> {
    let mut idx: BTreeMap<String, Vec<(i64, String, f64, i64)>> = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        idx.entry(v["city"].as_str().unwrap().to_owned()).or_default().push((
            ts_ms(v["timestamp"].as_str().unwrap()),
            v["weather"]["condition"].as_str().unwrap().to_owned(),
            v["temperature"]["current"].as_f64().unwrap(),
            v["humidity"].as_i64().unwrap(),
        ));
    }
    for v in idx.values_mut() {
        v.sort_by_key(|r| r.0);
    }
    idx
}

fn check_join(
    rows: &[Value],
    city_key: &str,
    time_key: &str,
    idx: &BTreeMap<String, Vec<(i64, String, f64, i64)>>,
) -> usize {
    let mut enriched = 0;
    for r in rows {
        let t = ts_ms(r[time_key].as_str().unwrap());
        let reading = idx
            .get(r[city_key].as_str().unwrap())
            .and_then(|v| v.iter().rev().find(|w| w.0 <= t))
            .filter(|w| t - w.0 <= 3 * 3_600_000);
        match reading {
            Some((_, cond, temp, hum)) => {
                enriched += 1;
                assert_eq!(r["WEATHER_CONDITION"].as_str(), Some(cond.as_str()), "{r}");
                assert_eq!(r["TEMPERATURE"].as_f64(), Some(*temp), "{r}");
                assert_eq!(r["HUMIDITY"].as_i64(), Some(*hum), "{r}");
                assert_eq!(r["ENRICHED"], Value::Bool(true));
            }
            None => {
                assert!(r["WEATHER_CONDITION"].is_null() && r["TEMPERATURE"].is_null(), "{r}");
                assert_eq!(r["ENRICHED"], Value::Bool(false));
            }
        }
    }
    enriched
}

const SOCIAL_PROPERTIES: [&str; 20] = [
    "postId",
    "platform",
    "content",
    "authorHash",
    "city",
    "postedAt",
    "productCategory",
    "categoryConfidence",
    "engagementCount",
    "likesCount",
    "commentsCount",
    "sharesCount",
    "weatherCondition",
    "temperature",
    "humidity",
    "isWeekend",
    "hourOfDay",
    "embeddingModel",
    "anonymized",
    "enriched",
];
const MARKET_PROPERTIES: [&str; 27] = [
    "orderId",
    "platform",
    "customerIdHash",
    "productId",
    "productName",
    "productCategory",
    "categoryConfidence",
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
    "dayOfWeek",
    "weatherCondition",
    "temperature",
    "humidity",
    "isWeekend",
    "hourOfDay",
    "embeddingModel",
    "anonymized",
    "enriched",
    "ingestedAt",
];

/// Checks a finished run against its input, line by line.
fn check_run(input: &Path, out: &Path) {
    let social = expected(&input.join("social.jsonl"), "postId", &["authorId", "authorName"]);
    let market = expected(&input.join("market.jsonl"), "orderId", &["customerId", "customerPhone", "customerEmail"]);

    // Dead letters: exactly the bad lines, each with its reason, payload kept.
    let dlq = ndjson(&out.join("dlq"));
    for (stream, file, exp) in [("social", "social.jsonl", &social), ("market", "market.jsonl", &market)] {
        let got: BTreeMap<u64, String> = dlq
            .iter()
            .filter(|d| d["stream"] == stream)
            .map(|d| {
                assert_eq!(d["source"]["file"], file);
                assert!(d["payload"].is_string());
                (d["source"]["line"].as_u64().unwrap(), d["reason"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(got.len(), dlq.iter().filter(|d| d["stream"] == stream).count(), "one dead letter per line");
        assert_eq!(got, exp.dead, "dead letters of {stream}");
    }
    let lines: Vec<&str> =
        Box::leak(std::fs::read_to_string(input.join("social.jsonl")).unwrap().into_boxed_str()).lines().collect();
    for d in dlq.iter().filter(|d| d["stream"] == "social") {
        assert_eq!(
            d["payload"].as_str().unwrap(),
            lines[d["source"]["line"].as_u64().unwrap() as usize - 1],
            "payload is the original line"
        );
    }

    // Every good unique record exactly once, from its first copy.
    for (table, id_col, exp) in [
        ("SOCIAL_POSTS", "POST_ID", &social),
        ("MARKET_ORDERS", "ORDER_ID", &market),
        ("PRICE_HISTORY", "ORDER_ID", &market),
    ] {
        let rows = ndjson(&out.join("snowflake").join(table));
        let mut seen = BTreeMap::new();
        for r in &rows {
            assert!(
                seen.insert(r[id_col].as_str().unwrap().to_owned(), r.get("KAFKA_OFFSET").and_then(Value::as_u64))
                    .is_none(),
                "{table}: {id_col} twice: {r}"
            );
        }
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            exp.first.keys().collect::<Vec<_>>(),
            "{table} holds exactly the good unique ids"
        );
        if table != "PRICE_HISTORY" {
            for (id, offset) in &seen {
                assert_eq!(offset.unwrap(), exp.first[id], "{table} {id} comes from its first copy");
            }
        }
    }
    for (class, id_prop, props, exp) in [
        ("SocialPost", "postId", &SOCIAL_PROPERTIES[..], &social),
        ("MarketOrder", "orderId", &MARKET_PROPERTIES[..], &market),
    ] {
        let objs = objects(&out.join("weaviate").join(class));
        let ids: BTreeSet<String> =
            objs.iter().map(|o| o["properties"][id_prop].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), objs.len(), "{class}: one object per record");
        assert_eq!(ids.iter().collect::<Vec<_>>(), exp.first.keys().collect::<Vec<_>>());
        for o in &objs {
            assert_eq!(o["class"], class);
            assert!(o.get("vector").is_none(), "no vectors before embeddings are on");
            let keys: BTreeSet<&str> = o["properties"].as_object().unwrap().keys().map(String::as_str).collect();
            let allowed: BTreeSet<&str> = props.iter().copied().collect();
            assert!(
                keys.is_subset(&allowed),
                "{class}: unexpected properties {:?}",
                keys.difference(&allowed).collect::<Vec<_>>()
            );
            let enriched = o["properties"]["enriched"].as_bool().unwrap();
            // Absent only when null: weather fields when not enriched, embeddingModel until embeddings exist.
            let missing: BTreeSet<&str> = allowed.difference(&keys).copied().collect();
            let mut may_miss: BTreeSet<&str> = ["embeddingModel", "paymentStatus", "shippingRegion"].into();
            if !enriched {
                may_miss.extend(["weatherCondition", "temperature", "humidity"]);
            }
            assert!(missing.is_subset(&may_miss), "{class}: missing {missing:?}");
        }
    }

    // Duplicates counted.
    let s = summary(out);
    assert_eq!(s["streams"]["social"]["duplicates"].as_u64(), Some(social.duplicates));
    assert_eq!(s["streams"]["market"]["duplicates"].as_u64(), Some(market.duplicates));
    assert_eq!(s["streams"]["social"]["emitted"].as_u64(), Some(social.first.len() as u64));

    // No personal data in any Snowflake or Weaviate output.
    // Not inside a longer alphanumeric run (hex hashes and UUIDs contain digit runs).
    let phone = regex::Regex::new(r"(?:^|[^0-9A-Za-z])(?:\+?88)?(?:01[3-9][0-9]{8}|০১[৩-৯][০-৯]{8})(?:[^0-9A-Za-z]|$)")
        .unwrap();
    let email = regex::Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").unwrap();
    let quoted: Vec<String> =
        social.personal.iter().chain(market.personal.iter()).map(|v| format!("\"{v}\"")).collect();
    let personal = aho_corasick::AhoCorasick::new(&quoted).unwrap();
    for f in files(&out.join("snowflake")).into_iter().chain(files(&out.join("weaviate"))) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!phone.is_match(&text), "phone number in {}", f.display());
        assert!(!email.is_match(&text), "e-mail address in {}", f.display());
        for key in ["authorId", "authorName", "customerId", "customerPhone", "customerEmail"] {
            assert!(!text.contains(&format!("\"{key}\":")), "personal field {key} in {}", f.display());
        }
        if let Some(m) = personal.find(&text) {
            panic!("raw personal value {} in {}", &text[m.start()..m.end()], f.display());
        }
    }

    // The weather join against an independent computation.
    let idx = weather_index(&input.join("weather.jsonl"));
    let posts = ndjson(&out.join("snowflake/SOCIAL_POSTS"));
    let orders = ndjson(&out.join("snowflake/MARKET_ORDERS"));
    let enriched =
        check_join(&posts, "CITY", "POSTED_AT", &idx) + check_join(&orders, "SHIPPING_CITY", "ORDERED_AT", &idx);
    assert!(enriched > 0);
}

#[test]
fn own_generator_run_is_correct_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let generated = run_ok(&[
        "gen",
        "--out",
        input.to_str().unwrap(),
        "--social",
        "3000",
        "--market",
        "3000",
        "--hours",
        "30",
        "--bad-rate",
        "0.05",
    ]);
    let said = String::from_utf8_lossy(&generated.stdout);
    for file in ["weather.jsonl", "social.jsonl", "market.jsonl"] {
        let path = input.join(file);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines > 0);
        let line = format!("gen: wrote {} ({lines} lines)", path.display());
        assert!(said.lines().any(|l| l == line), "`{line}` not in gen's output:\n{said}");
    }
    run_ok(&["run", "--embed", "off", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "-w", "2"]);
    check_run(&input, &out);
}

#[test]
fn reference_generator_run_is_correct_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    if !gen_py(
        &input,
        &["--social", "20000", "--market", "20000", "--bad-rate", "0.03", "--dup-rate", "0.02", "--late-rate", "0.02"],
    ) {
        return;
    }
    run_ok(&["run", "--embed", "off", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "-w", "2"]);
    check_run(&input, &out);
}

#[test]
fn results_do_not_depend_on_the_number_of_workers_or_processes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    run_ok(&[
        "gen",
        "--out",
        input.to_str().unwrap(),
        "--social",
        "4000",
        "--market",
        "4000",
        "--hours",
        "48",
        "--late-rate",
        "0.05",
    ]);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args =
            vec!["run", "--embed", "off", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        // Small epochs and batches so that epochs, exchanges and batch boundaries all come into play.
        let config = dir.path().join("small.toml");
        std::fs::write(&config, "[input]\nepoch_lines = 97\n[batch]\nmax_records = 50\n").unwrap();
        args.extend_from_slice(&["--config", config.to_str().unwrap()]);
        run_ok(&args);
        canonical(&out)
    };
    let one = run("w1", &["-w", "1"]);
    assert!(one["SOCIAL_POSTS"].len() > 3000 && one["quality"].len() > 90 && !one["dlq"].is_empty());
    for w in ["2", "4"] {
        let other = run(&format!("w{w}"), &["-w", w]);
        for (k, v) in &one {
            assert_eq!(v, &other[k], "-w {w}: {k} differs");
        }
    }

    // Two processes on loopback, each with two workers, writing into one folder.
    let out = dir.path().join("cluster");
    let ports: Vec<u16> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let hostfile = dir.path().join("hosts");
    std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1])).unwrap();
    let config = dir.path().join("small.toml");
    let spawn = |p: &str| {
        command()
            .args([
                "run",
                "--embed",
                "off",
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ])
            .args(["-w", "2", "-n", "2", "-p", p, "-h", hostfile.to_str().unwrap()])
            .env("MILLIONX_PII_KEY", "test-key")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let p0 = spawn("0");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let p1 = spawn("1");
    let (r0, r1) = (p0.wait_with_output().unwrap(), p1.wait_with_output().unwrap());
    assert!(
        r0.status.success() && r1.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&r0.stderr),
        String::from_utf8_lossy(&r1.stderr)
    );
    let cluster = canonical(&out);
    for (k, v) in &one {
        assert_eq!(v, &cluster[k], "-n 2: {k} differs");
    }
    assert!(files(&out.join("snowflake/SOCIAL_POSTS")).iter().any(|f| f
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("w003-")));
}

#[test]
fn batches_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    run_ok(&["gen", "--out", input.to_str().unwrap(), "--social", "500", "--market", "10", "--hours", "2"]);
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[batch]\nmax_records = 40\nmax_bytes = 20000\n").unwrap();
    run_ok(&[
        "run",
        "--embed",
        "off",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let batches = files(&out.join("snowflake/SOCIAL_POSTS"));
    let rows: usize = batches.iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum();
    for f in &batches {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.lines().count() <= 40, "{}", f.display());
        assert!(text.len() <= 20000, "{} has {} bytes", f.display(), text.len());
    }
    assert!(batches.len() >= rows.div_ceil(40), "{} batches for {rows} rows", batches.len());
}

#[test]
fn bad_flags_and_files_fail_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let r = millionx(&[
        "run",
        "--embed",
        "off",
        "--input",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("nowhere/social.jsonl"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[batch]\nmax_records = 0\n").unwrap();
    let r = millionx(&["run", "--embed", "off", "--config", config.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("batch.max_records"));

    std::fs::write(&config, "[bach]\nmax_records = 5\n").unwrap();
    let r = millionx(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("bach"));

    // Every connector table is validated too, naming the key from the file's root.
    for (text, key) in [
        ("[weaviate.retry]\nmax_retries = 5000\n", "`weaviate.retry.max_retries`"),
        ("[weaviate.batch]\nmax_recordz = 5\n", "`weaviate.batch.max_recordz`"),
        ("[embed]\ndeadline_ms = 0\n", "`embed.deadline_ms`"),
        ("[weather.retry]\ninitial_backoff_ms = 0\n", "`weather.retry.initial_backoff_ms`"),
        ("[kafka]\nepoch_messages = 0\n", "`kafka.epoch_messages`"),
        (
            "[snowflake]\naccount = \"a\"\nuser = \"u\"\n[snowflake.auth]\ntype = \"password\"\n\
             password = { env = \"PW\" }\n[snowflake.batch]\nmax_records = 0\n",
            "`snowflake.batch.max_records`",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let r = millionx(&["validate", "--config", config.to_str().unwrap()]);
        assert_eq!(r.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(key), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    std::fs::write(&config, "[embed]\nmode = \"off\"\ndeadline_ms = 250\n[weaviate.batch]\nlinger_ms = 20\n").unwrap();
    let r = millionx(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));

    let r = millionx(&["run", "--embed", "off", "-w", "0"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--workers"));
}

#[test]
fn a_sink_that_cannot_write_ends_the_run_with_exit_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A Weaviate URL nobody listens on, no retries: the sink's first batch fails fatally.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        format!("[weaviate]\nurl = \"http://127.0.0.1:{port}\"\n[weaviate.retry]\nmax_retries = 0\n"),
    )
    .unwrap();
    for workers in ["1", "2"] {
        let out = dir.path().join(format!("out-{workers}"));
        let mut child = common::command()
            .args(["run", "--embed", "off", "-w", workers, "--sink", "weaviate", "--config", config.to_str().unwrap()])
            .args(["--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_exit(&mut child, std::time::Duration::from_secs(120), "a run after a fatal sink error");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(1), "-w {workers}: {err}");
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(last.starts_with("error: weaviate: batch ") && last.contains("gave up"), "-w {workers}: {err}");
    }
}

#[test]
fn the_summary_counts_every_line_even_when_windows_closed_before_late_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    run_ok(&["gen", "--out", input.to_str().unwrap(), "--social", "300", "--market", "300", "--late-rate", "0.3"]);
    // Tiny epochs and no lateness allowance: windows close early and many records arrive late.
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[input]\nepoch_lines = 10\n[watermark]\nsocial_lateness_ms = 1\nmarket_lateness_ms = 1\n")
        .unwrap();
    let out = dir.path().join("out");
    run_ok(
        &["run", "--embed", "off", "--config", config.to_str().unwrap(), "--input", input.to_str().unwrap()]
            .into_iter()
            .chain(["--out", out.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let summary = summary(&out);
    let dlq = ndjson(&out.join("dlq"));
    let mut late = 0;
    for (stream, file, table) in
        [("social", "social.jsonl", "SOCIAL_POSTS"), ("market", "market.jsonl", "MARKET_ORDERS")]
    {
        let s = &summary["streams"][stream];
        let lines = std::fs::read_to_string(input.join(file)).unwrap().lines().count() as u64;
        let rows = ndjson(&out.join("snowflake").join(table)).len() as u64;
        let dead = dlq.iter().filter(|d| d["stream"] == stream).count() as u64;
        assert_eq!(s["received"].as_u64(), Some(lines), "{stream}: {s}");
        assert_eq!(s["emitted"].as_u64(), Some(rows), "{stream}: {s}");
        let rejected: u64 = s["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(rejected, dead, "{stream}: {s}");
        late += s["late"].as_u64().unwrap();
    }
    assert!(late > 0, "the set-up must produce late observations: {summary}");
    assert_eq!(summary["stopped_by_signal"], false, "{summary}");
}

#[test]
fn sigterm_during_a_file_replay_drains_flushes_and_exits_0_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    run_ok(&["gen", "--out", input.to_str().unwrap(), "--social", "40000", "--market", "40000"]);
    // One epoch in flight of 200 lines: the replay is slow enough to be stopped mid-way.
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[input]\nepoch_lines = 200\nmax_epochs_in_flight = 1\n[batch]\nmax_records = 200\n")
        .unwrap();
    let out = dir.path().join("out");
    let mut child = command()
        .args(["run", "--embed", "off", "--config", config.to_str().unwrap()])
        .args(["--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while files(&out.join("snowflake/SOCIAL_POSTS")).len() < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the replay ended before the signal");
        assert!(std::time::Instant::now() < deadline, "no output within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let status = wait_exit(&mut child, std::time::Duration::from_secs(60), "the replay after SIGTERM");
    assert!(status.success(), "SIGTERM: {status}");
    let written = ndjson(&out.join("snowflake/SOCIAL_POSTS")).len() as u64;
    let summary = summary(&out);
    assert!(written > 0 && written < 40000, "stopped mid-way: {written} rows");
    assert_eq!(summary["sinks"]["snowflake/SOCIAL_POSTS"]["rows"].as_u64(), Some(written), "{summary}");
    assert_eq!(summary["stopped_by_signal"], true, "{summary}");
}
