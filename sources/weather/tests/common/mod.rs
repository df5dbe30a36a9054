//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod scripted;

use std::path::PathBuf;

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
