//! The embedded-default writer: one file per flushed batch.
//!
//! Files are named `w<worker, 3 digits>-<batch sequence, 6 digits>.<ext>` inside the sink's folder
//! (`out/snowflake/SOCIAL_POSTS/w000-000000.ndjson`), or `w<worker>-s<segment, 6 digits>-<sequence>.<ext>`
//! for a batch of a checkpoint segment (Kafka source, see [`remove_from_segment`]), written to a temporary
//! name and renamed, so a reader never sees a half-written batch. Each worker writes its own files; a run over `-w N` writes
//! the same records, split differently.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, SinkError, WriteOutcome};

/// Batches a writer may have queued on its I/O thread (double buffering: one written while the
/// worker fills the next).
pub const MAX_IN_FLIGHT: usize = 2;

/// Writes batches to files in one folder on a dedicated I/O thread, so the timely worker keeps
/// computing while the kernel copies bytes.
#[derive(Debug)]
pub struct FileWriter {
    name: String,
    dir: PathBuf,
    worker: usize,
    extension: &'static str,
    to_io: Option<Sender<EncodedBatch>>,
    from_io: Receiver<Completion>,
    io: Option<JoinHandle<()>>,
    in_flight: usize,
    lost: Vec<Completion>,
}

/// The path batch `seq` (of checkpoint segment `segment`) of `worker` is written to.
fn path_of(dir: &Path, worker: usize, segment: Option<u64>, seq: u64, extension: &str) -> PathBuf {
    match segment {
        None => dir.join(format!("w{worker:03}-{seq:06}.{extension}")),
        Some(s) => dir.join(format!("w{worker:03}-s{s:06}-{seq:06}.{extension}")),
    }
}

/// The checkpoint segment in a batch file's name, `None` for an unsegmented or foreign name.
fn segment_of(name: &str) -> Option<u64> {
    let (_, rest) = name.split_once("-s")?;
    rest.split_once('-')?.0.parse().ok()
}

/// Before a run that resumes at checkpoint segment `from` (`None`: from scratch), removes from every
/// sink folder under `out` (`snowflake/*`, `weaviate/*`, `dlq`, `quality`) the batch files that the run
/// will write again: those of segments `≥ from`, unsegmented ones when `from` is `None`, and temporary
/// files. Returns how many were removed.
///
/// Errors: a folder cannot be listed or a file removed (the path names it).
pub fn remove_from_segment(out: &Path, from: Option<u64>) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut dirs = vec![out.join("dlq"), out.join("quality")];
    for parent in ["snowflake", "weaviate"] {
        if let Ok(entries) = fs::read_dir(out.join(parent)) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let stale = name.ends_with(".tmp")
                || match (segment_of(name), from) {
                    (Some(s), Some(f)) => s >= f,
                    (_, None) => true,
                    (None, Some(_)) => false,
                };
            if stale {
                fs::remove_file(&path)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn write_batch(dir: &Path, path: &Path, batch: &EncodedBatch) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let written = fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&batch.body)?;
        f.flush()
    });
    millionx_dataflow::test_hook::pause_at("flush");
    if let Err(e) = written {
        // Best effort: a full disk should not also keep the partial file.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)
}

impl FileWriter {
    /// A writer into `dir` (created on first write) for `worker`, with file extension `extension`
    /// (`ndjson`, `json`). `name` labels errors.
    ///
    /// Errors: the I/O thread cannot be started.
    pub fn new(
        name: impl Into<String>,
        dir: PathBuf,
        worker: usize,
        extension: &'static str,
    ) -> std::io::Result<FileWriter> {
        let name = name.into();
        let (to_io, batches) = channel::<EncodedBatch>();
        let (done, from_io) = channel::<Completion>();
        let io_dir = dir.clone();
        let sink = name.clone();
        let io = std::thread::Builder::new().name(format!("io-{name}-{worker}")).spawn(move || {
            for batch in batches {
                let path = path_of(&io_dir, worker, batch.segment, batch.seq, extension);
                let result = write_batch(&io_dir, &path, &batch)
                    .map(|()| WriteOutcome::default())
                    .map_err(|e| SinkError { sink: sink.clone(), message: format!("writing {}: {e}", path.display()) });
                if done.send(Completion { seq: batch.seq, result, batch }).is_err() {
                    return;
                }
            }
        })?;
        Ok(FileWriter {
            name,
            dir,
            worker,
            extension,
            to_io: Some(to_io),
            from_io,
            io: Some(io),
            in_flight: 0,
            lost: Vec::new(),
        })
    }

    /// The path unsegmented batch `seq` is written to.
    pub fn path_of(&self, seq: u64) -> PathBuf {
        path_of(&self.dir, self.worker, None, seq, self.extension)
    }
}

impl BatchWriter for FileWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        self.in_flight += 1;
        let Some(tx) = &self.to_io else { return };
        if let Err(e) = tx.send(batch) {
            let batch = e.0;
            let message = format!("the I/O thread stopped; batch {} not written", batch.seq);
            self.lost.push(Completion {
                seq: batch.seq,
                result: Err(SinkError { sink: self.name.clone(), message }),
                batch,
            });
        }
    }

    fn poll(&mut self) -> Vec<Completion> {
        let mut done: Vec<Completion> = std::mem::take(&mut self.lost);
        done.extend(self.from_io.try_iter());
        self.in_flight -= done.len();
        done
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn max_in_flight(&self) -> usize {
        MAX_IN_FLIGHT
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        self.to_io = None;
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{Origin, StreamKind};
    use millionx_sink_util::Framing;

    fn wait(w: &mut FileWriter) -> Completion {
        loop {
            if let Some(c) = w.poll().pop() {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn writes_one_file_per_batch_named_by_worker_and_sequence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = FileWriter::new("test", dir.path().join("T"), 7, "ndjson").expect("writer");
        let mut b = EncodedBatch::new(3, Framing::NDJSON);
        b.push_with(Origin { stream: StreamKind::Social, partition: 0, offset: 0 }, 0, |o| {
            o.extend_from_slice(b"{}\n")
        });
        b.close();
        w.submit(b);
        assert_eq!(w.in_flight(), 1);
        let done = wait(&mut w);
        assert!(done.result.is_ok());
        assert_eq!(std::fs::read(dir.path().join("T/w007-000003.ndjson")).expect("file"), b"{}\n");
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn segmented_batches_are_named_by_segment_and_removed_from_a_restart_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("snowflake/T");
        let mut w = FileWriter::new("test", t.clone(), 1, "ndjson").expect("writer");
        for (seq, segment) in [(0, 2), (1, 3), (2, 5)] {
            let mut b = EncodedBatch::new(seq, Framing::NDJSON);
            b.segment = Some(segment);
            b.close();
            w.submit(b);
            assert!(wait(&mut w).result.is_ok());
        }
        drop(w);
        std::fs::write(dir.path().join("snowflake/T/w001-000009.ndjson.tmp"), b"").expect("tmp");
        assert!(t.join("w001-s000003-000001.ndjson").exists());
        assert_eq!(remove_from_segment(dir.path(), Some(3)).expect("remove"), 3, "segments 3 and 5, the tmp file");
        let left: Vec<_> = std::fs::read_dir(&t).expect("dir").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("w001-s000002-000000.ndjson")]);
        assert_eq!(remove_from_segment(dir.path(), None).expect("remove"), 1);
    }

    #[test]
    fn an_unwritable_folder_is_a_sink_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let mut w = FileWriter::new("snowflake/X", blocker.join("sub"), 0, "ndjson").expect("writer");
        let mut b = EncodedBatch::new(0, Framing::NDJSON);
        b.close();
        w.submit(b);
        let e = wait(&mut w).result.expect_err("cannot create a folder under a file");
        assert_eq!(e.sink, "snowflake/X");
    }
}
