//! Source progress reports from the data: per epoch, the largest event time read on each partition.
//!
//! Placed right after validation on the worker that read the lines, it emits, once epoch `e` is
//! complete, one [`WatermarkReport`] per owned partition with the largest event time of valid records
//! in epochs ≤ `e`; a first report (no event time yet) at the first epoch registers the reader; a final
//! report with `done = true` when the input ends, at the last epoch that carried data. Broadcast the result and fold it with
//! [`millionx_dataflow::watermark::Watermarks`].
//!
//! ```
//! use timely::dataflow::operators::{Capture, ToStream};
//! use timely::dataflow::operators::capture::Event;
//! use millionx_dataflow::{EventTime, Meta, Origin, StreamKind};
//! use millionx_operators::watermark::WatermarkReports;
//!
//! let r = |t| Meta { origin: Origin { stream: StreamKind::Social, partition: 0, offset: 0 }, event_time: EventTime(t), ingest_ns: 0 };
//! let reports = timely::example(move |scope| {
//!     vec![r(5), r(9), r(7)].to_stream(scope).container::<Vec<_>>()
//!         .watermark_reports(StreamKind::Social, vec![0], 0, 0)
//!         .capture()
//! });
//! let reports: Vec<_> = reports.into_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
//! let last = reports.last().unwrap();
//! assert_eq!((last.max_event_time, last.done), (Some(EventTime(9)), true));
//! ```

use std::collections::BTreeMap;

use millionx_dataflow::watermark::WatermarkReport;
use millionx_dataflow::{Epoch, EventTime, Meta, StreamKind};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::progress::epoch_of;

/// Derives watermark reports from the [`Meta`] of validated records.
pub trait WatermarkReports<'scope> {
    /// Reports for `stream`, partitions `partitions`, reader `reader` (the worker index), at epochs
    /// `≥ from` (the boundary a resumed run restarts at, else 0).
    fn watermark_reports(
        self,
        stream: StreamKind,
        partitions: Vec<u32>,
        reader: u32,
        from: Epoch,
    ) -> Stream<'scope, Epoch, Vec<WatermarkReport>>;
}

impl<'scope> WatermarkReports<'scope> for Stream<'scope, Epoch, Vec<Meta>> {
    fn watermark_reports(
        self,
        stream: StreamKind,
        partitions: Vec<u32>,
        reader: u32,
        from: Epoch,
    ) -> Stream<'scope, Epoch, Vec<WatermarkReport>> {
        self.unary_frontier(Pipeline, &format!("Watermarks({})", stream.name()), move |mut cap, _info| {
            cap.downgrade(&from);
            let mut held = Some(cap);
            let mut max: BTreeMap<u32, Option<EventTime>> = partitions.iter().map(|p| (*p, None)).collect();
            let mut pending: BTreeMap<Epoch, BTreeMap<u32, EventTime>> = BTreeMap::new();
            let mut announced = false;
            // The final report must not precede the data it covers.
            let mut last_epoch: Epoch = 0;
            let report = move |partition: u32, max: Option<EventTime>, done: bool| WatermarkReport {
                stream,
                partition,
                reader,
                max_event_time: max,
                done,
                idle: false,
            };
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let epoch = epoch_of(&cap);
                    last_epoch = last_epoch.max(epoch);
                    let slot = pending.entry(epoch).or_default();
                    for m in data.iter() {
                        let e = slot.entry(m.origin.partition).or_insert(m.event_time);
                        *e = (*e).max(m.event_time);
                    }
                });
                let Some(cap) = held.as_mut() else { return };
                if !announced {
                    announced = true;
                    output.session(&*cap).give_iterator(max.iter().map(|(p, m)| report(*p, *m, false)));
                }
                let f = frontier.frontier().iter().min().copied();
                let complete: Vec<Epoch> = pending.keys().copied().take_while(|e| f.is_none_or(|f| *e < f)).collect();
                for epoch in complete {
                    let Some(maxes) = pending.remove(&epoch) else {
                        continue;
                    };
                    let mut changed = Vec::new();
                    for (p, t) in maxes {
                        let slot = max.entry(p).or_insert(None);
                        if slot.is_none_or(|m| t > m) {
                            *slot = Some(t);
                            changed.push(report(p, Some(t), false));
                        }
                    }
                    if !changed.is_empty() {
                        output.session(&cap.delayed(&epoch)).give_iterator(changed.into_iter());
                    }
                }
                match f {
                    Some(f) => cap.downgrade(&f.max(from)),
                    None => {
                        let at = cap.delayed(&last_epoch.max(*cap.time()));
                        output.session(&at).give_iterator(max.iter().map(|(p, m)| report(*p, *m, true)));
                        held = None;
                    }
                }
            }
        })
    }
}
