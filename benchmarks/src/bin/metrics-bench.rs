//! Cost of the [`millionx_metrics::Metrics`] calls and of one scrape, as a Markdown table.
//!
//! `cargo run --release -p millionx-benchmarks --bin metrics-bench [-- CALLS]` (default 2,000,000 calls per
//! row). Per-call figures tell how often a caller may record: per batch (always fine) or per record.

use std::time::{Duration, Instant};

use millionx_metrics::{Metrics, MetricsError, SinkOutput};

/// One benchmarked call; its argument varies the recorded value.
type Call<'a> = Box<dyn Fn(u64) + Sync + 'a>;

fn per_call(calls: u64, threads: u64, f: &(dyn Fn(u64) + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..calls / threads {
                    f(i ^ t);
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() -> Result<(), MetricsError> {
    let calls: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let m = Metrics::new()?;
    for s in ["social", "market", "weather"] {
        m.init_stream(s, s != "weather");
    }
    m.sink("snowflake/SOCIAL_POSTS").init(SinkOutput::Rows, &["social"]);
    m.sink("weaviate/SocialPost").init(SinkOutput::Objects, &["social"]);
    m.init_worker(0);
    m.init_worker(1);

    let sink = m.sink("snowflake/SOCIAL_POSTS");
    let cases: [(&str, Call); 6] = [
        ("counter, 1 static label (`records_in`)", Box::new(|_| m.records_in("social", 1))),
        (
            "counter, 2 labels, 1 owned (`records_rejected`)",
            Box::new(|i| {
                m.records_rejected("market", if i % 2 == 0 { "missing_field:orderId" } else { "parse_error" }, 1)
            }),
        ),
        (
            "histogram, shared sink label (`SinkMetrics::event_to_sink_latency`)",
            Box::new(|i| sink.event_to_sink_latency(Duration::from_micros(i % 90_000_000))),
        ),
        ("counter, shared sink label (`SinkMetrics::batches_written`)", Box::new(|_| sink.batches_written(1))),
        (
            "histogram, no label (`embedding_duration`)",
            Box::new(|i| m.embedding_duration(Duration::from_micros(i % 400_000))),
        ),
        (
            "gauge, owned topic + partition (`kafka_consumer_lag`)",
            Box::new(|i| m.kafka_consumer_lag("validated.social", (i % 12) as u32, i)),
        ),
    ];
    println!("| call | 1 thread, ns/call | 2 threads, ns/call (wall / calls) |");
    println!("|---|---:|---:|");
    for (name, f) in &cases {
        let one = per_call(calls, 1, f.as_ref());
        let two = per_call(calls, 2, f.as_ref());
        println!("| {name} | {one:.0} | {two:.0} |");
    }

    // A scrape: render everything recorded above (≈ 120 series).
    let rounds = 200u32;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes = m.render()?.len();
    }
    let per = start.elapsed() / rounds;
    let series = m.render()?.lines().filter(|l| !l.starts_with('#')).count();
    println!("\nrender(): {:.1} µs for {series} series ({bytes} bytes), mean of {rounds}", per.as_secs_f64() * 1e6);
    Ok(())
}
