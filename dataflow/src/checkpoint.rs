//! Checkpoints of operator state: a per-worker registry that stateful operators (and the Kafka source)
//! contribute their state to, *as of* an epoch boundary.
//!
//! Every `every` epochs there is a boundary `B` (a multiple of `every`). An operator that processes
//! complete epochs in order contributes, through its [`Slot`], its state after every epoch `< B` and before
//! any epoch `≥ B`: just before it processes an epoch `≥ B`, or once its input frontier has reached `B`.
//! A contribution at `B` also stands for the boundaries skipped since the slot's previous one (nothing was
//! processed in between), so a worker can assemble its snapshot of any boundary up to
//! [`Checkpoints::covered`] ([`Checkpoints::snapshot_at`]). The workers of a process agree on which
//! boundary they all store next (`millionx_graph`'s checkpoint plan); once every worker stored it, it is
//! durable ([`Checkpoints::set_durable`]) and the Kafka source may commit offsets up to it. A restarted run
//! restores the snapshot of `B` ([`Checkpoints::new`]), seeks its source to the offsets stored in it and
//! so replays exactly the epochs `≥ B`.
//!
//! State is encoded with bincode 1.3 ([`encode`], [`decode`]). A registry made with
//! [`Checkpoints::disabled`] takes nothing (file replay, tests).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Epoch;

/// The snapshot of one worker at one boundary: encoded state per slot name.
pub type Snapshot = BTreeMap<String, Vec<u8>>;

/// One worker's registry, shared by its operators (`Rc`: a worker is one thread).
pub type SharedCheckpoints = Rc<RefCell<Checkpoints>>;

/// The registry: which slots exist, what they contributed per boundary, what was restored.
#[derive(Debug, Default)]
pub struct Checkpoints {
    every: Epoch,
    resume: Epoch,
    restored: Snapshot,
    slots: BTreeSet<String>,
    /// Per slot, its contributions by boundary; each stands for the boundaries after the previous one.
    offered: BTreeMap<String, BTreeMap<Epoch, Vec<u8>>>,
    /// Final state of slots that will not change again, valid for every boundary from the epoch given.
    finished: BTreeMap<String, (Epoch, Vec<u8>)>,
    durable: Option<Epoch>,
    error: Option<String>,
}

/// Encodes state for a snapshot. Errors: the value cannot be encoded (bincode's message).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serialize(value).map_err(|e| e.to_string())
}

/// Decodes state from a snapshot. Errors: the bytes are not a `T` (bincode's message).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::deserialize(bytes).map_err(|e| e.to_string())
}

impl Checkpoints {
    /// A registry that takes no snapshots and restores nothing.
    pub fn disabled() -> SharedCheckpoints {
        Rc::new(RefCell::new(Checkpoints::default()))
    }

    /// A registry with a boundary every `every` epochs (≥ 1), restoring `restored` (the snapshot of
    /// boundary `resume`) when given.
    pub fn new(every: Epoch, restored: Option<(Epoch, Snapshot)>) -> SharedCheckpoints {
        let (resume, restored) = restored.unwrap_or_default();
        Rc::new(RefCell::new(Checkpoints { every: every.max(1), resume, restored, ..Checkpoints::default() }))
    }

    /// True when snapshots are taken.
    pub fn enabled(&self) -> bool {
        self.every > 0
    }

    /// The boundary the run resumes from (0 for a fresh start).
    pub fn resume(&self) -> Epoch {
        self.resume
    }

    /// The first error a slot recorded (state that could not be decoded or encoded).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Epochs between boundaries (0 when disabled).
    pub fn every(&self) -> Epoch {
        self.every
    }

    /// The newest boundary every slot has contributed (or stands for, when finished); `None` before every
    /// slot contributed once, or when every slot is finished (nothing bounds the boundary then).
    pub fn covered(&self) -> Option<Epoch> {
        self.slots
            .iter()
            .filter(|n| !self.finished.contains_key(*n))
            .map(|n| self.offered.get(n).and_then(|o| o.keys().next_back().copied()))
            .try_fold(None, |acc: Option<Epoch>, last| last.map(|l| Some(acc.map_or(l, |a| a.min(l)))))
            .flatten()
    }

    /// The worker's snapshot of `boundary`: every slot's contribution standing for it; `None` when a slot has
    /// none (`boundary` is beyond [`Checkpoints::covered`] or was dropped by [`Checkpoints::forget_before`]).
    pub fn snapshot_at(&self, boundary: Epoch) -> Option<Snapshot> {
        self.slots
            .iter()
            .map(|n| {
                let bytes = match self.finished.get(n) {
                    Some((from, bytes)) if *from <= boundary => Some(bytes),
                    _ => self.offered.get(n).and_then(|o| o.range(boundary..).next()).map(|(_, b)| b),
                };
                bytes.map(|b| (n.clone(), b.clone()))
            })
            .collect()
    }

    /// Drops the contributions that stand only for boundaries before `boundary` (it was stored).
    pub fn forget_before(&mut self, boundary: Epoch) {
        for offers in self.offered.values_mut() {
            offers.retain(|b, _| *b >= boundary);
        }
    }

    /// Every worker of the process stored the snapshot of `boundary`: offsets may be committed up to it.
    pub fn set_durable(&mut self, boundary: Epoch) {
        self.durable = Some(self.durable.map_or(boundary, |d| d.max(boundary)));
    }

    /// The frontier below which the Kafka source may commit, given the sinks' acknowledged frontier `ack`
    /// (`None`: everything acknowledged): `ack` itself when disabled, else at most the newest durable
    /// boundary (0, nothing, before the first one).
    pub fn commit_frontier(&self, ack: Option<Epoch>) -> Option<Epoch> {
        if !self.enabled() {
            return ack;
        }
        let durable = self.durable.unwrap_or(0);
        Some(ack.map_or(durable, |a| a.min(durable)))
    }
}

/// One operator's handle on the registry.
#[derive(Debug)]
pub struct Slot {
    name: String,
    registry: SharedCheckpoints,
    last: Epoch,
}

impl Slot {
    /// Registers `name` (unique per worker, e.g. `dedup/social`).
    pub fn new(registry: &SharedCheckpoints, name: impl Into<String>) -> Slot {
        let name = name.into();
        let mut r = registry.borrow_mut();
        let last = r.resume;
        if r.enabled() {
            r.slots.insert(name.clone());
        }
        drop(r);
        Slot { name, registry: Rc::clone(registry), last }
    }

    /// The first epoch of this run: the restored boundary, else 0. An operator that emits at its own
    /// capability (e.g. at the end of its input) starts that capability here, so a resumed run never emits
    /// below its boundary: those epochs' output exists already.
    pub fn resume(&self) -> Epoch {
        self.registry.borrow().resume
    }

    /// This slot's restored state; `None` when there is none or it does not decode (the error is recorded
    /// in the registry and fails the start).
    pub fn restore<T: DeserializeOwned>(&self) -> Option<T> {
        let mut r = self.registry.borrow_mut();
        let bytes = r.restored.remove(&self.name)?;
        match decode(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                r.error.get_or_insert_with(|| format!("restoring `{}` from the snapshot: {e}", self.name));
                None
            }
        }
    }

    /// The boundary whose state must be contributed before processing epoch `next` (or with the input
    /// frontier at `next`): the largest multiple of `every` that is `≤ next` and not yet contributed.
    pub fn due(&self, next: Epoch) -> Option<Epoch> {
        let every = self.registry.borrow().every;
        if every == 0 {
            return None;
        }
        let b = next / every * every;
        (b > self.last).then_some(b)
    }

    /// Every boundary not yet contributed up to `next` (as [`Slot::due`]), oldest first: for state that
    /// differs per boundary even when nothing was processed in between (a source's offsets).
    pub fn due_each(&self, next: Epoch) -> Vec<Epoch> {
        let every = self.registry.borrow().every;
        match self.due(next) {
            Some(b) => (self.last / every + 1..=b / every).map(|k| k * every).collect(),
            None => Vec::new(),
        }
    }

    /// The slot's state will not change again (a source that read its partitions to the end): `state`
    /// stands for every boundary `≥ from`, the epoch after the last it emitted.
    pub fn finish<T: Serialize>(&mut self, from: Epoch, state: &T) {
        let mut r = self.registry.borrow_mut();
        match encode(state) {
            Ok(bytes) => {
                r.finished.insert(self.name.clone(), (from, bytes));
            }
            Err(e) => {
                r.error.get_or_insert_with(|| format!("encoding `{}`: {e}", self.name));
            }
        }
    }

    /// Contributes `state` as of `boundary` (see [`Slot::due`]); it also stands for the boundaries since the
    /// slot's previous contribution.
    pub fn offer<T: Serialize>(&mut self, boundary: Epoch, state: &T) {
        self.last = boundary;
        let mut r = self.registry.borrow_mut();
        match encode(state) {
            Ok(bytes) => {
                r.offered.entry(self.name.clone()).or_default().insert(boundary, bytes);
            }
            Err(e) => {
                r.error.get_or_insert_with(|| format!("encoding `{}`: {e}", self.name));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_covered_when_every_slot_contributed_and_gates_commits() {
        let reg = Checkpoints::new(4, None);
        let mut a = Slot::new(&reg, "a");
        let mut b = Slot::new(&reg, "b");
        assert_eq!((a.due(3), a.due(4), a.due(9)), (None, Some(4), Some(8)));
        assert_eq!((a.due_each(3), a.due_each(9)), (vec![], vec![4, 8]));
        a.offer(4, &1u32);
        assert_eq!(a.due(5), None, "4 is contributed");
        assert_eq!(reg.borrow().covered(), None, "b is missing");
        b.offer(8, &2u32);
        a.offer(8, &3u32);
        assert_eq!(reg.borrow().covered(), Some(8));
        let at =
            |e: Epoch| reg.borrow().snapshot_at(e).map(|s| s.values().map(|v| decode::<u32>(v).unwrap()).collect());
        assert_eq!(at(8), Some(vec![3, 2]));
        assert_eq!(at(4), Some(vec![1, 2]), "b's contribution at 8 stands for 4 too");
        assert_eq!(at(12), None, "beyond what is covered");
        reg.borrow_mut().forget_before(8);
        assert_eq!(at(4), Some(vec![3, 2]), "4 is forgotten: the oldest left stands for it");
        b.finish(11, &9u32);
        a.offer(12, &5u32);
        assert_eq!(reg.borrow().covered(), Some(12), "b's final state stands from 11 on");
        assert_eq!(at(12), Some(vec![5, 9]));
        assert_eq!(at(8), Some(vec![3, 2]), "before 11, b's contribution at 8");
        assert_eq!(reg.borrow().commit_frontier(Some(12)), Some(0), "nothing durable yet");
        reg.borrow_mut().set_durable(8);
        assert_eq!(reg.borrow().commit_frontier(Some(12)), Some(8));
        assert_eq!(reg.borrow().commit_frontier(Some(5)), Some(5));
        assert_eq!(reg.borrow().commit_frontier(None), Some(8), "the end is committed only up to the durable");
        assert_eq!(Checkpoints::disabled().borrow().commit_frontier(Some(5)), Some(5));
    }

    #[test]
    fn restored_state_is_handed_to_its_slot_once() {
        let snap: Snapshot = [("a".to_owned(), encode(&7u64).unwrap())].into();
        let reg = Checkpoints::new(4, Some((8, snap)));
        let a = Slot::new(&reg, "a");
        assert_eq!(a.due(8), None, "the restored boundary is not taken again");
        assert_eq!(a.resume(), 8);
        assert_eq!(a.due(12), Some(12));
        assert_eq!(a.restore::<u64>(), Some(7));
        assert_eq!(a.restore::<u64>(), None);
        let reg = Checkpoints::new(4, Some((8, [("a".to_owned(), vec![1])].into())));
        assert_eq!(Slot::new(&reg, "a").restore::<u64>(), None);
        assert!(reg.borrow().error().unwrap().contains("`a`"));
    }
}
