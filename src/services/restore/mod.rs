//! `restore-tail` (docs/ledger-format.md): after a restore from a backup older than
//! what was signed, re-appends from a verified export the entries the
//! database lacks, so that signing resumes without a fork. The export must
//! verify with one of the tenant's own signing keys, and the database must
//! be a prefix of it (the same leaf hash at every seq it holds).

use crate::domain::access::TenantId;
use crate::keys::MasterKey;
use crate::ledger::note::Verifier;
use crate::ledger::verify::{self, DocumentKind, VerifyError};
use crate::store::log::{log_head, signing_keys_of};
use crate::store::restore::{leaf_hash_at, tenant_of_log};
use crate::store::DbConn;
use serde::Deserialize;
use std::io::BufRead;
use std::path::Path;

mod entry;
mod error;

use entry::{restore_entry, ExportedEntry};
pub use error::RestoreError;

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub tenant: TenantId,
    /// The log's size before and after.
    pub from: u64,
    pub to: u64,
}

#[derive(Deserialize)]
struct Header {
    log: String,
    verifier_key: String,
    #[serde(default)]
    filtered: bool,
}

fn refused(why: impl Into<String>) -> RestoreError {
    RestoreError::Refused(why.into())
}

/// Verifies the export at `path`, checks that the database is a prefix of
/// it, and re-appends what follows, one transaction per entry.
pub fn restore_tail(
    conn: &mut DbConn,
    master: &MasterKey,
    path: &Path,
) -> Result<Restored, RestoreError> {
    let mut lines = std::io::BufReader::new(std::fs::File::open(path)?).lines();
    let first = lines
        .next()
        .ok_or_else(|| refused("the export is empty"))??;
    let header: Header = serde_json::from_str(&first)
        .map_err(|e| refused(format!("not an export: its first line does not read ({e})")))?;
    if header.filtered {
        return Err(refused(
            "a dossier holds one person's entries: restore from a full export",
        ));
    }
    let tenant = tenant_of_log(conn, &header.log)?.ok_or_else(|| {
        refused(format!(
            "no tenant of this database has the log {:?}",
            header.log
        ))
    })?;
    if !signing_keys_of(conn, &tenant)?
        .iter()
        .any(|k| k.verifier_key == header.verifier_key)
    {
        return Err(refused(
            "the export's verifier key is not one of the tenant's signing keys",
        ));
    }
    let key = Verifier::parse(&header.verifier_key)
        .map_err(|e| refused(format!("the export's verifier key does not read: {e}")))?;
    let input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let verified = match verify::verify(input, &key, &[]) {
        Ok(v) if v.kind == DocumentKind::Export => v,
        Ok(_) => return Err(refused("not an export")),
        Err(VerifyError::Failed(f)) => {
            return Err(refused(format!("the export does not verify: {f}")))
        }
        Err(VerifyError::Unreadable(why)) => {
            return Err(refused(format!("the export does not read: {why}")))
        }
    };
    let from = log_head(conn, &tenant)?.size;
    for line in lines {
        let line = line?;
        if line.starts_with("{\"checkpoint\"") {
            break;
        }
        let exported: ExportedEntry = serde_json::from_str(&line)
            .map_err(|e| refused(format!("an entry line does not read: {e}")))?;
        let seq = exported.entry.seq;
        if seq < from {
            if leaf_hash_at(conn, &tenant, seq)?.as_deref() != Some(exported.leaf_hash.as_str()) {
                return Err(refused(format!(
                    "seq {seq} differs between the database and the export: the database is not \
                     a prefix of this log (a fork); nothing was re-appended"
                )));
            }
            continue;
        }
        restore_entry(conn, master, &tenant, &exported)?;
    }
    let to = log_head(conn, &tenant)?.size;
    if to < verified.tree_size {
        return Err(refused(format!(
            "the log reached size {to}, short of the export's {}",
            verified.tree_size
        )));
    }
    Ok(Restored { tenant, from, to })
}
