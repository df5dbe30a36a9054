//! Word pieces for both backends: the tokenizer (loaded and set up as sentence-transformers runs it), and the
//! batching of a list of texts into length-sorted chunks padded only to their own longest text.
//!
//! A backend supplies one function that turns a [`Chunk`] (padded token ids and the attention mask) into one
//! pooled, L2-normalised vector per row; [`WordPieces::embed_with`] tokenizes, sorts, cuts the chunks, runs them
//! and puts the vectors back in input order.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::EmbedError;

/// Token limit when the directory has no `sentence_bert_config.json`: the model card's 256 word pieces
/// (sentence-transformers' `max_seq_length` for this model; the tokenizer.json's own 128 is overridden).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Longest chunk a backend runs at once, in texts; longer batches run in several chunks.
const MAX_CHUNK_TEXTS: usize = 64;
/// A chunk is cut before a text whose padding would push padded tokens over
/// `PAD_RATIO × real tokens + PAD_SLACK` (sorting by length keeps this rare).
const PAD_RATIO: f64 = 1.25;
/// See [`PAD_RATIO`], in tokens.
const PAD_SLACK: usize = 32;

/// One chunk of texts ready for the encoder: `rows × width` token ids (padded with `[PAD]`) and the mask
/// (1 on real tokens, 0 on padding), row-major.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// Token ids, `rows × width`.
    pub ids: &'a [u32],
    /// Attention mask, `rows × width`.
    pub mask: &'a [u32],
    /// Texts in the chunk.
    pub rows: usize,
    /// Tokens per row (the longest text's count, at least 1).
    pub width: usize,
    /// Real tokens of each row (`[CLS]` and `[SEP]` included).
    pub lens: &'a [usize],
}

/// Buffers one thread reuses from batch to batch (token ids, masks, the sort order).
#[derive(Debug, Default)]
pub struct Scratch {
    tokens: Vec<Vec<u32>>,
    order: Vec<usize>,
    ids: Vec<u32>,
    mask: Vec<u32>,
    lens: Vec<usize>,
}

/// Runs `f` with this thread's [`Scratch`] (a fresh one if the thread's is already in use).
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// The all-MiniLM-L6-v2 WordPiece tokenizer with `[CLS]`/`[SEP]`, truncated at `max_tokens`, unpadded.
pub struct WordPieces {
    tokenizer: Tokenizer,
    max_tokens: usize,
    pad_id: u32,
}

impl std::fmt::Debug for WordPieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordPieces").field("max_tokens", &self.max_tokens).field("pad_id", &self.pad_id).finish()
    }
}

impl WordPieces {
    /// Loads `dir/tokenizer.json`; the token limit is `sentence_bert_config.json`'s `max_seq_length` when that
    /// file exists (else [`DEFAULT_MAX_TOKENS`]), at most `max_positions` (the model's position table).
    ///
    /// Errors: [`EmbedError::ModelFile`] naming the unreadable or unparsable file.
    pub fn load(dir: &Path, max_positions: usize, default_pad_id: u32) -> Result<WordPieces, EmbedError> {
        let file_err = |name: &str, reason: String| EmbedError::ModelFile { path: dir.join(name), reason };
        let max_tokens = read_max_seq_length(dir)?.unwrap_or(DEFAULT_MAX_TOKENS).min(max_positions);
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| file_err("tokenizer.json", e.to_string()))?;
        // The packaged tokenizer.json pads every text to 128 and truncates at 128: we pad per chunk ourselves
        // and truncate where sentence-transformers does.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..TruncationParams::default() }))
            .map_err(|e| file_err("tokenizer.json", e.to_string()))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(default_pad_id);
        Ok(WordPieces { tokenizer, max_tokens, pad_id })
    }

    /// The token limit (texts are truncated to this many word pieces, `[CLS]` and `[SEP]` included).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Number of word pieces (with `[CLS]`/`[SEP]`, after truncation) the model sees for `text`.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        let enc = self.tokenizer.encode_fast(text, true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(enc.get_ids().len())
    }

    /// Tokenizes `texts`, runs `run` on each length-sorted chunk and returns one vector per text, in input
    /// order. `run` returns one vector per chunk row, in row order.
    pub fn embed_with(
        &self,
        texts: &[&str],
        s: &mut Scratch,
        mut run: impl FnMut(&Chunk<'_>) -> Result<Vec<Vec<f32>>, EmbedError>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = texts.len();
        let mut out = vec![Vec::new(); n];
        if n == 0 {
            return Ok(out);
        }
        s.tokens.resize_with(n, Vec::new);
        for (text, ids) in texts.iter().zip(s.tokens.iter_mut()) {
            let enc = self.tokenizer.encode_fast(*text, true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
            ids.clear();
            ids.extend_from_slice(enc.get_ids());
        }
        s.order.clear();
        s.order.extend(0..n);
        let tokens = &s.tokens;
        s.order.sort_by_key(|&i| tokens[i].len());

        let mut start = 0;
        while start < n {
            let end = chunk_end(&s.order, &s.tokens, start);
            let rows = &s.order[start..end];
            let width = rows.iter().map(|&i| s.tokens[i].len()).max().unwrap_or(0).max(1);
            s.ids.clear();
            s.mask.clear();
            s.lens.clear();
            for &i in rows {
                let t = &s.tokens[i];
                s.ids.extend_from_slice(t);
                s.ids.resize(s.ids.len() + width - t.len(), self.pad_id);
                s.mask.resize(s.mask.len() + t.len(), 1);
                s.mask.resize(s.mask.len() + width - t.len(), 0);
                s.lens.push(t.len());
            }
            let chunk = Chunk { ids: &s.ids, mask: &s.mask, rows: rows.len(), width, lens: &s.lens };
            let vectors = run(&chunk)?;
            if vectors.len() != rows.len() {
                return Err(EmbedError::Inference(format!(
                    "the encoder returned {} vectors for {} texts",
                    vectors.len(),
                    rows.len()
                )));
            }
            for (&i, v) in rows.iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }
}

/// Divides `v` by its L2 norm as sentence-transformers does (`x / max(‖x‖₂, 1e-12)`, torch `F.normalize`).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|a| *a /= norm);
}

/// End (exclusive) of the chunk that starts at `start` in the length-sorted `order`.
fn chunk_end(order: &[usize], tokens: &[Vec<u32>], start: usize) -> usize {
    let mut real = 0usize;
    let mut end = start;
    while end < order.len() && end - start < MAX_CHUNK_TEXTS {
        let len = tokens[order[end]].len();
        let count = end - start + 1;
        // Sorted ascending, so `len` is the chunk's width if this text joins it.
        let padded = count * len;
        if end > start && padded as f64 > PAD_RATIO * (real + len) as f64 + PAD_SLACK as f64 {
            break;
        }
        real += len;
        end += 1;
    }
    end
}

/// Reads `max_seq_length` from `sentence_bert_config.json`; `None` when the file is absent.
fn read_max_seq_length(dir: &Path) -> Result<Option<usize>, EmbedError> {
    let path = dir.join("sentence_bert_config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmbedError::ModelFile { path, reason: e.to_string() }),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EmbedError::ModelFile { path: path.clone(), reason: e.to_string() })?;
    match v.get("max_seq_length") {
        None => Ok(None),
        Some(m) => match m.as_u64() {
            Some(m) if m >= 2 => Ok(Some(m as usize)),
            _ => Err(EmbedError::ModelFile { path, reason: "max_seq_length is not an integer ≥ 2".into() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(lens: &[usize]) -> Vec<Vec<u32>> {
        lens.iter().map(|&l| vec![1; l]).collect()
    }

    #[test]
    fn chunks_cut_where_padding_grows() {
        // Sorted lengths 10,10,11,12 then 200: the long text gets its own chunk.
        let t = toks(&[10, 10, 11, 12, 200]);
        let order = vec![0, 1, 2, 3, 4];
        assert_eq!(chunk_end(&order, &t, 0), 4);
        assert_eq!(chunk_end(&order, &t, 4), 5);
    }

    #[test]
    fn chunks_cap_at_max_texts() {
        let t = toks(&vec![8; 150]);
        let order: Vec<usize> = (0..150).collect();
        assert_eq!(chunk_end(&order, &t, 0), MAX_CHUNK_TEXTS);
        assert_eq!(chunk_end(&order, &t, 128), 150);
    }

    #[test]
    fn normalize_divides_by_the_norm_and_leaves_zero_alone() {
        let mut v = [3.0f32, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0f32, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }
}
