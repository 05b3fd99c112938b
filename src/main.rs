//! Thin: parse the command line and hand it to the library.

use clap::Parser;
use std::process::ExitCode;

// mimalloc: the verifier and the service allocate many small strings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = consent_ledger::cli::Cli::parse();
    match consent_ledger::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
