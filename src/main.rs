//! `millionx`: see `millionx --help`.

use std::process::ExitCode;

/// mimalloc: the pipeline allocates many short-lived strings and batch buffers; glibc's allocator
/// spent ~30% of a replay run in malloc/free (perf, see benchmarks/REPORT.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread starts: one BLAS/rayon thread per embedding pool thread (see operators/embed).
    millionx_embed::prefer_pool_parallelism();
    millionx::cli::main()
}
