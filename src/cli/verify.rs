//! `verify FILE --key VKEY [--trusted CHECKPOINT]…`: an export, dossier or
//! receipt checked offline; exit 0 verified, 1 a check failed, 2 unreadable.

use super::verify_online::{self, Online};
use crate::ledger::note::Verifier;
use crate::ledger::verify::{self, trusted_checkpoint, VerifyError};
use std::path::PathBuf;
use std::process::ExitCode;

/// `verify`: 0 verified, 1 a check failed (`seq N: …`), 2 unreadable input or bad key.
/// With `online` (base URL, auditor key), then asks the log whether it is
/// still consistent with the document: 1 when it is not, 2 when it cannot
/// be asked.
pub fn run(
    file: &std::path::Path,
    key: &str,
    trusted: &[PathBuf],
    online: Option<(&str, &str)>,
) -> ExitCode {
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
            let Some((base, token)) = online else {
                return ExitCode::SUCCESS;
            };
            match verify_online::check(base, token, &key, &v) {
                Online::Consistent { size } => {
                    println!(
                        "consistent: the log's current checkpoint at tree size {size} extends it"
                    );
                    ExitCode::SUCCESS
                }
                Online::Inconsistent(why) => {
                    println!("inconsistent: {why}");
                    ExitCode::from(1)
                }
                Online::Unavailable(why) => {
                    eprintln!("error: {why}");
                    ExitCode::from(2)
                }
            }
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
