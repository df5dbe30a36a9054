//! The timely `embed` operator: attaches an all-MiniLM-L6-v2 vector to every record it can, in time.
//!
//! Records are held (with a capability for their epoch) while their text waits in the
//! [`EmbedPool`](crate::EmbedPool); the model never runs on the worker thread. Texts go to the pool in batches
//! of `batch_size`, or sooner when the oldest unsent text is `max_batch_delay` old or the input has ended. A
//! record goes out as soon as its vector is ready, or without one (`embedding = None`, so `embeddingModel` is
//! absent) once it has waited `deadline`: embedding never holds a stream back for longer than that. Each
//! activation submits at most `max_submit_per_activation` texts (bounded work), and the operator is woken by the
//! pool (a `SyncActivator`) when vectors are ready and by a timer for batch ages and deadlines.
//!
//! Without a pool (no model directory) records pass straight through with `embedding = None`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use millionx_dataflow::record::Enriched;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use crate::pool::{Completion, EmbedClient, EmbedPool};
use crate::text::EmbeddingText;

/// Operator settings. Defaults: batches of 32 texts, at most 50 ms of batching delay, a 5 s deadline,
/// 512 texts submitted per activation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedConfig {
    /// Texts per submission to the pool (count trigger). At least 1.
    pub batch_size: usize,
    /// Longest a text waits for its batch to fill before it is submitted anyway (age trigger).
    pub max_batch_delay: Duration,
    /// Longest a record waits for its vector; then it goes out without one. Use a long deadline for a replay
    /// that should embed everything, a short one live so that slow embedding cannot stall the sinks.
    pub deadline: Duration,
    /// Most texts hashed and submitted in one activation (bounded work per activation). At least 1.
    pub max_submit_per_activation: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            batch_size: 32,
            max_batch_delay: Duration::from_millis(50),
            deadline: Duration::from_secs(5),
            max_submit_per_activation: 512,
        }
    }
}

impl EmbedConfig {
    /// Checks the settings; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("embed.batch_size: must be at least 1".into());
        }
        if self.max_submit_per_activation == 0 {
            return Err("embed.max_submit_per_activation: must be at least 1".into());
        }
        if self.deadline.is_zero() {
            return Err("embed.deadline: must be longer than 0 ms".into());
        }
        Ok(())
    }
}

/// Counters of one or more `embed` operators (share one `Arc` across workers to sum them).
#[derive(Debug)]
pub struct EmbedStats {
    /// Records that entered the operator.
    pub records_in: AtomicU64,
    /// Records emitted with a vector.
    pub embedded: AtomicU64,
    /// Records emitted without a vector because their deadline passed.
    pub late: AtomicU64,
    /// Records emitted without a vector because the model failed on their batch.
    pub failed: AtomicU64,
    /// Records emitted without a vector because embeddings are off (no model).
    pub off: AtomicU64,
    /// Records held now, waiting for a vector (the backlog), summed over every operator sharing these stats.
    pub pending: AtomicU64,
    /// Wait of each record emitted with a vector, µs from arrival to emission.
    pub wait_us: Mutex<Histogram<u64>>,
}

impl Default for EmbedStats {
    fn default() -> Self {
        EmbedStats {
            records_in: AtomicU64::new(0),
            embedded: AtomicU64::new(0),
            late: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            off: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            // 1 µs – 1 h at 3 significant digits: valid bounds, cannot fail.
            wait_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")),
        }
    }
}

impl EmbedStats {
    /// Share of emitted records that carry a vector, 0.0–1.0 (0.0 before any record).
    pub fn coverage(&self) -> f64 {
        let ok = self.embedded.load(Ordering::Relaxed) as f64;
        let out = ok
            + (self.late.load(Ordering::Relaxed)
                + self.failed.load(Ordering::Relaxed)
                + self.off.load(Ordering::Relaxed)) as f64;
        if out == 0.0 {
            0.0
        } else {
            ok / out
        }
    }
}

/// Extension trait: the `embed` operator on a stream of enriched records.
pub trait Embed<'scope, T: Timestamp, D> {
    /// Attaches `enrichment.embedding` to each record (see the module documentation). `pool` is `None` when
    /// embeddings are off. `config` must pass [`EmbedConfig::validate`] (checked at start by the caller).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Input, Inspect};
    /// use millionx_dataflow::record::EnrichedOrder;
    /// use millionx_embed::{Embed, EmbedConfig, EmbedStats};
    ///
    /// timely::execute_directly(|worker| {
    ///     let stats = Arc::new(EmbedStats::default());
    ///     let mut input = worker.dataflow::<u64, _, _>(|scope| {
    ///         let (input, orders) = scope.new_input::<Vec<EnrichedOrder>>();
    ///         // No model here: records pass through with `embedding = None`.
    ///         orders.embed(None, EmbedConfig::default(), Arc::clone(&stats))
    ///               .inspect(|o| assert!(o.enrichment.embedding.is_none()));
    ///         input
    ///     });
    ///     input.advance_to(1);
    /// });
    /// ```
    fn embed(self, pool: Option<&EmbedPool>, config: EmbedConfig, stats: Arc<EmbedStats>) -> StreamVec<'scope, T, D>;
}

struct Slot<T, D> {
    time: T,
    record: D,
    arrived: Instant,
    submitted: bool,
}

/// A capability and the number of held records at its time.
struct Held<T: Timestamp> {
    cap: Capability<T>,
    records: usize,
}

impl<'scope, T, D> Embed<'scope, T, D> for StreamVec<'scope, T, D>
where
    T: Timestamp + TotalOrder,
    D: Enriched + EmbeddingText + 'static,
{
    fn embed(self, pool: Option<&EmbedPool>, config: EmbedConfig, stats: Arc<EmbedStats>) -> StreamVec<'scope, T, D> {
        let scope = self.scope();
        let worker = scope.worker();
        self.unary_frontier(Pipeline, "Embed", move |_default_cap, info| {
            // Records carry their own capabilities; the default one is not needed.
            let timer = scope.activator_for(info.address.clone());
            let mut client: Option<EmbedClient> = pool.map(|p| {
                let wake = worker.sync_activator_for(info.address.to_vec());
                p.client(Some(Box::new(move || {
                    let _ = wake.activate();
                })))
            });
            let mut slots: HashMap<u64, Slot<T, D>> = HashMap::new();
            let mut unsent: VecDeque<u64> = VecDeque::new();
            let mut by_arrival: VecDeque<(u64, Instant)> = VecDeque::new();
            let mut held: BTreeMap<T, Held<T>> = BTreeMap::new();
            let mut next_id: u64 = 0;
            let mut completions: Vec<Completion> = Vec::new();
            let mut ready: Vec<(T, D)> = Vec::new();
            let mut waits: Vec<u64> = Vec::new();
            // This operator's share of `stats.pending` (the stats may be shared by several operators).
            let mut pending_here: u64 = 0;

            move |(input, frontier), output| {
                let now = Instant::now();
                let off = client.is_none();
                // 1. Take the input: hold each record (or pass it through when embeddings are off).
                input.for_each_stamp(|cap, data| {
                    if off {
                        let mut session = output.session(&cap);
                        for batch in data {
                            let n = batch.len() as u64;
                            stats.records_in.fetch_add(n, Ordering::Relaxed);
                            stats.off.fetch_add(n, Ordering::Relaxed);
                            session.give_container(batch);
                        }
                        return;
                    }
                    let Some(time) = cap.least().cloned() else {
                        // An empty stamp makes no progress claim: nothing to hold, so pass through (counted late).
                        let mut session = output.session(&cap);
                        for batch in data {
                            stats.records_in.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            stats.late.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            session.give_container(batch);
                        }
                        return;
                    };
                    // One capability per epoch with held records; `time` is the stamp's least element.
                    let h = held.entry(time.clone()).or_insert_with(|| Held { cap: cap.delayed(&time, 0), records: 0 });
                    for batch in data {
                        for record in batch.drain(..) {
                            let id = next_id;
                            next_id += 1;
                            h.records += 1;
                            slots.insert(id, Slot { time: time.clone(), record, arrived: now, submitted: false });
                            unsent.push_back(id);
                            by_arrival.push_back((id, now));
                            stats.records_in.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if h.records == 0 {
                        // Only empty containers arrived: hold nothing for them.
                        held.remove(&time);
                    }
                });

                let Some(client) = client.as_mut() else {
                    return;
                };
                let input_done = frontier.frontier().is_empty();

                // 2. Submit whole batches, or a partial one that is old enough or the last one.
                let mut submitted_now = 0;
                let mut queue_full = false;
                while !unsent.is_empty() && submitted_now < config.max_submit_per_activation {
                    // Drop ids that already left by deadline.
                    while let Some(id) = unsent.front() {
                        if slots.get(id).is_some_and(|s| !s.submitted) {
                            break;
                        }
                        unsent.pop_front();
                    }
                    let Some(first) = unsent.front().and_then(|id| slots.get(id)) else {
                        break;
                    };
                    let aged = now.duration_since(first.arrived) >= config.max_batch_delay;
                    if unsent.len() < config.batch_size && !aged && !input_done {
                        break;
                    }
                    let take =
                        unsent.len().min(config.batch_size).min(config.max_submit_per_activation - submitted_now);
                    let items: Vec<(u64, Cow<'_, str>)> = unsent
                        .iter()
                        .take(take)
                        .filter_map(|id| slots.get(id).map(|s| (*id, s.record.embedding_text())))
                        .collect();
                    // A closed pool accepts nothing: the records then leave at their deadline.
                    let accepted = client.submit(&items).unwrap_or_default();
                    let refused = accepted < items.len();
                    let accepted_ids: Vec<u64> = items[..accepted].iter().map(|(id, _)| *id).collect();
                    drop(items);
                    for id in &accepted_ids {
                        if let Some(s) = slots.get_mut(id) {
                            s.submitted = true;
                        }
                    }
                    // The accepted ids are the first `accepted` live ids at the front of `unsent`.
                    // Stale ids between them (already left by deadline) go too.
                    let mut k = 0;
                    while k < accepted_ids.len() {
                        match unsent.pop_front() {
                            Some(id) if id == accepted_ids[k] => k += 1,
                            Some(_) => {}
                            None => break,
                        }
                    }
                    submitted_now += accepted;
                    if refused {
                        queue_full = true;
                        break;
                    }
                }

                // 3. Collect finished vectors.
                completions.clear();
                client.poll(&mut completions);
                for (id, vector) in completions.drain(..) {
                    let Some(mut slot) = slots.remove(&id) else {
                        continue;
                    }; // left by deadline already
                    match vector {
                        Some(v) => {
                            slot.record.enrichment_mut().embedding = Some(v.to_vec());
                            stats.embedded.fetch_add(1, Ordering::Relaxed);
                            waits.push(now.duration_since(slot.arrived).as_micros().min(u64::MAX as u128) as u64);
                        }
                        None => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    ready.push((slot.time, slot.record));
                }

                // 4. Records past their deadline leave without a vector.
                while let Some(&(id, arrived)) = by_arrival.front() {
                    if !slots.contains_key(&id) {
                        by_arrival.pop_front();
                        continue;
                    }
                    if now.duration_since(arrived) < config.deadline {
                        break;
                    }
                    by_arrival.pop_front();
                    if let Some(slot) = slots.remove(&id) {
                        stats.late.fetch_add(1, Ordering::Relaxed);
                        ready.push((slot.time, slot.record));
                    }
                }

                // 5. Emit at each record's own time, then release capabilities no record needs any more.
                ready.sort_by(|a, b| b.0.cmp(&a.0)); // latest time first, so groups drain from the back
                while let Some(t) = ready.last().map(|(t, _)| t.clone()) {
                    let from = ready.len() - ready.iter().rev().take_while(|(u, _)| *u == t).count();
                    let n = ready.len() - from;
                    if let Some(h) = held.get_mut(&t) {
                        output.session(&h.cap).give_iterator(ready.drain(from..).map(|(_, d)| d));
                        h.records -= n;
                        if h.records == 0 {
                            held.remove(&t);
                        }
                    } else {
                        // Unreachable: every held record counts towards its time's capability.
                        ready.truncate(from);
                    }
                }
                if !waits.is_empty() {
                    if let Ok(mut h) = stats.wait_us.lock() {
                        for w in waits.drain(..) {
                            let _ = h.record(w.max(1));
                        }
                    }
                    waits.clear();
                }
                let pending_now = slots.len() as u64;
                if pending_now > pending_here {
                    stats.pending.fetch_add(pending_now - pending_here, Ordering::Relaxed);
                } else if pending_now < pending_here {
                    stats.pending.fetch_sub(pending_here - pending_now, Ordering::Relaxed);
                }
                pending_here = pending_now;

                // 6. Wake up again for the next batch age, deadline or queue retry.
                let live_unsent = unsent.iter().any(|id| slots.get(id).is_some_and(|s| !s.submitted));
                if live_unsent && submitted_now >= config.max_submit_per_activation && !queue_full {
                    timer.activate();
                } else {
                    let mut next: Option<Duration> = None;
                    let mut at = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
                    if let Some(first) = unsent.iter().find_map(|id| slots.get(id).filter(|s| !s.submitted)) {
                        at((first.arrived + config.max_batch_delay).saturating_duration_since(now));
                        if queue_full {
                            at(Duration::from_millis(5));
                        }
                    }
                    if let Some(&(_, arrived)) = by_arrival.front() {
                        at((arrived + config.deadline).saturating_duration_since(now));
                    }
                    if let Some(d) = next {
                        timer.activate_after(d.max(Duration::from_millis(1)));
                    }
                }
            }
        })
    }
}
