//! Thin: parse the command line and hand it to the library.

use clap::Parser;
use std::process::ExitCode;

/// The system's allocator (glibc), with two limits for the service.
/// Measured by the service benchmark against mimalloc (tuned to give freed
/// memory back after 10 ms): the same throughput (verify 531,000 entries/s
/// against 461,000), and a smaller peak resident memory, 103 against 131
/// MiB on a log of 1,000,000 entries (mimalloc kept what startup's number
/// metadata freed: 19 MiB against 7.5); with the limits, 85-95 MiB. The
/// command-line tools go without them (an export of a million entries took
/// a third longer with them: its large buffers were mapped and unmapped
/// each time). The limits:
/// - at most four arenas (glibc makes up to eight per core, each keeping
///   what its threads freed);
/// - a fixed threshold of 256 KiB above which an allocation is its own
///   mapping, given back when freed (glibc raises the threshold after each
///   large free, so a batch's answer could otherwise stay in the heap).
fn limit_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called once at start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
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
    let cli = consent_ledger::cli::Cli::parse();
    if matches!(
        cli.command,
        None | Some(consent_ledger::cli::Command::Serve(_))
    ) {
        limit_the_allocator();
    }
    match consent_ledger::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
