//! A test-only hook: `MILLIONX_TEST_PAUSE_AT=<point>:<n>` makes the process stop for good at the `n`-th
//! (1-based) time it reaches `point`, after printing `millionx: paused at <point>:<n>` to stderr, so a
//! crash test can `kill -9` it at exactly that instant. Points: `checkpoint` (inside the snapshot's write
//! transaction, before its commit) and `flush` (a file batch written to its temporary name, not yet
//! renamed). Unset (production), [`pause_at`] costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static REACHED: AtomicU64 = AtomicU64::new(0);

fn target() -> Option<&'static (String, u64)> {
    TARGET
        .get_or_init(|| {
            let v = std::env::var("MILLIONX_TEST_PAUSE_AT").ok()?;
            let (point, n) = v.split_once(':')?;
            Some((point.to_owned(), n.parse().ok()?))
        })
        .as_ref()
}

/// Pauses this thread forever when the hook names `point` and this is its `n`-th arrival there.
pub fn pause_at(point: &str) {
    let Some((p, n)) = target() else { return };
    if p != point {
        return;
    }
    let reached = REACHED.fetch_add(1, Ordering::SeqCst) + 1;
    if reached == *n {
        eprintln!("millionx: paused at {point}:{n}");
        loop {
            std::thread::park();
        }
    }
}
