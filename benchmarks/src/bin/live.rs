//! The live Kafka benchmark (issue 15). Starts a tansu broker, then:
//! - **live**: for each offered rate, an open-loop paced producer writes `millionx gen` posts and orders into
//!   the broker while `millionx run --source kafka` (default batch settings) consumes them and, in the same
//!   run, a raw rdkafka consumer reads the same topics. Reports achieved rec/s, event→sink-acknowledged
//!   latency (event = produce time; acknowledged = the file sink's finished batch file is visible, polled every
//!   10 ms) p50/p99/p99.9 with hdrhistogram, the raw consumer's produce→read latency, and the interval between
//!   changes of the group's committed offsets as read back from the broker (polled every 100 ms).
//! - **catch-up**: topics pre-filled with the same data: `run --source kafka --exit-at-end` vs the raw
//!   consumer reading to the end vs `run --input` (the file path), as rec/s of wall time.
//!
//! ```text
//! cargo build -p millionx -p millionx-benchmarks
//! $CARGO_TARGET_DIR/debug/live --millionx $CARGO_TARGET_DIR/debug/millionx --rates 5000,20000,50000
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

/// Benchmark arguments.
#[derive(Parser, Debug)]
#[command(about = "MillionX live Kafka benchmark")]
struct Args {
    /// The millionx binary.
    #[arg(long)]
    millionx: PathBuf,
    /// The tansu broker binary.
    #[arg(long, default_value = "/opt/millionx-tools/bin/tansu")]
    tansu: PathBuf,
    /// Offered rates (records/s, posts + orders), comma separated.
    #[arg(long, default_value = "5000,20000,50000", value_delimiter = ',')]
    rates: Vec<u64>,
    /// Seconds of production per rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Posts and orders each in the generated data (the catch-up data set; the live phases cycle through it).
    #[arg(long, default_value_t = 50_000)]
    records: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// `millionx run -w`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Scratch folder.
    #[arg(long, default_value = "/tmp/millionx-live-bench")]
    scratch: PathBuf,
    /// A millionx config file for the Kafka runs (`run --config`, e.g. a `[kafka]` table to compare settings).
    #[arg(long)]
    config: Option<PathBuf>,
}

const TOPICS: [&str; 4] = ["validated.social", "validated.market", "context.weather", "dlq.millionx"];
const RECORD_TOPICS: [&str; 2] = ["validated.social", "validated.market"];

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

struct Broker {
    child: Child,
    addr: String,
}

impl Broker {
    fn start(tansu: &Path, partitions: u32) -> Result<Broker, String> {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", tansu.display()))?;
        let broker = Broker { child, addr };
        let start = Instant::now();
        while TcpStream::connect(&broker.addr).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err("tansu did not listen within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for t in TOPICS {
            let ok = Command::new(tansu)
                .args(["topic", "create", t, "--broker", &url, "--partitions", &partitions.to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!("creating topic {t}"));
            }
        }
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(topic, key, payload)` of every post and order line, interleaved.
fn messages(dir: &Path) -> Result<Vec<(&'static str, String, String)>, String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"));
    let (social, market) = (read("social.jsonl")?, read("market.jsonl")?);
    let key = |line: &str, field: &str| {
        serde_json::from_str::<Value>(line).ok().and_then(|v| v.get(field)?.as_str().map(str::to_owned))
    };
    let mut out = Vec::new();
    let mut s = social.lines();
    let mut m = market.lines();
    loop {
        let (a, b) = (s.next(), m.next());
        if a.is_none() && b.is_none() {
            break;
        }
        for (topic, field, line) in [("validated.social", "postId", a), ("validated.market", "orderId", b)] {
            if let Some(line) = line {
                let k = key(line, field).unwrap_or_else(|| out.len().to_string());
                out.push((topic, k, line.to_owned()));
            }
        }
    }
    Ok(out)
}

/// Produces every weather line (unpaced, before the live phase: the joins then never wait for weather).
fn produce_weather(addr: &str, weather: &str) -> Result<(), String> {
    let p = producer(addr)?;
    for (i, line) in weather.lines().enumerate() {
        let key = i.to_string();
        let mut record = BaseRecord::to("context.weather").key(key.as_str()).payload(line);
        while let Err((_, r)) = p.send(record) {
            record = r;
            p.poll(Duration::from_millis(1));
        }
    }
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())
}

fn producer(addr: &str) -> Result<BaseProducer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| e.to_string())
}

/// Produces `msgs` paced at `rate`/s for `seconds` (open loop: each message at its scheduled time, whatever the
/// consumers do), returning key → produce time (ns since the Unix epoch, the first time a key was sent).
fn produce_paced(
    addr: &str,
    msgs: &[(&'static str, String, String)],
    rate: u64,
    seconds: u64,
) -> Result<HashMap<String, u64>, String> {
    let p = producer(addr)?;
    let total = (rate * seconds) as usize;
    let mut sent = HashMap::with_capacity(total);
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_nanos(i as u64 * 1_000_000_000 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let (topic, key, payload) = &msgs[i % msgs.len()];
        let mut record = BaseRecord::to(topic).key(key.as_str()).payload(payload.as_str());
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    p.poll(Duration::from_millis(1));
                }
            }
        }
        sent.entry(key.clone()).or_insert_with(now_ns);
        if i % 256 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    Ok(sent)
}

/// A raw consumer of the record topics from the beginning until `stop`: messages read and the produce→read
/// latency (µs, from the message's CreateTime in ms).
fn raw_consumer(
    addr: &str,
    partitions: u32,
    stop: &AtomicBool,
    until: Option<u64>,
) -> Result<(u64, Histogram<u64>, Duration), String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "raw-bench")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for t in RECORD_TOPICS {
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(t, p, Offset::Beginning).map_err(|e| e.to_string())?;
        }
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())?;
    let (mut n, start) = (0u64, Instant::now());
    let mut last = start;
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| n < u) {
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                n += 1;
                last = Instant::now();
                if let Some(ms) = m.timestamp().to_millis() {
                    h.saturating_record(now_ns().saturating_sub(ms as u64 * 1_000_000) / 1_000);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {}
        }
    }
    Ok((n, h, last - start))
}

/// The sum of `group`'s committed offsets over the record topics (0 for a partition without a commit).
fn committed_total(c: &BaseConsumer, partitions: u32) -> i64 {
    let mut tpl = TopicPartitionList::new();
    for t in RECORD_TOPICS {
        for p in 0..partitions as i32 {
            tpl.add_partition(t, p);
        }
    }
    c.committed_offsets(tpl, Duration::from_secs(5))
        .map(|l| l.elements().iter().filter_map(|e| e.offset().to_raw()).filter(|o| *o > 0).sum())
        .unwrap_or(0)
}

/// Ids in the finished batch files of the two record tables not seen before, with the time they were seen.
fn scan(out: &Path, seen_files: &mut std::collections::HashSet<PathBuf>, found: &mut Vec<(String, u64)>) {
    for (table, field) in [("SOCIAL_POSTS", "POST_ID"), ("MARKET_ORDERS", "ORDER_ID")] {
        let Ok(dir) = std::fs::read_dir(out.join("snowflake").join(table)) else { continue };
        for e in dir.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "ndjson") || seen_files.contains(&p) {
                continue;
            }
            let at = now_ns();
            if let Ok(text) = std::fs::read_to_string(&p) {
                for line in text.lines() {
                    if let Some(id) =
                        serde_json::from_str::<Value>(line).ok().and_then(|v| v[field].as_str().map(str::to_owned))
                    {
                        found.push((id, at));
                    }
                }
            }
            seen_files.insert(p);
        }
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn run_cmd(args: &Args) -> Command {
    let mut c = Command::new(&args.millionx);
    c.env("MILLIONX_PII_KEY", "bench-key").stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// `run --config FILE` when the benchmark was given one (the Kafka runs only).
fn config_args(args: &Args) -> Vec<std::ffi::OsString> {
    args.config.iter().flat_map(|f| ["--config".into(), f.clone().into_os_string()]).collect()
}

fn live(
    args: &Args,
    msgs: &[(&'static str, String, String)],
    weather: &str,
    rate: u64,
    report: &mut String,
) -> Result<(), String> {
    let broker = Broker::start(&args.tansu, args.partitions)?;
    produce_weather(&broker.addr, weather)?;
    let out = args.scratch.join(format!("live-{rate}"));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = run_cmd(args)
        .args(["run", "--embed", "off", "-w", &args.workers.to_string(), "--out"])
        .arg(&out)
        .args(["--source", "kafka", "--brokers", &broker.addr, "--group", "bench"])
        .args(config_args(args))
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(2)); // connected and assigned
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, parts) = (broker.addr.clone(), args.partitions);
    let raw = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || raw_consumer(&addr, parts, &stop, None))
    };
    let commits = {
        let (stop, addr) = (Arc::clone(&stop), broker.addr.clone());
        std::thread::spawn(move || -> Vec<u64> {
            let Ok(c) =
                ClientConfig::new().set("bootstrap.servers", &addr).set("group.id", "bench").create::<BaseConsumer>()
            else {
                return Vec::new();
            };
            let (mut last, mut changes) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let now = committed_total(&c, parts);
                if now != last {
                    last = now;
                    changes.push(now_ns());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            changes
        })
    };
    let found = Arc::new(Mutex::new(Vec::new()));
    let watcher = {
        let (stop, found, out) = (Arc::clone(&stop), Arc::clone(&found), out.clone());
        std::thread::spawn(move || {
            let mut files = std::collections::HashSet::new();
            while !stop.load(Ordering::Relaxed) {
                let mut local = Vec::new();
                scan(&out, &mut files, &mut local);
                if let Ok(mut g) = found.lock() {
                    g.extend(local);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let sent = produce_paced(&broker.addr, msgs, rate, args.seconds)?;
    let produced_for = started.elapsed();
    // Drain: until no new row for 3 s (invalid and duplicate records are never written), at most 60 s.
    let drain = Instant::now();
    let (mut count, mut since) = (0, Instant::now());
    while since.elapsed() < Duration::from_secs(3) && drain.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        let now = found.lock().map(|g| g.len()).unwrap_or(0);
        if now != count {
            (count, since) = (now, Instant::now());
        }
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let changes = commits.join().unwrap_or_default();
    let (raw_n, raw_h, _) = raw.join().map_err(|_| "raw consumer panicked")??;

    let found = found.lock().map_err(|_| "poisoned")?.clone();
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())?;
    let (mut first, mut last_seen) = (u64::MAX, 0);
    let mut done = std::collections::HashSet::new();
    for (id, at) in &found {
        if let (Some(t), true) = (sent.get(id), done.insert(id)) {
            h.saturating_record(at.saturating_sub(*t) / 1_000);
            first = first.min(*t);
            last_seen = last_seen.max(*at);
        }
    }
    let achieved = done.len() as f64 / ((last_seen.saturating_sub(first)) as f64 / 1e9).max(1e-9);
    let gaps: Vec<f64> = changes.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
    let max_gap = gaps.iter().copied().fold(0.0, f64::max);
    let mean_gap = if gaps.is_empty() { 0.0 } else { gaps.iter().sum::<f64>() / gaps.len() as f64 };
    writeln!(
        report,
        "| {rate} | {:.0} | {} / {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.2} / {:.2} | {raw_n} | {:.1} / {:.1} |",
        (rate * args.seconds) as f64 / produced_for.as_secs_f64(),
        done.len(),
        sent.len(),
        achieved,
        ms(&h, 0.5),
        ms(&h, 0.99),
        ms(&h, 0.999),
        h.max() as f64 / 1000.0,
        changes.len(),
        mean_gap,
        max_gap,
        ms(&raw_h, 0.5),
        ms(&raw_h, 0.99),
    )
    .map_err(|e| e.to_string())?;
    eprintln!("{report}");
    Ok(())
}

fn catch_up(args: &Args, data: &Path, total: u64, report: &mut String) -> Result<(), String> {
    let broker = Broker::start(&args.tansu, args.partitions)?;
    let ok = run_cmd(args).args(["produce", "--input"]).arg(data).args(["--brokers", &broker.addr]).status();
    if !ok.is_ok_and(|s| s.success()) {
        return Err("millionx produce failed".into());
    }
    let stop = AtomicBool::new(false);
    let (raw_n, _, raw_t) = raw_consumer(&broker.addr, args.partitions, &stop, Some(total))?;
    let time = |c: &mut Command| -> Result<f64, String> {
        let t = Instant::now();
        let s = c.status().map_err(|e| e.to_string())?;
        if !s.success() {
            return Err(format!("{c:?} failed: {s}"));
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let w = args.workers.to_string();
    // A previous run's output and state (another `-w`) must not be resumed.
    for dir in ["catch-kafka", "catch-file"] {
        let _ = std::fs::remove_dir_all(args.scratch.join(dir));
    }
    let kafka = time(
        run_cmd(args)
            .args(["run", "--embed", "off", "-w", &w, "--out"])
            .arg(args.scratch.join("catch-kafka"))
            .args(["--source", "kafka", "--brokers", &broker.addr, "--group", "catch", "--exit-at-end"])
            .args(config_args(args)),
    )?;
    let file = time(
        run_cmd(args)
            .args(["run", "--embed", "off", "-w", &w, "--input"])
            .arg(data)
            .arg("--out")
            .arg(args.scratch.join("catch-file")),
    )?;
    let raw_rate = raw_n as f64 / raw_t.as_secs_f64();
    let (k, f) = (total as f64 / kafka, total as f64 / file);
    writeln!(
        report,
        "\n| catch-up ({total} posts+orders, -w {w}) | wall s | rec/s | vs raw | vs file |\n|---|---:|---:|---:|---:|\n\
         | raw rdkafka consumer | {:.2} | {raw_rate:.0} | 1.00 | |\n\
         | run --source kafka --exit-at-end | {kafka:.2} | {k:.0} | {:.2} | {:.2} |\n\
         | run --input (file path) | {file:.2} | {f:.0} | | 1.00 |",
        raw_t.as_secs_f64(),
        k / raw_rate,
        k / f
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.scratch).map_err(|e| e.to_string())?;
    let data = args.scratch.join("data");
    if !data.join("social.jsonl").exists() {
        let n = args.records.to_string();
        let ok = run_cmd(&args).args(["gen", "--out"]).arg(&data).args(["--social", &n, "--market", &n]).status();
        if !ok.is_ok_and(|s| s.success()) {
            return Err("millionx gen failed".into());
        }
    }
    let msgs = messages(&data)?;
    let mut report = String::from(
        "| offered rec/s | produced rec/s | ids written / sent | achieved rec/s | p50 ms | p99 ms | p99.9 ms | max ms | commit changes | commit interval mean / max s | raw read | raw p50 / p99 ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let weather = std::fs::read_to_string(data.join("weather.jsonl")).map_err(|e| e.to_string())?;
    for &rate in &args.rates {
        live(&args, &msgs, &weather, rate, &mut report)?;
    }
    catch_up(&args, &data, msgs.len() as u64, &mut report)?;
    println!("{report}");
    Ok(())
}
