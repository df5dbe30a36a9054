//! The timely `embed` operator on small graphs: captured outputs asserted exactly.

mod common;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bits, fake_vector, order, post, FakeEncoder};
use millionx_dataflow::catalog::Category;
use millionx_dataflow::record::{EnrichedOrder, EnrichedPost};
use millionx_embed::{cosine, Embed, EmbedConfig, EmbedPool, EmbedStats, PoolConfig};
use timely::dataflow::operators::capture::{Capture, Extract};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Input, Probe};

type Out = Vec<(u64, Vec<(String, Option<Vec<u32>>)>)>;

/// `(epoch, [(id, first vector bits)])`: short enough to read when an assertion fails.
type Short = Vec<(u64, Vec<(String, Option<u32>)>)>;

fn short(out: &Out) -> Short {
    out.iter().map(|(t, r)| (*t, r.iter().map(|(id, v)| (id.clone(), v.as_ref().map(|v| v[0]))).collect())).collect()
}

/// Exact comparison, printing the short form on failure.
fn check(out: &Out, expected: Out) {
    assert!(*out == expected, "output {:?}\nexpected {:?}", short(out), short(&expected));
}

/// Runs posts through `embed`; `epochs` lists (epoch, [(post id, content)]). Returns the captured output.
fn run_posts(
    pool: Option<Arc<EmbedPool>>,
    config: EmbedConfig,
    stats: Arc<EmbedStats>,
    epochs: Vec<(u64, Vec<(&'static str, &'static str)>)>,
) -> Out {
    let (send, recv) = mpsc::channel();
    timely::execute_directly(move |worker| {
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, posts) = scope.new_input::<Vec<EnrichedPost>>();
            posts
                .embed(pool.as_deref(), config, stats)
                .map(|p: EnrichedPost| (p.post_id, p.enrichment.embedding.as_deref().map(bits)))
                .capture_into(send);
            input
        });
        for (epoch, posts) in epochs {
            input.advance_to(epoch);
            for (id, content) in posts {
                input.send(post(id, content));
            }
        }
    });
    recv.extract()
}

fn fake_pool(fake: &Arc<FakeEncoder>) -> Arc<EmbedPool> {
    Arc::new(EmbedPool::start(fake.clone(), PoolConfig { threads: 1, ..PoolConfig::default() }).expect("pool starts"))
}

#[test]
fn every_record_gets_its_vector_at_its_own_epoch() {
    let fake = FakeEncoder::new(false);
    let stats = Arc::new(EmbedStats::default());
    let out = run_posts(
        Some(fake_pool(&fake)),
        EmbedConfig { batch_size: 2, ..EmbedConfig::default() },
        Arc::clone(&stats),
        vec![(0, vec![("p1", "rice price up"), ("p2", "hot in Dhaka")]), (3, vec![("p3", "rice price up")])],
    );
    let v = |t: &str| Some(bits(&fake_vector(t)));
    check(
        &out,
        vec![
            (0, vec![("p1".to_owned(), v("rice price up")), ("p2".to_owned(), v("hot in Dhaka"))]),
            (3, vec![("p3".to_owned(), v("rice price up"))]),
        ],
    );
    assert_eq!(stats.records_in.load(Ordering::SeqCst), 3);
    assert_eq!(stats.embedded.load(Ordering::SeqCst), 3);
    assert_eq!(stats.late.load(Ordering::SeqCst), 0);
    assert_eq!(stats.pending.load(Ordering::SeqCst), 0);
    assert_eq!(stats.coverage(), 1.0);
    assert_eq!(fake.times("rice price up"), 1, "the repeated text came from the cache or joined the first");
}

#[test]
fn orders_embed_product_name_and_category() {
    let fake = FakeEncoder::new(false);
    let pool = fake_pool(&fake);
    let stats = Arc::new(EmbedStats::default());
    let (send, recv) = mpsc::channel();
    timely::execute_directly(move |worker| {
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, orders) = scope.new_input::<Vec<EnrichedOrder>>();
            orders
                .embed(Some(&pool), EmbedConfig::default(), stats)
                .map(|o: EnrichedOrder| (o.order_id, o.enrichment.embedding.as_deref().map(bits)))
                .capture_into(send);
            input
        });
        input.send(order("o1", "Hilsa Fish 1kg", Category::Groceries));
        input.advance_to(1);
        input.send(order("o2", "Cricket Bat", Category::Sports));
    });
    let out: Out = recv.extract();
    check(
        &out,
        vec![
            (0, vec![("o1".to_owned(), Some(bits(&fake_vector("Hilsa Fish 1kg groceries"))))]),
            (1, vec![("o2".to_owned(), Some(bits(&fake_vector("Cricket Bat sports"))))]),
        ],
    );
}

#[test]
fn records_past_the_deadline_leave_without_a_vector() {
    let fake = FakeEncoder::new(true); // the model never answers during the run
    let pool = fake_pool(&fake);
    let stats = Arc::new(EmbedStats::default());
    let started = Instant::now();
    let out = run_posts(
        Some(Arc::clone(&pool)),
        EmbedConfig { deadline: Duration::from_millis(100), ..EmbedConfig::default() },
        Arc::clone(&stats),
        vec![(0, vec![("p1", "a"), ("p2", "b")]), (1, vec![("p3", "c")])],
    );
    let elapsed = started.elapsed();
    fake.open();
    check(&out, vec![(0, vec![("p1".to_owned(), None), ("p2".to_owned(), None)]), (1, vec![("p3".to_owned(), None)])]);
    assert!(elapsed >= Duration::from_millis(100), "left after {elapsed:?}, before the deadline");
    assert_eq!(stats.late.load(Ordering::SeqCst), 3);
    assert_eq!(stats.embedded.load(Ordering::SeqCst), 0);
    assert_eq!(stats.coverage(), 0.0);
}

#[test]
fn without_a_model_records_pass_through() {
    let stats = Arc::new(EmbedStats::default());
    let out = run_posts(None, EmbedConfig::default(), Arc::clone(&stats), vec![(5, vec![("p1", "a"), ("p2", "b")])]);
    check(&out, vec![(5, vec![("p1".to_owned(), None), ("p2".to_owned(), None)])]);
    assert_eq!(stats.off.load(Ordering::SeqCst), 2);
    assert_eq!(stats.coverage(), 0.0);
}

#[test]
fn the_epoch_is_held_until_its_vectors_arrive() {
    let fake = FakeEncoder::new(true);
    let pool = fake_pool(&fake);
    let stats = Arc::new(EmbedStats::default());
    let (send, recv) = mpsc::channel();
    let f = Arc::clone(&fake);
    let s = Arc::clone(&stats);
    let held = Arc::clone(&stats);
    timely::execute_directly(move |worker| {
        let config = EmbedConfig { batch_size: 1, deadline: Duration::from_secs(60), ..EmbedConfig::default() };
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, posts) = scope.new_input::<Vec<EnrichedPost>>();
            let (probe, out) = posts.embed(Some(&pool), config, s).probe();
            out.map(|p: EnrichedPost| (p.post_id, p.enrichment.embedding.as_deref().map(bits))).capture_into(send);
            (input, probe)
        });
        input.send(post("p1", "first"));
        input.advance_to(1);
        input.send(post("p2", "second"));
        input.advance_to(2);
        for _ in 0..200 {
            worker.step();
        }
        // The input is at 2, but nothing can leave while the model is shut: epoch 0 is still held.
        assert!(probe.less_equal(&0), "the operator let epoch 0 pass without its records");
        assert_eq!(held.pending.load(Ordering::SeqCst), 2);
        f.open();
        let until = Instant::now() + Duration::from_secs(10);
        while probe.less_than(&2) && Instant::now() < until {
            worker.step_or_park(Some(Duration::from_millis(10)));
        }
        assert!(!probe.less_than(&2), "epochs 0 and 1 did not complete");
    });
    let out: Out = recv.extract();
    check(
        &out,
        vec![
            (0, vec![("p1".to_owned(), Some(bits(&fake_vector("first"))))]),
            (1, vec![("p2".to_owned(), Some(bits(&fake_vector("second"))))]),
        ],
    );
    assert_eq!(stats.embedded.load(Ordering::SeqCst), 2);
}

#[test]
fn batches_go_by_count_by_age_and_at_the_end_of_input() {
    let fake = FakeEncoder::new(false);
    let pool = fake_pool(&fake);
    let p = Arc::clone(&pool);
    let stats = Arc::new(EmbedStats::default());
    timely::execute_directly(move |worker| {
        let config = EmbedConfig {
            batch_size: 4,
            max_batch_delay: Duration::from_millis(30),
            deadline: Duration::from_secs(60),
            max_submit_per_activation: 512,
        };
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, posts) = scope.new_input::<Vec<EnrichedPost>>();
            let (probe, _out) = posts.embed(Some(&p), config, stats).probe();
            (input, probe)
        });
        // Three texts: below the count, younger than the age limit — nothing goes yet.
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            input.send(post(id, id));
        }
        input.flush();
        worker.step();
        worker.step();
        if t0.elapsed() < Duration::from_millis(30) {
            assert_eq!(pool.stats().submitted, 0, "submitted before the batch was full or old");
        }
        // The fourth fills the batch.
        input.send(post("d", "d"));
        input.flush();
        worker.step();
        worker.step();
        assert_eq!(pool.stats().submitted, 4);
        // One more, left alone: it goes when 30 ms old.
        input.send(post("e", "e"));
        input.flush();
        let t1 = Instant::now();
        let until = Instant::now() + Duration::from_secs(10);
        while pool.stats().submitted < 5 && Instant::now() < until {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        assert_eq!(pool.stats().submitted, 5);
        assert!(t1.elapsed() >= Duration::from_millis(25), "a partial batch went after {:?}", t1.elapsed());
        // End of input flushes at once.
        input.send(post("f", "f"));
        drop(input);
        let until = Instant::now() + Duration::from_secs(10);
        while !probe.done() && Instant::now() < until {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        assert!(probe.done());
        assert_eq!(pool.stats().submitted, 6);
    });
}

#[test]
fn each_activation_submits_a_bounded_number_of_texts() {
    let fake = FakeEncoder::new(true);
    let pool = fake_pool(&fake);
    let p = Arc::clone(&pool);
    let f = Arc::clone(&fake);
    timely::execute_directly(move |worker| {
        let config = EmbedConfig { batch_size: 2, max_submit_per_activation: 2, ..EmbedConfig::default() };
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, posts) = scope.new_input::<Vec<EnrichedPost>>();
            let (probe, _out) = posts.embed(Some(&p), config, Arc::new(EmbedStats::default())).probe();
            (input, probe)
        });
        for i in 0..6 {
            input.send(post(&format!("p{i}"), &format!("text {i}")));
        }
        input.flush();
        let mut seen = Vec::new();
        for _ in 0..20 {
            worker.step();
            let s = pool.stats().submitted;
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
        // 2 texts per activation, the operator re-activating itself for the rest.
        seen.retain(|&x| x > 0);
        assert_eq!(seen, vec![2, 4, 6]);
        f.open();
        drop(input);
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
    });
}

#[test]
fn a_full_pool_queue_delays_records_but_loses_none() {
    let fake = FakeEncoder::new(true);
    let config = PoolConfig { threads: 1, queue_capacity: 2, max_batch: 1, cache_capacity: 0 };
    let pool = Arc::new(EmbedPool::start(fake.clone(), config).expect("pool starts"));
    let p = Arc::clone(&pool);
    let f = Arc::clone(&fake);
    let stats = Arc::new(EmbedStats::default());
    let s = Arc::clone(&stats);
    let (send, recv) = mpsc::channel();
    timely::execute_directly(move |worker| {
        let config = EmbedConfig { batch_size: 8, deadline: Duration::from_secs(60), ..EmbedConfig::default() };
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, posts) = scope.new_input::<Vec<EnrichedPost>>();
            posts
                .embed(Some(&p), config, s)
                .map(|p: EnrichedPost| (p.post_id, p.enrichment.embedding.as_deref().map(bits)))
                .capture_into(send);
            input
        });
        for i in 0..5 {
            input.send(post(&format!("p{i}"), &format!("text {i}")));
        }
        drop(input);
        // The queue holds 2: the rest waits in the operator, retried on a timer.
        for _ in 0..20 {
            worker.step_or_park(Some(Duration::from_millis(2)));
        }
        assert!(p.stats().refused > 0, "nothing was refused: the test did not fill the queue");
        assert!(p.stats().submitted < 5);
        f.open();
    });
    let out: Out = recv.extract();
    let expected: Out =
        vec![(0, (0..5).map(|i| (format!("p{i}"), Some(bits(&fake_vector(&format!("text {i}")))))).collect())];
    check(&out, expected);
    assert_eq!(stats.embedded.load(Ordering::SeqCst), 5);
    assert_eq!(pool.stats().embedded, 5);
}

#[test]
fn real_model_vectors_through_the_operator_match_the_reference() {
    let Some(model) = common::embedder() else {
        return;
    };
    let refs = common::reference();
    let pool = Arc::new(EmbedPool::start(model, PoolConfig { threads: 2, ..PoolConfig::default() }).expect("starts"));
    let stats = Arc::new(EmbedStats::default());
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    let (send, recv) = mpsc::channel();
    let s = Arc::clone(&stats);
    timely::execute_directly(move |worker| {
        let config = EmbedConfig { deadline: Duration::from_secs(120), ..EmbedConfig::default() };
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, posts) = scope.new_input::<Vec<EnrichedPost>>();
            posts
                .embed(Some(&pool), config, s)
                .map(|p: EnrichedPost| (p.post_id, p.enrichment.embedding.as_deref().map(bits)))
                .capture_into(send);
            input
        });
        for (i, t) in texts.iter().enumerate() {
            input.advance_to(i as u64 / 4);
            input.send(post(&format!("{i:02}"), t));
        }
    });
    let out: Out = recv.extract();
    assert_eq!(
        out.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        (0..refs.len() as u64).step_by(4).map(|i| i / 4).collect::<Vec<_>>()
    );
    let records: Vec<&(String, Option<Vec<u32>>)> = out.iter().flat_map(|(_, r)| r).collect();
    assert_eq!(records.len(), refs.len());
    for (id, v) in records {
        let i: usize = id.parse().expect("numeric id");
        let v: Vec<f32> =
            v.as_ref().expect("embedded before the deadline").iter().map(|b| f32::from_bits(*b)).collect();
        let c = cosine(&v, &refs[i].vector);
        assert!(c >= 0.999, "{:?}: cosine {c}", refs[i].text);
    }
    assert_eq!(stats.embedded.load(Ordering::SeqCst), refs.len() as u64);
}
