//! Embedding throughput benchmark: sentences/s and sentences per CPU-second of the [`EmbedPool`] for each
//! backend (candle f32, OpenVINO bf16 and f32), batch size and thread layout, on a synthetic corpus shaped like MillionX posts and orders (no cache hits: every
//! text is distinct and the cache is off).
//!
//! `cargo run --release -p millionx-benchmarks --bin embed-bench -- [--sentences N] [--batches 8,32,128]
//! [--backends candle,openvino-bf16,openvino-f32]`
//!
//! Each configuration runs in a child process of this binary, because candle fixes its intra-op thread count
//! (`RAYON_NUM_THREADS`) when its thread pool first starts, and OpenVINO's precision is chosen per process
//! (`MILLIONX_OPENVINO_PRECISION`). OpenVINO runs one stream of one thread per pool thread, so the intra-op
//! layout is candle's only. Prints a markdown table.

use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;

use millionx_dataflow::catalog::PRODUCTS;
use millionx_dataflow::City;
use millionx_embed::{EmbedBackend, EmbedPool, PoolConfig};

/// The allocator of the `millionx` binary, so the figures match the pipeline's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TEMPLATES: [&str; 12] = [
    "Just got my {p} delivered in {c}, loving it!",
    "Anyone know where to buy a good {p} in {c}? Need it before Eid",
    "{p} price went up again... {c} shops are crazy this week",
    "Review: the {p} is worth every taka, delivery to {c} took two days and the seller answered every question #deal",
    "Flash sale on {p} limited stock {n} left",
    "My {p} stopped working after {n} days. Refund please, I am in {c} and nobody answers the hotline",
    "vai {p} ta kemon? {c} e kothay pabo? dam koto?",
    "Alhamdulillah {p} ta valo, {c} e delivery fast chilo",
    "আজ {c} এ খুব গরম! {p} কিনলাম",
    "{p} {k}",
    "{p} {k}",
    "Call me at [PHONE] if you want to resell your {p}, pickup from {c} only, price negotiable for quick sale",
];

/// Deterministic corpus: `n` distinct texts.
fn corpus(n: usize) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // SplitMix64 (Steele, Lea, Flood 2014): a fixed, seedable sequence for the benchmark corpus.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|i| {
            let t = TEMPLATES[(next() % TEMPLATES.len() as u64) as usize];
            let p = &PRODUCTS[(next() % PRODUCTS.len() as u64) as usize];
            let c = City::ALL[(next() % City::ALL.len() as u64) as usize];
            let text = t
                .replace("{p}", p.name)
                .replace("{c}", c.name())
                .replace("{k}", p.category.name())
                .replace("{n}", &(2 + next() % 9).to_string());
            // A counter keeps every text distinct without changing its length class.
            format!("{text} #{i}")
        })
        .collect()
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms, Linux USER_HZ = 100).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5) are utime and stime; `after` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Sentences per CPU-second of the embedding pool for each backend, thread layout and batch size.
#[derive(Parser, Debug)]
#[command(name = "embed-bench")]
struct Args {
    /// Distinct texts per configuration.
    #[arg(long, default_value_t = 512)]
    sentences: usize,
    /// Batch sizes (texts per model call), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    batches: Vec<usize>,
    /// Backends: candle, openvino-bf16, openvino-f32, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "candle,openvino-bf16,openvino-f32")]
    backends: Vec<String>,
    /// Internal: run one configuration in this process (set by the parent).
    #[arg(long, hide = true)]
    child: bool,
    /// Internal (child): the batch size.
    #[arg(long, hide = true)]
    batch: Option<usize>,
    /// Internal (child): pool threads.
    #[arg(long, hide = true)]
    threads: Option<usize>,
    /// Internal (child): `candle` or `openvino`.
    #[arg(long, hide = true)]
    backend: Option<String>,
}

fn child(args: &Args) -> Result<(), String> {
    let n = args.sentences;
    let batch = args.batch.ok_or("--batch N required")?;
    let threads = args.threads.ok_or("--threads N required")?;
    let backend = match args.backend.as_deref() {
        Some("candle") => EmbedBackend::Candle,
        Some("openvino") => EmbedBackend::Openvino,
        _ => return Err("--backend candle|openvino required".into()),
    };
    let dir = millionx_embed::locate_model_dir().map_err(|e| e.to_string())?;
    let embedder = millionx_embed::load_encoder(backend, &dir, threads).map_err(|e| e.to_string())?;
    let pieces = millionx_embed::model::load_word_pieces(&dir).map_err(|e| e.to_string())?;
    let texts = corpus(n);
    let tokens: usize = texts.iter().map(|t| pieces.token_count(t).unwrap_or(0)).sum();
    let config = PoolConfig { threads, queue_capacity: n.max(1), max_batch: batch, cache_capacity: 0 };
    let pool = EmbedPool::start(embedder, config).map_err(|e| e.to_string())?;
    let mut client = pool.client(None);
    // Warm-up outside the timing: one batch of other texts.
    let warm: Vec<(u64, String)> =
        corpus(n + batch).split_off(n).into_iter().enumerate().map(|(i, t)| (i as u64, t)).collect();
    client.submit(&warm).map_err(|e| e.to_string())?;
    for _ in 0..warm.len() {
        client.wait(Duration::from_secs(600)).ok_or("warm-up timed out")?;
    }
    let items: Vec<(u64, &str)> = texts.iter().enumerate().map(|(i, t)| (i as u64, t.as_str())).collect();
    let cpu0 = cpu_time().ok_or("cannot read /proc/self/stat")?;
    let t0 = Instant::now();
    let accepted = client.submit(&items).map_err(|e| e.to_string())?;
    if accepted != n {
        return Err(format!("queue accepted {accepted} of {n}"));
    }
    for _ in 0..n {
        let (_, v) = client.wait(Duration::from_secs(600)).ok_or("timed out")?;
        v.ok_or("a batch failed")?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time().ok_or("cannot read /proc/self/stat")? - cpu0).as_secs_f64();
    let stats = pool.stats();
    println!(
        "RESULT {n} {wall:.3} {cpu:.3} {:.1} {} {}",
        tokens as f64 / n as f64,
        stats.batch_p50_us,
        stats.batch_p99_us
    );
    Ok(())
}

fn main() {
    let args = Args::parse();
    if args.child {
        if let Err(e) = child(&args) {
            eprintln!("embed-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let n = args.sentences.to_string();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("embed-bench: cannot find own executable: {e}");
            std::process::exit(1);
        }
    };
    // (label, pool threads, intra-op threads)
    let layouts =
        [("1 thread", 1usize, 1usize), ("2 threads: 2 pool × 1", 2, 1), ("2 threads: 1 pool × 2 intra-op", 1, 2)];
    println!("| backend | threads | batch | sentences | mean tokens | wall s | CPU s | sentences/s | sentences per CPU-s | batch p50 ms | batch p99 ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for name in &args.backends {
        let (backend, precision) = match name.as_str() {
            "candle" => ("candle", ""),
            "openvino-bf16" => ("openvino", "bf16"),
            "openvino-f32" => ("openvino", "f32"),
            other => {
                eprintln!("embed-bench: unknown backend {other:?} (candle, openvino-bf16, openvino-f32)");
                std::process::exit(2);
            }
        };
        for (label, pool_threads, intra) in layouts {
            if backend == "openvino" && intra > 1 {
                continue;
            }
            for b in &args.batches {
                let out = Command::new(&exe)
                    .args(["--child", "--sentences", &n, "--batch", &b.to_string()])
                    .args(["--threads", &pool_threads.to_string()])
                    .args(["--backend", backend])
                    .env("RAYON_NUM_THREADS", intra.to_string())
                    .env("MILLIONX_OPENVINO_PRECISION", precision)
                    .output();
                let out = match out {
                    Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                    Ok(o) => {
                        eprintln!("embed-bench: child failed: {}", String::from_utf8_lossy(&o.stderr).trim());
                        std::process::exit(1);
                    }
                    Err(e) => {
                        eprintln!("embed-bench: cannot run child: {e}");
                        std::process::exit(1);
                    }
                };
                let Some(line) = out.lines().find(|l| l.starts_with("RESULT ")) else {
                    eprintln!("embed-bench: child printed no result");
                    std::process::exit(1);
                };
                let f: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                if f.len() < 6 {
                    eprintln!("embed-bench: bad child result: {line}");
                    std::process::exit(1);
                }
                let (count, wall, cpu, mean_tok, p50, p99) = (f[0], f[1], f[2], f[3], f[4], f[5]);
                println!(
                "| {name} | {label} | {b} | {count} | {mean_tok:.1} | {wall:.2} | {cpu:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
                count / wall,
                count / cpu.max(1e-9),
                p50 / 1000.0,
                p99 / 1000.0
            );
            }
        }
    }
}
