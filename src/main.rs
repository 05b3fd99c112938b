//! Thin: parse the command line and hand it to the library.

use clap::Parser;
use std::process::ExitCode;

// mimalloc: the verifier and the service allocate many small strings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages resident for a second, and whole arenas for
/// ten, before it gives them back to the system; under a steady load that is
/// everything freed in the last ten seconds. The service asks for both after
/// 10 ms, so its resident memory follows what it holds (measured by the
/// service benchmark: its peak under batch checks fell by half).
fn return_freed_memory_promptly() {
    // mimalloc 3's option numbers (include/mimalloc.h, `mi_option_e`).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    const ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = 24;
    // SAFETY: called once at start, before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 10);
        libmimalloc_sys::mi_option_set(ARENA_PURGE_MULT, 1);
    }
}

fn main() -> ExitCode {
    // Every file this process creates (the database, its WAL, exports, the
    // signer state) holds personal data or secrets: private, whatever the
    // directory allows.
    // SAFETY: umask only sets this process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
    return_freed_memory_promptly();
    let cli = consent_ledger::cli::Cli::parse();
    match consent_ledger::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
