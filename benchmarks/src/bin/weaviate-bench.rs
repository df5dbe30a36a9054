//! Objects/s into the Weaviate double at several batch sizes and concurrencies.
//!
//! `cargo run --release -p millionx-benchmarks --bin weaviate-bench -- --objects 5000`
//!
//! Each run starts a fresh double, creates `SocialPost` from `ops/weaviate/SocialPost.json`, encodes
//! `--objects` posts with all 20 properties and a 384-dimensional vector into batches (not timed), then
//! times the writer as the driver uses it: submit while fewer than `max_in_flight` batches are in
//! flight, else wait for a completion. Every object is checked to be stored once afterwards. The double
//! runs in the same process (both share the machine's cores), so the figures are a floor for the
//! sink's own overhead, not a Weaviate capacity figure.

use std::time::{Duration, Instant};

use clap::Parser;
use millionx_dataflow::{Origin, StreamKind};
use millionx_sink_util::{BatchWriter, EncodedBatch, Framing};
use millionx_sink_weaviate::schema::{schema_command, ClassDef, SchemaArgs};
use millionx_sink_weaviate::{WeaviateConfig, WeaviateWriter};
use millionx_weaviate_double::WeaviateDouble;
use serde_json::json;

/// Benchmark options.
#[derive(Parser, Debug)]
#[command(about = "Objects/s into the Weaviate double by batch size × concurrency")]
struct Args {
    /// Objects per run.
    #[arg(long, default_value_t = 5_000)]
    objects: usize,
    /// Batch sizes (objects per request), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50,100,500")]
    batch_sizes: Vec<usize>,
    /// Concurrencies (max batches in flight), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    concurrency: Vec<usize>,
    /// Send objects without vectors.
    #[arg(long)]
    no_vectors: bool,
}

const FRAMING: Framing = Framing { open: "{\"objects\":[", separator: ",", close: "]}" };

fn encode(n: usize, batch_size: usize, vectors: bool) -> Vec<EncodedBatch> {
    let mut batches = Vec::new();
    let mut current = EncodedBatch::new(0, FRAMING);
    for i in 0..n {
        let post_id = format!("bench-{i}");
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, format!("social:{post_id}").as_bytes());
        let o = json!({"class": "SocialPost", "id": id.to_string(), "properties": {
            "postId": post_id, "platform": "facebook", "content": format!("Samsung Galaxy A14 for sale, post {i}"),
            "authorHash": format!("{:064x}", i), "city": "Dhaka", "postedAt": "2024-03-01T10:15:00Z",
            "productCategory": "electronics", "categoryConfidence": 0.8, "engagementCount": 12, "likesCount": 10,
            "commentsCount": 2, "sharesCount": 0, "weatherCondition": "Clear", "temperature": 29.5, "humidity": 70,
            "isWeekend": true, "hourOfDay": 16, "embeddingModel": "all-MiniLM-L6-v2", "anonymized": true, "enriched": true}});
        let mut text = o.to_string();
        if vectors {
            // f32 written as f32 (shortest round-trip form), as an encoder of f32 embeddings does.
            let v: Vec<f32> = (0..384).map(|d| (((i * 31 + d * 17) % 97) as f32 - 48.0) / 480.0).collect();
            text.pop();
            text.push_str(",\"vector\":");
            text.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "[]".into()));
            text.push('}');
        }
        let origin = Origin { stream: StreamKind::Social, partition: 0, offset: i as u64 };
        current.push_with(origin, 0, |out| out.extend_from_slice(text.as_bytes()));
        if current.len() == batch_size {
            current.close();
            let seq = batches.len() as u64 + 1;
            batches.push(std::mem::replace(&mut current, EncodedBatch::new(seq, FRAMING)));
        }
    }
    if !current.is_empty() {
        current.close();
        batches.push(current);
    }
    batches
}

struct Run {
    objects_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    mib: f64,
}

fn run(args: &Args, batch_size: usize, concurrency: usize) -> Result<Run, String> {
    let double = WeaviateDouble::start().map_err(|e| format!("double: {e}"))?;
    let config = WeaviateConfig { url: double.url(), max_in_flight: concurrency, ..WeaviateConfig::default() };
    let classes = ClassDef::builtin()?.into_iter().filter(|c| c.name == "SocialPost").collect::<Vec<_>>();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut sink = std::io::sink();
    rt.block_on(schema_command(&SchemaArgs::default(), &config, &classes, &mut sink, &mut |_| false))
        .map_err(|e| e.to_string())?;
    let batches = encode(args.objects, batch_size, !args.no_vectors);
    let bytes: usize = batches.iter().map(|b| b.body.len()).sum();
    let mut writer = WeaviateWriter::new(&config).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut pending = batches.into_iter();
    let mut written = 0usize;
    loop {
        while writer.in_flight() < writer.max_in_flight() {
            match pending.next() {
                Some(b) => writer.submit(b),
                None => break,
            }
        }
        if writer.in_flight() == 0 {
            break;
        }
        for done in writer.wait(Duration::from_secs(60)) {
            let outcome = done.result.map_err(|e| e.to_string())?;
            if !outcome.rejected.is_empty() {
                return Err(format!("unexpected rejections: {:?}", outcome.rejected));
            }
            written += done.batch.len();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if written != args.objects || double.count("SocialPost") != args.objects {
        return Err(format!("stored {} of {}", double.count("SocialPost"), args.objects));
    }
    let m = writer.metrics();
    Ok(Run {
        objects_per_s: args.objects as f64 / elapsed,
        p50_ms: m.request_latency_us.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: m.request_latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        mib: bytes as f64 / (1 << 20) as f64,
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    println!("objects per run: {}, vectors: {}", args.objects, if args.no_vectors { "none" } else { "384 × f32" });
    println!();
    println!("| batch size | concurrency | objects/s | request p50 ms | request p99 ms | body MiB |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &batch_size in &args.batch_sizes {
        for &concurrency in &args.concurrency {
            match run(&args, batch_size, concurrency) {
                Ok(r) => println!(
                    "| {batch_size} | {concurrency} | {:.0} | {:.1} | {:.1} | {:.1} |",
                    r.objects_per_s, r.p50_ms, r.p99_ms, r.mib
                ),
                Err(e) => {
                    eprintln!("batch size {batch_size}, concurrency {concurrency}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
