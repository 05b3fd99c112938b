//! Exports and dossiers (SPEC section 6, exact): NDJSON with a header line,
//! one line per entry (with openings, or `null` for integrity-only audits)
//! and the signed checkpoint last. Written to any `Write`, so the HTTP
//! stream and the CLI share it; memory stays bounded.

use crate::ledger::entry::Openings;
use crate::store::consent::{entry_range, subject_history, StoredEntry, TextCache};
use crate::store::log;
use crate::store::DbConn;
use serde::Serialize;
use std::io::Write;

/// Entries read per query.
const CHUNK: u64 = 2_000;

/// What an export covers.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub tenant: String,
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

/// The whole log up to `spec.tree_size`. Call inside a read transaction so
/// every chunk sees the same snapshot.
pub fn write_export(
    conn: &mut DbConn,
    spec: &ExportSpec,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    header(out, spec, false)?;
    let mut texts = TextCache::new();
    let mut from = 0;
    while from < spec.tree_size {
        let to = (from + CHUNK).min(spec.tree_size);
        for entry in entry_range(conn, &spec.tenant, from, to, &mut texts)? {
            let openings = spec.openings.then_some(&entry.openings);
            entry_line(out, &entry, openings, None)?;
        }
        from = to;
    }
    last_line(out, spec)?;
    out.flush()?;
    Ok(())
}

/// One subject's entries (none for an unknown number), each with its
/// inclusion proof to the whole log's `tree_size`.
pub fn write_dossier(
    conn: &mut DbConn,
    spec: &ExportSpec,
    subject_id: Option<i64>,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    header(out, spec, true)?;
    if let Some(subject_id) = subject_id {
        for entry in subject_history(conn, &spec.tenant, subject_id)? {
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

/// A `Write` that sends chunks of about 64 KiB down a channel (the HTTP
/// body); a closed channel (the client went away) ends the export.
pub struct ChannelWriter {
    buffer: Vec<u8>,
    sender: tokio::sync::mpsc::Sender<Result<actix_web::web::Bytes, std::io::Error>>,
}

impl ChannelWriter {
    pub fn new(
        sender: tokio::sync::mpsc::Sender<Result<actix_web::web::Bytes, std::io::Error>>,
    ) -> Self {
        Self {
            buffer: Vec::with_capacity(64 * 1024),
            sender,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = actix_web::web::Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(64 * 1024),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }

    /// Ends the stream with an error, so the client sees a truncated body.
    pub fn fail(self, error: std::io::Error) {
        let _ = self.sender.blocking_send(Err(error));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
