//! Durable operator state: one redb file per process, `<dir>/p<process>.redb`, holding every worker's
//! snapshots (see `millionx_dataflow::checkpoint`) keyed by `(worker, boundary epoch)`.
//!
//! A header records the format version, the worker count and a fingerprint of the settings that change
//! results; a file written under other settings is refused at start ([`StateError::Mismatch`]) and the
//! user told to pass `--fresh-state`. Every [`Store::save`] is one redb write transaction (atomic and
//! durable on commit), so after a crash at any instant a worker has either its old or its new snapshot.
//! The run resumes at the newest boundary every worker of the process has ([`Store::restore_point`]);
//! older snapshots are deleted once a newer boundary is complete.

use std::path::{Path, PathBuf};

use millionx_dataflow::checkpoint::{decode, encode, Snapshot};
use millionx_dataflow::Epoch;
use redb::{Database, ReadableTable, TableDefinition};

/// The snapshot format; bump on any change of an operator's checkpointed state.
pub const FORMAT_VERSION: u32 = 2;

const HEADER: TableDefinition<&str, &[u8]> = TableDefinition::new("header");
const SNAPSHOTS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("snapshots");

/// What a state file was written under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Snapshot format ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Workers of the whole run (timely peers): keys are exchanged by worker.
    pub peers: u32,
    /// Hash of the result-changing settings (lateness, horizon, join age, epoch size, checkpoint interval, …).
    pub fingerprint: u64,
}

/// Why the state could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file belongs to another format, worker count or configuration.
    #[error(
        "state file {path}: written with {found}, this run has {want}; run again with the settings it was \
         written with, or pass --fresh-state to discard it together with every output file in --out (the run \
         then starts from the consumer group's committed offsets with empty operator state: use a new --group \
         to read the topics from the start)"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What the file says.
        found: String,
        /// What this run has.
        want: String,
    },
    /// redb or the file system failed (the message names the file).
    #[error("state file {path}: {message}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// One process's snapshot file (shared by the process's workers; redb serialises write transactions).
pub struct Store {
    path: PathBuf,
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn describe(h: &Header) -> String {
    format!("format {}, {} workers, configuration {:016x}", h.version, h.peers, h.fingerprint)
}

impl Store {
    /// Opens (or creates) `<dir>/p<process>.redb`. With `fresh`, an existing file is deleted first.
    ///
    /// Errors: the folder or file cannot be created or read; [`StateError::Mismatch`] when the file's
    /// header differs from `header`.
    pub fn open(dir: &Path, process: usize, header: Header, fresh: bool) -> Result<Store, StateError> {
        let path = dir.join(format!("p{process}.redb"));
        let fail = |e: &dyn std::fmt::Display| StateError::Store { path: path.clone(), message: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        if fresh && path.exists() {
            std::fs::remove_file(&path).map_err(|e| fail(&e))?;
        }
        let db = Database::create(&path).map_err(|e| fail(&e))?;
        let store = Store { path: path.clone(), db };
        let want = [header.version as u64, header.peers as u64, header.fingerprint];
        let found = store.read_header()?;
        match found {
            Some(f) if f != want => {
                let f = Header { version: f[0] as u32, peers: f[1] as u32, fingerprint: f[2] };
                return Err(StateError::Mismatch { path, found: describe(&f), want: describe(&header) });
            }
            Some(_) => {}
            None => {
                let bytes = encode(&want).map_err(|e| fail(&e))?;
                let tx = store.db.begin_write().map_err(|e| fail(&e))?;
                {
                    let mut t = tx.open_table(HEADER).map_err(|e| fail(&e))?;
                    t.insert("header", bytes.as_slice()).map_err(|e| fail(&e))?;
                    tx.open_table(SNAPSHOTS).map_err(|e| fail(&e))?;
                }
                tx.commit().map_err(|e| fail(&e))?;
            }
        }
        Ok(store)
    }

    fn fail(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Store { path: self.path.clone(), message: e.to_string() }
    }

    fn read_header(&self) -> Result<Option<[u64; 3]>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.fail(e))?;
        let t = match tx.open_table(HEADER) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let Some(v) = t.get("header").map_err(|e| self.fail(e))? else { return Ok(None) };
        decode(v.value()).map(Some).map_err(|e| self.fail(e))
    }

    /// The newest boundary for which every worker in `workers` has a snapshot; `None` when there is none.
    ///
    /// Errors: the file cannot be read.
    pub fn restore_point(&self, workers: std::ops::Range<usize>) -> Result<Option<Epoch>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.fail(e))?;
        let t = tx.open_table(SNAPSHOTS).map_err(|e| self.fail(e))?;
        newest_common(&t, workers).map_err(|e| self.fail(e))
    }

    /// Worker `worker`'s snapshot at `boundary`.
    ///
    /// Errors: the file cannot be read, or the snapshot is missing or does not decode.
    pub fn load(&self, worker: usize, boundary: Epoch) -> Result<Snapshot, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.fail(e))?;
        let t = tx.open_table(SNAPSHOTS).map_err(|e| self.fail(e))?;
        let v = t.get((worker as u32, boundary)).map_err(|e| self.fail(e))?;
        let v = v.ok_or_else(|| self.fail(format!("no snapshot of worker {worker} at epoch {boundary}")))?;
        decode(v.value()).map_err(|e| self.fail(e))
    }

    /// Stores worker `worker`'s snapshot of `boundary` in one transaction, deleting the snapshots older
    /// than the newest boundary that every worker in `workers` has. Returns the encoded size, bytes.
    ///
    /// Errors: the write or its commit failed (the previous snapshots are intact).
    pub fn save(
        &self,
        worker: usize,
        boundary: Epoch,
        snapshot: &Snapshot,
        workers: std::ops::Range<usize>,
    ) -> Result<usize, StateError> {
        let bytes = encode(snapshot).map_err(|e| self.fail(e))?;
        let tx = self.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| self.fail(e))?;
            t.insert((worker as u32, boundary), bytes.as_slice()).map_err(|e| self.fail(e))?;
            if let Some(keep) = newest_common(&t, workers).map_err(|e| self.fail(e))? {
                let old: Vec<(u32, u64)> = t
                    .iter()
                    .map_err(|e| self.fail(e))?
                    .flatten()
                    .map(|(k, _)| k.value())
                    .filter(|(_, b)| *b < keep)
                    .collect();
                for k in old {
                    t.remove(k).map_err(|e| self.fail(e))?;
                }
            }
        }
        millionx_dataflow::test_hook::pause_at("checkpoint");
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(bytes.len())
    }
}

/// The newest boundary present for every worker of `workers`.
fn newest_common<T: ReadableTable<(u32, u64), &'static [u8]>>(
    t: &T,
    workers: std::ops::Range<usize>,
) -> Result<Option<Epoch>, redb::StorageError> {
    let mut common: Option<std::collections::BTreeSet<u64>> = None;
    for w in workers {
        let mine: std::collections::BTreeSet<u64> =
            t.range((w as u32, 0)..=(w as u32, u64::MAX))?.flatten().map(|(k, _)| k.value().1).collect();
        common = Some(match common {
            None => mine,
            Some(c) => c.intersection(&mine).copied().collect(),
        });
    }
    Ok(common.and_then(|c| c.last().copied()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H: Header = Header { version: FORMAT_VERSION, peers: 2, fingerprint: 42 };

    fn snap(v: u8) -> Snapshot {
        [("kafka".to_owned(), vec![v])].into()
    }

    #[test]
    fn resumes_at_the_newest_boundary_every_worker_has_and_forgets_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0, H, false).unwrap();
        assert_eq!(s.restore_point(0..2).unwrap(), None);
        s.save(0, 4, &snap(1), 0..2).unwrap();
        s.save(1, 4, &snap(2), 0..2).unwrap();
        s.save(0, 8, &snap(3), 0..2).unwrap();
        assert_eq!(s.restore_point(0..2).unwrap(), Some(4), "worker 1 has no 8 yet");
        s.save(1, 8, &snap(4), 0..2).unwrap();
        assert_eq!(s.restore_point(0..2).unwrap(), Some(8));
        assert_eq!(s.load(1, 8).unwrap(), snap(4));
        assert!(s.load(0, 4).is_err(), "4 was deleted once 8 was complete");
        drop(s);
        let s = Store::open(dir.path(), 0, H, false).unwrap();
        assert_eq!(s.restore_point(0..2).unwrap(), Some(8), "durable across reopening");
    }

    #[test]
    fn another_configuration_is_refused_unless_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0, H, false).unwrap();
        s.save(0, 4, &snap(1), 0..1).unwrap();
        drop(s);
        let other = Header { fingerprint: 7, ..H };
        let e = Store::open(dir.path(), 0, other, false).unwrap_err();
        assert!(e.to_string().contains("--fresh-state"), "{e}");
        let e = Store::open(dir.path(), 0, Header { peers: 4, ..H }, false).unwrap_err();
        assert!(e.to_string().contains("4 workers"), "{e}");
        let s = Store::open(dir.path(), 0, other, true).unwrap();
        assert_eq!(s.restore_point(0..1).unwrap(), None);
    }
}
