//! The process's checkpoint plan: which boundary every worker stores next, so that all workers of the
//! process store the same sequence of boundaries and a restart always finds one they all have.
//!
//! Each worker publishes the newest boundary it could store now (`ready`: covered by its operators'
//! contributions and acknowledged by the sinks). When every worker has stored the current target, the next
//! target is the minimum over the workers' `ready` values; each worker stores exactly the targets, in order.
//! The newest target every worker stored is *durable*: offsets are committed up to it and no further (a
//! worker that stored a newer boundary than another must not commit beyond what a restart restores).

use std::sync::Mutex;

use millionx_dataflow::Epoch;

/// Shared by the workers of one process (`Arc`).
#[derive(Debug)]
pub struct CheckpointPlan {
    inner: Mutex<Plan>,
}

#[derive(Debug)]
struct Plan {
    ready: Vec<Epoch>,
    stored: Vec<Epoch>,
    target: Epoch,
    done: Vec<bool>,
    aborted: bool,
}

/// What a worker should do after [`CheckpointPlan::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Store the snapshot of this boundary, then call [`CheckpointPlan::stored`].
    pub store: Option<Epoch>,
    /// The newest boundary every worker stored (the run's resume point before any: 0 on a fresh start).
    pub durable: Epoch,
}

impl CheckpointPlan {
    /// A plan for `workers` local workers (indices `0..workers`), all starting at boundary `resume` (0 on a fresh
    /// start).
    pub fn new(workers: usize, resume: Epoch) -> CheckpointPlan {
        CheckpointPlan {
            inner: Mutex::new(Plan {
                ready: vec![resume; workers],
                stored: vec![resume; workers],
                target: resume,
                done: vec![false; workers],
                aborted: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        // A worker that panicked holding the lock left consistent data (every update is one assignment).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Local worker `worker` could store any boundary up to `ready`: advances the target when every worker
    /// has stored the current one, and says what this worker stores next.
    pub fn step(&self, worker: usize, ready: Epoch) -> Step {
        let mut p = self.lock();
        p.ready[worker] = p.ready[worker].max(ready);
        let target = p.target;
        if p.stored.iter().all(|s| *s == target) {
            let next = p.ready.iter().copied().min().unwrap_or(target);
            p.target = next.max(target);
        }
        let durable = p.stored.iter().copied().min().unwrap_or(0);
        Step { store: (p.target > p.stored[worker]).then_some(p.target), durable }
    }

    /// Local worker `worker` stored the snapshot of `boundary`.
    pub fn stored(&self, worker: usize, boundary: Epoch) {
        let mut p = self.lock();
        p.stored[worker] = p.stored[worker].max(boundary);
    }

    /// Local worker `worker` left its run loop: `ok = false` when it failed (the others stop waiting for it).
    pub fn leave(&self, worker: usize, ok: bool) {
        let mut p = self.lock();
        p.done[worker] = true;
        p.aborted |= !ok;
    }

    /// True once every worker left its loop and stored the last target every worker can reach, or once one
    /// failed: the end-of-run commit may then use the durable boundary.
    pub fn settled(&self) -> bool {
        let p = self.lock();
        let target = p.target;
        let last = p.ready.iter().copied().min().unwrap_or(target);
        p.aborted || (p.done.iter().all(|d| *d) && p.stored.iter().all(|s| *s == target) && last <= target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_stores_the_same_boundaries_and_commits_only_what_all_stored() {
        let plan = CheckpointPlan::new(2, 0);
        // Worker 0 is ahead: it may not store 8 alone.
        assert_eq!(plan.step(0, 8), Step { store: None, durable: 0 }, "worker 1 is not ready");
        assert_eq!(plan.step(1, 4), Step { store: Some(4), durable: 0 });
        assert_eq!(plan.step(0, 12), Step { store: Some(4), durable: 0 }, "the target is 4 for both");
        plan.stored(0, 4);
        assert_eq!(plan.step(0, 12), Step { store: None, durable: 0 }, "worker 1 has not stored 4");
        plan.stored(1, 4);
        assert_eq!(plan.step(1, 12), Step { store: Some(12), durable: 4 });
        plan.stored(1, 12);
        assert_eq!(plan.step(1, 16), Step { store: None, durable: 4 }, "worker 0 has not stored 12");
        assert_eq!(plan.step(0, 12), Step { store: Some(12), durable: 4 });
        plan.stored(0, 12);
        assert!(!plan.settled(), "nobody left");
        plan.leave(1, true);
        assert_eq!(plan.step(0, 16), Step { store: Some(16), durable: 12 }, "worker 0's last step");
        plan.leave(0, true);
        assert!(!plan.settled(), "16 is ready everywhere but not stored");
        plan.stored(0, 16);
        assert_eq!(plan.step(1, 16), Step { store: Some(16), durable: 12 });
        plan.stored(1, 16);
        assert!(plan.settled());
        assert_eq!(plan.step(0, 16).durable, 16);
    }

    #[test]
    fn a_failed_worker_releases_the_others() {
        let plan = CheckpointPlan::new(2, 8);
        assert_eq!(plan.step(0, 12), Step { store: None, durable: 8 }, "resumed at 8");
        plan.leave(0, true);
        assert!(!plan.settled());
        plan.leave(1, false);
        assert!(plan.settled());
    }
}
