//! Rows/s into Snowflake stand-ins for both methods at batch sizes 100, 1,000 and 10,000.
//!
//! `cargo run --release -p millionx-benchmarks --bin snowflake-bench -- [--rows N]
//! [--outage-secs S]`
//!
//! - `sql_batch`: the fakesnow emulator (DuckDB) behind the test adapter, schema applied, MERGE per batch
//!   into SOCIAL_POSTS (emptied between runs).
//! - `snowpipe_streaming`: the REST double (no emulator of that API exists), 4 partitions = 4 channels,
//!   commit 50 ms after each append; every batch waits for its commit, as in production.
//! - `--load-dir DIR`: loads the file sink's Snowflake rows (`DIR/snowflake/<TABLE>/*.ndjson`, what the
//!   encoder writes) into the emulator (`sql_batch`) and into the double (`snowpipe_streaming`, which checks
//!   every column name and JSON type), and compares row counts with the files.
//! - `--outage-secs S` (manual check, e.g. 30): loads 20 batches of 1,000 rows with `sql_batch`, kills
//!   the emulator for S seconds after the 5th, and checks that every row arrives exactly once.
//!
//! Prints a markdown table (rows/s, batches, mean statement latency).

use std::time::{Duration, Instant};

use millionx_dataflow::{Origin, StreamKind};
use millionx_sink_snowflake::{SnowflakeConfig, SnowflakeSink, Table};
use millionx_sink_util::{BatchWriter, EncodedBatch};
use millionx_snowflake_testing::{generate_key_pair, streaming_config, Fakesnow};
use millionx_snowflake_testing::{DoubleConfig, StreamingDouble};

fn row(id: u64, partition: u32) -> serde_json::Value {
    serde_json::json!({
        "POST_ID": format!("B-{partition}-{id:010}"), "PLATFORM": "facebook",
        "CONTENT": "আজ ঢাকায় খুব গরম! Rice Cooker 1.8L কিনলাম, দাম 2750 টাকা #deal [PHONE]",
        "AUTHOR_HASH": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "LIKES_COUNT": id % 97, "COMMENTS_COUNT": id % 13, "SHARES_COUNT": id % 7,
        "ENGAGEMENT_COUNT": id % 97 + id % 13 + id % 7, "HASHTAGS": ["#deal", "#dhaka"], "CITY": "Dhaka",
        "LANGUAGE": "bn", "POSTED_AT": "2025-03-01T10:00:00Z", "PRODUCT_CATEGORY": "home",
        "CATEGORY_CONFIDENCE": 0.8, "WEATHER_CONDITION": "Haze", "TEMPERATURE": 31.5, "HUMIDITY": 70,
        "IS_WEEKEND": true, "HOUR_OF_DAY": 16, "EMBEDDING_MODEL": "all-MiniLM-L6-v2", "ANONYMIZED": true,
        "PII_FIELDS": ["authorId", "authorName", "content:phone"], "PII_DETECTED": true, "ENRICHED": true,
        "RAW_RECORD": {"postId": format!("B-{partition}-{id:010}"), "platform": "facebook", "likesCount": id % 97},
        "KAFKA_TOPIC": "validated.social", "KAFKA_PARTITION": partition, "KAFKA_OFFSET": id,
        "INGESTED_AT": "2025-03-01T10:00:05Z"
    })
}

/// `total` rows in batches of `size`, round-robin over `partitions`, offsets increasing per partition.
fn batches(total: u64, size: u64, partitions: u32, framing: millionx_sink_util::Framing) -> Vec<EncodedBatch> {
    let mut out = Vec::new();
    let mut b = EncodedBatch::new(0, framing);
    for i in 0..total {
        let partition = (i % u64::from(partitions)) as u32;
        let offset = i / u64::from(partitions);
        b.push_with(Origin { stream: StreamKind::Social, partition, offset }, 0, |o| {
            let _ = serde_json::to_writer(&mut *o, &row(offset, partition));
            if framing.separator.is_empty() {
                o.push(b'\n');
            }
        });
        if b.len() as u64 == size {
            b.close();
            let seq = out.len() as u64 + 1;
            out.push(std::mem::replace(&mut b, EncodedBatch::new(seq, framing)));
        }
    }
    if !b.is_empty() {
        b.close();
        out.push(b);
    }
    out
}

struct Run {
    rows: u64,
    batches: usize,
    secs: f64,
    mean_latency_ms: f64,
}

fn load(config: &SnowflakeConfig, batches: Vec<EncodedBatch>) -> Result<Run, String> {
    let sink = SnowflakeSink::connect(config).map_err(|e| e.to_string())?;
    let before = sink.metrics();
    let mut writer = sink.writer(Table::SocialPosts);
    let n = batches.len();
    let rows: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let started = Instant::now();
    let mut queue = batches.into_iter().peekable();
    let mut done = 0;
    while done < n {
        while writer.in_flight() < writer.max_in_flight() && queue.peek().is_some() {
            if let Some(b) = queue.next() {
                writer.submit(b);
            }
        }
        for c in writer.poll() {
            c.result.map_err(|e| e.to_string())?;
            done += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = started.elapsed().as_secs_f64();
    let m = sink.metrics();
    let statements = (m.statements - before.statements).max(1);
    let mean_latency_ms = (m.latency_us_sum - before.latency_us_sum) as f64 / statements as f64 / 1000.0;
    Ok(Run { rows, batches: n, secs, mean_latency_ms })
}

fn count(config: &SnowflakeConfig, rt: &tokio::runtime::Runtime, sql: &str) -> Result<u64, String> {
    let client = client(config)?;
    let (rows, _) = rt.block_on(client.execute(sql, None)).map_err(|e| e.to_string())?;
    Ok(rows.first().and_then(|r| r.values().next()).and_then(|v| v.as_u64()).unwrap_or(0))
}

fn client(config: &SnowflakeConfig) -> Result<millionx_sink_snowflake::sql::client::SqlClient, String> {
    let creds = config.resolve_credentials(&millionx_dataflow::config::Env::process()).map_err(|e| e.to_string())?;
    millionx_sink_snowflake::sql::client::SqlClient::new(config, creds, Default::default()).map_err(|e| e.to_string())
}

/// Applies the schema script to the emulator.
fn apply(config: &SnowflakeConfig, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let client = client(config)?;
    rt.block_on(millionx_sink_snowflake::schema::apply_schema(&client, std::io::sink())).map(|_| ())
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut total: u64 = 20_000;
    let mut outage: Option<u64> = None;
    let mut load_dir: Option<std::path::PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => total = args.next().and_then(|v| v.parse().ok()).ok_or("--rows N")?,
            "--load-dir" => load_dir = Some(args.next().ok_or("--load-dir DIR")?.into()),
            "--outage-secs" => outage = Some(args.next().and_then(|v| v.parse().ok()).ok_or("--outage-secs S")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    if let Some(secs) = outage {
        return outage_run(secs, &rt);
    }
    if let Some(dir) = load_dir {
        return load_files(&dir, &rt);
    }

    println!("| method | batch size | rows | batches | seconds | rows/s | mean request latency (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let fakesnow = Fakesnow::start()?;
    let sql_config = fakesnow.config();
    apply(&sql_config, &rt)?;
    for size in [100u64, 1_000, 10_000] {
        count(&sql_config, &rt, "DELETE FROM MILLIONX.RAW_DATA.SOCIAL_POSTS")?;
        let mut config = sql_config.clone();
        config.batch.max_records = size as usize;
        let run = load(&config, batches(total, size, 4, millionx_sink_util::Framing::JSON_ARRAY))?;
        let loaded = count(&sql_config, &rt, "SELECT COUNT(*) AS N FROM MILLIONX.RAW_DATA.SOCIAL_POSTS")?;
        if loaded != run.rows {
            return Err(format!("sql_batch loaded {loaded} of {} rows", run.rows));
        }
        print_run("sql_batch (fakesnow)", size, &run);
    }
    drop(fakesnow);

    let (private, public) = generate_key_pair()?;
    let dir = std::env::temp_dir().join(format!("millionx-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let key = dir.join("rsa_key.p8");
    std::fs::write(&key, private).map_err(|e| e.to_string())?;
    for size in [100u64, 1_000, 10_000] {
        let double = StreamingDouble::start(DoubleConfig::for_tests(public.clone(), Duration::from_millis(50)))?;
        let mut config = streaming_config(&double.url(), &key);
        config.streaming.commit_poll_ms = 10;
        let run = load(&config, batches(total, size, 4, millionx_sink_util::Framing::NDJSON))?;
        let loaded = double.rows(Table::SocialPosts).len() as u64;
        if loaded != run.rows {
            return Err(format!("snowpipe_streaming loaded {loaded} of {} rows", run.rows));
        }
        print_run("snowpipe_streaming (double)", size, &run);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_run(method: &str, size: u64, run: &Run) {
    println!(
        "| {method} | {size} | {} | {} | {:.2} | {:.0} | {:.1} |",
        run.rows,
        run.batches,
        run.secs,
        run.rows as f64 / run.secs,
        run.mean_latency_ms
    );
}

fn outage_run(secs: u64, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("millionx-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut f = Fakesnow::start_persistent(&dir)?;
    let mut config = f.config();
    config.retry.max_retries = 60;
    config.retry.max_backoff_ms = 2_000;
    apply(&config, rt)?;
    let sink = SnowflakeSink::connect(&config).map_err(|e| e.to_string())?;
    let mut writer = sink.writer(Table::SocialPosts);
    let all = batches(20_000, 1_000, 4, millionx_sink_util::Framing::JSON_ARRAY);
    let started = Instant::now();
    let mut done = 0;
    let mut killed = false;
    let mut queue = all.into_iter().peekable();
    while done < 20 {
        while writer.in_flight() < writer.max_in_flight() && queue.peek().is_some() {
            if let Some(b) = queue.next() {
                writer.submit(b);
            }
        }
        if done >= 5 && !killed {
            killed = true;
            f.kill();
            println!("emulator killed at {:.1} s, back in {secs} s", started.elapsed().as_secs_f64());
            std::thread::sleep(Duration::from_secs(secs));
            f.restart()?;
        }
        for c in writer.poll() {
            c.result.map_err(|e| e.to_string())?;
            done += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let loaded = count(&config, rt, "SELECT COUNT(*) AS N FROM MILLIONX.RAW_DATA.SOCIAL_POSTS")?;
    println!(
        "outage of {secs} s: {loaded} of 20000 rows loaded exactly once in {:.1} s, {} retries",
        started.elapsed().as_secs_f64(),
        sink.metrics().retries
    );
    let _ = std::fs::remove_dir_all(&dir);
    if loaded == 20_000 {
        Ok(())
    } else {
        Err("rows lost or duplicated".into())
    }
}

/// The file sink's rows of `table` as NDJSON batches of ≤ 1,000 rows, origins from the Kafka columns.
fn file_batches(dir: &std::path::Path, table: Table) -> Result<(Vec<EncodedBatch>, u64), String> {
    let folder = dir.join("snowflake").join(table.name());
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut b = EncodedBatch::new(0, millionx_sink_util::Framing::NDJSON);
    let mut lines = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{}: {e}", f.display()))?;
            let partition = v["KAFKA_PARTITION"].as_u64().unwrap_or(0) as u32;
            let offset = v["KAFKA_OFFSET"].as_u64().unwrap_or(lines);
            b.push_with(Origin { stream: StreamKind::Social, partition, offset }, 0, |o| {
                o.extend_from_slice(line.as_bytes());
                o.push(b'\n');
            });
            lines += 1;
            if b.len() == 1000 {
                b.close();
                let seq = out.len() as u64 + 1;
                out.push(std::mem::replace(&mut b, EncodedBatch::new(seq, millionx_sink_util::Framing::NDJSON)));
            }
        }
    }
    if !b.is_empty() {
        b.close();
        out.push(b);
    }
    Ok((out, lines))
}

fn write_all(config: &SnowflakeConfig, table: Table, batches: Vec<EncodedBatch>) -> Result<usize, String> {
    let sink = SnowflakeSink::connect(config).map_err(|e| e.to_string())?;
    let mut writer = sink.writer(table);
    let n = batches.len();
    let mut rejected = 0;
    let mut done = 0;
    let mut queue = batches.into_iter().peekable();
    while done < n {
        while writer.in_flight() < writer.max_in_flight() && queue.peek().is_some() {
            if let Some(b) = queue.next() {
                writer.submit(b);
            }
        }
        for c in writer.poll() {
            let outcome = c.result.map_err(|e| e.to_string())?;
            for r in &outcome.rejected {
                eprintln!("{}: rejected item {}: {} {}", table.name(), r.index, r.reason, r.message);
            }
            rejected += outcome.rejected.len();
            done += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(rejected)
}

fn load_files(dir: &std::path::Path, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let fakesnow = Fakesnow::start()?;
    let config = fakesnow.config();
    apply(&config, rt)?;
    let (private, public) = generate_key_pair()?;
    let key = std::env::temp_dir().join(format!("millionx-load-{}.p8", std::process::id()));
    std::fs::write(&key, private).map_err(|e| e.to_string())?;
    let double = StreamingDouble::start(DoubleConfig::for_tests(public, Duration::from_millis(10)))?;
    let mut streaming = streaming_config(&double.url(), &key);
    streaming.streaming.commit_poll_ms = 10;
    println!("| table | file rows | sql_batch rows | rejected | snowpipe_streaming rows |");
    println!("|---|---:|---:|---:|---:|");
    let mut ok = true;
    for table in Table::ALL {
        let (batches, lines) = file_batches(dir, table)?;
        let rejected = write_all(&config, table, batches.clone())?;
        let loaded = count(&config, rt, &format!("SELECT COUNT(*) AS N FROM MILLIONX.RAW_DATA.{}", table.name()))?;
        write_all(&streaming, table, batches)?;
        let streamed = double.rows(table).len() as u64;
        println!("| {} | {lines} | {loaded} | {rejected} | {streamed} |", table.name());
        ok &= loaded == lines && streamed == lines && rejected == 0;
    }
    let _ = std::fs::remove_file(&key);
    if ok {
        Ok(())
    } else {
        Err("row counts differ from the files".into())
    }
}
