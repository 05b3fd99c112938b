//! Thin: parse the command line and hand it to the library.

use clap::Parser;
use std::process::ExitCode;

// mimalloc: the verifier and the service allocate many small strings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Every file this process creates (the database, its WAL, exports, the
    // signer state) holds personal data or secrets: private, whatever the
    // directory allows.
    // SAFETY: umask only sets this process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = consent_ledger::cli::Cli::parse();
    match consent_ledger::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
