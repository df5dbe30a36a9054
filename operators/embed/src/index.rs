//! A local vector index over the file sink's Weaviate batch files, for `millionx search`.
//!
//! Reads every `<dir>/<Class>/*.json` (bodies of `POST /v1/batch/objects`: `{"objects":[{class, id,
//! properties, vector?}]}`) in file-name order; a later object with the same id replaces an earlier one, as a
//! Weaviate upsert would. Search is exact (brute-force cosine over all vectors, O(n × 384) per query), so
//! results equal what an HNSW index with perfect recall returns; memory is n × 1.5 KB.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::EmbedError;
use crate::model::DIMS;

/// The classes the file sink writes.
pub const CLASSES: [&str; 2] = ["SocialPost", "MarketOrder"];

#[derive(Deserialize)]
struct Batch {
    objects: Vec<Object>,
}

#[derive(Deserialize)]
struct Object {
    class: String,
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    vector: Option<Vec<f32>>,
}

/// Objects of one class with their vectors.
#[derive(Debug, Default)]
pub struct LocalIndex {
    class: String,
    ids: Vec<String>,
    properties: Vec<Map<String, Value>>,
    /// `ids.len() × DIMS` floats, row-major.
    vectors: Vec<f32>,
    /// Objects read that carry no vector (written while embeddings were off or late).
    without_vector: usize,
    /// Batch files read.
    files: usize,
}

/// One search result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// Cosine similarity to the query, −1.0–1.0.
    pub score: f32,
    /// Weaviate's cosine distance, `1 − score` (0.0–2.0).
    pub distance: f32,
    /// The object's class.
    pub class: String,
    /// The object's UUID.
    pub id: String,
    /// The object's properties as stored.
    pub properties: Map<String, Value>,
}

impl LocalIndex {
    /// Loads the objects of `class` from `dir/<class>/*.json`.
    ///
    /// Errors: [`EmbedError::IndexFile`] naming the file for an unreadable or malformed batch file, a vector
    /// that is not [`DIMS`] wide, or (with the path of `dir/<class>`) a missing class folder.
    pub fn load(dir: &Path, class: &str) -> Result<LocalIndex, EmbedError> {
        let folder = dir.join(class);
        let err = |path: &Path, reason: String| EmbedError::IndexFile { path: path.to_path_buf(), reason };
        let entries = std::fs::read_dir(&folder).map_err(|e| err(&folder, format!("cannot list: {e}")))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| err(&folder, e.to_string()))?.path();
            if path.extension().is_some_and(|x| x == "json") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut index = LocalIndex { class: class.to_owned(), files: files.len(), ..LocalIndex::default() };
        let mut position: HashMap<String, usize> = HashMap::new();
        let mut no_vector: HashMap<String, ()> = HashMap::new();
        for path in &files {
            let file = std::fs::File::open(path).map_err(|e| err(path, e.to_string()))?;
            let batch: Batch = serde_json::from_reader(std::io::BufReader::new(file))
                .map_err(|e| err(path, format!("not a Weaviate batch body: {e}")))?;
            for (i, obj) in batch.objects.into_iter().enumerate() {
                if obj.class != class {
                    continue;
                }
                let Some(vector) = obj.vector else {
                    // A later copy without a vector does not erase an earlier one that had it.
                    if !position.contains_key(&obj.id) {
                        no_vector.insert(obj.id, ());
                    }
                    continue;
                };
                if vector.len() != DIMS {
                    return Err(err(path, format!("object {i} has a {}-wide vector, expected {DIMS}", vector.len())));
                }
                no_vector.remove(&obj.id);
                match position.get(&obj.id) {
                    Some(&at) => {
                        index.vectors[at * DIMS..(at + 1) * DIMS].copy_from_slice(&vector);
                        index.properties[at] = obj.properties;
                    }
                    None => {
                        position.insert(obj.id.clone(), index.ids.len());
                        index.ids.push(obj.id);
                        index.properties.push(obj.properties);
                        index.vectors.extend_from_slice(&vector);
                    }
                }
            }
        }
        index.without_vector = no_vector.len();
        Ok(index)
    }

    /// Objects with a vector.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No object with a vector.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Objects found without a vector (and never with one).
    pub fn without_vector(&self) -> usize {
        self.without_vector
    }

    /// Batch files read.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The `k` objects most similar to `query` (cosine), best first; ties by id.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        #[derive(PartialEq)]
        struct Scored(f32, usize);
        impl Eq for Scored {}
        impl PartialOrd for Scored {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        // Min-heap on score: the root is the worst of the best k.
        impl Ord for Scored {
            fn cmp(&self, other: &Self) -> Ordering {
                other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
            }
        }
        let qn = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        if k == 0 || qn == 0.0 || query.len() != DIMS {
            return Vec::new();
        }
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        for (i, row) in self.vectors.chunks_exact(DIMS).enumerate() {
            let dot: f32 = row.iter().zip(query).map(|(a, b)| a * b).sum();
            let rn = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            let score = if rn == 0.0 { 0.0 } else { dot / (qn * rn) };
            heap.push(Scored(score, i));
            if heap.len() > k {
                heap.pop();
            }
        }
        let mut best = heap.into_vec();
        best.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| self.ids[a.1].cmp(&self.ids[b.1])));
        best.into_iter()
            .enumerate()
            .map(|(r, Scored(score, i))| Hit {
                rank: r + 1,
                score,
                distance: 1.0 - score,
                class: self.class.clone(),
                id: self.ids[i].clone(),
                properties: self.properties[i].clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector along axis `a` (plus a little of axis `b`).
    fn axis(a: usize, b: usize, w: f32) -> Vec<f32> {
        let mut v = vec![0.0; DIMS];
        v[a] = 1.0;
        v[b] += w;
        v
    }

    fn object(id: &str, v: Option<Vec<f32>>) -> Value {
        let mut o = serde_json::json!({"class": "SocialPost", "id": id, "properties": {"postId": id}});
        if let Some(v) = v {
            o["vector"] = serde_json::json!(v);
        }
        o
    }

    fn write(dir: &Path, name: &str, objects: Vec<Value>) {
        std::fs::create_dir_all(dir.join("SocialPost")).expect("folder");
        let body = serde_json::json!({ "objects": objects });
        std::fs::write(dir.join("SocialPost").join(name), body.to_string()).expect("write");
    }

    #[test]
    fn exact_top_k_with_upserts_by_id() {
        let d = tempfile::tempdir().expect("temp dir");
        write(
            d.path(),
            "a.json",
            vec![object("x", Some(axis(0, 1, 0.1))), object("y", Some(axis(1, 0, 0.0))), object("z", None)],
        );
        // Later file: y moves next to the query, w has no vector, z still none.
        write(d.path(), "b.json", vec![object("y", Some(axis(0, 2, 0.05))), object("w", None)]);
        let index = LocalIndex::load(d.path(), "SocialPost").expect("loads");
        assert_eq!((index.len(), index.without_vector(), index.files()), (2, 2, 2));
        let hits = index.search(&axis(0, 0, 0.0), 5);
        assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), vec!["y", "x"]);
        let expect_y = 1.0 / (1.0f32 + 0.05 * 0.05).sqrt();
        assert!((hits[0].score - expect_y).abs() < 1e-6);
        assert!((hits[0].distance - (1.0 - expect_y)).abs() < 1e-6);
        assert_eq!(hits[0].rank, 1);
        assert_eq!(index.search(&axis(0, 0, 0.0), 1).len(), 1);
        assert!(index.search(&axis(0, 0, 0.0), 0).is_empty());
    }

    #[test]
    fn bad_files_are_named() {
        let d = tempfile::tempdir().expect("temp dir");
        write(d.path(), "a.json", vec![object("x", Some(vec![1.0; 3]))]);
        let err = LocalIndex::load(d.path(), "SocialPost").expect_err("3-wide vector");
        assert!(err.to_string().contains("a.json: object 0 has a 3-wide vector, expected 384"), "{err}");
        std::fs::write(d.path().join("SocialPost").join("a.json"), "{\"objects\": [").expect("write");
        let err = LocalIndex::load(d.path(), "SocialPost").expect_err("truncated");
        assert!(err.to_string().contains("a.json: not a Weaviate batch body"), "{err}");
        let err = LocalIndex::load(d.path(), "MarketOrder").expect_err("no folder");
        assert!(err.to_string().contains("MarketOrder: cannot list"), "{err}");
    }
}
