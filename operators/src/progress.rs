//! Epoch bookkeeping shared by the operators that act when an epoch is complete.
//!
//! Pattern: stash input by epoch; once every input's frontier has passed epoch `e`, process `e` (in
//! ascending order), emitting at `e` with a capability held at the combined input frontier. Results then
//! depend only on which data carries which epoch, never on arrival order or the number of workers.

use std::collections::BTreeMap;

use millionx_dataflow::Epoch;
use timely::dataflow::operators::InputCapability;
use timely::progress::frontier::MutableAntichain;

/// The least epoch any input may still deliver; `None` when every input has ended.
pub fn input_frontier(frontiers: &[MutableAntichain<Epoch>]) -> Option<Epoch> {
    frontiers.iter().filter_map(|f| f.frontier().iter().min().copied()).min()
}

/// The epoch of a received message: the least time of its stamp. A message sent under no
/// capability (none of MillionX's operators sends one) is treated as belonging to the last epoch.
pub fn epoch_of(cap: &InputCapability<Epoch>) -> Epoch {
    cap.least().copied().unwrap_or(Epoch::MAX)
}

/// Data of one input, grouped by epoch until the epoch is complete.
#[derive(Debug)]
pub struct EpochStash<D> {
    by_epoch: BTreeMap<Epoch, Vec<D>>,
}

impl<D> Default for EpochStash<D> {
    fn default() -> Self {
        EpochStash { by_epoch: BTreeMap::new() }
    }
}

impl<D> EpochStash<D> {
    /// Moves `data` into the stash under `epoch`.
    pub fn stash(&mut self, epoch: Epoch, data: &mut Vec<D>) {
        let slot = self.by_epoch.entry(epoch).or_default();
        if slot.is_empty() {
            std::mem::swap(slot, data);
        } else {
            slot.append(data);
        }
    }

    /// Epochs held that are complete under `frontier` (all of them when `None`).
    pub fn complete_epochs(&self, frontier: Option<Epoch>) -> impl Iterator<Item = Epoch> + '_ {
        self.by_epoch.keys().copied().take_while(move |e| frontier.is_none_or(|f| *e < f))
    }

    /// Removes and returns the data of `epoch` (empty if none).
    pub fn take(&mut self, epoch: Epoch) -> Vec<D> {
        self.by_epoch.remove(&epoch).unwrap_or_default()
    }

    /// True when nothing is stashed.
    pub fn is_empty(&self) -> bool {
        self.by_epoch.is_empty()
    }
}

/// The sorted union of complete epochs over several stashes.
pub fn complete_union(epochs: impl IntoIterator<Item = Epoch>) -> Vec<Epoch> {
    let mut all: Vec<Epoch> = epochs.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_epochs_before_the_frontier_are_complete() {
        let mut s = EpochStash::default();
        s.stash(3, &mut vec!['c']);
        s.stash(1, &mut vec!['a']);
        s.stash(1, &mut vec!['b']);
        assert_eq!(s.complete_epochs(Some(3)).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.complete_epochs(None).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(s.take(1), vec!['a', 'b']);
        assert_eq!(s.take(2), Vec::<char>::new());
        assert!(!s.is_empty());
        assert_eq!(complete_union([3, 1, 3]), vec![1, 3]);
    }
}
