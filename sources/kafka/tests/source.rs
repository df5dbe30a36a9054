//! The source operator against a real broker (tansu, see .ci/setup.d/50-kafka.sh): bad messages become dead
//! letters with reasons, good ones lines with their coordinates, and the end is committed after the drain.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use millionx_dataflow::{DeadLetter, Epoch, RawLine, StreamKind};
use millionx_kafka_testing::Broker;
use millionx_source_kafka::{kafka_source, KafkaConfig, SourceControl};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use timely::dataflow::operators::capture::Event;
use timely::dataflow::operators::{Capture, Probe};
use timely::dataflow::ProbeHandle;

#[test]
fn bad_messages_are_dead_letters_and_the_end_is_committed() {
    let b = Broker::start(1);
    let config = KafkaConfig {
        brokers: b.addr.clone(),
        group: "unit".into(),
        exit_at_end: true,
        epoch_messages: 2,
        ..KafkaConfig::default()
    };
    let producer: BaseProducer = config.producer_config("test").set("batch.num.messages", "1").create().unwrap();
    let big = "x".repeat(2000);
    let social = "validated.social";
    let send = |r: BaseRecord<'_, [u8], [u8]>| producer.send(r).map_err(|(e, _)| e).unwrap();
    send(BaseRecord::to(social).key(&b"p1"[..]).payload(&br#"{"postId":"p1"}"#[..])); // 0: line
    send(BaseRecord::to(social).key(&b"p2"[..])); // 1: tombstone
    send(BaseRecord::to(social).payload(&b"{}"[..])); // 2: no key
    send(BaseRecord::to(social).key(&b"p3"[..]).payload(&b"\xff\xfe{"[..])); // 3: not UTF-8
    send(BaseRecord::to(social).key(&b"p4"[..]).payload(big.as_bytes())); // 4: too large
    send(BaseRecord::to(social).key(&b"p5"[..]).payload(&b""[..])); // 5: empty: a line, validation rejects it
    send(BaseRecord::to("context.weather").key(&b"w"[..]).payload(&b"{}"[..])); // weather 0
    producer.flush(Duration::from_secs(10)).unwrap();

    let (committed, lines, dead) = timely::execute_directly(move |worker| {
        let ack = ProbeHandle::new();
        let handle = worker.dataflow::<Epoch, _, _>(|scope| {
            let (mut streams, handle) = kafka_source(
                scope,
                &config,
                1024,
                ack.clone(),
                SourceControl::default(),
                &millionx_dataflow::checkpoint::Checkpoints::disabled(),
            )
            .unwrap();
            assert_eq!(streams.partitions[&StreamKind::Social], vec![0]);
            let lines: Vec<_> = StreamKind::ALL
                .iter()
                .map(|s| {
                    let l = streams.lines.remove(s).unwrap();
                    l.clone().probe_with(&ack);
                    l.capture()
                })
                .collect();
            streams.dead.clone().probe_with(&ack);
            (handle, lines, streams.dead.capture())
        });
        let (handle, lines, dead) = handle;
        while worker.step_or_park(Some(Duration::from_millis(10))) {}
        handle.finish(None).unwrap();
        let timed = |rx: std::sync::mpsc::Receiver<Event<Epoch, Vec<RawLine>>>| -> Vec<(Epoch, RawLine)> {
            rx.try_iter()
                .flat_map(|e| match e {
                    Event::Messages(t, d) => {
                        let t = t.elements().first().copied().unwrap();
                        d.into_iter().map(|x| (t, x)).collect()
                    }
                    Event::Progress(_) => Vec::new(),
                })
                .collect()
        };
        let lines: Vec<(Epoch, RawLine)> = lines.into_iter().flat_map(timed).collect();
        let dead: Vec<DeadLetter> = dead
            .try_iter()
            .flat_map(|e| match e {
                Event::Messages(_, d) => d,
                Event::Progress(_) => Vec::new(),
            })
            .collect();
        (handle.committed(), lines, dead)
    });

    let got: Vec<(Epoch, &str, u64, &str)> =
        lines.iter().map(|(t, l)| (*t, l.origin.stream.name(), l.origin.offset, l.payload.as_str())).collect();
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        vec![(0, "social", 0, r#"{"postId":"p1"}"#), (0, "weather", 0, "{}"), (2, "social", 5, "")],
        "epoch = offset / epoch_messages"
    );
    let mut reasons: Vec<(u64, String, Option<String>)> =
        dead.iter().map(|d| (d.origin.offset, d.reason.as_str().to_owned(), d.detail.clone())).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            (1, "parse_error".into(), Some("tombstone (null payload)".into())),
            (2, "missing_key".into(), None),
            (3, "parse_error".into(), Some("not UTF-8: invalid byte sequence at byte 0".into())),
            (4, "too_large".into(), None),
        ]
    );
    let mut committed = committed;
    committed.sort();
    assert_eq!(committed, vec![("context.weather".into(), 0, 1), ("validated.social".into(), 0, 6)]);
}
