//! `verify FILE --key VKEY [--trusted CHECKPOINT]…`: an export, dossier,
//! receipt or decision statement checked offline; exit 0 verified, 1 a
//! check failed, 2 unreadable.

use super::verify_online::{self, Online};
use crate::ledger::note::Verifier;
use crate::ledger::statement::{self, StatementError};
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
    if let Some(code) = statement_in(file, &key, !trusted.is_empty()) {
        return code;
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

/// When `file` is a decision statement (its first line says so), its
/// verdict; `None` for any other document (and for standard input).
fn statement_in(file: &std::path::Path, key: &Verifier, trusted: bool) -> Option<ExitCode> {
    if file.as_os_str() == "-" {
        return None;
    }
    let mut head = [0u8; statement::HEADER.len()];
    let mut opened = std::fs::File::open(file).ok()?;
    std::io::Read::read_exact(&mut opened, &mut head).ok()?;
    if head != statement::HEADER.as_bytes() {
        return None;
    }
    if trusted {
        eprintln!("error: --trusted checkpoints are not compared with a statement: verify the entry's receipt as its own document");
        return Some(ExitCode::from(2));
    }
    let note = match std::fs::read_to_string(file) {
        Ok(note) => note,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return Some(ExitCode::from(2));
        }
    };
    Some(match statement::verify_statement(&note, key) {
        Ok(s) => {
            let entry = match s.entry {
                Some((seq, _)) => format!("the entry at seq {seq}"),
                None => "no entry".to_owned(),
            };
            println!(
                "verified: decision statement of {}: {} for {} {} {} at {}, resting on {entry}, in the signed tree of size {}",
                s.origin,
                s.reason,
                s.purpose,
                s.channel,
                s.brand.as_deref().unwrap_or("-"),
                s.decided_at,
                s.tree_size
            );
            ExitCode::SUCCESS
        }
        Err(StatementError::Unreadable(why)) => {
            eprintln!("error: unreadable input: {why}");
            ExitCode::from(2)
        }
        Err(failure) => {
            println!("statement: {failure}");
            ExitCode::from(1)
        }
    })
}
