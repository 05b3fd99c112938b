//! Exports and dossiers (docs/ledger-format.md, exact): NDJSON with a header line,
//! one line per entry (with openings, or `null` for integrity-only audits)
//! and the signed checkpoint last. Made in pieces of bounded size, each by
//! a short read, that the HTTP stream sends and the CLI writes to a file.

use crate::domain::access::TenantId;
use crate::domain::ids::GroupId;
use crate::ledger::entry::Openings;
use crate::store::consent::{entry_range, group_history, StoredEntry, TextCache};
use crate::store::log;
use crate::store::DbConn;
use serde::Serialize;
use std::io::Write;

/// Entries read per query.
const CHUNK: u64 = 256;
/// A piece of a streamed export ends after the entry that reaches this size.
const PIECE_BYTES: usize = 256 * 1024;

/// What an export covers.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub tenant: TenantId,
    pub origin: String,
    pub tree_size: u64,
    pub checkpoint_note: String,
    pub verifier_key: String,
    pub openings: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("write: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Serialize)]
struct Header<'a> {
    format: &'static str,
    log: &'a str,
    tree_size: u64,
    verifier_key: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    filtered: bool,
}

#[derive(Serialize)]
struct Last<'a> {
    checkpoint: &'a str,
}

fn header(out: &mut impl Write, spec: &ExportSpec, filtered: bool) -> std::io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &Header {
            format: "consent-ledger-export/v1",
            log: &spec.origin,
            tree_size: spec.tree_size,
            verifier_key: &spec.verifier_key,
            filtered,
        },
    )?;
    out.write_all(b"\n")
}

/// `{"entry":<the hashed bytes>,"leaf_hash":…,"openings":…}` with an
/// optional inclusion proof.
fn entry_line(
    out: &mut impl Write,
    entry: &StoredEntry,
    openings: Option<&Openings>,
    proof: Option<&[String]>,
) -> std::io::Result<()> {
    out.write_all(b"{\"entry\":")?;
    out.write_all(entry.canonical_json.as_bytes())?;
    write!(out, ",\"leaf_hash\":\"{}\",\"openings\":", entry.leaf_hash)?;
    serde_json::to_writer(&mut *out, &openings)?;
    if let Some(proof) = proof {
        out.write_all(b",\"inclusion_proof\":")?;
        serde_json::to_writer(&mut *out, proof)?;
    }
    out.write_all(b"}\n")
}

fn last_line(out: &mut impl Write, spec: &ExportSpec) -> std::io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &Last {
            checkpoint: &spec.checkpoint_note,
        },
    )?;
    out.write_all(b"\n")
}

/// The whole log up to `spec.tree_size`, written piece by piece.
pub fn write_export(
    conn: &mut DbConn,
    spec: &ExportSpec,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    let mut pieces = ExportPieces::new(spec.clone());
    while let Some(piece) = pieces.next_piece(conn)? {
        out.write_all(&piece)?;
    }
    out.flush()?;
    Ok(())
}

/// An export read in pieces of at most `CHUNK` entries or about
/// `PIECE_BYTES`, each by its own
/// short read: a stream that a slow client drains holds no transaction and
/// no connection between pieces. Entries below `tree_size` never change,
/// so the pieces make one export of that size.
pub struct ExportPieces {
    spec: ExportSpec,
    /// The next seq to write; `None` before the header.
    next: Option<u64>,
    done: bool,
    texts: TextCache,
}

impl ExportPieces {
    pub fn new(spec: ExportSpec) -> Self {
        Self {
            spec,
            next: None,
            done: false,
            texts: TextCache::new(),
        }
    }

    /// The next piece of NDJSON lines; `None` once the checkpoint is out.
    pub fn next_piece(&mut self, conn: &mut DbConn) -> Result<Option<Vec<u8>>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let mut out = Vec::new();
        let from = match self.next {
            None => {
                header(&mut out, &self.spec, false)?;
                0
            }
            Some(from) => from,
        };
        let to = (from + CHUNK).min(self.spec.tree_size);
        let mut next = from;
        for entry in entry_range(conn, &self.spec.tenant, from, to, &mut self.texts)? {
            let openings = self.spec.openings.then_some(&entry.openings);
            entry_line(&mut out, &entry, openings, None)?;
            next = entry.seq + 1;
            if out.len() >= PIECE_BYTES {
                break;
            }
        }
        if next == from && from < to {
            // `entry_range` found no entry where the log's size says one is.
            return Err(ExportError::Database(diesel::result::Error::NotFound));
        }
        self.next = Some(next);
        if next == self.spec.tree_size {
            last_line(&mut out, &self.spec)?;
            self.done = true;
        }
        Ok(Some(out))
    }
}

/// One group's entries (none for an unknown identity), each with its
/// inclusion proof to the whole log's `tree_size`.
pub fn write_dossier(
    conn: &mut DbConn,
    spec: &ExportSpec,
    group_id: Option<GroupId>,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    header(out, spec, true)?;
    if let Some(group_id) = group_id {
        for entry in group_history(conn, &spec.tenant, group_id)? {
            if entry.seq >= spec.tree_size {
                break;
            }
            let proof: Vec<String> =
                log::inclusion_proof(conn, &spec.tenant, entry.seq, spec.tree_size)?
                    .into_iter()
                    .map(hex::encode)
                    .collect();
            let openings = spec.openings.then_some(&entry.openings);
            entry_line(out, &entry, openings, Some(&proof))?;
        }
    }
    last_line(out, spec)?;
    out.flush()?;
    Ok(())
}
