//! One observation stream: what happened to every input line (valid, rejected, duplicate, emitted). It
//! feeds the quality windows and the pipeline's one metrics tap.

use std::sync::Arc;
use std::time::Duration;

use millionx_dataflow::catalog::Category;
use millionx_dataflow::record::{Enriched, Keyed, Meta, PiiReport, WeatherReading};
use millionx_dataflow::time::now_unix_ns;
use millionx_dataflow::{DeadLetter, Epoch, EventTime, StreamKind};
use millionx_metrics::Metrics;
use millionx_operators::quality::Observation;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Inspect;
use timely::dataflow::Stream;

/// Passes `s` through unchanged, calling `f` on every batch (no copy of the data).
fn per_batch<'scope, D: 'static>(
    s: Stream<'scope, Epoch, Vec<D>>,
    mut f: impl FnMut(&[D]) + 'static,
) -> Stream<'scope, Epoch, Vec<D>> {
    s.inspect_core(move |event| {
        if let Ok((_, data)) = event {
            f(data)
        }
    })
}

/// Processing time − `event_time`, ms; 0 for an event time in the future.
fn lag_ms(now_ms: i64, event_time: EventTime) -> u64 {
    now_ms.saturating_sub(event_time.0).max(0) as u64
}

fn now_ms() -> i64 {
    (now_unix_ns() / 1_000_000) as i64
}

/// `Valid` observations of the metas of `stream`'s validated records.
pub fn valid<'scope>(
    metas: &Stream<'scope, Epoch, Vec<Meta>>,
    stream: StreamKind,
) -> Stream<'scope, Epoch, Vec<Observation>> {
    metas.clone().map(move |m| Observation::Valid { stream, event_time: m.event_time })
}

/// `Rejected` observations of dead letters (their stream, event time when parseable, reason).
pub fn rejected<'scope>(dead: &Stream<'scope, Epoch, Vec<Arc<DeadLetter>>>) -> Stream<'scope, Epoch, Vec<Observation>> {
    dead.clone().map(|d| Observation::Rejected {
        stream: d.origin.stream,
        event_time: d.event_time_ms.map(EventTime),
        reason: d.reason.clone(),
    })
}

/// `Duplicate` observations of the later copies of `stream`'s records.
pub fn duplicates<'scope, T: Keyed + 'static>(
    copies: Stream<'scope, Epoch, Vec<T>>,
    stream: StreamKind,
) -> Stream<'scope, Epoch, Vec<Observation>> {
    copies.map(move |r| Observation::Duplicate { stream, event_time: r.meta().event_time })
}

/// `Emitted` observations of enriched posts or orders leaving the enrichment stages.
pub fn emitted<'scope, T: Enriched + 'static>(
    records: &Stream<'scope, Epoch, Vec<Arc<T>>>,
) -> Stream<'scope, Epoch, Vec<Observation>> {
    records.clone().map(|r| {
        let e = r.enrichment();
        Observation::Emitted {
            stream: T::STREAM,
            event_time: r.meta().event_time,
            category: e.category,
            pii: e.pii,
            enriched: e.weather.is_some(),
            embedded: e.embedding.is_some(),
            lag_ms: lag_ms(now_ms(), r.meta().event_time),
        }
    })
}

/// `Emitted` observations of unique weather readings (nothing to enrich).
pub fn emitted_readings<'scope>(
    readings: &Stream<'scope, Epoch, Vec<Arc<WeatherReading>>>,
) -> Stream<'scope, Epoch, Vec<Observation>> {
    readings.clone().map(|r| Observation::Emitted {
        stream: StreamKind::Weather,
        event_time: r.meta.event_time,
        category: Category::default(),
        pii: PiiReport::default(),
        enriched: false,
        embedded: false,
        lag_ms: lag_ms(now_ms(), r.meta.event_time),
    })
}

/// Counts per batch of observations (one pass, a few counters per stream):
/// `Duplicate` → duplicates; `Emitted` → records out, ingestion lag, and for posts and orders PII
/// detections and fields, categories, weather enrichment and embeddings. `Valid` and `Rejected` are counted
/// where they happen (lines read at the inputs, rejections at the dead-letter output, which also holds the
/// sinks' own dead letters).
pub fn metrics_tap<'scope>(
    observations: Stream<'scope, Epoch, Vec<Observation>>,
    metrics: &Metrics,
) -> Stream<'scope, Epoch, Vec<Observation>> {
    let m = metrics.clone();
    per_batch(observations, move |batch| {
        // Indexed by `StreamKind as usize`, the order of `StreamKind::ALL`.
        let mut counts: [StreamCounts; 3] = Default::default();
        for o in batch {
            match *o {
                Observation::Duplicate { stream, .. } => counts[stream as usize].duplicates += 1,
                Observation::Emitted { stream, ref category, pii, enriched, embedded, lag_ms, .. } => {
                    m.ingestion_lag(stream.name(), Duration::from_millis(lag_ms));
                    let c = &mut counts[stream as usize];
                    c.out += 1;
                    c.pii += u64::from(pii.detected);
                    c.enriched += u64::from(enriched);
                    c.embedded += u64::from(embedded);
                    for (bit, n) in c.fields.iter_mut().enumerate() {
                        *n += u64::from(pii.fields >> bit & 1);
                    }
                    if let Some(i) = Category::ALL.iter().position(|x| x == category) {
                        c.categories[i] += 1;
                    }
                }
                Observation::Valid { .. } | Observation::Rejected { .. } => {}
            }
        }
        for (stream, c) in StreamKind::ALL.into_iter().zip(counts) {
            c.export(&m, stream);
        }
    })
}

/// One batch's counts for one stream.
#[derive(Default)]
struct StreamCounts {
    duplicates: u64,
    out: u64,
    pii: u64,
    enriched: u64,
    embedded: u64,
    fields: [u64; PiiReport::FIELDS.len()],
    categories: [u64; Category::ALL.len()],
}

impl StreamCounts {
    fn export(&self, m: &Metrics, stream: StreamKind) {
        let name = stream.name();
        if self.duplicates > 0 {
            m.duplicates(name, self.duplicates);
        }
        if self.out == 0 {
            return;
        }
        m.records_out(name, self.out);
        if stream == StreamKind::Weather {
            return;
        }
        m.pii_detected(name, self.pii);
        m.weather_enriched(name, self.enriched);
        m.embedding_texts(name, self.embedded);
        for (field, &n) in PiiReport::FIELDS.into_iter().zip(&self.fields) {
            if n > 0 {
                m.pii_fields_anonymized(name, field, n);
            }
        }
        for (c, &n) in Category::ALL.into_iter().zip(&self.categories) {
            if n > 0 {
                m.categorised(name, c.name(), n);
            }
        }
    }
}

/// Counts a batch of dead letters by stream and reason (`millionx_records_rejected_total`).
pub fn dead_letter_tap<'scope>(
    dead: Stream<'scope, Epoch, Vec<Arc<DeadLetter>>>,
    metrics: &Metrics,
) -> Stream<'scope, Epoch, Vec<Arc<DeadLetter>>> {
    let m = metrics.clone();
    per_batch(dead, move |batch| {
        let mut by: Vec<(StreamKind, &str, u64)> = Vec::new();
        for d in batch {
            match by.iter_mut().find(|(s, r, _)| *s == d.origin.stream && *r == d.reason.as_str()) {
                Some(entry) => entry.2 += 1,
                None => by.push((d.origin.stream, d.reason.as_str(), 1)),
            }
        }
        for (stream, reason, n) in by {
            m.records_rejected(stream.name(), reason, n);
        }
    })
}
