//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod scripted;

use std::path::PathBuf;

use clap::Parser;
use millionx_source_weather::cli::WeatherCommand;
use millionx_source_weather::WeatherArgs;

/// Stand-in for the binary's top level: `millionx weather ...`.
#[derive(Debug, Parser)]
#[command(name = "millionx")]
struct Cli {
    #[command(subcommand)]
    top: Top,
}

#[derive(Debug, clap::Subcommand)]
enum Top {
    Weather(WeatherArgs),
}

/// Parses a full `millionx weather ...` command line (argv[0] included).
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<WeatherCommand, String> {
    Cli::try_parse_from(args.iter().map(|a| a.as_ref()))
        .map(|c| match c.top {
            Top::Weather(w) => w.command,
        })
        .map_err(|e| e.to_string())
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<repo root>/../shared/fixtures/<name>`; for a git worktree nested deeper, the nearest ancestor's
/// `shared/`. `None` (after printing that the test skipped) when absent outside CI; panics under `CI=true`.
pub fn shared_fixture_dir(name: &str) -> Option<PathBuf> {
    let root = repo_root().canonicalize().unwrap_or_else(|_| repo_root());
    let found = root.ancestors().skip(1).map(|a| a.join("shared/fixtures").join(name)).find(|p| p.is_dir());
    match found {
        Some(dir) => Some(dir),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and ../shared/fixtures/{name} is missing beside {}", root.display())
        }
        None => {
            println!("skipped: ../shared/fixtures/{name} not found beside {}", root.display());
            None
        }
    }
}
