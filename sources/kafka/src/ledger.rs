//! The offset ledger: which offsets may be committed once the sinks have acknowledged an epoch.
//!
//! For every message the source emits at epoch `e` from partition `p` at offset `o`, the ledger records
//! "`p` may resume at `o + 1` once `e` is acknowledged". A partition's epochs never decrease with its
//! offsets, so when every epoch `< F` is acknowledged (the sinks' frontier is `F`), the largest recorded
//! next offset with epoch `< F` is safe: every message before it sits in an acknowledged epoch.

use std::collections::BTreeMap;

use millionx_dataflow::Epoch;

/// Per partition (an index chosen by the caller), next offsets by epoch, and what was last committed.
#[derive(Debug, Default, Clone)]
pub struct OffsetLedger {
    pending: BTreeMap<usize, BTreeMap<Epoch, i64>>,
    committed: BTreeMap<usize, i64>,
}

impl OffsetLedger {
    /// Records a message of `partition` at `offset`, emitted at `epoch`.
    pub fn record(&mut self, partition: usize, epoch: Epoch, offset: i64) {
        let next = self.pending.entry(partition).or_default().entry(epoch).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Everything at epochs `< frontier` is acknowledged (`None`: every epoch is). Returns the offsets to
    /// commit, `(partition, next offset to read)`, only those beyond the last commit, and forgets them.
    pub fn acknowledge(&mut self, frontier: Option<Epoch>) -> Vec<(usize, i64)> {
        let mut out = Vec::new();
        for (p, epochs) in self.pending.iter_mut() {
            let keep = match frontier {
                Some(f) => epochs.split_off(&f),
                None => BTreeMap::new(),
            };
            let done = std::mem::replace(epochs, keep);
            if let Some(next) = done.values().copied().max() {
                let last = self.committed.entry(*p).or_insert(i64::MIN);
                if next > *last {
                    *last = next;
                    out.push((*p, next));
                }
            }
        }
        out
    }

    /// Where `partition` resumes once every epoch `< boundary` is done: the largest next offset recorded at
    /// an earlier epoch, else the last commit; `None` when nothing was read or committed.
    pub fn resume_at(&self, partition: usize, boundary: Epoch) -> Option<i64> {
        let pending = self.pending.get(&partition).and_then(|e| e.range(..boundary).map(|(_, n)| *n).max());
        pending.or_else(|| self.committed(partition))
    }

    /// Epochs recorded and not yet acknowledged, over all partitions (for metrics and tests).
    pub fn unacknowledged_epochs(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    /// The last next-offset handed out for commit, per partition.
    pub fn committed(&self, partition: usize) -> Option<i64> {
        self.committed.get(&partition).copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_acknowledged_epochs_as_next_offset() {
        let mut l = OffsetLedger::default();
        l.record(0, 0, 10);
        l.record(0, 0, 11);
        l.record(0, 1, 12);
        l.record(1, 1, 500);
        l.record(1, 3, 501);
        assert_eq!(l.acknowledge(Some(0)), vec![]);
        assert_eq!((l.resume_at(0, 1), l.resume_at(0, 2), l.resume_at(1, 1)), (Some(12), Some(13), None));
        assert_eq!(l.acknowledge(Some(1)), vec![(0, 12)]);
        assert_eq!(l.resume_at(0, 1), Some(12), "from the commit once acknowledged");
        assert_eq!(l.acknowledge(Some(3)), vec![(0, 13), (1, 501)]);
        assert_eq!(l.unacknowledged_epochs(), 1);
        // Nothing new: no duplicate commit.
        assert_eq!(l.acknowledge(Some(3)), vec![]);
        assert_eq!(l.acknowledge(None), vec![(1, 502)]);
        assert_eq!(l.committed(1), Some(502));
        assert_eq!(l.unacknowledged_epochs(), 0);
    }

    #[test]
    fn a_stalled_epoch_holds_back_only_what_follows_it() {
        let mut l = OffsetLedger::default();
        for o in 0..100 {
            l.record(0, (o / 10) as Epoch, o);
        }
        // Sinks stalled at epoch 4: offsets 0..=39 are acknowledged, the next offset to read is 40.
        assert_eq!(l.acknowledge(Some(4)), vec![(0, 40)]);
        assert_eq!(l.acknowledge(Some(4)), vec![]);
        assert_eq!(l.acknowledge(Some(10)), vec![(0, 100)]);
    }
}
