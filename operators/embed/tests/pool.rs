//! The embedding pool with a stand-in encoder: de-duplication, cache, backpressure, failures.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{fake_vector, FakeEncoder};
use millionx_embed::pool::Completion;
use millionx_embed::{EmbedClient, EmbedPool, PoolConfig};

/// Waits until `n` completions arrived (10 s at most) and returns them sorted by id.
fn collect(client: &mut EmbedClient, n: usize) -> Vec<Completion> {
    let mut got = Vec::new();
    while got.len() < n {
        let c = client.wait(Duration::from_secs(10)).expect("completion within 10 s");
        got.push(c);
    }
    got.sort_by_key(|c| c.0);
    got
}

#[test]
fn identical_texts_are_embedded_once_and_then_served_from_the_cache() {
    let fake = FakeEncoder::new(true);
    let config = PoolConfig { threads: 1, queue_capacity: 16, max_batch: 8, cache_capacity: 100 };
    let pool = EmbedPool::start(fake.clone(), config).expect("pool starts");
    let mut client = pool.client(None);

    // Gate shut: "a" is queued (or running), its twin joins it.
    let accepted = client.submit(&[(0, "a"), (1, "a"), (2, "b")]).expect("pool open");
    assert_eq!(accepted, 3);
    let s = pool.stats();
    assert_eq!((s.submitted, s.coalesced, s.cache_hits, s.refused), (3, 1, 0, 0));
    fake.open();
    let got = collect(&mut client, 3);
    assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(got[0].1.as_deref(), Some(&fake_vector("a")[..]));
    assert_eq!(got[1].1.as_deref(), Some(&fake_vector("a")[..]));
    assert_eq!(got[2].1.as_deref(), Some(&fake_vector("b")[..]));
    assert_eq!((fake.times("a"), fake.times("b")), (1, 1));

    // Now "a" is cached: answered during submit, never embedded again.
    assert_eq!(client.submit(&[(3, "a")]).expect("pool open"), 1);
    let mut ready = Vec::new();
    assert_eq!(client.poll(&mut ready), 1, "a cache hit is delivered by submit itself");
    assert_eq!(ready[0].0, 3);
    assert_eq!(ready[0].1.as_deref(), Some(&fake_vector("a")[..]));
    assert_eq!(fake.times("a"), 1);
    let s = pool.stats();
    assert_eq!((s.submitted, s.cache_hits, s.embedded, s.cached, s.queued, s.running), (4, 1, 2, 2, 0, 0));
}

#[test]
fn a_full_queue_refuses_the_rest_without_blocking() {
    let fake = FakeEncoder::new(true);
    let config = PoolConfig { threads: 1, queue_capacity: 2, max_batch: 1, cache_capacity: 0 };
    let pool = EmbedPool::start(fake.clone(), config).expect("pool starts");
    let mut client = pool.client(None);
    let items: Vec<(u64, String)> = (0..5).map(|i| (i, format!("text {i}"))).collect();
    // One submit holds the queue lock throughout: exactly the capacity is accepted.
    assert_eq!(client.submit(&items).expect("pool open"), 2);
    let s = pool.stats();
    assert_eq!((s.submitted, s.refused), (2, 3));
    fake.open();
    let got = collect(&mut client, 2);
    assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
    // With room again, the rest goes in, two at a time.
    assert_eq!(client.submit(&items[2..]).expect("pool open"), 2);
    let mut got = collect(&mut client, 2);
    assert_eq!(client.submit(&items[4..]).expect("pool open"), 1);
    got.extend(collect(&mut client, 1));
    assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(got.iter().all(|c| c.1.is_some()));
    assert_eq!(pool.stats().embedded, 5);
    assert_eq!(pool.stats().batches, 5, "max_batch 1: one text per batch");
}

#[test]
fn a_failed_batch_answers_none_and_the_pool_goes_on() {
    let fake = FakeEncoder::new(false);
    let config = PoolConfig { threads: 1, queue_capacity: 16, max_batch: 16, cache_capacity: 10 };
    let pool = EmbedPool::start(fake.clone(), config).expect("pool starts");
    let mut client = pool.client(None);
    assert_eq!(client.submit(&[(0, "FAIL")]).expect("pool open"), 1);
    let got = collect(&mut client, 1);
    assert_eq!(got[0], (0, None));
    assert_eq!(client.submit(&[(1, "fine")]).expect("pool open"), 1);
    let got = collect(&mut client, 1);
    assert_eq!(got[0].1.as_deref(), Some(&fake_vector("fine")[..]));
    let s = pool.stats();
    assert_eq!((s.failed, s.embedded, s.cached), (1, 1, 1), "a failure is not cached");
}

#[test]
fn notify_runs_after_delivery() {
    let fake = FakeEncoder::new(false);
    let pool = EmbedPool::start(fake, PoolConfig { threads: 2, ..PoolConfig::default() }).expect("pool starts");
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = Arc::clone(&woken);
    let mut client = pool.client(Some(Box::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    })));
    assert_eq!(client.submit(&[(7, "x")]).expect("pool open"), 1);
    let got = collect(&mut client, 1);
    assert_eq!(got[0].0, 7);
    // The wake-up follows the send; give the model thread a moment to run it.
    for _ in 0..100 {
        if woken.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(woken.load(Ordering::SeqCst) >= 1);
}

#[test]
fn two_clients_get_only_their_own_results() {
    let fake = FakeEncoder::new(true);
    let pool = EmbedPool::start(fake.clone(), PoolConfig { threads: 1, ..PoolConfig::default() }).expect("starts");
    let mut a = pool.client(None);
    let mut b = pool.client(None);
    assert_eq!(a.submit(&[(1, "shared"), (2, "only a")]).expect("open"), 2);
    assert_eq!(b.submit(&[(1, "shared")]).expect("open"), 1);
    fake.open();
    let ga = collect(&mut a, 2);
    let gb = collect(&mut b, 1);
    assert_eq!(ga.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(gb[0].0, 1);
    assert_eq!(gb[0].1.as_deref(), Some(&fake_vector("shared")[..]));
    assert_eq!(fake.times("shared"), 1);
    let mut extra = Vec::new();
    assert_eq!(a.poll(&mut extra) + b.poll(&mut extra), 0);
}
