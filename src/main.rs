//! `millionx`: see `millionx --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    millionx::cli::main()
}
