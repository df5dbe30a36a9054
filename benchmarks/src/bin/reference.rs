//! The reference-workload benchmark (issue 2): runs `millionx run` on the gen.py workload with each
//! requested worker count and, in the same run, a baseline that only parses each line with serde_json
//! and writes it back out (the floor any pipeline pays). Prints rec/s for each, the ratio
//! pipeline/baseline, the latency table and peak memory, and writes the same as Markdown.
//!
//! ```text
//! cargo build --release && cargo run --release -p millionx-benchmarks --bin reference -- \
//!     --social 500000 --market 500000 --hours 168 --workers 1,2 --report benchmarks/REPORT.md
//! # with embeddings (all-MiniLM-L6-v2 on every post and order): a smaller workload
//! cargo run --release -p millionx-benchmarks --bin reference -- --embed on --social 5000 --market 5000 \
//!     --hours 24 --input target/bench-data/embed --scratch target/bench-out-embed --report /tmp/embed.md
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::Parser;
use serde_json::Value;

/// The allocator the `millionx` binary uses, so the baseline is measured on equal terms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmark arguments.
#[derive(Parser, Debug)]
#[command(about = "MillionX reference-workload benchmark")]
struct Args {
    /// Input folder; generated (gen.py when ../shared exists, else `millionx gen`) if it has no social.jsonl.
    #[arg(long, default_value = "target/bench-data/reference")]
    input: PathBuf,
    /// Social posts to generate.
    #[arg(long, default_value_t = 500_000)]
    social: u64,
    /// Market orders to generate.
    #[arg(long, default_value_t = 500_000)]
    market: u64,
    /// Hours of event time.
    #[arg(long, default_value_t = 168)]
    hours: u64,
    /// Worker counts to run, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    workers: Vec<usize>,
    /// The millionx binary (build it with --release first).
    #[arg(long, default_value = "target/release/millionx")]
    millionx: PathBuf,
    /// Scratch folder for outputs.
    #[arg(long, default_value = "target/bench-out")]
    scratch: PathBuf,
    /// Write the report (Markdown) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// `millionx run --embed` mode: `off` (default: the reference workload measures the rest of the pipeline),
    /// `on` (every post and order through all-MiniLM-L6-v2; use ~5–20k records) or `auto`.
    #[arg(long, default_value = "off", value_parser = ["off", "on", "auto"])]
    embed: String,
    /// `millionx run --embed-deadline-ms` (with `--embed on`); default: the binary's.
    #[arg(long)]
    embed_deadline_ms: Option<u64>,
    /// `millionx run --embed-backend` (`auto`, `openvino`, `candle`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "openvino", "candle"])]
    embed_backend: String,
    /// Make every embedded text distinct before the run (a ` #<line>` suffix on each post's `content` and each
    /// order's `productName`), so no vector comes from the cache or a coalesced twin: the model's worst case.
    /// The rewritten files go to `<input>-distinct/`.
    #[arg(long)]
    distinct_texts: bool,
}

/// Writes `input`'s three files to `<input>-distinct/` with a ` #<line>` suffix on every post `content` and
/// order `productName` (other lines unchanged); returns that folder.
fn distinct_copy(input: &Path) -> Result<PathBuf, String> {
    let out = PathBuf::from(format!("{}-distinct", input.display()));
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, field) in
        [("social.jsonl", Some("content")), ("market.jsonl", Some("productName")), ("weather.jsonl", None)]
    {
        let f = fs::File::open(input.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let mut w = BufWriter::new(fs::File::create(out.join(name)).map_err(|e| format!("{name}: {e}"))?);
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| e.to_string())?;
            let mut v: Value = match (field, serde_json::from_str::<Value>(&line)) {
                (Some(_), Ok(v)) => v,
                _ => {
                    writeln!(w, "{line}").map_err(|e| e.to_string())?;
                    continue;
                }
            };
            if let Some(Value::String(t)) = field.and_then(|k| v.get_mut(k)) {
                t.push_str(&format!(" #{i}"));
            }
            serde_json::to_writer(&mut w, &v).map_err(|e| e.to_string())?;
            w.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// CPU seconds (user + system) of this process's waited-for children, from `/proc/self/stat` (cutime, cstime;
/// clock ticks of 1/100 s, Linux's USER_HZ). `None` off Linux.
fn children_cpu_s() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`: state is field 3; cutime and cstime are fields 16 and 17.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(13)?.parse::<f64>().ok()? + f.get(14)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct PipelineRun {
    workers: usize,
    records: u64,
    wall_s: f64,
    /// CPU seconds of the run (all threads), when known.
    cpu_s: Option<f64>,
    /// The run's `embeddings:` summary line, when embeddings were on.
    embeddings: Option<String>,
    summary: Value,
}

fn generate(a: &Args) -> Result<String, String> {
    fs::create_dir_all(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let gen_py = PathBuf::from("../shared/datagen/gen.py");
    let (social, market, hours) = (a.social.to_string(), a.market.to_string(), a.hours.to_string());
    let input = a.input.display().to_string();
    let args = ["--out", &input, "--social", &social, "--market", &market, "--hours", &hours];
    let status = if gen_py.exists() {
        Command::new("python3").arg(&gen_py).args(args).status()
    } else {
        Command::new(&a.millionx).arg("gen").args(args).status()
    };
    match status {
        Ok(s) if s.success() => Ok(if gen_py.exists() { "gen.py".into() } else { "millionx gen".into() }),
        Ok(s) => Err(format!("generator exited with {s}")),
        Err(e) => Err(format!("generator: {e}")),
    }
}

/// Parses every line of the three files with serde_json and writes it back; returns (lines, seconds).
fn baseline(input: &Path, scratch: &Path) -> Result<(u64, f64), String> {
    let out_path = scratch.join("baseline.jsonl");
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(&out_path).map_err(|e| e.to_string())?);
    let mut lines = 0u64;
    for name in ["social.jsonl", "market.jsonl", "weather.jsonl"] {
        let f = fs::File::open(input.join(name)).map_err(|e| format!("{name}: {e}"))?;
        for line in BufReader::with_capacity(1 << 20, f).lines() {
            let line = line.map_err(|e| e.to_string())?;
            lines += 1;
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                serde_json::to_writer(&mut out, &v).map_err(|e| e.to_string())?;
                out.write_all(b"\n").map_err(|e| e.to_string())?;
            }
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok((lines, started.elapsed().as_secs_f64()))
}

fn pipeline(a: &Args, input: &Path, workers: usize) -> Result<PipelineRun, String> {
    let out = a.scratch.join(format!("w{workers}"));
    let started = Instant::now();
    let cpu_before = children_cpu_s();
    let mut cmd = Command::new(&a.millionx);
    cmd.args([
        "run",
        "--input",
        &input.display().to_string(),
        "--out",
        &out.display().to_string(),
        "-w",
        &workers.to_string(),
        "--embed",
        &a.embed,
        "--embed-backend",
        &a.embed_backend,
    ]);
    if let Some(ms) = a.embed_deadline_ms {
        cmd.args(["--embed-deadline-ms", &ms.to_string()]);
    }
    let result =
        cmd.env("MILLIONX_PII_KEY", "benchmark-key").output().map_err(|e| format!("{}: {e}", a.millionx.display()))?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_s = match (cpu_before, children_cpu_s()) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let embeddings =
        String::from_utf8_lossy(&result.stdout).lines().find(|l| l.starts_with("embeddings: ")).map(str::to_owned);
    if !result.status.success() {
        return Err(format!("millionx -w {workers} failed: {}", String::from_utf8_lossy(&result.stderr)));
    }
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let records = summary["streams"]
        .as_object()
        .map_or(0, |s| s.values().map(|v| v["received"].as_u64().unwrap_or(0) + v["late"].as_u64().unwrap_or(0)).sum());
    Ok(PipelineRun { workers, records, wall_s, cpu_s, embeddings, summary })
}

fn run(a: &Args) -> Result<String, String> {
    let generator = if a.input.join("social.jsonl").exists() { "existing input".to_owned() } else { generate(a)? };
    fs::create_dir_all(&a.scratch).map_err(|e| e.to_string())?;
    let input = if a.distinct_texts { distinct_copy(&a.input)? } else { a.input.clone() };
    let (base_lines, base_s) = baseline(&input, &a.scratch)?;
    let base_rps = base_lines as f64 / base_s;
    let mut runs = Vec::new();
    for &w in &a.workers {
        runs.push(pipeline(a, &input, w)?);
    }
    let mut r = String::new();
    let _ = writeln!(r, "# Reference workload\n");
    let _ = writeln!(
        r,
        "Input: `{}` ({generator}; {} social, {} market, {} h{}), {base_lines} lines.\n",
        input.display(),
        a.social,
        a.market,
        a.hours,
        if a.distinct_texts { "; every text made distinct" } else { "" }
    );
    let _ =
        writeln!(r, "| run | records | wall s | rec/s (pipeline clock) | rec/s (wall) | vs baseline | peak RSS MiB |");
    let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(r, "| baseline (serde_json parse + write, 1 thread) | {base_lines} | {base_s:.2} | {base_rps:.0} | {base_rps:.0} | 1.00 | |");
    for p in &runs {
        let rps = p.summary["throughput_rps"].as_f64().unwrap_or(0.0);
        let rss = p.summary["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0;
        let _ = writeln!(
            r,
            "| pipeline -w {} | {} | {:.2} | {rps:.0} | {:.0} | {:.2} | {rss:.0} |",
            p.workers,
            p.records,
            p.wall_s,
            p.records as f64 / p.wall_s,
            rps / base_rps
        );
    }
    if a.embed != "off" {
        let _ = writeln!(r, "\nEmbeddings (`--embed {} --embed-backend {}`):\n", a.embed, a.embed_backend);
        let _ = writeln!(r, "| run | records | CPU s | rec per CPU-s | run's embedding line |");
        let _ = writeln!(r, "|---|---:|---:|---:|---|");
        for p in &runs {
            let cpu = p.cpu_s.map_or("?".to_owned(), |c| format!("{c:.1}"));
            let per = p.cpu_s.filter(|c| *c > 0.0).map_or("?".to_owned(), |c| format!("{:.0}", p.records as f64 / c));
            let line = p.embeddings.as_deref().unwrap_or("(embeddings off)");
            let _ = writeln!(r, "| -w {} | {} | {cpu} | {per} | {line} |", p.workers, p.records);
        }
    }
    let _ = writeln!(r, "\nread→sink latency of Snowflake rows and Weaviate objects (ms):\n");
    let _ = writeln!(r, "| run | p50 | p95 | p99 | p99.9 | max |");
    let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|");
    for p in &runs {
        let l = &p.summary["latency"];
        let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            r,
            "| -w {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            p.workers,
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            f("p999_ms"),
            f("max_ms")
        );
    }
    let _ = writeln!(r, "\nread→sink latency per sink (ms):\n");
    let _ = writeln!(r, "| run | sink | records | p50 | p95 | p99 | max |");
    let _ = writeln!(r, "|---|---|---:|---:|---:|---:|---:|");
    for p in &runs {
        for (name, l) in p.summary["sink_latency"].as_object().into_iter().flatten() {
            let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
            let _ = writeln!(
                r,
                "| -w {} | {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                p.workers,
                l["count"].as_u64().unwrap_or(0),
                f("p50_ms"),
                f("p95_ms"),
                f("p99_ms"),
                f("max_ms")
            );
        }
    }
    if let [one, two, ..] = runs.as_slice() {
        let s1 = one.summary["throughput_rps"].as_f64().unwrap_or(0.0);
        let s2 = two.summary["throughput_rps"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            r,
            "\nScaling -w {} → -w {}: {:.2}×",
            one.workers,
            two.workers,
            if s1 > 0.0 { s2 / s1 } else { 0.0 }
        );
    }
    Ok(r)
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(report) => {
            print!("{report}");
            if let Some(p) = &a.report {
                if let Err(e) = fs::write(p, &report) {
                    eprintln!("error: --report {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
