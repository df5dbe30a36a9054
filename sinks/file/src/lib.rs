//! The embedded-default writer: one file per flushed batch.
//!
//! Files are named `w<worker, 3 digits>-<batch sequence, 6 digits>.<ext>` inside the sink's folder
//! (`out/snowflake/SOCIAL_POSTS/w000-000000.ndjson`), written to a temporary name and renamed, so a
//! reader never sees a half-written batch. Each worker writes its own files; a run over `-w N` writes
//! the same records, split differently.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use millionx_sink_util::{BatchWriter, Completion, EncodedBatch, SinkError, WriteOutcome};

/// Writes batches to files in one folder.
#[derive(Debug)]
pub struct FileWriter {
    name: String,
    dir: PathBuf,
    worker: usize,
    extension: &'static str,
    done: Vec<Completion>,
}

impl FileWriter {
    /// A writer into `dir` (created on first write) for `worker`, with file extension `extension`
    /// (`ndjson`, `json`). `name` labels errors.
    pub fn new(
        name: impl Into<String>,
        dir: PathBuf,
        worker: usize,
        extension: &'static str,
    ) -> FileWriter {
        FileWriter {
            name: name.into(),
            dir,
            worker,
            extension,
            done: Vec::new(),
        }
    }

    /// The path batch `seq` is written to.
    pub fn path_of(&self, seq: u64) -> PathBuf {
        self.dir
            .join(format!("w{:03}-{:06}.{}", self.worker, seq, self.extension))
    }

    fn write(&self, batch: &EncodedBatch) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path_of(batch.seq);
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&batch.body)?;
        f.flush()?;
        drop(f);
        fs::rename(&tmp, &path)
    }
}

impl BatchWriter for FileWriter {
    fn submit(&mut self, batch: EncodedBatch) {
        let result = self
            .write(&batch)
            .map(|()| WriteOutcome::default())
            .map_err(|e| SinkError {
                sink: self.name.clone(),
                message: format!("writing {}: {e}", self.path_of(batch.seq).display()),
            });
        self.done.push(Completion {
            seq: batch.seq,
            result,
            batch,
        });
    }

    fn poll(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.done)
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{Origin, StreamKind};
    use millionx_sink_util::Framing;

    #[test]
    fn writes_one_file_per_batch_named_by_worker_and_sequence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = FileWriter::new("test", dir.path().join("T"), 7, "ndjson");
        let mut b = EncodedBatch::new(3, Framing::NDJSON);
        b.push_with(
            Origin {
                stream: StreamKind::Social,
                partition: 0,
                offset: 0,
            },
            0,
            |o| o.extend_from_slice(b"{}\n"),
        );
        b.close();
        w.submit(b);
        assert_eq!(w.in_flight(), 1);
        let done = w.poll();
        assert!(done[0].result.is_ok());
        assert_eq!(
            std::fs::read(dir.path().join("T/w007-000003.ndjson")).expect("file"),
            b"{}\n"
        );
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn an_unwritable_folder_is_a_sink_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let mut w = FileWriter::new("snowflake/X", blocker.join("sub"), 0, "ndjson");
        let mut b = EncodedBatch::new(0, Framing::NDJSON);
        b.close();
        w.submit(b);
        let e = w
            .poll()
            .remove(0)
            .result
            .expect_err("cannot create a folder under a file");
        assert_eq!(e.sink, "snowflake/X");
    }
}
