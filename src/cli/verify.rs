//! `verify FILE --key VKEY [--trusted CHECKPOINT]… [--receipt RECEIPT]`: an
//! export, dossier, receipt or decision statement checked offline; exit 0
//! verified, 1 a check failed, 2 unreadable.

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
/// What the auditor kept beside the document: checkpoints from earlier
/// audits, and for a statement its entry's receipt.
pub struct Kept<'a> {
    pub trusted: &'a [PathBuf],
    pub receipt: Option<&'a std::path::Path>,
}

pub fn run(
    file: &std::path::Path,
    key: &str,
    Kept { trusted, receipt }: Kept<'_>,
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
    if let Some(code) = statement_in(file, &key, &kept, receipt) {
        return code;
    }
    if receipt.is_some() {
        eprintln!("error: --receipt goes with a decision statement");
        return ExitCode::from(2);
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
fn statement_in(
    file: &std::path::Path,
    key: &Verifier,
    trusted: &[verify::Trusted],
    receipt: Option<&std::path::Path>,
) -> Option<ExitCode> {
    if file.as_os_str() == "-" {
        return None;
    }
    let mut head = [0u8; statement::HEADER.len()];
    let mut opened = std::fs::File::open(file).ok()?;
    std::io::Read::read_exact(&mut opened, &mut head).ok()?;
    if head != statement::HEADER.as_bytes() {
        return None;
    }
    let note = match std::fs::read_to_string(file) {
        Ok(note) => note,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return Some(ExitCode::from(2));
        }
    };
    let s = match statement::verify_statement(&note, key) {
        Ok(s) => s,
        Err(StatementError::Unreadable(why)) => {
            eprintln!("error: unreadable input: {why}");
            return Some(ExitCode::from(2));
        }
        Err(failure) => {
            println!("statement: {failure}");
            return Some(ExitCode::from(1));
        }
    };
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
    Some(match receipt {
        Some(path) => statement_receipt(&s, path, key, trusted),
        None if !trusted.is_empty() => {
            eprintln!("error: --trusted checkpoints are compared with a statement through its entry's receipt: give --receipt");
            ExitCode::from(2)
        }
        None => ExitCode::SUCCESS,
    })
}

/// The statement's entry is in its tree: the receipt at the statement's
/// size verifies (and against the trusted checkpoints) and proves that
/// entry, with that leaf hash, under that root.
fn statement_receipt(
    s: &statement::Statement,
    path: &std::path::Path,
    key: &Verifier,
    trusted: &[verify::Trusted],
) -> ExitCode {
    let Some((seq, leaf)) = s.entry else {
        eprintln!("error: the statement rests on no entry: there is no receipt to check");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let verified = match verify::verify(std::io::Cursor::new(text.as_bytes()), key, trusted) {
        Ok(v) if v.kind == verify::DocumentKind::Receipt => v,
        Ok(_) => {
            eprintln!("error: {} is not a receipt", path.display());
            return ExitCode::from(2);
        }
        Err(VerifyError::Failed(failure)) => {
            println!("receipt: {failure}");
            return ExitCode::from(1);
        }
        Err(VerifyError::Unreadable(why)) => {
            eprintln!("error: the receipt is unreadable: {why}");
            return ExitCode::from(2);
        }
    };
    let proved: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let same_entry = proved["entry"]["seq"].as_u64() == Some(seq)
        && proved["leaf_hash"].as_str() == Some(hex::encode(leaf).as_str());
    if verified.tree_size != s.tree_size || verified.root != s.root || !same_entry {
        println!(
            "statement: the receipt proves seq {} in the tree of size {}, not the statement's entry at seq {seq} in its tree of size {}",
            proved["entry"]["seq"], verified.tree_size, s.tree_size
        );
        return ExitCode::from(1);
    }
    println!(
        "verified: the receipt proves the entry at seq {seq} in that tree{}",
        match trusted.len() {
            0 => String::new(),
            n => format!(", the same as {n} trusted checkpoint(s)"),
        }
    );
    ExitCode::SUCCESS
}
