//! Operator tests in timely's style: a small graph, inputs at chosen epochs, captured output, exact assertions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use millionx_dataflow::checkpoint::Checkpoints;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc::Receiver;

use millionx_dataflow::record::{EnrichedPost, Enrichment, SocialPost, WeatherReading};
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::{City, Epoch, EventTime, Meta, Origin, Reason, StreamKind};
use millionx_operators::dedup::Dedup;
use millionx_operators::quality::{Observation, QualityStats, QualityWindows};
use millionx_operators::weather_join::WeatherJoin;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::InputHandle;

type Input<D> = InputHandle<Epoch, CapacityContainerBuilder<Vec<D>>>;

const H: i64 = 3_600_000;
const T0: i64 = 1_734_220_800_000; // 2024-12-15T00:00:00Z

fn meta(stream: StreamKind, offset: u64, t: i64) -> Meta {
    Meta { origin: Origin { stream, partition: 0, offset }, event_time: EventTime(t), ingest_ns: 1 }
}

fn post(offset: u64, id: &str, city: City, t: i64) -> EnrichedPost {
    EnrichedPost {
        meta: meta(StreamKind::Social, offset, t),
        post_id: id.into(),
        platform: "facebook".into(),
        content: String::new(),
        author_hash: String::new(),
        likes_count: 0,
        comments_count: 0,
        shares_count: 0,
        hashtags: None,
        city,
        language: None,
        posted_at: String::new(),
        extra: String::new(),
        enrichment: Enrichment::default(),
    }
}

fn social(offset: u64, id: &str, t: i64) -> SocialPost {
    SocialPost {
        meta: meta(StreamKind::Social, offset, t),
        post_id: id.into(),
        platform: "facebook".into(),
        content: String::new(),
        author_id: "a".into(),
        author_name: None,
        likes_count: 0,
        comments_count: 0,
        shares_count: 0,
        hashtags: None,
        city: City::Dhaka,
        language: None,
        posted_at: String::new(),
        extra: String::new(),
    }
}

fn reading(city: City, t: i64, condition: &str, temperature: f64) -> WeatherReading {
    WeatherReading {
        meta: meta(StreamKind::Weather, 0, t),
        city,
        country: "BD".into(),
        latitude: 0.0,
        longitude: 0.0,
        timestamp: String::new(),
        condition: condition.into(),
        description: String::new(),
        icon: String::new(),
        temperature,
        feels_like: temperature,
        temperature_min: temperature,
        temperature_max: temperature,
        humidity: 70,
        pressure: 1000.0,
        visibility: None,
        wind_speed: 0.0,
        wind_degree: 0.0,
        clouds: 0,
        sunrise: String::new(),
        sunset: String::new(),
        raw: String::new(),
    }
}

fn report(stream: StreamKind, max: Option<i64>, done: bool) -> WatermarkReport {
    WatermarkReport { stream, partition: 0, reader: 0, max_event_time: max.map(EventTime), done, idle: false }
}

fn drain<T>(rx: Receiver<Event<Epoch, Vec<T>>>) -> Vec<(Epoch, T)> {
    rx.try_iter()
        .flat_map(|e| match e {
            Event::Messages(t, d) => {
                let t = t.least().copied().unwrap_or(Epoch::MAX);
                d.into_iter().map(|x| (t, x)).collect()
            }
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

#[test]
fn weather_join_waits_for_the_watermark_and_picks_the_latest_reading_within_3_hours() {
    let (tx, rx) = std::sync::mpsc::channel();
    timely::execute(timely::Config::thread(), move |worker| {
        let mut posts = Input::<EnrichedPost>::new();
        let mut weather = Input::<WeatherReading>::new();
        let mut reports = Input::<WatermarkReport>::new();
        let tx = tx.clone();
        worker.dataflow::<Epoch, _, _>(|scope| {
            let out = posts
                .to_stream(scope)
                .weather_join(
                    weather.to_stream(scope),
                    reports.to_stream(scope),
                    Watermarks::default(),
                    3 * H,
                    &Checkpoints::disabled(),
                )
                .capture();
            tx.send(out).unwrap();
        });
        // Epoch 0: one reading at T0, posts at T0+30min and T0+5h; weather watermark at T0 (not past the posts).
        weather.send(reading(City::Dhaka, T0, "Clear", 20.0));
        reports.send(report(StreamKind::Weather, Some(T0), false));
        posts.send(post(0, "a", City::Dhaka, T0 + H / 2));
        posts.send(post(1, "b", City::Dhaka, T0 + 5 * H));
        posts.send(post(2, "c", City::Sylhet, T0 + H / 2));
        posts.advance_to(1);
        weather.advance_to(1);
        reports.advance_to(1);
        // Epoch 1: a later Dhaka reading arrives; the watermark passes T0+1h: only "a" and "c" may go.
        weather.send(reading(City::Dhaka, T0 + H, "Rain", 18.0));
        reports.send(report(StreamKind::Weather, Some(T0 + H), false));
        posts.advance_to(2);
        weather.advance_to(2);
        reports.advance_to(2);
        // The weather ends: "b" is released, joined to the T0+1h reading (4 h old → too old).
        reports.send(report(StreamKind::Weather, Some(T0 + H), true));
    })
    .unwrap();
    let out = drain(rx.recv().unwrap());
    let by_id = |id: &str| out.iter().find(|(_, p)| p.post_id == id).unwrap().clone();
    assert_eq!(out.len(), 3);
    // "a" (T0+30min) joins the T0 reading even though a later reading exists: as of its event time.
    let (epoch_a, a) = by_id("a");
    assert_eq!(a.enrichment.weather.as_ref().map(|w| (w.condition.as_str(), w.temperature)), Some(("Clear", 20.0)));
    assert_eq!(epoch_a, 1, "released when the watermark passed T0+30min, not before");
    assert_eq!(by_id("c").1.enrichment.weather, None, "no Sylhet reading");
    assert_eq!(by_id("b").1.enrichment.weather, None, "the latest Dhaka reading is 4 h older than b");
}

#[test]
fn dedup_keeps_the_first_copy_and_forgets_keys_beyond_the_horizon() {
    let (tx, rx) = std::sync::mpsc::channel();
    timely::execute(timely::Config::thread(), move |worker| {
        let mut posts = Input::<SocialPost>::new();
        let mut reports = Input::<WatermarkReport>::new();
        let tx = tx.clone();
        worker.dataflow::<Epoch, _, _>(|scope| {
            let (unique, dups) = posts.to_stream(scope).dedup(
                reports.to_stream(scope),
                StreamKind::Social,
                Watermarks::default(),
                24 * H,
                &Checkpoints::disabled(),
            );
            tx.send((unique.capture(), dups.capture())).unwrap();
        });
        // Epoch 0: k at T0, and its copy later in the same epoch but earlier in the input order.
        posts.send(social(5, "k", T0));
        posts.send(social(3, "k", T0));
        reports.send(report(StreamKind::Social, Some(T0), false));
        posts.advance_to(1);
        reports.advance_to(1);
        // Epoch 1: another copy of k: still remembered.
        posts.send(social(7, "k", T0));
        posts.advance_to(2);
        reports.advance_to(2);
        // Epoch 2: the watermark moves 3 days on: k is forgotten (horizon 24 h), so a replay of k passes.
        reports.send(report(StreamKind::Social, Some(T0 + 72 * H), false));
        posts.advance_to(3);
        reports.advance_to(3);
        posts.send(social(9, "k", T0));
    })
    .unwrap();
    let (unique, dups) = rx.recv().unwrap();
    let unique: Vec<(Epoch, u64)> = drain(unique).into_iter().map(|(e, p)| (e, p.meta.origin.offset)).collect();
    let mut dups: Vec<(Epoch, u64)> = drain(dups).into_iter().map(|(e, p)| (e, p.meta.origin.offset)).collect();
    dups.sort();
    assert_eq!(unique, vec![(0, 3), (3, 9)], "first copy by input order; the replay after the horizon is new");
    assert_eq!(dups, vec![(0, 5), (1, 7)]);
}

#[test]
fn quality_windows_close_on_the_watermark_with_exact_counts() {
    let (tx, rx) = std::sync::mpsc::channel();
    let stats = std::sync::Arc::new(std::sync::Mutex::new(QualityStats::default()));
    let stats_out = std::sync::Arc::clone(&stats);
    timely::execute(timely::Config::thread(), move |worker| {
        let mut obs = Input::<Observation>::new();
        let mut reports = Input::<WatermarkReport>::new();
        let tx = tx.clone();
        let local = Rc::new(RefCell::new(QualityStats::default()));
        worker.dataflow::<Epoch, _, _>(|scope| {
            let out = obs.to_stream(scope).quality_windows(
                reports.to_stream(scope),
                Watermarks::default(),
                Rc::clone(&local),
                &Checkpoints::disabled(),
            );
            tx.send(out.capture()).unwrap();
        });
        let s = StreamKind::Social;
        for t in [T0 + 10, T0 + 20, T0 + 30] {
            obs.send(Observation::Valid { stream: s, event_time: EventTime(t) });
        }
        obs.send(Observation::Rejected { stream: s, event_time: None, reason: Reason("parse_error".into()) });
        obs.send(Observation::Duplicate { stream: s, event_time: EventTime(T0 + 30) });
        for (t, enriched) in [(T0 + 10, true), (T0 + 20, false)] {
            obs.send(Observation::Emitted {
                stream: s,
                event_time: EventTime(t),
                category: millionx_dataflow::catalog::Category::Fashion,
                pii: millionx_dataflow::record::PiiReport { fields: 0, detected: t == T0 + 10 },
                enriched,
                embedded: false,
                lag_ms: 5,
            });
        }
        obs.send(Observation::Valid { stream: s, event_time: EventTime(T0 + H + 1) });
        reports.send(report(s, Some(T0 + H + 1), false));
        reports.send(report(StreamKind::Weather, None, true));
        obs.advance_to(1);
        reports.advance_to(1);
        // Epoch 1: the watermark moves on; epoch 2 brings a record for the already closed window T0: late.
        reports.send(report(s, Some(T0 + 2 * H), false));
        obs.advance_to(2);
        reports.advance_to(2);
        obs.send(Observation::Valid { stream: s, event_time: EventTime(T0 + 40) });
        drop(obs);
        drop(reports);
        while worker.step() {}
        *stats.lock().unwrap() = local.borrow().clone();
    })
    .unwrap();
    let windows = drain(rx.recv().unwrap());
    let first = windows.iter().find(|(_, w)| w.start == Some(EventTime(T0))).unwrap();
    assert_eq!(first.0, 0, "closed at the epoch whose watermark passed its end (T0+1h+1ms, lateness 0)");
    let w = &first.1;
    assert_eq!(
        (w.received, w.valid, w.rejected_total(), w.duplicates, w.emitted, w.enriched, w.pii_detected),
        (3, 3, 0, 1, 2, 1, 1)
    );
    assert_eq!(w.categories.get("fashion"), Some(&2));
    // 0.4 × 3/3 + 0.3 × 0 + 0.3 × (1 − 0/3)
    assert!((w.quality_score() - 0.7).abs() < 1e-12);
    assert_eq!(w.weather_coverage(), 0.5);
    let second = windows.iter().find(|(_, w)| w.start == Some(EventTime(T0 + H))).unwrap();
    // The line without an event time counts in the hour of the largest event time read (T0+1h+1ms).
    assert_eq!((second.1.valid, second.1.rejected.get("parse_error")), (1, Some(&1)));
    assert_eq!(windows.len(), 2);
    let stats = stats_out.lock().unwrap();
    assert_eq!(stats.late.get(&StreamKind::Social), Some(&1));
    // The late line still counts toward the run's totals: received and valid, in no window.
    let late = &stats.late_counts[&StreamKind::Social];
    assert_eq!((late.received, late.valid, late.emitted, late.stream), (1, 1, 0, Some(StreamKind::Social)));
}
