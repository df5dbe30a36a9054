//! `millionx embed TEXT...` and `millionx search TEXT`: the command-line entry points (search: a Weaviate server
//! when configured, else the local index of the file sink's output).
//!
//! Both embed through the same [`EmbedPool`] and [`Embedder`] the `embed` operator uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::EmbedError;
use crate::index::{Hit, LocalIndex, CLASSES};
use crate::model::{locate_model_dir, Embedder, MODEL_FILES};
use crate::pool::{EmbedPool, PoolConfig};

/// `millionx embed`: prints one JSON array of 384 numbers per text, one per line, in argument order.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct EmbedArgs {
    /// Texts to embed (quote each one).
    #[arg(required = true, value_name = "TEXT")]
    pub texts: Vec<String>,
    /// Model directory; default `$MILLIONX_MODEL_DIR`, else `~/.cache/millionx/all-MiniLM-L6-v2`.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
}

/// `millionx search`: the objects nearest to a text, one JSON object per line, best first.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct SearchArgs {
    /// The query text.
    #[arg(value_name = "TEXT")]
    pub query: String,
    /// Weaviate class to search: `SocialPost` or `MarketOrder`.
    #[arg(long, default_value = "SocialPost")]
    pub class: String,
    /// Number of results.
    #[arg(short = 'k', long = "limit", default_value_t = 10)]
    pub k: usize,
    /// Search the file sink's Weaviate folder (holding `<Class>/*.json` batch files) instead of a server.
    /// Default: the Weaviate server when one is configured (`--config`'s `[weaviate]`, else `$WEAVIATE_URL`),
    /// else `out/weaviate`.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Run configuration whose `[weaviate]` table names the server to search.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model directory; default `$MILLIONX_MODEL_DIR`, else `~/.cache/millionx/all-MiniLM-L6-v2`.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
}

/// Loads the model from `dir`, or from [`locate_model_dir`] when `None`. A missing model is an error here
/// (the commands cannot run without it). Errors name `--model-dir` or `MILLIONX_MODEL_DIR` and the file.
pub fn load_model(dir: Option<&Path>) -> Result<Embedder, EmbedError> {
    let dir = match dir {
        Some(d) => {
            if let Some(f) = MODEL_FILES.into_iter().find(|f| !d.join(f).is_file()) {
                return Err(EmbedError::BadModelDir {
                    key: "--model-dir",
                    path: d.to_path_buf(),
                    reason: format!("{f} is missing or not a file"),
                });
            }
            d.to_path_buf()
        }
        None => locate_model_dir()?,
    };
    Embedder::load(&dir)
}

/// Embeds `texts` through a one-thread [`EmbedPool`] (the operator's code path), in input order.
pub fn embed_texts(embedder: Arc<Embedder>, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let pool = EmbedPool::start(embedder, PoolConfig { threads: 1, ..PoolConfig::default() })?;
    let mut client = pool.client(None);
    let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    let items: Vec<(u64, &str)> = texts.iter().enumerate().map(|(i, t)| (i as u64, t.as_str())).collect();
    let mut sent = 0;
    let mut received = 0;
    while received < texts.len() {
        if sent < items.len() {
            sent += client.submit(&items[sent..])?;
        }
        if let Some((id, v)) = client.wait(Duration::from_millis(100)) {
            let v = v.ok_or_else(|| EmbedError::Inference("the model failed on this batch".into()))?;
            if let Some(slot) = out.get_mut(id as usize) {
                *slot = Some(v.to_vec());
                received += 1;
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Runs `millionx embed`: writes one line per text to `out`, a JSON array of 384 numbers.
pub fn run_embed(args: &EmbedArgs, out: &mut dyn Write) -> Result<(), EmbedError> {
    let embedder = Arc::new(load_model(args.model_dir.as_deref())?);
    for v in embed_texts(embedder, &args.texts)? {
        serde_json::to_writer(&mut *out, &v).map_err(|e| EmbedError::Output(e.into()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The local index folder `millionx search` reads when no server is used.
pub const DEFAULT_INDEX: &str = "out/weaviate";

/// Runs `millionx search`: embeds the query, then searches `weaviate` when given (a GraphQL `nearVector` `Get`,
/// see [`millionx_sink_weaviate::query`]), else the local index `args.index` (default [`DEFAULT_INDEX`]).
/// Writes up to `k` lines to `out`, each a JSON object `{rank, score, distance, class, id, properties}`
/// (score = cosine similarity, distance = Weaviate's cosine distance 1 − score), nearest first, and a one-line
/// summary to `note`. Errors: unknown class, `-k 0`, no model, unreadable index files, a failed server query.
pub fn run_search(
    args: &SearchArgs,
    weaviate: Option<&millionx_sink_weaviate::WeaviateConfig>,
    out: &mut dyn Write,
    note: &mut dyn Write,
) -> Result<(), EmbedError> {
    let index_dir = args.index.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_INDEX));
    if !CLASSES.contains(&args.class.as_str()) {
        return Err(EmbedError::IndexFile {
            path: index_dir.join(&args.class),
            reason: format!("--class {}: unknown class (expected one of {})", args.class, CLASSES.join(", ")),
        });
    }
    if args.k == 0 {
        return Err(EmbedError::Search("-k/--limit: must be at least 1".into()));
    }
    let local = match weaviate {
        Some(_) => None,
        None => Some(LocalIndex::load(&index_dir, &args.class)?),
    };
    let embedder = Arc::new(load_model(args.model_dir.as_deref())?);
    let query = embed_texts(embedder, std::slice::from_ref(&args.query))?;
    let query = query.first().ok_or_else(|| EmbedError::Inference("no vector for the query".into()))?;
    let hits = match (&local, weaviate) {
        (Some(index), _) => {
            writeln!(
                note,
                "search: {} {} objects with vectors in {} files under {} ({} without a vector)",
                index.len(),
                args.class,
                index.files(),
                index_dir.display(),
                index.without_vector()
            )?;
            index.search(query, args.k)
        }
        (None, Some(cfg)) => {
            let found = millionx_sink_weaviate::near_vector(cfg, &args.class, query, args.k)
                .map_err(|e| EmbedError::Search(e.to_string()))?;
            writeln!(
                note,
                "search: {} nearest {} objects from Weaviate at {}",
                found.len(),
                args.class,
                cfg.base_url()
            )?;
            found
                .into_iter()
                .enumerate()
                .map(|(i, h)| Hit {
                    rank: i + 1,
                    score: 1.0 - h.distance,
                    distance: h.distance,
                    class: args.class.clone(),
                    id: h.id,
                    properties: h.properties,
                })
                .collect()
        }
        (None, None) => Vec::new(),
    };
    for hit in hits {
        serde_json::to_writer(&mut *out, &hit).map_err(|e| EmbedError::Output(e.into()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
