//! `millionx search TEXT`: embeds the query ([`millionx_embed`]) and asks a Weaviate server (GraphQL
//! `nearVector`, [`millionx_sink_weaviate::near_vector`]) when one is configured, else the local index of the
//! file sink's Weaviate batch files ([`LocalIndex`]).
//!
//! It lives in the binary because it joins an operator crate (the model) and a sink crate (the Weaviate
//! client), which may not import each other (`ops/CONTEXT.md`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use millionx_dataflow::config::{ConnectorConfig as _, Env};
use millionx_embed::cli::{embed_texts, load_model};
use millionx_embed::index::CLASSES;
use millionx_embed::{Hit, LocalIndex};
use millionx_sink_weaviate::WeaviateConfig;

use crate::config::RunConfig;

/// The local index folder `millionx search` reads when no server is used.
pub const DEFAULT_INDEX: &str = "out/weaviate";

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

/// The Weaviate server `millionx search` queries: none with `--index`; else `--config`'s `[weaviate]` table, else
/// `$WEAVIATE_URL`; none when neither is set (the local index is searched). Errors: unreadable or invalid
/// configuration (the message names the key).
pub fn search_server(args: &SearchArgs) -> Result<Option<WeaviateConfig>, String> {
    if args.index.is_some() {
        return Ok(None);
    }
    let env = Env::process();
    let from_file = match &args.config {
        Some(p) => RunConfig::from_file(p, &env).map_err(|e| e.to_string())?.weaviate,
        None => None,
    };
    let config = match from_file {
        Some(c) => c,
        None if env.get(millionx_sink_weaviate::config::URL_ENV).is_some() => WeaviateConfig::from_env(&env),
        None => return Ok(None),
    };
    config.validate().map_err(|e| format!("weaviate: {e}"))?;
    Ok(Some(config))
}

/// Runs `millionx search`: embeds the query, then searches `weaviate` when given (a GraphQL `nearVector` `Get`),
/// else the local index `args.index` (default [`DEFAULT_INDEX`]). Writes up to `k` lines to `out`, each a JSON
/// object `{rank, score, distance, class, id, properties}` (score = cosine similarity, distance = Weaviate's
/// cosine distance 1 − score), nearest first, and a one-line summary to `note`. Errors: unknown class, `-k 0`,
/// no model, unreadable index files, a failed server query.
pub fn run_search(
    args: &SearchArgs,
    weaviate: Option<&WeaviateConfig>,
    out: &mut dyn Write,
    note: &mut dyn Write,
) -> anyhow::Result<()> {
    let index_dir = args.index.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_INDEX));
    if !CLASSES.contains(&args.class.as_str()) {
        bail!("--class {}: unknown class (expected one of {})", args.class, CLASSES.join(", "));
    }
    if args.k == 0 {
        bail!("-k/--limit: must be at least 1");
    }
    let local = match weaviate {
        Some(_) => None,
        None => Some(LocalIndex::load(&index_dir, &args.class)?),
    };
    let embedder = load_model(args.model_dir.as_deref(), millionx_embed::EmbedBackend::Auto)?;
    let query = embed_texts(embedder, std::slice::from_ref(&args.query))?;
    let query = query.first().context("no vector for the query")?;
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
            let found = millionx_sink_weaviate::near_vector(cfg, &args.class, query, args.k)?;
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
        serde_json::to_writer(&mut *out, &hit).context("output")?;
        out.write_all(b"\n").context("output")?;
    }
    out.flush().context("output")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(class: &str, k: usize) -> SearchArgs {
        SearchArgs {
            query: "x".into(),
            class: class.into(),
            k,
            index: Some("out/weaviate".into()),
            config: None,
            model_dir: None,
        }
    }

    #[test]
    fn search_rejects_an_unknown_class_and_a_zero_limit_before_loading_anything() {
        let err = run_search(&args("Posts", 3), None, &mut Vec::new(), &mut Vec::new()).expect_err("unknown class");
        assert_eq!(err.to_string(), "--class Posts: unknown class (expected one of SocialPost, MarketOrder)");
        let err = run_search(&args("SocialPost", 0), None, &mut Vec::new(), &mut Vec::new()).expect_err("-k 0");
        assert_eq!(err.to_string(), "-k/--limit: must be at least 1");
    }
}
