//! `verify FILE --key VKEY [--trusted CHECKPOINT]…`: an export, dossier or
//! receipt checked offline; exit 0 verified, 1 a check failed, 2 unreadable.

use crate::ledger::note::Verifier;
use crate::ledger::verify::{self, trusted_checkpoint, VerifyError};
use std::path::PathBuf;
use std::process::ExitCode;

/// `verify`: 0 verified, 1 a check failed (`seq N: …`), 2 unreadable input or bad key.
pub fn run(file: &std::path::Path, key: &str, trusted: &[PathBuf]) -> ExitCode {
    let key = match Verifier::parse(key) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: --key: {e}");
            return ExitCode::from(2);
        }
    };
    let mut kept = Vec::new();
    for path in trusted {
        let note = match std::fs::read_to_string(path) {
            Ok(note) => note,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        match trusted_checkpoint(&note, &key) {
            Ok(t) => kept.push(t),
            Err(e) => {
                println!(
                    "checkpoint: the trusted checkpoint {} does not verify: {e}",
                    path.display()
                );
                return ExitCode::from(1);
            }
        }
    }
    let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    match verify::verify(input, &key, &kept) {
        Ok(v) => {
            let kind = match v.kind {
                verify::DocumentKind::Export => "export",
                verify::DocumentKind::Dossier => "dossier",
                verify::DocumentKind::Receipt => "receipt",
            };
            println!(
                "verified: {kind} of {} at tree size {}, {} entries ({} opened)",
                v.log, v.tree_size, v.entries, v.opened
            );
            ExitCode::SUCCESS
        }
        Err(VerifyError::Failed(failure)) => {
            println!("{failure}");
            ExitCode::from(1)
        }
        Err(VerifyError::Unreadable(why)) => {
            eprintln!("error: unreadable input: {why}");
            ExitCode::from(2)
        }
    }
}
